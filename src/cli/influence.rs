//! `basin influence`: rank training samples by their influence on a query.

use std::path::PathBuf;

use anyhow::Result;

use super::progress::ProgressBar;
use crate::{
    compute::ComputeKind,
    experiments::{
        influence::{Damping, InfluenceMethod, Normalize},
        influence_job::{InfluenceRequest, Query, run_influence_job},
    },
};

#[derive(Debug, clap::Args)]
pub struct InfluenceArgs {
    /// Base model θ₀: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub base: PathBuf,
    /// The trained LoRA adapter (with --data): gradsim at it.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with = "train_run", requires = "data")]
    pub adapter: Option<PathBuf>,
    /// The chats the adapter was trained on (JSONL); a training run names its own.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A `basin train` folder: TracIn over its checkpoints (gradsim: its last adapter).
    #[arg(long)]
    pub train_run: Option<PathBuf>,
    /// A metric of a suite: SUITE.toml:METRIC (instruction: mean NLL; paired: mean margin
    /// hack − honest; choice: mean score of the keyed option).
    #[arg(
        long,
        conflicts_with = "query_data",
        required_unless_present = "query_data"
    )]
    pub query: Option<String>,
    /// Instruction chats (JSONL) whose token-weighted mean NLL is the query.
    #[arg(long)]
    pub query_data: Option<PathBuf>,
    /// gradsim (one adapter), tracin (Σ over checkpoints, weighted by their learning rates) or
    /// datainf (one adapter, DataInf's closed-form inverse Hessian per LoRA layer).
    #[arg(long, default_value = "gradsim", value_parser = InfluenceMethod::parse)]
    pub method: InfluenceMethod,
    /// none, or unit: divide each training gradient by its norm (cosine form). unit is the form
    /// that passed the retraining check in RESULTS.md (raw gradients rank by gradient norm).
    #[arg(long, default_value = "none", value_parser = Normalize::parse)]
    pub normalize: Normalize,
    /// DataInf's damping: auto (0.1 × each layer's mean squared gradient entry) or a number.
    #[arg(long, default_value = "auto", value_parser = Damping::parse)]
    pub damping: Damping,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// Query responses per backward pass of equal weight (more: faster on a GPU; on a CPU 1
    /// keeps the peak lowest, measured 1.5 GiB vs 7 GiB at 8 for SmolLM2, at the same speed).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
    /// Samples listed at each end of the ranking in summary.json.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Result folder (run.json, scores.jsonl, summary.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Sketch every gradient to about this many entries (a seeded CountSketch per LoRA module:
    /// inner products kept in expectation; memory ∝ samples × K instead of samples × LoRA
    /// parameters). Sketched training gradients are cached, so a later query at the same
    /// adapters and data skips their backward passes.
    #[arg(long)]
    pub proj_dim: Option<usize>,
    /// Seed of the sketch.
    #[arg(long, default_value_t = 0)]
    pub proj_seed: u64,
    /// Folder of the gradient cache (default: $BASIN_CACHE/influence-grads).
    #[arg(long)]
    pub grad_cache: Option<PathBuf>,
}

pub fn run(args: &InfluenceArgs) -> Result<()> {
    let query = match (&args.query, &args.query_data) {
        (Some(q), None) => Query::parse_metric(q).map_err(anyhow::Error::msg)?,
        (None, Some(d)) => Query::Data(d.clone()),
        _ => anyhow::bail!("give one query: --query SUITE.toml:METRIC or --query-data FILE.jsonl"),
    };
    let req = InfluenceRequest {
        base: args.base.clone(),
        adapter: args.adapter.clone(),
        data: args.data.clone(),
        train_run: args.train_run.clone(),
        query,
        method: args.method,
        normalize: args.normalize,
        damping: args.damping,
        device: args.device,
        batch: args.batch,
        max_tokens: args.max_tokens,
        top: args.top,
        out: args.out.clone(),
        proj_dim: args.proj_dim,
        proj_seed: args.proj_seed,
        grad_cache: args.grad_cache.clone(),
    };
    // First Ctrl-C: stop after the sample in flight (nothing is written); second: exit at once.
    let cancel = super::progress::stop_on_ctrl_c(
        "stopping after the gradient in flight (Ctrl-C again to quit now)",
    );
    let bar = ProgressBar::new("influence", 0);
    let result = run_influence_job(&req, &|p| bar.update(&p), &cancel);
    bar.finish();
    let summary = result?;
    eprintln!(
        "{} samples ranked by {:?} on {} ({})",
        summary.samples, summary.method, summary.query, summary.sign
    );
    if let Some(dim) = summary.proj_dim {
        eprintln!(
            "gradients sketched to ~{dim} entries; training gradients of {} of {} points read from the cache",
            summary.cached_points,
            summary.points.len()
        );
    }
    for s in summary.top.iter().take(5) {
        eprintln!("  #{:<4} {:+.6e}  {}", s.rank, s.score, s.id);
    }
    eprintln!(
        "done: {} and {}",
        args.out.join("scores.jsonl").display(),
        args.out.join("summary.json").display()
    );
    Ok(())
}
