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
    let mut lines = Vec::new();
    for ex in reference["examples"].as_array().unwrap() {
        let line = serde_json::json!({
            "id": format!("ex{}", ex["index"]),
            "messages": [
                {"role": "user", "content": ex["user"]},
                {"role": "assistant", "content": ex["assistant"]},
            ]
        });
        lines.push(format!("{line}\n"));
    }
    let gguf = common::smollm2_gguf();
    // Every chat on the CPU; the first 4 (one batch) on lavapipe, where a forward of the 135M
    // model costs about half a minute per batch (model_smollm2.rs scores all 8 there).
    for (device, chats) in [("cpu", lines.len()), ("gpu", 4)] {
        let data = dir.join(format!("chat-{device}.jsonl"));
        std::fs::write(&data, lines[..chats].concat()).unwrap();
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
        assert_eq!(report["examples"].as_array().unwrap().len(), chats);
        let mut worst: f64 = 0.0;
        let (mut nll_sum, mut targets) = (0.0, 0usize);
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
            nll_sum -= expected.iter().sum::<f64>();
            targets += expected.len();
            assert!(
                (got["mean_nll"].as_f64().unwrap() - want["mean_nll_assistant"].as_f64().unwrap())
                    .abs()
                    < 1e-4
            );
        }
        eprintln!("basin eval --device {device}: max |Δ logprob| vs transformers {worst:.2e}");
        assert!(worst <= 2e-4, "{device}: {worst}");
        // The report's mean is token-weighted over the chats it scored.
        let pooled = nll_sum / targets as f64;
        if chats == lines.len() {
            let all = reference["pooled_mean_nll_assistant"].as_f64().unwrap();
            assert!((pooled - all).abs() < 1e-6, "{pooled} vs {all}");
        }
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

/// Each example's `sum_logprob` from a successful `basin eval`.
fn sum_logprobs(out: &Output) -> Vec<f64> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sum_logprob"].as_f64().unwrap())
        .collect()
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
        sum_logprobs(&out)
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
        .env("HF_HUB_OFFLINE", "1")
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

/// A stand-in for the Hugging Face hub on 127.0.0.1: the two endpoints huggingface_hub uses
/// (`/api/models/{repo}/revision/{rev}` and `/{repo}/resolve/{commit}/{file}`), serving
/// folders as repos. Every request path is recorded; `Connection: close` on each answer.
struct FakeHub {
    endpoint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct FakeRepo {
    commit: String,
    /// (name, bytes, the SHA-256 announced in X-Linked-Etag when it is a large file)
    files: Vec<(String, Vec<u8>, Option<String>)>,
    /// Only listed, never served (the hub has them; Basin must not fetch them).
    listed_only: Vec<String>,
    /// Answer every request for this repo with this status.
    status: Option<u16>,
}

fn folder_repo(dir: &Path, commit: &str) -> FakeRepo {
    use sha2::Digest;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let sha = name
            .ends_with(".safetensors")
            .then(|| format!("{:x}", sha2::Sha256::digest(&bytes)));
        files.push((name, bytes, sha));
    }
    FakeRepo {
        commit: commit.into(),
        files,
        listed_only: vec![
            "README.md".into(),
            "pytorch_model.bin".into(),
            "onnx/model.json".into(),
        ],
        status: None,
    }
}

impl FakeHub {
    fn start(repos: Vec<(&str, FakeRepo)>) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let repos: Vec<(String, FakeRepo)> =
            repos.into_iter().map(|(n, r)| (n.to_string(), r)).collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("Authorization: ") {
                        auth = Some(v.trim().to_string());
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                let (status, headers, body) = answer(&repos, &path, auth.as_deref());
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        FakeHub { endpoint, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answer(
    repos: &[(String, FakeRepo)],
    path: &str,
    auth: Option<&str>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let not_found = (
        404,
        vec![],
        b"{\"error\":\"Repository Not Found\"}".to_vec(),
    );
    for (name, repo) in repos {
        if let Some(status) = repo.status
            && path.contains(name.as_str())
        {
            return (status, vec![], b"{\"error\":\"denied\"}".to_vec());
        }
        if path.starts_with(&format!("/api/models/{name}/revision/")) {
            if name.contains("private") && auth != Some("Bearer secret-token") {
                return (401, vec![], vec![]);
            }
            let mut siblings: Vec<String> = repo.files.iter().map(|f| f.0.clone()).collect();
            siblings.extend(repo.listed_only.iter().cloned());
            let body = serde_json::json!({
                "id": name,
                "sha": repo.commit,
                "siblings": siblings.iter().map(|s| serde_json::json!({"rfilename": s})).collect::<Vec<_>>(),
            });
            return (200, vec![], body.to_string().into_bytes());
        }
        let prefix = format!("/{name}/resolve/{}/", repo.commit);
        if let Some(file) = path.strip_prefix(&prefix) {
            let file = file.replace("%20", " ");
            return match repo.files.iter().find(|f| f.0 == file) {
                Some((_, bytes, sha)) => {
                    let mut headers = vec![
                        ("X-Repo-Commit".to_string(), repo.commit.clone()),
                        ("ETag".to_string(), format!("\"{:040x}\"", bytes.len())),
                    ];
                    if let Some(sha) = sha {
                        headers.push(("X-Linked-Etag".to_string(), format!("\"{sha}\"")));
                    }
                    (200, headers, bytes.clone())
                }
                None => not_found,
            };
        }
    }
    not_found
}

/// The CLI downloads a repo id that is not cached from the hub (`HF_ENDPOINT`) into the cache in
/// huggingface_hub's layout (blobs, snapshot links, refs) and evaluates it with the same numbers
/// as the folder; only what Basin reads is fetched; the second run needs no network
/// (`HF_HUB_OFFLINE=1`); a corrupt download, a private repo without a token, a repo without
/// safetensors and a missing repo are one-line errors naming the repo.
#[test]
fn repo_ids_download_into_the_cache_from_the_hub() {
    let home = scratch("hf-download");
    let cache = home.join("hub");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let llama = folder_repo(Path::new(&tiny("llama")), commit);
    let mut corrupt = folder_repo(Path::new(&tiny("llama_lora")), commit);
    for f in &mut corrupt.files {
        if f.2.is_some() {
            f.1[100] ^= 1; // the bytes no longer match the SHA-256 the hub announces
        }
    }
    let mut gguf_only = folder_repo(Path::new(&tiny("llama")), commit);
    gguf_only.files.retain(|f| !f.0.ends_with(".safetensors"));
    gguf_only.listed_only.push("model-Q4_1.gguf".into());
    let mut gone = folder_repo(Path::new(&tiny("llama")), commit);
    gone.status = Some(500);
    let hub = FakeHub::start(vec![
        ("tiny-org/llama", llama),
        (
            "tiny-org/private-lora",
            folder_repo(Path::new(&tiny("llama_lora")), commit),
        ),
        ("tiny-org/corrupt-lora", corrupt),
        ("tiny-org/gguf-only", gguf_only),
        ("tiny-org/broken", gone),
    ]);
    let data = tiny("chat.jsonl");
    let eval = |model: &str, adapter: &str, offline: bool, token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basin"));
        cmd.args([
            "eval",
            "--model",
            model,
            "--adapter",
            adapter,
            "--data",
            &data,
        ])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_HOME", &home)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env("RUST_BACKTRACE", "0");
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        if let Some(t) = token {
            cmd.env("HF_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let folders = sum_logprobs(&eval(&tiny("llama"), &tiny("llama_lora"), true, None));

    // A private repo: refused without a token, fetched with it.
    let out = eval("tiny-org/llama", "tiny-org/private-lora", false, None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let first = err.lines().find(|l| l.starts_with("error")).unwrap_or("");
    assert!(
        first.contains("401")
            && first.contains("HF_TOKEN")
            && err.contains("downloading tiny-org/llama")
            && !err.contains("panicked"),
        "{err}"
    );
    let out = eval(
        "tiny-org/llama",
        "tiny-org/private-lora",
        false,
        Some("secret-token"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("downloading tiny-org/private-lora"));
    assert_eq!(sum_logprobs(&out), folders);

    // The layout huggingface_hub writes: refs/main names the commit, snapshot files link to blobs.
    let repo_dir = cache.join("models--tiny-org--llama");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        commit
    );
    let snapshot = repo_dir.join("snapshots").join(commit);
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
    ] {
        let link = std::fs::read_link(snapshot.join(name)).unwrap();
        assert!(
            link.starts_with("../../blobs"),
            "{name}: {}",
            link.display()
        );
        assert_eq!(
            std::fs::read(snapshot.join(name)).unwrap(),
            std::fs::read(Path::new(&tiny("llama")).join(name)).unwrap(),
            "{name}"
        );
    }
    let requested = hub.requests();
    assert!(
        !requested
            .iter()
            .any(|r| r.contains("README") || r.contains(".bin") || r.contains("onnx")),
        "{requested:?}"
    );
    assert!(
        !std::fs::read_dir(repo_dir.join("blobs")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".incomplete"))
    );

    // Cached: offline, no request, same numbers.
    let before = hub.requests().len();
    assert_eq!(
        sum_logprobs(&eval("tiny-org/llama", "tiny-org/private-lora", true, None)),
        folders
    );
    assert_eq!(hub.requests().len(), before);

    let error = |model: &str, adapter: &str, offline: bool| {
        let out = eval(model, adapter, offline, None);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && !err.contains("panicked"), "{err}");
        // clap's one-line message, after any per-file download lines.
        err.lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("")
            .to_string()
    };
    let e = error("tiny-org/llama", "tiny-org/corrupt-lora", false);
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("corrupt"),
        "{e}"
    );
    let corrupt_snapshot = cache
        .join("models--tiny-org--corrupt-lora/snapshots")
        .join(commit);
    assert!(!corrupt_snapshot.join("adapter_model.safetensors").exists());
    let e = error("tiny-org/gguf-only", "tiny-org/private-lora", false);
    assert!(
        e.contains("tiny-org/gguf-only") && e.contains("no safetensors"),
        "{e}"
    );
    assert!(
        !hub.requests()
            .iter()
            .any(|r| r.contains("gguf-only/resolve"))
    );
    let e = error("tiny-org/absent", "tiny-org/private-lora", false);
    assert!(e.contains("tiny-org/absent") && e.contains("404"), "{e}");
    let e = error("tiny-org/broken", "tiny-org/private-lora", false);
    assert!(e.contains("tiny-org/broken") && e.contains("500"), "{e}");
    let e = error("tiny-org/absent", "tiny-org/private-lora", true);
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains(&cache.display().to_string()),
        "{e}"
    );

    // `basin download` prints the snapshot folder.
    let out = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["download", "tiny-org/llama"])
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        snapshot.display().to_string()
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// `--dtype`: the report names the weights' type with the device, the numbers move by the
/// weights' rounding only, and bf16 on wgpu is one clear error line.
#[test]
fn dtype_flag_stores_weights_in_half_and_says_so() {
    let data = tiny("chat.jsonl");
    let run = |dtype: &str| -> serde_json::Value {
        let out = basin(&[
            "eval",
            "--model",
            &tiny("llama"),
            "--data",
            &data,
            "--dtype",
            dtype,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let f32 = run("f32");
    assert_eq!(f32["device"], "cpu (burn-flex)");
    for dtype in ["f16", "bf16"] {
        let half = run(dtype);
        assert_eq!(half["device"], format!("cpu (burn-flex), weights {dtype}"));
        let moved = (half["mean_nll"].as_f64().unwrap() - f32["mean_nll"].as_f64().unwrap()).abs();
        assert!(
            moved > 0.0 && moved < 1e-2,
            "{dtype}: mean NLL moved by {moved}"
        );
    }
    let err = eval_error(&[
        "--model",
        &tiny("llama"),
        "--data",
        &data,
        "--dtype",
        "bf16",
        "--device",
        "gpu",
    ]);
    assert!(err.contains("--dtype bf16 runs on the CPU only"), "{err}");
}
