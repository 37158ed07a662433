//! `basin sweep` and `basin merge`: walk a path θ(t), measure a suite at each t, resumably.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::progress::ProgressBar;
use crate::{
    checkpoint::{
        open::{OpenedModel, open_model},
        peft::LoraAdapter,
    },
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
        path::PathKind,
        suite::Suite,
        sweep::{SweepHooks, SweepSpec, run_sweep},
        sweep_store::{
            RunRecord, SWEEP_SCHEMA, SweepStore, merge, parse_shard, parse_t_range, shard_points,
        },
    },
    model::{load::PathEndpoints, transformer::CausalLm},
};

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Base model θ₀: a Hugging Face folder or a .gguf file.
    #[arg(long)]
    pub base: PathBuf,
    /// LoRA adapter A: θ(t) = θ₀ + t·ΔW_A (with --adapter-b: θ₀ + (1−t)·ΔW_A + t·ΔW_B).
    #[arg(long, conflicts_with = "target")]
    pub adapter: Option<PathBuf>,
    #[arg(long, requires = "adapter")]
    pub adapter_b: Option<PathBuf>,
    /// Full checkpoint θ₁ of the same architecture: θ(t) = (1−t)·θ₀ + t·θ₁.
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// The metric suite (suite.toml).
    #[arg(long)]
    pub suite: PathBuf,
    /// Points: START:STOP:N (both ends included; extrapolation allowed, e.g. -0.5:1.5:9).
    #[arg(long, allow_hyphen_values = true)]
    pub t: String,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
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
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Shard result folders of one sweep.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
}

/// Files at most this large are hashed on every start; larger weight files are fingerprinted by
/// size and modification time.
const HASH_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

fn fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.len() > HASH_LIMIT_BYTES {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        return Ok(format!("size:{},mtime:{mtime}", meta.len()));
    }
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// Fingerprints of a file, or of the files directly inside a folder.
fn fingerprints(path: &Path, out: &mut BTreeMap<String, String>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for p in entries {
            out.insert(p.display().to_string(), fingerprint(&p)?);
        }
    } else {
        out.insert(path.display().to_string(), fingerprint(path)?);
    }
    Ok(())
}

/// Full-weight paths need the same architecture, shapes and tokenizer at both ends.
fn check_compatible(base: &OpenedModel, target: &OpenedModel) -> Result<()> {
    let a = serde_json::to_value(&base.config)?;
    let b = serde_json::to_value(&target.config)?;
    if a != b {
        let mut diffs = Vec::new();
        if let (Some(x), Some(y)) = (a.as_object(), b.as_object()) {
            for (k, v) in x {
                if y.get(k) != Some(v) {
                    diffs.push(format!(
                        "{k}: {v} vs {}",
                        y.get(k).unwrap_or(&serde_json::Value::Null)
                    ));
                }
            }
        }
        bail!(
            "{} and {} differ in configuration ({}); a full-weight path needs the same architecture and shapes",
            base.path.display(),
            target.path.display(),
            diffs.join(", ")
        );
    }
    if base.tokenizer.tokenizer.get_vocab(true) != target.tokenizer.tokenizer.get_vocab(true)
        || base.tokenizer.chat_template != target.tokenizer.chat_template
    {
        bail!(
            "{} and {} have different tokenizers or chat templates; a full-weight path needs identical ones",
            base.path.display(),
            target.path.display()
        );
    }
    Ok(())
}

pub fn run(args: &SweepArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let all_points = parse_t_range(&args.t)?;
    let points = match &args.shard {
        Some(s) => {
            let (i, n) = parse_shard(s)?;
            shard_points(&all_points, i, n)
        }
        None => all_points,
    };
    let (path_kind, endpoint_desc) = match (&args.adapter, &args.adapter_b, &args.target) {
        (Some(_), None, None) => (PathKind::Lora, "adapter"),
        (Some(_), Some(_), None) => (PathKind::TwoAdapter, "two adapters"),
        (None, None, Some(_)) => (PathKind::FullWeight, "target"),
        _ => bail!("give the path's end: --adapter A [--adapter-b B], or --target PATH"),
    };
    let suite = Suite::load(&args.suite)?;
    let compute = ComputeDevice::new(args.device)?;
    let base = open_model(&args.base)?;
    let mut adapters = Vec::new();
    for p in [&args.adapter, &args.adapter_b].into_iter().flatten() {
        let a = LoraAdapter::open(p)?;
        a.validate_against(base.tensors.as_ref(), &base.config)?;
        adapters.push(a);
    }
    let target = match &args.target {
        Some(p) => {
            let t = open_model(p)?;
            check_compatible(&base, &t)?;
            Some(t)
        }
        None => None,
    };

    let mut inputs = BTreeMap::new();
    for f in suite.files() {
        fingerprints(&f, &mut inputs)?;
    }
    for p in [
        Some(&args.base),
        args.adapter.as_ref(),
        args.adapter_b.as_ref(),
        args.target.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        fingerprints(p, &mut inputs)?;
    }
    let spec_json = serde_json::json!({
        "path": path_kind,
        "base": args.base.display().to_string(),
        "adapter": args.adapter.as_ref().map(|p| p.display().to_string()),
        "adapter_b": args.adapter_b.as_ref().map(|p| p.display().to_string()),
        "target": args.target.as_ref().map(|p| p.display().to_string()),
        "suite": args.suite.display().to_string(),
        "t": args.t,
        "shard": args.shard,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
    });
    let record = RunRecord {
        schema: SWEEP_SCHEMA.to_string(),
        basin_version: env!("CARGO_PKG_VERSION").to_string(),
        spec: spec_json,
        inputs,
    };
    let mut store = SweepStore::open_or_create(&args.out, &record)?;

    let template = chat_template_of(&base.tokenizer)?;
    let items = encode_examples(
        &base.tokenizer,
        &template,
        &suite.requests(),
        args.max_tokens,
    )
    .with_context(|| format!("{}", args.suite.display()))?;
    let endpoints = PathEndpoints {
        adapters: adapters.iter().collect(),
        checkpoints: target.iter().map(|t| t.tensors.as_ref()).collect(),
    };
    let model = CausalLm::load_path(
        &base.config,
        base.tensors.as_ref(),
        &endpoints,
        &compute.device,
    )?;
    // The weights now live on the device: unmap the files, so their pages stop counting
    // towards the sweep's memory.
    drop(endpoints);
    drop(target);
    drop(base);

    let stop = CancelFlag::new();
    let abort = CancelFlag::new();
    {
        let (stop, abort) = (stop.clone(), abort.clone());
        let presses = std::sync::atomic::AtomicUsize::new(0);
        // First Ctrl-C: finish the point in flight, then stop; second: stop now (finished
        // points are already on disk); third: exit.
        let _ = ctrlc::set_handler(move || {
            match presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    eprintln!("\nstopping after the point in flight (Ctrl-C again to stop now)");
                    stop.cancel();
                }
                1 => abort.cancel(),
                _ => std::process::exit(130),
            }
        });
    }
    let bar = ProgressBar::new("sweep", points.len() * items.len());
    eprintln!(
        "sweep: {} path ({endpoint_desc}), {} points, {} metrics, {} scored sequences per point, on {}",
        serde_json::to_value(path_kind)?.as_str().unwrap_or("?"),
        points.len(),
        suite.metrics.len(),
        items.len(),
        compute.label
    );
    let spec = SweepSpec {
        path: path_kind,
        t_values: points,
        batch_size: args.batch,
        bootstrap_samples: args.bootstrap,
        bootstrap_seed: args.seed,
        t_per_pass: args.t_per_pass,
    };
    let hooks = SweepHooks {
        progress: &|p| bar.update(&p),
        on_result: &|r| {
            bar.println(&format!(
                "t = {:<8} {:<16} {:.4} [{:.4}, {:.4}]",
                r.t, r.metric, r.value, r.ci_low, r.ci_high
            ))
        },
        stop_after_point: &stop,
        abort: &abort,
    };
    let outcome = run_sweep(&model, &suite, &items, &spec, &mut store, &hooks);
    bar.finish();
    let outcome = outcome?;
    eprintln!(
        "done: {} points computed, {} already finished; results in {}",
        outcome.computed_points,
        outcome.skipped_points,
        args.out.join("summary.csv").display()
    );
    Ok(())
}

pub fn run_merge(args: &MergeArgs) -> Result<()> {
    let n = merge(&args.dirs, &args.out)?;
    eprintln!("merged {n} results into {}", args.out.display());
    Ok(())
}
