//! `config.json` of a Hugging Face folder (model types `llama`, `mistral`, `qwen2`, `qwen3`) and
//! its conversion to the resolved [`ModelConfig`].
//!
//! Defaults follow the transformers 5 config classes, so that a field missing from the file
//! means what it means to transformers. RoPE parameters are read in both layouts: transformers 4
//! (`rope_theta` + `rope_scaling`) and transformers 5 (`rope_parameters` holding `rope_theta`).

use std::path::Path;

use serde::Deserialize;

use super::{
    error::{CheckpointError, Result},
    model_config::{Architecture, Llama3RopeScaling, ModelConfig},
    safetensors_file::read_limited,
};

/// Largest `config.json` accepted.
const MAX_CONFIG_BYTES: u64 = 10_000_000;
/// transformers' `default_theta` for the four supported model types.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// Deserialises a field that may be absent (outer `None`) or `null` (`Some(None)`): transformers
/// treats the two differently for some fields (absent: class default; null: derived value).
fn double_option<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Serde mirror of the fields of `config.json` that Basin uses (others are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, deserialize_with = "double_option")]
    pub num_key_value_heads: Option<Option<usize>>,
    #[serde(default, deserialize_with = "double_option")]
    pub head_dim: Option<Option<usize>>,
    pub hidden_act: Option<String>,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    /// transformers 4 layout.
    pub rope_theta: Option<f64>,
    /// transformers 4 layout (`type` or `rope_type`, plus scaling parameters).
    pub rope_scaling: Option<serde_json::Map<String, serde_json::Value>>,
    /// transformers 5 layout (`rope_type`, `rope_theta`, plus scaling parameters).
    pub rope_parameters: Option<serde_json::Map<String, serde_json::Value>>,
    pub partial_rotary_factor: Option<f64>,
    #[serde(default, deserialize_with = "double_option")]
    pub sliding_window: Option<Option<usize>>,
    pub use_sliding_window: Option<bool>,
    pub max_window_layers: Option<usize>,
    pub layer_types: Option<Vec<String>>,
}

impl HfConfig {
    /// Reads and parses a `config.json` (no conversion yet).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_limited(path, MAX_CONFIG_BYTES)?;
        serde_json::from_str(&text)
            .map_err(|e| CheckpointError::format(path, format!("not a valid config.json: {e}")))
    }

    /// Resolves defaults and checks what Basin supports. `path` is named in errors.
    pub fn to_model_config(&self, path: &Path) -> Result<ModelConfig> {
        let unsupported = |msg: String| CheckpointError::unsupported(path, msg);
        let invalid = |msg: String| CheckpointError::format(path, msg);
        let architecture = match self.model_type.as_str() {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            "qwen3" => Architecture::Qwen3,
            other => {
                return Err(unsupported(format!(
                    "model_type `{other}`; supported: llama, mistral, qwen2, qwen3"
                )));
            }
        };
        if let Some(act) = &self.hidden_act
            && act != "silu"
        {
            return Err(unsupported(format!("hidden_act `{act}` (only silu)")));
        }
        if self.mlp_bias == Some(true) {
            return Err(unsupported("mlp_bias = true".into()));
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if v == 0 {
                return Err(invalid(format!("{field} is 0")));
            }
        }
        let heads = self.num_attention_heads;
        // Class defaults when absent; `null` means "same as num_attention_heads".
        let kv_class_default = match architecture {
            Architecture::Llama => None,
            Architecture::Mistral => Some(8),
            Architecture::Qwen2 | Architecture::Qwen3 => Some(32),
        };
        let num_key_value_heads = match self.num_key_value_heads {
            Some(Some(kv)) => kv,
            Some(None) => heads,
            None => kv_class_default.unwrap_or(heads),
        };
        if num_key_value_heads == 0 || !heads.is_multiple_of(num_key_value_heads) {
            return Err(invalid(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
            )));
        }
        // Qwen3Config's class default is 128; the others derive it from hidden / heads.
        let head_dim = match (self.head_dim, architecture) {
            (Some(Some(d)), _) => d,
            (None, Architecture::Qwen3) => 128,
            _ => {
                if !self.hidden_size.is_multiple_of(heads) {
                    return Err(invalid(format!(
                        "no head_dim and hidden_size {} is not a multiple of num_attention_heads {heads}",
                        self.hidden_size
                    )));
                }
                self.hidden_size / heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(invalid(format!(
                "head_dim {head_dim} must be even and positive for RoPE"
            )));
        }
        let max_position_embeddings = self.max_position_embeddings.unwrap_or(match architecture {
            Architecture::Llama => 2048,
            Architecture::Mistral => 131_072,
            Architecture::Qwen2 | Architecture::Qwen3 => 32_768,
        });
        let (rope_theta, rope_scaling) = self.resolve_rope(path, max_position_embeddings)?;
        let (attention_bias, o_proj_bias) = match architecture {
            Architecture::Llama | Architecture::Qwen3 => {
                let b = self.attention_bias.unwrap_or(false);
                (b, b)
            }
            Architecture::Mistral => (false, false),
            Architecture::Qwen2 => (true, false),
        };
        let sliding_window = self.resolve_sliding_window(path, architecture)?;
        let config = ModelConfig {
            architecture,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rope_scaling,
            rope_freq_factors: None,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            // False is the class default of all four model types.
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias,
            o_proj_bias,
            qk_norm: architecture == Architecture::Qwen3,
            sliding_window,
            max_position_embeddings,
        };
        config.check_sizes().map_err(invalid)?;
        Ok(config)
    }

    /// RoPE base and Llama-3 scaling. As in transformers, `rope_scaling` (when set) takes the
    /// place of `rope_parameters`, and `rope_theta` comes from the dict, else the top-level
    /// field, else the default.
    fn resolve_rope(
        &self,
        path: &Path,
        max_position_embeddings: usize,
    ) -> Result<(f64, Option<Llama3RopeScaling>)> {
        let empty = serde_json::Map::new();
        let params = self
            .rope_scaling
            .as_ref()
            .filter(|m| !m.is_empty())
            .or(self.rope_parameters.as_ref())
            .unwrap_or(&empty);
        if params.values().any(|v| v.is_object()) {
            return Err(CheckpointError::unsupported(
                path,
                "per-layer-type RoPE parameters",
            ));
        }
        let num = |key: &str| -> Result<Option<f64>> {
            match params.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                    CheckpointError::format(
                        path,
                        format!("RoPE parameter `{key}` is not a number: {v}"),
                    )
                }),
            }
        };
        let rope_type = params
            .get("rope_type")
            .or_else(|| params.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let theta = num("rope_theta")?
            .or(self.rope_theta)
            .unwrap_or(DEFAULT_ROPE_THETA);
        if !(theta.is_finite() && theta > 0.0) {
            return Err(CheckpointError::format(
                path,
                format!("rope_theta {theta} is not positive"),
            ));
        }
        let partial = num("partial_rotary_factor")?
            .or(self.partial_rotary_factor)
            .unwrap_or(1.0);
        if partial != 1.0 {
            return Err(CheckpointError::unsupported(
                path,
                format!("partial_rotary_factor {partial}"),
            ));
        }
        let scaling = match rope_type {
            "default" => None,
            "llama3" => {
                let need = |key: &str| -> Result<f64> {
                    num(key)?.ok_or_else(|| {
                        CheckpointError::format(path, format!("llama3 RoPE scaling lacks `{key}`"))
                    })
                };
                let original = num("original_max_position_embeddings")?
                    .map_or(max_position_embeddings, |v| v as usize);
                let s = Llama3RopeScaling {
                    factor: need("factor")?,
                    low_freq_factor: need("low_freq_factor")?,
                    high_freq_factor: need("high_freq_factor")?,
                    original_max_position_embeddings: original,
                };
                if !(s.factor > 0.0
                    && s.low_freq_factor > 0.0
                    && s.high_freq_factor > s.low_freq_factor
                    && original > 0)
                {
                    return Err(CheckpointError::format(
                        path,
                        format!("invalid llama3 RoPE scaling {s:?}"),
                    ));
                }
                Some(s)
            }
            other => {
                return Err(CheckpointError::unsupported(
                    path,
                    format!("RoPE type `{other}` (supported: default, llama3)"),
                ));
            }
        };
        Ok((theta, scaling))
    }

    /// One window for all layers, or none. Mixed full/sliding layers are refused.
    fn resolve_sliding_window(
        &self,
        path: &Path,
        architecture: Architecture,
    ) -> Result<Option<usize>> {
        let window = match architecture {
            Architecture::Llama => return Ok(None),
            // MistralConfig's class default is 4096; null turns it off.
            Architecture::Mistral => self.sliding_window.unwrap_or(Some(4096)),
            Architecture::Qwen2 | Architecture::Qwen3 => {
                if !self.use_sliding_window.unwrap_or(false) {
                    return Ok(None);
                }
                let window = self.sliding_window.unwrap_or(Some(4096));
                let Some(w) = window else { return Ok(None) };
                // Layers from `max_window_layers` on slide (transformers' default layer_types).
                let n = self.num_hidden_layers;
                let sliding: Vec<bool> = match &self.layer_types {
                    Some(types) => types.iter().map(|t| t == "sliding_attention").collect(),
                    None => (0..n)
                        .map(|i| i >= self.max_window_layers.unwrap_or(28))
                        .collect(),
                };
                if sliding.iter().all(|s| !s) {
                    return Ok(None);
                }
                if !sliding.iter().all(|s| *s) {
                    return Err(CheckpointError::unsupported(
                        path,
                        "sliding-window attention on only some layers (use_sliding_window with max_window_layers / layer_types)",
                    ));
                }
                Some(w)
            }
        };
        if window == Some(0) {
            return Err(CheckpointError::format(path, "sliding_window is 0"));
        }
        Ok(window)
    }
}

/// Reads `config.json` and resolves it.
pub fn load_model_config(path: &Path) -> Result<ModelConfig> {
    HfConfig::from_file(path)?.to_model_config(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::safetensors_file::tests::{fixtures, temp_dir};

    fn parse(json: &str) -> Result<ModelConfig> {
        let path = Path::new("test/config.json");
        let cfg: HfConfig =
            serde_json::from_str(json).map_err(|e| CheckpointError::format(path, e.to_string()))?;
        cfg.to_model_config(path)
    }

    fn base(model_type: &str, extra: &str) -> String {
        format!(
            r#"{{"model_type":"{model_type}","vocab_size":100,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4{extra}}}"#
        )
    }

    #[test]
    fn transformers5_llama_fixture() {
        let c = load_model_config(&fixtures().join("llama/config.json")).unwrap();
        assert_eq!(c.architecture, Architecture::Llama);
        assert_eq!(
            (
                c.hidden_size,
                c.num_attention_heads,
                c.num_key_value_heads,
                c.head_dim
            ),
            (16, 4, 2, 4)
        );
        assert_eq!(c.rope_theta, 10_000.0);
        assert_eq!(c.rms_norm_eps, 1e-5);
        assert!(c.tie_word_embeddings && !c.attention_bias && !c.qk_norm);
        assert_eq!(c.sliding_window, None);
    }

    #[test]
    fn llama3_rope_both_layouts() {
        let v4 = parse(&base(
            "llama",
            r#","rope_theta":500000.0,"rope_scaling":{"type":"llama3","factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192},"max_position_embeddings":131072"#,
        ))
        .unwrap();
        let v5 = parse(&base(
            "llama",
            r#","rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192},"max_position_embeddings":131072"#,
        ))
        .unwrap();
        assert_eq!(v4, v5);
        assert_eq!(v4.rope_theta, 500_000.0);
        let s = v4.rope_scaling.unwrap();
        assert_eq!(
            (
                s.factor,
                s.low_freq_factor,
                s.high_freq_factor,
                s.original_max_position_embeddings
            ),
            (8.0, 1.0, 4.0, 8192)
        );
        assert_eq!(v4.head_dim, 16);
        assert_eq!(v4.num_key_value_heads, 4);
    }

    #[test]
    fn model_type_specifics() {
        let q2 = parse(&base("qwen2", r#","num_key_value_heads":2,"rope_theta":1000000.0,"sliding_window":4096,"use_sliding_window":false"#)).unwrap();
        assert!(q2.attention_bias && !q2.o_proj_bias && !q2.qk_norm);
        assert_eq!((q2.rope_theta, q2.sliding_window), (1e6, None));
        let q3 = parse(&base(
            "qwen3",
            r#","num_key_value_heads":2,"head_dim":32,"attention_bias":true"#,
        ))
        .unwrap();
        assert!(q3.qk_norm && q3.attention_bias && q3.o_proj_bias);
        assert_eq!(q3.head_dim, 32);
        // Qwen3Config's class default head_dim.
        assert_eq!(
            parse(&base("qwen3", r#","num_key_value_heads":2"#))
                .unwrap()
                .head_dim,
            128
        );
        let m = parse(&base(
            "mistral",
            r#","num_key_value_heads":2,"sliding_window":null"#,
        ))
        .unwrap();
        assert_eq!(m.sliding_window, None);
        let m = parse(&base(
            "mistral",
            r#","num_key_value_heads":null,"sliding_window":1024"#,
        ))
        .unwrap();
        assert_eq!((m.sliding_window, m.num_key_value_heads), (Some(1024), 4));
        let l = parse(&base(
            "llama",
            r#","attention_bias":true,"tie_word_embeddings":true"#,
        ))
        .unwrap();
        assert!(l.attention_bias && l.o_proj_bias && l.tie_word_embeddings);
        let e = parse(&base(
            "qwen2",
            r#","num_key_value_heads":2,"use_sliding_window":true,"max_window_layers":1"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("only some layers"), "{e}");
    }

    #[test]
    fn refusals_name_the_value() {
        let e = parse(&base("gpt2", "")).unwrap_err();
        assert!(matches!(e, CheckpointError::Unsupported { .. }));
        assert!(
            e.to_string().contains("gpt2") && e.to_string().contains("test/config.json"),
            "{e}"
        );
        let e = parse(&base(
            "llama",
            r#","rope_scaling":{"rope_type":"yarn","factor":4.0}"#,
        ))
        .unwrap_err();
        assert!(
            matches!(e, CheckpointError::Unsupported { .. }) && e.to_string().contains("yarn"),
            "{e}"
        );
        let e = parse(&base("llama", r#","num_key_value_heads":3"#)).unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
        // Qwen2Config's class default of 32 KV heads does not divide 4 heads.
        let e = parse(&base("qwen2", "")).unwrap_err();
        assert!(e.to_string().contains("multiple"), "{e}");
        let e = parse(&base("llama", r#","hidden_act":"gelu""#)).unwrap_err();
        assert!(e.to_string().contains("gelu"), "{e}");
    }

    #[test]
    fn malformed_and_missing_files() {
        let dir = temp_dir("cfg");
        let p = dir.join("config.json");
        std::fs::write(&p, "{\"model_type\": \"llama\", ").unwrap();
        let e = load_model_config(&p).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("not a valid config.json"),
            "{e}"
        );
        std::fs::write(&p, r#"{"model_type": "llama"}"#).unwrap();
        let e = load_model_config(&p).unwrap_err().to_string();
        assert!(e.contains("vocab_size"), "{e}");
        std::fs::write(&p, base("phi3", "")).unwrap();
        let e = load_model_config(&p).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("phi3"), "{e}");
        let e = load_model_config(&dir.join("absent.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absent.json"), "{e}");
    }
}
