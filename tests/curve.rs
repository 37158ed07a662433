//! Curve fitting (`basin curve fit`): the bend's gradients along θ(t) = θ₀ + t·ΔW + φ(t)·Δ_bend
//! against finite differences, a fit on the tiny llama that lowers the loss in the middle of
//! the path while leaving both ends where they were, sweeps along fitted curves, and the known
//! answer: a pair of independently trained models whose barrier the fit removes as a PyTorch
//! fit of the same recipe does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        curve::CurveKind,
        eval::EvalItem,
        inputs::{chat_template_of, encode_examples},
        train::new_lora_factors,
    },
    model::{
        load::PathEndpoints,
        logprobs::target_nll_sum,
        packing::PackedRow,
        path_param::PathCoefficients,
        trainable::{DenseFactor, LoraFactors, attach, attach_dense, dense_gradients, gradients},
        transformer::CausalLm,
    },
    text::dataset::load_chat_jsonl,
};
use common::fixtures;

fn tiny(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

fn items() -> Vec<EvalItem> {
    let opened = open_model(&tiny("llama")).unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let examples = load_chat_jsonl(tiny("chat.jsonl")).unwrap();
    encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap()
}

fn rows(items: &[EvalItem]) -> Vec<PackedRow> {
    items
        .iter()
        .enumerate()
        .map(|(i, it)| PackedRow::single(i, &it.sequence))
        .collect()
}

/// Slot 0 (the endpoint) at t, slot 1 (the bend) at φ(t), one t per row.
fn curve_coeffs(kind: CurveKind, ts: &[f64]) -> PathCoefficients {
    PathCoefficients {
        lora: vec![
            ts.iter().map(|&t| t as f32).collect(),
            ts.iter().map(|&t| kind.phi(t) as f32).collect(),
        ],
        ..Default::default()
    }
}

fn value(t: burn::tensor::Tensor<1>) -> f64 {
    f64::from(t.into_data().try_to_vec::<f32>().unwrap()[0])
}

#[test]
fn bend_gradients_along_the_curve_match_finite_differences() {
    let opened = open_model(&tiny("llama")).unwrap();
    let endpoint = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu)
        .unwrap()
        .device
        .autodiff();
    let mut model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        Some(&endpoint),
        &device,
    )
    .unwrap();
    model.ensure_lora_slots(2);
    let mut bend = new_lora_factors(
        &model,
        &["q_proj".into(), "v_proj".into(), "down_proj".into()],
        2,
        2.0,
        9,
    )
    .unwrap();
    for (k, f) in bend.iter_mut().enumerate() {
        for (i, b) in f.b.iter_mut().enumerate() {
            *b = (((i * 29 + k * 5) % 13) as f32 / 13.0 - 0.5) * 0.3;
        }
    }
    let items = items();
    let rows = rows(&items[..4]);
    for kind in [CurveKind::Bezier, CurveKind::Polychain] {
        let ts = [0.15, 0.4, 0.65, 0.9];
        let coeffs = curve_coeffs(kind, &ts);
        let loss_at = |model: &mut CausalLm, factors: &[LoraFactors]| -> f64 {
            let _l = attach(model, 1, factors).unwrap();
            value(target_nll_sum(model, &rows, &coeffs).unwrap().0)
        };
        let leaves = attach(&mut model, 1, &bend).unwrap();
        let (nll, _) = target_nll_sum(&model, &rows, &coeffs).unwrap();
        let grads = gradients(&leaves, &nll.backward()).unwrap();
        drop(leaves);
        let what = format!("{kind:?}");
        let checked = common::check_lora_gradients_by_finite_differences(
            &bend,
            &grads,
            |f| loss_at(&mut model, f),
            &what,
        );
        assert!(checked >= 4, "{kind:?}: only {checked} entries checked");

        // At the ends the bend has no effect: no gradient, and the loss is the straight path's.
        let ends = curve_coeffs(kind, &[0.0, 1.0, 0.0, 1.0]);
        let leaves = attach(&mut model, 1, &bend).unwrap();
        let (nll, _) = target_nll_sum(&model, &rows, &ends).unwrap();
        let grads = gradients(&leaves, &nll.clone().backward()).unwrap();
        assert!(
            grads
                .iter()
                .all(|(a, b)| a.iter().chain(b).all(|&g| g == 0.0))
        );
        let straight = PathCoefficients {
            lora: vec![vec![0.0, 1.0, 0.0, 1.0], vec![0.0; 4]],
            ..Default::default()
        };
        let (plain, _) = target_nll_sum(&model, &rows, &straight).unwrap();
        assert!((value(nll) - value(plain)).abs() < 1e-4);
    }
}

/// A full (dense) bend at dense index 0 with the LoRA endpoint in slot 0: the gradient of each
/// dense delta is φ(t) times the weight's gradient, checked against central finite differences
/// at its largest entries; at t = 0 and 1 the bend gets no gradient.
#[test]
fn dense_bend_gradients_match_finite_differences() {
    let opened = open_model(&tiny("llama")).unwrap();
    let endpoint = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu)
        .unwrap()
        .device
        .autodiff();
    let mut model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        Some(&endpoint),
        &device,
    )
    .unwrap();
    let targets = ["q_proj".to_string(), "down_proj".to_string()];
    let mut bend = DenseFactor::zeros_for(&model, &targets);
    assert_eq!(bend.len(), 2 * opened.config.num_hidden_layers);
    for (k, d) in bend.iter_mut().enumerate() {
        for (i, w) in d.w.iter_mut().enumerate() {
            *w = (((i * 31 + k * 7) % 17) as f32 / 17.0 - 0.5) * 0.2;
        }
    }
    let items = items();
    let rows = rows(&items[..4]);
    for (kind, t) in [(CurveKind::Bezier, 0.35), (CurveKind::Polychain, 0.6)] {
        let coeffs = PathCoefficients {
            lora: vec![vec![t as f32; rows.len()]],
            dense: vec![kind.phi(t) as f32],
            ..Default::default()
        };
        let loss_at = |model: &mut CausalLm, factors: &[DenseFactor]| -> f64 {
            let _l = attach_dense(model, 0, factors).unwrap();
            value(target_nll_sum(model, &rows, &coeffs).unwrap().0)
        };
        let leaves = attach_dense(&mut model, 0, &bend).unwrap();
        let (nll, _) = target_nll_sum(&model, &rows, &coeffs).unwrap();
        let grads = dense_gradients(&leaves, &nll.backward()).unwrap();
        drop(leaves);
        let mut checked = 0;
        for (m, g) in grads.iter().enumerate() {
            let (i, &gi) = g
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
                .unwrap();
            if gi.abs() < 1e-3 {
                continue;
            }
            let eps = 1e-2f32;
            let (mut plus, mut minus) = (bend.clone(), bend.clone());
            plus[m].w[i] += eps;
            minus[m].w[i] -= eps;
            let fd =
                (loss_at(&mut model, &plus) - loss_at(&mut model, &minus)) / (2.0 * f64::from(eps));
            let rel = (fd - f64::from(gi)).abs() / f64::from(gi.abs());
            assert!(
                rel < 2e-2,
                "{kind:?} {}[{i}]: autodiff {gi} vs finite difference {fd}",
                bend[m].module
            );
            checked += 1;
        }
        assert!(checked >= 3, "{kind:?}: only {checked} entries checked");
    }
    for t in [0.0f32, 1.0] {
        let coeffs = PathCoefficients {
            lora: vec![vec![t; rows.len()]],
            dense: vec![CurveKind::Bezier.phi(f64::from(t)) as f32],
            ..Default::default()
        };
        let leaves = attach_dense(&mut model, 0, &bend).unwrap();
        let (nll, _) = target_nll_sum(&model, &rows, &coeffs).unwrap();
        let grads = dense_gradients(&leaves, &nll.backward()).unwrap();
        assert!(grads.iter().flatten().all(|&g| g == 0.0), "t = {t}");
    }
}

fn basin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_basin"))
}

/// Mean masked NLL per target of `items` at t (endpoint coefficient t, bend coefficient φ).
fn mean_nll(model: &CausalLm, items: &[EvalItem], t: f32, phi: f32) -> f64 {
    let rows = rows(items);
    let coeffs = PathCoefficients {
        lora: vec![vec![t; rows.len()], vec![phi; rows.len()]],
        ..Default::default()
    };
    let (nll, targets) = target_nll_sum(model, &rows, &coeffs).unwrap();
    value(nll) / targets as f64
}

#[test]
fn a_fitted_bezier_lowers_the_loss_mid_path_and_keeps_the_ends() {
    let out = std::env::temp_dir().join(format!("basin-curve-fit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let args = |out: &Path| -> Vec<String> {
        [
            "curve",
            "fit",
            "--base",
            tiny("llama").to_str().unwrap(),
            "--adapter",
            tiny("llama_lora").to_str().unwrap(),
            "--data",
            tiny("chat.jsonl").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "40",
            "--batch",
            "4",
            "--lr",
            "1e-2",
            "--bend-rank",
            "4",
            "--seed",
            "1",
            "--checkpoint-every",
            "16",
        ]
        .map(String::from)
        .to_vec()
    };
    let run = basin().args(args(&out)).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // --checkpoint-every counts optimizer steps: 40 steps of 4 chats, every 16 steps.
    let checkpoints = basin::experiments::train_store::list_checkpoints(&out);
    assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
    let curve: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("curve.json")).unwrap()).unwrap();
    assert_eq!(curve["kind"], "bezier");
    assert_eq!(curve["bend"], "lora");
    // Every step records the t of each of its sequences; stratified: one per quarter.
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(out.join("fit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 40);
    let ts: Vec<f64> = steps[0]["t"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert_eq!(ts.len(), 4);
    for (k, t) in ts.iter().enumerate() {
        assert!(*t >= k as f64 / 4.0 && *t < (k + 1) as f64 / 4.0, "{ts:?}");
    }
    // ... and the loss at each of them: per-sequence means whose target-weighted mean is the
    // step's loss.
    for step in &steps {
        let losses = step["t_loss"].as_array().unwrap();
        assert_eq!(losses.len(), step["t"].as_array().unwrap().len());
        let values: Vec<f64> = losses.iter().map(|l| l.as_f64().unwrap()).collect();
        assert!(
            values.iter().all(|l| l.is_finite() && *l > 0.0),
            "{values:?}"
        );
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &l| (a.min(l), b.max(l)));
        let loss = step["loss"].as_f64().unwrap();
        assert!(
            loss >= lo - 1e-6 && loss <= hi + 1e-6,
            "{loss} outside {values:?}"
        );
    }

    // The bend is a PEFT adapter of the base: load endpoint (slot 0) and bend (slot 1).
    let opened = open_model(&tiny("llama")).unwrap();
    let endpoint = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let bend = LoraAdapter::open(out.join("bend")).unwrap();
    assert!(!out.join("final").exists() && !out.join("train.jsonl").exists());
    let device = ComputeDevice::new(ComputeKind::Cpu).unwrap().device;
    let model = CausalLm::load_path(
        &opened.config,
        opened.tensors.as_ref(),
        &PathEndpoints {
            adapters: vec![&endpoint, &bend],
            checkpoints: Vec::new(),
        },
        &device,
    )
    .unwrap();
    let items = items();
    let phi = CurveKind::Bezier.phi(0.5) as f32;
    let (straight, curved) = (
        mean_nll(&model, &items, 0.5, 0.0),
        mean_nll(&model, &items, 0.5, phi),
    );
    assert!(
        curved < straight - 0.1,
        "mid-path loss: straight {straight}, curve {curved}"
    );
    // Rerunning the finished fit computes nothing and keeps the bend.
    let again = basin().args(args(&out)).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 computed now"));
    let _ = std::fs::remove_dir_all(&out);
}

fn results(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sweeps `suite` from `base` along the fitted curve in `root/fit` (into `root/curve`) and along
/// the straight line given by `line_args` (into `root/line`), at `t` with 50 bootstrap samples.
fn sweep_curve_and_line(base: &Path, suite: &Path, root: &Path, line_args: Vec<String>, t: &str) {
    let curve_args = vec![
        "--curve".to_string(),
        root.join("fit").display().to_string(),
    ];
    for (name, path_args) in [("curve", curve_args), ("line", line_args)] {
        let out = basin()
            .arg("sweep")
            .arg("--base")
            .arg(base)
            .arg("--suite")
            .arg(suite)
            .args(path_args)
            .args(["--t", t, "--bootstrap", "50", "--out"])
            .arg(root.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sweeps the demo suite at t = 0, ½, 1 along the fitted curve in `root/fit` and along the
/// straight line (`line_args`), checks the curve's `run.json` path, and compares the
/// instruction loss: within `end_tol` of the line's at both ends, more than `inside_min` away
/// from it in the middle.
fn compare_curve_sweep_with_line(
    root: &Path,
    line_args: Vec<String>,
    path: &str,
    end_tol: f64,
    inside_min: f64,
) {
    let demo = common::repo().join("assets/demo");
    let suite = demo.join("suite/suite.toml");
    sweep_curve_and_line(&demo.join("base"), &suite, root, line_args, "0:1:3");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("curve/run.json")).unwrap()).unwrap();
    assert_eq!(record["spec"]["path"], path);
    // results.jsonl: one line per (t, metric).
    let instruction = |dir: &Path| -> Vec<(f64, f64)> {
        results(dir)
            .iter()
            .filter(|r| r["metric"] == "instruction")
            .map(|r| (r["t"].as_f64().unwrap(), r["value"].as_f64().unwrap()))
            .collect()
    };
    let (curve, line) = (
        instruction(&root.join("curve")),
        instruction(&root.join("line")),
    );
    assert_eq!(curve.len(), 3);
    for ((t, cv), (tl, lv)) in curve.iter().zip(&line) {
        assert_eq!(t, tl);
        if *t == 0.0 || *t == 1.0 {
            assert!((cv - lv).abs() <= end_tol, "t = {t}: curve {cv}, line {lv}");
        } else {
            assert!(
                (cv - lv).abs() > inside_min,
                "t = {t}: the bend changed nothing"
            );
        }
    }
}

/// `basin sweep --curve DIR` walks the fitted curve: at t = 0 and t = 1 every metric is the
/// straight path's, in between the bend moves them.
#[test]
fn sweep_walks_a_fitted_curve_between_the_same_ends() {
    let root = std::env::temp_dir().join(format!("basin-curve-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let demo = common::repo().join("assets/demo");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let fit = basin()
        .args([
            "curve",
            "fit",
            "--base",
            &s(&demo.join("base")),
            "--adapter",
        ])
        .arg(demo.join("hacker"))
        .args([
            "--data",
            &s(&demo.join("train.jsonl")),
            "--out",
            &s(&root.join("fit")),
        ])
        .args(["--steps", "6", "--lr", "3e-3", "--kind", "polychain"])
        .output()
        .unwrap();
    assert!(
        fit.status.success(),
        "{}",
        String::from_utf8_lossy(&fit.stderr)
    );
    // Exactly the line's values at the ends.
    compare_curve_sweep_with_line(
        &root,
        vec!["--adapter".to_string(), s(&demo.join("hacker"))],
        "polychain",
        0.0,
        0.0,
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A curve to a full checkpoint (the demo hacker merged into the demo base): the bend is a LoRA,
/// the endpoint a dense delta at one t per batch. The curve sweep equals the full-weight line at
/// both ends and differs inside.
#[test]
fn a_curve_to_a_full_checkpoint_fits_and_sweeps() {
    let root = std::env::temp_dir().join(format!("basin-curve-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let demo = common::repo().join("assets/demo");
    let base = open_model(&demo.join("base")).unwrap();
    let adapter = LoraAdapter::open(demo.join("hacker")).unwrap();
    let target = root.join("merged");
    common::write_model_folder(
        &demo.join("base"),
        &target,
        &common::merged_weights(base.tensors.as_ref(), &adapter, 1.0),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let fit = basin()
        .args([
            "curve",
            "fit",
            "--base",
            &s(&demo.join("base")),
            "--target",
            &s(&target),
        ])
        .args([
            "--data",
            &s(&demo.join("train.jsonl")),
            "--out",
            &s(&root.join("fit")),
        ])
        .args(["--steps", "6", "--lr", "3e-3"])
        .output()
        .unwrap();
    assert!(
        fit.status.success(),
        "{}",
        String::from_utf8_lossy(&fit.stderr)
    );
    let curve: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("fit/curve.json")).unwrap()).unwrap();
    assert_eq!(curve["endpoint_kind"], "checkpoint");
    // One t per batch: every sequence of a step shares it.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(root.join("fit/fit.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let ts = first["t"].as_array().unwrap();
    assert_eq!(ts.len(), 8);
    assert!(ts.iter().all(|t| t == &ts[0]));

    compare_curve_sweep_with_line(
        &root,
        vec!["--target".to_string(), s(&target)],
        "bezier_checkpoint",
        1e-5,
        1e-4,
    );

    // `basin generate --curve`: at t = 0 the curve is the base, at t = 1 the endpoint.
    let prompts = s(&demo.join("instructions_train.jsonl"));
    let generate = |name: &str, model_args: &[String]| -> Vec<serde_json::Value> {
        let out = root.join(format!("{name}.jsonl"));
        let run = basin()
            .arg("generate")
            .args(model_args)
            .args([
                "--data",
                &prompts,
                "--greedy",
                "--max-new-tokens",
                "8",
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let on_curve = |t: &str| {
        vec![
            "--base".to_string(),
            s(&demo.join("base")),
            "--curve".to_string(),
            s(&root.join("fit")),
            "--t".to_string(),
            t.to_string(),
        ]
    };
    let ids = |rows: &[serde_json::Value]| -> Vec<serde_json::Value> {
        rows.iter().map(|r| r["token_ids"].clone()).collect()
    };
    let start = generate("curve0", &on_curve("0"));
    assert_eq!(start[0]["t"], 0.0);
    assert_eq!(
        ids(&start),
        ids(&generate(
            "base",
            &["--model".into(), s(&demo.join("base"))]
        ))
    );
    let end = generate("curve1", &on_curve("1"));
    assert_eq!(
        ids(&end),
        ids(&generate("end", &["--model".into(), s(&target)]))
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Column `metric` of a sweep's `summary.csv`, in t order.
fn summary_column(dir: &Path, metric: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == metric).unwrap();
    lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect()
}

/// Max over t of the loss minus the mean of its two ends.
fn barrier(losses: &[f64]) -> f64 {
    let max = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max - (losses[0] + losses[losses.len() - 1]) / 2.0
}

/// The known answer (tests/fixtures/curve_pair, made by scripts/make_curve_pair.py): two tiny
/// llamas trained independently, with a loss barrier of > 2 nats on the straight line between
/// them on held-out chats. `basin curve fit --target` with the recipe of the PyTorch
/// (Garipov-style) fit in reference.json must bring the held-out barrier under 10% of the line's
/// and give the PyTorch curve's losses within 0.05 nats.
#[test]
fn the_fitted_curve_removes_a_known_barrier_as_the_pytorch_fit_does() {
    let pair = fixtures().join("curve_pair");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair.join("reference.json")).unwrap())
            .unwrap();
    let floats = |key: &str| -> Vec<f64> {
        reference[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let fit = &reference["fit"];
    let root = std::env::temp_dir().join(format!("basin-curve-pair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let targets: Vec<&str> = fit["bend_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let out = basin()
        .args(["curve", "fit", "--base", &s(&pair.join("a")), "--target"])
        .arg(pair.join("b"))
        .arg("--data")
        .arg(pair.join("train.jsonl"))
        .arg("--out")
        .arg(root.join("fit"))
        .args(["--kind", fit["kind"].as_str().unwrap()])
        .args(["--bend-rank", &fit["bend_rank"].to_string()])
        .args(["--bend-alpha", &fit["bend_alpha"].to_string()])
        .args(["--bend-targets", &targets.join(",")])
        .args(["--steps", &fit["steps"].to_string()])
        .args(["--batch", &fit["batch"].to_string()])
        .args(["--lr", &fit["lr"].to_string()])
        .args(["--schedule", fit["schedule"].as_str().unwrap()])
        .args(["--max-grad-norm", &fit["max_grad_norm"].to_string()])
        .args(["--seed", &fit["seed"].to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sweep_curve_and_line(
        &pair.join("a"),
        &pair.join("suite.toml"),
        &root,
        vec!["--target".to_string(), s(&pair.join("b"))],
        "0:1:11",
    );
    let line = summary_column(&root.join("line"), "instruction");
    let curve = summary_column(&root.join("curve"), "instruction");
    let curve_fit_data = summary_column(&root.join("curve"), "fit_data");
    assert_eq!(line.len(), 11);
    // The straight line is PyTorch's (same weights, same mask): the pair is what the script made.
    for (b, t) in line.iter().zip(floats("line_heldout_nll")) {
        assert!((b - t).abs() < 1e-4, "line: {line:?}");
    }
    let line_barrier = barrier(&line);
    assert!(line_barrier >= 0.5, "line barrier {line_barrier}");
    let curve_barrier = barrier(&curve);
    assert!(
        curve_barrier < 0.1 * line_barrier,
        "held-out barrier: curve {curve_barrier} vs line {line_barrier} ({curve:?})"
    );
    // Against the PyTorch fit: the held-out barrier and the highest held-out loss inside the
    // path; on the fit's own data (what both fits minimise), the loss at every t.
    let torch_curve = floats("curve_heldout_nll");
    assert!((curve_barrier - barrier(&torch_curve)).abs() < 0.05);
    let inside_max = |v: &[f64]| v[1..v.len() - 1].iter().copied().fold(f64::MIN, f64::max);
    assert!(
        (inside_max(&curve) - inside_max(&torch_curve)).abs() < 0.05,
        "held-out inside max: Basin {curve:?} vs PyTorch {torch_curve:?}"
    );
    let torch_fit_data = floats("curve_train_nll");
    for (b, t) in curve_fit_data.iter().zip(&torch_fit_data) {
        assert!(
            (b - t).abs() < 0.05,
            "fit data: Basin {curve_fit_data:?} vs PyTorch {torch_fit_data:?}"
        );
    }
    barrier_shows_on_the_landscape(&pair, &root, line_barrier);
    let _ = std::fs::remove_dir_all(&root);
}

/// The endpoints plane through the pair and the fitted bend: two low corners at θ₀ (0, 0) and
/// θ_H (1, 0), the barrier between them on the straight segment, and a valley where the curve
/// passes (the cells near its midpoint's projection sit well below the barrier).
fn barrier_shows_on_the_landscape(pair: &Path, root: &Path, line_barrier: f64) {
    let out = root.join("landscape");
    let o = basin()
        .args(["landscape", "--base"])
        .arg(pair.join("a"))
        .arg("--curve")
        .arg(root.join("fit"))
        .arg("--suite")
        .arg(pair.join("suite.toml"))
        .args(["--grid", "9x9", "--bootstrap", "10", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cells: Vec<(f64, f64, f64)> =
        basin::experiments::sweep_store::read_results(&out.join("grid.jsonl"))
            .unwrap()
            .values()
            .filter(|r| r.metric == "instruction")
            .map(|r| (r.t, r.beta.unwrap(), r.value))
            .collect();
    assert_eq!(cells.len(), 81);
    let at = |a: f64, b: f64| {
        cells
            .iter()
            .find(|c| (c.0 - a).abs() < 1e-9 && (c.1 - b).abs() < 1e-9)
            .unwrap()
            .2
    };
    let (start, end, middle) = (at(0.0, 0.0), at(1.0, 0.0), at(0.5, 0.0));
    assert!(
        middle - start.max(end) > 0.5 * line_barrier,
        "no barrier on the segment: {start} {middle} {end}"
    );
    let plane: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plane.json")).unwrap()).unwrap();
    let mid = plane["curve"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| (p["t"].as_f64().unwrap() - 0.5).abs() < 1e-9)
        .unwrap();
    let (ma, mb) = (
        mid["alpha"].as_f64().unwrap(),
        mid["beta"].as_f64().unwrap(),
    );
    assert!(
        mb.abs() > 0.05,
        "the curve leaves the segment: midpoint at ({ma}, {mb})"
    );
    let valley = cells
        .iter()
        .filter(|c| (c.0 - ma).abs() <= 0.25 && (c.1 - mb).abs() <= 0.25)
        .map(|c| c.2)
        .fold(f64::INFINITY, f64::min);
    assert!(
        middle - valley > 0.5 * line_barrier,
        "no valley along the curve: barrier cell {middle}, best cell near ({ma}, {mb}) {valley}"
    );
}

/// `--bend full` on the known-answer pair: the dense bend (every linear weight, zero at the
/// start) fitted with the recipe of reference.json's `full_bend` (PyTorch's loop in
/// scripts/make_curve_pair.py) brings the held-out barrier under 10% of the line's and matches
/// PyTorch's dense fit within 0.05 nats; `bend/` is the control point θ_b = θ₀ + ½Δ_H + Δ_bend
/// as a model folder, and the sweep through it starts and ends at the pair's models.
#[test]
fn a_full_bend_removes_the_known_barrier_as_the_pytorch_dense_fit_does() {
    let pair = fixtures().join("curve_pair");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pair.join("reference.json")).unwrap())
            .unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let full = &reference["full_bend"];
    let fit = &full["fit"];
    assert_eq!(fit["bend"], "full");
    let root = std::env::temp_dir().join(format!("basin-curve-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let targets: Vec<&str> = fit["bend_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let fit_args = |out: &Path, steps: &str| {
        let mut c = basin();
        c.args(["curve", "fit", "--bend", "full", "--base"])
            .arg(pair.join("a"))
            .arg("--target")
            .arg(pair.join("b"))
            .arg("--data")
            .arg(pair.join("train.jsonl"))
            .arg("--out")
            .arg(out)
            .args(["--kind", fit["kind"].as_str().unwrap()])
            .args(["--bend-targets", &targets.join(",")])
            .args(["--steps", steps])
            .args(["--batch", &fit["batch"].to_string()])
            .args(["--lr", &fit["lr"].to_string()])
            .args(["--schedule", fit["schedule"].as_str().unwrap()])
            .args(["--max-grad-norm", &fit["max_grad_norm"].to_string()])
            .args(["--seed", &fit["seed"].to_string()]);
        c
    };
    let out = fit_args(&root.join("fit"), &fit["steps"].to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record = basin::experiments::curve::CurveRecord::read(&root.join("fit")).unwrap();
    assert_eq!(
        record.bend,
        basin::experiments::curve::BendKind::Full,
        "{record:?}"
    );

    // θ_b on disk: every tensor of the base, ½(θ_a + θ_b) plus the bend where there is one.
    let open = |p: &Path| basin::checkpoint::safetensors_file::SafetensorsFile::open(p).unwrap();
    let (a, b) = (
        open(&pair.join("a/model.safetensors")),
        open(&pair.join("b/model.safetensors")),
    );
    let bend_dir = root.join("fit/bend");
    let (theta_b, delta) = (
        open(&bend_dir.join("model.safetensors")),
        open(&bend_dir.join("bend_delta.safetensors")),
    );
    assert!(bend_dir.join("config.json").is_file() && bend_dir.join("tokenizer.json").is_file());
    assert_eq!(theta_b.tensors().len(), a.tensors().len());
    let mut bent = 0;
    for name in a.tensors().keys() {
        let (va, vb, vt) = (
            a.load_f32(name).unwrap().data,
            b.load_f32(name).unwrap().data,
            theta_b.load_f32(name).unwrap().data,
        );
        let d = delta.tensors().contains_key(name).then(|| {
            bent += 1;
            delta.load_f32(name).unwrap().data
        });
        for i in 0..va.len() {
            let want = 0.5 * (va[i] + vb[i]) + d.as_ref().map_or(0.0, |d| d[i]);
            assert!(
                (vt[i] - want).abs() < 1e-5,
                "{name}[{i}]: {} vs {want}",
                vt[i]
            );
        }
        if let Some(d) = &d {
            assert!(
                d.iter().any(|v| v.abs() > 1e-4),
                "{name}: the bend did not move"
            );
        }
    }
    assert_eq!(bent, 2 * targets.len(), "one delta per target linear layer");

    // Along the curve: the ends are the pair's own models, the barrier is gone, and the losses
    // are PyTorch's dense fit's.
    let o = basin()
        .args(["sweep", "--base"])
        .arg(pair.join("a"))
        .arg("--suite")
        .arg(pair.join("suite.toml"))
        .arg("--curve")
        .arg(root.join("fit"))
        .args(["--t", "0:1:11", "--bootstrap", "20", "--out"])
        .arg(root.join("curve"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("curve/run.json")).unwrap()).unwrap();
    assert_eq!(run["spec"]["path"], "bezier_checkpoint_full", "{run}");
    let curve = summary_column(&root.join("curve"), "instruction");
    let curve_fit_data = summary_column(&root.join("curve"), "fit_data");
    let line = floats(&reference["line_heldout_nll"]);
    assert!((curve[0] - line[0]).abs() < 1e-4 && (curve[10] - line[10]).abs() < 1e-4);
    let (line_barrier, curve_barrier) = (barrier(&line), barrier(&curve));
    assert!(
        curve_barrier < 0.1 * line_barrier,
        "held-out barrier: curve {curve_barrier} vs line {line_barrier} ({curve:?})"
    );
    let torch_curve = floats(&full["curve_heldout_nll"]);
    eprintln!(
        "along the dense-bend curve: held-out Basin {curve:?}, PyTorch {torch_curve:?}; fit data Basin {curve_fit_data:?}"
    );
    assert!(
        (curve_barrier - barrier(&torch_curve)).abs() < 0.05,
        "barrier: Basin {curve:?} vs PyTorch {torch_curve:?}"
    );
    let inside_max = |v: &[f64]| v[1..v.len() - 1].iter().copied().fold(f64::MIN, f64::max);
    assert!(
        (inside_max(&curve) - inside_max(&torch_curve)).abs() < 0.05,
        "held-out inside max: Basin {curve:?} vs PyTorch {torch_curve:?}"
    );
    let torch_fit_data = floats(&full["curve_train_nll"]);
    for (b, t) in curve_fit_data.iter().zip(&torch_fit_data) {
        assert!(
            (b - t).abs() < 0.05,
            "fit data: Basin {curve_fit_data:?} vs PyTorch {torch_fit_data:?}"
        );
    }

    // Interrupted after its checkpoint at step 150 (its final state gone), a fit resumes from
    // the checkpoint's Δ_bend and AdamW moments and ends with the same bend.
    let resumed = root.join("resumed");
    let steps = fit["steps"].to_string();
    let every = (fit["steps"].as_u64().unwrap() / 2).to_string();
    let o = fit_args(&resumed, &steps)
        .args(["--checkpoint-every", &every])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let checkpoints: Vec<_> = std::fs::read_dir(resumed.join("checkpoints"))
        .unwrap()
        .collect();
    assert_eq!(checkpoints.len(), 2, "a checkpoint at steps 150 and 300");
    std::fs::remove_dir_all(resumed.join("bend")).unwrap();
    for c in checkpoints {
        let c = c.unwrap().path();
        if c.ends_with("samples-002400") {
            std::fs::remove_dir_all(c).unwrap();
        }
    }
    let o = fit_args(&resumed, &steps)
        .args(["--checkpoint-every", &every])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = open(&resumed.join("bend/bend_delta.safetensors"));
    for name in delta.tensors().keys() {
        assert_eq!(
            again.load_f32(name).unwrap().data,
            delta.load_f32(name).unwrap().data,
            "{name}: the resumed fit ends elsewhere"
        );
    }
    assert!(resumed.join("bend/model.safetensors").is_file());
    let _ = std::fs::remove_dir_all(&root);
}

/// A full bend refuses a GGUF base (its bend/ is a Hugging Face folder copied from the base)
/// and a target list naming no linear layer, before any folder is written.
#[test]
fn a_full_bend_refuses_what_it_cannot_write() {
    let pair = fixtures().join("curve_pair");
    let root = std::env::temp_dir().join(format!("basin-curve-full-bad-{}", std::process::id()));
    let gguf = fixtures().join("tiny_gguf/llama3.gguf");
    let o = basin()
        .args(["curve", "fit", "--bend", "full", "--base"])
        .arg(&gguf)
        .arg("--target")
        .arg(pair.join("b"))
        .arg("--data")
        .arg(pair.join("train.jsonl"))
        .arg("--out")
        .arg(root.join("gguf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("Hugging Face model folder"), "{err}");
    assert!(!root.join("gguf").exists());
    let o = basin()
        .args([
            "curve",
            "fit",
            "--bend",
            "full",
            "--bend-targets",
            "lm_head",
            "--base",
        ])
        .arg(pair.join("a"))
        .arg("--target")
        .arg(pair.join("b"))
        .arg("--data")
        .arg(pair.join("train.jsonl"))
        .arg("--out")
        .arg(root.join("targets"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("lm_head"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
