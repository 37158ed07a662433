//! LoRA supervised fine-tuning through the same [`CausalLm`] the sweeps use, on burn's autodiff
//! device: the order examples are seen in, the optimizer step, checkpoints and resume.
//!
//! One optimizer step holds `grad_accum` batches of `batch` examples; its loss is the sum of the
//! masked target NLL over those examples divided by the number of masked targets in the step
//! (each batch's backward is of its NLL sum ÷ the step's target count, so accumulated gradients
//! are those of the step's loss). Examples come in file order, or reshuffled each epoch from the
//! seed; an epoch's last partial batch is kept; steps take consecutive batches of that stream.
//! Everything a step depends on (its batches, its dropout masks) is a function of the seed and
//! the step number, so a run resumed from a saved state ends where an uninterrupted one does.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{
    curve::CurveSpec,
    eval::EvalItem,
    job::{CancelFlag, Progress},
    optim::{AdamWConfig, AdamWState, Schedule, adamw_update, clip_grad_norm},
    sweep_store::StoreError,
    train_store::{StepRecord, TrainState, TrainStore},
};
use crate::{
    checkpoint::error::CheckpointError,
    data::rng::SplitMix64,
    model::{
        error::ModelError,
        logprobs::{target_nll_sum, target_nll_sum_by_row},
        packing::{PackedRow, balanced_parts},
        path_param::PathCoefficients,
        trainable::{DenseFactor, LoraFactors, attach, attach_dense, dense_gradients, gradients},
        transformer::CausalLm,
    },
};

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainLength {
    Epochs(usize),
    Steps(usize),
}

/// The recipe (everything but the inputs); stored in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub length: TrainLength,
    /// Examples per forward/backward.
    pub batch: usize,
    /// Batches per optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    pub seed: u64,
    pub shuffle: bool,
    /// Save a checkpoint each time this many more samples have been seen.
    pub checkpoint_every: Option<usize>,
    pub lora_dropout: f32,
    /// A curve fit (`basin curve fit`): the model's slot 0 holds the endpoint's LoRA delta at
    /// coefficient t and the trained adapter is the bend in slot 1 at coefficient φ(t), with t
    /// drawn per sequence each step. `None`: plain fine-tuning of slot 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<CurveSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "step {step}: {what} is not finite (examples {ids}); nothing of this step was saved, the last checkpoint is intact — lower --lr or set --max-grad-norm"
    )]
    NonFinite {
        step: usize,
        what: String,
        ids: String,
    },
}

/// Which examples each batch and step takes.
#[derive(Debug, Clone)]
pub struct DataOrder {
    pub examples: usize,
    pub batch: usize,
    pub grad_accum: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// Batches in the whole run (`None`: unbounded, for `--steps`).
    pub total_batches: Option<usize>,
}

impl DataOrder {
    pub fn new(examples: usize, spec: &TrainSpec) -> Result<Self, TrainError> {
        if examples == 0 {
            return Err(TrainError::Input(
                "the training data holds no example".into(),
            ));
        }
        if spec.batch == 0 || spec.grad_accum == 0 {
            return Err(TrainError::Input(
                "--batch and --grad-accum must be at least 1".into(),
            ));
        }
        let mut order = Self {
            examples,
            batch: spec.batch,
            grad_accum: spec.grad_accum,
            shuffle: spec.shuffle,
            seed: spec.seed,
            total_batches: None,
        };
        if let TrainLength::Epochs(e) = spec.length {
            order.total_batches = Some(e * order.batches_per_epoch());
        }
        Ok(order)
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.examples.div_ceil(self.batch)
    }

    pub fn total_steps(&self, length: TrainLength) -> usize {
        match length {
            TrainLength::Steps(n) => n,
            TrainLength::Epochs(_) => self.total_batches.unwrap_or(0).div_ceil(self.grad_accum),
        }
    }

    /// The examples of epoch `epoch` in the order they are seen.
    pub fn epoch_permutation(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.examples).collect();
        if self.shuffle {
            let mut rng = SplitMix64::derive(self.seed, &format!("train-shuffle-epoch-{epoch}"));
            rng.shuffle(&mut order);
        }
        order
    }

    /// The example indices of each batch of step `step` (0-based).
    pub fn step_batches(&self, step: usize) -> Vec<Vec<usize>> {
        let per_epoch = self.batches_per_epoch();
        let first = step * self.grad_accum;
        let mut last = first + self.grad_accum;
        if let Some(total) = self.total_batches {
            last = last.min(total);
        }
        let mut out = Vec::with_capacity(last.saturating_sub(first));
        let mut cached: Option<(usize, Vec<usize>)> = None;
        for g in first..last {
            let (epoch, within) = (g / per_epoch, g % per_epoch);
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, self.epoch_permutation(epoch)));
            }
            if let Some((_, perm)) = &cached {
                let start = within * self.batch;
                let end = (start + self.batch).min(self.examples);
                out.push(perm[start..end].to_vec());
            }
        }
        out
    }
}

/// What a run reports besides its files.
pub struct TrainHooks<'a> {
    pub progress: &'a dyn Fn(Progress),
    pub on_step: &'a dyn Fn(&StepRecord),
    /// A checkpoint folder was written (its name, e.g. `samples-000128`).
    pub on_checkpoint: &'a dyn Fn(&str),
    /// Set to stop after the step in flight (the state is saved for a resume).
    pub cancel: &'a CancelFlag,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    pub steps_done: usize,
    pub total_steps: usize,
    /// Steps computed by this call (0 when the folder already held a finished run).
    pub steps_computed: usize,
    pub cancelled: bool,
    pub final_loss: Option<f64>,
}

/// The LoRA slot training writes to: 0, or 1 for a curve's bend (slot 0 is its endpoint).
fn train_slot(spec: &TrainSpec) -> usize {
    spec.curve.as_ref().map_or(0, CurveSpec::bend_slot)
}

/// Trains `state` on `examples` to the end of the spec (or until cancelled), appending every
/// step to the store and saving checkpoints, a resume state on cancel, and `final/` at the end.
/// `model` must live on an autodiff device and have slot 0 (it is overwritten each step).
pub fn run_training(
    model: &mut CausalLm,
    examples: &[EvalItem],
    spec: &TrainSpec,
    mut state: TrainState,
    store: &mut TrainStore,
    hooks: &TrainHooks,
) -> Result<TrainOutcome, TrainError> {
    let order = DataOrder::new(examples.len(), spec)?;
    let total_steps = order.total_steps(spec.length);
    let adamw = AdamWConfig {
        weight_decay: spec.weight_decay,
        ..Default::default()
    };
    if !spec.lr.is_finite() || spec.lr < 0.0 {
        return Err(TrainError::Input(format!("--lr {} must be ≥ 0", spec.lr)));
    }
    let slot = train_slot(spec);
    model.ensure_lora_slots(slot + 1);
    let dense_index = spec.curve.as_ref().map_or(0, CurveSpec::dense_bend_index);
    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let first_step = state.step;
    let mut final_loss = None;
    let mut tokens_this_call = 0usize;
    let report = |state: &TrainState, stage: String| {
        (hooks.progress)(Progress {
            done: state.step,
            total: total_steps,
            stage,
        })
    };
    report(&state, "training".into());
    while state.step < total_steps {
        if hooks.cancel.is_cancelled() {
            state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            store.save_resume(&state)?;
            return Ok(TrainOutcome {
                steps_done: state.step,
                total_steps,
                steps_computed: state.step - first_step,
                cancelled: true,
                final_loss,
            });
        }
        let step = state.step;
        let batches = order.step_batches(step);
        let step_targets: usize = batches
            .iter()
            .flatten()
            .map(|&i| n_targets(&examples[i]))
            .sum();
        let ids = || {
            batches
                .iter()
                .flatten()
                .map(|&i| examples[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if step_targets == 0 {
            return Err(TrainError::Input(format!(
                "step {}: its examples ({}) have no masked-in target",
                step + 1,
                ids()
            )));
        }
        if spec.lora_dropout > 0.0 {
            let mut rng = SplitMix64::derive(spec.seed, &format!("lora-dropout-step-{step}"));
            model.device.seed(rng.next_u64());
        }
        let mut grads: Vec<(Vec<f32>, Vec<f32>)> = state
            .factors
            .iter()
            .map(|f| (vec![0.0; f.a.len()], vec![0.0; f.b.len()]))
            .collect();
        let mut dense_grads: Vec<Vec<f32>> =
            state.dense.iter().map(|d| vec![0.0; d.w.len()]).collect();
        let mut loss_sum = 0.0f64;
        let mut input_tokens = 0usize;
        let mut step_ts = Vec::new();
        let mut step_t_loss = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let rows: Vec<PackedRow> = batch
                .iter()
                .enumerate()
                .map(|(k, &i)| PackedRow::single(k, &examples[i].sequence))
                .collect();
            input_tokens += rows.iter().map(PackedRow::len).sum::<usize>();
            let (lora, dense) = match &spec.curve {
                None => (vec![vec![1.0; rows.len()]], Vec::new()),
                Some(curve) => {
                    let (lora, dense, ts) = curve.coefficients(spec.seed, step, b, rows.len());
                    step_ts.extend(ts);
                    (lora, dense)
                }
            };
            let coeffs = PathCoefficients {
                lora,
                dense,
                lora_dropout: spec.lora_dropout,
            };
            // Dropout draws from the device's one seeded generator: lanes would draw in a
            // racy order, so a run with dropout keeps one lane (same masks, same run).
            let lanes = if spec.lora_dropout > 0.0 {
                1
            } else {
                crate::compute::cpu_lanes(&model.device)
            };
            let by_row = spec.curve.is_some();
            let trainables = Trainables {
                slot,
                lora: &state.factors,
                dense_index,
                dense: &state.dense,
            };
            let parts = step_gradients(model, &trainables, &rows, &coeffs, lanes, by_row)?;
            for StepPart {
                value,
                lora: g,
                dense: dg,
                per_row,
            } in parts
            {
                step_t_loss.extend(
                    per_row
                        .into_iter()
                        .map(|(sum, n)| (n > 0).then(|| sum / n as f64)),
                );
                if !value.is_finite() {
                    return Err(TrainError::NonFinite {
                        step: step + 1,
                        what: "the loss".into(),
                        ids: ids(),
                    });
                }
                loss_sum += f64::from(value);
                // Each part's backward is of its NLL sum ÷ the step's targets, so the parts'
                // gradients (added in part order: the same run gives the same sums) are the
                // step's gradient.
                let scale = 1.0 / step_targets as f32;
                for ((ga, gb), (da, db)) in grads.iter_mut().zip(g) {
                    ga.iter_mut().zip(&da).for_each(|(x, y)| *x += y * scale);
                    gb.iter_mut().zip(&db).for_each(|(x, y)| *x += y * scale);
                }
                for (gd, dd) in dense_grads.iter_mut().zip(dg) {
                    gd.iter_mut().zip(&dd).for_each(|(x, y)| *x += y * scale);
                }
            }
            // No trim here: the next batch reuses these blocks (handing them back made every
            // step fault its activations in again as zeroed pages; see
            // `compute::keep_freed_host_memory`). The job trims once when it ends.
        }
        let mut flat: Vec<&mut [f32]> = grads
            .iter_mut()
            .flat_map(|(a, b)| [a.as_mut_slice(), b.as_mut_slice()])
            .chain(dense_grads.iter_mut().map(Vec::as_mut_slice))
            .collect();
        let (grad_norm, _) = clip_grad_norm(&mut flat, spec.max_grad_norm);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step: step + 1,
                what: "the gradient norm".into(),
                ids: ids(),
            });
        }
        let lr = spec.lr * spec.schedule.factor(step, spec.warmup_steps, total_steps);
        for ((f, (ga, gb)), [ma, mb]) in state
            .factors
            .iter_mut()
            .zip(&grads)
            .zip(state.moments.iter_mut())
        {
            adamw_update(&mut f.a, ga, ma, lr, step as u64 + 1, &adamw);
            adamw_update(&mut f.b, gb, mb, lr, step as u64 + 1, &adamw);
        }
        for ((d, gd), m) in state
            .dense
            .iter_mut()
            .zip(&dense_grads)
            .zip(state.dense_moments.iter_mut())
        {
            adamw_update(&mut d.w, gd, m, lr, step as u64 + 1, &adamw);
        }
        let samples_before = state.samples_seen;
        state.step += 1;
        state.samples_seen += batches.iter().map(Vec::len).sum::<usize>();
        state.tokens_seen += step_targets;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let loss = loss_sum / step_targets as f64;
        final_loss = Some(loss);
        let record = StepRecord {
            step: state.step,
            samples_seen: state.samples_seen,
            tokens: step_targets,
            input_tokens,
            loss,
            lr,
            grad_norm,
            elapsed_s: state.elapsed_s,
            t: spec.curve.is_some().then_some(step_ts),
            t_loss: spec.curve.is_some().then_some(step_t_loss),
        };
        store.append_step(&record)?;
        (hooks.on_step)(&record);
        if let Some(every) = spec.checkpoint_every.filter(|&e| e > 0)
            && state.samples_seen / every > samples_before / every
        {
            let name = store.save_checkpoint(&state)?;
            (hooks.on_checkpoint)(&name);
        }
        tokens_this_call += input_tokens;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        report(
            &state,
            format!(
                "loss {loss:.4} · lr {lr:.2e} · {:.0} tok/s",
                tokens_this_call as f64 / secs
            ),
        );
    }
    store.save_final(&state)?;
    Ok(TrainOutcome {
        steps_done: state.step,
        total_steps,
        steps_computed: state.step - first_step,
        cancelled: false,
        final_loss,
    })
}

/// What a step trains: LoRA factors in slot `slot` and dense deltas at dense index
/// `dense_index` (a full curve bend), either list possibly empty.
pub struct Trainables<'a> {
    pub slot: usize,
    pub lora: &'a [LoraFactors],
    pub dense_index: usize,
    pub dense: &'a [DenseFactor],
}

/// One part's NLL sum, the unscaled gradients of what it trains, and with `by_row` each row's
/// `(NLL sum, targets)`.
pub struct StepPart {
    pub value: f32,
    pub lora: Vec<(Vec<f32>, Vec<f32>)>,
    pub dense: Vec<Vec<f32>>,
    pub per_row: Vec<(f64, usize)>,
}

/// The gradient of a batch's NLL sum per part, in part order. With `lanes` > 1 the rows are
/// split into up to `lanes` contiguous parts of about equal tokens, each run forward and
/// backward on its own thread through a shallow clone of `model` (the weights are shared,
/// reference-counted; each clone holds its own leaves, so each part's autodiff graph is its
/// own). On the CPU backend this keeps every core busy: burn-flex runs its matrix products on
/// all cores but its element-wise operations on the calling thread only (measured on 2 cores:
/// one lane used 1.29 cores over a SmolLM2 step).
pub fn step_gradients(
    model: &CausalLm,
    trainables: &Trainables,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
    lanes: usize,
    by_row: bool,
) -> Result<Vec<StepPart>, TrainError> {
    let parts = balanced_parts(&rows.iter().map(PackedRow::len).collect::<Vec<_>>(), lanes);
    crate::compute::map_lanes(&parts, |range| {
        let mut lane_model = model.clone();
        part_gradients(
            &mut lane_model,
            trainables,
            &rows[range.clone()],
            &coeffs.rows(range),
            by_row,
        )
    })
    .into_iter()
    .collect()
}

/// [`step_gradients`] of LoRA factors alone: `(NLL sum, gradient of every factor, per-row NLL)`
/// per part.
pub fn batch_gradients(
    model: &CausalLm,
    slot: usize,
    factors: &[LoraFactors],
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
    lanes: usize,
    by_row: bool,
) -> Result<Vec<PartGradients>, TrainError> {
    let trainables = Trainables {
        slot,
        lora: factors,
        dense_index: 0,
        dense: &[],
    };
    Ok(
        step_gradients(model, &trainables, rows, coeffs, lanes, by_row)?
            .into_iter()
            .map(|p| (p.value, p.lora, p.per_row))
            .collect(),
    )
}

/// `(NLL sum, unscaled gradient of every factor, per-row NLL)` of one part of a batch.
/// With `by_row`, also each row's `(NLL sum, targets)`; empty otherwise.
pub type PartGradients = (f32, Vec<(Vec<f32>, Vec<f32>)>, Vec<(f64, usize)>);

fn part_gradients(
    model: &mut CausalLm,
    trainables: &Trainables,
    rows: &[PackedRow],
    coeffs: &PathCoefficients,
    by_row: bool,
) -> Result<StepPart, TrainError> {
    let leaves = attach(model, trainables.slot, trainables.lora)?;
    let dense_leaves = attach_dense(model, trainables.dense_index, trainables.dense)?;
    let (nll, per_row) = if by_row {
        target_nll_sum_by_row(model, rows, coeffs)?
    } else {
        (target_nll_sum(model, rows, coeffs)?.0, Vec::new())
    };
    let value = nll
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN);
    let grads = nll.backward();
    Ok(StepPart {
        value,
        lora: gradients(&leaves, &grads)?,
        dense: dense_gradients(&dense_leaves, &grads)?,
        per_row,
    })
}

fn n_targets(item: &EvalItem) -> usize {
    item.sequence
        .target_mask
        .iter()
        .skip(1)
        .filter(|&&m| m)
        .count()
}

/// A fresh adapter's factors, initialised as PEFT does by default: A from Kaiming-uniform with
/// `a = √5` (uniform in ±1/√in), B zero, drawn from the seed in module order.
pub fn new_lora_factors(
    model: &CausalLm,
    targets: &[String],
    rank: usize,
    scale: f32,
    seed: u64,
) -> Result<Vec<LoraFactors>, TrainError> {
    if rank == 0 {
        return Err(TrainError::Input("--rank must be at least 1".into()));
    }
    if targets.is_empty() {
        return Err(TrainError::Input("--targets names no module".into()));
    }
    let names = model.linear_module_names();
    for t in targets {
        if !names.iter().any(|n| n.ends_with(&format!(".{t}"))) {
            return Err(TrainError::Input(format!(
                "--targets: `{t}` is not a linear layer of this model (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"
            )));
        }
    }
    let mut rng = SplitMix64::derive(seed, "lora-init");
    let mut out = Vec::new();
    for name in names {
        if !targets.iter().any(|t| name.ends_with(&format!(".{t}"))) {
            continue;
        }
        let Some(linear) = model.linear(&name) else {
            continue;
        };
        let (in_f, out_f) = (linear.in_features(), linear.out_features());
        let bound = 1.0 / (in_f as f64).sqrt();
        let a_peft: Vec<f32> = (0..rank * in_f)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        let b_peft = vec![0.0f32; out_f * rank];
        out.push(LoraFactors::from_peft(
            &name, &a_peft, &b_peft, rank, in_f, out_f, scale,
        )?);
    }
    Ok(out)
}

/// Zero moments for every factor.
pub fn zero_moments(factors: &[LoraFactors]) -> Vec<[AdamWState; 2]> {
    factors
        .iter()
        .map(|f| [AdamWState::zeros(f.a.len()), AdamWState::zeros(f.b.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(length: TrainLength, batch: usize, accum: usize, shuffle: bool) -> TrainSpec {
        TrainSpec {
            lr: 1e-3,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            weight_decay: 0.0,
            length,
            batch,
            grad_accum: accum,
            max_grad_norm: None,
            seed: 7,
            shuffle,
            checkpoint_every: None,
            lora_dropout: 0.0,
            curve: None,
        }
    }

    #[test]
    fn file_order_keeps_the_last_partial_batch_and_wraps_epochs() {
        let o = DataOrder::new(7, &spec(TrainLength::Epochs(2), 2, 2, false)).unwrap();
        assert_eq!(o.batches_per_epoch(), 4);
        assert_eq!(o.total_steps(TrainLength::Epochs(2)), 4);
        assert_eq!(o.step_batches(0), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(o.step_batches(1), vec![vec![4, 5], vec![6]]);
        assert_eq!(o.step_batches(2), vec![vec![0, 1], vec![2, 3]]);
        // Odd batch count: the run's last step holds one batch.
        let o = DataOrder::new(7, &spec(TrainLength::Epochs(1), 2, 3, false)).unwrap();
        assert_eq!(o.total_steps(TrainLength::Epochs(1)), 2);
        assert_eq!(o.step_batches(1), vec![vec![6]]);
    }

    #[test]
    fn shuffling_is_a_seeded_permutation_per_epoch() {
        let s = spec(TrainLength::Steps(10), 3, 1, true);
        let o = DataOrder::new(20, &s).unwrap();
        let e0 = o.epoch_permutation(0);
        let e1 = o.epoch_permutation(1);
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert_ne!(e0, e1, "each epoch reshuffles");
        assert_ne!(e0, (0..20).collect::<Vec<_>>());
        assert_eq!(DataOrder::new(20, &s).unwrap().epoch_permutation(1), e1);
        let other = DataOrder::new(20, &TrainSpec { seed: 8, ..s }).unwrap();
        assert_ne!(other.epoch_permutation(0), e0);
    }
}
