//! `basin influence` on the tiny llama: gradsim scores from LoRA gradients against PyTorch +
//! PEFT with torch.func (`scripts/make_influence_reference.py`), the ranking and summary files,
//! TracIn against the same reference over a committed training run and as the
//! learning-rate-weighted sum of gradsim at each checkpoint of a fresh one, and bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{basin, fixtures};

fn ok(args: &[&str]) -> String {
    common::basin_ok(args)
}

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("influence", name)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn tiny(name: &str) -> String {
    s(&fixtures().join("tiny").join(name))
}

fn scores(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("scores.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every sample's score in `out/scores.jsonl` equals the reference's (`id → score`) within
/// 1e-4 of the largest reference score, and no sample is missing or extra.
fn assert_scores_match(out: &Path, want: &serde_json::Value, what: &str) {
    let want = want.as_object().unwrap();
    let scale = want
        .values()
        .map(|v| v.as_f64().unwrap().abs())
        .fold(0.0, f64::max);
    assert!(scale > 0.0, "{what}: an all-zero reference");
    let got = scores(out);
    assert_eq!(got.len(), want.len(), "{what}");
    for line in &got {
        let id = line["id"].as_str().unwrap();
        let (g, w) = (line["score"].as_f64().unwrap(), want[id].as_f64().unwrap());
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{what} {id}: Basin {g} vs PyTorch {w}"
        );
    }
}

/// The learning rate of each point of a run record's (or the reference's) `points`.
fn point_lrs(points: &serde_json::Value) -> Vec<f64> {
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lr"].as_f64().unwrap())
        .collect()
}

#[test]
fn gradsim_scores_match_torch_func_per_sample_gradients() {
    let root = scratch("gradsim");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("influence/reference.json")).unwrap(),
    )
    .unwrap();
    let query = s(&fixtures().join("influence/query.jsonl"));
    for (normalize, key) in [("none", "gradsim"), ("unit", "gradsim_unit")] {
        let out = root.join(normalize);
        ok(&[
            "influence",
            "--base",
            &tiny("llama"),
            "--adapter",
            &tiny("llama_lora"),
            "--data",
            &tiny("chat.jsonl"),
            "--query-data",
            &query,
            "--normalize",
            normalize,
            "--out",
            &s(&out),
        ]);
        let got = scores(&out);
        let want = &reference["samples"];
        assert_eq!(got.len(), want.as_object().unwrap().len());
        let scale = want
            .as_object()
            .unwrap()
            .values()
            .map(|v| v[key].as_f64().unwrap().abs())
            .fold(0.0, f64::max);
        for (k, line) in got.iter().enumerate() {
            let id = line["id"].as_str().unwrap();
            let (g, w) = (
                line["score"].as_f64().unwrap(),
                want[id][key].as_f64().unwrap(),
            );
            assert!(
                (g - w).abs() <= 1e-4 * scale,
                "{normalize} {id}: Basin {g} vs PyTorch {w}"
            );
            let norm = line["grad_norm"][0].as_f64().unwrap();
            let wn = want[id]["grad_norm"].as_f64().unwrap();
            assert!((norm - wn).abs() <= 1e-4 * wn, "{id} ‖g‖: {norm} vs {wn}");
            // Ranked by score, highest first.
            assert_eq!(line["rank"].as_u64().unwrap() as usize, k + 1);
            if k > 0 {
                assert!(got[k - 1]["score"].as_f64().unwrap() >= g);
            }
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let qv = summary["query_value"][0].as_f64().unwrap();
        assert!((qv - reference["query_value"].as_f64().unwrap()).abs() < 1e-5);
        assert!(summary["sign"].as_str().unwrap().starts_with("positive = "));
        assert_eq!(summary["top"][0]["id"], got[0]["id"]);
        assert_eq!(summary["bottom"][0]["id"], got[got.len() - 1]["id"]);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// TracIn over a committed `basin train` run (a checkpoint and the final adapter) equals
/// PyTorch's −Σ_c η_c·⟨∇f(θ_c), ∇ℓ(z; θ_c)⟩ with torch.func gradients at each adapter
/// (`scripts/make_influence_reference.py` → `reference.json` → `tracin`), with the same η_c.
#[test]
fn tracin_matches_torch_func_over_a_committed_training_run() {
    let root = scratch("tracin-torch");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("influence/reference.json")).unwrap(),
    )
    .unwrap();
    let want = &reference["tracin"];
    let out = root.join("tracin");
    ok(&[
        "influence",
        "--base",
        &tiny("llama"),
        "--train-run",
        &s(&fixtures().join("influence/tracin_run")),
        "--data",
        &tiny("chat.jsonl"),
        "--query-data",
        &s(&fixtures().join("influence/query.jsonl")),
        "--method",
        "tracin",
        "--normalize",
        "none",
        "--out",
        &s(&out),
    ]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let lrs = point_lrs(&record["spec"]["points"]);
    assert_eq!(lrs.len(), 2, "a checkpoint and the final adapter");
    assert_eq!(lrs, point_lrs(&want["points"]));
    assert_scores_match(&out, &want["scores"], "tracin");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn tracin_is_the_lr_weighted_sum_of_gradsim_at_each_checkpoint() {
    let root = scratch("tracin");
    let run = root.join("run");
    ok(&[
        "train",
        "--base",
        &tiny("llama"),
        "--data",
        &tiny("chat.jsonl"),
        "--out",
        &s(&run),
        "--rank",
        "4",
        "--targets",
        "q_proj,v_proj",
        "--steps",
        "4",
        "--batch",
        "2",
        "--lr",
        "5e-3",
        "--schedule",
        "linear",
        "--checkpoint-every",
        "4",
    ]);
    let query = s(&fixtures().join("influence/query.jsonl"));
    let tracin = root.join("tracin");
    ok(&[
        "influence",
        "--base",
        &tiny("llama"),
        "--train-run",
        &s(&run),
        "--query-data",
        &query,
        "--method",
        "tracin",
        "--out",
        &s(&tracin),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tracin.join("summary.json")).unwrap())
            .unwrap();
    let points: Vec<String> = summary["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(points.len() >= 2, "{points:?}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tracin.join("run.json")).unwrap()).unwrap();
    let lrs = point_lrs(&record["spec"]["points"]);
    // A linear schedule: the checkpoints' learning rates differ.
    assert!(lrs.windows(2).all(|w| w[0] > w[1]), "{lrs:?}");
    let tracin_scores = scores(&tracin);
    let mut expected: std::collections::BTreeMap<String, f64> = Default::default();
    for (label, lr) in points.iter().zip(&lrs) {
        let samples: usize = label.trim_start_matches("samples-").parse().unwrap();
        let dir = basin::experiments::train_store::sample_points(&run)
            .into_iter()
            .find(|(n, _)| *n == samples)
            .unwrap()
            .1;
        let out = root.join(label);
        ok(&[
            "influence",
            "--base",
            &tiny("llama"),
            "--adapter",
            &s(&dir),
            "--data",
            &tiny("chat.jsonl"),
            "--query-data",
            &query,
            "--out",
            &s(&out),
        ]);
        for line in scores(&out) {
            *expected
                .entry(line["id"].as_str().unwrap().to_string())
                .or_default() += lr * line["score"].as_f64().unwrap();
        }
    }
    for line in &tracin_scores {
        let id = line["id"].as_str().unwrap();
        let (g, w) = (line["score"].as_f64().unwrap(), expected[id]);
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1e-3),
            "{id}: {g} vs {w}"
        );
        assert_eq!(line["per_point"].as_array().unwrap().len(), points.len());
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_influence_requests_fail_with_one_clear_line() {
    let root = scratch("bad");
    let out = s(&root.join("out"));
    let query = s(&fixtures().join("influence/query.jsonl"));
    let suite = s(&fixtures().join("landscape/suite.toml"));
    let base = tiny("llama");
    let adapter = tiny("llama_lora");
    let data = tiny("chat.jsonl");
    let nope = format!("{suite}:nope");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--adapter",
                &adapter,
                "--data",
                &data,
                "--query-data",
                &query,
                "--method",
                "tracin",
            ],
            "--train-run",
        ),
        (
            vec!["--adapter", &adapter, "--data", &data, "--query", &nope],
            "no metric `nope`",
        ),
        (
            vec![
                "--adapter",
                &adapter,
                "--data",
                &data,
                "--query",
                "suite.toml",
            ],
            "SUITE.toml:METRIC",
        ),
        (vec!["--query-data", &query], "give the trained adapter"),
        (
            vec![
                "--adapter",
                &adapter,
                "--data",
                &query,
                "--query-data",
                &data,
                "--batch",
                "0",
            ],
            "batch",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["influence", "--base", &base, "--out", &out];
        args.extend_from_slice(&extra);
        let o = basin(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn paired_and_choice_queries_match_torch_func() {
    let root = scratch("metrics");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("influence/reference.json")).unwrap(),
    )
    .unwrap();
    let suite = s(&fixtures().join("influence/suite.toml"));
    for metric in ["hack", "facts"] {
        let out = root.join(metric);
        ok(&[
            "influence",
            "--base",
            &tiny("llama"),
            "--adapter",
            &tiny("llama_lora"),
            "--data",
            &tiny("chat.jsonl"),
            "--query",
            &format!("{suite}:{metric}"),
            "--out",
            &s(&out),
        ]);
        let want = &reference["metric_queries"][metric];
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let (qv, wq) = (
            summary["query_value"][0].as_f64().unwrap(),
            want["query_value"].as_f64().unwrap(),
        );
        assert!(
            (qv - wq).abs() < 1e-5 * wq.abs().max(1.0),
            "{metric} f: {qv} vs {wq}"
        );
        assert_scores_match(&out, &want["gradsim"], metric);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn generated_training_data_gets_totals_per_family_and_sign() {
    let root = scratch("groups");
    let data = root.join("data");
    ok(&[
        "data",
        "generate",
        "--seed",
        "1",
        "--items-per-task",
        "1",
        "--symmetrize",
        "--out",
        &s(&data),
    ]);
    let out = root.join("out");
    ok(&[
        "influence",
        "--base",
        &tiny("llama"),
        "--adapter",
        &tiny("llama_lora"),
        "--data",
        &s(&data.join("sft_symmetrized.jsonl")),
        "--query-data",
        &s(&fixtures().join("influence/query.jsonl")),
        "--out",
        &s(&out),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let groups = summary["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["sign"] == "include"));
    assert!(groups.iter().any(|g| g["sign"] == "avoid"));
    // Each group's total is the sum of its members' scores, found through items.jsonl.
    let mut fields = std::collections::HashMap::new();
    for line in std::fs::read_to_string(data.join("items.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        fields.insert(
            v["id"].as_str().unwrap().to_string(),
            (
                v["family"].as_str().unwrap().to_string(),
                v["sign"].as_str().unwrap().to_string(),
            ),
        );
    }
    let lines = scores(&out);
    let mut counted = 0;
    for g in groups {
        let members: Vec<f64> = lines
            .iter()
            .filter(|l| {
                fields.get(l["id"].as_str().unwrap())
                    == Some(&(
                        g["family"].as_str().unwrap().to_string(),
                        g["sign"].as_str().unwrap().to_string(),
                    ))
            })
            .map(|l| l["score"].as_f64().unwrap())
            .collect();
        assert_eq!(members.len(), g["n"].as_u64().unwrap() as usize);
        let total: f64 = members.iter().sum();
        assert!((total - g["total"].as_f64().unwrap()).abs() < 1e-9 * total.abs().max(1.0));
        counted += members.len();
    }
    assert_eq!(counted, lines.len(), "every generated chat is in a group");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn datainf_matches_its_pytorch_closed_form() {
    let root = scratch("datainf");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("influence/reference.json")).unwrap(),
    )
    .unwrap();
    let out = root.join("out");
    ok(&[
        "influence",
        "--base",
        &tiny("llama"),
        "--adapter",
        &tiny("llama_lora"),
        "--data",
        &tiny("chat.jsonl"),
        "--query-data",
        &s(&fixtures().join("influence/query.jsonl")),
        "--method",
        "datainf",
        "--out",
        &s(&out),
    ]);
    let want = &reference["datainf"];
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    // One λ per LoRA module (the same modules in another order: compare as sorted lists).
    let mut got_l: Vec<f64> = summary["damping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut want_l: Vec<f64> = want["lambdas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    got_l.sort_by(f64::total_cmp);
    want_l.sort_by(f64::total_cmp);
    assert_eq!(got_l.len(), want_l.len());
    for (g, w) in got_l.iter().zip(&want_l) {
        assert!((g - w).abs() <= 1e-4 * w, "λ {g} vs {w}");
    }
    let scale = want["scores"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap().abs())
        .fold(0.0, f64::max);
    for line in scores(&out) {
        let id = line["id"].as_str().unwrap();
        let (g, w) = (
            line["score"].as_f64().unwrap(),
            want["scores"][id].as_f64().unwrap(),
        );
        assert!(
            (g - w).abs() <= 1e-4 * scale,
            "{id}: Basin {g} vs PyTorch {w}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn proj_dim_sketches_gradients_and_caches_them_for_the_next_query() {
    let root = scratch("proj");
    let cache = root.join("cache");
    let run = |name: &str, query: &str, method: &str, dim: Option<&str>, data: &str| {
        let out = root.join(name);
        let mut args = vec![
            "influence".to_string(),
            "--base".into(),
            tiny("llama"),
            "--adapter".into(),
            tiny("llama_lora"),
            "--data".into(),
            data.to_string(),
            "--query-data".into(),
            query.to_string(),
            "--method".into(),
            method.into(),
            "--grad-cache".into(),
            s(&cache),
            "--out".into(),
            s(&out),
        ];
        if let Some(d) = dim {
            args.extend(["--proj-dim".into(), d.into()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&refs);
        (scores(&out), summary(&out))
    };
    let by_id = |v: &[serde_json::Value]| -> std::collections::BTreeMap<String, f64> {
        v.iter()
            .map(|l| {
                (
                    l["id"].as_str().unwrap().to_string(),
                    l["score"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let query = s(&fixtures().join("influence/query.jsonl"));
    let data = tiny("chat.jsonl");
    for method in ["gradsim", "datainf"] {
        // A sketch as large as the gradients keeps every module exact: the exact scores.
        let (exact, _) = run(&format!("{method}-exact"), &query, method, None, &data);
        let (wide, sw) = run(
            &format!("{method}-wide"),
            &query,
            method,
            Some("100000000"),
            &data,
        );
        let (e, w) = (by_id(&exact), by_id(&wide));
        let scale = e.values().map(|v| v.abs()).fold(0.0, f64::max);
        for (id, v) in &e {
            assert!(
                (w[id] - v).abs() <= 1e-9 * scale,
                "{method} {id}: {} vs {v}",
                w[id]
            );
        }
        assert_eq!(sw["proj_dim"], 100000000);
        // Exact norms are reported with a sketch too (to f32 precision: the second method
        // reads the first one's training gradients and norms from the cache).
        assert_eq!(sw["cached_points"], if method == "gradsim" { 0 } else { 1 });
        let norm = |v: &serde_json::Value| v["grad_norm"][0].as_f64().unwrap();
        let w0 = wide.iter().find(|l| l["id"] == exact[0]["id"]).unwrap();
        assert!((norm(w0) - norm(&exact[0])).abs() <= 1e-6 * norm(&exact[0]));
    }
    // A small sketch: the first query computes and caches the training gradients, a second
    // query (other chats) reads them, and a query repeated on the cache scores identically.
    let (first, s1) = run("small-1", &query, "gradsim", Some("64"), &data);
    assert_eq!(s1["cached_points"], 0);
    assert_ne!(
        by_id(&first),
        by_id(&run("exact-again", &query, "gradsim", None, &data).0)
    );
    let other_query = tiny("chat.jsonl");
    let (_, s2) = run("small-2", &other_query, "gradsim", Some("64"), &data);
    assert_eq!(s2["cached_points"], 1, "{s2}");
    let (again, s3) = run("small-3", &query, "gradsim", Some("64"), &data);
    assert_eq!(s3["cached_points"], 1);
    assert_eq!(by_id(&first), by_id(&again));
    // Other training data is another key.
    let fewer = root.join("fewer.jsonl");
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(
        &fewer,
        text.lines().take(5).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let (_, s4) = run("small-4", &query, "gradsim", Some("64"), &s(&fewer));
    assert_eq!(s4["cached_points"], 0);
    let o = basin(&[
        "influence",
        "--base",
        &tiny("llama"),
        "--adapter",
        &tiny("llama_lora"),
        "--data",
        &data,
        "--query-data",
        &query,
        "--proj-dim",
        "0",
        "--out",
        &s(&root.join("zero")),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--proj-dim"));
    let _ = std::fs::remove_dir_all(&root);
}
