//! Parity with transformers (+ PEFT) on tiny random checkpoints of every supported architecture:
//! llama (tied), llama3 (rope scaling), mistral, qwen2 (q/k/v bias), qwen3 (q/k norm), a sharded
//! bf16 checkpoint, and LoRA / rsLoRA adapters at scales 0, 0.5, 1. Token ids, loss masks and
//! per-token log-probs (≤ 2e-4) through the whole pipeline, on the CPU backend and on wgpu.
//! References: tests/fixtures/tiny/reference.json (scripts/make_tiny_fixtures.py).

mod common;

use basin::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::{EvalSpec, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
    },
    model::transformer::CausalLm,
    text::dataset::load_chat_jsonl,
};

fn check_all(kind: ComputeKind) {
    let dir = common::fixtures().join("tiny");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let examples = load_chat_jsonl(dir.join("chat.jsonl")).unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let mut checked = 0;
    for entry in reference["models"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let opened = open_model(&dir.join(entry["folder"].as_str().unwrap())).unwrap();
        let adapter = entry["adapter_folder"].as_str().map(|a| {
            let adapter = LoraAdapter::open(dir.join(a)).unwrap();
            adapter
                .validate_against(opened.tensors.as_ref(), &opened.config)
                .unwrap();
            adapter
        });
        let scale = entry["lora_scale"].as_f64().unwrap_or(0.0) as f32;
        let template = chat_template_of(&opened.tokenizer).unwrap();
        let items = encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap();
        let model = CausalLm::load(
            &opened.config,
            opened.tensors.as_ref(),
            adapter.as_ref(),
            &compute.device,
        )
        .unwrap();
        let spec = EvalSpec {
            batch_size: 4,
            point: PathPointSpec {
                lora: adapter.iter().map(|_| scale).collect(),
                dense: vec![],
            },
            keep_token_logprobs: true,
        };
        let scores = evaluate(&model, &items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
        let mut worst: f64 = 0.0;
        for ((item, score), want) in items
            .iter()
            .zip(&scores.examples)
            .zip(entry["examples"].as_array().unwrap())
        {
            assert_eq!(item.id, want["id"].as_str().unwrap());
            let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
            let mask: Vec<bool> = serde_json::from_value(want["target_mask"].clone()).unwrap();
            assert_eq!(
                item.sequence.input_ids, ids,
                "{name}/{}: token ids",
                item.id
            );
            assert_eq!(
                item.sequence.target_mask, mask,
                "{name}/{}: loss mask",
                item.id
            );
            let lps: Vec<f64> = serde_json::from_value(want["token_logprobs"].clone()).unwrap();
            worst = worst.max(common::max_abs_diff(
                score.token_logprobs.as_ref().unwrap(),
                &lps,
            ));
        }
        let want_nll = entry["mean_nll"].as_f64().unwrap();
        eprintln!(
            "{} {name}: max |Δ logprob| {worst:.2e}, mean NLL {:.6} vs {want_nll:.6}",
            compute.label, scores.mean_nll
        );
        assert!(
            worst <= 2e-4,
            "{name} on {}: max |Δ| {worst}",
            compute.label
        );
        assert!(
            (scores.mean_nll - want_nll).abs() <= 2e-5,
            "{name}: mean NLL {} vs {want_nll}",
            scores.mean_nll
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn tiny_checkpoints_match_transformers_on_cpu() {
    check_all(ComputeKind::Cpu);
}

#[test]
fn tiny_checkpoints_match_transformers_on_gpu() {
    check_all(ComputeKind::Gpu);
}

/// The tiny Llama 3 checkpoint converted to GGUF as llama.cpp does (Q/K rows permuted, RoPE
/// scaling as `rope_freqs.weight`, tokenizer as `tokenizer.ggml.*`;
/// scripts/make_tiny_gguf_fixture.py) gives transformers' log-probs of the original weights.
fn check_gguf(kind: ComputeKind) {
    let dir = common::fixtures().join("tiny");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let want = reference["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "llama3")
        .unwrap();
    let examples = load_chat_jsonl(dir.join("chat.jsonl")).unwrap();
    let opened = open_model(&common::fixtures().join("tiny_gguf/llama3.gguf")).unwrap();
    assert!(opened.config.rope_freq_factors.is_some());
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let items = encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        None,
        &compute.device,
    )
    .unwrap();
    let spec = EvalSpec {
        batch_size: 3,
        point: PathPointSpec::default(),
        keep_token_logprobs: true,
    };
    let scores = evaluate(&model, &items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
    let mut worst: f64 = 0.0;
    for ((item, score), want) in items
        .iter()
        .zip(&scores.examples)
        .zip(want["examples"].as_array().unwrap())
    {
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        assert_eq!(item.sequence.input_ids, ids, "token ids of {}", item.id);
        let lps: Vec<f64> = serde_json::from_value(want["token_logprobs"].clone()).unwrap();
        worst = worst.max(common::max_abs_diff(
            score.token_logprobs.as_ref().unwrap(),
            &lps,
        ));
    }
    eprintln!("{} llama3.gguf: max |Δ logprob| {worst:.2e}", compute.label);
    assert!(worst <= 2e-4, "{worst}");
}

#[test]
fn tiny_llama3_gguf_matches_transformers_on_cpu() {
    check_gguf(ComputeKind::Cpu);
}

#[test]
fn tiny_llama3_gguf_matches_transformers_on_gpu() {
    check_gguf(ComputeKind::Gpu);
}

/// A 6-token sliding window (the tiny mistral with `sliding_window: 6`; its chats are 20+ tokens,
/// so every layer's mask cuts keys off; the window moves the reference's log-probs by up to
/// 3.4 nats) gives transformers' log-probs (tests/fixtures/tiny_sliding, made by
/// scripts/make_sliding_window_fixture.py).
fn check_sliding_window(kind: ComputeKind) {
    let dir = common::fixtures().join("tiny_sliding");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let window = reference["sliding_window"].as_u64().unwrap() as usize;
    assert!(reference["window_effect_max_abs"].as_f64().unwrap() > 1e-2);
    let opened = open_model(&dir.join("mistral_window6")).unwrap();
    assert_eq!(opened.config.sliding_window, Some(window));
    let examples = load_chat_jsonl(common::fixtures().join("tiny/chat.jsonl")).unwrap();
    let template = chat_template_of(&opened.tokenizer).unwrap();
    let items = encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        None,
        &compute.device,
    )
    .unwrap();
    let spec = EvalSpec {
        batch_size: 4,
        point: PathPointSpec::default(),
        keep_token_logprobs: true,
    };
    let scores = evaluate(&model, &items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
    let mut worst: f64 = 0.0;
    let want_rows = reference["examples"].as_array().unwrap();
    assert_eq!(want_rows.len(), items.len());
    for ((item, score), want) in items.iter().zip(&scores.examples).zip(want_rows) {
        assert_eq!(item.id, want["id"].as_str().unwrap());
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        assert!(ids.len() > 3 * window);
        assert_eq!(item.sequence.input_ids, ids, "{}: token ids", item.id);
        let lps: Vec<f64> = serde_json::from_value(want["token_logprobs"].clone()).unwrap();
        worst = worst.max(common::max_abs_diff(
            score.token_logprobs.as_ref().unwrap(),
            &lps,
        ));
    }
    eprintln!(
        "{} sliding window {window}: max |Δ logprob| {worst:.2e}",
        compute.label
    );
    assert!(
        worst <= 2e-4,
        "sliding window on {}: max |Δ| {worst}",
        compute.label
    );
    let want_nll = reference["mean_nll"].as_f64().unwrap();
    assert!((scores.mean_nll - want_nll).abs() <= 2e-5);
}

#[test]
fn a_sliding_window_shorter_than_the_chats_matches_transformers_on_cpu() {
    check_sliding_window(ComputeKind::Cpu);
}

#[test]
fn a_sliding_window_shorter_than_the_chats_matches_transformers_on_gpu() {
    check_sliding_window(ComputeKind::Gpu);
}
