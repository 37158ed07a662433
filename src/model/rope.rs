//! Rotary position embeddings in transformers' rotate-half convention, including Llama 3
//! frequency scaling. Tables are computed on the host in the same precision steps as
//! transformers (f32 inverse frequencies, f32 angle = position × inv_freq).

use burn::tensor::{Device, Tensor, TensorData};

use crate::checkpoint::model_config::{Llama3RopeScaling, ModelConfig};

/// Inverse frequencies `[head_dim / 2]`, as transformers computes them.
pub fn inverse_frequencies(
    head_dim: usize,
    theta: f64,
    scaling: Option<&Llama3RopeScaling>,
) -> Vec<f32> {
    let half = head_dim / 2;
    let mut inv: Vec<f32> = (0..half)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            (1.0f64 / theta.powf(exponent as f64)) as f32
        })
        .collect();
    if let Some(s) = scaling {
        let old_ctx = s.original_max_position_embeddings as f64;
        let low_wavelen = old_ctx / s.low_freq_factor;
        let high_wavelen = old_ctx / s.high_freq_factor;
        for f in inv.iter_mut() {
            let freq = *f as f64;
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            let scaled = if wavelen > low_wavelen {
                freq / s.factor
            } else {
                freq
            };
            // transformers' `~(w < high) * ~(w > low)`; wavelengths are finite (freq > 0).
            let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
            let out = if medium {
                let smooth = (old_ctx / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * scaled / s.factor + smooth * scaled
            } else {
                scaled
            };
            *f = out as f32;
        }
    }
    inv
}

/// cos/sin tables `[batch or 1, 1, seq, head_dim]` (the half-width table repeated twice, as
/// `torch.cat((freqs, freqs), -1)`), broadcast over heads.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl RopeTables {
    /// Positions `0..seq_len`, shared by every sequence of a batch.
    pub fn new(config: &ModelConfig, seq_len: usize, device: &Device) -> Self {
        let positions: Vec<u32> = (0..seq_len as u32).collect();
        Self::at_positions(config, &positions, 1, seq_len, device)
    }

    /// Explicit positions `[batch, seq]` (row-major), e.g. of packed rows whose continuations
    /// restart after a shared prompt.
    pub fn at_positions(
        config: &ModelConfig,
        positions: &[u32],
        batch: usize,
        seq_len: usize,
        device: &Device,
    ) -> Self {
        let hd = config.head_dim;
        let mut inv = inverse_frequencies(hd, config.rope_theta, config.rope_scaling.as_ref());
        if let Some(factors) = &config.rope_freq_factors {
            for (f, d) in inv.iter_mut().zip(factors) {
                *f /= d;
            }
        }
        let mut cos = Vec::with_capacity(positions.len() * hd);
        let mut sin = Vec::with_capacity(positions.len() * hd);
        for &pos in positions {
            for _ in 0..2 {
                for f in &inv {
                    let angle = (pos as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let shape = [batch, 1, seq_len, hd];
        Self {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// Applies the rotation to `x`: `[batch, heads, seq, head_dim]` with `seq` the tables' length.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, _, hd] = x.dims();
        let half = hd / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}
