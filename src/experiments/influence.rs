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
}

impl InfluenceMethod {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "gradsim" => Ok(Self::Gradsim),
            "tracin" => Ok(Self::Tracin),
            other => Err(format!("--method `{other}`: expected gradsim or tracin")),
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
/// samples are split over `lanes` threads). A sample without targets has a zero gradient.
pub fn sample_gradients(
    model: &CausalLm,
    factors: &[LoraFactors],
    items: &[EvalItem],
    lanes: usize,
    progress: &(dyn Fn(usize) + Sync),
    cancel: &CancelFlag,
) -> Result<Vec<Vec<f32>>, InfluenceError> {
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
            out.push(g);
            let d = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(d);
        }
        Ok(out)
    });
    let mut all = Vec::with_capacity(n);
    for part in results {
        all.extend(part?);
    }
    Ok(all)
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

/// Scores every training sample at every point (the query's gradient taken at the same point)
/// and ranks them; `progress` counts samples over all points.
#[allow(clippy::too_many_arguments)]
pub fn influence_scores(
    model: &mut CausalLm,
    points: &[InfluencePoint],
    train: &[EvalItem],
    query: &[QueryRow],
    normalize: Normalize,
    batch: usize,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &CancelFlag,
) -> Result<(Vec<SampleScore>, Vec<f64>), InfluenceError> {
    model.ensure_lora_slots(1);
    let lanes = crate::compute::cpu_lanes(&model.device);
    let total = points.len() * train.len();
    let mut per_point: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    let mut norms: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    let mut query_values = Vec::with_capacity(points.len());
    for (k, p) in points.iter().enumerate() {
        let stage = format!("{} ({}/{})", p.label, k + 1, points.len());
        let (value, q) = query_gradient(model, &p.factors, query, batch, lanes)?;
        query_values.push(value);
        let report = |d: usize| {
            progress(Progress {
                done: k * train.len() + d,
                total,
                stage: stage.clone(),
            })
        };
        let grads = sample_gradients(model, &p.factors, train, lanes, &report, cancel)?;
        norms.push(
            grads
                .iter()
                .map(|g| g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
                .collect(),
        );
        per_point.push(point_scores(&q, &grads, p.lr, normalize));
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
    Ok((scores, query_values))
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
        assert!(InfluenceMethod::parse("datainf").is_err());
        assert_eq!(Normalize::parse("unit").unwrap(), Normalize::Unit);
    }
}
