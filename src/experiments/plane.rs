//! Loss-landscape planes: θ(α, β) = θ_c + α·u + β·v, written in the coefficients of the
//! directions a model holds (its LoRA slots), so a cell of the grid is one more set of
//! per-sequence coefficients, like a point of a path.
//!
//! Directions stay low-rank and are never merged: inner products of LoRA deltas come from their
//! factors (⟨B₁A₁, B₂A₂⟩ = Σ (B₁ᵀB₂) ∘ (A₁A₂ᵀ)), which is all Gram–Schmidt and the projection
//! of a path onto the plane need.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::eval::PathPointSpec;
use crate::checkpoint::{
    peft::{LoraAdapter, LoraModule},
    tensors::{HostTensor, TensorSource},
};
use crate::data::rng::SplitMix64;

/// `plane.json` schema.
pub const PLANE_SCHEMA: &str = "basin.plane.v1";

/// How the plane is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaneKind {
    /// Through θ₀, θ_H and a third point (a fitted curve's bend, else a seeded random
    /// direction): u = θ_H − θ₀, v = the third direction made orthogonal to u and scaled to ‖u‖,
    /// so θ₀ is (0, 0) and θ_H is (1, 0) (Garipov et al. 2018).
    Endpoints,
    /// Two seeded random directions around a centre, each filter-normalised (Li et al. 2018).
    Random,
}

impl PlaneKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "endpoints" => Ok(Self::Endpoints),
            "random" => Ok(Self::Random),
            other => Err(format!("--plane `{other}`: expected endpoints or random")),
        }
    }
}

/// The centre of a random plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Center {
    Base,
    End,
    /// θ(t) on the path (the fitted curve when one is given).
    T(f64),
}

impl Center {
    /// `base`, `end` or `t=0.5`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("--center `{s}`: expected base, end or t=<number> (e.g. t=0.5)");
        match s {
            "base" => Ok(Self::Base),
            "end" => Ok(Self::End),
            _ => {
                let t: f64 = s
                    .strip_prefix("t=")
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if t.is_finite() {
                    Ok(Self::T(t))
                } else {
                    Err(bad())
                }
            }
        }
    }

    pub fn label(self) -> String {
        match self {
            Self::Base => "base".into(),
            Self::End => "end".into(),
            Self::T(t) => format!("t={t}"),
        }
    }
}

/// A grid of cells: `nx` values of α by `ny` values of β, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub nx: usize,
    pub ny: usize,
    pub alpha: (f64, f64),
    pub beta: (f64, f64),
}

impl Grid {
    /// `--grid 21x21` and `--range -0.5:1.5,-0.5:1.5`.
    pub fn parse(grid: &str, range: &str) -> Result<Self, String> {
        let bad_grid = || format!("--grid `{grid}`: expected NXxNY, e.g. 21x21 (each 1..=501)");
        let (nx, ny) = grid.split_once(['x', 'X']).ok_or_else(bad_grid)?;
        let nx: usize = nx.trim().parse().map_err(|_| bad_grid())?;
        let ny: usize = ny.trim().parse().map_err(|_| bad_grid())?;
        if !(1..=501).contains(&nx) || !(1..=501).contains(&ny) {
            return Err(bad_grid());
        }
        let bad_range = || {
            format!(
                "--range `{range}`: expected A0:A1,B0:B1 with finite numbers, e.g. -0.5:1.5,-0.5:1.5"
            )
        };
        let (a, b) = range.split_once(',').ok_or_else(bad_range)?;
        let pair = |s: &str| -> Result<(f64, f64), String> {
            let (lo, hi) = s.split_once(':').ok_or_else(bad_range)?;
            let lo: f64 = lo.trim().parse().map_err(|_| bad_range())?;
            let hi: f64 = hi.trim().parse().map_err(|_| bad_range())?;
            if !lo.is_finite() || !hi.is_finite() {
                return Err(bad_range());
            }
            Ok((lo, hi))
        };
        let (alpha, beta) = (pair(a)?, pair(b)?);
        if (nx > 1 && alpha.0 == alpha.1) || (ny > 1 && beta.0 == beta.1) {
            return Err(format!(
                "--range `{range}`: an axis with several cells needs two different ends"
            ));
        }
        Ok(Self {
            nx,
            ny,
            alpha,
            beta,
        })
    }

    fn axis(n: usize, (lo, hi): (f64, f64)) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let v = if n == 1 {
                    lo
                } else {
                    lo + i as f64 * (hi - lo) / (n - 1) as f64
                };
                // Canonical, as t values are, so a resume finds the same keys.
                super::sweep_store::t_key(v).parse().unwrap_or(v)
            })
            .collect()
    }

    pub fn alphas(&self) -> Vec<f64> {
        Self::axis(self.nx, self.alpha)
    }

    pub fn betas(&self) -> Vec<f64> {
        Self::axis(self.ny, self.beta)
    }

    /// Every cell (α, β), row by row from the lowest β.
    pub fn cells(&self) -> Vec<(f64, f64)> {
        let alphas = self.alphas();
        self.betas()
            .into_iter()
            .flat_map(|b| alphas.iter().map(move |&a| (a, b)))
            .collect()
    }
}

/// ⟨s₁B₁A₁, s₂B₂A₂⟩_F of two LoRA deltas of one layer, from their factors (f64 sums).
/// Shapes: A `[r, in]`, B `[out, r]`.
pub fn lora_inner(x: &LoraModule, y: &LoraModule) -> f64 {
    let (rx, ry) = (x.a.shape[0], y.a.shape[0]);
    let (n_in, n_out) = (x.a.shape[1], x.b.shape[0]);
    if y.a.shape[1] != n_in || y.b.shape[0] != n_out {
        return 0.0;
    }
    // M = B₁ᵀB₂ [rx, ry], N = A₁A₂ᵀ [rx, ry].
    let mut total = 0.0f64;
    for p in 0..rx {
        for q in 0..ry {
            let mut m = 0.0f64;
            for o in 0..n_out {
                m += f64::from(x.b.data[o * rx + p]) * f64::from(y.b.data[o * ry + q]);
            }
            let mut n = 0.0f64;
            for i in 0..n_in {
                n += f64::from(x.a.data[p * n_in + i]) * f64::from(y.a.data[q * n_in + i]);
            }
            total += m * n;
        }
    }
    total * x.scale * y.scale
}

/// ⟨ΔW_x, ΔW_y⟩ summed over every layer both adapters change.
pub fn adapter_inner(x: &LoraAdapter, y: &LoraAdapter) -> f64 {
    x.modules
        .iter()
        .filter_map(|(name, mx)| y.modules.get(name).map(|my| lora_inner(mx, my)))
        .sum()
}

/// A direction of weight space the model holds: a LoRA adapter's ΔW (a slot), or the dense
/// difference θ₁ − θ₀ of a full checkpoint (a dense delta).
#[derive(Clone, Copy)]
pub enum Direction<'a> {
    Lora(&'a LoraAdapter),
    Dense {
        base: &'a dyn TensorSource,
        target: &'a dyn TensorSource,
    },
}

/// θ₁ − θ₀ of one tensor, read from the two files (f64 to keep small differences exact).
fn dense_delta(
    base: &dyn TensorSource,
    target: &dyn TensorSource,
    name: &str,
) -> Result<Option<Vec<f64>>, String> {
    if target.tensor_shape(name).is_none() {
        return Ok(None);
    }
    let b = base.load_f32(name).map_err(|e| e.to_string())?;
    let t = target.load_f32(name).map_err(|e| e.to_string())?;
    if b.shape != t.shape {
        return Err(format!(
            "{}: `{name}` has shape {:?}, the base's is {:?}",
            target.origin().display(),
            t.shape,
            b.shape
        ));
    }
    Ok(Some(
        t.data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| f64::from(x) - f64::from(y))
            .collect(),
    ))
}

/// ⟨θ₁ − θ₀, s·B·A⟩ over the adapter's layers: Σₚ Σₒ Bₒₚ Σᵢ Dₒᵢ Aₚᵢ.
fn dense_lora_inner(
    base: &dyn TensorSource,
    target: &dyn TensorSource,
    adapter: &LoraAdapter,
) -> Result<f64, String> {
    let mut total = 0.0;
    for (name, m) in &adapter.modules {
        let Some(d) = dense_delta(base, target, &format!("{name}.weight"))? else {
            continue;
        };
        let (r, n_in, n_out) = (m.a.shape[0], m.a.shape[1], m.b.shape[0]);
        if d.len() != n_in * n_out {
            return Err(format!(
                "{}: `{name}.weight` does not match the adapter's [{n_out}, {n_in}] factors",
                target.origin().display()
            ));
        }
        let mut sum = 0.0;
        for o in 0..n_out {
            let row = &d[o * n_in..(o + 1) * n_in];
            for p in 0..r {
                let a = &m.a.data[p * n_in..(p + 1) * n_in];
                let da: f64 = row.iter().zip(a).map(|(&x, &y)| x * f64::from(y)).sum();
                sum += f64::from(m.b.data[o * r + p]) * da;
            }
        }
        total += sum * m.scale;
    }
    Ok(total)
}

/// ⟨θ₁ − θ₀, θ₂ − θ₀⟩ over every tensor of the base.
fn dense_inner(
    base: &dyn TensorSource,
    x: &dyn TensorSource,
    y: &dyn TensorSource,
) -> Result<f64, String> {
    let mut total = 0.0;
    for name in base.tensor_names() {
        let (Some(dx), Some(dy)) = (dense_delta(base, x, &name)?, dense_delta(base, y, &name)?)
        else {
            continue;
        };
        total += dx.iter().zip(&dy).map(|(a, b)| a * b).sum::<f64>();
    }
    Ok(total)
}

/// ⟨ΔW_x, ΔW_y⟩ of two directions.
pub fn direction_inner(x: Direction, y: Direction) -> Result<f64, String> {
    match (x, y) {
        (Direction::Lora(a), Direction::Lora(b)) => Ok(adapter_inner(a, b)),
        (Direction::Dense { base, target }, Direction::Lora(a))
        | (Direction::Lora(a), Direction::Dense { base, target }) => {
            dense_lora_inner(base, target, a)
        }
        (Direction::Dense { base, target: x }, Direction::Dense { target: y, .. }) => {
            dense_inner(base, x, y)
        }
    }
}

/// The Gram matrix G[k][l] = ⟨ΔW_k, ΔW_l⟩ of the model's LoRA slots.
pub fn gram(slots: &[&LoraAdapter]) -> Vec<Vec<f64>> {
    let dirs: Vec<Direction> = slots.iter().map(|a| Direction::Lora(a)).collect();
    // LoRA–LoRA products read no file and cannot fail.
    gram_of(&dirs).unwrap_or_default()
}

/// The Gram matrix of any directions (dense ones read their tensors one at a time).
pub fn gram_of(dirs: &[Direction]) -> Result<Vec<Vec<f64>>, String> {
    let mut g = vec![vec![0.0; dirs.len()]; dirs.len()];
    for k in 0..dirs.len() {
        for l in k..dirs.len() {
            let v = direction_inner(dirs[k], dirs[l])?;
            g[k][l] = v;
            g[l][k] = v;
        }
    }
    Ok(g)
}

/// The linear layers of a model's files as (name, in, out): every `model.layers.N.*_proj`
/// weight, the layers a random direction perturbs when θ_H is a full checkpoint.
pub fn linear_layers(base: &dyn TensorSource) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for name in base.tensor_names() {
        let Some(module) = name.strip_suffix(".weight") else {
            continue;
        };
        let is_linear = crate::model::trainable::LINEAR_MODULES
            .iter()
            .any(|(group, m)| module.ends_with(&format!(".{group}.{m}")));
        if let (true, Some(shape)) = (is_linear, base.tensor_shape(&name))
            && shape.len() == 2
        {
            out.push((module.to_string(), shape[1], shape[0]));
        }
    }
    out
}

/// xᵀ G y.
fn bilinear(g: &[Vec<f64>], x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for (k, row) in g.iter().enumerate() {
        for (l, gkl) in row.iter().enumerate() {
            s += x.get(k).copied().unwrap_or(0.0) * gkl * y.get(l).copied().unwrap_or(0.0);
        }
    }
    s
}

/// A random direction on the layers of `like` (rank `rank`, or each layer's rank in `like`;
/// Gaussian factors drawn from `seed` and `purpose` in module order), each output row
/// filter-normalised to the norm of the base weight's row (Li et al. 2018): row i of the delta
/// is scaled to ‖W₀[i, :]‖. The result is a
/// LoRA adapter (scale 1) so it sits in a slot like any other.
pub fn random_direction(
    like: &LoraAdapter,
    rank: Option<usize>,
    seed: u64,
    purpose: &str,
    base: &dyn TensorSource,
    filter_norm: bool,
) -> Result<LoraAdapter, String> {
    let layers: Vec<(String, usize, usize, usize)> = like
        .modules
        .iter()
        .map(|(name, m)| {
            (
                name.clone(),
                m.a.shape[1],
                m.b.shape[0],
                rank.unwrap_or(m.a.shape[0]),
            )
        })
        .collect();
    let mut config = like.config.clone();
    config.r = rank.unwrap_or(like.config.r).max(1);
    random_direction_on(&layers, config, seed, purpose, base, filter_norm)
}

/// [`random_direction`] on explicit layers `(name, in, out, rank)`; `config` is the adapter
/// configuration it carries (its scaling is rewritten: the factors hold the scale).
pub fn random_direction_on(
    layers: &[(String, usize, usize, usize)],
    mut config: crate::checkpoint::peft::AdapterConfig,
    seed: u64,
    purpose: &str,
    base: &dyn TensorSource,
    filter_norm: bool,
) -> Result<LoraAdapter, String> {
    let mut rng = SplitMix64::derive(seed, purpose);
    let mut modules = BTreeMap::new();
    for (name, n_in, n_out, rank) in layers {
        let (n_in, n_out, rank) = (*n_in, *n_out, (*rank).max(1));
        let a: Vec<f32> = (0..rank * n_in)
            .map(|_| gaussian(&mut rng) as f32)
            .collect();
        let mut b: Vec<f32> = (0..n_out * rank)
            .map(|_| gaussian(&mut rng) as f32)
            .collect();
        if filter_norm {
            let weight_name = format!("{name}.weight");
            let w = base.load_f32(&weight_name).map_err(|e| e.to_string())?;
            if w.shape != [n_out, n_in] {
                return Err(format!(
                    "{}: `{weight_name}` has shape {:?}, the direction needs [{n_out}, {n_in}]",
                    base.origin().display(),
                    w.shape
                ));
            }
            // ‖row i of B A‖² = b_i (A Aᵀ) b_iᵀ.
            let mut aat = vec![0.0f64; rank * rank];
            for p in 0..rank {
                for q in 0..rank {
                    aat[p * rank + q] = (0..n_in)
                        .map(|i| f64::from(a[p * n_in + i]) * f64::from(a[q * n_in + i]))
                        .sum();
                }
            }
            for o in 0..n_out {
                let row = &b[o * rank..(o + 1) * rank];
                let mut sq = 0.0f64;
                for p in 0..rank {
                    for q in 0..rank {
                        sq += f64::from(row[p]) * aat[p * rank + q] * f64::from(row[q]);
                    }
                }
                let target: f64 = w.data[o * n_in..(o + 1) * n_in]
                    .iter()
                    .map(|&v| f64::from(v) * f64::from(v))
                    .sum::<f64>()
                    .sqrt();
                let factor = if sq > 0.0 { target / sq.sqrt() } else { 0.0 };
                for v in &mut b[o * rank..(o + 1) * rank] {
                    *v = (f64::from(*v) * factor) as f32;
                }
            }
        }
        modules.insert(
            name.clone(),
            LoraModule {
                a: HostTensor::new(vec![rank, n_in], a),
                b: HostTensor::new(vec![n_out, rank], b),
                scale: 1.0,
            },
        );
    }
    config.lora_alpha = config.r as f64;
    config.use_rslora = false;
    config.rank_pattern.clear();
    config.alpha_pattern.clear();
    Ok(LoraAdapter {
        origin: std::path::PathBuf::from(format!("random direction `{purpose}`, seed {seed}")),
        config,
        modules,
    })
}

/// A standard normal draw (Box–Muller on the seeded stream).
fn gaussian(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A plane in the coefficient space of the model's LoRA slots, with the slots' Gram matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plane {
    /// The first `n_dense` coefficients are the model's dense deltas, the rest its LoRA slots.
    #[serde(default)]
    pub n_dense: usize,
    pub center: Vec<f64>,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
    pub gram: Vec<Vec<f64>>,
}

/// Where a point of weight space falls on a plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub alpha: f64,
    pub beta: f64,
    /// Distance from the point to the plane (0 for a point in it).
    pub off_plane: f64,
}

impl Plane {
    /// The endpoints plane: u = slot `end`, v = slot `third` made orthogonal to u and scaled to
    /// ‖u‖ (Gram–Schmidt in the Frobenius inner product of all weights).
    pub fn endpoints(gram: Vec<Vec<f64>>, end: usize, third: usize) -> Result<Plane, String> {
        let n = gram.len();
        let unit = |k: usize| {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            e
        };
        let uu = gram[end][end];
        if uu.is_nan() || uu <= 0.0 || !uu.is_finite() {
            return Err(format!(
                "the endpoint's weight difference has norm² {uu}: θ_H equals θ₀, there is no plane"
            ));
        }
        let gamma = gram[end][third] / uu;
        let mut v = unit(third);
        v[end] -= gamma;
        let vv = bilinear(&gram, &v, &v);
        // A third direction (nearly) parallel to u spans no plane.
        if vv.is_nan()
            || vv <= 1e-10 * uu * gram[third][third].max(f64::MIN_POSITIVE)
            || !vv.is_finite()
        {
            return Err(
                "the third direction is parallel to θ_H − θ₀ (after Gram–Schmidt nothing is left); \
                 choose another --seed or curve"
                    .into(),
            );
        }
        let s = (uu / vv).sqrt();
        for x in &mut v {
            *x *= s;
        }
        Ok(Plane {
            n_dense: 0,
            center: vec![0.0; n],
            u: unit(end),
            v,
            gram,
        })
    }

    /// A plane around `center` spanned by two slots as they are (random directions).
    pub fn around(gram: Vec<Vec<f64>>, center: Vec<f64>, u_slot: usize, v_slot: usize) -> Plane {
        let n = gram.len();
        let unit = |k: usize| {
            let mut e = vec![0.0; n];
            e[k] = 1.0;
            e
        };
        Plane {
            n_dense: 0,
            center,
            u: unit(u_slot),
            v: unit(v_slot),
            gram,
        }
    }

    /// The slot coefficients of θ_c + α·u + β·v.
    pub fn coefficients(&self, alpha: f64, beta: f64) -> Vec<f64> {
        (0..self.center.len())
            .map(|k| self.center[k] + alpha * self.u[k] + beta * self.v[k])
            .collect()
    }

    /// The model's coefficients at a cell (dense deltas first, then LoRA slots).
    pub fn point(&self, alpha: f64, beta: f64) -> PathPointSpec {
        let c: Vec<f32> = self
            .coefficients(alpha, beta)
            .into_iter()
            .map(|c| c as f32)
            .collect();
        let split = self.n_dense.min(c.len());
        PathPointSpec {
            dense: c[..split].to_vec(),
            lora: c[split..].to_vec(),
        }
    }

    pub fn norm_u(&self) -> f64 {
        bilinear(&self.gram, &self.u, &self.u).max(0.0).sqrt()
    }

    pub fn norm_v(&self) -> f64 {
        bilinear(&self.gram, &self.v, &self.v).max(0.0).sqrt()
    }

    /// cos ∠(u, v).
    pub fn cos_uv(&self) -> f64 {
        bilinear(&self.gram, &self.u, &self.v)
            / (self.norm_u() * self.norm_v()).max(f64::MIN_POSITIVE)
    }

    /// The orthogonal projection of θ₀ + Σ pₖ·ΔWₖ onto the plane (least squares in the
    /// Frobenius metric), with its distance to the plane.
    pub fn project(&self, p: &[f64]) -> Projection {
        let w: Vec<f64> = (0..self.center.len())
            .map(|k| p.get(k).copied().unwrap_or(0.0) - self.center[k])
            .collect();
        let g = &self.gram;
        let (a11, a12, a22) = (
            bilinear(g, &self.u, &self.u),
            bilinear(g, &self.u, &self.v),
            bilinear(g, &self.v, &self.v),
        );
        let (r1, r2) = (bilinear(g, &self.u, &w), bilinear(g, &self.v, &w));
        let det = a11 * a22 - a12 * a12;
        let (alpha, beta) = if det.abs() > f64::MIN_POSITIVE {
            ((r1 * a22 - r2 * a12) / det, (a11 * r2 - a12 * r1) / det)
        } else {
            (f64::NAN, f64::NAN)
        };
        let residual = bilinear(g, &w, &w) - (alpha * r1 + beta * r2);
        Projection {
            alpha,
            beta,
            off_plane: residual.max(0.0).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::peft::AdapterConfig;

    fn module(rank: usize, n_in: usize, n_out: usize, seed: u64, scale: f64) -> LoraModule {
        let mut rng = SplitMix64::new(seed);
        LoraModule {
            a: HostTensor::new(
                vec![rank, n_in],
                (0..rank * n_in)
                    .map(|_| gaussian(&mut rng) as f32)
                    .collect(),
            ),
            b: HostTensor::new(
                vec![n_out, rank],
                (0..n_out * rank)
                    .map(|_| gaussian(&mut rng) as f32)
                    .collect(),
            ),
            scale,
        }
    }

    fn dense(m: &LoraModule) -> Vec<f64> {
        let (r, n_in, n_out) = (m.a.shape[0], m.a.shape[1], m.b.shape[0]);
        let mut d = vec![0.0; n_out * n_in];
        for o in 0..n_out {
            for i in 0..n_in {
                d[o * n_in + i] = (0..r)
                    .map(|p| f64::from(m.b.data[o * r + p]) * f64::from(m.a.data[p * n_in + i]))
                    .sum::<f64>()
                    * m.scale;
            }
        }
        d
    }

    #[test]
    fn low_rank_inner_product_equals_the_dense_one() {
        let x = module(3, 7, 5, 1, 2.0);
        let y = module(2, 7, 5, 2, 0.5);
        let want: f64 = dense(&x).iter().zip(dense(&y)).map(|(a, b)| a * b).sum();
        assert!((lora_inner(&x, &y) - want).abs() < 1e-9 * want.abs().max(1.0));
        let self_norm: f64 = dense(&x).iter().map(|a| a * a).sum();
        assert!((lora_inner(&x, &x) - self_norm).abs() < 1e-9 * self_norm);
    }

    #[test]
    fn endpoints_plane_puts_base_and_end_at_known_coordinates() {
        let gram = vec![vec![4.0, 1.5], vec![1.5, 2.0]];
        let plane = Plane::endpoints(gram, 0, 1).unwrap();
        // ‖v‖ = ‖u‖ and u ⟂ v.
        assert!((plane.norm_v() - plane.norm_u()).abs() < 1e-12);
        assert!(plane.cos_uv().abs() < 1e-12);
        assert_eq!(plane.coefficients(1.0, 0.0), vec![1.0, 0.0]);
        assert_eq!(plane.coefficients(0.0, 0.0), vec![0.0, 0.0]);
        // The straight path projects onto the α axis; a point off the line onto β ≠ 0.
        let p = plane.project(&[0.25, 0.0]);
        assert!((p.alpha - 0.25).abs() < 1e-12 && p.beta.abs() < 1e-12 && p.off_plane < 1e-9);
        let q = plane.project(&[0.5, 0.5]);
        let back = plane.coefficients(q.alpha, q.beta);
        assert!((back[0] - 0.5).abs() < 1e-12 && (back[1] - 0.5).abs() < 1e-12);
        assert!(q.beta > 0.0 && q.off_plane < 1e-9);
    }

    #[test]
    fn a_parallel_third_direction_is_refused() {
        let gram = vec![vec![4.0, 2.0], vec![2.0, 1.0]];
        assert!(
            Plane::endpoints(gram, 0, 1)
                .unwrap_err()
                .contains("parallel")
        );
        assert!(Plane::endpoints(vec![vec![0.0]], 0, 0).is_err());
    }

    #[test]
    fn projection_reports_the_distance_to_the_plane() {
        // Three orthonormal slots; the plane spans the first two.
        let gram = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let plane = Plane::around(gram, vec![0.0; 3], 0, 1);
        let p = plane.project(&[0.3, -0.2, 2.0]);
        assert!((p.alpha - 0.3).abs() < 1e-12 && (p.beta + 0.2).abs() < 1e-12);
        assert!((p.off_plane - 2.0).abs() < 1e-12);
    }

    struct Base(BTreeMap<String, HostTensor>);
    impl TensorSource for Base {
        fn origin(&self) -> &std::path::Path {
            std::path::Path::new("base")
        }
        fn tensor_names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
        fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
            self.0.get(name).map(|t| t.shape.clone())
        }
        fn tensor_dtype(&self, _: &str) -> Option<String> {
            Some("F32".into())
        }
        fn load_f32(&self, name: &str) -> crate::checkpoint::error::Result<HostTensor> {
            Ok(self.0[name].clone())
        }
    }

    #[test]
    fn filter_normalised_rows_have_the_base_rows_norms_and_the_seed_repeats() {
        let like = LoraAdapter {
            origin: "like".into(),
            config: serde_json::from_str::<AdapterConfig>(
                r#"{"peft_type":"LORA","r":2,"lora_alpha":4}"#,
            )
            .unwrap(),
            modules: BTreeMap::from([("m".to_string(), module(2, 6, 4, 3, 2.0))]),
        };
        let w: Vec<f32> = (0..24).map(|i| (i as f32 - 11.0) * 0.1).collect();
        let base = Base(BTreeMap::from([(
            "m.weight".to_string(),
            HostTensor::new(vec![4, 6], w.clone()),
        )]));
        let d = random_direction(&like, Some(3), 7, "u", &base, true).unwrap();
        let dm = dense(&d.modules["m"]);
        for o in 0..4 {
            let got: f64 = dm[o * 6..(o + 1) * 6]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt();
            let want: f64 = w[o * 6..(o + 1) * 6]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            assert!((got - want).abs() < 1e-5 * want, "row {o}: {got} vs {want}");
        }
        let again = random_direction(&like, Some(3), 7, "u", &base, true).unwrap();
        assert_eq!(again.modules["m"].b.data, d.modules["m"].b.data);
        let other = random_direction(&like, Some(3), 7, "v", &base, true).unwrap();
        assert_ne!(other.modules["m"].a.data, d.modules["m"].a.data);
    }

    #[test]
    fn grid_and_center_parse_and_reject() {
        let g = Grid::parse("3x2", "-0.5:1.5,0:1").unwrap();
        assert_eq!(g.alphas(), vec![-0.5, 0.5, 1.5]);
        assert_eq!(g.betas(), vec![0.0, 1.0]);
        assert_eq!(g.cells().len(), 6);
        assert_eq!(g.cells()[3], (-0.5, 1.0));
        for (grid, range) in [
            ("0x3", "0:1,0:1"),
            ("3", "0:1,0:1"),
            ("3x3", "0:1"),
            ("3x3", "0:0,0:1"),
            ("3x3", "0:nan,0:1"),
            ("600x3", "0:1,0:1"),
        ] {
            assert!(Grid::parse(grid, range).is_err(), "{grid} {range}");
        }
        assert_eq!(Center::parse("t=0.5").unwrap(), Center::T(0.5));
        assert_eq!(Center::parse("end").unwrap(), Center::End);
        assert!(Center::parse("t=x").is_err() && Center::parse("middle").is_err());
    }
}
