//! SmolLM2-135M-Instruct (the real Q4_1 GGUF): the model's per-token log-probs against
//! transformers' (f32), given transformers' own token ids and mask. Isolates the model math
//! from tokenisation; `eval_smollm2.rs` covers the whole pipeline.

mod common;

use basin::{
    checkpoint::{gguf_model::GgufCheckpoint, tensors::TensorSource},
    compute::{ComputeDevice, ComputeKind},
    model::{
        logprobs::{MaskedSequence, target_logprobs},
        path_param::PathCoefficients,
        transformer::CausalLm,
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
