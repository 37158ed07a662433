//! The headless command line: the same experiments as the GUI, driven by flags.

pub mod bench;
pub mod curve;
pub mod data;
pub mod download;
pub mod eval;
pub mod generate;
pub mod influence;
pub mod landscape;
pub mod progress;
pub mod study;
pub mod suite;
pub mod sweep;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "basin",
    version,
    about = "Where does a fine-tuned LLM sit relative to its base model?"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// (window) Open the built-in demo instead of the last session.
    #[arg(long)]
    pub demo: bool,
    /// (window) Open a session file.
    #[arg(long)]
    pub session: Option<std::path::PathBuf>,
    /// (window) Start a sweep as soon as the window opens.
    #[arg(long)]
    pub run: bool,
    /// (window) Start the Train tab's run as soon as the window opens (the demo: LoRA on the
    /// demo base with the demo's training chats).
    #[arg(long, conflicts_with = "run")]
    pub train: bool,
    /// (window) When the first sweep (or with --train, the training run) finishes, save a
    /// screenshot of the window here.
    #[arg(long)]
    pub screenshot: Option<std::path::PathBuf>,
    /// (window) Close the window once the screenshot is saved.
    #[arg(long, requires = "screenshot")]
    pub quit_after_screenshot: bool,
    /// (window) Write each frame's CPU time to this CSV (p50/p99 printed when a sweep ends).
    #[arg(long)]
    pub log_frame_times: Option<std::path::PathBuf>,
    /// (window) Folder for new result folders (default: the app's data folder).
    #[arg(long)]
    pub runs_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Teacher-forced log-probs of each example's final assistant message.
    Eval(eval::EvalArgs),
    /// What the model writes at a point of a path (greedy or sampled, KV cache), as JSONL.
    Generate(generate::GenerateArgs),
    /// Time the forward pass on one fixed batch (Basin's half of bench/eval_vs_torch.sh).
    BenchEval(bench::BenchEvalArgs),
    /// Counterfactual reward-hack data: generate task families and suites, import SoRH.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Walk a path θ(t) from a base model to an adapter or checkpoint, measuring a suite at each t.
    Sweep(sweep::SweepArgs),
    /// Combine the result folders of a sharded sweep or landscape.
    Merge(sweep::MergeArgs),
    /// A loss-landscape slice: a grid of (α, β) on a plane through θ₀, θ_H and a third point.
    Landscape(landscape::LandscapeArgs),
    /// Rank training samples by their influence on a query (LoRA gradients: gradsim, TracIn).
    Influence(influence::InfluenceArgs),
    /// LoRA fine-tuning (SFT) of a base model on chat data, with checkpoints; resumable.
    Train(train::TrainArgs),
    /// Low-loss curves θ₀ → endpoint: fit a bend (Garipov et al. 2018) with the training engine.
    #[command(subcommand)]
    Curve(curve::CurveCommand),
    /// Metric suites: check that each metric can show a change (floor, ceiling, length confound).
    #[command(subcommand)]
    Suite(suite::SuiteCommand),
    /// The seed experiment end to end: data, two hackers (original, symmetrized), sample
    /// efficiency, paths and curves, landscapes, influence, and a report with the answers.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Fetch a Hugging Face repo (config, tokenizer, safetensors) into the local hub cache.
    Download(download::DownloadArgs),
}

pub fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Generate(args)) => generate::run(args),
        Some(Command::BenchEval(args)) => bench::run(args),
        Some(Command::Data(cmd)) => data::run(cmd),
        Some(Command::Sweep(args)) => sweep::run(args),
        Some(Command::Merge(args)) => sweep::run_merge(args),
        Some(Command::Landscape(args)) => landscape::run(args),
        Some(Command::Influence(args)) => influence::run(args),
        Some(Command::Train(args)) => train::run(args),
        Some(Command::Suite(cmd)) => suite::run(cmd),
        Some(Command::Curve(cmd)) => curve::run(cmd),
        Some(Command::Study(cmd)) => study::run(cmd),
        Some(Command::Download(args)) => download::run(args),
        // No subcommand: the desktop app.
        None => crate::gui::run_native(crate::gui::LaunchOptions {
            demo: cli.demo,
            session: cli.session.clone(),
            run_on_start: cli.run,
            train_on_start: cli.train,
            screenshot: cli.screenshot.clone(),
            quit_when_done: cli.quit_after_screenshot,
            log_frame_times: cli.log_frame_times.clone(),
            runs_dir: cli.runs_dir.clone(),
        })
        .map_err(anyhow::Error::msg),
    }
}

/// One line for a failed command (see [`crate::error_line`]).
pub fn error_line(e: &anyhow::Error) -> String {
    crate::error_line(e.as_ref())
}
