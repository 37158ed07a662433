//! `basin curve fit`: a low-loss curve from θ₀ to an endpoint (Garipov et al. 2018): the
//! straight path plus a trained bend (a LoRA, or dense weights with `--bend full`), fitted with
//! the training engine of `basin train`.

use std::path::PathBuf;

use anyhow::Result;

use crate::{
    compute::ComputeKind,
    experiments::{
        curve::{
            BendKind, CURVE_FILE, CurveEndpoint, CurveKind, CurveRecord, CurveSpec, TSampling,
        },
        optim::Schedule,
        train::{TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest},
    },
};

#[derive(Debug, clap::Subcommand)]
pub enum CurveCommand {
    /// Fit a bend so that the loss on the data stays low along the whole path θ₀ → endpoint.
    Fit(CurveFitArgs),
}

#[derive(Debug, clap::Args)]
pub struct CurveFitArgs {
    /// Base model θ₀: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub base: PathBuf,
    /// The endpoint: a PEFT LoRA adapter of the base (θ_H = θ₀ + ΔW), frozen during the fit.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, required_unless_present = "target", conflicts_with = "target")]
    pub adapter: Option<PathBuf>,
    /// Or a full checkpoint θ₁ of the same architecture (θ₁ − θ₀ as a dense delta, one t per
    /// batch).
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub target: Option<PathBuf>,
    /// Chat JSONL whose masked NLL the fit keeps low along t (ordinary instruction data).
    #[arg(long)]
    pub data: PathBuf,
    /// Result folder: run.json, fit.jsonl (each step with its t), curve.json, checkpoints/,
    /// bend/ (a LoRA bend as a PEFT adapter; a full bend as the control point θ_b, a Hugging
    /// Face model folder). Rerunning resumes.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = CurveKind::Bezier)]
    pub kind: CurveKind,
    /// The bend: a LoRA (--bend-rank, --bend-alpha), or `full`: dense deltas of the
    /// --bend-targets weights (small models; one t per batch, as Garipov et al.; the base must
    /// be a Hugging Face folder, since bend/ is then θ_b's model folder).
    #[arg(long, value_enum, default_value_t = BendKind::Lora)]
    pub bend: BendKind,
    /// How each batch's t is drawn (a full bend or a checkpoint endpoint: one uniform t per
    /// batch).
    #[arg(long, value_enum, default_value_t = TSampling::Stratified)]
    pub t_sampling: TSampling,
    #[arg(long, default_value_t = 8)]
    pub bend_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub bend_alpha: f64,
    /// Modules the bend adapts, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    pub bend_targets: Vec<String>,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Passes over the data (default 1 when --steps is not given).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Clip the global gradient norm (0 = no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save the bend every this many optimizer steps (in `checkpoints/samples-N/`, named by
    /// the samples seen, as a training run's).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    #[arg(long, default_value_t = 2048)]
    pub max_seq_len: usize,
    #[arg(long)]
    pub truncate: bool,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
}

impl CurveFitArgs {
    pub fn request(&self) -> TrainRequest {
        let length = match (self.epochs, self.steps) {
            (_, Some(s)) => TrainLength::Steps(s),
            (Some(e), None) => TrainLength::Epochs(e),
            (None, None) => TrainLength::Epochs(1),
        };
        TrainRequest {
            init: AdapterInit::New {
                rank: self.bend_rank,
                alpha: self.bend_alpha,
                targets: self.bend_targets.clone(),
                rslora: false,
            },
            endpoint: self.adapter.clone().or_else(|| self.target.clone()),
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
                shuffle: true,
                // The store counts samples; a step sees batch × grad_accum of them.
                checkpoint_every: self
                    .checkpoint_every
                    .map(|steps| steps.saturating_mul(self.batch * self.grad_accum)),
                lora_dropout: 0.0,
                curve: Some(CurveSpec {
                    kind: self.kind,
                    t_sampling: self.t_sampling,
                    endpoint: if self.adapter.is_some() {
                        CurveEndpoint::Lora
                    } else {
                        CurveEndpoint::Checkpoint
                    },
                    bend: self.bend,
                }),
            },
            max_seq_len: self.max_seq_len,
            truncate: self.truncate,
            device: self.device,
            ..TrainRequest::new(self.base.clone(), self.data.clone(), self.out.clone())
        }
    }
}

pub fn run(cmd: &CurveCommand) -> Result<()> {
    match cmd {
        CurveCommand::Fit(args) => {
            let req = args.request();
            let outcome = super::train::run_request(&req, "curve fit")?;
            if !outcome.cancelled {
                eprintln!(
                    "curve: {} (bend in {})",
                    args.out.join(CURVE_FILE).display(),
                    CurveRecord::bend_dir(&args.out).display()
                );
            }
            Ok(())
        }
    }
}
