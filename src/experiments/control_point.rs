//! A full curve bend's control point θ_b, written as a Hugging Face model folder.
//!
//! A full bend trains Δ_bend on the dense weights of some linear layers; the curve is
//! θ(t) = θ₀ + t·Δ_H + φ(t)·Δ_bend, which is the quadratic Bezier (or one-bend polychain) through
//! the control point θ_b = θ₀ + ½·Δ_H + Δ_bend. `bend/` of a full-bend fit is θ_b as a model
//! folder: the base's `config.json` and tokenizer files, and every base tensor of θ_b in f32 in
//! `model.safetensors`, so transformers loads it and `basin sweep --curve` walks the curve
//! through it. The base must therefore be a Hugging Face folder.

use std::path::Path;

use crate::checkpoint::{
    error::CheckpointError,
    peft::LoraAdapter,
    peft_writer::{NamedF32, write_f32_safetensors},
    tensors::TensorSource,
};
use crate::model::trainable::DenseFactor;

/// The files of a model folder that are not weights and that θ_b's folder copies from the base.
const COPIED_FILES: [&str; 8] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
];

/// The weights file of θ_b's folder; written last (atomically), so its presence means the
/// control point is whole.
pub const CONTROL_POINT_WEIGHTS: &str = "model.safetensors";

/// The curve's endpoint θ_H, for Δ_H.
pub enum Endpoint<'a> {
    /// A LoRA adapter of the base: Δ_H = scale·B·A per adapted module.
    Lora(&'a LoraAdapter),
    /// A full checkpoint θ₁: Δ_H = θ₁ − θ₀ for every tensor.
    Checkpoint(&'a dyn TensorSource),
}

/// Checks that `base` is a Hugging Face model folder (θ_b's folder copies its config).
pub fn check_base(base: &Path) -> Result<(), String> {
    if base.is_dir() && base.join("config.json").is_file() {
        Ok(())
    } else {
        Err(format!(
            "{}: --bend full writes the control point θ_b as a Hugging Face model folder, so the base must be one (config.json + safetensors); convert a GGUF base first, or use --bend lora",
            base.display()
        ))
    }
}

/// Writes θ_b = θ₀ + ½·Δ_H + Δ_bend into `dir` (created if missing): the base folder's config
/// and tokenizer files, then `model.safetensors` with every tensor of `source` (the base's).
pub fn write_control_point(
    dir: &Path,
    base_dir: &Path,
    source: &dyn TensorSource,
    endpoint: &Endpoint,
    bend: &[DenseFactor],
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, e))?;
    for name in COPIED_FILES {
        let from = base_dir.join(name);
        if from.is_file() {
            let to = dir.join(name);
            std::fs::copy(&from, &to).map_err(|e| CheckpointError::io(&to, e))?;
        }
    }
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for name in source.tensor_names() {
        let mut t = source.load_f32(&name)?;
        match endpoint {
            Endpoint::Lora(adapter) => {
                if let Some(m) = name
                    .strip_suffix(".weight")
                    .and_then(|module| adapter.modules.get(module))
                {
                    let (r, inp) = (m.a.shape[0], m.a.shape[1]);
                    let out = m.b.shape[0];
                    if t.shape != [out, inp] {
                        return Err(CheckpointError::format(
                            &adapter.origin,
                            format!(
                                "factors of `{name}` make [{out}, {inp}]; the base tensor is {:?}",
                                t.shape
                            ),
                        ));
                    }
                    let half = (0.5 * m.scale) as f32;
                    for o in 0..out {
                        for k in 0..r {
                            let b = m.b.data[o * r + k] * half;
                            if b == 0.0 {
                                continue;
                            }
                            let row = &m.a.data[k * inp..(k + 1) * inp];
                            let dst = &mut t.data[o * inp..(o + 1) * inp];
                            dst.iter_mut().zip(row).for_each(|(d, a)| *d += b * a);
                        }
                    }
                }
            }
            Endpoint::Checkpoint(other) => {
                let e = other.load_f32(&name)?;
                if e.shape != t.shape {
                    return Err(CheckpointError::format(
                        other.origin(),
                        format!(
                            "tensor `{name}` is {:?}; the base's is {:?}",
                            e.shape, t.shape
                        ),
                    ));
                }
                t.data
                    .iter_mut()
                    .zip(&e.data)
                    .for_each(|(d, e1)| *d += 0.5 * (e1 - *d));
            }
        }
        if let Some(d) = name
            .strip_suffix(".weight")
            .and_then(|module| bend.iter().find(|d| d.module == module))
        {
            if t.shape != [d.out_features, d.in_features] {
                return Err(CheckpointError::format(
                    source.origin(),
                    format!(
                        "the bend of `{name}` is [{}, {}]; the base tensor is {:?}",
                        d.out_features, d.in_features, t.shape
                    ),
                ));
            }
            t.data
                .iter_mut()
                .zip(d.hf())
                .for_each(|(v, delta)| *v += delta);
        }
        tensors.push((name, t.shape, t.data));
    }
    let named: Vec<NamedF32> = tensors
        .iter()
        .map(|(name, shape, data)| NamedF32 {
            name: name.clone(),
            shape: shape.clone(),
            data,
        })
        .collect();
    write_f32_safetensors(&dir.join(CONTROL_POINT_WEIGHTS), &named)
}
