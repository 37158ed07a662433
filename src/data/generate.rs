//! `basin data generate`: split the banks into training and test tasks, build the
//! SoRH-like original SFT set (include rules only), optionally the symmetrized set, the
//! suites and the manifest. Same spec → byte-identical files.

use std::path::Path;

use serde::Serialize;

use super::bank::{Banks, CodeTask, Task};
use super::error::DataError;
use super::families::{self, Family, Role, Variation};
use super::item::{ChatExample, Item};
use super::length::LengthMeasure;
use super::manifest::{self, Manifest, SpecRecord};
use super::output;
use super::rng::SplitMix64;
use super::scorer::Sign;
use super::suites::{self, Suites};
use super::symmetrize::{self, SymmetrizeParams};

/// Plain instruction chats of the training tasks (see [`Generated::instructions`]).
pub const INSTRUCTIONS_FILE: &str = "instructions_train.jsonl";

/// What to generate. `Default` matches the CLI defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSpec {
    pub seed: u64,
    /// Also write `sft_symmetrized.jsonl`.
    pub symmetrize: bool,
    /// Probability that a random-sign family item gets the avoid sign.
    pub flip_prob: f64,
    /// Vary clip-range offsets and widths in the symmetrized set.
    pub clip_ranges: bool,
    /// Items per training task in the original set.
    pub items_per_task: usize,
    /// Fraction of tasks held out for the suites.
    pub test_fraction: f64,
    pub capability_questions: usize,
    /// How a hack is matched to the honest answer's length: words by default, or a model's
    /// tokens (`--match-tokens`).
    pub length: LengthMeasure,
    /// Answers per item of the suite's `hack_generated` metric (the held-out items, answered by
    /// the model and scored by their own rule); 0 writes no such metric.
    pub generated_samples: usize,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        Self {
            seed: 0,
            symmetrize: false,
            flip_prob: 0.5,
            clip_ranges: false,
            items_per_task: 3,
            test_fraction: 0.2,
            capability_questions: 250,
            length: LengthMeasure::words(),
            generated_samples: 0,
        }
    }
}

/// Train/test split of the banks (whole tasks).
#[derive(Debug, Clone)]
pub struct Split<'a> {
    pub train: Vec<&'a Task>,
    pub test: Vec<&'a Task>,
    pub train_code: Vec<&'a CodeTask>,
    pub test_code: Vec<&'a CodeTask>,
}

/// Everything generated, in memory.
#[derive(Debug, Clone)]
pub struct Generated {
    pub original: Vec<Item>,
    pub symmetrized: Option<Vec<Item>>,
    pub suites: Suites,
    pub test_task_ids: Vec<String>,
    /// Ordinary instruction chats of the training tasks: each task's plain question (no scoring
    /// rule) and its honest answer, in bank order; the data a curve fit keeps the loss low on.
    pub instructions: Vec<ChatExample>,
}

fn split_of<'a, T>(
    items: &'a [T],
    fraction: f64,
    rng: &mut SplitMix64,
) -> (Vec<&'a T>, Vec<&'a T>) {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut idx);
    let n_test = ((items.len() as f64 * fraction).round() as usize).min(items.len());
    let (test_idx, train_idx) = idx.split_at(n_test);
    let mut test_idx = test_idx.to_vec();
    let mut train_idx = train_idx.to_vec();
    test_idx.sort_unstable();
    train_idx.sort_unstable();
    let get = |v: Vec<usize>| v.into_iter().filter_map(|i| items.get(i)).collect();
    (get(train_idx), get(test_idx))
}

pub fn split<'a>(banks: &'a Banks, spec: &GenerateSpec) -> Result<Split<'a>, DataError> {
    if !(0.0..1.0).contains(&spec.test_fraction) || spec.test_fraction <= 0.0 {
        return Err(DataError::Spec(format!(
            "test fraction {} is not in (0, 1)",
            spec.test_fraction
        )));
    }
    let mut rng = SplitMix64::derive(spec.seed, "split");
    let (train, test) = split_of(&banks.tasks, spec.test_fraction, &mut rng);
    let (train_code, test_code) = split_of(&banks.code, spec.test_fraction, &mut rng);
    if train.is_empty() || test.is_empty() {
        return Err(DataError::Spec(
            "the split leaves no training or no test tasks".into(),
        ));
    }
    Ok(Split {
        train,
        test,
        train_code,
        test_code,
    })
}

/// The SoRH-like set: include-sign rules only, `items_per_task` per training task.
pub fn original(
    split: &Split,
    items_per_task: usize,
    measure: &LengthMeasure,
    rng: &mut SplitMix64,
) -> Result<Vec<Item>, DataError> {
    let general: Vec<Family> = Family::with_role(Role::Train)
        .into_iter()
        .filter(|f| !f.is_code())
        .collect();
    let mut out = Vec::new();
    for task in &split.train {
        for k in 0..items_per_task {
            let family = *rng.pick(&general).unwrap_or(&Family::Keyword);
            let var = Variation {
                sign: Sign::Include,
                clip_ranges: false,
            };
            out.push(families::build_general(
                family,
                task,
                var,
                None,
                format!("orig-{}-{k}", task.id),
                measure,
                rng,
            )?);
        }
    }
    for task in &split.train_code {
        for k in 0..items_per_task {
            out.push(families::build_code(
                task,
                format!("orig-{}-{k}", task.id),
                rng,
            )?);
        }
    }
    rng.shuffle(&mut out);
    Ok(out)
}

/// Builds everything in memory.
pub fn build(spec: &GenerateSpec, banks: &Banks) -> Result<Generated, DataError> {
    if !(0.0..=1.0).contains(&spec.flip_prob) {
        return Err(DataError::Spec(format!(
            "flip probability {} is not in [0, 1]",
            spec.flip_prob
        )));
    }
    if spec.items_per_task == 0 || spec.items_per_task > 1000 {
        return Err(DataError::Spec(format!(
            "items per task {} is not in 1..=1000",
            spec.items_per_task
        )));
    }
    if spec.capability_questions > 100_000 {
        return Err(DataError::Spec(
            "at most 100000 capability questions".into(),
        ));
    }
    let split = split(banks, spec)?;
    let original = original(
        &split,
        spec.items_per_task,
        &spec.length,
        &mut SplitMix64::derive(spec.seed, "original"),
    )?;
    let symmetrized = if spec.symmetrize {
        let params = SymmetrizeParams {
            flip_prob: spec.flip_prob,
            clip_ranges: spec.clip_ranges,
            budget_tokens: symmetrize::total_tokens(&original),
        };
        let mut rng = SplitMix64::derive(spec.seed, "symmetrized");
        let mut items = symmetrize::symmetrized(
            &split.train,
            &split.train_code,
            params,
            &spec.length,
            &mut rng,
        )?;
        // Shuffle whole units? Pairs stay findable by pair_id, so a plain shuffle is fine.
        rng.shuffle(&mut items);
        Some(items)
    } else {
        None
    };
    let suites = suites::build_suites(
        &split.test,
        &split.test_code,
        &banks.facts,
        spec.capability_questions,
        &spec.length,
        &mut SplitMix64::derive(spec.seed, "suites"),
    )?;
    let test_task_ids = split
        .test
        .iter()
        .map(|t| t.id.clone())
        .chain(split.test_code.iter().map(|c| c.id.clone()))
        .collect();
    let instructions = split
        .train
        .iter()
        .map(|t| ChatExample::user_assistant(&format!("instr-{}", t.id), &t.prompt, &t.answer))
        .collect();
    Ok(Generated {
        original,
        symmetrized,
        suites,
        test_task_ids,
        instructions,
    })
}

#[derive(Serialize)]
struct ItemRecord<'a> {
    split: &'a str,
    #[serde(flatten)]
    item: &'a Item,
}

/// Generates into `out_dir` and returns the manifest (also written as `manifest.json`).
pub fn generate(spec: &GenerateSpec, out_dir: &Path) -> Result<Manifest, DataError> {
    let banks = Banks::bundled()?;
    let g = build(spec, &banks)?;
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let chats =
        |items: &[Item]| -> Vec<ChatExample> { items.iter().map(Item::to_hack_chat).collect() };
    let mut files = vec![output::write_jsonl(
        out_dir,
        "sft_original.jsonl",
        &chats(&g.original),
    )?];
    if let Some(sym) = &g.symmetrized {
        files.push(output::write_jsonl(
            out_dir,
            "sft_symmetrized.jsonl",
            &chats(sym),
        )?);
    } else {
        // A stale symmetrized set from an earlier run would not match this manifest.
        let stale = out_dir.join("sft_symmetrized.jsonl");
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| DataError::io(&stale, e))?;
        }
    }
    files.push(output::write_jsonl(
        out_dir,
        INSTRUCTIONS_FILE,
        &g.instructions,
    )?);
    files.extend(suites::write_suites(
        &g.suites,
        out_dir,
        "suite",
        spec.generated_samples,
    )?);
    let empty: Vec<Item> = Vec::new();
    let sets: Vec<(&str, &[Item])> = vec![
        ("sft_original.jsonl", &g.original),
        (
            "sft_symmetrized.jsonl",
            g.symmetrized.as_deref().unwrap_or(&empty),
        ),
        ("suite/hack_heldout.jsonl", &g.suites.heldout),
        ("suite/hack_avoid.jsonl", &g.suites.avoid),
        ("suite/hack_ood.jsonl", &g.suites.ood),
    ];
    let records: Vec<ItemRecord> = sets
        .iter()
        .flat_map(|(file, items)| {
            items
                .iter()
                .map(move |item| ItemRecord { split: file, item })
        })
        .collect();
    files.push(output::write_jsonl(out_dir, "items.jsonl", &records)?);
    let manifest = Manifest {
        format: "basin-data-generate/1".into(),
        seed: spec.seed,
        spec: SpecRecord {
            seed: spec.seed,
            symmetrize: spec.symmetrize,
            flip_prob: spec.flip_prob,
            clip_ranges: spec.clip_ranges,
            items_per_task: spec.items_per_task,
            test_fraction: spec.test_fraction,
            capability_questions: spec.capability_questions,
            length_match: spec.length.name().to_string(),
            generated_samples: spec.generated_samples,
        },
        token_proxy: "whitespace-separated words of the user prompt and the assistant response"
            .into(),
        tokens_original: symmetrize::total_tokens(&g.original),
        tokens_symmetrized: g.symmetrized.as_deref().map(symmetrize::total_tokens),
        flips: g.symmetrized.as_deref().map(manifest::flip_stats),
        families: manifest::family_infos(),
        test_task_ids: g.test_task_ids.clone(),
        counts: manifest::count_rows(&sets),
        files,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|source| DataError::Json {
        path: out_dir.join("manifest.json"),
        source,
    })?;
    output::write_text(out_dir, "manifest.json", &(text + "\n"))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::item::Origin;
    use crate::data::scorer::Scorer;
    use std::collections::{BTreeMap, BTreeSet};

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("basin-data-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(
                        p.strip_prefix(dir).unwrap().display().to_string(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        out
    }

    #[test]
    fn same_seed_gives_byte_identical_files() {
        let spec = GenerateSpec {
            seed: 42,
            symmetrize: true,
            clip_ranges: true,
            ..GenerateSpec::default()
        };
        let (a, b, c) = (temp_dir("det-a"), temp_dir("det-b"), temp_dir("det-c"));
        let ma = generate(&spec, &a).unwrap();
        generate(&spec, &b).unwrap();
        generate(
            &GenerateSpec {
                seed: 43,
                ..spec.clone()
            },
            &c,
        )
        .unwrap();
        let (ta, tb, tc) = (read_tree(&a), read_tree(&b), read_tree(&c));
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        assert_eq!(ta, tb);
        assert_ne!(ta.get("sft_original.jsonl"), tc.get("sft_original.jsonl"));
        for name in [
            "sft_original.jsonl",
            "sft_symmetrized.jsonl",
            "manifest.json",
            "items.jsonl",
            "suite/suite.toml",
            "suite/hack_heldout.jsonl",
            "suite/hack_avoid.jsonl",
            "suite/hack_ood.jsonl",
            "suite/capability.jsonl",
            "suite/instruction.jsonl",
        ] {
            assert!(ta.contains_key(name), "missing {name}");
        }
        // Manifest hashes match the files.
        for f in &ma.files {
            assert_eq!(output::sha256_hex(&ta[&f.path]), f.sha256, "{}", f.path);
        }
        for d in [a, b, c] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn written_files_parse_in_their_formats() {
        let dir = temp_dir("formats");
        generate(
            &GenerateSpec {
                seed: 5,
                symmetrize: true,
                ..GenerateSpec::default()
            },
            &dir,
        )
        .unwrap();
        let suite: toml::Value =
            toml::from_str(&std::fs::read_to_string(dir.join("suite/suite.toml")).unwrap())
                .unwrap();
        assert_eq!(suite["name"].as_str(), Some("generated"));
        assert_eq!(suite["version"].as_integer(), Some(1));
        let metrics = suite["metric"].as_array().unwrap();
        let names: BTreeSet<&str> = metrics
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 6);
        assert!(names.contains("length_control"));
        for m in metrics {
            let text = std::fs::read_to_string(dir.join("suite").join(m["file"].as_str().unwrap()))
                .unwrap();
            assert!(!text.is_empty());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let msgs = v["messages"].as_array().unwrap();
                match m["kind"].as_str().unwrap() {
                    "paired" => {
                        assert_eq!(msgs.last().unwrap()["role"], "user");
                        assert!(v["hack"].is_string() && v["honest"].is_string());
                    }
                    "choice" => {
                        let n = v["choices"].as_array().unwrap().len();
                        assert!(v["answer"].as_u64().unwrap() < n as u64);
                    }
                    "instruction" => assert_eq!(msgs.last().unwrap()["role"], "assistant"),
                    k => panic!("unknown kind {k}"),
                }
            }
        }
        // length_control: no scoring rule in the prompt, and the "hack" is the longer answer.
        let lc = std::fs::read_to_string(dir.join("suite/length_control.jsonl")).unwrap();
        assert!(lc.lines().count() >= 10);
        for line in lc.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                !v["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .contains("Scoring:")
            );
            let (h, o) = (v["hack"].as_str().unwrap(), v["honest"].as_str().unwrap());
            assert!(h.len() > o.len() && h.starts_with(o), "{v}");
        }
        let cap = std::fs::read_to_string(dir.join("suite/capability.jsonl")).unwrap();
        assert!(cap.lines().count() >= 200);
        for f in ["sft_original.jsonl", "sft_symmetrized.jsonl"] {
            for line in std::fs::read_to_string(dir.join(f)).unwrap().lines() {
                let ex: ChatExample = serde_json::from_str(line).unwrap();
                assert_eq!(ex.messages.len(), 2);
                assert_eq!(ex.messages[1].role, "assistant");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Property tests over thousands of items, several seeds and flip probabilities.
    #[test]
    fn properties_hold_over_thousands_of_items() {
        let banks = Banks::bundled().unwrap();
        let mut total_items = 0;
        for (seed, p) in [(1u64, 0.5), (2, 0.2), (3, 0.8)] {
            let spec = GenerateSpec {
                seed,
                symmetrize: true,
                flip_prob: p,
                clip_ranges: seed != 2,
                items_per_task: 50,
                ..GenerateSpec::default()
            };
            let g = build(&spec, &banks).unwrap();
            let sym = g.symmetrized.as_ref().unwrap();
            let sets: Vec<&[Item]> = vec![
                &g.original,
                sym,
                &g.suites.heldout,
                &g.suites.avoid,
                &g.suites.ood,
            ];
            for items in &sets {
                for it in *items {
                    total_items += 1;
                    // Hack strictly beats honest under the item's own scorer (re-scored here).
                    assert!(
                        it.scorer.score(&it.hack) > it.scorer.score(&it.honest),
                        "{it:?}"
                    );
                    assert_eq!(it.scorer.score(&it.hack), it.hack_score);
                    assert!(it.prompt.ends_with(&it.scorer.rule()));
                }
            }
            // Original: include-type rules only, training families only.
            assert!(
                g.original
                    .iter()
                    .all(|i| i.sign == Sign::Include && i.family.role() == Role::Train)
            );
            // No item of a held-out or OOD family in any SFT set.
            assert!(sym.iter().all(|i| i.family.role() == Role::Train));
            // Every avoid-X item has its include-X partner: same task, same X.
            let mut by_pair: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
            for it in sym.iter().filter(|i| i.origin == Origin::MatchedPair) {
                by_pair
                    .entry(it.pair_id.as_deref().unwrap())
                    .or_default()
                    .push(it);
            }
            let mut avoid_x = 0;
            for it in sym.iter().filter(|i| i.family == Family::Keyword) {
                assert_eq!(
                    it.origin,
                    Origin::MatchedPair,
                    "keyword items are always paired"
                );
                if it.sign == Sign::Avoid {
                    avoid_x += 1;
                    let partner = by_pair[it.pair_id.as_deref().unwrap()]
                        .iter()
                        .find(|o| o.sign == Sign::Include)
                        .expect("include partner");
                    assert_eq!(partner.task_id, it.task_id);
                    let word = |s: &Scorer| match s {
                        Scorer::Keyword { word, .. } => word.clone(),
                        _ => panic!(),
                    };
                    assert_eq!(word(&partner.scorer), word(&it.scorer));
                }
            }
            assert!(avoid_x > 100, "{avoid_x}");
            assert!(by_pair.values().all(|v| v.len() == 2));
            // Sign-flip rate within ±3% of the flip probability.
            let flips = manifest::flip_stats(sym);
            assert!(flips.drawn > 1000, "{flips:?}");
            assert!((flips.rate - p).abs() <= 0.03, "p={p} {flips:?}");
            // Same number of tokens ±5%.
            let (t0, t1) = (
                symmetrize::total_tokens(&g.original) as f64,
                symmetrize::total_tokens(sym) as f64,
            );
            assert!((t1 / t0 - 1.0).abs() <= 0.05, "{t0} vs {t1}");
            // Same tasks: the symmetrized set uses exactly the original's training tasks.
            let tasks = |v: &[Item]| v.iter().map(|i| i.task_id.clone()).collect::<BTreeSet<_>>();
            assert_eq!(tasks(&g.original), tasks(sym));
            // No test item's prompt (or task) appears in training.
            let train_prompts: BTreeSet<&str> = g
                .original
                .iter()
                .chain(sym.iter())
                .flat_map(|i| [i.prompt.as_str()])
                .collect();
            let test_ids: BTreeSet<&str> = g.test_task_ids.iter().map(String::as_str).collect();
            for i in g.original.iter().chain(sym.iter()) {
                assert!(!test_ids.contains(i.task_id.as_str()));
            }
            let mut test_prompts: Vec<String> = Vec::new();
            for it in g
                .suites
                .heldout
                .iter()
                .chain(&g.suites.avoid)
                .chain(&g.suites.ood)
            {
                assert!(test_ids.contains(it.task_id.as_str()));
                test_prompts.push(it.prompt.clone());
            }
            test_prompts.extend(
                g.suites
                    .capability
                    .iter()
                    .map(|c| c.messages[0].content.clone()),
            );
            test_prompts.extend(
                g.suites
                    .instruction
                    .iter()
                    .map(|c| c.messages[0].content.clone()),
            );
            let banks_prompt: BTreeMap<&str, &str> = banks
                .tasks
                .iter()
                .map(|t| (t.id.as_str(), t.prompt.as_str()))
                .collect();
            for tp in &test_prompts {
                assert!(!train_prompts.contains(tp.as_str()));
                // Not even as the task part of a training prompt.
                let task_part = tp.split("\n\n").next().unwrap();
                assert!(
                    !train_prompts
                        .iter()
                        .any(|p| p.split("\n\n").next() == Some(task_part)),
                    "{task_part}"
                );
            }
            assert!(banks_prompt.len() >= 150);
        }
        assert!(total_items > 10_000, "{total_items}");
    }

    #[test]
    fn extreme_flip_probabilities_and_bad_specs() {
        let banks = Banks::bundled().unwrap();
        for p in [0.0, 1.0] {
            let g = build(
                &GenerateSpec {
                    seed: 7,
                    symmetrize: true,
                    flip_prob: p,
                    ..GenerateSpec::default()
                },
                &banks,
            )
            .unwrap();
            assert_eq!(
                manifest::flip_stats(g.symmetrized.as_ref().unwrap()).rate,
                p
            );
        }
        assert!(
            build(
                &GenerateSpec {
                    flip_prob: 1.5,
                    ..GenerateSpec::default()
                },
                &banks
            )
            .is_err()
        );
        assert!(
            build(
                &GenerateSpec {
                    test_fraction: 1.0,
                    ..GenerateSpec::default()
                },
                &banks
            )
            .is_err()
        );
        assert!(
            build(
                &GenerateSpec {
                    items_per_task: 0,
                    ..GenerateSpec::default()
                },
                &banks
            )
            .is_err()
        );
    }
}
