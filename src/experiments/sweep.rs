//! The sweep job: walk a path θ(t) and, at each t, evaluate every metric of a suite.
//!
//! Resumable and crash-safe through [`SweepStore`]: each finished (t, metric) is appended and
//! fsync'd before the next point starts, finished points are skipped on restart, and a cancel
//! (Ctrl-C, the GUI's Cancel) takes effect between batches without writing a partial point.

use std::collections::HashMap;

use super::{
    eval::{EvalError, EvalItem, ExampleScore, score_at_points},
    job::{CancelFlag, Progress},
    metrics::{MetricResult, compute_metrics},
    path::PathKind,
    suite::Suite,
    sweep_store::{StoreError, SweepStore},
};
use crate::model::transformer::CausalLm;

#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub path: PathKind,
    /// The points of this run (already restricted to the shard).
    pub t_values: Vec<f64>,
    pub batch_size: usize,
    pub bootstrap_samples: usize,
    pub bootstrap_seed: u64,
    /// Points evaluated together in one pass over the requests (LoRA paths only: sequences of
    /// different t share a batch, so each weight is read once for several t — what pays on a
    /// GPU). Results are the same as with 1; a kill loses at most this many points in flight.
    pub t_per_pass: usize,
    /// [`PathKind::Checkpoints`]: the samples seen of each LoRA slot's adapter.
    pub checkpoint_samples: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("metric computation: {0}")]
    Metric(String),
    #[error("cancelled after {done} of {total} points (finished points are saved)")]
    Cancelled { done: usize, total: usize },
}

/// What a finished (or resumed) sweep did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOutcome {
    pub computed_points: usize,
    pub skipped_points: usize,
}

/// How a running sweep reports and is stopped.
pub struct SweepHooks<'a> {
    pub progress: &'a dyn Fn(Progress),
    /// Sees every metric result as soon as it is saved.
    pub on_result: &'a dyn Fn(&MetricResult),
    /// Checked between points: finish the point in flight, then stop (the CLI's first Ctrl-C).
    pub stop_after_point: &'a CancelFlag,
    /// Checked between batches: drop the point in flight (the GUI's Cancel, a second Ctrl-C).
    pub abort: &'a CancelFlag,
}

/// Runs the sweep. `items` are the suite's scoring requests, encoded (same order and ids as
/// `suite.requests()`).
pub fn run_sweep(
    model: &CausalLm,
    suite: &Suite,
    items: &[EvalItem],
    spec: &SweepSpec,
    store: &mut SweepStore,
    hooks: &SweepHooks,
) -> Result<SweepOutcome, SweepError> {
    let progress = hooks.progress;
    let metric_names = suite.metric_names();
    let total = spec.t_values.len();
    let mut outcome = SweepOutcome {
        computed_points: 0,
        skipped_points: 0,
    };
    let pending: Vec<(usize, f64)> = spec
        .t_values
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, t)| !metric_names.iter().all(|m| store.is_finished(t, m)))
        .collect();
    outcome.skipped_points = total - pending.len();
    let per_pass = if spec.path.batches_across_t() {
        spec.t_per_pass.max(1)
    } else {
        1
    };
    for group in pending.chunks(per_pass) {
        let first = group.first().map_or(0, |g| g.0);
        if hooks.stop_after_point.is_cancelled() || hooks.abort.is_cancelled() {
            return Err(SweepError::Cancelled { done: first, total });
        }
        let ts: Vec<f64> = group.iter().map(|g| g.1).collect();
        let stage = if ts.len() == 1 {
            format!("t = {}", ts[0])
        } else {
            format!("t = {:?}", ts)
        };
        let report = |done: usize| {
            progress(Progress {
                done: first * items.len() + done,
                total: total * items.len(),
                stage: stage.clone(),
            })
        };
        let per_point =
            score_points(model, items, spec, &ts, &report, hooks.abort).map_err(|e| match e {
                SweepError::Cancelled { .. } => SweepError::Cancelled { done: first, total },
                other => other,
            })?;
        for (&t, scores) in ts.iter().zip(&per_point) {
            let by_id: HashMap<&str, &ExampleScore> =
                scores.iter().map(|s| (s.id.as_str(), s)).collect();
            let results = compute_metrics(
                suite,
                t,
                &by_id,
                spec.bootstrap_samples,
                spec.bootstrap_seed,
            )
            .map_err(|e| SweepError::Metric(e.to_string()))?;
            for r in &results {
                if !store.is_finished(t, &r.metric) {
                    store.append(r)?;
                    (hooks.on_result)(r);
                }
            }
            store.write_summary()?;
            outcome.computed_points += 1;
        }
    }
    progress(Progress {
        done: total * items.len(),
        total: total * items.len(),
        stage: "done".into(),
    });
    Ok(outcome)
}

/// Scores every request at each t of `ts` (several only on LoRA paths: sequences of different
/// t then share batches, each with its own LoRA coefficients).
fn score_points(
    model: &CausalLm,
    items: &[EvalItem],
    spec: &SweepSpec,
    ts: &[f64],
    report: &dyn Fn(usize),
    abort: &CancelFlag,
) -> Result<Vec<Vec<ExampleScore>>, SweepError> {
    let points: Vec<_> = ts
        .iter()
        .map(|&t| spec.path.point(t, &spec.checkpoint_samples))
        .collect();
    score_at_points(model, items, &points, spec.batch_size, false, report, abort).map_err(|e| {
        match e {
            EvalError::Cancelled { done, total } => SweepError::Cancelled { done, total },
            other => SweepError::Eval(other),
        }
    })
}
