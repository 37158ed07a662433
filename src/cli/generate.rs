//! `basin generate`: what a model writes, at a point of a path, one JSON line per prompt and
//! sample, streamed to the output as batches finish.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::PathPointSpec,
        generate::{GenerateSpec, Generated, Prompt, Sampling, generate},
        inputs::chat_template_of,
        job::CancelFlag,
        path::PathKind,
        sweep_job::{check_compatible, curve_endpoints, curve_path_kind},
    },
    model::{load::PathEndpoints, transformer::CausalLm},
    text::{
        dataset::load_prompt_jsonl,
        encode::{encode_prompt, stop_ids},
    },
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
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
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
    let (model_path, t) = match (&args.model, &args.base) {
        (Some(m), None) => (m, None),
        (None, Some(b)) => {
            if args.adapter.is_none() && args.target.is_none() && args.curve.is_none() {
                bail!("--base needs the path's end: --adapter A, --target T or --curve DIR");
            }
            (b, args.t)
        }
        _ => bail!(
            "give --model M (optionally --adapter A --scale S) or --base M with --adapter/--target and --t"
        ),
    };
    if args.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    if !args.scale.is_finite() || t.is_some_and(|t| !t.is_finite()) {
        bail!("--scale and --t must be finite numbers");
    }
    let sampling = if args.greedy {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature: args.temperature,
            top_p: args.top_p,
        }
    };
    sampling.check().map_err(anyhow::Error::msg)?;
    let compute = ComputeDevice::new(args.device)?;
    let opened = open_model(model_path)?;
    let template = chat_template_of(&opened.tokenizer)?;
    let examples = load_prompt_jsonl(&args.data)?;
    let prompts = examples
        .iter()
        .map(|ex| {
            Ok(Prompt {
                id: ex.id.clone(),
                ids: encode_prompt(&opened.tokenizer, &template, ex, args.max_tokens)?,
            })
        })
        .collect::<Result<Vec<_>, crate::text::error::TextError>>()
        .with_context(|| format!("{}", args.data.display()))?;
    // The path: its kind, LoRA adapters (slots in order) and dense checkpoints (deltas in order).
    let (kind, adapter_paths, target_paths) = match (&args.curve, &args.adapter, &args.target) {
        (Some(dir), _, _) => {
            let (a, c) = curve_endpoints(dir)?;
            (Some(curve_path_kind(dir)?), a, c)
        }
        (None, a, c) => {
            let kind = match (t, c) {
                (None, _) => None,
                (Some(_), None) => Some(PathKind::Lora),
                (Some(_), Some(_)) => Some(PathKind::FullWeight),
            };
            (
                kind,
                a.iter().cloned().collect(),
                c.iter().cloned().collect(),
            )
        }
    };
    let adapters = adapter_paths
        .iter()
        .map(|p| LoraAdapter::open_for(p, opened.tensors.as_ref(), &opened.config))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets = Vec::new();
    for p in &target_paths {
        let other = open_model(p)?;
        check_compatible(&opened, &other)?;
        targets.push(other.tensors);
    }
    let point = match (kind, t) {
        (Some(kind), Some(t)) => kind.point(t, &[]),
        _ => PathPointSpec {
            lora: adapters.iter().map(|_| args.scale).collect(),
            dense: vec![],
        },
    };
    let endpoints = PathEndpoints {
        adapters: adapters.iter().collect(),
        checkpoints: targets.iter().map(|t| t.as_ref()).collect(),
    };
    let model = CausalLm::load_path(
        &opened.config,
        opened.tensors.as_ref(),
        &endpoints,
        &compute.device,
    )?;
    drop(endpoints);
    drop(targets);
    let spec = GenerateSpec {
        max_new_tokens: args.max_new_tokens,
        sampling,
        samples: args.samples,
        seed: args.seed,
        batch: args.batch,
        point,
        stop_ids: stop_ids(&opened.tokenizer, &template),
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        _ => Box::new(std::io::stdout().lock()),
    };
    let bar = ProgressBar::new("generate", prompts.len() * args.samples);
    let tokenizer = &opened.tokenizer.tokenizer;
    let out_name = args.out.as_ref().map_or_else(
        || "standard output".to_string(),
        |p| p.display().to_string(),
    );
    let mut write_batch = |rows: &[crate::experiments::generate::RowOutput]| {
        for row in rows {
            let text = tokenizer.decode(&row.token_ids, true).unwrap_or_default();
            let line = Generated {
                id: prompts[row.prompt].id.clone(),
                sample: row.sample,
                t,
                text,
                n_tokens: row.token_ids.len(),
                token_ids: row.token_ids.clone(),
                finish_reason: row.finish_reason,
            };
            let json = serde_json::to_string(&line)
                .map_err(|e| crate::experiments::generate::GenerateError::Spec(e.to_string()))?;
            writeln!(out, "{json}").map_err(|e| {
                crate::experiments::generate::GenerateError::Spec(format!("{out_name}: {e}"))
            })?;
        }
        out.flush().map_err(|e| {
            crate::experiments::generate::GenerateError::Spec(format!("{out_name}: {e}"))
        })
    };
    let new_tokens = std::cell::Cell::new(0usize);
    let started = std::time::Instant::now();
    let n = generate(
        &model,
        &prompts,
        &spec,
        &mut |rows| {
            new_tokens
                .set(new_tokens.get() + rows.iter().map(|r| r.token_ids.len()).sum::<usize>());
            write_batch(rows)
        },
        &|p| bar.update(&p),
        &CancelFlag::new(),
    )?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{n} generations, {} new tokens in {secs:.2} s ({:.1} tokens/s) on {}",
        new_tokens.get(),
        new_tokens.get() as f64 / secs.max(1e-9),
        compute.label
    );
    Ok(())
}
