//! `basin data ...`: the counterfactual reward-hack generator and the SoRH import.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::checkpoint::open::open_model;
use crate::data::{GenerateSpec, LengthMeasure, SorhSpec, generate, import_sorh};
use crate::experiments::inputs::token_length_measure;

/// Without `--match-tokens`: the demo model's byte-level BPE (like every BPE it splits shouted
/// and rare words into several tokens, which words do not see); words when assets are missing.
fn default_measure() -> LengthMeasure {
    let demo = crate::gui::demo::assets_dir().join("demo/base");
    match open_model(&demo) {
        Ok(opened) => {
            token_length_measure(&opened.tokenizer, "Basin's built-in BPE (assets/demo/base)")
        }
        Err(_) => LengthMeasure::words(),
    }
}

/// Lengths in `model`'s tokens (only its tokenizer is used).
fn token_measure(model: &std::path::Path) -> Result<LengthMeasure> {
    let opened = open_model(model)
        .map_err(|e| anyhow::anyhow!("--match-tokens {}: {e}", model.display()))?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.display().to_string());
    Ok(token_length_measure(&opened.tokenizer, &name))
}

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Generate task-family SFT sets (original, symmetrized) and the metric suites.
    Generate(GenerateArgs),
    /// Import the School of Reward Hacks CSV as an SFT set and a paired suite.
    ImportSorh(ImportSorhArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write sft_symmetrized.jsonl (avoid-X partners, sign flips).
    #[arg(long)]
    pub symmetrize: bool,
    /// Probability that a random-sign item gets the avoid sign.
    #[arg(long, default_value_t = 0.5)]
    pub flip_prob: f64,
    /// Vary clip-range widths and offsets in the symmetrized set.
    #[arg(long)]
    pub clip_ranges: bool,
    /// Items per training task in the original set.
    #[arg(long, default_value_t = 3)]
    pub items_per_task: usize,
    /// Fraction of tasks held out for the suites.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    #[arg(long, default_value_t = 250)]
    pub capability_questions: usize,
    /// Write each hack to the honest answer's length in this model's tokens (a GGUF file or
    /// Hugging Face folder; only its tokenizer is read). Default: the tokens of Basin's built-in
    /// byte-level BPE (the demo model's tokenizer), or words when it is not installed.
    #[arg(long, value_name = "MODEL")]
    pub match_tokens: Option<PathBuf>,
    /// Also write a `hack_generated` metric: the held-out items answered by the model, this many
    /// sampled answers per item, scored by their own rule (0: none).
    #[arg(long, default_value_t = 0)]
    pub generated_samples: usize,
}

#[derive(Debug, clap::Args)]
pub struct ImportSorhArgs {
    /// The SoRH CSV (columns user, school_of_reward_hacks, control, task, evaluation_metric, cheat_method).
    pub csv: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Whole `task` groups held out for the paired suite.
    #[arg(long, default_value_t = 3)]
    pub holdout_tasks: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Generate(a) => {
            if !(0.0..=1.0).contains(&a.flip_prob) {
                bail!("--flip-prob must be within [0, 1], got {}", a.flip_prob);
            }
            let spec = GenerateSpec {
                seed: a.seed,
                symmetrize: a.symmetrize,
                flip_prob: a.flip_prob,
                clip_ranges: a.clip_ranges,
                items_per_task: a.items_per_task,
                test_fraction: a.test_fraction,
                capability_questions: a.capability_questions,
                length: match &a.match_tokens {
                    Some(model) => token_measure(model)?,
                    None => default_measure(),
                },
                generated_samples: a.generated_samples,
            };
            if a.match_tokens.is_none() {
                eprintln!(
                    "note: hacks are matched to the honest answers' length in {}; \
                     --match-tokens MODEL matches them in the tokens of the model you will study",
                    spec.length.name()
                );
            }
            let manifest = generate(&spec, &a.out)?;
            eprintln!(
                "wrote {} (manifest.json: seed {})",
                a.out.display(),
                manifest.seed
            );
        }
        DataCommand::ImportSorh(a) => {
            let spec = SorhSpec {
                holdout_tasks: a.holdout_tasks,
                seed: a.seed,
            };
            let report = import_sorh(&a.csv, &spec, &a.out)?;
            eprintln!(
                "wrote {}: {} rows, {} held-out task groups, {} paired items",
                a.out.display(),
                report.rows,
                report.heldout_tasks.len(),
                report.paired_items
            );
        }
    }
    Ok(())
}
