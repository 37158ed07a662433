//! The sweep job: walk a path θ(t) and, at each t, evaluate every metric of a suite.
//!
//! Resumable and crash-safe through [`SweepStore`]: each finished (t, metric) is appended and
//! fsync'd before the next point starts, finished points are skipped on restart, and a cancel
//! (Ctrl-C, the GUI's Cancel) takes effect between batches without writing a partial point.

use std::collections::HashMap;

use super::{
    eval::{EvalError, EvalItem, ExampleScore, PathPointSpec, score_at_points},
    generate::{GenerateError, GenerateSpec, Prompt, Sampling, generate},
    job::{CancelFlag, Progress},
    metrics::{GeneratedAnswer, MetricResult, compute_generated, compute_metrics},
    path::PathKind,
    suite::Suite,
    sweep_store::{StoreError, SweepStore},
};
use crate::model::transformer::CausalLm;

/// What a suite's `generated` metrics need at each point: each one's prompts (tokenised, in item
/// order, by index in [`Suite::metrics`]), the stop tokens and the tokenizer that reads the
/// answers back as text.
pub struct GenerationInputs {
    pub prompts: Vec<(usize, Vec<Prompt>)>,
    pub stop_ids: Vec<u32>,
    pub tokenizer: tokenizers::Tokenizer,
}

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
    #[error("generating answers: {0}")]
    Generate(String),
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

/// Samples a generated metric's answers at one point: `settings.samples` per prompt, in
/// prompt order, read back as text.
#[allow(clippy::too_many_arguments)]
fn generate_answers(
    model: &CausalLm,
    prompts: &[Prompt],
    inputs: &GenerationInputs,
    settings: crate::experiments::suite::GenerationSettings,
    point: &PathPointSpec,
    batch: usize,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<Vec<Vec<GeneratedAnswer>>, GenerateError> {
    let spec = GenerateSpec {
        max_new_tokens: settings.max_new_tokens,
        sampling: Sampling::Sample {
            temperature: settings.temperature,
            top_p: settings.top_p,
        },
        samples: settings.samples,
        // The same seed at every point: differences along t are not sampling noise alone.
        seed: settings.seed,
        batch,
        point: point.clone(),
        stop_ids: inputs.stop_ids.clone(),
    };
    let mut answers: Vec<Vec<GeneratedAnswer>> = vec![Vec::new(); prompts.len()];
    generate(
        model,
        prompts,
        &spec,
        &mut |rows| {
            for r in rows {
                let text = inputs
                    .tokenizer
                    .decode(&r.token_ids, true)
                    .unwrap_or_default();
                answers[r.prompt].push(GeneratedAnswer {
                    text,
                    n_tokens: r.token_ids.len(),
                    stopped: r.finish_reason == crate::experiments::generate::FinishReason::Stop,
                });
            }
            Ok(())
        },
        progress,
        cancel,
    )?;
    Ok(answers)
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
    generation: Option<&GenerationInputs>,
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
    run_points(
        model, suite, items, generation, &points, &opts, store, hooks,
    )
}

/// Evaluates every metric of the suite at each point not yet in `store`, saving each finished
/// point before the next pass: the one loop of sweeps and landscapes. Generated metrics sample
/// their answers at each point from `generation` (required when the suite has any).
#[allow(clippy::too_many_arguments)]
pub fn run_points(
    model: &CausalLm,
    suite: &Suite,
    items: &[EvalItem],
    generation: Option<&GenerationInputs>,
    points: &[RunPoint],
    opts: &PointsSpec,
    store: &mut SweepStore,
    hooks: &SweepHooks,
) -> Result<SweepOutcome, SweepError> {
    let progress = hooks.progress;
    let generated = suite.generated();
    if !generated.is_empty() && generation.is_none() {
        return Err(SweepError::Generate(format!(
            "the suite's generated metric `{}` needs the model's tokenizer",
            suite.metrics[generated[0].0].name
        )));
    }
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
        let per_point = if items.is_empty() {
            vec![Vec::new(); group.len()]
        } else {
            score_at_points(
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
            })?
        };
        for ((_, point), scores) in group.iter().zip(&per_point) {
            let by_id: HashMap<&str, &ExampleScore> =
                scores.iter().map(|s| (s.id.as_str(), s)).collect();
            let mut results = compute_metrics(
                suite,
                point.t,
                &by_id,
                opts.bootstrap_samples,
                opts.bootstrap_seed,
            )
            .map_err(|e| SweepError::Metric(e.to_string()))?;
            if let Some(inputs) = generation {
                for &(index, _, settings) in &generated {
                    let metric = &suite.metrics[index];
                    if store.is_finished_at(point.t, point.beta, &metric.name) {
                        continue;
                    }
                    let prompts = inputs
                        .prompts
                        .iter()
                        .find(|(i, _)| *i == index)
                        .map(|(_, p)| p.as_slice())
                        .unwrap_or_default();
                    let answers = generate_answers(
                        model,
                        prompts,
                        inputs,
                        settings,
                        &point.coefficients,
                        opts.batch_size,
                        &|p: Progress| {
                            progress(Progress {
                                done: first * items.len(),
                                total: total * items.len(),
                                stage: format!("{} · {}: {}", point.label(), metric.name, p.stage),
                            })
                        },
                        hooks.abort,
                    )
                    .map_err(|e| match e {
                        GenerateError::Cancelled { .. } => {
                            SweepError::Cancelled { done: first, total }
                        }
                        other => SweepError::Generate(other.to_string()),
                    })?;
                    let r = compute_generated(
                        metric,
                        point.t,
                        &answers,
                        opts.bootstrap_samples,
                        opts.bootstrap_seed,
                    )
                    .ok_or_else(|| {
                        SweepError::Metric(format!(
                            "metric `{}`: {} prompts for {} items",
                            metric.name,
                            answers.len(),
                            metric.items.len()
                        ))
                    })?;
                    results.push(r);
                }
                // Suite order, as the teacher-forced metrics alone would come.
                results.sort_by_key(|r| {
                    suite
                        .metrics
                        .iter()
                        .position(|m| m.name == r.metric)
                        .unwrap_or(usize::MAX)
                });
            }
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
