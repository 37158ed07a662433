//! A GGUF model file seen as a Hugging Face checkpoint: tensors under transformers names and
//! PyTorch shapes (dequantised on demand), and the model config from the GGUF metadata.
//!
//! llama.cpp's converter permutes the rows of llama-architecture `attn_q`/`attn_k` weights (and
//! biases) for its adjacent-pair RoPE; transformers uses the rotate-half convention, so the rows
//! are put back here. qwen2/qwen3 GGUFs are not permuted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{CheckpointError, Result};
use super::gguf::{GgufFile, GgufTensorInfo};
use super::model_config::{Architecture, ModelConfig};
use super::tensors::{HostTensor, TensorSource};

/// GGUF architectures Basin reads (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GgufArch {
    /// Also what Mistral GGUFs say.
    Llama,
    Qwen2,
    Qwen3,
}

impl GgufArch {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            _ => None,
        }
    }
    fn key(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// Which llama.cpp row permutation a tensor carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowPermutation {
    None,
    /// Undo llama.cpp's Q/K permutation with this many heads.
    Rope {
        n_heads: usize,
    },
}

#[derive(Debug, Clone)]
struct MappedTensor {
    gguf_name: String,
    permutation: RowPermutation,
}

/// A GGUF model file with Hugging Face tensor names.
pub struct GgufCheckpoint {
    file: GgufFile,
    arch: GgufArch,
    /// HF name → GGUF tensor.
    names: BTreeMap<String, MappedTensor>,
}

impl std::fmt::Debug for GgufCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufCheckpoint")
            .field("file", &self.file)
            .field("arch", &self.arch)
            .field("n_tensors", &self.names.len())
            .finish()
    }
}

/// The HF name of a GGUF tensor name (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`).
fn hf_name(gguf_name: &str) -> Option<String> {
    let direct = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(n) = direct {
        return Some(n.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let hf_module = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    match suffix {
        "weight" | "bias" => Some(format!("model.layers.{layer}.{hf_module}.{suffix}")),
        _ => None,
    }
}

impl GgufCheckpoint {
    /// Opens a GGUF model file of a supported architecture (llama, qwen2, qwen3).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(GgufFile::open(path)?)
    }

    /// Wraps an already parsed GGUF file.
    pub fn from_file(file: GgufFile) -> Result<Self> {
        let arch_name = file.get_str("general.architecture")?;
        let arch = GgufArch::parse(arch_name).ok_or_else(|| {
            CheckpointError::unsupported(
                file.path(),
                format!("GGUF architecture `{arch_name}` (supported: llama, mistral as llama, qwen2, qwen3)"),
            )
        })?;
        let (n_heads, n_kv_heads) = if arch == GgufArch::Llama {
            let n_heads = file.get_u32("llama.attention.head_count")? as usize;
            let n_kv = file
                .opt_u32("llama.attention.head_count_kv")?
                .map_or(n_heads, |n| n as usize);
            (n_heads, n_kv)
        } else {
            (0, 0)
        };
        let mut names = BTreeMap::new();
        for info in file.tensor_infos() {
            if info.name == "rope_freqs.weight" {
                // Not a transformers parameter; model_config() refuses such files.
                continue;
            }
            let hf = hf_name(&info.name).ok_or_else(|| {
                CheckpointError::unsupported(
                    file.path(),
                    format!(
                        "tensor `{}` has no known Hugging Face name for architecture `{arch_name}`",
                        info.name
                    ),
                )
            })?;
            let is_rope_rows = |module: &str| {
                info.name.ends_with(&format!(".{module}.weight"))
                    || info.name.ends_with(&format!(".{module}.bias"))
            };
            let permutation = match arch {
                GgufArch::Llama if is_rope_rows("attn_q") => RowPermutation::Rope { n_heads },
                GgufArch::Llama if is_rope_rows("attn_k") => RowPermutation::Rope {
                    n_heads: n_kv_heads,
                },
                _ => RowPermutation::None,
            };
            if let RowPermutation::Rope { n_heads } = permutation {
                // The slowest GGUF axis is the PyTorch row axis, for weights and biases alike.
                let rows = info.dims.last().copied().unwrap_or(0) as usize;
                if n_heads == 0 || !rows.is_multiple_of(2 * n_heads) {
                    return Err(CheckpointError::format(
                        file.path(),
                        format!(
                            "tensor `{}` has {rows} rows, not divisible into {n_heads} heads of even size",
                            info.name
                        ),
                    ));
                }
            }
            names.insert(
                hf,
                MappedTensor {
                    gguf_name: info.name.clone(),
                    permutation,
                },
            );
        }
        Ok(Self { file, arch, names })
    }

    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    /// See [`GgufFile::drop_tokenizer_arrays`].
    pub fn drop_tokenizer_arrays(&mut self) {
        self.file.drop_tokenizer_arrays();
    }

    fn info(&self, hf: &str) -> Option<(&MappedTensor, &GgufTensorInfo)> {
        let mapped = self.names.get(hf)?;
        Some((mapped, self.file.tensor_info(&mapped.gguf_name)?))
    }

    /// The resolved model configuration from the `{arch}.*` metadata and the tensor shapes.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let f = &self.file;
        let path = f.path();
        let a = self.arch.key();
        let key = |k: &str| format!("{a}.{k}");
        if let Some(kind) = f.opt_str(&key("rope.scaling.type"))?
            && kind != "none"
        {
            return Err(CheckpointError::unsupported(
                path,
                format!("RoPE scaling `{kind}` from GGUF metadata"),
            ));
        }
        let hidden_size = f.get_u32(&key("embedding_length"))? as usize;
        let num_attention_heads = f.get_u32(&key("attention.head_count"))? as usize;
        let num_key_value_heads = f
            .opt_u32(&key("attention.head_count_kv"))?
            .map_or(num_attention_heads, |n| n as usize);
        if num_attention_heads == 0
            || num_key_value_heads == 0
            || !num_attention_heads.is_multiple_of(num_key_value_heads)
        {
            return Err(CheckpointError::format(
                path,
                format!(
                    "{num_attention_heads} attention heads cannot be grouped over {num_key_value_heads} key/value heads"
                ),
            ));
        }
        let head_dim = match f.opt_u32(&key("attention.key_length"))? {
            Some(k) => k as usize,
            None => hidden_size / num_attention_heads,
        };
        if let Some(rot) = f.opt_u32(&key("rope.dimension_count"))?
            && rot as usize != head_dim
        {
            return Err(CheckpointError::unsupported(
                path,
                format!("partial rotary embedding ({rot} of {head_dim} head dims)"),
            ));
        }
        let embed =
            f.tensor_info("token_embd.weight")
                .ok_or_else(|| CheckpointError::MissingTensor {
                    path: path.to_path_buf(),
                    name: "token_embd.weight".into(),
                })?;
        let (embed_dim, vocab_size) = match embed.dims.as_slice() {
            [h, v] => (*h as usize, *v as usize),
            _ => {
                return Err(CheckpointError::format(
                    path,
                    format!(
                        "token_embd.weight has dims {:?}, expected [hidden, vocab]",
                        embed.dims
                    ),
                ));
            }
        };
        if embed_dim != hidden_size {
            return Err(CheckpointError::Shape {
                path: path.to_path_buf(),
                name: "model.embed_tokens.weight".into(),
                got: vec![vocab_size, embed_dim],
                expected: vec![vocab_size, hidden_size],
            });
        }
        let has = |n: &str| f.tensor_info(n).is_some();
        let config = ModelConfig {
            architecture: match self.arch {
                GgufArch::Llama => Architecture::Llama,
                GgufArch::Qwen2 => Architecture::Qwen2,
                GgufArch::Qwen3 => Architecture::Qwen3,
            },
            vocab_size,
            hidden_size,
            intermediate_size: f.get_u32(&key("feed_forward_length"))? as usize,
            num_hidden_layers: f.get_u32(&key("block_count"))? as usize,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            // llama.cpp's default when the key is absent.
            rope_theta: f.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_scaling: None,
            rope_freq_factors: self.rope_freq_factors(head_dim)?,
            rms_norm_eps: f.get_f64(&key("attention.layer_norm_rms_epsilon"))?,
            tie_word_embeddings: !has("output.weight"),
            attention_bias: has("blk.0.attn_q.bias"),
            o_proj_bias: has("blk.0.attn_output.bias"),
            qk_norm: self.arch == GgufArch::Qwen3 || has("blk.0.attn_q_norm.weight"),
            sliding_window: None,
            max_position_embeddings: f.get_u32(&key("context_length"))? as usize,
        };
        config
            .check_sizes()
            .map_err(|msg| CheckpointError::format(path, msg))?;
        Ok(config)
    }
}

impl GgufCheckpoint {
    /// `rope_freqs.weight`: llama.cpp's form of Llama 3 RoPE scaling, one divisor per frequency.
    fn rope_freq_factors(&self, head_dim: usize) -> Result<Option<Vec<f32>>> {
        let f = &self.file;
        if f.tensor_info("rope_freqs.weight").is_none() {
            return Ok(None);
        }
        let factors = f.tensor_f32("rope_freqs.weight")?;
        if factors.len() != head_dim / 2 {
            return Err(CheckpointError::format(
                f.path(),
                format!(
                    "`rope_freqs.weight` has {} values, head_dim {head_dim} needs {}",
                    factors.len(),
                    head_dim / 2
                ),
            ));
        }
        if let Some(bad) = factors.iter().find(|v| !v.is_finite() || **v <= 0.0) {
            return Err(CheckpointError::format(
                f.path(),
                format!("`rope_freqs.weight` holds {bad}; factors must be positive"),
            ));
        }
        Ok(Some(factors))
    }
}

/// Undoes llama.cpp's `reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)`: HF row
/// `h*hd + i*hd/2 + j` is GGUF row `h*hd + 2*j + i`.
fn unpermute_rows(data: &[f32], rows: usize, cols: usize, n_heads: usize) -> Vec<f32> {
    let head_dim = rows.checked_div(n_heads).unwrap_or(0);
    let half = head_dim / 2;
    if half == 0 || cols == 0 || rows * cols != data.len() {
        // Nothing to permute (checked at open for real tensors; empty tensors end up here).
        return data.to_vec();
    }
    let mut out = vec![0.0f32; data.len()];
    for (hf_row, dst) in out.chunks_exact_mut(cols).enumerate() {
        let h = hf_row / head_dim;
        let within = hf_row % head_dim;
        let (i, j) = (within / half, within % half);
        let src_row = h * head_dim + 2 * j + i;
        if let Some(src) = data.get(src_row * cols..(src_row + 1) * cols) {
            dst.copy_from_slice(src);
        }
    }
    out
}

impl TensorSource for GgufCheckpoint {
    fn origin(&self) -> &Path {
        self.file.path()
    }

    fn tensor_names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.info(name).map(|(_, info)| info.torch_shape())
    }

    fn tensor_dtype(&self, name: &str) -> Option<String> {
        self.info(name)
            .map(|(_, info)| info.ggml_type.name().to_string())
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor> {
        let (mapped, info) = self
            .info(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: PathBuf::from(self.file.path()),
                name: name.to_string(),
            })?;
        let shape = info.torch_shape();
        let data = self.file.tensor_f32(&mapped.gguf_name)?;
        let data = match mapped.permutation {
            RowPermutation::None => data,
            RowPermutation::Rope { n_heads } => {
                let rows = shape.first().copied().unwrap_or(0);
                let cols = data.len().checked_div(rows).unwrap_or(0);
                unpermute_rows(&data, rows, cols, n_heads)
            }
        };
        Ok(HostTensor::new(shape, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::gguf::tests::{GgufBuilder, write_temp};

    fn fixture() -> serde_json::Value {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gguf/smollm2_transformers_tensors.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn hf_names() {
        assert_eq!(
            hf_name("blk.12.attn_q.bias").unwrap(),
            "model.layers.12.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_name("blk.0.attn_k_norm.weight").unwrap(),
            "model.layers.0.self_attn.k_norm.weight"
        );
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("blk.0.attn_q.scale"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // 2 heads of head_dim 4, 3 columns; rows numbered in HF order.
        let (rows, cols, n_heads) = (8, 3, 2);
        let hf: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let mut gguf = vec![0.0; rows * cols];
        let half = rows / n_heads / 2;
        for h in 0..n_heads {
            for i in 0..2 {
                for j in 0..half {
                    let src = h * rows / n_heads + i * half + j;
                    let dst = h * rows / n_heads + j * 2 + i;
                    gguf[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_ne!(gguf, hf);
        assert_eq!(unpermute_rows(&gguf, rows, cols, n_heads), hf);
        // Degenerate inputs do not panic.
        assert_eq!(unpermute_rows(&[], 8, 0, 2), Vec::<f32>::new());
        assert_eq!(unpermute_rows(&[1.0], 1, 1, 0), vec![1.0]);
    }

    /// The real SmolLM2 GGUF against transformers' own GGUF loading
    /// (tests/fixtures/gguf/smollm2_transformers_tensors.json, scripts/make_gguf_transformers_fixture.py).
    #[test]
    fn smollm2_matches_transformers() {
        let fx = fixture();
        let ckpt = GgufCheckpoint::open(crate::test_fixtures::smollm2_gguf()).unwrap();
        // Names and shapes: exactly transformers' parameters (lm_head is tied, so absent).
        let expected: BTreeMap<String, Vec<usize>> = fx["shapes"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap() as usize)
                        .collect(),
                )
            })
            .collect();
        let got: BTreeMap<String, Vec<usize>> = ckpt
            .tensor_names()
            .into_iter()
            .map(|n| (n.clone(), ckpt.tensor_shape(&n).unwrap()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            ckpt.tensor_dtype("model.layers.0.self_attn.q_proj.weight")
                .unwrap(),
            "Q4_1"
        );
        assert_eq!(
            ckpt.tensor_dtype("model.embed_tokens.weight").unwrap(),
            "Q8_0"
        );

        let mut cache: BTreeMap<String, HostTensor> = BTreeMap::new();
        let mut load = |name: &str| -> HostTensor {
            cache
                .entry(name.to_string())
                .or_insert_with(|| ckpt.load_f32(name).unwrap())
                .clone()
        };
        let mut n_rows = 0;
        for row in fx["rows"].as_array().unwrap() {
            let name = row["name"].as_str().unwrap();
            let r = row["row"].as_u64().unwrap() as usize;
            let t = load(name);
            let cols = t.shape[1];
            for (c, v) in row["values"].as_array().unwrap().iter().enumerate() {
                let want = v.as_f64().unwrap() as f32;
                let got = t.data[r * cols + c];
                assert!(
                    (got - want).abs() <= 1e-6,
                    "{name}[{r}, {c}]: got {got}, transformers {want}"
                );
            }
            n_rows += 1;
        }
        assert!(n_rows >= 20);
        for (name, values) in fx["full"].as_object().unwrap() {
            let t = load(name);
            let want: Vec<f32> = values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(t.data.len(), want.len());
            for (i, (g, w)) in t.data.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6,
                    "{name}[{i}]: got {g}, transformers {w}"
                );
            }
        }
    }

    #[test]
    fn smollm2_config() {
        let fx = fixture();
        let c = GgufCheckpoint::open(crate::test_fixtures::smollm2_gguf())
            .unwrap()
            .model_config()
            .unwrap();
        let t = &fx["config"];
        assert_eq!(c.architecture, Architecture::Llama);
        assert_eq!(c.vocab_size as u64, t["vocab_size"].as_u64().unwrap());
        assert_eq!(c.hidden_size as u64, t["hidden_size"].as_u64().unwrap());
        assert_eq!(
            c.intermediate_size as u64,
            t["intermediate_size"].as_u64().unwrap()
        );
        assert_eq!(
            c.num_hidden_layers as u64,
            t["num_hidden_layers"].as_u64().unwrap()
        );
        assert_eq!(
            c.num_attention_heads as u64,
            t["num_attention_heads"].as_u64().unwrap()
        );
        assert_eq!(
            c.num_key_value_heads as u64,
            t["num_key_value_heads"].as_u64().unwrap()
        );
        assert_eq!(c.head_dim as u64, t["head_dim"].as_u64().unwrap());
        assert_eq!(c.rope_theta, t["rope_theta"].as_f64().unwrap());
        assert_eq!(c.rms_norm_eps, t["rms_norm_eps"].as_f64().unwrap());
        assert_eq!(
            c.tie_word_embeddings,
            t["tie_word_embeddings"].as_bool().unwrap()
        );
        assert_eq!(
            c.max_position_embeddings as u64,
            t["max_position_embeddings"].as_u64().unwrap()
        );
        assert!(!c.attention_bias && !c.o_proj_bias && !c.qk_norm);
        assert_eq!(c.rope_scaling, None);
    }

    /// All 272 tensors dequantise (and un-permute) quickly: no per-element allocation.
    #[test]
    fn smollm2_loads_all_tensors() {
        let ckpt = GgufCheckpoint::open(crate::test_fixtures::smollm2_gguf()).unwrap();
        let start = std::time::Instant::now();
        let mut total = 0usize;
        for name in ckpt.tensor_names() {
            let t = ckpt.load_f32(&name).unwrap();
            assert!(t.data.iter().all(|x| x.is_finite()), "{name}");
            total += t.numel();
        }
        assert_eq!(total, 134_515_008);
        eprintln!("dequantised {total} values in {:?}", start.elapsed());
    }

    fn tiny_model(arch: &str) -> GgufBuilder {
        let k = |s: &str| format!("{arch}.{s}");
        GgufBuilder::new()
            .kv_str("general.architecture", arch)
            .kv_u32(&k("embedding_length"), 4)
            .kv_u32(&k("block_count"), 1)
            .kv_u32(&k("feed_forward_length"), 8)
            .kv_u32(&k("attention.head_count"), 2)
            .kv_u32(&k("attention.head_count_kv"), 1)
            .kv_f32(&k("attention.layer_norm_rms_epsilon"), 1e-6)
            .kv_u32(&k("context_length"), 64)
            .tensor_f32("token_embd.weight", &[4, 3], &[0.0; 12])
            .tensor_f32(
                "blk.0.attn_q.weight",
                &[4, 4],
                &(0..16).map(|x| x as f32).collect::<Vec<_>>(),
            )
            .tensor_f32(
                "blk.0.attn_k.weight",
                &[4, 2],
                &(0..8).map(|x| x as f32).collect::<Vec<_>>(),
            )
    }

    #[test]
    fn qwen2_is_not_permuted_and_llama_is() {
        let q_rows = |arch: &str| {
            let path = write_temp(
                arch,
                &tiny_model(arch)
                    .tensor_f32("blk.0.attn_q.bias", &[4], &[0.0, 1.0, 2.0, 3.0])
                    .build(),
            );
            let ckpt = GgufCheckpoint::open(&path).unwrap();
            let q = ckpt
                .load_f32("model.layers.0.self_attn.q_proj.weight")
                .unwrap();
            let b = ckpt
                .load_f32("model.layers.0.self_attn.q_proj.bias")
                .unwrap();
            let k = ckpt
                .load_f32("model.layers.0.self_attn.k_proj.weight")
                .unwrap();
            let c = ckpt.model_config().unwrap();
            std::fs::remove_file(&path).ok();
            (q, b, k, c)
        };
        let (q, b, k, c) = q_rows("qwen2");
        assert_eq!(q.shape, vec![4, 4]);
        assert_eq!(q.data, (0..16).map(|x| x as f32).collect::<Vec<_>>());
        assert_eq!(b.data, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(k.shape, vec![2, 4]);
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert!(c.attention_bias && c.tie_word_embeddings);
        assert_eq!(c.vocab_size, 3);
        assert_eq!(c.head_dim, 2);
        // llama with head_dim 2 (half = 1): the permutation is the identity.
        let (q, b, _, c) = q_rows("llama");
        assert_eq!(q.data, (0..16).map(|x| x as f32).collect::<Vec<_>>());
        assert_eq!(b.data, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(c.architecture, Architecture::Llama);
    }

    #[test]
    fn llama_permutation_applies_to_q_bias() {
        // 1 head of head_dim 4: GGUF rows [0, 2, 1, 3] of HF order.
        let b = tiny_model("llama")
            .kv_u32("llama.attention.head_count", 1)
            .tensor_f32("blk.0.attn_q.bias", &[4], &[10.0, 12.0, 11.0, 13.0]);
        // head_count given twice would be a duplicate key; rebuild without the first.
        let mut b = b;
        let first = b
            .kvs
            .iter()
            .position(|(k, _, _)| k == "llama.attention.head_count")
            .unwrap();
        b.kvs.remove(first);
        let path = write_temp("bias", &b.build());
        let ckpt = GgufCheckpoint::open(&path).unwrap();
        assert_eq!(
            ckpt.load_f32("model.layers.0.self_attn.q_proj.bias")
                .unwrap()
                .data,
            vec![10.0, 11.0, 12.0, 13.0]
        );
        let q = ckpt
            .load_f32("model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        assert_eq!(&q.data[4..8], &[8.0, 9.0, 10.0, 11.0]);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn bad_models_refused_with_file_name() {
        let check = |tag: &str, b: GgufBuilder, want: &str, at_open: bool| {
            let path = write_temp(tag, &b.build());
            let file_name = path.file_name().unwrap().to_str().unwrap().to_string();
            let err = match GgufCheckpoint::open(&path) {
                Err(e) => {
                    assert!(at_open, "{tag}: failed at open: {e}");
                    e.to_string()
                }
                Ok(c) => c.model_config().unwrap_err().to_string(),
            };
            assert!(
                err.contains(&file_name) && err.contains(want),
                "{tag}: {err}"
            );
            std::fs::remove_file(&path).ok();
        };
        check("arch", tiny_model("gemma"), "architecture `gemma`", true);
        check(
            "unknown",
            tiny_model("qwen2").tensor_f32("blk.0.foo.weight", &[1], &[0.0]),
            "blk.0.foo.weight",
            true,
        );
        check(
            "ropefreqs",
            // head_dim 2 needs one factor; two is a malformed file.
            tiny_model("llama").tensor_f32("rope_freqs.weight", &[2], &[1.0, 2.0]),
            "`rope_freqs.weight` has 2 values",
            false,
        );
        let mut missing = tiny_model("qwen3");
        missing.kvs.retain(|(k, _, _)| k != "qwen3.block_count");
        check(
            "missing",
            missing,
            "missing metadata key `qwen3.block_count`",
            false,
        );
        let mut odd_heads = tiny_model("llama");
        odd_heads
            .kvs
            .retain(|(k, _, _)| k != "llama.attention.head_count");
        check(
            "heads",
            odd_heads.kv_u32("llama.attention.head_count", 3),
            "not divisible into 3 heads",
            true,
        );
    }

    #[test]
    fn empty_tensors_do_not_panic() {
        let b = GgufBuilder::new()
            .kv_str("general.architecture", "llama")
            .kv_u32("llama.attention.head_count", 2)
            .tensor_f32("blk.0.attn_q.weight", &[0, 4], &[]);
        let path = write_temp("empty", &b.build());
        let ckpt = GgufCheckpoint::open(&path).unwrap();
        let t = ckpt
            .load_f32("model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        assert_eq!((t.shape, t.data.len()), (vec![4, 0], 0));
        // No token_embd, no metadata: model_config errors instead of panicking.
        assert!(ckpt.model_config().is_err());
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn dropping_tokenizer_arrays_keeps_config_and_weights() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny_gguf/llama3.gguf");
        let mut ckpt = GgufCheckpoint::open(&path).unwrap();
        let config = serde_json::to_value(ckpt.model_config().unwrap()).unwrap();
        let name = "model.layers.0.self_attn.q_proj.weight";
        let before = ckpt.load_f32(name).unwrap();
        assert!(ckpt.gguf().get("tokenizer.ggml.tokens").is_some());
        let kept: Vec<String> = ckpt
            .gguf()
            .metadata()
            .iter()
            .filter(|(k, v)| !(k.starts_with("tokenizer.ggml.") && v.type_name() == "array"))
            .map(|(k, _)| k.clone())
            .collect();
        ckpt.drop_tokenizer_arrays();
        assert!(ckpt.gguf().get("tokenizer.ggml.tokens").is_none());
        assert!(ckpt.gguf().get("tokenizer.ggml.merges").is_none());
        let left: Vec<String> = ckpt.gguf().metadata().keys().cloned().collect();
        assert_eq!(left, kept, "only the tokenizer's arrays go");
        assert_eq!(
            serde_json::to_value(ckpt.model_config().unwrap()).unwrap(),
            config
        );
        let after = ckpt.load_f32(name).unwrap();
        assert_eq!((before.shape, before.data), (after.shape, after.data));
    }
}
