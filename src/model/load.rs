//! Building a [`CausalLm`] from named tensors (matched by Hugging Face name, never by position),
//! with an optional LoRA adapter applied unmerged.

use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor, TensorData};

use super::{
    error::ModelError,
    linear::{Linear, LoraBranch},
    norm::RmsNorm,
    transformer::{Attention, CausalLm, DecoderLayer, Mlp},
};
use crate::checkpoint::{
    model_config::ModelConfig,
    peft::LoraAdapter,
    tensors::{HostTensor, TensorSource},
};

struct Loader<'a> {
    config: &'a ModelConfig,
    source: &'a dyn TensorSource,
    adapter: Option<&'a LoraAdapter>,
    used_adapter_modules: BTreeSet<String>,
    device: &'a Device,
}

impl Loader<'_> {
    fn host(&self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError> {
        let Some(shape) = self.source.tensor_shape(name) else {
            return Err(ModelError::MissingWeight {
                origin: self.source.origin().to_path_buf(),
                name: name.to_string(),
                arch: format!("{:?}", self.config.architecture).to_lowercase(),
            });
        };
        if shape != expected {
            return Err(ModelError::Shape {
                origin: self.source.origin().to_path_buf(),
                name: name.to_string(),
                got: shape,
                expected: expected.to_vec(),
            });
        }
        let t = self.source.load_f32(name)?;
        if t.shape != expected || t.data.len() != expected.iter().product::<usize>() {
            return Err(ModelError::Shape {
                origin: self.source.origin().to_path_buf(),
                name: name.to_string(),
                got: t.shape,
                expected: expected.to_vec(),
            });
        }
        if let Some(bad) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!(
                "{}: weight `{name}` holds a non-finite value at element {bad}",
                self.source.origin().display()
            )));
        }
        Ok(t)
    }

    fn tensor1(&self, name: &str, len: usize) -> Result<Tensor<1>, ModelError> {
        let t = self.host(name, &[len])?;
        Ok(Tensor::from_data(
            TensorData::new(t.data, [len]),
            self.device,
        ))
    }

    fn tensor2(&self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>, ModelError> {
        let t = self.host(name, &[rows, cols])?;
        Ok(Tensor::from_data(
            TensorData::new(t.data, [rows, cols]),
            self.device,
        ))
    }

    fn norm(&self, name: &str, len: usize) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm {
            weight: self.tensor1(name, len)?,
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
        let w = self.host(&format!("{module}.weight"), &[out_f, in_f])?;
        let weight = Tensor::<2>::from_data(
            TensorData::new(transpose(&w.data, out_f, in_f), [in_f, out_f]),
            self.device,
        );
        let bias = if bias {
            Some(self.tensor1(&format!("{module}.bias"), out_f)?)
        } else {
            None
        };
        let lora = match self
            .adapter
            .and_then(|a| a.modules.get(module).map(|m| (a, m)))
        {
            None => None,
            Some((adapter, m)) => {
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
                self.used_adapter_modules.insert(module.to_string());
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
                Some(LoraBranch { a, b })
            }
        };
        Ok(Linear { weight, bias, lora })
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
    /// Builds the model from named tensors. With an adapter, every adapted module must be one
    /// of the model's linear layers, and its factor shapes must match.
    pub fn load(
        config: &ModelConfig,
        source: &dyn TensorSource,
        adapter: Option<&LoraAdapter>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let c = config;
        if c.num_key_value_heads == 0
            || c.num_attention_heads % c.num_key_value_heads != 0
            || c.head_dim % 2 != 0
        {
            return Err(ModelError::Config(format!(
                "{} attention heads, {} key/value heads, head_dim {}: heads must be a multiple of kv heads and head_dim even",
                c.num_attention_heads, c.num_key_value_heads, c.head_dim
            )));
        }
        let mut l = Loader {
            config,
            source,
            adapter,
            used_adapter_modules: BTreeSet::new(),
            device,
        };
        let h = c.hidden_size;
        let q_out = c.num_attention_heads * c.head_dim;
        let kv_out = c.num_key_value_heads * c.head_dim;
        let embed_tokens = l.tensor2("model.embed_tokens.weight", c.vocab_size, h)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
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
            Some(l.tensor2("lm_head.weight", c.vocab_size, h)?)
        };
        if let Some(adapter) = adapter {
            if let Some(unused) = adapter
                .modules
                .keys()
                .find(|k| !l.used_adapter_modules.contains(*k))
            {
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
