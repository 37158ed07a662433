//! `basin suite check`: can each metric of a suite show a change at this model?

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::progress::ProgressBar;
use crate::{
    compute::ComputeKind,
    experiments::{
        job::CancelFlag,
        suite_check::{MetricCheck, SuiteCheckRequest, run_suite_check},
        sweep_store::write_atomic,
    },
};

#[derive(Debug, clap::Subcommand)]
pub enum SuiteCommand {
    /// Per metric: the value under every scoring form, floor / ceiling and length-confound flags.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The model to check the suite at: a Hugging Face folder or a .gguf file.
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
    pub model: PathBuf,
    /// A PEFT LoRA adapter on the model (applied unmerged at scale 1).
    #[arg(long, value_parser = crate::checkpoint::hub::resolve)]
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

pub fn run(cmd: &SuiteCommand) -> Result<()> {
    match cmd {
        SuiteCommand::Check(args) => check(args),
    }
}

/// One table row per metric: the value and CI under each form, ρ and the verdict.
pub fn table(metrics: &[MetricCheck]) -> String {
    let mut out = format!(
        "{:<16} {:<11} {:<9} {:>24} {:>24} {:>24} {:>7}  verdict\n",
        "metric", "kind", "score", "sum", "per_token", "per_byte", "len ρ"
    );
    for m in metrics {
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
        out.push_str(&format!(
            "{:<16} {:<11} {:<9} {:>24} {:>24} {:>24} {:>7}  {}\n",
            m.name,
            m.kind,
            m.score.as_deref().unwrap_or("-"),
            sum,
            tok,
            byte,
            m.length_rho.map_or("-".into(), |r| format!("{r:.2}")),
            m.verdict
        ));
    }
    out
}

fn check(args: &CheckArgs) -> Result<()> {
    let req = SuiteCheckRequest {
        model: args.model.clone(),
        adapter: args.adapter.clone(),
        suite: args.suite.clone(),
        device: args.device,
        batch: args.batch,
        bootstrap: args.bootstrap,
        seed: args.seed,
        max_tokens: args.max_tokens,
    };
    let bar = ProgressBar::new("suite check", 0);
    let report = run_suite_check(&req, &|p| bar.update(&p), &CancelFlag::new());
    bar.finish();
    let report = report?;
    eprint!("{}", table(&report.metrics));
    let json = serde_json::to_string_pretty(&report)?;
    match &args.out {
        Some(p) if p != Path::new("-") => write_atomic(p, json.as_bytes())?,
        Some(_) => println!("{json}"),
        None => {}
    }
    Ok(())
}
