//! `basin generate`: what a model writes, at a point of a path, one JSON line per prompt and
//! sample, streamed to the output as batches finish.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{
    compute::ComputeKind,
    experiments::{
        generate::Sampling,
        generate_job::{GenerateAt, GenerateRequest, PathEnd, run_generate_job},
        job::CancelFlag,
    },
    model::weight_dtype::WeightDType,
    text::dataset::load_prompt_jsonl,
};

use super::progress::ProgressBar;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The model (HF folder, .gguf or org/name); with --adapter, that adapter at --scale.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, conflicts_with = "base")]
    pub model: Option<PathBuf>,
    /// A path's base θ₀ (with --adapter or --target, and --t).
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, requires = "t")]
    pub base: Option<PathBuf>,
    /// A PEFT LoRA adapter: at --scale on --model, or the path's end on --base.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub adapter: Option<PathBuf>,
    /// The LoRA scale with --model --adapter.
    #[arg(
        long,
        default_value_t = 1.0,
        allow_negative_numbers = true,
        conflicts_with = "base"
    )]
    pub scale: f32,
    /// A full checkpoint: the path θ₀ + t·(θ₁ − θ₀) from --base.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve, requires = "base", conflicts_with = "adapter")]
    pub target: Option<PathBuf>,
    /// A fitted curve (`basin curve fit` folder): θ(t) along it from --base to its endpoint.
    #[arg(long, requires = "base", conflicts_with_all = ["adapter", "target"])]
    pub curve: Option<PathBuf>,
    /// The point of the path (with --base).
    #[arg(long, allow_negative_numbers = true, requires = "base")]
    pub t: Option<f64>,
    /// Chat JSONL; a final assistant message is dropped (the model writes that turn).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// The most likely token at each step (no sampling).
    #[arg(long)]
    pub greedy: bool,
    /// Do not stop at the end-of-turn or end-of-sequence token: every answer runs to
    /// --max-new-tokens (vLLM's `ignore_eos`; for timing and for reading past the turn).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// What linear weights and the vocabulary tables are stored in on the device (f16 halves
    /// their memory; bf16 runs on the CPU only); every computation stays in f32.
    #[arg(long, value_enum, default_value_t = WeightDType::F32)]
    pub dtype: WeightDType,
    /// Rows (prompt × sample) decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Most prompt tokens.
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
    /// Output JSONL (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let at = match (&args.model, &args.base) {
        (Some(model), None) => GenerateAt::Model {
            model: model.clone(),
            adapter: args.adapter.clone(),
            scale: args.scale,
        },
        (None, Some(base)) => {
            let end = match (&args.adapter, &args.target, &args.curve) {
                (Some(a), None, None) => PathEnd::Adapter(a.clone()),
                (None, Some(t), None) => PathEnd::Target(t.clone()),
                (None, None, Some(c)) => PathEnd::Curve(c.clone()),
                _ => bail!(
                    "--base needs the path's end: one of --adapter A, --target T or --curve DIR"
                ),
            };
            let Some(t) = args.t else {
                bail!("--base needs --t");
            };
            GenerateAt::Path {
                base: base.clone(),
                end,
                t: vec![t],
            }
        }
        _ => bail!(
            "give --model M (optionally --adapter A --scale S) or --base M with --adapter/--target/--curve and --t"
        ),
    };
    if !args.scale.is_finite() {
        bail!("--scale must be a finite number");
    }
    let sampling = if args.greedy {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature: args.temperature,
            top_p: args.top_p,
        }
    };
    let req = GenerateRequest {
        at,
        prompts: load_prompt_jsonl(&args.data)?,
        max_new_tokens: args.max_new_tokens,
        sampling,
        samples: args.samples,
        seed: args.seed,
        batch: args.batch,
        device: args.device,
        dtype: args.dtype,
        max_tokens: args.max_tokens,
        ignore_eos: args.ignore_eos,
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        _ => Box::new(std::io::stdout().lock()),
    };
    let out_name = args.out.as_ref().map_or_else(
        || "standard output".to_string(),
        |p| p.display().to_string(),
    );
    let bar = ProgressBar::new("generate", req.prompts.len() * args.samples);
    let outcome = run_generate_job(
        &req,
        &mut |lines| {
            for line in lines {
                let json = serde_json::to_string(line).map_err(|e| e.to_string())?;
                writeln!(out, "{json}").map_err(|e| format!("{out_name}: {e}"))?;
            }
            out.flush().map_err(|e| format!("{out_name}: {e}"))
        },
        &|p| bar.update(&p),
        &CancelFlag::new(),
    )?;
    bar.finish();
    eprintln!(
        "{} generations, {} new tokens in {:.2} s ({:.1} tokens/s) on {}",
        outcome.lines,
        outcome.new_tokens,
        outcome.generate_s,
        outcome.new_tokens as f64 / outcome.generate_s.max(1e-9),
        outcome.device_label
    );
    Ok(())
}
