//! Curves between θ₀ and an endpoint (Garipov et al. 2018): the straight path plus a trained
//! bend whose coefficient φ(t) vanishes at both ends,
//! θ(t) = θ₀ + t·Δ_H + φ(t)·Δ_bend.
//! In the model the endpoint's LoRA delta is slot 0 (coefficient t) and the bend is slot 1
//! (coefficient φ(t)), each with a per-sequence coefficient, so one batch covers many t.

use serde::{Deserialize, Serialize};

use crate::data::rng::SplitMix64;

/// The bend's shape along t.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CurveKind {
    /// Quadratic Bezier with control point midpoint + Δ_bend: φ(t) = 2t(1 − t).
    Bezier,
    /// One-bend polychain with its bend at midpoint + Δ_bend (t = ½): φ(t) = 1 − |2t − 1|.
    Polychain,
}

impl CurveKind {
    /// The bend's coefficient at `t` (0 at both ends).
    pub fn phi(self, t: f64) -> f64 {
        match self {
            CurveKind::Bezier => 2.0 * t * (1.0 - t),
            CurveKind::Polychain => 1.0 - (2.0 * t - 1.0).abs(),
        }
    }
}

/// How each step picks the t of its sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TSampling {
    /// Each sequence draws its own t uniformly on [0, 1].
    Uniform,
    /// A batch of n sequences draws one t in each of [k/n, (k+1)/n), so every batch covers the
    /// whole path.
    Stratified,
}

/// What the curve bends towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurveEndpoint {
    /// A LoRA adapter of the base: its delta is LoRA slot 0 at a per-sequence t; the bend is
    /// slot 1.
    #[default]
    Lora,
    /// A full checkpoint θ₁: θ₁ − θ₀ is dense delta 0 at one t per batch (dense coefficients are
    /// per batch); the bend is LoRA slot 0.
    Checkpoint,
}

/// What the bend Δ_bend is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BendKind {
    /// A LoRA (rank and modules chosen by the user), trained in a LoRA slot with a per-sequence
    /// coefficient φ(t); saved as a PEFT adapter.
    #[default]
    Lora,
    /// Dense weights of the chosen linear modules (for small models: as many parameters as
    /// those layers), trained as a dense delta with one φ(t) per batch, as Garipov et al. fit
    /// their bends; saved as the control point θ_b, a Hugging Face model folder.
    Full,
}

impl BendKind {
    pub fn is_lora(&self) -> bool {
        *self == BendKind::Lora
    }
}

/// What makes a training run a curve fit (stored with the recipe in `run.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveSpec {
    pub kind: CurveKind,
    pub t_sampling: TSampling,
    #[serde(default)]
    pub endpoint: CurveEndpoint,
    /// Left out of `run.json` for a LoRA bend, so folders fitted before full bends existed
    /// still resume.
    #[serde(default, skip_serializing_if = "BendKind::is_lora")]
    pub bend: BendKind,
}

impl CurveSpec {
    /// The LoRA slot a LoRA bend is trained in (a full bend has no LoRA slot; this is then the
    /// first slot after the endpoint's).
    pub fn bend_slot(&self) -> usize {
        match self.endpoint {
            CurveEndpoint::Lora => 1,
            CurveEndpoint::Checkpoint => 0,
        }
    }

    /// The dense-delta index a full bend is trained at: after the endpoint's θ₁ − θ₀ for a
    /// checkpoint endpoint.
    pub fn dense_bend_index(&self) -> usize {
        match self.endpoint {
            CurveEndpoint::Lora => 0,
            CurveEndpoint::Checkpoint => 1,
        }
    }

    /// Coefficients of a batch of `n` sequences and the t of each: per-sequence t for a LoRA
    /// endpoint with a LoRA bend; one t for the whole batch when anything dense moves (a
    /// checkpoint endpoint or a full bend: dense coefficients are shared by a batch).
    pub fn coefficients(
        &self,
        seed: u64,
        step: usize,
        batch: usize,
        n: usize,
    ) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f64>) {
        let phi = |t: f64| self.kind.phi(t) as f32;
        let one_t = || {
            sample_ts(TSampling::Uniform, seed, step, batch, 1)
                .first()
                .copied()
                .unwrap_or(0.5)
        };
        if self.bend == BendKind::Full {
            let t = one_t();
            return match self.endpoint {
                CurveEndpoint::Lora => (vec![vec![t as f32; n]], vec![phi(t)], vec![t; n]),
                CurveEndpoint::Checkpoint => (Vec::new(), vec![t as f32, phi(t)], vec![t; n]),
            };
        }
        match self.endpoint {
            CurveEndpoint::Lora => {
                let ts = sample_ts(self.t_sampling, seed, step, batch, n);
                let lora = vec![
                    ts.iter().map(|&t| t as f32).collect(),
                    ts.iter().map(|&t| phi(t)).collect(),
                ];
                (lora, Vec::new(), ts)
            }
            CurveEndpoint::Checkpoint => {
                let t = one_t();
                (vec![vec![phi(t); n]], vec![t as f32], vec![t; n])
            }
        }
    }
}

/// The file that marks a curve fit's folder.
pub const CURVE_FILE: &str = "curve.json";

/// `curve.json` of a fitted curve's folder: the endpoint it bends towards and the bend's kind;
/// the bend itself is in `bend/`: a PEFT adapter (a LoRA bend, at coefficient φ(t)), or the
/// control point θ_b as a Hugging Face model folder (a full bend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveRecord {
    pub schema: String,
    pub kind: CurveKind,
    pub base: String,
    /// The endpoint: a LoRA adapter or a full checkpoint (absolute path).
    pub endpoint: String,
    #[serde(default)]
    pub endpoint_kind: CurveEndpoint,
    /// `lora` or `full`.
    pub bend: BendKind,
}

pub const CURVE_SCHEMA: &str = "basin.curve.v1";

impl CurveRecord {
    /// Reads `dir/curve.json`; an error names the file and the problem.
    pub fn read(dir: &std::path::Path) -> Result<Self, String> {
        let path = dir.join(CURVE_FILE);
        let text =
            crate::bounded::read_to_string(&path, crate::bounded::CONFIG_BYTES).map_err(|e| {
                format!(
                    "{}: {e} (a `basin curve fit` folder holds curve.json)",
                    path.display()
                )
            })?;
        let record: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a curve record: {e}", path.display()))?;
        if record.schema != CURVE_SCHEMA {
            return Err(format!(
                "{}: schema `{}`; this Basin reads {CURVE_SCHEMA}",
                path.display(),
                record.schema,
            ));
        }
        Ok(record)
    }

    /// The bend of a finished fit (a PEFT adapter, or θ_b's model folder for a full bend).
    pub fn bend_dir(dir: &std::path::Path) -> std::path::PathBuf {
        dir.join(super::train_store::StoreLayout::CURVE_FIT.final_dir)
    }
}

/// The t of each of a batch's `n` sequences: seeded by (seed, step, batch index), so a resumed
/// run draws the same values as an uninterrupted one.
pub fn sample_ts(sampling: TSampling, seed: u64, step: usize, batch: usize, n: usize) -> Vec<f64> {
    let mut rng = SplitMix64::derive(seed, &format!("curve-t-step-{step}-batch-{batch}"));
    (0..n)
        .map(|k| {
            let u = rng.next_f64();
            match sampling {
                TSampling::Uniform => u,
                TSampling::Stratified => (k as f64 + u) / n.max(1) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bends_vanish_at_the_ends_and_peak_at_the_middle() {
        for kind in [CurveKind::Bezier, CurveKind::Polychain] {
            assert_eq!(kind.phi(0.0), 0.0);
            assert_eq!(kind.phi(1.0), 0.0);
        }
        assert_eq!(CurveKind::Bezier.phi(0.5), 0.5);
        assert_eq!(CurveKind::Polychain.phi(0.5), 1.0);
        assert!((CurveKind::Polychain.phi(0.25) - 0.5).abs() < 1e-12);
        assert!((CurveKind::Bezier.phi(0.25) - 0.375).abs() < 1e-12);
    }

    #[test]
    fn t_samples_are_seeded_in_range_and_stratified_covers_every_stratum() {
        let a = sample_ts(TSampling::Uniform, 3, 7, 0, 16);
        assert_eq!(a, sample_ts(TSampling::Uniform, 3, 7, 0, 16));
        assert_ne!(a, sample_ts(TSampling::Uniform, 3, 8, 0, 16));
        assert!(a.iter().all(|t| (0.0..1.0).contains(t)));
        let s = sample_ts(TSampling::Stratified, 3, 7, 0, 8);
        for (k, t) in s.iter().enumerate() {
            assert!(*t >= k as f64 / 8.0 && *t < (k + 1) as f64 / 8.0, "{s:?}");
        }
    }
}
