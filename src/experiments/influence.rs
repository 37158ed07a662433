//! Influence of training samples on a query, from LoRA-parameter gradients taken through the
//! same `CausalLm` as training (its autodiff device, the adapter's factors as leaves in LoRA
//! slot 0).
//!
//! Sign convention (what `scores.jsonl` says): a positive score means one gradient step on the
//! sample pushes the query function **up**. A step θ ← θ − η·∇ℓ(z) changes f by
//! ≈ −η·∇f·∇ℓ(z), so
//! - `gradsim`: score(z) = −∇f(q; θ)·∇ℓ(z; θ) at one adapter;
//! - `tracin`: score(z) = −Σ_c η_c·∇f(q; θ_c)·∇ℓ(z; θ_c) over a run's checkpoints (Pruthi et
//!   al. 2020), η_c the learning rate of the step that wrote checkpoint c.
//!
//! ℓ(z) is the sample's mean NLL over its target tokens. Queries ([`QueryRow`]): instruction
//! chats → their token-weighted mean NLL (helpful training samples score negative: they push
//! the query's loss down); a paired metric → the mean margin s(hack) − s(honest); a choice
//! metric → the mean s(keyed option); s = a response's log-prob under the metric's scoring
//! form (sum, per token, per byte). With `unit` normalisation ∇ℓ(z) is divided by its norm (cosine form),
//! so samples with large gradients do not top every ranking.

use serde::{Deserialize, Serialize};

use super::{
    eval::EvalItem,
    grad_sketch::{GradCache, GradSketch},
    job::{CancelFlag, Progress},
    train::{TrainError, batch_gradients},
};
use crate::model::{
    packing::PackedRow, path_param::PathCoefficients, trainable::LoraFactors, transformer::CausalLm,
};

/// How training samples are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfluenceMethod {
    /// One adapter: −∇f·∇ℓ(z).
    Gradsim,
    /// A run's checkpoints: −Σ_c η_c·∇f_c·∇ℓ_c(z).
    Tracin,
    /// One adapter, the inverse Hessian of each LoRA layer in DataInf's closed form (Kwon et
    /// al. 2024): −Σ_l ∇f_lᵀ (G_lᵀG_l/n + λ_l I)⁻¹ ∇ℓ_l(z), the inverse of the mean of rank-one
    /// terms replaced by the mean of their inverses.
    Datainf,
}

impl InfluenceMethod {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "gradsim" => Ok(Self::Gradsim),
            "tracin" => Ok(Self::Tracin),
            "datainf" => Ok(Self::Datainf),
            other => Err(format!(
                "--method `{other}`: expected gradsim, tracin or datainf"
            )),
        }
    }
}

/// How training gradients enter the dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    None,
    /// ∇ℓ(z) / ‖∇ℓ(z)‖.
    Unit,
}

impl Normalize {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "unit" => Ok(Self::Unit),
            other => Err(format!("--normalize `{other}`: expected none or unit")),
        }
    }
}

/// One point of weight space the scores are taken at: an adapter's factors and the learning
/// rate that weighs it (1 for `gradsim`).
#[derive(Debug, Clone)]
pub struct InfluencePoint {
    pub label: String,
    pub factors: Vec<LoraFactors>,
    pub lr: f64,
    /// Names this point's sketched training gradients in a [`GradCache`] (see
    /// [`super::grad_sketch::cache_key`]).
    pub cache_key: Option<String>,
}

/// The gradients of one forward + backward, flattened in factor order (each module's A then B,
/// in the factors' layout).
fn flatten(grads: Vec<(Vec<f32>, Vec<f32>)>) -> Vec<f32> {
    let mut out = Vec::new();
    for (a, b) in grads {
        out.extend(a);
        out.extend(b);
    }
    out
}

fn n_targets(item: &EvalItem) -> usize {
    item.sequence
        .target_mask
        .iter()
        .skip(1)
        .filter(|&&m| m)
        .count()
}

fn coefficients(n: usize) -> PathCoefficients {
    PathCoefficients {
        lora: vec![vec![1.0; n]],
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InfluenceError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{0}")]
    Input(String),
    #[error("cancelled after {done} of {total} samples")]
    Cancelled { done: usize, total: usize },
}

/// ∇ of each sample's mean target NLL at the factors (one forward + backward per sample; the
/// samples are split over `lanes` threads), sketched when a sketch is given (so only the
/// sketches are ever held), with each exact gradient's norm. A sample without targets has a zero
/// gradient.
pub fn sample_gradients(
    model: &CausalLm,
    factors: &[LoraFactors],
    items: &[EvalItem],
    lanes: usize,
    sketch: Option<&GradSketch>,
    progress: &(dyn Fn(usize) + Sync),
    cancel: &CancelFlag,
) -> Result<(Vec<Vec<f32>>, Vec<f64>), InfluenceError> {
    let n = items.len();
    let lanes = lanes.clamp(1, n.max(1));
    let parts: Vec<std::ops::Range<usize>> = (0..lanes)
        .map(|k| k * n / lanes..(k + 1) * n / lanes)
        .filter(|r| !r.is_empty())
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = crate::compute::map_lanes(&parts, |range| {
        let mut out = Vec::with_capacity(range.len());
        for i in range {
            if cancel.is_cancelled() {
                return Err(InfluenceError::Cancelled {
                    done: done.load(std::sync::atomic::Ordering::SeqCst),
                    total: n,
                });
            }
            let item = &items[i];
            let targets = n_targets(item);
            let row = [PackedRow::single(0, &item.sequence)];
            let parts = batch_gradients(model, 0, factors, &row, &coefficients(1), 1, false)?;
            let mut g = parts
                .into_iter()
                .next()
                .map(|(_, g, _)| flatten(g))
                .unwrap_or_default();
            let scale = if targets > 0 {
                1.0 / targets as f32
            } else {
                0.0
            };
            g.iter_mut().for_each(|v| *v *= scale);
            let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            let g = match sketch {
                Some(s) => s.apply(&g),
                None => g,
            };
            out.push((g, norm));
            let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(d);
        }
        Ok(out)
    });
    let mut grads = Vec::with_capacity(n);
    let mut norms = Vec::with_capacity(n);
    for part in results {
        for (g, norm) in part? {
            grads.push(g);
            norms.push(norm);
        }
    }
    Ok((grads, norms))
}

/// A query function f = Σᵣ wᵣ · log p(response r), a weighted sum of scored responses' summed
/// target log-probs (see [`query_rows`] for what each metric kind puts here).
#[derive(Debug, Clone)]
pub struct QueryRow {
    pub item: EvalItem,
    pub weight: f64,
}

/// The query's value and gradient. Rows of equal weight share backward passes of `batch`
/// sequences.
pub fn query_gradient(
    model: &CausalLm,
    factors: &[LoraFactors],
    rows: &[QueryRow],
    batch: usize,
    lanes: usize,
) -> Result<(f64, Vec<f32>), InfluenceError> {
    if rows.iter().all(|r| n_targets(&r.item) == 0) {
        return Err(InfluenceError::Input(
            "the query has no target tokens (every response is empty?)".into(),
        ));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a].weight.total_cmp(&rows[b].weight));
    let mut value = 0.0f64;
    let mut grad: Vec<f64> = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let w = rows[order[start]].weight;
        let mut end = start + 1;
        while end < order.len() && end - start < batch.max(1) && rows[order[end]].weight == w {
            end += 1;
        }
        let packed: Vec<PackedRow> = order[start..end]
            .iter()
            .enumerate()
            .map(|(i, &k)| PackedRow::single(i, &rows[k].item.sequence))
            .collect();
        for (nll, g, _) in batch_gradients(
            model,
            0,
            factors,
            &packed,
            &coefficients(packed.len()),
            lanes,
            false,
        )? {
            // f gains w·Σ log p = −w·NLL.
            value -= w * f64::from(nll);
            let g = flatten(g);
            if grad.is_empty() {
                grad = vec![0.0; g.len()];
            }
            grad.iter_mut()
                .zip(&g)
                .for_each(|(x, &y)| *x -= w * f64::from(y));
        }
        start = end;
    }
    Ok((value, grad.into_iter().map(|v| v as f32).collect()))
}

/// Instruction chats as a query: f = their token-weighted mean NLL, i.e. every response weighs
/// −1 / (all target tokens).
pub fn instruction_query(items: Vec<EvalItem>) -> Vec<QueryRow> {
    let total: usize = items.iter().map(n_targets).sum();
    let w = if total > 0 { -1.0 / total as f64 } else { 0.0 };
    items
        .into_iter()
        .map(|item| QueryRow { item, weight: w })
        .collect()
}

/// The weight of a response's summed log-prob under a scoring form: 1 (`sum`), 1 / its target
/// tokens (`per_token`) or 1 / its UTF-8 bytes (`per_byte`).
pub fn form_weight(form: super::suite::Scoring, item: &EvalItem, text: &str) -> f64 {
    use super::suite::Scoring;
    match form {
        Scoring::Sum => 1.0,
        Scoring::PerToken => 1.0 / n_targets(item).max(1) as f64,
        Scoring::PerByte => 1.0 / text.len().max(1) as f64,
    }
}

/// −lr·⟨q, g⟩ for each training gradient (g / ‖g‖ with `Unit`; f64 sums).
pub fn point_scores(
    query: &[f32],
    samples: &[Vec<f32>],
    lr: f64,
    normalize: Normalize,
) -> Vec<f64> {
    samples
        .iter()
        .map(|g| {
            let dot: f64 = query
                .iter()
                .zip(g)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let norm = match normalize {
                Normalize::None => 1.0,
                Normalize::Unit => {
                    let n = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
                    if n > 0.0 { n } else { f64::INFINITY }
                }
            };
            -lr * dot / norm
        })
        .collect()
}

/// DataInf's damping of one layer: given, or Kwon et al.'s default 0.1 · the mean squared
/// gradient entry of the layer over the samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Damping {
    Auto,
    Fixed(f64),
}

impl Damping {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Self::Fixed(v)),
            _ => Err(format!(
                "--damping `{s}`: expected auto or a positive number"
            )),
        }
    }
}

/// DataInf scores (sign as everywhere: positive pushes the query up) and each layer's λ.
/// `layers` are the lengths of the flat gradients' consecutive segments (one per LoRA module);
/// `entries` each module's number of parameters (what auto damping averages over: the layers'
/// lengths, or the modules' sizes when the gradients are sketches).
/// Per layer l with v = ∇f_l, gᵢ = ∇ℓ_l(zᵢ), n samples:
/// vᵀ(H_l + λI)⁻¹g_k ≈ (1/λ)·(v·g_k − (1/n)·Σᵢ (v·gᵢ)(gᵢ·g_k)/(λ + ‖gᵢ‖²)).
pub fn datainf_scores(
    query: &[f32],
    samples: &[Vec<f32>],
    layers: &[usize],
    entries: &[usize],
    damping: Damping,
) -> (Vec<f64>, Vec<f64>) {
    let n = samples.len();
    let mut scores = vec![0.0f64; n];
    let mut lambdas = Vec::with_capacity(layers.len());
    let dot = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    };
    let mut start = 0;
    for (l, &len) in layers.iter().enumerate() {
        let size = entries.get(l).copied().unwrap_or(len);
        let seg = |g: &[f32]| -> std::ops::Range<usize> {
            start.min(g.len())..(start + len).min(g.len())
        };
        let v = &query[seg(query)];
        let g: Vec<&[f32]> = samples.iter().map(|s| &s[seg(s)]).collect();
        let sq: Vec<f64> = g.iter().map(|x| dot(x, x)).collect();
        let lambda = match damping {
            Damping::Fixed(l) => l,
            Damping::Auto => 0.1 * sq.iter().sum::<f64>() / (n.max(1) * size.max(1)) as f64,
        };
        lambdas.push(lambda);
        if lambda <= 0.0 || n == 0 {
            start += len;
            continue;
        }
        let vg: Vec<f64> = g.iter().map(|x| dot(v, x)).collect();
        let c: Vec<f64> = (0..n).map(|i| vg[i] / (lambda + sq[i])).collect();
        for k in 0..n {
            let correction: f64 = (0..n)
                .map(|i| {
                    let gik = if i == k { sq[k] } else { dot(g[i], g[k]) };
                    c[i] * gik
                })
                .sum::<f64>()
                / n as f64;
            scores[k] -= (vg[k] - correction) / lambda;
        }
        start += len;
    }
    (scores, lambdas)
}

/// One training sample's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleScore {
    pub id: String,
    pub score: f64,
    /// 1 = the most positive score (pushes the query up the most).
    pub rank: usize,
    /// Each point's term (TracIn: per checkpoint, in the run's order).
    pub per_point: Vec<f64>,
    /// ‖∇ℓ(z)‖ at each point (what `unit` divides by).
    pub grad_norm: Vec<f64>,
}

/// How [`influence_scores`] scores: the method, its options, and the optional sketch and cache.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSpec {
    pub method: InfluenceMethod,
    pub normalize: Normalize,
    pub damping: Damping,
    /// Query responses per backward pass.
    pub batch: usize,
    /// `--proj-dim`: sketch gradients to about this many entries (seeded by `sketch_seed`).
    pub sketch_dim: Option<usize>,
    pub sketch_seed: u64,
    /// Where sketched training gradients are kept between runs (with a sketch only).
    pub cache: Option<GradCache>,
}

/// Scores every training sample at every point (the query's gradient taken at the same point)
/// and ranks them; `progress` counts samples over all points. With a sketch and a cache, a
/// point whose `cache_key` is in the cache reads its training gradients instead of computing
/// them.
pub fn influence_scores(
    model: &mut CausalLm,
    points: &[InfluencePoint],
    train: &[EvalItem],
    query: &[QueryRow],
    spec: &ScoreSpec,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &CancelFlag,
) -> Result<InfluenceResult, InfluenceError> {
    model.ensure_lora_slots(1);
    let lanes = crate::compute::cpu_lanes(&model.device);
    let total = points.len() * train.len();
    let mut per_point: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    let mut norms: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    let mut query_values = Vec::with_capacity(points.len());
    let mut lambdas = Vec::new();
    let mut cached_points = 0;
    for (k, p) in points.iter().enumerate() {
        let stage = format!("{} ({}/{})", p.label, k + 1, points.len());
        let modules: Vec<usize> = p.factors.iter().map(|f| f.a.len() + f.b.len()).collect();
        let sketch = spec
            .sketch_dim
            .map(|dim| GradSketch::new(&modules, dim, spec.sketch_seed));
        let (value, q) = query_gradient(model, &p.factors, query, spec.batch, lanes)?;
        let q = match &sketch {
            Some(s) => s.apply(&q),
            None => q,
        };
        query_values.push(value);
        let report = |d: usize| {
            progress(Progress {
                done: k * train.len() + d,
                total,
                stage: stage.clone(),
            })
        };
        let cache = match (&spec.cache, &p.cache_key, &sketch) {
            (Some(c), Some(key), Some(_)) => Some((c, key)),
            _ => None,
        };
        let hit = cache.and_then(|(c, key)| c.load(key, train.len(), q.len()));
        let (grads, point_norms) = match hit {
            Some(found) => {
                cached_points += 1;
                report(train.len());
                found
            }
            None => {
                let (grads, point_norms) = sample_gradients(
                    model,
                    &p.factors,
                    train,
                    lanes,
                    sketch.as_ref(),
                    &report,
                    cancel,
                )?;
                if let Some((c, key)) = cache {
                    // A cache that cannot be written only costs the next query time.
                    let _ = c.store(key, &grads, &point_norms);
                }
                (grads, point_norms)
            }
        };
        norms.push(point_norms);
        if spec.method == InfluenceMethod::Datainf {
            let layers = sketch
                .as_ref()
                .map_or(modules.clone(), GradSketch::sketched_layers);
            let (s, l) = datainf_scores(&q, &grads, &layers, &modules, spec.damping);
            per_point.push(s);
            lambdas = l;
        } else {
            per_point.push(point_scores(&q, &grads, p.lr, spec.normalize));
        }
    }
    let mut scores: Vec<SampleScore> = train
        .iter()
        .enumerate()
        .map(|(i, item)| SampleScore {
            id: item.id.clone(),
            score: per_point.iter().map(|s| s[i]).sum(),
            rank: 0,
            per_point: per_point.iter().map(|s| s[i]).collect(),
            grad_norm: norms.iter().map(|n| n[i]).collect(),
        })
        .collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].score.total_cmp(&scores[a].score));
    for (r, &i) in order.iter().enumerate() {
        scores[i].rank = r + 1;
    }
    Ok(InfluenceResult {
        scores,
        query_values,
        lambdas,
        cached_points,
    })
}

/// What [`influence_scores`] found.
pub struct InfluenceResult {
    pub scores: Vec<SampleScore>,
    /// The query function at each point.
    pub query_values: Vec<f64>,
    /// DataInf: each LoRA layer's damping λ (empty for the other methods).
    pub lambdas: Vec<f64>,
    /// Points whose training gradients came from the cache.
    pub cached_points: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_sign_convention_and_unit_normalisation() {
        let q = [1.0f32, 0.0];
        let samples = vec![vec![2.0f32, 0.0], vec![-0.5, 0.0], vec![0.0, 3.0]];
        // A step along −g moves f by −η·q·g: a sample aligned with q lowers f (negative score).
        let s = point_scores(&q, &samples, 0.1, Normalize::None);
        assert!((s[0] + 0.2).abs() < 1e-12 && (s[1] - 0.05).abs() < 1e-12 && s[2] == 0.0);
        let u = point_scores(&q, &samples, 1.0, Normalize::Unit);
        assert!((u[0] + 1.0).abs() < 1e-12 && (u[1] - 1.0).abs() < 1e-12);
        // A zero gradient scores zero under either form.
        assert_eq!(
            point_scores(&q, &[vec![0.0, 0.0]], 1.0, Normalize::Unit),
            vec![0.0]
        );
        assert!(InfluenceMethod::parse("datainf").is_ok());
        assert!(InfluenceMethod::parse("trak").is_err());
        assert_eq!(Damping::parse("0.5").unwrap(), Damping::Fixed(0.5));
        assert!(Damping::parse("-1").is_err() && Damping::parse("x").is_err());
    }

    #[test]
    fn datainf_matches_its_closed_form_on_a_small_case() {
        // One layer, two samples in 2-D: check against the formula by hand.
        let v = [1.0f32, 2.0];
        let g = vec![vec![1.0f32, 0.0], vec![0.5, 1.0]];
        let lambda = 0.3;
        let (s, l) = datainf_scores(&v, &g, &[2], &[2], Damping::Fixed(lambda));
        assert_eq!(l, vec![lambda]);
        let dot = |a: &[f64], b: &[f64]| a[0] * b[0] + a[1] * b[1];
        let (vv, g0, g1) = ([1.0, 2.0], [1.0, 0.0], [0.5, 1.0]);
        let gs = [g0, g1];
        for k in 0..2 {
            let corr: f64 = gs
                .iter()
                .map(|gi| dot(&vv, gi) * dot(gi, &gs[k]) / (lambda + dot(gi, gi)))
                .sum::<f64>()
                / 2.0;
            let want = -(dot(&vv, &gs[k]) - corr) / lambda;
            assert!((s[k] - want).abs() < 1e-12, "{k}: {} vs {want}", s[k]);
        }
        // Auto damping: 0.1 × the mean squared entry.
        let (_, l) = datainf_scores(&v, &g, &[2], &[2], Damping::Auto);
        assert!((l[0] - 0.1 * (1.0 + 0.25 + 1.0) / 4.0).abs() < 1e-12);
        assert_eq!(Normalize::parse("unit").unwrap(), Normalize::Unit);
    }
}
