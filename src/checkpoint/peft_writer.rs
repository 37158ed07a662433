//! Writing PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`) that PEFT's
//! `PeftModel.from_pretrained` loads and [`super::peft::LoraAdapter::open`] reads back, and plain
//! f32 safetensors files (optimizer state). Every file goes through a temporary name and a
//! rename, so a crash never leaves half a file.

use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use super::error::{CheckpointError, Result};

/// Prefix PEFT puts before the base model's parameter names.
const KEY_PREFIX: &str = "base_model.model.";

/// One named f32 tensor to write.
pub struct NamedF32<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a [f32],
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| CheckpointError::io(&tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| CheckpointError::io(&tmp, e))?;
        f.sync_data().map_err(|e| CheckpointError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| CheckpointError::io(path, e))?;
    crate::durable::sync_parent(path).map_err(|e| CheckpointError::io(path, e))
}

/// A safetensors file of f32 tensors (little-endian, as the format requires).
pub fn write_f32_safetensors(path: &Path, tensors: &[NamedF32]) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, data) in &bytes {
        if shape.iter().product::<usize>() * 4 != data.len() {
            return Err(CheckpointError::format(
                path,
                format!("tensor `{name}`: {} bytes for shape {shape:?}", data.len()),
            ));
        }
        let view = TensorView::new(Dtype::F32, shape.clone(), data)
            .map_err(|e| CheckpointError::format(path, format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let serialized = safetensors::serialize(views, None)
        .map_err(|e| CheckpointError::format(path, format!("cannot serialise: {e}")))?;
    write_file_atomic(path, &serialized)
}

/// One adapted module in PEFT's layout: `lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`.
pub struct PeftModule<'a> {
    /// Base module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: &'a str,
    pub rank: usize,
    pub in_features: usize,
    pub out_features: usize,
    pub a: &'a [f32],
    pub b: &'a [f32],
}

/// PEFT's file key of a module's factor.
pub fn peft_key(module: &str, factor: &str) -> String {
    format!("{KEY_PREFIX}{module}.{factor}.weight")
}

/// Writes an adapter folder: `config` as `adapter_config.json` (pretty JSON) and the factors
/// under PEFT's key names in `adapter_model.safetensors`. Creates the folder.
pub fn write_peft_adapter(
    dir: &Path,
    config: &serde_json::Value,
    modules: &[PeftModule],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, e))?;
    let mut tensors = Vec::with_capacity(modules.len() * 2);
    for m in modules {
        tensors.push(NamedF32 {
            name: peft_key(m.module, "lora_A"),
            shape: vec![m.rank, m.in_features],
            data: m.a,
        });
        tensors.push(NamedF32 {
            name: peft_key(m.module, "lora_B"),
            shape: vec![m.out_features, m.rank],
            data: m.b,
        });
    }
    write_f32_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
    let config_path = dir.join("adapter_config.json");
    let mut text = serde_json::to_string_pretty(config)
        .map_err(|e| CheckpointError::format(&config_path, e.to_string()))?;
    text.push('\n');
    write_file_atomic(&config_path, text.as_bytes())
}

/// `adapter_config.json` of a new LoRA adapter as PEFT writes it for a causal LM.
pub fn new_lora_config(
    rank: usize,
    alpha: f64,
    target_modules: &[String],
    use_rslora: bool,
    lora_dropout: f64,
    base_model: &str,
) -> serde_json::Value {
    let mut targets = target_modules.to_vec();
    targets.sort();
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": lora_dropout,
        "target_modules": targets,
        "use_rslora": use_rslora,
        "use_dora": false,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "layers_to_transform": null,
        "layers_pattern": null,
        "revision": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::peft::LoraAdapter;

    #[test]
    fn written_adapter_reads_back() {
        let dir = std::env::temp_dir().join(format!("basin-peft-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a: Vec<f32> = (0..2 * 3).map(|v| v as f32 * 0.5).collect();
        let b: Vec<f32> = (0..4 * 2).map(|v| -(v as f32)).collect();
        let config = new_lora_config(2, 4.0, &["v_proj".into(), "q_proj".into()], false, 0.0, "x");
        write_peft_adapter(
            &dir,
            &config,
            &[PeftModule {
                module: "model.layers.0.self_attn.q_proj",
                rank: 2,
                in_features: 3,
                out_features: 4,
                a: &a,
                b: &b,
            }],
        )
        .unwrap();
        let back = LoraAdapter::open(&dir).unwrap();
        let m = &back.modules["model.layers.0.self_attn.q_proj"];
        assert_eq!(m.a.shape, vec![2, 3]);
        assert_eq!(m.a.data, a);
        assert_eq!(m.b.shape, vec![4, 2]);
        assert_eq!(m.b.data, b);
        assert_eq!(m.scale, 2.0);
        assert_eq!(
            config["target_modules"],
            serde_json::json!(["q_proj", "v_proj"])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
