//! SmolLM2-135M-Instruct (the real Q4_1 GGUF): the model's per-token log-probs against
//! transformers' (f32), given transformers' own token ids and mask. Isolates the model math
//! from tokenisation; `eval_smollm2.rs` covers the whole pipeline.

mod common;

use basin::{
    checkpoint::{gguf_model::GgufCheckpoint, tensors::TensorSource},
    compute::{ComputeDevice, ComputeKind},
    model::{
        load::PathEndpoints,
        logprobs::{MaskedSequence, target_logprobs},
        path_param::PathCoefficients,
        transformer::CausalLm,
        weight_dtype::WeightDType,
    },
};

fn reference_batch() -> (Vec<MaskedSequence>, Vec<Vec<f64>>) {
    let reference = common::smollm2_reference();
    let mut seqs = Vec::new();
    let mut expected = Vec::new();
    for ex in reference["examples"].as_array().unwrap() {
        let ids: Vec<u32> = ex["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mask: Vec<bool> = ex["loss_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() == 1)
            .collect();
        let lps: Vec<f64> = ex["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // token_logprobs[i] predicts input_ids[i + 1]; keep the masked-in targets.
        let exp: Vec<f64> = (1..ids.len())
            .filter(|&i| mask[i])
            .map(|i| lps[i - 1])
            .collect();
        seqs.push(MaskedSequence {
            input_ids: ids,
            target_mask: mask,
        });
        expected.push(exp);
    }
    (seqs, expected)
}

fn check(kind: ComputeKind, batch_size: usize) {
    let ckpt = GgufCheckpoint::open(common::smollm2_gguf()).unwrap();
    let config = ckpt.model_config().unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let model = CausalLm::load(&config, &ckpt as &dyn TensorSource, None, &compute.device).unwrap();
    let (seqs, expected) = reference_batch();
    let mut worst: f64 = 0.0;
    for (chunk, exp_chunk) in seqs.chunks(batch_size).zip(expected.chunks(batch_size)) {
        let got = target_logprobs(&model, chunk, &PathCoefficients::default()).unwrap();
        for (g, e) in got.iter().zip(exp_chunk) {
            worst = worst.max(common::max_abs_diff(g, e));
        }
    }
    eprintln!(
        "{}: batch {batch_size}: max |Δ logprob| = {worst:.3e}",
        compute.label
    );
    assert!(worst <= 2e-4, "max |Δ| {worst} > 2e-4 on {}", compute.label);
}

#[test]
fn cpu_unbatched_matches_transformers() {
    check(ComputeKind::Cpu, 1);
}

#[test]
fn cpu_padded_batch_matches_transformers() {
    check(ComputeKind::Cpu, 8);
}

#[test]
fn gpu_padded_batch_matches_transformers() {
    check(ComputeKind::Gpu, 8);
}

/// `--dtype f16 | bf16` on the real model: transformers with the same weights rounded through the
/// half type (computed in f32) within the f32 parity bound; the distance to the f32 model and to
/// PyTorch's own bf16 evaluation printed for BENCHMARKS.md.
/// Reference: tests/fixtures/smollm2/smollm2-half-weights-logprobs.json
/// (scripts/make_half_weights_reference.py).
/// `examples`: how many of the reference's chats (from the first) are scored.
fn check_half(kind: ComputeKind, dtype: WeightDType, examples: usize) {
    let path = common::fixtures().join("smollm2/smollm2-half-weights-logprobs.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let models = &reference["models"];
    let flat = |key: &str| -> Vec<f64> {
        models[key]["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|ex| ex.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect()
    };
    let ckpt = GgufCheckpoint::open(common::smollm2_gguf()).unwrap();
    let config = ckpt.model_config().unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let model = CausalLm::load_path_until(
        &config,
        &ckpt as &dyn TensorSource,
        &PathEndpoints::default(),
        &compute.device,
        dtype,
        &|| false,
    )
    .unwrap();
    let (mut seqs, mut expected_f32) = reference_batch();
    seqs.truncate(examples);
    expected_f32.truncate(examples);
    let got: Vec<f32> = target_logprobs(&model, &seqs, &PathCoefficients::default())
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    // The flattened references are in chat order: the first chats' targets come first.
    let flat = |key: &str| -> Vec<f64> { flat(key).into_iter().take(got.len()).collect() };
    let want = flat(&format!("weights_{dtype}"));
    let f32_ref: Vec<f64> = expected_f32.into_iter().flatten().collect();
    assert_eq!(want.len(), got.len());
    assert_eq!(f32_ref.len(), got.len());
    let worst = common::max_abs_diff(&got, &want);
    let mean = |r: &[f64]| {
        let total: f64 = got
            .iter()
            .zip(r)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .sum();
        total / r.len() as f64
    };
    eprintln!(
        "{} weights {dtype}: vs transformers with {dtype}-rounded weights max |Δ| {worst:.2e}; vs transformers f32 max {:.2e} mean {:.2e}; vs PyTorch bf16 max {:.2e} mean {:.2e}",
        compute.label,
        common::max_abs_diff(&got, &f32_ref),
        mean(&f32_ref),
        common::max_abs_diff(&got, &flat("torch_bf16")),
        mean(&flat("torch_bf16")),
    );
    assert!(worst <= 2e-4, "max |Δ| {worst} > 2e-4 on {}", compute.label);
}

#[test]
fn cpu_f16_weights_match_transformers_with_f16_rounded_weights() {
    check_half(ComputeKind::Cpu, WeightDType::F16, 8);
}

#[test]
fn cpu_bf16_weights_match_transformers_with_bf16_rounded_weights() {
    check_half(ComputeKind::Cpu, WeightDType::Bf16, 8);
}

/// The first 4 chats only: a lavapipe forward of the 135M model costs about a minute for all 8,
/// and `gpu_padded_batch_matches_transformers` scores all of them in f32.
#[test]
fn gpu_f16_weights_match_transformers_with_f16_rounded_weights() {
    check_half(ComputeKind::Gpu, WeightDType::F16, 4);
}
