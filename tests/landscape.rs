//! `basin landscape` on the tiny llama: the endpoints plane through θ₀, θ_H (a LoRA adapter) and
//! a Bezier curve's bend, against dense PyTorch weights (`scripts/make_landscape_reference.py`):
//! the Gram–Schmidt basis, the projected bend and curve, and every cell's loss; the endpoints'
//! cells against `basin eval`; resume, shards + merge, a random plane, and bad input.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{basin, fixtures};

fn ok(args: &[&str]) -> String {
    common::basin_ok(args)
}

fn scratch(name: &str) -> PathBuf {
    common::scratch_dir("landscape", name)
}

fn tiny(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("landscape/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A curve folder as `basin curve fit` leaves it: endpoint llama_lora, bend llama_lora_rslora.
fn curve_dir(root: &Path) -> PathBuf {
    let dir = root.join("curve");
    let bend = dir.join("bend");
    std::fs::create_dir_all(&bend).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(tiny("llama_lora_rslora").join(f), bend.join(f)).unwrap();
    }
    let record = serde_json::json!({
        "schema": "basin.curve.v1",
        "kind": "bezier",
        "base": s(&tiny("llama")),
        "endpoint": s(&tiny("llama_lora")),
        "endpoint_kind": "lora",
        "bend": "lora",
    });
    std::fs::write(dir.join("curve.json"), record.to_string()).unwrap();
    dir
}

/// (α, β) → value of `metric` from a landscape folder's grid.jsonl.
fn grid(dir: &Path) -> BTreeMap<(String, String), f64> {
    basin::experiments::sweep_store::read_results(&dir.join("grid.jsonl"))
        .unwrap()
        .values()
        .map(|r| {
            (
                (format!("{:.3}", r.t), format!("{:.3}", r.beta.unwrap())),
                r.value,
            )
        })
        .collect()
}

fn suite() -> String {
    s(&fixtures().join("landscape/suite.toml"))
}

#[test]
fn endpoints_plane_matches_dense_pytorch_weights_cell_by_cell() {
    let root = scratch("endpoints");
    let curve = curve_dir(&root);
    let out = root.join("out");
    let stderr = ok(&[
        "landscape",
        "--base",
        &s(&tiny("llama")),
        "--curve",
        &s(&curve),
        "--suite",
        &suite(),
        "--grid",
        "3x3",
        "--bootstrap",
        "20",
        "--cells-per-pass",
        "4",
        "--out",
        &s(&out),
    ]);
    assert!(stderr.contains("9 cells computed"), "{stderr}");
    let want = reference();

    // The basis: ‖u‖ and the projections of the bend and the curve.
    let plane: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plane.json")).unwrap()).unwrap();
    let close = |got: f64, want: f64, tol: f64, what: &str| {
        assert!(
            (got - want).abs() <= tol * want.abs().max(1.0),
            "{what}: {got} vs {want}"
        );
    };
    close(
        plane["norm_u"].as_f64().unwrap(),
        want["norm_u"].as_f64().unwrap(),
        1e-5,
        "‖u‖",
    );
    close(
        plane["norm_v"].as_f64().unwrap(),
        want["norm_u"].as_f64().unwrap(),
        1e-5,
        "‖v‖ = ‖u‖",
    );
    assert!(plane["cos_uv"].as_f64().unwrap().abs() < 1e-9);
    let g = &plane["plane"]["gram"];
    close(
        g[0][0].as_f64().unwrap(),
        want["gram"]["uu"].as_f64().unwrap(),
        1e-5,
        "⟨u,u⟩",
    );
    close(
        g[0][1].as_f64().unwrap(),
        want["gram"]["ub"].as_f64().unwrap(),
        1e-4,
        "⟨u,b⟩",
    );
    close(
        g[1][1].as_f64().unwrap(),
        want["gram"]["bb"].as_f64().unwrap(),
        1e-5,
        "⟨b,b⟩",
    );
    let named = |name: &str| {
        plane["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(named("base")["alpha"], 0.0);
    assert_eq!(named("end")["alpha"], 1.0);
    assert_eq!(named("end")["beta"], 0.0);
    for k in ["alpha", "beta"] {
        close(
            named("bend")[k].as_f64().unwrap(),
            want["bend_point"][k].as_f64().unwrap(),
            1e-5,
            &format!("bend {k}"),
        );
    }
    let drawn = plane["curve"].as_array().unwrap();
    for c in want["curve"].as_array().unwrap() {
        let t = c["t"].as_f64().unwrap();
        let p = drawn
            .iter()
            .find(|p| (p["t"].as_f64().unwrap() - t).abs() < 1e-12)
            .unwrap();
        for k in ["alpha", "beta"] {
            close(
                p[k].as_f64().unwrap(),
                c[k].as_f64().unwrap(),
                1e-5,
                &format!("curve t={t} {k}"),
            );
        }
        assert!(p["off_plane"].as_f64().unwrap() < 1e-6);
    }

    // Every cell's loss equals the dense PyTorch model's to 1e-4.
    let cells = grid(&out);
    assert_eq!(cells.len(), 9);
    for c in want["cells"].as_array().unwrap() {
        let key = (
            format!("{:.3}", c["alpha"].as_f64().unwrap()),
            format!("{:.3}", c["beta"].as_f64().unwrap()),
        );
        let got = cells[&key];
        let w = c["instruction"].as_f64().unwrap();
        assert!((got - w).abs() < 1e-4, "cell {key:?}: {got} vs PyTorch {w}");
    }
    let csv = std::fs::read_to_string(out.join("grid.csv")).unwrap();
    assert!(csv.starts_with("alpha,beta,instruction,"), "{csv}");
    assert_eq!(csv.lines().count(), 10);

    // Rerunning resumes: nothing left to compute.
    let again = ok(&[
        "landscape",
        "--base",
        &s(&tiny("llama")),
        "--curve",
        &s(&curve),
        "--suite",
        &suite(),
        "--grid",
        "3x3",
        "--bootstrap",
        "20",
        "--out",
        &s(&out),
    ]);
    assert!(
        again.contains("0 cells computed, 9 already finished"),
        "{again}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn endpoint_cells_equal_basin_eval_and_shards_merge_into_the_whole() {
    let root = scratch("eval");
    let adapter = s(&tiny("llama_lora"));
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "landscape",
            "--base",
            "",
            "--adapter",
            &adapter,
            "--suite",
            "",
            "--grid",
            "2x2",
            "--range",
            "0:1,0:1",
            "--bootstrap",
            "10",
            "--seed",
            "3",
        ];
        let base = s(&tiny("llama"));
        let suite = suite();
        args[2] = &base;
        args[6] = &suite;
        let out_s = s(out);
        args.extend_from_slice(&["--out", &out_s]);
        args.extend_from_slice(extra);
        ok(&args);
    };
    let whole = root.join("whole");
    run(&whole, &[]);
    let cells = grid(&whole);
    assert_eq!(cells.len(), 4);
    let eval_as = |adapter: Option<&str>, dtype: &str| -> f64 {
        let out = root.join("eval.json");
        let mut args = vec![
            "eval".to_string(),
            "--model".into(),
            s(&tiny("llama")),
            "--data".into(),
            s(&tiny("chat.jsonl")),
            "--dtype".into(),
            dtype.into(),
            "--out".into(),
            s(&out),
        ];
        if let Some(a) = adapter {
            args.extend(["--adapter".into(), a.to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&refs);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        v["mean_nll"].as_f64().unwrap()
    };
    let eval = |adapter: Option<&str>| eval_as(adapter, "f32");
    let at = |a: &str, b: &str| cells[&(a.to_string(), b.to_string())];
    let base_nll = eval(None);
    let end_nll = eval(Some(&adapter));
    assert!(
        (at("0.000", "0.000") - base_nll).abs() < 1e-9,
        "{} vs {base_nll}",
        at("0.000", "0.000")
    );
    assert!(
        (at("1.000", "0.000") - end_nll).abs() < 1e-9,
        "{} vs {end_nll}",
        at("1.000", "0.000")
    );
    // The same base NLL as the PyTorch reference.
    assert!((base_nll - reference()["base_nll"].as_f64().unwrap()).abs() < 1e-4);
    // The random third direction moves the loss off the α axis.
    assert!((at("0.000", "1.000") - base_nll).abs() > 1e-3);

    // Two shards, merged, equal the whole run value for value.
    let (s0, s1, merged) = (root.join("s0"), root.join("s1"), root.join("merged"));
    run(&s0, &["--shard", "0/2", "--cells-per-pass", "1"]);
    run(&s1, &["--shard", "1/2"]);
    assert_eq!(grid(&s0).len(), 2);
    ok(&["merge", &s(&s0), &s(&s1), "--out", &s(&merged)]);
    let m = grid(&merged);
    assert_eq!(m.len(), 4);
    for (k, v) in &cells {
        assert!((m[k] - v).abs() < 1e-9, "{k:?}: {} vs {v}", m[k]);
    }

    // With bf16 weights the endpoints' cells still equal `basin eval` with the same weights,
    // and moved from the f32 ones by the rounding.
    let half = root.join("bf16");
    run(&half, &["--dtype", "bf16"]);
    let h = grid(&half);
    for (key, adapter) in [
        (("0.000", "0.000"), None),
        (("1.000", "0.000"), Some(&adapter)),
    ] {
        let cell = h[&(key.0.to_string(), key.1.to_string())];
        let want = eval_as(adapter.map(String::as_str), "bf16");
        assert!((cell - want).abs() < 1e-9, "{key:?}: {cell} vs {want}");
        assert!(
            (cell - at(key.0, key.1)).abs() > 1e-7,
            "{key:?}: bf16 changed nothing"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_random_plane_is_centred_where_asked_and_repeats_with_its_seed() {
    let root = scratch("random");
    let run = |out: &Path, seed: &str| {
        ok(&[
            "landscape",
            "--base",
            &s(&tiny("llama")),
            "--adapter",
            &s(&tiny("llama_lora")),
            "--suite",
            &suite(),
            "--plane",
            "random",
            "--center",
            "end",
            "--grid",
            "3x1",
            "--range",
            "-0.5:0.5,0:0",
            "--seed",
            seed,
            "--bootstrap",
            "10",
            "--out",
            &s(out),
        ]);
    };
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    run(&a, "1");
    run(&b, "1");
    run(&c, "2");
    let plane: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("plane.json")).unwrap()).unwrap();
    // θ_H is the centre: (0, 0); θ₀ projects somewhere off it.
    let end = plane["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "end")
        .unwrap();
    assert!(end["alpha"].as_f64().unwrap().abs() < 1e-9);
    assert!(end["beta"].as_f64().unwrap().abs() < 1e-9);
    assert_eq!(plane["slots"][1]["role"], "u");
    assert_eq!(plane["slots"][2]["role"], "v");
    // The random directions are saved as PEFT adapters; reopened, they give the same Gram entries.
    let u = basin::checkpoint::peft::LoraAdapter::open(a.join("directions/u")).unwrap();
    let v = basin::checkpoint::peft::LoraAdapter::open(a.join("directions/v")).unwrap();
    let g = &plane["plane"]["gram"];
    for (x, y, want) in [(&u, &u, &g[1][1]), (&u, &v, &g[1][2]), (&v, &v, &g[2][2])] {
        let got = basin::experiments::plane::adapter_inner(x, y);
        let want = want.as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    // Random directions in high dimension are nearly orthogonal.
    assert!(plane["cos_uv"].as_f64().unwrap().abs() < 0.2);
    let (ga, gb, gc) = (grid(&a), grid(&b), grid(&c));
    assert_eq!(ga, gb, "same seed, same slice");
    assert_ne!(ga, gc, "another seed, another slice");
    // The centre cell is θ_H.
    let out = root.join("eval.json");
    ok(&[
        "eval",
        "--model",
        &s(&tiny("llama")),
        "--adapter",
        &s(&tiny("llama_lora")),
        "--data",
        &s(&tiny("chat.jsonl")),
        "--out",
        &s(&out),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let centre = ga[&("0.000".to_string(), "0.000".to_string())];
    assert!((centre - v["mean_nll"].as_f64().unwrap()).abs() < 1e-6);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_landscape_requests_fail_with_one_clear_line() {
    let root = scratch("bad");
    let out = s(&root.join("out"));
    let base = s(&tiny("llama"));
    let adapter = s(&tiny("llama_lora"));
    let suite = suite();
    let nope = s(&tiny("nope"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--adapter", &adapter, "--grid", "0x3"], "--grid"),
        (vec!["--adapter", &adapter, "--range", "0:1"], "--range"),
        (vec!["--adapter", &adapter, "--batch", "0"], "batch"),
        (vec!["--target", &base], "θ_H equals θ₀"),
        (vec![], "give θ_H"),
        (vec!["--adapter", &nope], "nope"),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "landscape",
            "--base",
            &base,
            "--suite",
            &suite,
            "--out",
            &out,
        ];
        args.extend_from_slice(&extra);
        let o = basin(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_plane_through_full_checkpoints_matches_dense_pytorch_weights() {
    // θ₀ = curve_pair/a, θ_H = curve_pair/b (a dense delta over every parameter), the bend a
    // LoRA on a: a curve whose endpoint is a checkpoint.
    let root = scratch("pair");
    let pair = fixtures().join("curve_pair");
    let curve = root.join("curve");
    std::fs::create_dir_all(curve.join("bend")).unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(
            fixtures().join("landscape/pair_bend").join(f),
            curve.join("bend").join(f),
        )
        .unwrap();
    }
    let record = serde_json::json!({
        "schema": "basin.curve.v1",
        "kind": "bezier",
        "base": s(&pair.join("a")),
        "endpoint": s(&pair.join("b")),
        "endpoint_kind": "checkpoint",
        "bend": "lora",
    });
    std::fs::write(curve.join("curve.json"), record.to_string()).unwrap();
    let out = root.join("out");
    let stderr = ok(&[
        "landscape",
        "--base",
        &s(&pair.join("a")),
        "--curve",
        &s(&curve),
        "--suite",
        &s(&fixtures().join("landscape/pair_suite.toml")),
        "--grid",
        "3x3",
        "--bootstrap",
        "10",
        "--out",
        &s(&out),
    ]);
    assert!(stderr.contains("9 cells computed"), "{stderr}");
    let want = &reference()["pair"];
    let plane: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plane.json")).unwrap()).unwrap();
    assert_eq!(plane["plane"]["n_dense"], 1);
    let g = &plane["plane"]["gram"];
    for (got, key) in [(&g[0][0], "uu"), (&g[0][1], "ub"), (&g[1][1], "bb")] {
        let (got, w) = (got.as_f64().unwrap(), want["gram"][key].as_f64().unwrap());
        assert!(
            (got - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{key}: {got} vs {w}"
        );
    }
    let bend = plane["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bend")
        .unwrap();
    for k in ["alpha", "beta"] {
        let (got, w) = (
            bend[k].as_f64().unwrap(),
            want["bend_point"][k].as_f64().unwrap(),
        );
        assert!((got - w).abs() < 1e-6, "bend {k}: {got} vs {w}");
    }
    let cells = grid(&out);
    assert_eq!(cells.len(), 9);
    for c in want["cells"].as_array().unwrap() {
        let key = (
            format!("{:.3}", c["alpha"].as_f64().unwrap()),
            format!("{:.3}", c["beta"].as_f64().unwrap()),
        );
        let (got, w) = (cells[&key], c["instruction"].as_f64().unwrap());
        assert!((got - w).abs() < 1e-4, "cell {key:?}: {got} vs PyTorch {w}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
