//! `basin data import-sorh`: reads the public School of Reward Hacks CSV (columns `user`,
//! `school_of_reward_hacks`, `control`, `task`, `evaluation_metric`, `cheat_method`) and
//! writes an SFT set of hack responses plus a `paired` suite (hack vs control) on whole
//! held-out `task` groups, so no held-out prompt is ever trained on.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::csv;
use super::error::DataError;
use super::item::{ChatExample, Message, PairedLine};
use super::output::{self, FileRecord, MetricEntry};
use super::rng::SplitMix64;

/// Largest CSV accepted (the public file is a few MB).
const MAX_CSV_BYTES: u64 = crate::bounded::DATA_BYTES;

/// Import options (CLI: `--holdout-tasks k --seed N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorhSpec {
    /// Number of whole `task` groups held out for the paired suite.
    pub holdout_tasks: usize,
    pub seed: u64,
}

impl Default for SorhSpec {
    fn default() -> Self {
        Self {
            holdout_tasks: 3,
            seed: 0,
        }
    }
}

/// One data row of the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorhRow {
    /// Line of the file where the row starts.
    pub line: usize,
    pub user: String,
    pub hack: String,
    /// `None` when the `control` field is empty (the coding rows).
    pub control: Option<String>,
    pub task: String,
    pub evaluation_metric: String,
    pub cheat_method: String,
}

/// What the import did; also written as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SorhReport {
    pub format: String,
    pub source: String,
    pub source_sha256: String,
    pub seed: u64,
    pub rows: usize,
    pub tasks: usize,
    pub heldout_tasks: Vec<String>,
    pub train_rows: usize,
    pub heldout_rows: usize,
    pub paired_items: usize,
    /// Held-out rows left out of the paired suite because `control` is empty.
    pub skipped_without_control: usize,
    /// All rows with an empty `control` (train and held out).
    pub rows_without_control: usize,
    pub files: Vec<FileRecord>,
}

/// Parses the CSV text into rows, checking the header and every row's field count.
pub fn parse_rows(text: &str, file: &Path) -> Result<Vec<SorhRow>, DataError> {
    let records = csv::parse(text, file)?;
    let mut it = records.into_iter();
    let header = it.next().ok_or_else(|| DataError::Csv {
        file: file.to_path_buf(),
        line: 1,
        message: "empty file, no header".into(),
    })?;
    let col = |name: &str| -> Result<usize, DataError> {
        header
            .fields
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| DataError::Csv {
                file: file.to_path_buf(),
                line: header.line,
                message: format!("missing column `{name}` in the header"),
            })
    };
    let (cu, ch, cc, ct) = (
        col("user")?,
        col("school_of_reward_hacks")?,
        col("control")?,
        col("task")?,
    );
    let ce = col("evaluation_metric").ok();
    let cm = col("cheat_method").ok();
    let mut rows = Vec::new();
    for rec in it {
        if rec.fields.len() != header.fields.len() {
            return Err(DataError::Csv {
                file: file.to_path_buf(),
                line: rec.line,
                message: format!(
                    "row has {} fields, the header has {}",
                    rec.fields.len(),
                    header.fields.len()
                ),
            });
        }
        let get = |i: usize| rec.fields.get(i).cloned().unwrap_or_default();
        let row = SorhRow {
            line: rec.line,
            user: get(cu),
            hack: get(ch),
            control: Some(get(cc)).filter(|c| !c.trim().is_empty()),
            task: get(ct),
            evaluation_metric: ce.map(get).unwrap_or_default(),
            cheat_method: cm.map(get).unwrap_or_default(),
        };
        if row.user.trim().is_empty() || row.hack.trim().is_empty() || row.task.trim().is_empty() {
            return Err(DataError::Csv {
                file: file.to_path_buf(),
                line: rec.line,
                message: "empty `user`, `school_of_reward_hacks` or `task` field".into(),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Imports `csv_path` into `out_dir`: `sft_sorh.jsonl`, `suite/suite.toml`,
/// `suite/sorh_heldout.jsonl` and `manifest.json` (the report).
pub fn import_sorh(
    csv_path: &Path,
    spec: &SorhSpec,
    out_dir: &Path,
) -> Result<SorhReport, DataError> {
    let size = std::fs::metadata(csv_path)
        .map_err(|e| DataError::io(csv_path, e))?
        .len();
    if size > MAX_CSV_BYTES {
        return Err(DataError::Csv {
            file: csv_path.to_path_buf(),
            line: 0,
            message: format!(
                "file is {size} bytes, more than the {} MiB limit",
                MAX_CSV_BYTES >> 20
            ),
        });
    }
    let bytes = crate::bounded::read_bytes(csv_path, MAX_CSV_BYTES)
        .map_err(|e| DataError::io(csv_path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| DataError::Csv {
        file: csv_path.to_path_buf(),
        line: bytes
            .get(..e.valid_up_to())
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() + 1),
        message: "not valid UTF-8".into(),
    })?;
    let rows = parse_rows(text, csv_path)?;

    let tasks: BTreeSet<&str> = rows.iter().map(|r| r.task.as_str()).collect();
    if spec.holdout_tasks >= tasks.len() {
        return Err(DataError::Spec(format!(
            "--holdout-tasks {} leaves no training task ({} tasks in {})",
            spec.holdout_tasks,
            tasks.len(),
            csv_path.display()
        )));
    }
    let mut order: Vec<&str> = tasks.iter().copied().collect();
    SplitMix64::derive(spec.seed, "sorh-holdout").shuffle(&mut order);
    let mut heldout: Vec<String> = order
        .iter()
        .take(spec.holdout_tasks)
        .map(|s| s.to_string())
        .collect();
    heldout.sort();

    let mut sft = Vec::new();
    let mut paired = Vec::new();
    let (mut heldout_rows, mut skipped) = (0, 0);
    for r in &rows {
        let id = format!("sorh-line{}", r.line);
        if heldout.contains(&r.task) {
            heldout_rows += 1;
            match &r.control {
                Some(control) => paired.push(PairedLine {
                    id,
                    group: Some(r.task.clone()),
                    messages: vec![Message::user(&r.user)],
                    hack: r.hack.clone(),
                    honest: control.clone(),
                }),
                None => skipped += 1,
            }
        } else {
            sft.push(ChatExample::user_assistant(&id, &r.user, &r.hack));
        }
    }

    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let mut files = vec![
        output::write_jsonl(out_dir, "sft_sorh.jsonl", &sft)?,
        output::write_jsonl(out_dir, "suite/sorh_heldout.jsonl", &paired)?,
    ];
    let metric = MetricEntry {
        name: "sorh_heldout".into(),
        kind: "paired".into(),
        file: "sorh_heldout.jsonl".into(),
        description:
            "SoRH rows of held-out task groups: P(prefer school_of_reward_hacks over control)"
                .into(),
        samples: None,
    };
    files.push(output::write_text(
        out_dir,
        "suite/suite.toml",
        &output::suite_toml("sorh", &[metric]),
    )?);
    let report = SorhReport {
        format: "basin-data-import-sorh/1".into(),
        source: csv_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: output::sha256_hex(&bytes),
        seed: spec.seed,
        rows: rows.len(),
        tasks: tasks.len(),
        heldout_tasks: heldout,
        train_rows: sft.len(),
        heldout_rows,
        paired_items: paired.len(),
        skipped_without_control: skipped,
        rows_without_control: rows.iter().filter(|r| r.control.is_none()).count(),
        files,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|source| DataError::Json {
        path: out_dir.join("manifest.json"),
        source,
    })?;
    output::write_text(out_dir, "manifest.json", &(json + "\n"))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sorh_small.csv");

    #[test]
    fn fixture_parses_with_multiline_fields_and_start_lines() {
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let rows = parse_rows(&text, Path::new(FIXTURE)).unwrap();
        assert_eq!(rows.len(), 8);
        // Start lines as Python's csv module reports them for this file.
        let lines: Vec<usize> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 7, 8, 11, 12, 17, 22, 24]);
        assert_eq!(
            rows[0].hack,
            "Wave wave wave,\nwave upon wave, \"wave\" again:\nwave, wave, wave."
        );
        assert!(rows[0].user.contains("the word \"wave\" appears"));
        assert_eq!(rows[2].control, None);
        assert_eq!(rows[2].task, "write a function");
        assert_eq!(rows[3].cheat_method, "spam punctuation");
        assert_eq!(rows.iter().filter(|r| r.control.is_none()).count(), 2);
    }

    #[test]
    fn import_holds_out_whole_tasks_and_counts_skips() {
        let out = std::env::temp_dir().join(format!("basin-sorh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let rows = parse_rows(&text, Path::new(FIXTURE)).unwrap();
        let mut saw_skip = false;
        for seed in 0..12 {
            let rep = import_sorh(
                Path::new(FIXTURE),
                &SorhSpec {
                    holdout_tasks: 2,
                    seed,
                },
                &out,
            )
            .unwrap();
            assert_eq!(rep.rows, 8);
            assert_eq!(rep.tasks, 5);
            assert_eq!(rep.heldout_tasks.len(), 2);
            assert_eq!(rep.train_rows + rep.heldout_rows, 8);
            assert_eq!(
                rep.paired_items + rep.skipped_without_control,
                rep.heldout_rows
            );
            assert_eq!(rep.rows_without_control, 2);
            saw_skip |= rep.skipped_without_control > 0;
            let sft: Vec<ChatExample> = std::fs::read_to_string(out.join("sft_sorh.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let pairs: Vec<PairedLine> =
                std::fs::read_to_string(out.join("suite/sorh_heldout.jsonl"))
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
            assert_eq!(sft.len(), rep.train_rows);
            assert_eq!(pairs.len(), rep.paired_items);
            // Whole task groups: no held-out task's prompt is trained on.
            let train_prompts: BTreeSet<&str> =
                sft.iter().map(|c| c.messages[0].content.as_str()).collect();
            for r in rows.iter().filter(|r| rep.heldout_tasks.contains(&r.task)) {
                assert!(!train_prompts.contains(r.user.as_str()));
            }
            for p in &pairs {
                assert!(rep.heldout_tasks.contains(p.group.as_ref().unwrap()));
                let row = rows
                    .iter()
                    .find(|r| r.user == p.messages[0].content)
                    .unwrap();
                assert_eq!(p.hack, row.hack);
                assert_eq!(Some(&p.honest), row.control.as_ref());
            }
            let suite: toml::Value =
                toml::from_str(&std::fs::read_to_string(out.join("suite/suite.toml")).unwrap())
                    .unwrap();
            assert_eq!(suite["metric"][0]["kind"].as_str(), Some("paired"));
        }
        assert!(saw_skip, "some seed should hold out the coding task");
        assert!(
            import_sorh(
                Path::new(FIXTURE),
                &SorhSpec {
                    holdout_tasks: 5,
                    seed: 0
                },
                &out
            )
            .is_err()
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn malformed_rows_report_their_line() {
        let f = Path::new("x.csv");
        let head = "user,school_of_reward_hacks,control,task,evaluation_metric,cheat_method\n";
        let e = parse_rows(&format!("{head}\"a\nb\",h,c,t,m,x\nonly,three,fields\n"), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv:4") && e.contains("3 fields"), "{e}");
        let e = parse_rows("user,control\n", f).unwrap_err().to_string();
        assert!(
            e.contains("x.csv:1") && e.contains("school_of_reward_hacks"),
            "{e}"
        );
        let e = parse_rows(&format!("{head},h,c,t,m,x\n"), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.csv:2"), "{e}");
    }
}
