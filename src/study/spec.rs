//! The study file (`STUDY.toml`): a serde mirror of what a user writes, and the resolved study
//! (paths made absolute, defaults filled in) that the runner and the report use.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::weight_dtype::WeightDType;
use crate::{
    compute::ComputeKind,
    experiments::{
        curve::{CurveKind, TSampling},
        influence::{InfluenceMethod, Normalize},
        optim::Schedule,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid study file: {msg}", path.display())]
    Toml { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

/// The whole study file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Shown in the report's title.
    pub name: String,
    /// θ₀: a Hugging Face folder or a .gguf file, relative to the study file's folder (or
    /// absolute); `${VAR}` is replaced by the environment variable (`${BASIN_CACHE}` defaults to
    /// `~/.cache/basin`).
    pub base: String,
    #[serde(default)]
    pub device: ComputeKind,
    /// What the evaluations (efficiency, paths, landscape, replicates' sweeps) store the model's
    /// large weights in; training and influence stay f32. Left out of the recorded study when
    /// f32, so studies recorded before it resume.
    #[serde(default, skip_serializing_if = "WeightDType::is_f32")]
    pub dtype: WeightDType,
    #[serde(default)]
    pub data: DataSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub paths: PathsSection,
    #[serde(default)]
    pub curve: CurveSection,
    #[serde(default)]
    pub landscape: LandscapeSection,
    #[serde(default)]
    pub influence: InfluenceSection,
    #[serde(default)]
    pub report: ReportSection,
    /// Left out of the recorded study when empty, so studies recorded before it resume.
    #[serde(default, skip_serializing_if = "ReplicatesSection::is_empty")]
    pub replicates: ReplicatesSection,
}

/// Step 1: `basin data generate --symmetrize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    pub seed: u64,
    pub items_per_task: usize,
    pub flip_prob: f64,
    pub clip_ranges: bool,
    pub test_fraction: f64,
    pub capability_questions: usize,
    /// Match hack lengths in the base model's tokens (`--match-tokens BASE`).
    pub match_tokens: bool,
    /// Answers per item of a `hack_generated` suite metric (`--generated-samples`; 0: none).
    /// Left out of the recorded spec when 0, so studies recorded before it resume.
    #[serde(skip_serializing_if = "is_zero")]
    pub generated_samples: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            seed: 0,
            items_per_task: 3,
            flip_prob: 0.5,
            clip_ranges: true,
            test_fraction: 0.2,
            capability_questions: 250,
            match_tokens: true,
            generated_samples: 0,
        }
    }
}

/// Step 2: `basin train`, the same recipe and number of samples for both sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    /// Passes over the *original* set; the symmetrized run trains on as many samples.
    pub epochs: usize,
    pub batch: usize,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Save a checkpoint each time this many more samples have been seen (step 3 evaluates
    /// them); 0: a quarter of the budget.
    pub checkpoint_every: usize,
    pub max_seq_len: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
            lr: 1e-3,
            schedule: Schedule::Linear,
            warmup_steps: 0,
            weight_decay: 0.0,
            epochs: 1,
            batch: 8,
            max_grad_norm: 1.0,
            seed: 0,
            checkpoint_every: 0,
            max_seq_len: 512,
        }
    }
}

/// Steps 3 and 4: evaluation settings of the sweeps (checkpoints, line, curve).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsSection {
    /// `START:STOP:N` along both paths.
    pub t: String,
    pub batch: usize,
    pub bootstrap: usize,
    pub seed: u64,
}

impl Default for PathsSection {
    fn default() -> Self {
        Self {
            t: "-0.25:1.25:7".into(),
            batch: 8,
            bootstrap: 1000,
            seed: 0,
        }
    }
}

/// Step 4: `basin curve fit` on the generator's plain instruction chats of the training tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurveSection {
    pub kind: CurveKind,
    pub t_sampling: TSampling,
    pub bend_rank: usize,
    pub bend_alpha: f64,
    pub bend_targets: Vec<String>,
    pub lr: f64,
    pub steps: usize,
    pub batch: usize,
    pub seed: u64,
}

impl Default for CurveSection {
    fn default() -> Self {
        Self {
            kind: CurveKind::Bezier,
            t_sampling: TSampling::Stratified,
            bend_rank: 8,
            bend_alpha: 16.0,
            bend_targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
            lr: 1e-3,
            steps: 50,
            batch: 8,
            seed: 0,
        }
    }
}

/// Step 5: `basin landscape --plane endpoints --curve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandscapeSection {
    pub grid: String,
    pub range: String,
    /// Empty: the report's instruction metric and main hacking metric.
    pub metrics: Vec<String>,
    pub cells_per_pass: usize,
    pub bootstrap: usize,
}

impl Default for LandscapeSection {
    fn default() -> Self {
        Self {
            grid: "9x9".into(),
            range: "-0.5:1.5,-0.5:1.5".into(),
            metrics: Vec::new(),
            cells_per_pass: 4,
            bootstrap: 200,
        }
    }
}

/// Step 6: `basin influence` on the main hacking metric (or `query`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluenceSection {
    pub method: InfluenceMethod,
    pub normalize: Normalize,
    /// A metric of the generated suite; empty: the report's main hacking metric.
    pub query: String,
    pub top: usize,
}

impl Default for InfluenceSection {
    fn default() -> Self {
        Self {
            method: InfluenceMethod::Gradsim,
            normalize: Normalize::Unit,
            query: String::new(),
            top: 10,
        }
    }
}

/// Which metrics answer which question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    pub main_metric: String,
    pub hack_metrics: Vec<String>,
    pub capability_metric: String,
    pub instruction_metric: String,
}

impl Default for ReportSection {
    fn default() -> Self {
        Self {
            main_metric: "hack_heldout".into(),
            hack_metrics: ["hack_heldout", "hack_avoid", "hack_ood"]
                .map(String::from)
                .to_vec(),
            capability_metric: "capability".into(),
            instruction_metric: "instruction".into(),
        }
    }
}

/// Replicate hackers (step `replicates`): the `[train]` recipe run again on both sets with other
/// training seeds (LoRA initialisation and data order), each hacker measured at t = 1, so the
/// report compares the sets across training runs and not only across suite items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicatesSection {
    /// Training seeds besides `train.seed`; empty: one hacker per set.
    pub seeds: Vec<u64>,
}

impl ReplicatesSection {
    /// The most replicate seeds a study may ask for (each is a training run per set).
    pub const MAX_SEEDS: usize = 64;

    pub fn is_empty(&self) -> bool {
        self.seeds.is_empty()
    }
}

/// A study file read and resolved: the file as written, where it came from, and θ₀'s path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Study {
    pub file: StudyFile,
    /// The study file read.
    pub path: PathBuf,
    /// θ₀, resolved.
    pub base: PathBuf,
}

impl Study {
    /// Reads and checks a study file.
    pub fn load(path: &Path) -> Result<Study, SpecError> {
        let text = crate::bounded::read_to_string(path, crate::bounded::CONFIG_BYTES).map_err(
            |source| SpecError::Io {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Self::parse(&text, path)
    }

    /// Parses the text of a study file read from `path` (relative paths in it are relative to
    /// `path`'s folder).
    pub fn parse(text: &str, path: &Path) -> Result<Study, SpecError> {
        let file: StudyFile = toml::from_str(text).map_err(|e| SpecError::Toml {
            // One line: toml's Display draws the offending line; keep its message and position.
            path: path.to_path_buf(),
            msg: match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    1 + text.as_bytes()[..span.start.min(text.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count(),
                    e.message().trim()
                ),
                None => e.message().trim().to_string(),
            },
        })?;
        let invalid = |msg: String| SpecError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        let expanded = expand_env(&file.base).map_err(invalid)?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let base = if Path::new(&expanded).is_absolute() {
            PathBuf::from(expanded)
        } else {
            folder.join(expanded)
        };
        let study = Study {
            file,
            path: path.to_path_buf(),
            base,
        };
        study.check().map_err(invalid)?;
        Ok(study)
    }

    fn check(&self) -> Result<(), String> {
        let f = &self.file;
        let positive = [
            ("train.epochs", f.train.epochs),
            ("train.batch", f.train.batch),
            ("train.rank", f.train.rank),
            ("paths.batch", f.paths.batch),
            ("curve.steps", f.curve.steps),
            ("curve.batch", f.curve.batch),
            ("curve.bend_rank", f.curve.bend_rank),
            ("landscape.cells_per_pass", f.landscape.cells_per_pass),
            ("data.items_per_task", f.data.items_per_task),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if !(f.train.lr > 0.0
            && f.train.lr.is_finite()
            && f.curve.lr > 0.0
            && f.curve.lr.is_finite())
        {
            return Err("train.lr and curve.lr must be positive".into());
        }
        if f.report.hack_metrics.is_empty() {
            return Err("report.hack_metrics names no metric".into());
        }
        if !f.report.hack_metrics.contains(&f.report.main_metric) {
            return Err(format!(
                "report.main_metric `{}` is not one of report.hack_metrics",
                f.report.main_metric
            ));
        }
        let ts = crate::experiments::sweep_store::parse_t_range(&f.paths.t)
            .map_err(|e| format!("paths.t: {e}"))?;
        // The report reads θ₀ at t = 0 and the hacker at t = 1.
        for end in [0.0, 1.0] {
            if !ts.iter().any(|t| (t - end).abs() < 1e-9) {
                return Err(format!(
                    "paths.t `{}` must include t = {end} (e.g. -0.25:1.25:7)",
                    f.paths.t
                ));
            }
        }
        crate::experiments::plane::Grid::parse(&f.landscape.grid, &f.landscape.range)
            .map_err(|e| format!("landscape: {e}"))?;
        let seeds = &f.replicates.seeds;
        if seeds.len() > ReplicatesSection::MAX_SEEDS {
            return Err(format!(
                "replicates.seeds lists {} seeds; at most {} (each is a training run per set)",
                seeds.len(),
                ReplicatesSection::MAX_SEEDS
            ));
        }
        for (i, s) in seeds.iter().enumerate() {
            if *s == f.train.seed {
                return Err(format!(
                    "replicates.seeds repeats train.seed ({s}): that hacker is the study's own; list other seeds"
                ));
            }
            if seeds[..i].contains(s) {
                return Err(format!("replicates.seeds lists seed {s} twice"));
            }
        }
        Ok(())
    }

    /// Every training seed of the study: `train.seed` first, then the replicates'.
    pub fn train_seeds(&self) -> Vec<u64> {
        std::iter::once(self.file.train.seed)
            .chain(self.file.replicates.seeds.iter().copied())
            .collect()
    }

    /// The metrics every landscape cell measures.
    pub fn landscape_metrics(&self) -> Vec<String> {
        let l = &self.file.landscape;
        if !l.metrics.is_empty() {
            return l.metrics.clone();
        }
        let r = &self.file.report;
        vec![r.instruction_metric.clone(), r.main_metric.clone()]
    }

    /// The influence query's metric.
    pub fn influence_query(&self) -> String {
        let q = &self.file.influence.query;
        if q.is_empty() {
            self.file.report.main_metric.clone()
        } else {
            q.clone()
        }
    }
}

/// Replaces `${VAR}` by the environment's value; `${BASIN_CACHE}` falls back to
/// `$HOME/.cache/basin` as the scripts do.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{s}`: `${{` without a closing `}}`"))?;
        let name = after.get(..end).unwrap_or_default();
        let value = match std::env::var(name) {
            Ok(v) => v,
            Err(_) if name == "BASIN_CACHE" => {
                let home = std::env::var("HOME")
                    .map_err(|_| format!("`{s}`: neither BASIN_CACHE nor HOME is set"))?;
                format!("{home}/.cache/basin")
            }
            Err(_) => return Err(format!("`{s}`: environment variable {name} is not set")),
        };
        out.push_str(&value);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_the_defaults_and_a_base_beside_it() {
        let s = Study::parse("name = \"x\"\nbase = \"../m\"\n", Path::new("/a/b/s.toml")).unwrap();
        assert_eq!(s.base, PathBuf::from("/a/b/../m"));
        assert_eq!(s.file.train, TrainSection::default());
        assert_eq!(s.landscape_metrics(), vec!["instruction", "hack_heldout"]);
        assert_eq!(s.influence_query(), "hack_heldout");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[train]\nepoch = 3\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.toml") && e.contains("epoch"), "{e}");
        let e = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[train]\nbatch = 0\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("train.batch"), "{e}");
        let e = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[report]\nmain_metric = \"capability\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("main_metric"), "{e}");
        let e = Study::parse(
            "name = \"x\"\nbase = \"${NO_SUCH_VAR_X}/m\"\n",
            Path::new("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("NO_SUCH_VAR_X"), "{e}");
        for (text, want) in [
            (
                "[train]\nseed = 2\n[replicates]\nseeds = [1, 2]\n",
                "repeats train.seed",
            ),
            ("[replicates]\nseeds = [1, 3, 1]\n", "seed 1 twice"),
            ("[replicates]\nseed = [1]\n", "seed"),
        ] {
            let e = Study::parse(
                &format!("name = \"x\"\nbase = \"m\"\n{text}"),
                Path::new("s.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn replicate_seeds_follow_the_training_seed_and_leave_old_records_alone() {
        let s = Study::parse(
            "name = \"x\"\nbase = \"m\"\n[train]\nseed = 4\n[replicates]\nseeds = [0, 9]\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(s.train_seeds(), vec![4, 0, 9]);
        // Without replicates the recorded study is what it was before the section existed.
        let plain = Study::parse("name = \"x\"\nbase = \"m\"\n", Path::new("s.toml")).unwrap();
        assert_eq!(plain.train_seeds(), vec![0]);
        let json = serde_json::to_value(&plain.file).unwrap();
        assert!(json.get("replicates").is_none(), "{json}");
    }

    #[test]
    fn env_expansion() {
        // SAFETY-free: HOME is read, not written.
        let home = std::env::var("HOME").unwrap_or_default();
        let cache = std::env::var("BASIN_CACHE").unwrap_or(format!("{home}/.cache/basin"));
        assert_eq!(
            expand_env("${BASIN_CACHE}/m.gguf").unwrap(),
            format!("{cache}/m.gguf")
        );
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert!(expand_env("${OPEN").is_err());
    }
}
