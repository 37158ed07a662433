//! `eval`: teacher-forced log-probs of each example's final assistant message.

use serde::{Deserialize, Serialize};

use super::job::{CancelFlag, Progress};
use crate::model::{
    error::ModelError,
    logprobs::{MaskedSequence, target_logprobs},
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
}

/// Scores every item. Batches are formed from items of similar length (less padding); the
/// result keeps the input order.
pub fn evaluate(
    model: &CausalLm,
    items: &[EvalItem],
    spec: &EvalSpec,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<EvalScores, EvalError> {
    if spec.batch_size == 0 {
        return Err(EvalError::BadBatchSize);
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].sequence.input_ids.len()));
    let mut scores: Vec<Option<ExampleScore>> = vec![None; items.len()];
    let total = items.len();
    let mut done = 0;
    progress(Progress {
        done,
        total,
        stage: "evaluating".into(),
    });
    for chunk in order.chunks(spec.batch_size) {
        if cancel.is_cancelled() {
            return Err(EvalError::Cancelled { done, total });
        }
        let batch: Vec<MaskedSequence> = chunk.iter().map(|&i| items[i].sequence.clone()).collect();
        let lps = target_logprobs(model, &batch, &spec.point.for_batch(batch.len()))?;
        for (&i, lp) in chunk.iter().zip(lps) {
            scores[i] = Some(ExampleScore::from_logprobs(
                &items[i].id,
                lp,
                spec.keep_token_logprobs,
            ));
        }
        done += chunk.len();
        progress(Progress {
            done,
            total,
            stage: "evaluating".into(),
        });
    }
    let examples: Vec<ExampleScore> = scores.into_iter().flatten().collect();
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
