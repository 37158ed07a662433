//! `basin study run STUDY.toml --out DIR`: the seed experiment as one resumable command.

use std::{path::PathBuf, sync::Mutex};

use anyhow::{Result, bail};

use super::progress::ProgressBar;
use crate::{
    compute::ComputeKind,
    study::{
        Selection, Step, Study, StudyHooks,
        report::{REPORT_HTML, REPORT_JSON},
        run::{StepEventKind, run_study},
    },
};

#[derive(Debug, clap::Subcommand)]
pub enum StudyCommand {
    /// Run a study file's steps (data, train, efficiency, paths, landscape, influence, report)
    /// into a folder; rerunning skips finished steps and resumes the interrupted one.
    Run(StudyRunArgs),
}

#[derive(Debug, clap::Args)]
pub struct StudyRunArgs {
    /// The study file (e.g. assets/studies/demo.toml).
    pub study: PathBuf,
    /// Study folder: study.json (each step's status and time), data/, original/, symmetrized/,
    /// report.json, report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Run only these steps, comma-separated (their inputs must have finished earlier).
    #[arg(long, value_delimiter = ',', value_parser = Step::parse)]
    pub only: Vec<Step>,
    /// Run this step and the ones after it.
    #[arg(long, value_parser = Step::parse)]
    pub from: Option<Step>,
    /// Override the study file's device.
    #[arg(long, value_enum)]
    pub device: Option<ComputeKind>,
    /// Override the study file's `dtype`: what the evaluations store the weights in.
    #[arg(long, value_enum)]
    pub dtype: Option<crate::model::weight_dtype::WeightDType>,
}

pub fn run(cmd: &StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run(args) => run_args(args),
    }
}

fn run_args(args: &StudyRunArgs) -> Result<()> {
    let mut study = Study::load(&args.study)?;
    if let Some(device) = args.device {
        study.file.device = device;
    }
    if let Some(dtype) = args.dtype {
        study.file.dtype = dtype;
    }
    // First Ctrl-C: stop at the next safe point (finished points, steps and checkpoints are
    // saved); second: exit at once. A rerun resumes.
    let stop = super::progress::stop_on_ctrl_c(
        "stopping (what has finished is saved; Ctrl-C again to exit now); rerun to resume",
    );
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    let on_step = |e: &crate::study::run::StepEvent| {
        let mut b = bar.lock().unwrap_or_else(|p| p.into_inner());
        match &e.kind {
            StepEventKind::Started => {
                if let Some(old) = b.take() {
                    old.finish();
                }
                *b = Some(ProgressBar::new(&e.key, 0));
            }
            StepEventKind::Skipped => eprintln!("{}: finished earlier, skipped", e.key),
            StepEventKind::Done { seconds } => {
                if let Some(old) = b.take() {
                    old.finish();
                }
                eprintln!("{}: done in {seconds:.1} s", e.key);
            }
            StepEventKind::Failed { error } => {
                if let Some(old) = b.take() {
                    old.finish();
                }
                eprintln!("{}: failed: {error}", e.key);
            }
            StepEventKind::Cancelled => {
                if let Some(old) = b.take() {
                    old.finish();
                }
                eprintln!("{}: stopped; rerun the same command to resume", e.key);
            }
        }
    };
    let progress = |_key: &str, p: crate::experiments::job::Progress| {
        let b = bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = b.as_ref() {
            b.update(&p);
        }
    };
    let hooks = StudyHooks {
        on_step: &on_step,
        progress: &progress,
        cancel: &stop,
    };
    let selection = Selection {
        only: args.only.clone(),
        from: args.from,
    };
    let outcome = run_study(&study, &args.out, &selection, &hooks)?;
    if outcome.cancelled {
        bail!("study stopped; rerun the same command to resume");
    }
    eprintln!(
        "study {}: {} steps run, {} finished earlier",
        study.file.name,
        outcome.ran.len(),
        outcome.skipped.len()
    );
    // The answers, as the report states them.
    if let Ok(text) = crate::bounded::read_config(args.out.join(REPORT_JSON))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(answers) = v.get("answers").and_then(|a| a.as_array())
    {
        eprintln!("answers:");
        for a in answers.iter().filter_map(|a| a.as_str()) {
            eprintln!("- {a}");
        }
    }
    let report = args.out.join(REPORT_HTML);
    if report.exists() {
        eprintln!("report: {} ({} beside it)", report.display(), REPORT_JSON);
    }
    Ok(())
}
