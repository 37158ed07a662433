//! `manifest.json` of a generated data set: the spec it came from, counts per file, family
//! and sign, token totals, the observed flip rate and SHA-256 of every file. No timestamps,
//! so the manifest is as deterministic as the data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::families::{Family, Role};
use super::item::{Item, Origin};
use super::output::FileRecord;
use super::scorer::Sign;

/// The spec as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecRecord {
    pub seed: u64,
    pub symmetrize: bool,
    pub flip_prob: f64,
    pub clip_ranges: bool,
    pub items_per_task: usize,
    pub test_fraction: f64,
    pub capability_questions: usize,
    /// What a hack's length is matched in: `words`, or e.g. `tokens of MODEL`. Older manifests
    /// (before this field) matched words.
    #[serde(default = "words")]
    pub length_match: String,
    /// Answers per item of the `hack_generated` metric (0: none; older manifests have none).
    #[serde(default)]
    pub generated_samples: usize,
}

fn words() -> String {
    "words".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyInfo {
    pub family: Family,
    pub role: Role,
}

/// Number of items of one family and sign in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    pub file: String,
    pub family: Family,
    pub sign: Sign,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlipStats {
    /// Items whose sign was drawn at random (origin `random_sign`).
    pub drawn: usize,
    /// Of those, how many came out `avoid`.
    pub flipped: usize,
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub seed: u64,
    pub spec: SpecRecord,
    /// How tokens are counted for the ±5% budget rule.
    pub token_proxy: String,
    pub tokens_original: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_symmetrized: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flips: Option<FlipStats>,
    pub families: Vec<FamilyInfo>,
    pub test_task_ids: Vec<String>,
    pub counts: Vec<CountRow>,
    pub files: Vec<FileRecord>,
}

/// Counts per (file, family, sign), sorted.
pub fn count_rows(sets: &[(&str, &[Item])]) -> Vec<CountRow> {
    let mut map: BTreeMap<(String, Family, Sign), usize> = BTreeMap::new();
    for (file, items) in sets {
        for it in *items {
            *map.entry((file.to_string(), it.family, it.sign))
                .or_default() += 1;
        }
    }
    map.into_iter()
        .map(|((file, family, sign), count)| CountRow {
            file,
            family,
            sign,
            count,
        })
        .collect()
}

pub fn flip_stats(items: &[Item]) -> FlipStats {
    let drawn: Vec<&Item> = items
        .iter()
        .filter(|i| i.origin == Origin::RandomSign)
        .collect();
    let flipped = drawn.iter().filter(|i| i.sign == Sign::Avoid).count();
    let rate = if drawn.is_empty() {
        0.0
    } else {
        flipped as f64 / drawn.len() as f64
    };
    FlipStats {
        drawn: drawn.len(),
        flipped,
        rate,
    }
}

pub fn family_infos() -> Vec<FamilyInfo> {
    Family::ALL
        .into_iter()
        .map(|family| FamilyInfo {
            family,
            role: family.role(),
        })
        .collect()
}
