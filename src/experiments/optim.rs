//! The optimizer of `basin train`, on host vectors: AdamW exactly as `torch.optim.AdamW`,
//! gradient clipping as `torch.nn.utils.clip_grad_norm_`, and transformers' learning-rate
//! schedules. Trainable tensors are LoRA factors (small), so their update runs on the host in f32
//! with the same operation order as PyTorch's single-tensor AdamW.

use serde::{Deserialize, Serialize};

/// `--schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// transformers' `get_constant_schedule_with_warmup`.
    Constant,
    /// `get_linear_schedule_with_warmup`.
    Linear,
    /// `get_cosine_schedule_with_warmup` (half a cosine).
    Cosine,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Linear => "linear",
            Self::Cosine => "cosine",
        }
    }

    /// The learning-rate multiplier of update `step` (0-based) of `total`, as transformers'
    /// `LambdaLR` schedules give it: update s uses the factor at s, so with warmup the first
    /// update has lr 0.
    pub fn factor(self, step: usize, warmup: usize, total: usize) -> f64 {
        let (s, w, t) = (step as f64, warmup as f64, total as f64);
        if step < warmup {
            return s / w.max(1.0);
        }
        match self {
            Self::Constant => 1.0,
            Self::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            Self::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos())).max(0.0)
            }
        }
    }
}

/// AdamW's hyperparameters (PyTorch's defaults but for the learning rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The moments of one trainable tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdamWState {
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

impl AdamWState {
    pub fn zeros(n: usize) -> Self {
        Self {
            exp_avg: vec![0.0; n],
            exp_avg_sq: vec![0.0; n],
        }
    }
}

/// One AdamW update of `param` with `grad`; `step` is the 1-based count of updates so far
/// including this one (PyTorch's `state["step"]` after its increment).
///
/// The operation order is PyTorch's `_single_tensor_adamw`: decay, `lerp` of the first moment,
/// second moment, bias corrections in f64 (Python floats there), then
/// `param -= step_size · m / (sqrt(v) / sqrt(bc2) + eps)`.
pub fn adamw_update(
    param: &mut [f32],
    grad: &[f32],
    state: &mut AdamWState,
    lr: f64,
    step: u64,
    cfg: &AdamWConfig,
) {
    let decay = (1.0 - lr * cfg.weight_decay) as f32;
    let w1 = (1.0 - cfg.beta1) as f32;
    let beta2 = cfg.beta2 as f32;
    let w2 = (1.0 - cfg.beta2) as f32;
    let bc1 = 1.0 - cfg.beta1.powf(step as f64);
    let bc2 = 1.0 - cfg.beta2.powf(step as f64);
    let step_size = (lr / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let eps = cfg.eps as f32;
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(state.exp_avg.iter_mut())
        .zip(state.exp_avg_sq.iter_mut())
    {
        *p *= decay;
        // torch.lerp(m, g, w) = m + w·(g − m)
        *m += w1 * (g - *m);
        *v = *v * beta2 + w2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += -step_size * (*m / denom);
    }
}

/// The global L2 norm of all gradients (as `clip_grad_norm_`: the norm of the per-tensor norms),
/// and the factor they were multiplied by: `min(1, max_norm / (norm + 1e-6))`; no clipping when
/// `max_norm` is `None`. A non-finite norm is returned as it is and nothing is scaled.
pub fn clip_grad_norm(grads: &mut [&mut [f32]], max_norm: Option<f64>) -> (f64, f64) {
    let per_tensor: Vec<f64> = grads
        .iter()
        .map(|g| {
            let sq: f64 = g.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            // torch computes each tensor's norm in f32.
            f64::from(sq.sqrt() as f32)
        })
        .collect();
    let total = per_tensor.iter().map(|n| n * n).sum::<f64>().sqrt() as f32;
    let total = f64::from(total);
    let Some(max_norm) = max_norm else {
        return (total, 1.0);
    };
    if !total.is_finite() {
        return (total, 1.0);
    }
    let coef = ((max_norm as f32) / (total as f32 + 1e-6)).min(1.0);
    if coef < 1.0 {
        for g in grads.iter_mut() {
            for v in g.iter_mut() {
                *v *= coef;
            }
        }
    }
    (total, f64::from(coef))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adamw_first_steps_match_the_closed_form() {
        // After one step from zero moments, m̂ = g and v̂ = g², so the update is
        // −lr·g/(|g| + eps) (plus decay): a check on the bias corrections.
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut p = vec![1.0f32, -2.0, 0.5];
        let g = vec![0.3f32, -0.01, 0.0];
        let mut st = AdamWState::zeros(3);
        adamw_update(&mut p, &g, &mut st, 0.01, 1, &cfg);
        let want = [
            1.0 * (1.0 - 0.001) - 0.01 * 0.3 / (0.3 + 1e-8),
            -2.0 * (1.0 - 0.001) + 0.01 * 0.01 / (0.01 + 1e-8),
            0.5 * (1.0 - 0.001),
        ];
        for (a, b) in p.iter().zip(want) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
        }
        // A second step with the same gradient moves by the same amount again (m̂ = g, v̂ = g²).
        let before = p[0];
        adamw_update(&mut p, &g, &mut st, 0.01, 2, &cfg);
        let moved = f64::from(before) * (1.0 - 0.001) - f64::from(p[0]);
        assert!((moved - 0.01).abs() < 1e-5, "{moved}");
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut a = vec![3.0f32, 0.0];
        let mut b = vec![0.0f32, 4.0];
        let (norm, coef) = clip_grad_norm(&mut [&mut a, &mut b], Some(1.0));
        assert!((norm - 5.0).abs() < 1e-6);
        assert!((coef - 0.2).abs() < 1e-6);
        let after = (a[0] * a[0] + b[1] * b[1]).sqrt();
        assert!((after - 1.0).abs() < 1e-5, "{after}");
        // Under the limit nothing changes.
        let mut c = vec![0.1f32];
        let (_, coef) = clip_grad_norm(&mut [&mut c], Some(1.0));
        assert_eq!(coef, 1.0);
        assert_eq!(c[0], 0.1);
        // NaN is reported, not spread.
        let mut d = vec![f32::NAN, 1.0];
        let (norm, _) = clip_grad_norm(&mut [&mut d], Some(1.0));
        assert!(norm.is_nan());
        assert_eq!(d[1], 1.0);
    }

    #[test]
    fn schedules_start_at_zero_with_warmup_and_end_at_zero() {
        assert_eq!(Schedule::Linear.factor(0, 2, 8), 0.0);
        assert_eq!(Schedule::Linear.factor(1, 2, 8), 0.5);
        assert_eq!(Schedule::Linear.factor(2, 2, 8), 1.0);
        assert!((Schedule::Linear.factor(7, 2, 8) - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(Schedule::Constant.factor(5, 0, 8), 1.0);
        assert!((Schedule::Cosine.factor(5, 0, 10) - 0.5).abs() < 1e-12);
    }
}
