//! Paths through weight space, checked against transformers + PEFT references and against
//! checkpoints written out at the same point:
//! - full-weight path base → (base merged with a LoRA adapter): at t it must equal the LoRA
//!   adapter at scale t (ΔW is linear in the scale), i.e. PEFT's log-probs at t = 0.5 and 1;
//! - full-weight path at t = 0.5 equals `eval` of the averaged checkpoint written to disk;
//! - two-adapter path: t = 0 is adapter A alone, t = 1 adapter B alone.
//!
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
        basin::model::weight_dtype::WeightDType::F32,
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
        dtype: Default::default(),
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

/// Vocabulary tables in row blocks (what the loader does when one device buffer cannot hold the
/// embedding or the output head) give the same log-probs and next-token logits as the tables
/// whole: a tied (llama) and an untied (qwen3) model, a LoRA path and a full-weight path whose
/// head moves, on the CPU and on wgpu. A 16 KiB limit (every linear layer of the tiny models
/// fits) splits their 423-row tables into several blocks.
fn row_blocks_agree(kind: ComputeKind) {
    use basin::model::path_param::PathCoefficients;
    let compute = ComputeDevice::new(kind).unwrap();
    let dir = std::env::temp_dir().join(format!("basin-blocks-{}-{kind:?}", std::process::id()));
    let adapter = LoraAdapter::open(tiny("llama_lora")).unwrap();
    let llama = open_model(&tiny("llama")).unwrap();
    let merged_dir = dir.join("merged");
    common::write_model_folder(
        &tiny("llama"),
        &merged_dir,
        &common::merged_weights(llama.tensors.as_ref(), &adapter, 1.0),
    );
    let merged = open_model(&merged_dir).unwrap();
    let qwen3 = open_model(&tiny("qwen3")).unwrap();
    let cases: Vec<(
        &str,
        &basin::checkpoint::open::OpenedModel,
        PathEndpoints,
        PathPointSpec,
    )> = vec![
        (
            "qwen3",
            &qwen3,
            PathEndpoints::default(),
            PathPointSpec::default(),
        ),
        (
            "llama + LoRA at 0.7",
            &llama,
            PathEndpoints {
                adapters: vec![&adapter],
                checkpoints: vec![],
            },
            PathKind::Lora.point(0.7, &[]),
        ),
        (
            "llama full-weight at 0.5",
            &llama,
            PathEndpoints {
                adapters: vec![],
                checkpoints: vec![merged.tensors.as_ref()],
            },
            PathKind::FullWeight.point(0.5, &[]),
        ),
    ];
    for (name, opened, endpoints, point) in cases {
        let load = |max: Option<u64>| {
            CausalLm::load_path_stored(
                &opened.config,
                opened.tensors.as_ref(),
                &endpoints,
                &compute.device,
                basin::model::weight_dtype::WeightDType::F32,
                &|| false,
                max,
            )
            .unwrap()
        };
        let (whole, split) = (load(None), load(Some(16 * 1024)));
        assert_eq!(whole.embed_tokens.block_count(), 1, "{name}");
        assert!(split.embed_tokens.block_count() >= 3, "{name}");
        assert_eq!(split.embed_tokens.rows(), opened.config.vocab_size);
        let items = items_for(&opened.path);
        let (a, a_per) = nll(&whole, &items, point.clone());
        let (b, b_per) = nll(&split, &items, point.clone());
        assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
        for (x, y) in a_per.iter().zip(&b_per) {
            assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
        }
        // Next-token logits of a cached decode, two prompts of different lengths.
        let prompts: Vec<Vec<u32>> = items
            .iter()
            .take(2)
            .map(|i| i.sequence.input_ids.clone())
            .collect();
        let coeffs = PathCoefficients {
            lora: point.lora.iter().map(|&c| vec![c; prompts.len()]).collect(),
            dense: point.dense.clone(),
            lora_dropout: 0.0,
        };
        let (_, la) = whole.start_decoding(&prompts, &coeffs).unwrap();
        let (_, lb) = split.start_decoding(&prompts, &coeffs).unwrap();
        assert_eq!(la.len(), prompts.len() * opened.config.vocab_size);
        let worst = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{name}: decode logits differ by {worst}");
    }
    // A weight that is not a vocabulary table cannot be split: refused, named, before reading.
    let err = CausalLm::load_path_stored(
        &qwen3.config,
        qwen3.tensors.as_ref(),
        &PathEndpoints::default(),
        &compute.device,
        basin::model::weight_dtype::WeightDType::F32,
        &|| false,
        Some(4096),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("q_proj.weight") && err.contains("4096 bytes") && err.contains("--device cpu"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn vocabulary_tables_in_row_blocks_agree_on_cpu() {
    row_blocks_agree(ComputeKind::Cpu);
}

#[test]
fn vocabulary_tables_in_row_blocks_agree_on_gpu() {
    row_blocks_agree(ComputeKind::Gpu);
}

/// A model whose embedding and output head are each larger than one wgpu buffer may be on this
/// device (151,936 × 256 f32 = 148 MiB; lavapipe binds at most 128 MiB): the loader holds them
/// in row blocks by itself, and the GPU's log-probs equal the CPU's, where nothing is split.
/// Before row blocks this panicked ("can't allocate buffer of size 155582464").
#[test]
fn a_vocabulary_larger_than_one_gpu_buffer_is_split_by_the_loader() {
    let dir = std::env::temp_dir().join(format!("basin-wide-vocab-{}", std::process::id()));
    let (vocab, hidden, inter, head_dim) = (151_936usize, 256usize, 512usize, 128usize);
    // Weights in [−0.03, 0.03) from a multiplicative hash of a running index.
    let mut next = 0u64;
    let mut random = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                next += 1;
                let h = next.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                (h as f32 / (1u64 << 24) as f32 - 0.5) * 0.06
            })
            .collect()
    };
    let mut weights = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![vocab, hidden],
            random(vocab * hidden),
        ),
        (
            "lm_head.weight".to_string(),
            vec![vocab, hidden],
            random(vocab * hidden),
        ),
        (
            "model.norm.weight".to_string(),
            vec![hidden],
            vec![1.0; hidden],
        ),
    ];
    let p = "model.layers.0";
    for (name, shape) in [
        ("self_attn.q_proj", vec![2 * head_dim, hidden]),
        ("self_attn.k_proj", vec![head_dim, hidden]),
        ("self_attn.v_proj", vec![head_dim, hidden]),
        ("self_attn.o_proj", vec![hidden, 2 * head_dim]),
        ("mlp.gate_proj", vec![inter, hidden]),
        ("mlp.up_proj", vec![inter, hidden]),
        ("mlp.down_proj", vec![hidden, inter]),
    ] {
        let n = shape.iter().product();
        weights.push((format!("{p}.{name}.weight"), shape, random(n)));
    }
    for (name, n) in [
        ("input_layernorm", hidden),
        ("post_attention_layernorm", hidden),
        ("self_attn.q_norm", head_dim),
        ("self_attn.k_norm", head_dim),
    ] {
        weights.push((format!("{p}.{name}.weight"), vec![n], vec![1.0; n]));
    }
    common::write_model_folder(&tiny("qwen3"), &dir, &weights);
    drop(weights);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    for (k, v) in [
        ("vocab_size", vocab),
        ("hidden_size", hidden),
        ("intermediate_size", inter),
        ("num_hidden_layers", 1),
        ("num_attention_heads", 2),
        ("num_key_value_heads", 1),
        ("head_dim", head_dim),
    ] {
        config[k] = serde_json::json!(v);
    }
    config["layer_types"] = serde_json::json!(["full_attention"]);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    let opened = open_model(&dir).unwrap();
    let items: Vec<EvalItem> = items_for(&dir).into_iter().take(2).collect();
    let mut per_device = Vec::new();
    for kind in [ComputeKind::Cpu, ComputeKind::Gpu] {
        let compute = ComputeDevice::new(kind).unwrap();
        let model = CausalLm::load(
            &opened.config,
            opened.tensors.as_ref(),
            None,
            &compute.device,
        )
        .unwrap();
        let table_bytes = (vocab * hidden * 4) as u64;
        let max = basin::compute::max_buffer_bytes(&compute.device);
        let want_blocks = max.map_or(1, |m| table_bytes.div_ceil(m - m % (hidden as u64 * 4)));
        assert_eq!(
            model.embed_tokens.block_count() as u64,
            want_blocks,
            "{kind:?}, limit {max:?}"
        );
        assert_eq!(model.output_param().block_count() as u64, want_blocks);
        per_device.push(nll(&model, &items, PathPointSpec::default()));
    }
    let (cpu, gpu) = (&per_device[0], &per_device[1]);
    assert!(
        cpu.0.is_finite() && (cpu.0 - gpu.0).abs() < 1e-4,
        "cpu {cpu:?} vs gpu {gpu:?}"
    );
    for (a, b) in cpu.1.iter().zip(&gpu.1) {
        assert!((a - b).abs() < 2e-4, "cpu {a} vs gpu {b}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
