//! `basin train`: LoRA supervised fine-tuning, resumable, with checkpoints every N samples.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::progress::ProgressBar;
use crate::{
    compute::ComputeKind,
    experiments::{
        optim::Schedule,
        train::{TrainHooks, TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest, TrainStart, run_train_job},
        train_store::StoreLayout,
    },
};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Base model: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub base: PathBuf,
    /// Chat JSONL (as `basin eval` reads); the loss covers the last assistant turn.
    #[arg(long)]
    pub data: PathBuf,
    /// Result folder: run.json, train.jsonl, checkpoints/, final/. Rerunning resumes.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue training this PEFT adapter (every A and B trainable) instead of a new one.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with_all = ["rank", "alpha", "targets", "rslora"])]
    pub init_adapter: Option<PathBuf>,
    /// Rank of a new adapter.
    #[arg(long)]
    pub rank: Option<usize>,
    /// LoRA alpha of a new adapter (scale = alpha / rank, or alpha / √rank with --rslora).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Modules of a new adapter, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_delimiter = ',')]
    pub targets: Option<Vec<String>>,
    #[arg(long)]
    pub rslora: bool,
    /// PEFT's LoRA dropout on the adapted layers' inputs.
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f32,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = Schedule::Linear)]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Passes over the data (default 1 when --steps is not given).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<usize>,
    /// Optimizer steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Examples per forward/backward.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Clip the global gradient norm (0 = no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reshuffle the examples each epoch from --seed (false: file order).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub shuffle: bool,
    /// Save a PEFT checkpoint each time this many more samples have been seen.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Longest example in tokens; longer ones are an error unless --truncate.
    #[arg(long, default_value_t = 2048)]
    pub max_seq_len: usize,
    /// Cut examples longer than --max-seq-len instead of refusing them.
    #[arg(long)]
    pub truncate: bool,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
}

impl TrainArgs {
    pub fn request(&self) -> Result<TrainRequest> {
        let defaults = TrainRequest::new(self.base.clone(), self.data.clone(), self.out.clone());
        let init = match &self.init_adapter {
            Some(p) => AdapterInit::Existing(p.clone()),
            None => {
                let AdapterInit::New {
                    rank,
                    alpha,
                    targets,
                    ..
                } = defaults.init
                else {
                    bail!("internal: default adapter settings");
                };
                let rank = self.rank.unwrap_or(rank);
                AdapterInit::New {
                    rank,
                    alpha: self.alpha.unwrap_or(if self.rank.is_some() {
                        2.0 * rank as f64
                    } else {
                        alpha
                    }),
                    targets: self.targets.clone().unwrap_or(targets),
                    rslora: self.rslora,
                }
            }
        };
        let length = match (self.epochs, self.steps) {
            (_, Some(s)) => TrainLength::Steps(s),
            (Some(e), None) => TrainLength::Epochs(e),
            (None, None) => TrainLength::Epochs(1),
        };
        Ok(TrainRequest {
            init,
            spec: TrainSpec {
                lr: self.lr,
                schedule: self.schedule,
                warmup_steps: self.warmup_steps,
                weight_decay: self.weight_decay,
                length,
                batch: self.batch,
                grad_accum: self.grad_accum,
                max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
                seed: self.seed,
                shuffle: self.shuffle,
                checkpoint_every: self.checkpoint_every,
                lora_dropout: self.lora_dropout,
                curve: None,
            },
            max_seq_len: self.max_seq_len,
            truncate: self.truncate,
            device: self.device,
            ..defaults
        })
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    run_request(&args.request()?, "train").map(|_| ())
}

/// Runs a training request (`basin train`, `basin curve fit`) with a progress bar, Ctrl-C to
/// stop and resume; the outcome once it ends.
pub fn run_request(
    req: &TrainRequest,
    label: &'static str,
) -> Result<crate::experiments::train::TrainOutcome> {
    // First Ctrl-C: finish the step in flight and save the state to resume from; second: exit
    // (the last checkpoint and every logged step are on disk).
    let stop = super::progress::stop_on_ctrl_c(
        "stopping after the step in flight (Ctrl-C again to exit now)",
    );
    let bar = ProgressBar::new(label, 0);
    let hooks = TrainHooks {
        progress: &|p| bar.update(&p),
        on_step: &|r| {
            if !bar.is_visible() {
                eprintln!(
                    "step {:>5}  samples {:>7}  loss {:.4}  lr {:.3e}  grad-norm {:.3}",
                    r.step, r.samples_seen, r.loss, r.lr, r.grad_norm
                );
            }
        },
        on_checkpoint: &|name| bar.println(&format!("checkpoint {name}")),
        cancel: &stop,
    };
    let on_start = |s: &TrainStart| {
        let resumed = if s.resumed_at > 0 {
            format!(", resuming after step {}", s.resumed_at)
        } else {
            String::new()
        };
        bar.println(&format!(
            "{label}: {} examples, {} LoRA modules ({} trainable parameters), {} steps on {}{resumed}",
            s.examples, s.modules, s.trainable_parameters, s.total_steps, s.device_label
        ))
    };
    let outcome = run_train_job(req, &hooks, &on_start);
    bar.finish();
    let outcome = outcome?;
    if outcome.cancelled {
        eprintln!(
            "stopped after step {}/{}; rerun the same command to resume",
            outcome.steps_done, outcome.total_steps
        );
    } else {
        let loss = outcome
            .final_loss
            .map_or(String::from("(already finished)"), |l| {
                format!("last loss {l:.4}")
            });
        let what = match req.spec.curve.map(|c| c.bend) {
            Some(crate::experiments::curve::BendKind::Full) => "control point θ_b (bend)",
            Some(_) => "bend adapter",
            None => "adapter",
        };
        eprintln!(
            "done: {} steps ({} computed now), {loss}; {what} in {}",
            outcome.total_steps,
            outcome.steps_computed,
            req.out
                .join(StoreLayout::of_dir(&req.out).final_dir)
                .display()
        );
    }
    Ok(outcome)
}
