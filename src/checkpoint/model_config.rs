//! The resolved model configuration: what the model code needs, whatever file it came from
//! (`config.json` of a Hugging Face folder or the metadata of a GGUF file).

use serde::{Deserialize, Serialize};

/// Architecture family. All are decoder-only transformers with RMSNorm, RoPE (rotate-half
/// convention, as in transformers), SwiGLU MLP and grouped-query attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Mistral,
    /// q/k/v projections carry a bias.
    Qwen2,
    /// per-head RMSNorm on q and k (`q_norm`, `k_norm`) before RoPE.
    Qwen3,
}

/// Llama-3 style RoPE frequency scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// Per-frequency divisors of the inverse frequencies (`[head_dim / 2]`), as llama.cpp stores
    /// Llama 3 RoPE scaling in GGUF files (`rope_freqs.weight`). Applied after `rope_scaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_freq_factors: Option<Vec<f32>>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// q/k/v projections have a bias (qwen2, or llama with `attention_bias`).
    pub attention_bias: bool,
    /// o_proj has a bias (llama with `attention_bias`).
    pub o_proj_bias: bool,
    /// per-head RMSNorm on q and k (qwen3).
    pub qk_norm: bool,
    /// Sliding-window attention size, when the architecture uses one (mistral). `None`: full causal.
    pub sliding_window: Option<usize>,
    pub max_position_embeddings: usize,
}

/// Upper bounds on a config's sizes, far above any released model (Llama 3.1 405B: 126 layers,
/// hidden 16,384; the largest vocabularies ~260k): a value beyond them is a corrupt file, and
/// refusing it keeps the loader from sizing buffers by it.
const SIZE_LIMITS: [(&str, usize); 6] = [
    ("vocab_size", 1 << 24),
    ("hidden_size", 1 << 20),
    ("intermediate_size", 1 << 22),
    ("num_hidden_layers", 4096),
    ("num_attention_heads", 4096),
    ("head_dim", 1 << 16),
];

impl ModelConfig {
    /// `Err(message)` when a size is beyond what any real model has (see `SIZE_LIMITS`).
    pub fn check_sizes(&self) -> Result<(), String> {
        let values = [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.head_dim,
        ];
        for ((field, limit), v) in SIZE_LIMITS.iter().zip(values) {
            if v > *limit {
                return Err(format!(
                    "{field} {v} is beyond any real model's (at most {limit} accepted): a corrupt config?"
                ));
            }
        }
        Ok(())
    }

    /// Number of parameters the config implies (embeddings counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut attn = h * q + 2 * h * kv + q * h;
        if self.attention_bias {
            attn += q + 2 * kv;
        }
        if self.o_proj_bias {
            attn += h;
        }
        if self.qk_norm {
            attn += 2 * self.head_dim;
        }
        let mlp = 3 * h * self.intermediate_size;
        let per_layer = attn + mlp + 2 * h;
        let emb = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        emb + head + h + per_layer * self.num_hidden_layers
    }
}
