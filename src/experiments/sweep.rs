//! The sweep job: walk a path θ(t) and, at each t, evaluate every metric of a suite.
//!
//! Resumable and crash-safe through [`SweepStore`]: each finished (t, metric) is appended and
//! fsync'd before the next point starts, finished points are skipped on restart, and a cancel
//! (Ctrl-C, the GUI's Cancel) takes effect between batches without writing a partial point.

use std::collections::HashMap;

use super::{
    eval::{EvalError, EvalItem, ExampleScore, PathPointSpec, score_at_points},
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

/// One point of a result folder: its coordinates (t, or α and β on a plane) and the
/// coefficients that put the model there.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPoint {
    pub t: f64,
    pub beta: Option<f64>,
    pub coefficients: PathPointSpec,
}

impl RunPoint {
    fn label(&self) -> String {
        match self.beta {
            Some(b) => format!("α = {}, β = {b}", self.t),
            None => format!("t = {}", self.t),
        }
    }
}

/// How [`run_points`] evaluates: the batching and bootstrap of a sweep or a landscape.
#[derive(Debug, Clone)]
pub struct PointsSpec {
    pub batch_size: usize,
    pub bootstrap_samples: usize,
    pub bootstrap_seed: u64,
    /// Points evaluated together in one pass (consecutive pending points whose dense
    /// coefficients agree: only LoRA coefficients are per sequence).
    pub points_per_pass: usize,
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
    let points: Vec<RunPoint> = spec
        .t_values
        .iter()
        .map(|&t| RunPoint {
            t,
            beta: None,
            coefficients: spec.path.point(t, &spec.checkpoint_samples),
        })
        .collect();
    let per_pass = if spec.path.batches_across_t() {
        spec.t_per_pass.max(1)
    } else {
        1
    };
    let opts = PointsSpec {
        batch_size: spec.batch_size,
        bootstrap_samples: spec.bootstrap_samples,
        bootstrap_seed: spec.bootstrap_seed,
        points_per_pass: per_pass,
    };
    run_points(model, suite, items, &points, &opts, store, hooks)
}

/// Evaluates every metric of the suite at each point not yet in `store`, saving each finished
/// point before the next pass: the one loop of sweeps and landscapes.
pub fn run_points(
    model: &CausalLm,
    suite: &Suite,
    items: &[EvalItem],
    points: &[RunPoint],
    opts: &PointsSpec,
    store: &mut SweepStore,
    hooks: &SweepHooks,
) -> Result<SweepOutcome, SweepError> {
    let progress = hooks.progress;
    let metric_names = suite.metric_names();
    let total = points.len();
    let pending: Vec<(usize, &RunPoint)> = points
        .iter()
        .enumerate()
        .filter(|&(_, p)| {
            !metric_names
                .iter()
                .all(|m| store.is_finished_at(p.t, p.beta, m))
        })
        .collect();
    let mut outcome = SweepOutcome {
        computed_points: 0,
        skipped_points: total - pending.len(),
    };
    let per_pass = opts.points_per_pass.max(1);
    let mut rest = pending.as_slice();
    while let Some(&(first, head)) = rest.first() {
        let len = rest
            .iter()
            .take(per_pass)
            .take_while(|(_, p)| p.coefficients.dense == head.coefficients.dense)
            .count();
        let (group, tail) = rest.split_at(len);
        rest = tail;
        if hooks.stop_after_point.is_cancelled() || hooks.abort.is_cancelled() {
            return Err(SweepError::Cancelled { done: first, total });
        }
        let stage = group
            .iter()
            .map(|(_, p)| p.label())
            .collect::<Vec<_>>()
            .join("; ");
        let report = |done: usize| {
            progress(Progress {
                done: first * items.len() + done,
                total: total * items.len(),
                stage: stage.clone(),
            })
        };
        let coefficients: Vec<PathPointSpec> =
            group.iter().map(|(_, p)| p.coefficients.clone()).collect();
        let per_point = score_at_points(
            model,
            items,
            &coefficients,
            opts.batch_size,
            false,
            &report,
            hooks.abort,
        )
        .map_err(|e| match e {
            EvalError::Cancelled { .. } => SweepError::Cancelled { done: first, total },
            other => SweepError::Eval(other),
        })?;
        for ((_, point), scores) in group.iter().zip(&per_point) {
            let by_id: HashMap<&str, &ExampleScore> =
                scores.iter().map(|s| (s.id.as_str(), s)).collect();
            let results = compute_metrics(
                suite,
                point.t,
                &by_id,
                opts.bootstrap_samples,
                opts.bootstrap_seed,
            )
            .map_err(|e| SweepError::Metric(e.to_string()))?;
            for mut r in results {
                r.beta = point.beta;
                if !store.is_finished_at(r.t, r.beta, &r.metric) {
                    store.append(&r)?;
                    (hooks.on_result)(&r);
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
