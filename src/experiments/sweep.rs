//! The sweep job: walk a path θ(t) and, at each t, evaluate every metric of a suite.
//!
//! Resumable and crash-safe through [`SweepStore`]: each finished (t, metric) is appended and
//! fsync'd before the next point starts, finished points are skipped on restart, and a cancel
//! (Ctrl-C, the GUI's Cancel) takes effect between batches without writing a partial point.

use std::collections::HashMap;

use super::{
    eval::{EvalError, EvalItem, EvalSpec, ExampleScore, evaluate},
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
    for (i, &t) in spec.t_values.iter().enumerate() {
        if metric_names.iter().all(|m| store.is_finished(t, m)) {
            outcome.skipped_points += 1;
            continue;
        }
        if hooks.stop_after_point.is_cancelled() || hooks.abort.is_cancelled() {
            return Err(SweepError::Cancelled { done: i, total });
        }
        let eval_spec = EvalSpec {
            batch_size: spec.batch_size,
            point: spec.path.point(t),
            keep_token_logprobs: false,
        };
        let stage = format!("t = {t}");
        let scores = evaluate(
            model,
            items,
            &eval_spec,
            &|p| {
                progress(Progress {
                    done: i * items.len() + p.done,
                    total: total * items.len(),
                    stage: stage.clone(),
                })
            },
            hooks.abort,
        )
        .map_err(|e| match e {
            EvalError::Cancelled { .. } => SweepError::Cancelled { done: i, total },
            other => SweepError::Eval(other),
        })?;
        let by_id: HashMap<&str, &ExampleScore> =
            scores.examples.iter().map(|s| (s.id.as_str(), s)).collect();
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
    progress(Progress {
        done: total * items.len(),
        total: total * items.len(),
        stage: "done".into(),
    });
    Ok(outcome)
}
