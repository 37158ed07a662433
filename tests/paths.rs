//! Paths through weight space, checked against transformers + PEFT references and against
//! checkpoints written out at the same point:
//! - full-weight path base → (base merged with a LoRA adapter): at t it must equal the LoRA
//!   adapter at scale t (ΔW is linear in the scale), i.e. PEFT's log-probs at t = 0.5 and 1;
//! - full-weight path at t = 0.5 equals `eval` of the averaged checkpoint written to disk;
//! - two-adapter path: t = 0 is adapter A alone, t = 1 adapter B alone.
//! On the CPU backend and on wgpu.

mod common;

use std::path::Path;

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::{EvalItem, EvalSpec, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
        path::PathKind,
    },
    model::{load::PathEndpoints, transformer::CausalLm},
    text::dataset::load_chat_jsonl,
};

fn tiny(name: &str) -> std::path::PathBuf {
    common::fixtures().join("tiny").join(name)
}

fn reference_nll(name: &str) -> (f64, Vec<f64>) {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny("reference.json")).unwrap()).unwrap();
    let m = reference["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap();
    let per: Vec<f64> = m["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["mean_nll"].as_f64().unwrap())
        .collect();
    (m["mean_nll"].as_f64().unwrap(), per)
}

fn items_for(model_dir: &Path) -> Vec<EvalItem> {
    let opened = open_model(model_dir).unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let examples = load_chat_jsonl(tiny("chat.jsonl")).unwrap();
    encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap()
}

fn nll(model: &CausalLm, items: &[EvalItem], point: PathPointSpec) -> (f64, Vec<f64>) {
    let spec = EvalSpec {
        batch_size: 4,
        point,
        keep_token_logprobs: false,
    };
    let scores = evaluate(model, items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
    (
        scores.mean_nll,
        scores.examples.iter().map(|e| e.mean_nll).collect(),
    )
}

fn check(kind: ComputeKind) {
    let compute = ComputeDevice::new(kind).unwrap();
    let dir = std::env::temp_dir().join(format!("basin-paths-{}-{kind:?}", std::process::id()));
    let base = open_model(&tiny("llama")).unwrap();
    let adapter = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let items = items_for(&tiny("llama"));

    // θ₁ = base merged with the adapter, written as an ordinary checkpoint.
    let merged_dir = dir.join("merged");
    common::write_model_folder(
        &tiny("llama"),
        &merged_dir,
        &common::merged_weights(base.tensors.as_ref(), &adapter, 1.0),
    );
    let merged = open_model(&merged_dir).unwrap();
    let endpoints = PathEndpoints {
        adapters: vec![],
        checkpoints: vec![merged.tensors.as_ref()],
    };
    let full = CausalLm::load_path(
        &base.config,
        base.tensors.as_ref(),
        &endpoints,
        &compute.device,
    )
    .unwrap();
    for (t, name) in [
        (0.0, "llama_lora@0.0"),
        (0.5, "llama_lora@0.5"),
        (1.0, "llama_lora@1.0"),
    ] {
        let (got, per) = nll(&full, &items, PathKind::FullWeight.point(t, &[]));
        let (want, want_per) = reference_nll(name);
        eprintln!(
            "{}: full-weight t={t}: {got:.6} vs PEFT {want:.6}",
            compute.label
        );
        assert!((got - want).abs() < 1e-4, "t={t}: {got} vs {want}");
        for (a, b) in per.iter().zip(&want_per) {
            assert!((a - b).abs() < 2e-4, "t={t}: {a} vs {b}");
        }
    }

    // The averaged checkpoint, written out and evaluated as a plain model, equals t = 0.5.
    let avg_dir = dir.join("average");
    common::write_model_folder(
        &tiny("llama"),
        &avg_dir,
        &common::merged_weights(base.tensors.as_ref(), &adapter, 0.5),
    );
    let avg = open_model(&avg_dir).unwrap();
    let avg_model =
        CausalLm::load(&avg.config, avg.tensors.as_ref(), None, &compute.device).unwrap();
    let (avg_nll, avg_per) = nll(&avg_model, &items, PathPointSpec::default());
    let (mid_nll, mid_per) = nll(&full, &items, PathKind::FullWeight.point(0.5, &[]));
    assert!((avg_nll - mid_nll).abs() < 1e-5, "{avg_nll} vs {mid_nll}");
    for (a, b) in avg_per.iter().zip(&mid_per) {
        assert!((a - b).abs() < 1e-5);
    }

    // Two adapters: t = 0 is A (LoRA) alone, t = 1 is B (rsLoRA) alone.
    let b = LoraAdapter::open(tiny("llama_lora_rslora")).unwrap();
    let endpoints = PathEndpoints {
        adapters: vec![&adapter, &b],
        checkpoints: vec![],
    };
    let two = CausalLm::load_path(
        &base.config,
        base.tensors.as_ref(),
        &endpoints,
        &compute.device,
    )
    .unwrap();
    for (t, name) in [(0.0, "llama_lora@1.0"), (1.0, "llama_lora_rslora@1.0")] {
        let (got, _) = nll(&two, &items, PathKind::TwoAdapter.point(t, &[]));
        let (want, _) = reference_nll(name);
        assert!(
            (got - want).abs() < 1e-4,
            "two-adapter t={t}: {got} vs {want}"
        );
    }
    // A LoRA path batches several t values in one pass: per-sequence coefficients.
    let lora = CausalLm::load(
        &base.config,
        base.tensors.as_ref(),
        Some(&adapter),
        &compute.device,
    )
    .unwrap();
    let (at_half, _) = nll(&lora, &items, PathKind::Lora.point(0.5, &[]));
    let (want_half, _) = reference_nll("llama_lora@0.5");
    assert!((at_half - want_half).abs() < 1e-4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn paths_match_references_on_cpu() {
    check(ComputeKind::Cpu);
}

#[test]
fn paths_match_references_on_gpu() {
    check(ComputeKind::Gpu);
}

/// Cancel reaches loading: the loader asks before each layer and stops within one, and a sweep
/// cancelled before its model is built ends as cancelled with no point computed.
#[test]
fn cancel_stops_model_loading() {
    use basin::experiments::{
        sweep::{SweepError, SweepHooks},
        sweep_job::{SweepJobError, SweepRequest, run_sweep_job},
    };
    use basin::model::error::ModelError;
    use std::cell::Cell;

    let base = open_model(&tiny("llama")).unwrap();
    let device = ComputeDevice::new(ComputeKind::Cpu).unwrap().device;
    let asked = Cell::new(0usize);
    let r = CausalLm::load_path_until(
        &base.config,
        base.tensors.as_ref(),
        &PathEndpoints::default(),
        &device,
        &|| {
            asked.set(asked.get() + 1);
            asked.get() > 1
        },
    );
    assert!(matches!(r, Err(ModelError::Cancelled)), "{:?}", r.err());
    assert_eq!(asked.get(), 2, "stopped at the second layer");
    assert!(base.config.num_hidden_layers > 1);

    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let out = std::env::temp_dir().join(format!("basin-cancel-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let req = SweepRequest {
        base: demo.join("base"),
        adapter: Some(demo.join("hacker")),
        adapter_b: None,
        target: None,
        checkpoints: None,
        curve: None,
        suite: demo.join("suite/suite.toml"),
        t: "0:1:3".into(),
        device: ComputeKind::Cpu,
        batch: 8,
        shard: None,
        bootstrap: 10,
        seed: 0,
        out: out.clone(),
        max_tokens: 512,
        t_per_pass: 1,
        allow_resume_change: false,
    };
    let (stop, abort) = (CancelFlag::new(), CancelFlag::new());
    abort.cancel();
    let started = Cell::new(false);
    let hooks = SweepHooks {
        progress: &|_| {},
        on_result: &|_| {},
        stop_after_point: &stop,
        abort: &abort,
    };
    let r = run_sweep_job(&req, &hooks, &|_| started.set(true));
    assert!(
        matches!(
            r,
            Err(SweepJobError::Sweep(SweepError::Cancelled {
                done: 0,
                total: 3
            }))
        ),
        "{:?}",
        r.err()
    );
    assert!(!started.get(), "no model was built");
    assert!(!out.join("results.jsonl").exists());
}
