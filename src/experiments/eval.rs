//! `eval`: teacher-forced log-probs of each example's final assistant message.

use serde::{Deserialize, Serialize};

use super::job::{CancelFlag, Progress};
use crate::model::{
    error::ModelError,
    logprobs::{MaskedSequence, packed_target_logprobs},
    packing::{PackPolicy, PackedRow, pack},
    path_param::PathCoefficients,
    transformer::CausalLm,
};

/// Schema tag of [`EvalReport`]; bump when the JSON changes incompatibly.
pub const EVAL_SCHEMA: &str = "basin.eval.v1";

/// One tokenised example with its loss mask (see `text::encode` for the rule).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub id: String,
    pub sequence: MaskedSequence,
}

/// A single point of a path: one coefficient per LoRA slot, and the dense-delta coefficients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathPointSpec {
    pub lora: Vec<f32>,
    pub dense: Vec<f32>,
}

impl PathPointSpec {
    /// The same point for every sequence of a batch of `n`.
    pub fn for_batch(&self, n: usize) -> PathCoefficients {
        PathCoefficients {
            lora: self.lora.iter().map(|&c| vec![c; n]).collect(),
            dense: self.dense.clone(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalSpec {
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Where on the model's path to evaluate (coefficients of its LoRA slots and dense deltas;
    /// one value per slot, applied to every sequence).
    pub point: PathPointSpec,
    /// Keep every target's log-prob in the result (otherwise only sums).
    pub keep_token_logprobs: bool,
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            batch_size: 8,
            point: PathPointSpec::default(),
            keep_token_logprobs: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleScore {
    pub id: String,
    /// Number of masked-in target tokens.
    pub n_tokens: usize,
    pub sum_logprob: f64,
    /// `-sum_logprob / n_tokens`.
    pub mean_nll: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_logprobs: Option<Vec<f32>>,
}

impl ExampleScore {
    /// Sums (in f64) the target log-probs of one example; keeps them when `keep` is set.
    pub fn from_logprobs(id: &str, logprobs: Vec<f32>, keep: bool) -> Self {
        let sum: f64 = logprobs.iter().map(|&v| v as f64).sum();
        let n = logprobs.len();
        Self {
            id: id.to_string(),
            n_tokens: n,
            sum_logprob: sum,
            mean_nll: if n > 0 { -sum / n as f64 } else { f64::NAN },
            token_logprobs: keep.then_some(logprobs),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalScores {
    pub examples: Vec<ExampleScore>,
    /// Token-weighted mean NLL over all examples.
    pub mean_nll: f64,
    pub n_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cancelled after {done} of {total} examples")]
    Cancelled { done: usize, total: usize },
    #[error("batch size must be at least 1")]
    BadBatchSize,
    #[error(
        "several path points in one pass need the same dense coefficients (only LoRA slots may differ)"
    )]
    MixedDensePoints,
}

/// Scores every item. Requests that share a beginning are packed into one row (the common
/// tokens computed once, see [`crate::model::packing`] and [`score_at_points`]); rows of similar length are batched together
/// (less padding); the result keeps the input order.
pub fn evaluate(
    model: &CausalLm,
    items: &[EvalItem],
    spec: &EvalSpec,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<EvalScores, EvalError> {
    let total = items.len();
    let report = |done: usize| {
        progress(Progress {
            done,
            total,
            stage: "evaluating".into(),
        })
    };
    report(0);
    let examples = score_at_points(
        model,
        items,
        std::slice::from_ref(&spec.point),
        spec.batch_size,
        spec.keep_token_logprobs,
        &report,
        cancel,
    )?
    .pop()
    .unwrap_or_default();
    let n_tokens: usize = examples.iter().map(|e| e.n_tokens).sum();
    let sum: f64 = examples.iter().map(|e| e.sum_logprob).sum();
    Ok(EvalScores {
        mean_nll: if n_tokens > 0 {
            -sum / n_tokens as f64
        } else {
            f64::NAN
        },
        n_tokens,
        examples,
    })
}

/// Consecutive groups of `units` (point, row) holding at most `batch_size` sequences each (a row
/// of several sequences counts each; a row larger than the budget goes alone), so a forward pass
/// sees about as many tokens whether or not prompts are shared.
fn sequence_batches<'a>(
    units: &'a [(usize, usize)],
    rows: &[PackedRow],
    batch_size: usize,
) -> Vec<&'a [(usize, usize)]> {
    let mut out = Vec::new();
    let (mut start, mut count) = (0, 0);
    for (i, &(_, r)) in units.iter().enumerate() {
        let n = rows[r].members.len();
        if i > start && count + n > batch_size {
            out.push(&units[start..i]);
            (start, count) = (i, 0);
        }
        count += n;
    }
    if start < units.len() {
        out.push(&units[start..]);
    }
    out
}

/// How requests share rows on `model`'s device. On the host CPU, whose attention scores only
/// the keys a query may see, any common beginning (a chat template's system prompt, a shared
/// prompt) is computed once per row, with at most a lane's share of a batch in one row so a
/// batch still splits over the lanes. Elsewhere (burn's attention scores every key of a row),
/// only requests with one prompt share a row, as long rows would cost more attention than the
/// shared tokens save.
fn pack_policy(model: &CausalLm, batch_size: usize) -> PackPolicy {
    if crate::compute::is_host_cpu(&model.device) {
        PackPolicy::prefixes(batch_size.div_ceil(crate::compute::cpu_lanes(&model.device)))
    } else {
        PackPolicy::prompts()
    }
}

/// Scores every item at each path point: `[point][item]`. Requests sharing a beginning share a
/// row (see [`pack_policy`]); with several points (LoRA paths only), rows of different points share a batch, each
/// with its own LoRA coefficients, so each weight is read once for all of them. Rows holding
/// one sequence and shared rows never share a batch, so an unshared sequence is computed exactly
/// as `basin eval` computes it. `progress` gets the requests done per point (rounded down).
pub fn score_at_points(
    model: &CausalLm,
    items: &[EvalItem],
    points: &[PathPointSpec],
    batch_size: usize,
    keep_token_logprobs: bool,
    progress: &dyn Fn(usize),
    cancel: &CancelFlag,
) -> Result<Vec<Vec<ExampleScore>>, EvalError> {
    if batch_size == 0 {
        return Err(EvalError::BadBatchSize);
    }
    let Some(first) = points.first() else {
        return Ok(Vec::new());
    };
    if points.len() > 1 && points.iter().any(|p| p.dense != first.dense) {
        return Err(EvalError::MixedDensePoints);
    }
    for item in items {
        let s = &item.sequence;
        if s.target_mask.len() != s.input_ids.len() {
            return Err(EvalError::Model(ModelError::Input(format!(
                "example {}: {} ids but {} mask entries",
                item.id,
                s.input_ids.len(),
                s.target_mask.len()
            ))));
        }
    }
    let sequences: Vec<&MaskedSequence> = items.iter().map(|i| &i.sequence).collect();
    let rows = pack(&sequences, pack_policy(model, batch_size));
    let mut units: Vec<(usize, usize)> = (0..points.len())
        .flat_map(|p| (0..rows.len()).map(move |r| (p, r)))
        .collect();
    units.sort_by_key(|&(_, r)| (rows[r].is_shared(), std::cmp::Reverse(rows[r].len())));
    let split = units.partition_point(|&(_, r)| !rows[r].is_shared());
    let (single, shared) = units.split_at(split);
    let slots = first.lora.len();
    let mut out: Vec<Vec<Option<ExampleScore>>> = vec![vec![None; items.len()]; points.len()];
    let mut done = 0;
    let total = items.len() * points.len();
    let batches = sequence_batches(single, &rows, batch_size)
        .into_iter()
        .chain(sequence_batches(shared, &rows, batch_size));
    for chunk in batches {
        if cancel.is_cancelled() {
            return Err(EvalError::Cancelled {
                done: done / points.len(),
                total: items.len(),
            });
        }
        let batch: Vec<PackedRow> = chunk.iter().map(|&(_, r)| rows[r].clone()).collect();
        let coeffs = PathCoefficients {
            lora: (0..slots)
                .map(|k| {
                    chunk
                        .iter()
                        .map(|&(p, _)| points[p].lora.get(k).copied().unwrap_or(0.0))
                        .collect()
                })
                .collect(),
            dense: first.dense.clone(),
            ..Default::default()
        };
        let lps = packed_target_logprobs(model, &batch, &coeffs)?;
        crate::compute::release_free_host_memory();
        for (&(p, r), members) in chunk.iter().zip(lps) {
            for (m, lp) in rows[r].members.iter().zip(members) {
                let id = &items[m.sequence].id;
                out[p][m.sequence] = Some(ExampleScore::from_logprobs(id, lp, keep_token_logprobs));
                done += 1;
            }
        }
        progress(done.min(total) / points.len());
    }
    Ok(out
        .into_iter()
        .map(|v| v.into_iter().flatten().collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(members: usize) -> PackedRow {
        PackedRow {
            input_ids: vec![1],
            positions: vec![0],
            reach: vec![1],
            members: (0..members)
                .map(|m| crate::model::packing::PackedMember {
                    sequence: m,
                    targets: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn batches_count_sequences_not_rows() {
        let rows = vec![row(1), row(2), row(4), row(1), row(9), row(3)];
        let units: Vec<(usize, usize)> = (0..rows.len()).map(|r| (0, r)).collect();
        let batches = sequence_batches(&units, &rows, 4);
        let sizes: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|&(_, r)| rows[r].members.len()).collect())
            .collect();
        // 1+2 fit, 4 alone, 1 then 9 (over the budget) alone, 3.
        assert_eq!(sizes, vec![vec![1, 2], vec![4], vec![1], vec![9], vec![3]]);
        let total: usize = batches.iter().map(|b| b.len()).sum();
        assert_eq!(total, units.len());
    }
}
