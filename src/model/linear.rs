//! A linear layer with unmerged LoRA branches.
//!
//! `y = x·W(t) + b(t) + Σₖ sₖ · (x·Aₖᵀ)·(scaleₖ·Bₖ)ᵀ`, where `W(t)`, `b(t)` are path parameters
//! (dense deltas, e.g. a full-weight path), and each LoRA slot `k` has its own coefficient `sₖ`
//! per sequence (so one batch can hold several points of a LoRA path). PEFT's `scale` (alpha/r or
//! alpha/√r) is folded into `B` when the adapter is loaded.

use burn::tensor::{Distribution, Tensor, module::linear};

use super::path_param::{PathParam, PathPoint};

/// LoRA factors, stored transposed for `x · A`: `a` is `[in, r]`, `b` is `[r, out]` (scaled).
#[derive(Debug, Clone)]
pub struct LoraBranch {
    pub a: Tensor<2>,
    pub b: Tensor<2>,
}

#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]` (transposed from PyTorch's `[out, in]` at load time).
    pub weight: PathParam<2>,
    pub bias: Option<PathParam<1>>,
    /// One entry per LoRA slot of the model; `None` where this layer has no factors in that slot.
    pub lora: Vec<Option<LoraBranch>>,
}

impl Linear {
    /// `x`: `[batch, seq, in]`.
    pub fn forward(&self, x: Tensor<3>, point: &PathPoint) -> Tensor<3> {
        let weight = self.weight.value(&point.dense);
        let bias = self.bias.as_ref().map(|b| b.value(&point.dense));
        let mut y = linear(x.clone(), weight, bias);
        for (branch, scale) in self.lora.iter().zip(&point.lora) {
            if let Some(lora) = branch {
                let x = lora_dropout(x.clone(), point.lora_dropout);
                let delta = linear(linear(x, lora.a.clone(), None), lora.b.clone(), None);
                y = y + delta * scale.clone();
            }
        }
        y
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// PEFT's LoRA dropout (inverted dropout, as `torch.nn.Dropout` in training mode): each element
/// is kept with probability `1 − p` and scaled by `1 / (1 − p)`. Draws from the device's
/// generator, so a seeded device gives the same masks again.
fn lora_dropout(x: Tensor<3>, p: f32) -> Tensor<3> {
    if p <= 0.0 {
        return x;
    }
    let keep = 1.0 - f64::from(p);
    let mask = Tensor::<3>::random(x.dims(), Distribution::Bernoulli(keep), &x.device());
    x * mask / keep
}
