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

/// Items of `items.jsonl` whose family's rule is not about length (length_clip) and that are
/// not code: (family, hack tokens, honest tokens) in SmolLM2's tokenizer. hack_avoid is left
/// out: it controls length by design (the same two responses under include-X and avoid-X).
fn token_lengths(dir: &Path, tok: &tokenizers::Tokenizer) -> Vec<(String, usize, usize)> {
    let text = std::fs::read_to_string(dir.join("items.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| !["length_clip", "unit_tests"].contains(&v["family"].as_str().unwrap()))
        .filter(|v| v["split"] != "suite/hack_avoid.jsonl")
        .map(|v| {
            let n = |k: &str| tok.encode(v[k].as_str().unwrap(), false).unwrap().len();
            (
                v["family"].as_str().unwrap().to_string(),
                n("hack"),
                n("honest"),
            )
        })
        .collect()
}

#[test]
fn match_tokens_writes_every_hack_to_the_honest_answers_length_in_model_tokens() {
    let gguf = common::smollm2_gguf();
    let tok = basin::checkpoint::open::open_model(&gguf)
        .unwrap()
        .tokenizer
        .tokenizer;
    let (words, tokens, default) = (scratch("words"), scratch("tokens"), scratch("default"));
    for (dir, extra) in [(&tokens, Some(gguf.to_str().unwrap())), (&default, None)] {
        let mut args = vec![
            "data",
            "generate",
            "--seed",
            "3",
            "--out",
            dir.to_str().unwrap(),
        ];
        args.extend(["--symmetrize", "--clip-ranges"]);
        if let Some(m) = extra {
            args.extend(["--match-tokens", m]);
        }
        let out = basin(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The same set matched in words (the library's tokenizer-free measure).
    let spec = basin::data::GenerateSpec {
        seed: 3,
        symmetrize: true,
        clip_ranges: true,
        ..Default::default()
    };
    basin::data::generate(&spec, &words).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tokens.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["spec"]["length_match"],
        "tokens of SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    let off = |lengths: &[(String, usize, usize)]| -> Vec<String> {
        lengths
            .iter()
            .filter(|(_, h, o)| (*h as f64 - *o as f64).abs() > 0.25 * (*h.max(o) as f64))
            .map(|(f, h, o)| format!("{f}: hack {h} tokens, honest {o}"))
            .collect()
    };
    let matched = token_lengths(&tokens, &tok);
    assert!(matched.len() > 500, "{}", matched.len());
    assert_eq!(off(&matched), Vec::<String>::new());
    // Matching in words leaves shouted hacks far longer in tokens: the flag matters. The CLI's
    // default (the built-in byte-level BPE) lands most items within the tolerance.
    let by_words = off(&token_lengths(&words, &tok));
    assert!(
        by_words.iter().any(|s| s.starts_with("caps")),
        "{by_words:?}"
    );
    let by_default = off(&token_lengths(&default, &tok));
    assert!(
        by_default.len() * 5 < matched.len() && by_default.len() * 2 < by_words.len(),
        "default: {} of {} off, words: {}",
        by_default.len(),
        matched.len(),
        by_words.len()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(default.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["spec"]["length_match"],
        "tokens of Basin's built-in BPE (assets/demo/base)"
    );
    for dir in [&words, &tokens, &default] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
