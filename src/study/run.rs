//! `basin study run`: the seed experiment as one resumable run. Each step is an existing job
//! (`data generate`, `train`, `sweep`, `curve fit`, `landscape`, `influence`) writing its own
//! result folder under the study folder; `study.json` records what finished, with which
//! settings and how long it took, so a rerun skips finished steps and resumes the rest.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::Study;
use crate::{
    checkpoint::open::open_model,
    data::{GenerateSpec, LengthMeasure, generate, generate::INSTRUCTIONS_FILE},
    experiments::{
        curve::{CurveEndpoint, CurveSpec},
        influence::Damping,
        influence_job::{InfluenceRequest, Query, run_influence_job},
        inputs::token_length_measure,
        job::{CancelFlag, Progress},
        landscape_job::{LandscapeRequest, run_landscape_job},
        plane::{Center, PlaneKind},
        sweep::SweepHooks,
        sweep_job::{SweepRequest, run_sweep_job},
        sweep_store::{count_lines, write_atomic},
        train::{TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest, run_train_job},
        train_store::StoreLayout,
    },
};

pub const STATE_FILE: &str = "study.json";
pub const STATE_SCHEMA: &str = "basin.study.v1";

/// The two training sets the study compares.
pub const ARMS: [&str; 2] = ["original", "symmetrized"];

/// The study's steps, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Generate the original and symmetrized SFT sets and the suite.
    Data,
    /// Train a hacker on each set.
    Train,
    /// Every metric at each checkpoint (samples seen), with onsets.
    Efficiency,
    /// The straight path, a fitted curve, every metric along both.
    Paths,
    /// A slice through θ₀, θ_H and the bend.
    Landscape,
    /// Influence of the training chats on the hacking query.
    Influence,
    /// More hackers with other training seeds (`[replicates] seeds`), each measured at t = 1.
    Replicates,
    /// `report.json` and `report.html`.
    Report,
}

impl Step {
    pub const ALL: [Step; 8] = [
        Step::Data,
        Step::Train,
        Step::Efficiency,
        Step::Paths,
        Step::Landscape,
        Step::Influence,
        Step::Replicates,
        Step::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Data => "data",
            Step::Train => "train",
            Step::Efficiency => "efficiency",
            Step::Paths => "paths",
            Step::Landscape => "landscape",
            Step::Influence => "influence",
            Step::Replicates => "replicates",
            Step::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Result<Step, String> {
        Step::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Step::ALL.iter().map(|k| k.name()).collect();
                format!("no study step `{s}` (steps: {})", names.join(", "))
            })
    }

    /// Whether the step runs once per training set.
    pub fn per_arm(self) -> bool {
        !matches!(self, Step::Data | Step::Report)
    }

    /// Steps whose results this one reads.
    pub fn needs(self) -> &'static [Step] {
        match self {
            Step::Data => &[],
            Step::Train | Step::Replicates => &[Step::Data],
            Step::Efficiency | Step::Paths | Step::Influence => &[Step::Train],
            Step::Landscape => &[Step::Paths],
            Step::Report => &[
                Step::Efficiency,
                Step::Paths,
                Step::Landscape,
                Step::Influence,
                Step::Replicates,
            ],
        }
    }
}

/// Where each result lives under the study folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn suite(&self) -> PathBuf {
        self.data().join("suite").join("suite.toml")
    }
    pub fn sft(&self, arm: &str) -> PathBuf {
        self.data().join(format!("sft_{arm}.jsonl"))
    }
    pub fn instructions(&self) -> PathBuf {
        self.data().join(INSTRUCTIONS_FILE)
    }
    pub fn arm(&self, arm: &str) -> PathBuf {
        self.root.join(arm)
    }
    pub fn train(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("train")
    }
    pub fn hacker(&self, arm: &str) -> PathBuf {
        self.train(arm).join(StoreLayout::TRAIN.final_dir)
    }
    pub fn efficiency(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("efficiency")
    }
    pub fn line(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("line")
    }
    pub fn curve_fit(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("curve_fit")
    }
    pub fn curve(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("curve")
    }
    pub fn landscape(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("landscape")
    }
    pub fn influence(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("influence")
    }
    /// Every replicate hacker of a set (step `replicates`).
    pub fn replicates(&self, arm: &str) -> PathBuf {
        self.arm(arm).join("replicates")
    }
    /// The training run of the replicate with training seed `seed`.
    pub fn replicate_train(&self, arm: &str, seed: u64) -> PathBuf {
        self.replicates(arm)
            .join(format!("seed-{seed}"))
            .join("train")
    }
    pub fn replicate_hacker(&self, arm: &str, seed: u64) -> PathBuf {
        self.replicate_train(arm, seed)
            .join(StoreLayout::TRAIN.final_dir)
    }
    /// The sweep measuring that replicate at t = 1.
    pub fn replicate_end(&self, arm: &str, seed: u64) -> PathBuf {
        self.replicates(arm)
            .join(format!("seed-{seed}"))
            .join("end")
    }
    /// The folders a step writes for one arm (or the study's, for data / report).
    pub fn outputs(&self, step: Step, arm: Option<&str>) -> Vec<PathBuf> {
        match (step, arm) {
            (Step::Data, _) => vec![self.data()],
            (Step::Report, _) => vec![self.root.join("report.json")],
            (_, None) => Vec::new(),
            (Step::Train, Some(a)) => vec![self.train(a)],
            (Step::Efficiency, Some(a)) => vec![self.efficiency(a)],
            (Step::Paths, Some(a)) => vec![self.line(a), self.curve_fit(a), self.curve(a)],
            (Step::Landscape, Some(a)) => vec![self.landscape(a)],
            (Step::Influence, Some(a)) => vec![self.influence(a)],
            (Step::Replicates, Some(a)) => vec![self.replicates(a)],
        }
    }
}

/// `study.json`: the study, and each finished (or failed) step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyState {
    pub schema: String,
    pub basin_version: String,
    pub name: String,
    pub study_file: PathBuf,
    /// Keyed by `step` or `step/arm`.
    pub steps: BTreeMap<String, StepState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Done,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    /// SHA-256 of the settings the step ran with (its sections of the study file and θ₀).
    pub settings: String,
    /// Wall time of the last run of the step (a resumed step: of that run only).
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StudyState {
    pub fn read(dir: &Path) -> Result<Option<StudyState>, StudyError> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::bounded::read_config(&path).map_err(|e| StudyError::Io {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StudyError::Io {
                path,
                msg: format!("not a study state file: {e}"),
            })
    }

    fn write(&self, dir: &Path) -> Result<(), StudyError> {
        let path = dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| StudyError::Io {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        write_atomic(&path, (text + "\n").as_bytes()).map_err(|e| StudyError::Io {
            path,
            msg: e.to_string(),
        })
    }
}

pub fn step_key(step: Step, arm: Option<&str>) -> String {
    match arm {
        Some(a) => format!("{}/{a}", step.name()),
        None => step.name().to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("{}: {msg}", path.display())]
    Io { path: PathBuf, msg: String },
    #[error("study step {step}: {msg}")]
    Step { step: String, msg: String },
    #[error("{0}")]
    Selection(String),
    #[error("{0}")]
    Changed(String),
}

/// Which steps to run: all, `--only a,b`, or `--from x` onwards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub only: Vec<Step>,
    pub from: Option<Step>,
}

impl Selection {
    pub fn includes(&self, step: Step) -> bool {
        (self.only.is_empty() || self.only.contains(&step))
            && self.from.is_none_or(|from| step >= from)
    }
}

/// A step starting, ending, or skipped because it finished earlier.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent {
    pub key: String,
    pub kind: StepEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepEventKind {
    Started,
    /// Finished earlier with the same settings.
    Skipped,
    Done {
        seconds: f64,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

pub struct StudyHooks<'a> {
    pub on_step: &'a (dyn Fn(&StepEvent) + Sync),
    /// The running step's progress, with its key.
    pub progress: &'a (dyn Fn(&str, Progress) + Sync),
    pub cancel: &'a CancelFlag,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOutcome {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
    pub cancelled: bool,
}

/// The settings a step depends on (its own section and everything upstream), hashed: a
/// changed study file is caught before a step mixes old and new results.
pub fn settings_hash(study: &Study, step: Step) -> String {
    let f = &study.file;
    // The base by its real path: the same model named from another folder is the same study.
    let base = std::fs::canonicalize(&study.base).unwrap_or_else(|_| study.base.clone());
    let mut parts: Vec<serde_json::Value> = vec![
        serde_json::json!(base.display().to_string()),
        serde_json::json!(f.data),
    ];
    if step >= Step::Train {
        parts.push(serde_json::json!(f.train));
        parts.push(serde_json::json!(f.device));
    }
    let evaluates = matches!(
        step,
        Step::Efficiency | Step::Paths | Step::Landscape | Step::Replicates
    );
    if evaluates && !f.dtype.is_f32() {
        parts.push(serde_json::json!(f.dtype));
    }
    match step {
        Step::Efficiency => parts.push(serde_json::json!(f.paths)),
        Step::Paths => {
            parts.push(serde_json::json!(f.paths));
            parts.push(serde_json::json!(f.curve));
        }
        Step::Landscape => {
            parts.push(serde_json::json!(f.paths));
            parts.push(serde_json::json!(f.curve));
            parts.push(serde_json::json!(f.landscape));
            parts.push(serde_json::json!(study.landscape_metrics()));
        }
        Step::Influence => {
            parts.push(serde_json::json!(f.influence));
            parts.push(serde_json::json!(study.influence_query()));
        }
        // Not the seed list: seeds can be added to a finished study (each seed's folder is its
        // own result; the step's outputs name every listed seed, so a new one runs).
        Step::Replicates => parts.push(serde_json::json!(f.paths)),
        Step::Report => parts.push(serde_json::json!(f)),
        Step::Data | Step::Train => {}
    }
    let text = serde_json::Value::Array(parts).to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the selected steps of `study` into `out`, in dependency order; finished steps with the
/// same settings are skipped, interrupted ones resume. The first failing step stops the study
/// with its error; what earlier steps wrote stays.
pub fn run_study(
    study: &Study,
    out: &Path,
    selection: &Selection,
    hooks: &StudyHooks,
) -> Result<StudyOutcome, StudyError> {
    let layout = Layout::new(out);
    std::fs::create_dir_all(out).map_err(|e| StudyError::Io {
        path: out.to_path_buf(),
        msg: e.to_string(),
    })?;
    let mut state = StudyState::read(out)?.unwrap_or(StudyState {
        schema: STATE_SCHEMA.into(),
        basin_version: env!("CARGO_PKG_VERSION").into(),
        name: study.file.name.clone(),
        study_file: study.path.clone(),
        steps: BTreeMap::new(),
    });
    // A copy of the study file as run, beside the results.
    if let Ok(text) = crate::bounded::read_bytes(&study.path, crate::bounded::CONFIG_BYTES) {
        let _ = write_atomic(&out.join("study.toml"), &text);
    }
    let mut outcome = StudyOutcome {
        ran: Vec::new(),
        skipped: Vec::new(),
        cancelled: false,
    };
    for step in Step::ALL {
        if !selection.includes(step) {
            continue;
        }
        let arms: Vec<Option<&str>> = if step.per_arm() {
            ARMS.iter().map(|a| Some(*a)).collect()
        } else {
            vec![None]
        };
        let hash = settings_hash(study, step);
        for arm in arms {
            let key = step_key(step, arm);
            let outputs = step_outputs(study, &layout, step, arm);
            let outputs_exist = outputs.iter().all(|p| p.exists());
            // Any result left by other settings is refused, finished or not.
            if let Some(prev) = state.steps.get(&key)
                && outputs.iter().any(|p| p.exists())
                && prev.settings != hash
                && step != Step::Report
            {
                return Err(StudyError::Changed(format!(
                    "the study file changed since step {key} ran with other settings: use a new --out, or delete {} to recompute it",
                    layout
                        .outputs(step, arm)
                        .iter()
                        .filter(|p| p.exists())
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                )));
            }
            let done = state
                .steps
                .get(&key)
                .is_some_and(|s| s.status == StepStatus::Done && s.settings == hash);
            if done && outputs_exist && step != Step::Report {
                outcome.skipped.push(key.clone());
                (hooks.on_step)(&StepEvent {
                    key,
                    kind: StepEventKind::Skipped,
                });
                continue;
            }
            for need in step.needs() {
                let needed: Vec<String> = if need.per_arm() {
                    match arm {
                        Some(a) => vec![step_key(*need, Some(a))],
                        None => ARMS.iter().map(|a| step_key(*need, Some(a))).collect(),
                    }
                } else {
                    vec![step_key(*need, None)]
                };
                for n in needed {
                    let ok = state
                        .steps
                        .get(&n)
                        .is_some_and(|s| s.status == StepStatus::Done);
                    if !ok {
                        return Err(StudyError::Selection(format!(
                            "step {key} needs step {n}, which has not finished in {} (run the study without --only / --from first)",
                            out.display()
                        )));
                    }
                }
            }
            (hooks.on_step)(&StepEvent {
                key: key.clone(),
                kind: StepEventKind::Started,
            });
            let started = Instant::now();
            let result = run_step(study, &layout, step, arm, &key, hooks);
            let seconds = started.elapsed().as_secs_f64();
            let (status, error, event) = match &result {
                Ok(true) => (StepStatus::Done, None, StepEventKind::Done { seconds }),
                Ok(false) => (StepStatus::Cancelled, None, StepEventKind::Cancelled),
                Err(e) => (
                    StepStatus::Failed,
                    Some(e.to_string()),
                    StepEventKind::Failed {
                        error: e.to_string(),
                    },
                ),
            };
            state.steps.insert(
                key.clone(),
                StepState {
                    status,
                    settings: hash.clone(),
                    seconds,
                    error,
                },
            );
            state.write(out)?;
            (hooks.on_step)(&StepEvent {
                key: key.clone(),
                kind: event,
            });
            match result {
                Ok(true) => outcome.ran.push(key),
                Ok(false) => {
                    outcome.cancelled = true;
                    return Ok(outcome);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(outcome)
}

/// What a finished step has written: the layout's folders and, for replicates, each listed
/// seed's measurement (so a seed added to the study file makes the step run again).
fn step_outputs(study: &Study, layout: &Layout, step: Step, arm: Option<&str>) -> Vec<PathBuf> {
    let mut out = layout.outputs(step, arm);
    if let (Step::Replicates, Some(a)) = (step, arm) {
        out.extend(
            study
                .file
                .replicates
                .seeds
                .iter()
                .map(|&seed| layout.replicate_end(a, seed).join("run.json")),
        );
    }
    out
}

/// One step for one arm; `Ok(false)` when cancelled.
fn run_step(
    study: &Study,
    layout: &Layout,
    step: Step,
    arm: Option<&str>,
    key: &str,
    hooks: &StudyHooks,
) -> Result<bool, StudyError> {
    let fail = |msg: String| StudyError::Step {
        step: key.to_string(),
        msg,
    };
    let progress = |p: Progress| (hooks.progress)(key, p);
    let f = &study.file;
    let arm = arm.unwrap_or("original");
    let sweep = |req: &SweepRequest| -> Result<bool, StudyError> {
        let hooks_s = SweepHooks {
            progress: &progress,
            on_result: &|_| {},
            stop_after_point: hooks.cancel,
            abort: hooks.cancel,
        };
        run_sweep_job(req, &hooks_s, &|_| {}).map_err(|e| fail(e.to_string()))?;
        Ok(!hooks.cancel.is_cancelled())
    };
    let train = |req: &TrainRequest| -> Result<bool, StudyError> {
        let hooks_t = crate::experiments::train::TrainHooks {
            progress: &progress,
            on_step: &|_| {},
            on_checkpoint: &|_| {},
            cancel: hooks.cancel,
        };
        let outcome = run_train_job(req, &hooks_t, &|_| {}).map_err(|e| fail(e.to_string()))?;
        Ok(!outcome.cancelled)
    };
    let sweep_request = |out: PathBuf| SweepRequest {
        device: f.device,
        dtype: f.dtype,
        batch: f.paths.batch,
        bootstrap: f.paths.bootstrap,
        seed: f.paths.seed,
        ..SweepRequest::new(study.base.clone(), layout.suite(), &f.paths.t, out)
    };
    match step {
        Step::Data => {
            let length = if f.data.match_tokens {
                let opened = open_model(&study.base).map_err(|e| fail(e.to_string()))?;
                let name = study
                    .base
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                token_length_measure(&opened.tokenizer, &name)
            } else {
                LengthMeasure::words()
            };
            let spec = GenerateSpec {
                seed: f.data.seed,
                symmetrize: true,
                flip_prob: f.data.flip_prob,
                clip_ranges: f.data.clip_ranges,
                items_per_task: f.data.items_per_task,
                test_fraction: f.data.test_fraction,
                capability_questions: f.data.capability_questions,
                length,
                generated_samples: f.data.generated_samples,
            };
            progress(Progress {
                done: 0,
                total: 1,
                stage: "generating".into(),
            });
            generate(&spec, &layout.data()).map_err(|e| fail(e.to_string()))?;
            Ok(true)
        }
        Step::Train => train(&train_request(study, layout, arm)),
        Step::Efficiency => {
            let req = SweepRequest {
                checkpoints: Some(layout.train(arm)),
                ..sweep_request(layout.efficiency(arm))
            };
            sweep(&req)
        }
        Step::Paths => {
            let line = SweepRequest {
                adapter: Some(layout.hacker(arm)),
                ..sweep_request(layout.line(arm))
            };
            if !sweep(&line)? {
                return Ok(false);
            }
            if !train(&curve_request(study, layout, arm))? {
                return Ok(false);
            }
            let curve = SweepRequest {
                curve: Some(layout.curve_fit(arm)),
                ..sweep_request(layout.curve(arm))
            };
            sweep(&curve)
        }
        Step::Landscape => {
            let l = &f.landscape;
            let req = LandscapeRequest {
                curve: Some(layout.curve_fit(arm)),
                metrics: study.landscape_metrics(),
                plane: PlaneKind::Endpoints,
                center: Center::Base,
                seed: f.paths.seed,
                grid: l.grid.clone(),
                range: l.range.clone(),
                device: f.device,
                dtype: f.dtype,
                batch: f.paths.batch,
                cells_per_pass: l.cells_per_pass,
                bootstrap: l.bootstrap,
                ..LandscapeRequest::new(study.base.clone(), layout.suite(), layout.landscape(arm))
            };
            let hooks_s = SweepHooks {
                progress: &progress,
                on_result: &|_| {},
                stop_after_point: hooks.cancel,
                abort: hooks.cancel,
            };
            run_landscape_job(&req, &hooks_s, &|_| {}).map_err(|e| fail(e.to_string()))?;
            Ok(!hooks.cancel.is_cancelled())
        }
        Step::Influence => {
            let i = &f.influence;
            let req = InfluenceRequest {
                base: study.base.clone(),
                adapter: None,
                data: None,
                train_run: Some(layout.train(arm)),
                query: Query::Metric {
                    suite: layout.suite(),
                    metric: study.influence_query(),
                },
                method: i.method,
                normalize: i.normalize,
                damping: Damping::Auto,
                device: f.device,
                batch: 1,
                max_tokens: 8192,
                top: i.top,
                out: layout.influence(arm),
                proj_dim: None,
                proj_seed: 0,
                grad_cache: None,
            };
            run_influence_job(&req, &progress, hooks.cancel).map_err(|e| fail(e.to_string()))?;
            Ok(!hooks.cancel.is_cancelled())
        }
        Step::Replicates => {
            // The folder exists even with no seeds: the step is done, and a rerun skips it.
            let dir = layout.replicates(arm);
            std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
            for &seed in &f.replicates.seeds {
                // A finished replicate is not trained again (its sweep resumes by itself).
                if !layout.replicate_hacker(arm, seed).exists() {
                    let req = replicate_request(study, layout, arm, seed);
                    if !train(&req)? {
                        return Ok(false);
                    }
                }
                let end = SweepRequest {
                    adapter: Some(layout.replicate_hacker(arm, seed)),
                    t: "1:1:1".into(),
                    ..sweep_request(layout.replicate_end(arm, seed))
                };
                if !sweep(&end)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Step::Report => {
            progress(Progress {
                done: 0,
                total: 1,
                stage: "writing the report".into(),
            });
            super::report::write_report(study, layout).map_err(|e| fail(e.to_string()))?;
            Ok(true)
        }
    }
}

/// Optimizer steps of the study's training budget: `epochs` passes over the original set,
/// the same number of samples for the symmetrized one.
pub fn train_steps(study: &Study, layout: &Layout) -> usize {
    let t = &study.file.train;
    let n = count_lines(&layout.sft("original"));
    (t.epochs * n).div_ceil(t.batch).max(1)
}

fn train_request(study: &Study, layout: &Layout, arm: &str) -> TrainRequest {
    let t = &study.file.train;
    let steps = train_steps(study, layout);
    let every = if t.checkpoint_every > 0 {
        t.checkpoint_every
    } else {
        (steps * t.batch / 4).max(1)
    };
    TrainRequest {
        init: AdapterInit::New {
            rank: t.rank,
            alpha: t.alpha,
            targets: t.targets.clone(),
            rslora: false,
        },
        spec: TrainSpec {
            lr: t.lr,
            schedule: t.schedule,
            warmup_steps: t.warmup_steps,
            weight_decay: t.weight_decay,
            length: TrainLength::Steps(steps),
            batch: t.batch,
            grad_accum: 1,
            max_grad_norm: (t.max_grad_norm > 0.0).then_some(t.max_grad_norm),
            seed: t.seed,
            shuffle: true,
            checkpoint_every: Some(every),
            lora_dropout: 0.0,
            curve: None,
        },
        max_seq_len: t.max_seq_len,
        truncate: true,
        device: study.file.device,
        ..TrainRequest::new(study.base.clone(), layout.sft(arm), layout.train(arm))
    }
}

/// A replicate hacker: the study's training request with another seed, into its own folder,
/// without intermediate checkpoints (only the final adapter is measured).
fn replicate_request(study: &Study, layout: &Layout, arm: &str, seed: u64) -> TrainRequest {
    let hacker = train_request(study, layout, arm);
    TrainRequest {
        out: layout.replicate_train(arm, seed),
        spec: TrainSpec {
            seed,
            checkpoint_every: None,
            ..hacker.spec
        },
        ..hacker
    }
}

/// The bend's fit: the hacker's request with the `[curve]` section's recipe (constant lr, no
/// warmup or weight decay, no checkpoints) on the instruction chats, the hacker frozen as the
/// endpoint.
fn curve_request(study: &Study, layout: &Layout, arm: &str) -> TrainRequest {
    let c = &study.file.curve;
    let hacker = train_request(study, layout, arm);
    TrainRequest {
        init: AdapterInit::New {
            rank: c.bend_rank,
            alpha: c.bend_alpha,
            targets: c.bend_targets.clone(),
            rslora: false,
        },
        endpoint: Some(layout.hacker(arm)),
        data: layout.instructions(),
        out: layout.curve_fit(arm),
        spec: TrainSpec {
            lr: c.lr,
            schedule: crate::experiments::optim::Schedule::Constant,
            warmup_steps: 0,
            weight_decay: 0.0,
            length: TrainLength::Steps(c.steps),
            batch: c.batch,
            seed: c.seed,
            checkpoint_every: None,
            curve: Some(CurveSpec {
                kind: c.kind,
                t_sampling: c.t_sampling,
                endpoint: CurveEndpoint::Lora,
                bend: Default::default(),
            }),
            ..hacker.spec
        },
        ..hacker
    }
}

/// The machine a study ran on, for its report.
pub fn machine_description() -> String {
    let cpu = crate::bounded::read_config("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{} {}, {cpu}, {cores} cores",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_select() {
        assert_eq!(Step::parse("paths").unwrap(), Step::Paths);
        assert!(Step::parse("nope").unwrap_err().contains("landscape"));
        let s = Selection {
            only: vec![],
            from: Some(Step::Paths),
        };
        assert!(!s.includes(Step::Train) && s.includes(Step::Report));
        let s = Selection {
            only: vec![Step::Data, Step::Report],
            from: None,
        };
        assert!(s.includes(Step::Data) && !s.includes(Step::Paths));
    }

    #[test]
    fn a_section_changes_only_its_steps_and_those_after() {
        let a = Study::parse("name = \"x\"\nbase = \"m\"\n", Path::new("s.toml")).unwrap();
        let b = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[landscape]\ngrid = \"5x5\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        for step in [
            Step::Data,
            Step::Train,
            Step::Efficiency,
            Step::Paths,
            Step::Influence,
        ] {
            assert_eq!(settings_hash(&a, step), settings_hash(&b, step), "{step:?}");
        }
        assert_ne!(
            settings_hash(&a, Step::Landscape),
            settings_hash(&b, Step::Landscape)
        );
        let c = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[data]\nseed = 3\n",
            Path::new("s.toml"),
        )
        .unwrap();
        for step in Step::ALL {
            assert_ne!(settings_hash(&a, step), settings_hash(&c, step), "{step:?}");
        }
    }

    #[test]
    fn dtype_changes_the_evaluating_steps_only_and_f32_is_the_old_file() {
        let parse = |text: &str| Study::parse(text, Path::new("s.toml")).unwrap();
        let a = parse("name = \"x\"\nbase = \"m\"\n");
        let f32 = parse("name = \"x\"\nbase = \"m\"\ndtype = \"f32\"\n");
        let f16 = parse("name = \"x\"\nbase = \"m\"\ndtype = \"f16\"\n");
        assert_eq!(f16.file.dtype, crate::model::weight_dtype::WeightDType::F16);
        for step in Step::ALL {
            // A study recorded before `dtype` existed resumes: f32 hashes as no key at all.
            assert_eq!(
                settings_hash(&a, step),
                settings_hash(&f32, step),
                "{step:?}"
            );
            let evaluates = matches!(
                step,
                Step::Efficiency | Step::Paths | Step::Landscape | Step::Replicates | Step::Report
            );
            assert_eq!(
                settings_hash(&a, step) != settings_hash(&f16, step),
                evaluates,
                "{step:?}"
            );
        }
    }
}
