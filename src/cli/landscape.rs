//! `basin landscape`: a loss-landscape slice, resumably (combine shards with `basin merge`).

use std::path::PathBuf;

use anyhow::Result;

use super::{progress::ProgressBar, sweep::ctrl_c_flags};
use crate::{
    compute::ComputeKind,
    experiments::{
        landscape_job::{LandscapeRequest, LandscapeStart, PLANE_FILE, run_landscape_job},
        plane::{Center, PlaneKind},
        sweep::SweepHooks,
    },
    model::weight_dtype::WeightDType,
};

#[derive(Debug, clap::Args)]
pub struct LandscapeArgs {
    /// Base model θ₀: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub base: PathBuf,
    /// θ_H as a LoRA adapter.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with = "curve")]
    pub adapter: Option<PathBuf>,
    /// θ_H as a full checkpoint of the same architecture (a dense direction; random directions
    /// then live on every linear layer at rank 8).
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with_all = ["adapter", "curve"])]
    pub target: Option<PathBuf>,
    /// A `basin curve fit` folder: θ_H is its endpoint, the third point its bend, and the curve
    /// is drawn on the plane.
    #[arg(long)]
    pub curve: Option<PathBuf>,
    /// The metric suite (suite.toml); every metric is measured at every cell.
    #[arg(long)]
    pub suite: PathBuf,
    /// Only these metrics of the suite, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// `endpoints`: through θ₀ (0, 0), θ_H (1, 0) and the bend (or a seeded random direction),
    /// orthogonal axes of equal length. `random`: two seeded, filter-normalised random
    /// directions around --center.
    #[arg(long, default_value = "endpoints", value_parser = PlaneKind::parse)]
    pub plane: PlaneKind,
    /// Centre of a random plane: base, end or t=0.5 (on the curve when one is given).
    #[arg(long, default_value = "base", value_parser = Center::parse)]
    pub center: Center,
    /// Seed of the random directions and of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scale each output row of a random direction to the norm of the base weight's row.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub filter_norm: bool,
    /// Cells: NXxNY (α by β).
    #[arg(long, default_value = "21x21")]
    pub grid: String,
    /// A0:A1,B0:B1 (default: -0.5:1.5,-0.5:1.5 for endpoints, -1:1,-1:1 for random).
    #[arg(long, allow_hyphen_values = true)]
    pub range: Option<String>,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// What linear weights and the vocabulary tables are stored in on the device (f16 halves
    /// their memory; bf16 runs on the CPU only); every computation stays in f32.
    #[arg(long, value_enum, default_value_t = WeightDType::F32)]
    pub dtype: WeightDType,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Cells evaluated together in one pass (each sequence carries its cell's coefficients, so
    /// the weights are read once for several cells). Same results as 1.
    #[arg(long, default_value_t = 4)]
    pub cells_per_pass: usize,
    /// Run only shard i of n (every n-th cell from i); combine with `basin merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Bootstrap resamples for the 95% CIs.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Result folder (run.json, plane.json, grid.jsonl, grid.csv); rerunning with it resumes.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
    /// Resume a folder written on another device or by another Basin version.
    #[arg(long)]
    pub allow_resume_change: bool,
}

impl LandscapeArgs {
    pub fn request(&self) -> LandscapeRequest {
        LandscapeRequest {
            base: self.base.clone(),
            adapter: self.adapter.clone(),
            target: self.target.clone(),
            curve: self.curve.clone(),
            suite: self.suite.clone(),
            metrics: self.metrics.clone(),
            plane: self.plane,
            center: self.center,
            seed: self.seed,
            filter_norm: self.filter_norm,
            grid: self.grid.clone(),
            range: self.range.clone().unwrap_or_default(),
            device: self.device,
            dtype: self.dtype,
            batch: self.batch,
            cells_per_pass: self.cells_per_pass,
            shard: self.shard.clone(),
            bootstrap: self.bootstrap,
            out: self.out.clone(),
            max_tokens: self.max_tokens,
            allow_resume_change: self.allow_resume_change,
        }
    }
}

pub fn run(args: &LandscapeArgs) -> Result<()> {
    let req = args.request();
    let (stop, abort) = ctrl_c_flags();
    let bar = ProgressBar::new("landscape", 0);
    let hooks = SweepHooks {
        progress: &|p| bar.update(&p),
        on_result: &|r| {
            bar.println(&format!(
                "α = {:<8} β = {:<8} {:<16} {:.4} [{:.4}, {:.4}]",
                r.t,
                r.beta.unwrap_or(f64::NAN),
                r.metric,
                r.value,
                r.ci_low,
                r.ci_high
            ))
        },
        stop_after_point: &stop,
        abort: &abort,
    };
    let on_start = |s: &LandscapeStart| {
        bar.println(&format!(
            "landscape: {} cells, {} metrics, {} scored sequences per cell, on {}; plane in {}",
            s.cells,
            s.metrics,
            s.sequences_per_cell,
            s.device_label,
            args.out.join(PLANE_FILE).display()
        ))
    };
    let outcome = run_landscape_job(&req, &hooks, &on_start);
    bar.finish();
    let outcome = outcome?;
    eprintln!(
        "done: {} cells computed, {} already finished; results in {}",
        outcome.computed_points,
        outcome.skipped_points,
        args.out.join("grid.csv").display()
    );
    Ok(())
}
