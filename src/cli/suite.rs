//! `basin suite check`: can each metric of a suite show a change at this model?

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::progress::ProgressBar;
use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    experiments::{
        eval::{EvalSpec, ExampleScore, PathPointSpec, evaluate},
        inputs::{chat_template_of, encode_examples},
        job::CancelFlag,
        suite::Suite,
        suite_check::{MetricCheck, SUITE_CHECK_SCHEMA, check_suite},
        sweep_store::write_atomic,
    },
    model::transformer::CausalLm,
};

#[derive(Debug, clap::Subcommand)]
pub enum SuiteCommand {
    /// Per metric: the value under every scoring form, floor / ceiling and length-confound flags.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The model to check the suite at: a Hugging Face folder or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// A PEFT LoRA adapter on the model (applied unmerged at scale 1).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    #[arg(long)]
    pub suite: PathBuf,
    #[arg(long, value_enum, default_value_t = ComputeKind::Cpu)]
    pub device: ComputeKind,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Bootstrap resamples for the 95% CIs.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 8192)]
    pub max_tokens: usize,
    /// Write the report as JSON here (`-`: stdout); a table goes to stderr either way.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The JSON `basin suite check` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteCheckReport {
    pub schema: String,
    pub model: String,
    pub adapter: Option<String>,
    pub suite: String,
    pub device: String,
    pub metrics: Vec<MetricCheck>,
}

pub fn run(cmd: &SuiteCommand) -> Result<()> {
    match cmd {
        SuiteCommand::Check(args) => check(args),
    }
}

fn check(args: &CheckArgs) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let suite = Suite::load(&args.suite)?;
    let compute = ComputeDevice::new(args.device)?;
    let opened = open_model(&args.model)?;
    let adapter = match &args.adapter {
        Some(path) => {
            let adapter = LoraAdapter::open(path)?;
            adapter.validate_against(opened.tensors.as_ref(), &opened.config)?;
            Some(adapter)
        }
        None => None,
    };
    let template = chat_template_of(&opened.tokenizer)?;
    let items = encode_examples(
        &opened.tokenizer,
        &template,
        &suite.requests(),
        args.max_tokens,
    )
    .with_context(|| format!("{}", args.suite.display()))?;
    let model = CausalLm::load(
        &opened.config,
        opened.tensors.as_ref(),
        adapter.as_ref(),
        &compute.device,
    )?;
    let bar = ProgressBar::new("suite check", items.len());
    let spec = EvalSpec {
        batch_size: args.batch,
        point: PathPointSpec {
            lora: adapter.iter().map(|_| 1.0).collect(),
            dense: Vec::new(),
        },
        keep_token_logprobs: false,
    };
    let scores = evaluate(
        &model,
        &items,
        &spec,
        &|p| bar.update(&p),
        &CancelFlag::new(),
    )?;
    bar.finish();
    let by_id: HashMap<&str, &ExampleScore> =
        scores.examples.iter().map(|s| (s.id.as_str(), s)).collect();
    let metrics = check_suite(&suite, &by_id, args.bootstrap, args.seed)?;
    eprintln!(
        "{:<16} {:<11} {:<9} {:>24} {:>24} {:>24} {:>7}  verdict",
        "metric", "kind", "score", "sum", "per_token", "per_byte", "len ρ"
    );
    for m in &metrics {
        let cell = |form: &str| {
            m.forms
                .get(form)
                .map(|v| format!("{:.3} [{:.3}, {:.3}]", v.value, v.ci_low, v.ci_high))
                .unwrap_or_else(|| "-".into())
        };
        let (sum, tok, byte) = if m.kind == "instruction" {
            (cell("nll"), "-".into(), "-".into())
        } else {
            (cell("sum"), cell("per_token"), cell("per_byte"))
        };
        eprintln!(
            "{:<16} {:<11} {:<9} {:>24} {:>24} {:>24} {:>7}  {}",
            m.name,
            m.kind,
            m.score.as_deref().unwrap_or("-"),
            sum,
            tok,
            byte,
            m.length_rho.map_or("-".into(), |r| format!("{r:.2}")),
            m.verdict
        );
    }
    let report = SuiteCheckReport {
        schema: SUITE_CHECK_SCHEMA.into(),
        model: args.model.display().to_string(),
        adapter: args.adapter.as_ref().map(|p| p.display().to_string()),
        suite: args.suite.display().to_string(),
        device: compute.label,
        metrics,
    };
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(p) if p != Path::new("-") => write_atomic(p, json.as_bytes())?,
        Some(_) => println!("{json}"),
        None => {}
    }
    Ok(())
}
