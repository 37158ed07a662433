//! A linear layer with an optional, unmerged LoRA branch.
//!
//! `y = x·W₀ᵀ + b + s · (x·Aᵀ)·(scale·B)ᵀ`, where `s` is chosen per sequence at run time (so one
//! batch can hold several points of a LoRA path) and `scale` (alpha/r or alpha/√r) is folded
//! into `B` when the adapter is loaded.

use burn::tensor::{Tensor, module::linear};

/// LoRA factors, stored transposed for `x · A`: `a` is `[in, r]`, `b` is `[r, out]` (scaled).
#[derive(Debug, Clone)]
pub struct LoraBranch {
    pub a: Tensor<2>,
    pub b: Tensor<2>,
}

#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]` (transposed from PyTorch's `[out, in]` at load time).
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
    pub lora: Option<LoraBranch>,
}

impl Linear {
    /// `x`: `[batch, seq, in]`; `lora_scale`: `[batch, 1, 1]` multiplier of the LoRA delta
    /// (ignored when the layer has no LoRA branch).
    pub fn forward(&self, x: Tensor<3>, lora_scale: Option<&Tensor<3>>) -> Tensor<3> {
        let base = linear(x.clone(), self.weight.clone(), self.bias.clone());
        match (&self.lora, lora_scale) {
            (Some(lora), Some(s)) => {
                let delta = linear(linear(x, lora.a.clone(), None), lora.b.clone(), None);
                base + delta * s.clone()
            }
            _ => base,
        }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }
}
