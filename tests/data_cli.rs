//! `basin data generate` as a user runs it: the same seed gives byte-identical files, and
//! `basin eval` runs on the generated SFT sets with a real chat-templated model.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn basin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .output()
        .expect("run basin")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-data-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "suite"] {
        let d = dir.join(sub);
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in names {
            out.push((
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn generate_is_deterministic_and_eval_reads_the_sft_sets() {
    let a = scratch("a");
    let b = scratch("b");
    for dir in [&a, &b] {
        let out = basin(&[
            "data",
            "generate",
            "--seed",
            "7",
            "--out",
            dir.to_str().unwrap(),
            "--symmetrize",
            "--clip-ranges",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fa = files(&a);
    assert!(
        fa.len() >= 10,
        "{:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(fa, files(&b), "same seed must give byte-identical files");

    // The generated suite loads through the sweep's own loader, every metric with items.
    let suite = basin::experiments::suite::Suite::load(a.join("suite/suite.toml")).unwrap();
    assert_eq!(
        suite.metric_names(),
        [
            "hack_heldout",
            "hack_avoid",
            "hack_ood",
            "capability",
            "instruction",
            "length_control"
        ]
    );
    assert!(suite.metrics.iter().all(|m| !m.items.is_empty()));
    assert!(suite.requests().len() > 500);

    let llama = common::fixtures().join("tiny/llama");
    for sft in [
        "sft_original.jsonl",
        "sft_symmetrized.jsonl",
        "suite/instruction.jsonl",
    ] {
        let data = a.join(sft);
        let n_lines = std::fs::read_to_string(&data).unwrap().lines().count();
        let out = basin(&[
            "eval",
            "--model",
            llama.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch",
            "16",
        ]);
        assert!(
            out.status.success(),
            "{sft}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["examples"].as_array().unwrap().len(),
            n_lines,
            "{sft}"
        );
        assert!(report["mean_nll"].as_f64().unwrap().is_finite());
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = basin(&[
        "data",
        "generate",
        "--out",
        scratch("bad").to_str().unwrap(),
        "--flip-prob",
        "1.5",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--flip-prob"));
    let missing = common::fixtures().join("no_such.csv");
    let out = basin(&[
        "data",
        "import-sorh",
        missing.to_str().unwrap(),
        "--out",
        scratch("sorh").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such.csv"));
}
