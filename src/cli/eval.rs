//! `basin eval`: per-token log-probs of each example's final assistant message.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::sweep_store::write_atomic,
    experiments::{
        eval::{EVAL_SCHEMA, EvalSpec, ExampleScore, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
    },
    model::weight_dtype::WeightDType,
    model::{load::PathEndpoints, transformer::CausalLm},
    text::dataset::load_chat_jsonl,
};

use super::progress::ProgressBar;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Base model: a Hugging Face folder (config.json + safetensors + tokenizer.json) or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub model: PathBuf,
    /// PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), applied unmerged.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub adapter: Option<PathBuf>,
    /// Multiplier of the adapter's delta (0 = base model, 1 = the adapter as trained).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub scale: f32,
    /// Chat dataset: JSONL, one {"id", "messages": [...]} per line; the last message is the assistant's.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    /// What linear weights and the vocabulary tables are stored in on the device (f16 halves
    /// their memory; bf16 runs on the CPU only); every computation stays in f32.
    #[arg(long, value_enum, default_value_t = WeightDType::F32)]
    pub dtype: WeightDType,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Output JSON file (`-` or absent: stdout). Written atomically.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Include every target token's log-prob in the output.
    #[arg(long)]
    pub token_logprobs: bool,
    /// Refuse examples longer than this many tokens.
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
}

/// The JSON `basin eval` prints (stable contract; see the README).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub schema: String,
    pub model: String,
    pub adapter: Option<String>,
    pub scale: f32,
    pub device: String,
    pub examples: Vec<ExampleScore>,
    pub mean_nll: f64,
    pub n_tokens: usize,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !args.scale.is_finite() {
        bail!("--scale must be a finite number");
    }
    let mut compute = ComputeDevice::new(args.device)?;
    compute.label = args.dtype.device_label(&compute.label);
    let opened = open_model(&args.model)?;
    let adapter = match &args.adapter {
        Some(path) => Some(LoraAdapter::open_for(
            path,
            opened.tensors.as_ref(),
            &opened.config,
        )?),
        None => None,
    };
    let template = chat_template_of(&opened.tokenizer)?;
    let examples = load_chat_jsonl(&args.data)?;
    let items = encode_examples(&opened.tokenizer, &template, &examples, args.max_tokens)
        .with_context(|| format!("{}", args.data.display()))?;
    let endpoints = PathEndpoints {
        adapters: adapter.iter().collect(),
        checkpoints: Vec::new(),
    };
    let model = CausalLm::load_path_until(
        &opened.config,
        opened.tensors.as_ref(),
        &endpoints,
        &compute.device,
        args.dtype,
        &|| false,
    )?;
    let bar = ProgressBar::new("eval", items.len());
    let spec = EvalSpec {
        batch_size: args.batch,
        point: PathPointSpec {
            lora: adapter.iter().map(|_| args.scale).collect(),
            dense: Vec::new(),
        },
        keep_token_logprobs: args.token_logprobs,
    };
    let scores = evaluate(
        &model,
        &items,
        &spec,
        &|p| bar.update(&p),
        &CancelFlag::new(),
    )?;
    bar.finish();
    let report = EvalReport {
        schema: EVAL_SCHEMA.to_string(),
        model: args.model.display().to_string(),
        adapter: args.adapter.as_ref().map(|p| p.display().to_string()),
        scale: args.scale,
        device: compute.label,
        examples: scores.examples,
        mean_nll: scores.mean_nll,
        n_tokens: scores.n_tokens,
    };
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(p) if p != Path::new("-") => write_atomic(p, json.as_bytes())?,
        _ => println!("{json}"),
    }
    Ok(())
}
