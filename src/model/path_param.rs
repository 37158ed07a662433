//! Parameters that live on a path through weight space.
//!
//! A [`PathParam`] is `base + Σₖ cₖ·Δₖ` with dense deltas `Δₖ` held on the device (for a
//! full-weight path θ(t) = θ₀ + t·(θ₁ − θ₀), one delta with coefficient t). The mix is formed
//! when the layer runs and dropped right after, so a full-weight sweep holds θ₀ and θ₁ − θ₀ plus
//! one layer's mixed weight, never a second model. Low-rank (LoRA) deltas are not mixed into the
//! weight at all: they stay unmerged in [`super::linear::Linear`] with per-sequence coefficients.

use burn::tensor::Tensor;

use super::{mix_kernel, weight_dtype::widened};

#[derive(Debug, Clone)]
pub struct PathParam<const D: usize> {
    pub base: Tensor<D>,
    /// Dense deltas, each scaled by its coefficient of the current path point.
    pub deltas: Vec<Tensor<D>>,
}

impl<const D: usize> PathParam<D> {
    /// A parameter that does not move along the path.
    pub fn fixed(base: Tensor<D>) -> Self {
        Self {
            base,
            deltas: Vec::new(),
        }
    }

    /// `base + Σₖ coeffs[k]·deltas[k]`. Coefficients beyond the deltas are ignored; a delta
    /// without a coefficient (or with 0, unless it is being trained) contributes nothing, and
    /// with no deltas the base itself is returned (no copy).
    ///
    /// Each term goes through [`mix_kernel::mix`](super::mix_kernel::mix): one WGSL pass per delta
    /// on wgpu, burn tensor ops elsewhere (including autodiff, so gradients flow as before).
    /// The loader gives every delta its base's shape; a delta that did not match would not fit
    /// the kernel and falls back to tensor ops with burn's own broadcasting rules, as this
    /// function behaved before the kernel existed.
    ///
    /// Weights stored in half precision ([`super::weight_dtype::WeightDType`]) are widened to
    /// f32 here, so the value is always f32.
    pub fn value(&self, coeffs: &[f32]) -> Tensor<D> {
        if self.deltas.is_empty() {
            return self.base_f32();
        }
        let mut out = self.base_f32();
        for (delta, &c) in self.deltas.iter().zip(coeffs) {
            // A trained delta stays in the graph at 0 (its gradient is then 0), so a loss at
            // the ends of a curve still has something to differentiate.
            if c == 0.0 && !delta.is_require_grad() {
                continue;
            }
            let delta = widened(delta.clone());
            out = if mix_kernel::check_operands(&out, &delta).is_ok() {
                mix_kernel::mix_checked(out, delta, c).0
            } else {
                mix_kernel::mix_reference(out, delta, c)
            };
        }
        out
    }

    /// The base in f32 (itself, no copy, when it is stored in f32).
    pub fn base_f32(&self) -> Tensor<D> {
        widened(self.base.clone())
    }

    pub fn dims(&self) -> [usize; D] {
        self.base.dims()
    }
}

/// Where one batch sits on the path, as the host gives it: for each LoRA slot one coefficient
/// per sequence (so a batch can mix several t values), and the dense-delta coefficients shared
/// by the whole batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathCoefficients {
    /// `[slot][sequence]`
    pub lora: Vec<Vec<f32>>,
    pub dense: Vec<f32>,
    /// Training only: the probability that PEFT's LoRA dropout zeroes an input element of a
    /// LoRA branch (`B·A·dropout(x)`); 0 (evaluation) leaves the input as it is.
    pub lora_dropout: f32,
}

impl PathCoefficients {
    /// The coefficients of sequences `range` (a slot with fewer entries gives what it has).
    pub fn rows(&self, range: std::ops::Range<usize>) -> Self {
        Self {
            lora: self
                .lora
                .iter()
                .map(|c| {
                    let end = range.end.min(c.len());
                    c.get(range.start.min(end)..end)
                        .map(<[f32]>::to_vec)
                        .unwrap_or_default()
                })
                .collect(),
            dense: self.dense.clone(),
            lora_dropout: self.lora_dropout,
        }
    }
}

/// [`PathCoefficients`] on the device: per LoRA slot a `[batch, 1, 1]` tensor.
#[derive(Debug, Clone, Default)]
pub struct PathPoint {
    pub lora: Vec<Tensor<3>>,
    pub dense: Vec<f32>,
    /// See [`PathCoefficients::lora_dropout`].
    pub lora_dropout: f32,
}

impl PathPoint {
    /// The coefficients of batch rows `start..start + n`.
    pub fn rows(&self, start: usize, n: usize) -> Self {
        Self {
            lora: self
                .lora
                .iter()
                .map(|c| c.clone().narrow(0, start, n))
                .collect(),
            dense: self.dense.clone(),
            lora_dropout: self.lora_dropout,
        }
    }
}
