//! Paths through weight space and where each t sits on them.
//!
//! A path is a source of parameters, not a second model: the loaded [`crate::model::transformer::CausalLm`]
//! holds θ₀ plus LoRA slots and/or dense deltas, and a path maps t to their coefficients.
//! A fitted curve is one more variant: θ(t) = θ₀ + t·Δ_H + φ(t)·Δ_bend (see `super::curve`).

use serde::{Deserialize, Serialize};

use super::curve::CurveKind;
use super::eval::PathPointSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// θ(t) = θ₀ + t·ΔW_A (one adapter, unmerged; slot 0).
    Lora,
    /// θ(t) = θ₀ + (1−t)·ΔW_A + t·ΔW_B (slots 0 and 1).
    TwoAdapter,
    /// θ(t) = (1−t)·θ₀ + t·θ₁ = θ₀ + t·(θ₁ − θ₀) (dense delta 0).
    FullWeight,
    /// The checkpoints of a training run: θ₀ + ΔW_k with the adapter saved after `t` samples in
    /// LoRA slot k (t = 0: the base). The coordinate is samples seen, not a position on a line;
    /// which slot a t selects is the run's checkpoint list ([`super::sweep::SweepSpec::point`]).
    Checkpoints,
    /// A fitted curve (`basin curve fit`): θ(t) = θ₀ + t·ΔW + φ(t)·Δ_bend with the endpoint's
    /// adapter in slot 0 and the bend in slot 1; φ(t) = 2t(1 − t).
    Bezier,
    /// The same with a one-bend polychain: φ(t) = 1 − |2t − 1|.
    Polychain,
    /// A fitted Bezier curve to a full checkpoint: θ₁ − θ₀ is dense delta 0 at t, the bend is
    /// LoRA slot 0 at φ(t).
    BezierCheckpoint,
    /// The polychain version of [`PathKind::BezierCheckpoint`].
    PolychainCheckpoint,
    /// A fitted Bezier curve to a LoRA endpoint with a full (dense) bend, walked through its
    /// control point θ_b: θ(t) = θ₀ + (t − φ/2)·ΔW + φ·(θ_b − θ₀), the adapter in slot 0 and
    /// θ_b − θ₀ dense delta 0 (θ_b = θ₀ + ½ΔW + Δ_bend, so this is θ₀ + t·ΔW + φ·Δ_bend).
    BezierFull,
    /// The polychain version of [`PathKind::BezierFull`].
    PolychainFull,
    /// A fitted Bezier curve to a full checkpoint with a full bend: θ₁ − θ₀ is dense delta 0 at
    /// t − φ/2 and θ_b − θ₀ dense delta 1 at φ.
    BezierCheckpointFull,
    /// The polychain version of [`PathKind::BezierCheckpointFull`].
    PolychainCheckpointFull,
}

impl PathKind {
    /// The coefficients of the model's LoRA slots and dense deltas at `t`. For
    /// [`PathKind::Checkpoints`], `checkpoint_samples[k]` is the samples seen of slot k's adapter
    /// and `t` selects the slot holding exactly that many (every slot off: the base).
    pub fn point(self, t: f64, checkpoint_samples: &[f64]) -> PathPointSpec {
        if self == PathKind::Checkpoints {
            return PathPointSpec {
                lora: checkpoint_samples
                    .iter()
                    .map(|&s| if s == t { 1.0 } else { 0.0 })
                    .collect(),
                dense: vec![],
            };
        }
        let t = t as f32;
        match self {
            PathKind::Lora => PathPointSpec {
                lora: vec![t],
                dense: vec![],
            },
            PathKind::TwoAdapter => PathPointSpec {
                lora: vec![1.0 - t, t],
                dense: vec![],
            },
            PathKind::FullWeight => PathPointSpec {
                lora: vec![],
                dense: vec![t],
            },
            PathKind::Bezier | PathKind::Polychain => {
                let kind = if self == PathKind::Bezier {
                    CurveKind::Bezier
                } else {
                    CurveKind::Polychain
                };
                PathPointSpec {
                    lora: vec![t, kind.phi(f64::from(t)) as f32],
                    dense: vec![],
                }
            }
            PathKind::BezierCheckpoint | PathKind::PolychainCheckpoint => {
                let kind = if self == PathKind::BezierCheckpoint {
                    CurveKind::Bezier
                } else {
                    CurveKind::Polychain
                };
                PathPointSpec {
                    lora: vec![kind.phi(f64::from(t)) as f32],
                    dense: vec![t],
                }
            }
            PathKind::BezierFull
            | PathKind::PolychainFull
            | PathKind::BezierCheckpointFull
            | PathKind::PolychainCheckpointFull => {
                let kind = if matches!(self, PathKind::BezierFull | PathKind::BezierCheckpointFull)
                {
                    CurveKind::Bezier
                } else {
                    CurveKind::Polychain
                };
                let phi = kind.phi(f64::from(t));
                // In f64, so that t = 1 gives exactly 1 − 0 and the ends stay the endpoints.
                let along = (f64::from(t) - phi / 2.0) as f32;
                if matches!(self, PathKind::BezierFull | PathKind::PolychainFull) {
                    PathPointSpec {
                        lora: vec![along],
                        dense: vec![phi as f32],
                    }
                } else {
                    PathPointSpec {
                        lora: vec![],
                        dense: vec![along, phi as f32],
                    }
                }
            }
            // Handled above.
            PathKind::Checkpoints => PathPointSpec::default(),
        }
    }

    /// What the coordinate of a point means: `t` on a path, or `samples_seen` for checkpoints.
    pub fn coordinate(self) -> &'static str {
        match self {
            PathKind::Checkpoints => "samples_seen",
            _ => "t",
        }
    }

    /// The name `run.json` uses (`lora`, `two_adapter`, `full_weight`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Lora => "lora",
            PathKind::TwoAdapter => "two_adapter",
            PathKind::FullWeight => "full_weight",
            PathKind::Checkpoints => "checkpoints",
            PathKind::Bezier => "bezier",
            PathKind::Polychain => "polychain",
            PathKind::BezierCheckpoint => "bezier_checkpoint",
            PathKind::PolychainCheckpoint => "polychain_checkpoint",
            PathKind::BezierFull => "bezier_full",
            PathKind::PolychainFull => "polychain_full",
            PathKind::BezierCheckpointFull => "bezier_checkpoint_full",
            PathKind::PolychainCheckpointFull => "polychain_checkpoint_full",
        }
    }

    /// Sequences at different t can share one forward pass (the path only moves LoRA slots,
    /// whose coefficients are per sequence), so the weights are read once for several t.
    pub fn batches_across_t(self) -> bool {
        matches!(
            self,
            PathKind::Lora
                | PathKind::TwoAdapter
                | PathKind::Checkpoints
                | PathKind::Bezier
                | PathKind::Polychain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_the_models_they_name() {
        assert_eq!(PathKind::Lora.point(0.0, &[]).lora, vec![0.0]);
        assert_eq!(PathKind::Lora.point(1.0, &[]).lora, vec![1.0]);
        assert_eq!(PathKind::TwoAdapter.point(0.0, &[]).lora, vec![1.0, 0.0]);
        assert_eq!(PathKind::TwoAdapter.point(1.0, &[]).lora, vec![0.0, 1.0]);
        assert_eq!(PathKind::FullWeight.point(0.25, &[]).dense, vec![0.25]);
        assert_eq!(PathKind::Lora.point(-0.5, &[]).lora, vec![-0.5]);
        assert_eq!(PathKind::Bezier.point(0.0, &[]).lora, vec![0.0, 0.0]);
        // A full bend walked through θ_b: the ends are θ₀ and the endpoint, and t = ½ is
        // θ₀ + ½ΔW·(1 − φ) + φ·(θ_b − θ₀) = θ_b for the polychain (φ = 1).
        assert_eq!(PathKind::BezierFull.point(0.0, &[]).lora, vec![0.0]);
        assert_eq!(PathKind::BezierFull.point(0.0, &[]).dense, vec![0.0]);
        assert_eq!(PathKind::BezierFull.point(1.0, &[]).lora, vec![1.0]);
        assert_eq!(PathKind::BezierFull.point(1.0, &[]).dense, vec![0.0]);
        assert_eq!(PathKind::PolychainFull.point(0.5, &[]).lora, vec![0.0]);
        assert_eq!(PathKind::PolychainFull.point(0.5, &[]).dense, vec![1.0]);
        let p = PathKind::BezierCheckpointFull.point(0.5, &[]);
        assert!(p.lora.is_empty());
        assert_eq!(p.dense, vec![0.25, 0.5]);
        assert_eq!(
            PathKind::BezierCheckpointFull.point(1.0, &[]).dense,
            vec![1.0, 0.0]
        );
        assert_eq!(PathKind::Bezier.point(1.0, &[]).lora, vec![1.0, 0.0]);
        assert_eq!(PathKind::Bezier.point(0.5, &[]).lora, vec![0.5, 0.5]);
        assert_eq!(PathKind::Polychain.point(0.5, &[]).lora, vec![0.5, 1.0]);
        let mid = PathKind::PolychainCheckpoint.point(0.5, &[]);
        assert_eq!((mid.lora, mid.dense), (vec![1.0], vec![0.5]));
        let end = PathKind::BezierCheckpoint.point(1.0, &[]);
        assert_eq!((end.lora, end.dense), (vec![0.0], vec![1.0]));
        let ckpts = [8.0, 16.0, 20.0];
        assert_eq!(
            PathKind::Checkpoints.point(16.0, &ckpts).lora,
            vec![0.0, 1.0, 0.0]
        );
        assert_eq!(PathKind::Checkpoints.point(0.0, &ckpts).lora, vec![0.0; 3]);
    }
}
