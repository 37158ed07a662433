//! Building a [`CausalLm`] from named tensors (matched by Hugging Face name, never by position):
//! a plain checkpoint, or a path — LoRA adapters in slots (applied unmerged) and/or full
//! checkpoints whose differences to the base become dense deltas.

use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor, TensorData};

use super::{
    error::ModelError,
    linear::{Linear, LoraBranch},
    norm::RmsNorm,
    path_param::PathParam,
    row_blocks::{RowBlocks, rows_per_block},
    transformer::{Attention, CausalLm, DecoderLayer, Mlp},
    weight_dtype::WeightDType,
};
use crate::checkpoint::{
    model_config::ModelConfig,
    peft::LoraAdapter,
    tensors::{HostTensor, TensorSource},
};

/// What a path adds to the base model.
#[derive(Default)]
pub struct PathEndpoints<'a> {
    /// LoRA adapters; adapter `k` becomes LoRA slot `k`.
    pub adapters: Vec<&'a LoraAdapter>,
    /// Full checkpoints of the same architecture and shapes; checkpoint `k` becomes dense delta
    /// `k` = θₖ − θ₀ of every parameter.
    pub checkpoints: Vec<&'a dyn TensorSource>,
}

struct Loader<'a> {
    config: &'a ModelConfig,
    source: &'a dyn TensorSource,
    endpoints: &'a PathEndpoints<'a>,
    used_adapter_modules: Vec<BTreeSet<String>>,
    device: &'a Device,
    /// Most bytes one device buffer may hold (`None`: no limit, the host CPU).
    max_buffer_bytes: Option<u64>,
    /// What linear weights and vocabulary tables (and their deltas) are stored in.
    dtype: WeightDType,
}

/// Reads one tensor, checking presence, shape and finiteness.
fn read(
    source: &dyn TensorSource,
    config: &ModelConfig,
    name: &str,
    expected: &[usize],
) -> Result<HostTensor, ModelError> {
    let Some(shape) = source.tensor_shape(name) else {
        return Err(ModelError::MissingWeight {
            origin: source.origin().to_path_buf(),
            name: name.to_string(),
            arch: format!("{:?}", config.architecture).to_lowercase(),
        });
    };
    let shape_error = |got: Vec<usize>| ModelError::Shape {
        origin: source.origin().to_path_buf(),
        name: name.to_string(),
        got,
        expected: expected.to_vec(),
    };
    if shape != expected {
        return Err(shape_error(shape));
    }
    let t = source.load_f32(name)?;
    if t.shape != expected || t.data.len() != expected.iter().product::<usize>() {
        return Err(shape_error(t.shape));
    }
    if let Some(bad) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::Input(format!(
            "{}: weight `{name}` holds a non-finite value at element {bad}",
            source.origin().display()
        )));
    }
    Ok(t)
}

impl Loader<'_> {
    /// A path parameter: the base tensor and one dense delta per endpoint checkpoint, each
    /// optionally transposed from `[rows, cols]` to `[cols, rows]`, stored as `dtype`.
    fn param<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        transposed: bool,
        dtype: WeightDType,
    ) -> Result<PathParam<D>, ModelError> {
        self.check_fits(name, &shape)?;
        let base = read(self.source, self.config, name, &shape)?;
        let mut deltas = Vec::with_capacity(self.endpoints.checkpoints.len());
        for other in &self.endpoints.checkpoints {
            let delta = self.delta(*other, name, &base)?;
            deltas.push(self.upload(delta, shape, transposed, dtype, &|| {
                format!("the difference of `{name}` to {}", other.origin().display())
            })?);
        }
        let param = PathParam {
            base: self.upload(base.data, shape, transposed, dtype, &|| {
                format!("{}: weight `{name}`", self.source.origin().display())
            })?,
            deltas,
        };
        if !self.endpoints.checkpoints.is_empty() {
            // The host copies just dropped would otherwise stay in glibc's heap (its mmap
            // threshold grows after the first large free) and add up across a path's two models.
            crate::compute::release_free_host_memory();
        }
        Ok(param)
    }

    /// θₖ − θ₀ of one tensor, computed in θₖ's buffer: one host copy less at the peak.
    fn delta(
        &self,
        other: &dyn TensorSource,
        name: &str,
        base: &HostTensor,
    ) -> Result<Vec<f32>, ModelError> {
        let mut t = read(other, self.config, name, &base.shape)?;
        for (d, a) in t.data.iter_mut().zip(&base.data) {
            *d -= a;
        }
        Ok(t.data)
    }

    /// Refuses, before reading it, a tensor that one device buffer cannot hold.
    fn check_fits(&self, name: &str, shape: &[usize]) -> Result<(), ModelError> {
        let Some(max) = self.max_buffer_bytes else {
            return Ok(());
        };
        let bytes = shape.iter().fold(4u64, |b, &d| b.saturating_mul(d as u64));
        if bytes <= max {
            return Ok(());
        }
        Err(ModelError::Input(format!(
            "{}: weight `{name}` {shape:?} needs {} as one f32 buffer, more than this device binds in one buffer ({}, wgpu's max_storage_buffer_binding_size); run it with --device cpu, or on a GPU with a larger limit",
            self.source.origin().display(),
            bytes_label(bytes),
            bytes_label(max)
        )))
    }

    /// A `[rows, cols]` table (embedding, output head) in as few row blocks as the device's
    /// buffer limit allows: one block (the plain parameter) where it fits.
    fn row_blocks(&self, name: &str, shape: [usize; 2]) -> Result<RowBlocks, ModelError> {
        let [rows, cols] = shape;
        let per_block = self
            .max_buffer_bytes
            .map_or(usize::MAX, |max| rows_per_block(cols, max));
        if rows <= per_block {
            return Ok(RowBlocks::one(self.param(name, shape, false, self.dtype)?));
        }
        if per_block == 1 {
            // Even one row may not fit: the plain check names the tensor and the limit.
            self.check_fits(name, &[1, cols])?;
        }
        let base = read(self.source, self.config, name, &shape)?;
        let deltas = self
            .endpoints
            .checkpoints
            .iter()
            .map(|other| self.delta(*other, name, &base))
            .collect::<Result<Vec<_>, _>>()?;
        let what = || format!("{}: weight `{name}`", self.source.origin().display());
        let slice = |data: &[f32], r0: usize, n: usize| -> Result<Tensor<2>, ModelError> {
            let part = data.get(r0 * cols..(r0 + n) * cols).unwrap_or_default();
            self.dtype
                .upload(part.to_vec(), [n, cols], self.device, &what)
        };
        let mut blocks = Vec::with_capacity(rows.div_ceil(per_block));
        let mut r0 = 0;
        while r0 < rows {
            let n = per_block.min(rows - r0);
            blocks.push(PathParam {
                base: slice(&base.data, r0, n)?,
                deltas: deltas
                    .iter()
                    .map(|d| slice(d, r0, n))
                    .collect::<Result<_, _>>()?,
            });
            r0 += n;
        }
        Ok(RowBlocks::new(blocks))
    }

    fn upload<const D: usize>(
        &self,
        data: Vec<f32>,
        shape: [usize; D],
        transposed: bool,
        dtype: WeightDType,
        what: &dyn Fn() -> String,
    ) -> Result<Tensor<D>, ModelError> {
        if transposed && D == 2 {
            let (rows, cols) = (shape[0], shape[1]);
            let mut out_shape = shape;
            out_shape[0] = cols;
            out_shape[1] = rows;
            dtype.upload(transpose(&data, rows, cols), out_shape, self.device, what)
        } else {
            dtype.upload(data, shape, self.device, what)
        }
    }

    fn norm(&self, name: &str, len: usize) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm {
            weight: self.param(name, [len], false, WeightDType::F32)?,
            eps: self.config.rms_norm_eps,
        })
    }

    /// `module` is e.g. `model.layers.0.self_attn.q_proj`.
    fn linear(
        &mut self,
        module: &str,
        in_f: usize,
        out_f: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let weight = self.param(&format!("{module}.weight"), [out_f, in_f], true, self.dtype)?;
        let bias = if bias {
            Some(self.param(&format!("{module}.bias"), [out_f], false, WeightDType::F32)?)
        } else {
            None
        };
        let mut lora = Vec::with_capacity(self.endpoints.adapters.len());
        for (slot, adapter) in self.endpoints.adapters.iter().enumerate() {
            let Some(m) = adapter.modules.get(module) else {
                lora.push(None);
                continue;
            };
            let r = m.a.shape.first().copied().unwrap_or(0);
            if m.a.shape != [r, in_f] || m.b.shape != [out_f, r] {
                return Err(ModelError::Adapter {
                    origin: adapter.origin.clone(),
                    msg: format!(
                        "LoRA factors of `{module}` have shapes A {:?}, B {:?}; the base layer is [{out_f}, {in_f}] (adapter for another model?)",
                        m.a.shape, m.b.shape
                    ),
                });
            }
            if let Some(used) = self.used_adapter_modules.get_mut(slot) {
                used.insert(module.to_string());
            }
            let a = Tensor::<2>::from_data(
                TensorData::new(transpose(&m.a.data, r, in_f), [in_f, r]),
                self.device,
            );
            let scale = m.scale as f32;
            let b_scaled: Vec<f32> = transpose(&m.b.data, out_f, r)
                .into_iter()
                .map(|v| v * scale)
                .collect();
            let b = Tensor::<2>::from_data(TensorData::new(b_scaled, [r, out_f]), self.device);
            lora.push(Some(LoraBranch { a, b }));
        }
        Ok(Linear { weight, bias, lora })
    }
}

/// `148.4 MiB`, or `12288 bytes` below a MiB.
fn bytes_label(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / 1048576.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    // Blocked for cache friendliness on large embedding-sized matrices.
    const BLOCK: usize = 32;
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..(r0 + BLOCK).min(rows) {
                for c in c0..(c0 + BLOCK).min(cols) {
                    out[c * rows + r] = data[r * cols + c];
                }
            }
        }
    }
    out
}

impl CausalLm {
    /// Builds a plain model, or base + one adapter in LoRA slot 0.
    pub fn load(
        config: &ModelConfig,
        source: &dyn TensorSource,
        adapter: Option<&LoraAdapter>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let endpoints = PathEndpoints {
            adapters: adapter.into_iter().collect(),
            checkpoints: Vec::new(),
        };
        Self::load_path(config, source, &endpoints, device)
    }

    /// Builds the base model plus what a path needs: LoRA slots and dense deltas. Every adapted
    /// module must be one of the model's linear layers, with matching factor shapes; every
    /// endpoint checkpoint must hold every parameter with the base's shape.
    pub fn load_path(
        config: &ModelConfig,
        source: &dyn TensorSource,
        endpoints: &PathEndpoints,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::load_path_until(config, source, endpoints, device, WeightDType::F32, &|| {
            false
        })
    }

    /// [`CausalLm::load_path`] with the weights stored as `dtype`, asking `stop` before each
    /// layer: a cancelled job stops loading within one layer's conversion
    /// ([`ModelError::Cancelled`]) instead of building the whole model first.
    pub fn load_path_until(
        config: &ModelConfig,
        source: &dyn TensorSource,
        endpoints: &PathEndpoints,
        device: &Device,
        dtype: WeightDType,
        stop: &dyn Fn() -> bool,
    ) -> Result<Self, ModelError> {
        let max = crate::compute::max_buffer_bytes(device);
        Self::load_path_stored(config, source, endpoints, device, dtype, stop, max)
    }

    /// [`CausalLm::load_path_until`] with the device's buffer limit given (linear weights and
    /// vocabulary tables stored as `dtype`, refused where the device cannot store it): vocabulary tables
    /// larger than `max_buffer_bytes` are held in row blocks, and any other tensor that large is
    /// refused with an error naming it. The loader asks the device for the limit; tests give a
    /// small one to split tiny models.
    pub fn load_path_stored(
        config: &ModelConfig,
        source: &dyn TensorSource,
        endpoints: &PathEndpoints,
        device: &Device,
        dtype: WeightDType,
        stop: &dyn Fn() -> bool,
        max_buffer_bytes: Option<u64>,
    ) -> Result<Self, ModelError> {
        dtype.check_device(device)?;
        let c = config;
        if c.num_key_value_heads == 0
            || !c.num_attention_heads.is_multiple_of(c.num_key_value_heads)
            || !c.head_dim.is_multiple_of(2)
        {
            return Err(ModelError::Config(format!(
                "{} attention heads, {} key/value heads, head_dim {}: heads must be a multiple of kv heads and head_dim even",
                c.num_attention_heads, c.num_key_value_heads, c.head_dim
            )));
        }
        let mut l = Loader {
            config,
            source,
            endpoints,
            used_adapter_modules: vec![BTreeSet::new(); endpoints.adapters.len()],
            device,
            max_buffer_bytes,
            dtype,
        };
        let h = c.hidden_size;
        let q_out = c.num_attention_heads * c.head_dim;
        let kv_out = c.num_key_value_heads * c.head_dim;
        let embed_tokens = l.row_blocks("model.embed_tokens.weight", [c.vocab_size, h])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            if stop() {
                return Err(ModelError::Cancelled);
            }
            let p = format!("model.layers.{i}");
            let (q_norm, k_norm) = if c.qk_norm {
                (
                    Some(l.norm(&format!("{p}.self_attn.q_norm.weight"), c.head_dim)?),
                    Some(l.norm(&format!("{p}.self_attn.k_norm.weight"), c.head_dim)?),
                )
            } else {
                (None, None)
            };
            let self_attn = Attention {
                q_proj: l.linear(&format!("{p}.self_attn.q_proj"), h, q_out, c.attention_bias)?,
                k_proj: l.linear(
                    &format!("{p}.self_attn.k_proj"),
                    h,
                    kv_out,
                    c.attention_bias,
                )?,
                v_proj: l.linear(
                    &format!("{p}.self_attn.v_proj"),
                    h,
                    kv_out,
                    c.attention_bias,
                )?,
                o_proj: l.linear(&format!("{p}.self_attn.o_proj"), q_out, h, c.o_proj_bias)?,
                q_norm,
                k_norm,
            };
            let mlp = Mlp {
                gate_proj: l.linear(
                    &format!("{p}.mlp.gate_proj"),
                    h,
                    c.intermediate_size,
                    false,
                )?,
                up_proj: l.linear(&format!("{p}.mlp.up_proj"), h, c.intermediate_size, false)?,
                down_proj: l.linear(
                    &format!("{p}.mlp.down_proj"),
                    c.intermediate_size,
                    h,
                    false,
                )?,
            };
            layers.push(DecoderLayer {
                input_layernorm: l.norm(&format!("{p}.input_layernorm.weight"), h)?,
                self_attn,
                post_attention_layernorm: l
                    .norm(&format!("{p}.post_attention_layernorm.weight"), h)?,
                mlp,
            });
        }
        let norm = l.norm("model.norm.weight", h)?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(l.row_blocks("lm_head.weight", [c.vocab_size, h])?)
        };
        for (adapter, used) in endpoints.adapters.iter().zip(&l.used_adapter_modules) {
            if let Some(unused) = adapter.modules.keys().find(|k| !used.contains(*k)) {
                return Err(ModelError::Adapter {
                    origin: adapter.origin.clone(),
                    msg: format!(
                        "adapter module `{unused}` is not a linear layer of this {:?} model (adapter made for another architecture?)",
                        c.architecture
                    ),
                });
            }
        }
        Ok(CausalLm {
            config: c.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            lora_slots: endpoints.adapters.len(),
            device: device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_moves_every_element() {
        let rows = 37;
        let cols = 45;
        let data: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let t = transpose(&data, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], data[r * cols + c]);
            }
        }
    }
}
