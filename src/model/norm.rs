//! RMSNorm as transformers computes it: `w * x / sqrt(mean(x²) + eps)`, in f32.

use burn::tensor::Tensor;

use super::path_param::{PathParam, PathPoint};

#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// `[dim]`
    pub weight: PathParam<1>,
    pub eps: f64,
}

impl RmsNorm {
    /// Normalises over the last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, point: &PathPoint) -> Tensor<D> {
        let variance = x.clone().powi_scalar(2).mean_dim(D - 1);
        let inv = (variance + self.eps).sqrt().recip();
        x * inv * self.weight.value(&point.dense).unsqueeze()
    }
}
