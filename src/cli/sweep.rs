//! `basin sweep` and `basin merge`: walk a path θ(t), measure a suite at each t, resumably.

use std::path::PathBuf;

use anyhow::Result;

use super::progress::ProgressBar;
use crate::{
    compute::ComputeKind,
    experiments::{
        job::CancelFlag,
        sweep::SweepHooks,
        sweep_job::{SweepRequest, SweepStart, run_sweep_job},
        sweep_store::{merge, onsets, read_results},
    },
    model::weight_dtype::WeightDType,
};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Base model θ₀: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub base: PathBuf,
    /// LoRA adapter A: θ(t) = θ₀ + t·ΔW_A (with --adapter-b: θ₀ + (1−t)·ΔW_A + t·ΔW_B).
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with = "target")]
    pub adapter: Option<PathBuf>,
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, requires = "adapter")]
    pub adapter_b: Option<PathBuf>,
    /// Full checkpoint θ₁ of the same architecture: θ(t) = (1−t)·θ₀ + t·θ₁.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub target: Option<PathBuf>,
    /// A `basin train` folder: evaluate the base and every checkpoint (and the final adapter)
    /// against samples seen, with each metric's onset; no --t.
    #[arg(long, conflicts_with_all = ["adapter", "adapter_b", "target", "t"])]
    pub checkpoints: Option<PathBuf>,
    /// A `basin curve fit` folder: walk its fitted curve θ₀ → endpoint instead of the line.
    #[arg(long, conflicts_with_all = ["adapter", "adapter_b", "target", "checkpoints"])]
    pub curve: Option<PathBuf>,
    /// The metric suite (suite.toml).
    #[arg(long)]
    pub suite: PathBuf,
    /// Points: START:STOP:N (both ends included; extrapolation allowed, e.g. -0.5:1.5:9).
    #[arg(
        long,
        allow_hyphen_values = true,
        required_unless_present = "checkpoints"
    )]
    pub t: Option<String>,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// What linear weights and the vocabulary tables are stored in on the device (f16 halves
    /// their memory; bf16 runs on the CPU only); every computation stays in f32.
    #[arg(long, value_enum, default_value_t = WeightDType::F32)]
    pub dtype: WeightDType,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Run only shard i of n (every n-th point from i), e.g. for a Slurm array; combine with `basin merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Bootstrap resamples for the 95% CIs.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Result folder (run.json, results.jsonl, summary.csv); rerunning with it resumes.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
    /// LoRA paths: evaluate this many t values in one pass (sequences of different t share a
    /// batch, so the weights are read once; pays on a GPU). Same results as 1.
    #[arg(long, default_value_t = 1)]
    pub t_per_pass: usize,
    /// Resume a folder whose run.json was written on another device or by another Basin
    /// version (refused otherwise); each point computed now records where it ran.
    #[arg(long)]
    pub allow_resume_change: bool,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Shard result folders of one sweep (or of one landscape).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
}

impl SweepArgs {
    pub fn request(&self) -> SweepRequest {
        SweepRequest {
            base: self.base.clone(),
            adapter: self.adapter.clone(),
            adapter_b: self.adapter_b.clone(),
            target: self.target.clone(),
            checkpoints: self.checkpoints.clone(),
            curve: self.curve.clone(),
            suite: self.suite.clone(),
            t: self.t.clone().unwrap_or_default(),
            device: self.device,
            dtype: self.dtype,
            batch: self.batch,
            shard: self.shard.clone(),
            bootstrap: self.bootstrap,
            seed: self.seed,
            out: self.out.clone(),
            max_tokens: self.max_tokens,
            t_per_pass: self.t_per_pass,
            allow_resume_change: self.allow_resume_change,
        }
    }
}

pub fn run(args: &SweepArgs) -> Result<()> {
    let req = args.request();
    let (stop, abort) = ctrl_c_flags();
    let bar = ProgressBar::new("sweep", 0);
    let hooks = SweepHooks {
        progress: &|p| bar.update(&p),
        on_result: &|r| {
            let coordinate = if args.checkpoints.is_some() {
                "samples"
            } else {
                "t"
            };
            bar.println(&format!(
                "{coordinate} = {:<8} {:<16} {:.4} [{:.4}, {:.4}]",
                r.t, r.metric, r.value, r.ci_low, r.ci_high
            ))
        },
        stop_after_point: &stop,
        abort: &abort,
    };
    let on_start = |s: &SweepStart| {
        bar.println(&format!(
            "sweep: {} path, {} points, {} metrics, {} scored sequences per point, on {}",
            s.path.as_str(),
            s.points,
            s.metrics,
            s.sequences_per_point,
            s.device_label
        ))
    };
    let outcome = run_sweep_job(&req, &hooks, &on_start);
    bar.finish();
    let outcome = outcome?;
    if args.checkpoints.is_some() {
        let results = read_results(&args.out.join("results.jsonl"))?;
        for (metric, onset) in onsets(&results.values().collect::<Vec<_>>()) {
            match onset {
                Some(s) => eprintln!("onset of {metric}: {s} samples"),
                None => eprintln!("onset of {metric}: not reached"),
            }
        }
    }
    eprintln!(
        "done: {} points computed, {} already finished; results in {}",
        outcome.computed_points,
        outcome.skipped_points,
        args.out.join("summary.csv").display()
    );
    Ok(())
}

/// The two cancel flags of a resumable job, wired to Ctrl-C: the first press finishes the point
/// in flight and stops (or, while the model is still loading, stops before the first point); the
/// second exits at once, whatever the job is doing (loading included): every finished point is
/// already fsync'd in results.jsonl, and a line cut short is dropped on resume. The abort flag
/// is for callers that stop the job themselves (the app).
pub fn ctrl_c_flags() -> (CancelFlag, CancelFlag) {
    let stop = CancelFlag::new();
    let abort = CancelFlag::new();
    let s = stop.clone();
    let presses = std::sync::atomic::AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        match presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => {
                eprintln!("\nstopping after the point in flight (Ctrl-C again to stop now)");
                s.cancel();
            }
            _ => {
                eprintln!("\nstopped; the finished points are on disk (rerun to resume)");
                std::process::exit(130)
            }
        }
    });
    (stop, abort)
}

pub fn run_merge(args: &MergeArgs) -> Result<()> {
    let n = merge(&args.dirs, &args.out)?;
    eprintln!("merged {n} results into {}", args.out.display());
    Ok(())
}
