//! `--dtype f16|bf16`: linear weights and vocabulary tables stored in half precision, every
//! computation in f32. On the tiny checkpoints of every architecture (+ a LoRA adapter):
//! - the weights really are stored in the half type on the device;
//! - a half model gives exactly the log-probs of an f32 model whose stored weights were rounded
//!   through that type first (so the only change is the weights' rounding, nothing else);
//! - against transformers' f32 reference it moves by that rounding's size: more than 0, at most
//!   the bound each type's mantissa allows (a checkpoint stored in bf16 does not move beyond the
//!   f32 parity bound: its values fit either half type);
//! - on wgpu (lavapipe here) f16 works the same way, and bf16 is refused with a clear error.

mod common;

use std::path::Path;

use basin::{
    checkpoint::{
        open::open_model,
        peft::LoraAdapter,
        tensors::{HostTensor, TensorSource},
    },
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::{EvalItem, EvalSpec, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
    },
    model::{load::PathEndpoints, transformer::CausalLm, weight_dtype::WeightDType},
    text::dataset::load_chat_jsonl,
};
use burn::tensor::DType;

/// Whether the loader stores `name` in the chosen type (linear weights, embedding, head).
fn stored_in_half(name: &str) -> bool {
    name.ends_with("_proj.weight")
        || name == "model.embed_tokens.weight"
        || name == "lm_head.weight"
}

/// A checkpoint whose tensors come out changed by `edit` (name, values).
struct Edited<'a> {
    inner: &'a dyn TensorSource,
    edit: &'a (dyn Fn(&str, &mut [f32]) + Sync),
}

impl TensorSource for Edited<'_> {
    fn origin(&self) -> &Path {
        self.inner.origin()
    }
    fn tensor_names(&self) -> Vec<String> {
        self.inner.tensor_names()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.tensor_shape(name)
    }
    fn tensor_dtype(&self, name: &str) -> Option<String> {
        self.inner.tensor_dtype(name)
    }
    fn load_f32(&self, name: &str) -> basin::checkpoint::error::Result<HostTensor> {
        let mut t = self.inner.load_f32(name)?;
        (self.edit)(name, &mut t.data);
        Ok(t)
    }
}

/// What storing as `dtype` does to a tensor's values.
fn round_through(dtype: WeightDType, name: &str, data: &mut [f32]) {
    if !stored_in_half(name) {
        return;
    }
    for v in data {
        *v = match dtype {
            WeightDType::F32 => *v,
            WeightDType::F16 => half::f16::from_f32(*v).to_f32(),
            WeightDType::Bf16 => half::bf16::from_f32(*v).to_f32(),
        };
    }
}

fn token_logprobs(model: &CausalLm, items: &[EvalItem], scale: Option<f32>) -> Vec<f64> {
    let spec = EvalSpec {
        batch_size: 4,
        point: PathPointSpec {
            lora: scale.into_iter().collect(),
            dense: vec![],
        },
        keep_token_logprobs: true,
    };
    let scores = evaluate(model, items, &spec, &|_| {}, &CancelFlag::new()).unwrap();
    scores
        .examples
        .iter()
        .flat_map(|e| e.token_logprobs.clone().unwrap())
        .map(f64::from)
        .collect()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Every tiny checkpoint stored as `dtype` on `kind`; `bound`: the most its log-probs may move
/// from transformers' f32 ones.
fn check(kind: ComputeKind, dtype: WeightDType, bound: f64) {
    let dir = common::fixtures().join("tiny");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let examples = load_chat_jsonl(dir.join("chat.jsonl")).unwrap();
    let compute = ComputeDevice::new(kind).unwrap();
    let mut checked = 0;
    for entry in reference["models"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        // One LoRA scale per adapter is enough here (the f32 test covers the rest).
        if entry["adapter_folder"].is_string() && !name.ends_with("@1.0") {
            continue;
        }
        let opened = open_model(&dir.join(entry["folder"].as_str().unwrap())).unwrap();
        let adapter = entry["adapter_folder"]
            .as_str()
            .map(|a| LoraAdapter::open_for(dir.join(a), opened.tensors.as_ref(), &opened.config))
            .transpose()
            .unwrap();
        let template = chat_template_of(&opened.tokenizer).unwrap();
        let items = encode_examples(&opened.tokenizer, &template, &examples, 4096).unwrap();
        let endpoints = PathEndpoints {
            adapters: adapter.iter().collect(),
            checkpoints: vec![],
        };
        let load = |source: &dyn TensorSource, dtype| {
            CausalLm::load_path_until(
                &opened.config,
                source,
                &endpoints,
                &compute.device,
                dtype,
                &|| false,
            )
            .unwrap()
        };
        let half = load(opened.tensors.as_ref(), dtype);
        let layer = &half.layers[0];
        assert_eq!(layer.self_attn.q_proj.weight.base.dtype(), dtype.burn());
        assert_eq!(layer.mlp.down_proj.weight.base.dtype(), dtype.burn());
        for (_, block) in half.embed_tokens.blocks() {
            assert_eq!(block.base.dtype(), dtype.burn());
        }
        assert_eq!(layer.input_layernorm.weight.base.dtype(), DType::F32);
        if let Some(lora) = layer.self_attn.q_proj.lora.iter().flatten().next() {
            assert_eq!(lora.a.dtype(), DType::F32);
        }
        let scale = adapter.as_ref().map(|_| 1.0f32);
        let got = token_logprobs(&half, &items, scale);
        let rounded = Edited {
            inner: opened.tensors.as_ref(),
            edit: &|name, data| round_through(dtype, name, data),
        };
        let twin = token_logprobs(&load(&rounded, WeightDType::F32), &items, scale);
        let want: Vec<f64> = entry["examples"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| serde_json::from_value::<Vec<f64>>(e["token_logprobs"].clone()).unwrap())
            .collect();
        let vs_twin = max_diff(&got, &twin);
        let vs_reference = max_diff(&got, &want);
        eprintln!(
            "{} {dtype} {name}: max |Δ| vs f32 of rounded weights {vs_twin:.1e}, vs transformers f32 {vs_reference:.2e}",
            compute.label
        );
        assert!(vs_twin <= 1e-6, "{name}: {vs_twin}");
        if opened
            .tensors
            .tensor_dtype("model.embed_tokens.weight")
            .as_deref()
            == Some("BF16")
        {
            // A checkpoint stored in bf16 fits either half type (almost) exactly: f32 parity.
            assert!(
                vs_reference <= 2e-4,
                "{name}: |Δ| vs transformers {vs_reference}"
            );
        } else {
            assert!(
                vs_reference > 1e-6 && vs_reference <= bound,
                "{name}: |Δ| vs transformers {vs_reference}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn f16_weights_on_cpu_change_only_the_weights_rounding() {
    check(ComputeKind::Cpu, WeightDType::F16, 5e-3);
}

#[test]
fn bf16_weights_on_cpu_change_only_the_weights_rounding() {
    check(ComputeKind::Cpu, WeightDType::Bf16, 4e-2);
}

#[test]
fn f16_weights_on_gpu_change_only_the_weights_rounding() {
    check(ComputeKind::Gpu, WeightDType::F16, 5e-3);
}

#[test]
fn bf16_on_the_gpu_is_refused_with_the_reason() {
    let dir = common::fixtures().join("tiny/llama");
    let opened = open_model(&dir).unwrap();
    let compute = ComputeDevice::new(ComputeKind::Gpu).unwrap();
    let err = CausalLm::load_path_until(
        &opened.config,
        opened.tensors.as_ref(),
        &PathEndpoints::default(),
        &compute.device,
        WeightDType::Bf16,
        &|| false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--dtype bf16 runs on the CPU only") && err.contains("--dtype f16"),
        "{err}"
    );
}

#[test]
fn a_weight_beyond_f16s_range_is_refused_naming_it() {
    let huge = |name: &str, data: &mut [f32]| {
        if name == "model.layers.1.mlp.up_proj.weight" {
            data[3] = 70000.0;
        }
    };
    let opened = open_model(&common::fixtures().join("tiny/llama")).unwrap();
    let compute = ComputeDevice::new(ComputeKind::Cpu).unwrap();
    let load = |dtype| {
        CausalLm::load_path_until(
            &opened.config,
            &Edited {
                inner: opened.tensors.as_ref(),
                edit: &huge,
            },
            &PathEndpoints::default(),
            &compute.device,
            dtype,
            &|| false,
        )
    };
    let err = load(WeightDType::F16).unwrap_err().to_string();
    assert!(
        err.contains("`model.layers.1.mlp.up_proj.weight`")
            && err.contains("70000")
            && err.contains("65504"),
        "{err}"
    );
    // bf16 has f32's range.
    assert!(load(WeightDType::Bf16).is_ok());
}
