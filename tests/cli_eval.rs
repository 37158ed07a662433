//! `basin eval` as users and scripts run it: the JSON contract, SmolLM2 end to end (GGUF →
//! tokenizer → chat template → mask → log-probs vs transformers), and one-line errors for bad
//! input (exit code non-zero, the message names the file and the problem, no panic).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn basin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run basin")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny(name: &str) -> String {
    common::fixtures()
        .join("tiny")
        .join(name)
        .display()
        .to_string()
}

/// Runs `basin eval` expecting failure; returns stderr after checking it is one clean line.
fn eval_error(args: &[&str]) -> String {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    let out = basin(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure for {args:?}, got success"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code for {args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one error line for {args:?}, got: {stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    stderr
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn json_contract_on_tiny_llama_with_adapter() {
    let dir = scratch("contract");
    let out_path = dir.join("out.json");
    let data = tiny("chat.jsonl");
    let out = basin(&[
        "eval",
        "--model",
        &tiny("llama"),
        "--adapter",
        &tiny("llama_lora"),
        "--scale",
        "0.5",
        "--data",
        &data,
        "--batch",
        "3",
        "--out",
        out_path.to_str().unwrap(),
        "--token-logprobs",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(report["scale"], 0.5);
    assert!(report["device"].as_str().unwrap().starts_with("cpu"));
    assert!(report["adapter"].as_str().unwrap().ends_with("llama_lora"));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("tiny/reference.json")).unwrap(),
    )
    .unwrap();
    let want = reference["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "llama_lora@0.5")
        .unwrap();
    let examples = report["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 7);
    let mut total = 0;
    for (got, want) in examples.iter().zip(want["examples"].as_array().unwrap()) {
        assert_eq!(got["id"], want["id"]);
        assert_eq!(got["n_tokens"], want["n_tokens"]);
        let n = got["n_tokens"].as_u64().unwrap() as usize;
        assert_eq!(got["token_logprobs"].as_array().unwrap().len(), n);
        assert!(
            (got["sum_logprob"].as_f64().unwrap() - want["sum_logprob"].as_f64().unwrap()).abs()
                < 1e-3
        );
        let mean = got["mean_nll"].as_f64().unwrap();
        assert!((mean + got["sum_logprob"].as_f64().unwrap() / n as f64).abs() < 1e-9);
        total += n;
    }
    assert_eq!(report["n_tokens"].as_u64().unwrap() as usize, total);
    assert!(
        (report["mean_nll"].as_f64().unwrap() - want["mean_nll"].as_f64().unwrap()).abs() < 2e-5
    );

    // Without --out the same JSON goes to stdout, and without --token-logprobs the lists are absent.
    let out = basin(&["eval", "--model", &tiny("qwen3"), "--data", &data]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["examples"][0].get("token_logprobs").is_none());
    assert!(report["adapter"].is_null());
}

#[test]
fn smollm2_gguf_end_to_end_matches_transformers() {
    let reference = common::smollm2_reference();
    let dir = scratch("smollm2");
    let data = dir.join("chat.jsonl");
    let mut lines = String::new();
    for ex in reference["examples"].as_array().unwrap() {
        let line = serde_json::json!({
            "id": format!("ex{}", ex["index"]),
            "messages": [
                {"role": "user", "content": ex["user"]},
                {"role": "assistant", "content": ex["assistant"]},
            ]
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    std::fs::write(&data, lines).unwrap();
    let gguf = common::smollm2_gguf();
    for device in ["cpu", "gpu"] {
        let out = basin(&[
            "eval",
            "--model",
            gguf.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--device",
            device,
            "--batch",
            "4",
            "--token-logprobs",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut worst: f64 = 0.0;
        for (got, want) in report["examples"]
            .as_array()
            .unwrap()
            .iter()
            .zip(reference["examples"].as_array().unwrap())
        {
            let ids = want["input_ids"].as_array().unwrap();
            let mask = want["loss_mask"].as_array().unwrap();
            let lps = want["token_logprobs"].as_array().unwrap();
            let expected: Vec<f64> = (1..ids.len())
                .filter(|&i| mask[i] == 1)
                .map(|i| lps[i - 1].as_f64().unwrap())
                .collect();
            let got_lps: Vec<f32> = serde_json::from_value(got["token_logprobs"].clone()).unwrap();
            worst = worst.max(common::max_abs_diff(&got_lps, &expected));
            assert!(
                (got["mean_nll"].as_f64().unwrap() - want["mean_nll_assistant"].as_f64().unwrap())
                    .abs()
                    < 1e-4
            );
        }
        eprintln!("basin eval --device {device}: max |Δ logprob| vs transformers {worst:.2e}");
        assert!(worst <= 2e-4, "{device}: {worst}");
        let pooled = reference["pooled_mean_nll_assistant"].as_f64().unwrap();
        assert!((report["mean_nll"].as_f64().unwrap() - pooled).abs() < 1e-4);
    }
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_file() {
    let dir = scratch("bad");
    let data = tiny("chat.jsonl");
    let llama = tiny("llama");

    // Pickle checkpoint → refused with advice.
    let pickle = dir.join("pytorch_model.bin");
    std::fs::write(&pickle, b"\x80\x04\x95not really a pickle").unwrap();
    let e = eval_error(&["--model", pickle.to_str().unwrap(), "--data", &data]);
    assert!(
        e.contains("pytorch_model.bin") && e.contains("safetensors"),
        "{e}"
    );

    // A folder holding only a pickle.
    let pickle_dir = dir.join("pickle_only");
    std::fs::create_dir_all(&pickle_dir).unwrap();
    std::fs::copy(tiny("llama/config.json"), pickle_dir.join("config.json")).unwrap();
    std::fs::write(pickle_dir.join("pytorch_model.bin"), b"x").unwrap();
    let e = eval_error(&["--model", pickle_dir.to_str().unwrap(), "--data", &data]);
    assert!(
        e.contains("pickle_only") && e.contains("safetensors"),
        "{e}"
    );

    // Truncated safetensors.
    let truncated = dir.join("truncated");
    copy_dir(Path::new(&llama), &truncated);
    let weights = truncated.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let e = eval_error(&["--model", truncated.to_str().unwrap(), "--data", &data]);
    assert!(e.contains("model.safetensors"), "{e}");

    // Header length past the end of the file / absurd header size.
    let absurd = dir.join("absurd");
    copy_dir(Path::new(&llama), &absurd);
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(absurd.join("model.safetensors"), bytes).unwrap();
    let e = eval_error(&["--model", absurd.to_str().unwrap(), "--data", &data]);
    assert!(
        e.contains("model.safetensors") && e.contains("header"),
        "{e}"
    );

    // Garbage GGUF.
    let gguf = dir.join("broken.gguf");
    std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00").unwrap();
    let e = eval_error(&["--model", gguf.to_str().unwrap(), "--data", &data]);
    assert!(e.contains("broken.gguf"), "{e}");

    // Missing model path.
    let e = eval_error(&[
        "--model",
        dir.join("nope").to_str().unwrap(),
        "--data",
        &data,
    ]);
    assert!(e.contains("nope"), "{e}");

    // Malformed JSONL line → file and line.
    let bad_jsonl = dir.join("bad.jsonl");
    let good = std::fs::read_to_string(&data).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(
        &bad_jsonl,
        format!("{first}\n{{\"id\": \"x\", \"messages\": [\n"),
    )
    .unwrap();
    let e = eval_error(&["--model", &llama, "--data", bad_jsonl.to_str().unwrap()]);
    assert!(e.contains("bad.jsonl:2"), "{e}");

    // Last message not the assistant's.
    let not_assistant = dir.join("not_assistant.jsonl");
    std::fs::write(
        &not_assistant,
        "{\"id\": \"q\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
    )
    .unwrap();
    let e = eval_error(&["--model", &llama, "--data", not_assistant.to_str().unwrap()]);
    assert!(
        e.contains("not_assistant.jsonl:1") && e.contains("assistant"),
        "{e}"
    );

    // Empty dataset.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let e = eval_error(&["--model", &llama, "--data", empty.to_str().unwrap()]);
    assert!(
        e.contains("empty.jsonl") && e.contains("no examples"),
        "{e}"
    );

    // Adapter made for another architecture (qwen3 has q/k norm dims that differ) / shape mismatch.
    let e = eval_error(&[
        "--model",
        &tiny("qwen3"),
        "--adapter",
        &tiny("llama_lora"),
        "--data",
        &data,
    ]);
    assert!(e.contains("llama_lora"), "{e}");

    // Missing tensor: drop a layer from the index of the sharded model.
    let missing = dir.join("missing_tensor");
    copy_dir(Path::new(&tiny("mistral_sharded_bf16")), &missing);
    let index_path = missing.join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.layers.1.mlp.down_proj.weight");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let e = eval_error(&["--model", missing.to_str().unwrap(), "--data", &data]);
    assert!(e.contains("model.layers.1.mlp.down_proj.weight"), "{e}");

    // Config whose vocabulary disagrees with the embedding.
    let vocab = dir.join("vocab");
    copy_dir(Path::new(&llama), &vocab);
    let cfg_path = vocab.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["vocab_size"] = serde_json::json!(100);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = eval_error(&["--model", vocab.to_str().unwrap(), "--data", &data]);
    assert!(e.contains("vocab") || e.contains("embed"), "{e}");

    // Wrong dtype string in a safetensors header.
    let dtype = dir.join("dtype");
    copy_dir(Path::new(&llama), &dtype);
    let header =
        br#"{"model.embed_tokens.weight":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 4]);
    std::fs::write(dtype.join("model.safetensors"), bytes).unwrap();
    let e = eval_error(&["--model", dtype.to_str().unwrap(), "--data", &data]);
    assert!(e.contains("F33"), "{e}");

    // Bad flags.
    let e = eval_error(&["--model", &llama, "--data", &data, "--batch", "0"]);
    assert!(e.contains("--batch"), "{e}");
}

/// Lays out a Hugging Face hub cache as transformers writes it: the files as content-addressed
/// blobs, `snapshots/<commit>/` holding symlinks to them, `refs/<branch>` naming the commit.
fn cache_repo(cache: &Path, repo: &str, from: &Path, commit: &str, branch: &str) {
    use sha2::Digest;
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let blob = format!("{:x}", sha2::Sha256::digest(&bytes));
        std::fs::write(dir.join("blobs").join(&blob), &bytes).unwrap();
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(&blob),
            snapshot.join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    std::fs::write(dir.join("refs").join(branch), commit).unwrap();
}

/// `--model org/name[@revision]` and `--adapter org/name` resolve from the Hugging Face cache
/// (`HF_HUB_CACHE`, or `HF_HOME/hub`) and give the same numbers as the folders themselves; a repo
/// that is not cached is an error naming the cache and how to fill it.
#[test]
fn repo_ids_resolve_from_the_hugging_face_cache() {
    let home = scratch("hf-home");
    let cache = home.join("hub");
    let commit = "5d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0";
    cache_repo(
        &cache,
        "tiny-org/llama",
        Path::new(&tiny("llama")),
        commit,
        "main",
    );
    cache_repo(
        &cache,
        "tiny-org/llama-lora",
        Path::new(&tiny("llama_lora")),
        "00000000000000000000000000000000000000aa",
        "v1",
    );
    let data = tiny("chat.jsonl");
    let run = |model: &str, adapter: &str, env: (&str, &Path)| {
        let out = Command::new(env!("CARGO_BIN_EXE_basin"))
            .args([
                "eval",
                "--model",
                model,
                "--adapter",
                adapter,
                "--data",
                &data,
            ])
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HOME")
            .env(env.0, env.1)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["sum_logprob"].as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let folders = run(
        &tiny("llama"),
        &tiny("llama_lora"),
        ("HF_HUB_CACHE", &cache),
    );
    let by_id = run(
        "tiny-org/llama",
        "tiny-org/llama-lora@v1",
        ("HF_HUB_CACHE", &cache),
    );
    assert_eq!(by_id, folders);
    let pinned = run(
        &format!("tiny-org/llama@{commit}"),
        "tiny-org/llama-lora@v1",
        ("HF_HOME", &home),
    );
    assert_eq!(pinned, folders);

    let out = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["eval", "--model", "tiny-org/absent", "--data", &data])
        .env("HF_HUB_CACHE", &cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // clap's form for an invalid argument: the message on one line, then its `--help` hint.
    let first = err.lines().next().unwrap();
    assert!(
        first.contains(&cache.display().to_string())
            && first.contains("huggingface-cli download tiny-org/absent")
            && !err.contains("panicked"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
