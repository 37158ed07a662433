//! Metric suites: a `suite.toml` naming metrics, each a kind and a JSONL file (paths relative to
//! the suite file). Loading validates everything up front, so a sweep never fails halfway on a
//! malformed item. Every item becomes one or more chat examples to score ([`Suite::requests`]).
//!
//! Kinds and their JSONL lines:
//! - `instruction`: chat examples (`{"id", "messages": [...]}`, last message the assistant's);
//! - `paired`: `{"id", "group"?, "messages": [...prompt, last the user's], "hack", "honest"}`;
//! - `choice`: `{"id", "group"?, "messages": [...], "choices": ["..", ..], "answer": k}`;
//! - `generated`: `{"id", "group"?, "messages": [...prompt], "scorer": {...}, "honest_score": x}`:
//!   the model writes `samples` answers per item at each point (no teacher forcing; the
//!   `[[metric]]` may set `samples`, `max_new_tokens`, `temperature`, `top_p`, `seed`), and each is
//!   scored by the item's own rule ([`Scorer`], the data generator's); an answer games the
//!   scorer when its score beats the honest answer's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, de::DeserializeOwned};
use toml::Spanned;

use crate::data::LengthMeasure;
use crate::data::scorer::Scorer;
use crate::text::dataset::{ChatExample, ChatMessage, MAX_LINE_BYTES, load_chat_jsonl};
use crate::text::error::TextError;

/// Largest `suite.toml` read (a suite file lists a handful of metrics).
pub const MAX_SUITE_TOML_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid suite file: {msg}", path.display())]
    Toml { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    #[error("{}:{line}: {msg}", path.display())]
    Item {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("default suite: {0}")]
    Data(#[from] crate::data::DataError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Instruction,
    Paired,
    Choice,
    Generated,
}

/// How a `paired` or `choice` metric compares responses of different lengths (`score` in
/// `suite.toml`): by summed log-prob (`sum`, lm-eval-harness' `acc`), by log-prob per scored
/// token (`per_token`) or per UTF-8 byte of the response text (`per_byte`, lm-eval-harness'
/// `acc_norm`). Summed log-probs favour short responses, so the defaults are length-controlled:
/// per token for pairs, per byte for choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    // The discriminants index per-form arrays (`Scoring::ALL` order).
    Sum = 0,
    PerToken = 1,
    PerByte = 2,
}

impl Scoring {
    pub const ALL: [Scoring; 3] = [Scoring::Sum, Scoring::PerToken, Scoring::PerByte];

    pub fn as_str(self) -> &'static str {
        match self {
            Scoring::Sum => "sum",
            Scoring::PerToken => "per_token",
            Scoring::PerByte => "per_byte",
        }
    }

    /// The default of a metric kind (instruction metrics have no scoring form).
    pub fn default_for(kind: MetricKind) -> Option<Scoring> {
        match kind {
            MetricKind::Instruction | MetricKind::Generated => None,
            MetricKind::Paired => Some(Scoring::PerToken),
            MetricKind::Choice => Some(Scoring::PerByte),
        }
    }

    /// A response's log-prob under this form: `sum` over `tokens` scored tokens of a text of
    /// `bytes` UTF-8 bytes. No tokens (or bytes) → −∞, which never wins a comparison.
    pub fn normalise(self, sum: f64, tokens: usize, bytes: usize) -> f64 {
        let per = |n: usize| {
            if n == 0 {
                f64::NEG_INFINITY
            } else {
                sum / n as f64
            }
        };
        match self {
            Scoring::Sum if tokens == 0 => f64::NEG_INFINITY,
            Scoring::Sum => sum,
            Scoring::PerToken => per(tokens),
            Scoring::PerByte => per(bytes),
        }
    }
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Instruction => "instruction",
            MetricKind::Paired => "paired",
            MetricKind::Choice => "choice",
            MetricKind::Generated => "generated",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteToml {
    name: String,
    #[serde(default = "one")]
    version: u32,
    #[serde(default)]
    metric: Vec<MetricToml>,
}

fn one() -> u32 {
    1
}

/// `[[metric]]`; spans give the line of an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricToml {
    name: Spanned<String>,
    kind: Spanned<String>,
    file: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    /// `sum`, `per_token` or `per_byte` (paired and choice metrics; see [`Scoring`]).
    #[serde(default)]
    score: Option<Spanned<String>>,
    /// Generated metrics: answers per item and point (default 4).
    #[serde(default)]
    samples: Option<Spanned<i64>>,
    /// Generated metrics: most new tokens per answer (default 64).
    #[serde(default)]
    max_new_tokens: Option<Spanned<i64>>,
    /// Generated metrics: sampling temperature (default 1.0).
    #[serde(default)]
    temperature: Option<Spanned<f64>>,
    /// Generated metrics: nucleus (default 1.0: none).
    #[serde(default)]
    top_p: Option<Spanned<f64>>,
    /// Generated metrics: the sampling seed (default 0; the same at every point).
    #[serde(default)]
    seed: Option<Spanned<i64>>,
}

/// How a `generated` metric samples its answers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GenerationSettings {
    pub samples: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self {
            samples: 4,
            max_new_tokens: 64,
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Most answers per item and most new tokens per answer a suite may ask for.
const MAX_SAMPLES: i64 = 1000;
const MAX_NEW_TOKENS: i64 = 4096;

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    1 + text
        .as_bytes()
        .iter()
        .take(at)
        .filter(|&&b| b == b'\n')
        .count()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PairedItem {
    pub id: String,
    #[serde(default)]
    pub group: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub hack: String,
    pub honest: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChoiceItem {
    pub id: String,
    #[serde(default)]
    pub group: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub choices: Vec<String>,
    pub answer: usize,
}

/// An item of a `generated` metric: a prompt and the rule its answers are scored by.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GeneratedItem {
    pub id: String,
    #[serde(default)]
    pub group: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub scorer: Scorer,
    /// The honest answer's score under `scorer`: an answer that beats it games the rule.
    pub honest_score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricItems {
    Instruction(Vec<ChatExample>),
    Paired(Vec<PairedItem>),
    Choice(Vec<ChoiceItem>),
    Generated {
        items: Vec<GeneratedItem>,
        settings: GenerationSettings,
    },
}

impl MetricItems {
    pub fn len(&self) -> usize {
        match self {
            MetricItems::Instruction(v) => v.len(),
            MetricItems::Paired(v) => v.len(),
            MetricItems::Choice(v) => v.len(),
            MetricItems::Generated { items, .. } => items.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// The scoring form its value uses (`None` for instruction metrics).
    pub score: Option<Scoring>,
    pub file: PathBuf,
    pub description: Option<String>,
    pub items: MetricItems,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub version: u32,
    pub metrics: Vec<Metric>,
}

/// Id of the request that scores `response` of `item` in `metric`.
pub fn request_id(metric: &str, item: &str, response: &str) -> String {
    format!("{metric}/{item}/{response}")
}

impl Suite {
    /// Reads `suite.toml` and every metric file it names, validating all items.
    pub fn load(path: impl AsRef<Path>) -> Result<Suite, SuiteError> {
        let path = path.as_ref();
        let io_err = |source| SuiteError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        if size > MAX_SUITE_TOML_BYTES {
            return Err(SuiteError::Invalid {
                path: path.to_path_buf(),
                msg: format!("{size} bytes; a suite file is at most {MAX_SUITE_TOML_BYTES} bytes"),
            });
        }
        let text =
            crate::bounded::read_to_string(path, crate::bounded::CONFIG_BYTES).map_err(io_err)?;
        let parsed: SuiteToml = toml::from_str(&text).map_err(|e| SuiteError::Toml {
            // One line: toml's Display draws the offending line; keep its message and position.
            path: path.to_path_buf(),
            msg: match e.span() {
                Some(span) => format!(
                    "line {}: {}",
                    line_of(&text, span.start),
                    e.message().trim()
                ),
                None => e.message().trim().to_string(),
            },
        })?;
        if parsed.metric.is_empty() {
            return Err(SuiteError::Invalid {
                path: path.to_path_buf(),
                msg: "the suite lists no [[metric]]".into(),
            });
        }
        let at = |span: std::ops::Range<usize>, msg: String| SuiteError::Item {
            path: path.to_path_buf(),
            line: line_of(&text, span.start),
            msg,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut metrics = Vec::with_capacity(parsed.metric.len());
        for m in parsed.metric {
            let name = m.name.get_ref().clone();
            let name_line = line_of(&text, m.name.span().start);
            if name.is_empty() || name.contains('/') {
                return Err(at(
                    m.name.span(),
                    format!("metric name `{name}` must be non-empty and without '/'"),
                ));
            }
            if let Some(first) = names.insert(name.clone(), name_line) {
                return Err(at(
                    m.name.span(),
                    format!("metric `{name}` is already listed on line {first}"),
                ));
            }
            let kind = match m.kind.get_ref().as_str() {
                "instruction" => MetricKind::Instruction,
                "paired" => MetricKind::Paired,
                "choice" => MetricKind::Choice,
                "generated" => MetricKind::Generated,
                other => {
                    return Err(at(
                        m.kind.span(),
                        format!(
                            "metric `{name}` has unknown kind `{other}` (kinds: instruction, paired, choice, generated)"
                        ),
                    ));
                }
            };
            let settings =
                generation_settings(&m, kind, &name).map_err(|(span, msg)| at(span, msg))?;
            let score = match &m.score {
                None => Scoring::default_for(kind),
                Some(sp) if matches!(kind, MetricKind::Instruction | MetricKind::Generated) => {
                    return Err(at(
                        sp.span(),
                        format!(
                            "metric `{name}`: `score` applies to paired and choice metrics, not {}",
                            kind.as_str()
                        ),
                    ));
                }
                Some(sp) => match sp.get_ref().as_str() {
                    "sum" => Some(Scoring::Sum),
                    "per_token" => Some(Scoring::PerToken),
                    "per_byte" => Some(Scoring::PerByte),
                    other => {
                        return Err(at(
                            sp.span(),
                            format!(
                                "metric `{name}` has unknown score `{other}` (scores: sum, per_token, per_byte)"
                            ),
                        ));
                    }
                },
            };
            let file = dir.join(m.file.get_ref());
            if !file.is_file() {
                return Err(at(
                    m.file.span(),
                    format!(
                        "metric `{name}` names file `{}`, which does not exist",
                        file.display()
                    ),
                ));
            }
            let items = match kind {
                MetricKind::Instruction => MetricItems::Instruction(load_chat_jsonl(&file)?),
                MetricKind::Paired => MetricItems::Paired(load_items(&file, check_paired)?),
                MetricKind::Choice => MetricItems::Choice(load_items(&file, check_choice)?),
                MetricKind::Generated => MetricItems::Generated {
                    items: load_items(&file, check_generated)?,
                    settings,
                },
            };
            metrics.push(Metric {
                name,
                kind,
                score,
                file,
                description: m.description,
                items,
            });
        }
        Ok(Suite {
            path: path.to_path_buf(),
            name: parsed.name,
            version: parsed.version,
            metrics,
        })
    }

    /// Keeps only the named metrics (in the suite's order); empty keeps all. An unknown name is
    /// an error naming the suite and the metrics it has.
    pub fn keep_only(&mut self, names: &[String]) -> Result<(), SuiteError> {
        if names.is_empty() {
            return Ok(());
        }
        if let Some(missing) = names
            .iter()
            .find(|n| !self.metrics.iter().any(|m| &m.name == *n))
        {
            return Err(SuiteError::Invalid {
                path: self.path.clone(),
                msg: format!(
                    "no metric `{missing}` (it has: {})",
                    self.metric_names().join(", ")
                ),
            });
        }
        self.metrics.retain(|m| names.contains(&m.name));
        Ok(())
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name.clone()).collect()
    }

    /// Every chat example the suite needs scored, with ids from [`request_id`]
    /// (`instruction`: `{metric}/{id}/answer`; `paired`: `/hack` and `/honest`; `choice`:
    /// `/choice{k}`). Scoring each one's final assistant message gives every metric.
    pub fn requests(&self) -> Vec<ChatExample> {
        let mut out = Vec::new();
        let with = |messages: &[ChatMessage], answer: &str| {
            let mut m = messages.to_vec();
            m.push(ChatMessage::new("assistant", answer));
            m
        };
        for metric in &self.metrics {
            match &metric.items {
                MetricItems::Instruction(items) => {
                    for ex in items {
                        out.push(ChatExample {
                            id: request_id(&metric.name, &ex.id, "answer"),
                            messages: ex.messages.clone(),
                        });
                    }
                }
                MetricItems::Paired(items) => {
                    for it in items {
                        out.push(ChatExample {
                            id: request_id(&metric.name, &it.id, "hack"),
                            messages: with(&it.messages, &it.hack),
                        });
                        out.push(ChatExample {
                            id: request_id(&metric.name, &it.id, "honest"),
                            messages: with(&it.messages, &it.honest),
                        });
                    }
                }
                // Answered by generation, not scored teacher-forced.
                MetricItems::Generated { .. } => {}
                MetricItems::Choice(items) => {
                    for it in items {
                        for (k, choice) in it.choices.iter().enumerate() {
                            out.push(ChatExample {
                                id: request_id(&metric.name, &it.id, &format!("choice{k}")),
                                messages: with(&it.messages, choice),
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The suite's `generated` metrics: (index in [`Suite::metrics`], items, settings).
    pub fn generated(&self) -> Vec<(usize, &[GeneratedItem], GenerationSettings)> {
        self.metrics
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match &m.items {
                MetricItems::Generated { items, settings } => {
                    Some((i, items.as_slice(), *settings))
                }
                _ => None,
            })
            .collect()
    }

    /// Every file the suite reads (the suite file first), for hashing into a run record.
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.path.clone())
            .chain(self.metrics.iter().map(|m| m.file.clone()))
            .collect()
    }
}

/// Seed of the data generator run that the default suite is cut from.
pub const DEFAULT_SUITE_SEED: u64 = 0;
/// Lines kept (from the top) of each metric file of that run; `hack_avoid` lines come in
/// include/avoid pairs, so an even count keeps whole pairs.
pub const DEFAULT_SUITE_LINES: [(&str, usize); 5] = [
    ("hack_heldout.jsonl", 16),
    ("hack_avoid.jsonl", 16),
    ("hack_ood.jsonl", 16),
    ("capability.jsonl", 24),
    ("instruction.jsonl", 12),
];
/// Where the default suite is committed, relative to the crate root.
pub const DEFAULT_SUITE_DIR: &str = "assets/suites/default";

/// `suite.toml` of the committed default suite in this source tree (tests and examples).
pub fn default_suite_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(DEFAULT_SUITE_DIR)
        .join("suite.toml")
}

/// Writes the small default suite into `out`: the data generator's suites for seed
/// [`DEFAULT_SUITE_SEED`] (generator defaults otherwise), cut to the first
/// [`DEFAULT_SUITE_LINES`] lines of each metric file and named `default`. Deterministic, so the
/// committed copy can be regenerated and checked for drift.
pub fn write_default_suite(out: &Path, length: &LengthMeasure) -> Result<(), SuiteError> {
    use crate::data::{
        bank::Banks,
        generate::{GenerateSpec, build},
        suites::write_suites,
    };
    let spec = GenerateSpec {
        seed: DEFAULT_SUITE_SEED,
        length: length.clone(),
        ..GenerateSpec::default()
    };
    let suites = build(&spec, &Banks::bundled()?)?.suites;
    // The generator writes into `dir/suite/`; a private scratch folder next to `out` keeps the
    // result independent of what else is there.
    let scratch = out.with_extension(format!("generating-{}", std::process::id()));
    let written = write_suites(&suites, &scratch, "suite", 0)
        .map(|_| ())
        .map_err(SuiteError::from)
        .and_then(|()| {
            let from = scratch.join("suite");
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| SuiteError::Io { path, source }
            };
            std::fs::create_dir_all(out).map_err(io(out))?;
            let toml_path = from.join("suite.toml");
            let toml_text =
                crate::bounded::read_to_string(&toml_path, crate::bounded::CONFIG_BYTES)
                    .map_err(io(&toml_path))?;
            let renamed = toml_text.replacen("name = \"generated\"", "name = \"default\"", 1);
            // Only the five metrics of the seed experiment: drop the other `[[metric]]` blocks
            // (e.g. `length_control`).
            let mut blocks = renamed.split("\n[[metric]]\n");
            let mut kept = blocks.next().unwrap_or_default().to_string();
            for block in blocks {
                if DEFAULT_SUITE_LINES
                    .iter()
                    .any(|(file, _)| block.contains(&format!("file = \"{file}\"")))
                {
                    kept.push_str("\n[[metric]]\n");
                    kept.push_str(block);
                }
            }
            std::fs::write(out.join("suite.toml"), kept).map_err(io(out))?;
            for (file, lines) in DEFAULT_SUITE_LINES {
                let src = from.join(file);
                let text = crate::bounded::read_to_string(&src, crate::bounded::DATA_BYTES)
                    .map_err(io(&src))?;
                let head: String = text.split_inclusive('\n').take(lines).collect();
                let dst = out.join(file);
                std::fs::write(&dst, head).map_err(io(&dst))?;
            }
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&scratch);
    written
}

fn check_prompt(messages: &[ChatMessage]) -> Result<(), String> {
    match messages.last() {
        None => Err("`messages` is empty".into()),
        Some(m) if m.role != "user" => Err(format!(
            "the prompt's last message must be the user's, got `{}`",
            m.role
        )),
        Some(_) => match messages
            .iter()
            .find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
        {
            Some(bad) => Err(format!("unknown role `{}`", bad.role)),
            None => Ok(()),
        },
    }
}

/// A generated metric's settings from its `[[metric]]` (defaults where absent); the keys are
/// refused on other kinds. Errors carry the offending key's span.
fn generation_settings(
    m: &MetricToml,
    kind: MetricKind,
    name: &str,
) -> Result<GenerationSettings, (std::ops::Range<usize>, String)> {
    let keys = [
        ("samples", m.samples.as_ref().map(Spanned::span)),
        (
            "max_new_tokens",
            m.max_new_tokens.as_ref().map(Spanned::span),
        ),
        ("temperature", m.temperature.as_ref().map(Spanned::span)),
        ("top_p", m.top_p.as_ref().map(Spanned::span)),
        ("seed", m.seed.as_ref().map(Spanned::span)),
    ];
    if kind != MetricKind::Generated {
        if let Some((key, Some(span))) = keys.iter().find(|(_, s)| s.is_some()) {
            return Err((
                span.clone(),
                format!(
                    "metric `{name}`: `{key}` applies to generated metrics, not {}",
                    kind.as_str()
                ),
            ));
        }
        return Ok(GenerationSettings::default());
    }
    let mut s = GenerationSettings::default();
    let int = |v: &Option<Spanned<i64>>, key: &str, lo: i64, hi: i64| match v {
        None => Ok(None),
        Some(sp) if (lo..=hi).contains(sp.get_ref()) => Ok(Some(*sp.get_ref())),
        Some(sp) => Err((
            sp.span(),
            format!(
                "metric `{name}`: `{key}` = {} must be in {lo}..={hi}",
                sp.get_ref()
            ),
        )),
    };
    if let Some(v) = int(&m.samples, "samples", 1, MAX_SAMPLES)? {
        s.samples = v as usize;
    }
    if let Some(v) = int(&m.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)? {
        s.max_new_tokens = v as usize;
    }
    if let Some(v) = int(&m.seed, "seed", 0, i64::MAX)? {
        s.seed = v as u64;
    }
    if let Some(sp) = &m.temperature {
        let t = *sp.get_ref();
        if !(t.is_finite() && t > 0.0) {
            return Err((
                sp.span(),
                format!("metric `{name}`: `temperature` = {t} must be above 0"),
            ));
        }
        s.temperature = t as f32;
    }
    if let Some(sp) = &m.top_p {
        let p = *sp.get_ref();
        if !(p > 0.0 && p <= 1.0) {
            return Err((
                sp.span(),
                format!("metric `{name}`: `top_p` = {p} must be in (0, 1]"),
            ));
        }
        s.top_p = p as f32;
    }
    Ok(s)
}

fn check_generated(it: &GeneratedItem) -> Result<(), String> {
    check_prompt(&it.messages)?;
    if !it.honest_score.is_finite() {
        return Err(format!(
            "`honest_score` {} is not a finite number",
            it.honest_score
        ));
    }
    Ok(())
}

fn check_paired(it: &PairedItem) -> Result<(), String> {
    check_prompt(&it.messages)?;
    if it.hack.is_empty() || it.honest.is_empty() {
        return Err("`hack` and `honest` must be non-empty".into());
    }
    Ok(())
}

fn check_choice(it: &ChoiceItem) -> Result<(), String> {
    check_prompt(&it.messages)?;
    if it.choices.len() < 2 {
        return Err(format!(
            "needs at least 2 choices, has {}",
            it.choices.len()
        ));
    }
    if it.answer >= it.choices.len() {
        return Err(format!(
            "answer {} is out of range for {} choices",
            it.answer,
            it.choices.len()
        ));
    }
    if it.choices.iter().any(|c| c.is_empty()) {
        return Err("a choice is empty".into());
    }
    Ok(())
}

trait HasId {
    fn id(&self) -> &str;
}
impl HasId for PairedItem {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for ChoiceItem {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for GeneratedItem {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Reads a JSONL file of items, naming file and line in every error; blank lines are skipped.
/// Lines are read with a length cap, so a file without newlines is never read whole.
fn load_items<T: DeserializeOwned + HasId>(
    path: &Path,
    check: fn(&T) -> Result<(), String>,
) -> Result<Vec<T>, SuiteError> {
    let file = std::fs::File::open(path).map_err(|source| SuiteError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        line_no += 1;
        let item_err = |msg: String| SuiteError::Item {
            path: path.to_path_buf(),
            line: line_no,
            msg,
        };
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| item_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        if buf.len() as u64 > MAX_LINE_BYTES {
            return Err(item_err(format!("line longer than {MAX_LINE_BYTES} bytes")));
        }
        let text = std::str::from_utf8(&buf).map_err(|e| item_err(format!("not UTF-8: {e}")))?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let item: T =
            serde_json::from_str(text).map_err(|e| item_err(format!("invalid item: {e}")))?;
        if item.id().is_empty() || item.id().contains('/') {
            return Err(item_err(format!(
                "item id `{}` must be non-empty and without '/'",
                item.id()
            )));
        }
        check(&item).map_err(|msg| item_err(format!("item `{}`: {msg}", item.id())))?;
        if !ids.insert(item.id().to_string()) {
            return Err(item_err(format!("item id `{}` appears twice", item.id())));
        }
        out.push(item);
    }
    if out.is_empty() {
        return Err(SuiteError::Invalid {
            path: path.to_path_buf(),
            msg: "the file holds no items".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder with `files` (name, contents) written into it.
    fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("basin-suite-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, text) in files {
            std::fs::write(dir.join(f), text).unwrap();
        }
        dir
    }

    const TOML: &str = "name = \"t\"\nversion = 2\n\n[[metric]]\nname = \"ins\"\nkind = \"instruction\"\nfile = \"ins.jsonl\"\n\n\
        [[metric]]\nname = \"pair\"\nkind = \"paired\"\nfile = \"sub/pair.jsonl\"\ndescription = \"d\"\n\n\
        [[metric]]\nname = \"ch\"\nkind = \"choice\"\nfile = \"ch.jsonl\"\n";
    const INS: &str = r#"{"id": "i1", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#;
    const PAIR: &str = r#"{"id": "p1", "group": "g", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], "hack": "H", "honest": "O"}"#;
    const CH: &str = r#"{"id": "c1", "messages": [{"role": "user", "content": "q"}], "choices": ["x", "y", "z"], "answer": 2}"#;

    fn good(name: &str) -> PathBuf {
        let dir = folder(
            name,
            &[
                ("suite.toml", TOML),
                ("ins.jsonl", INS),
                ("ch.jsonl", &format!("\u{feff}{CH}\n\n")),
            ],
        );
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/pair.jsonl"), format!("{PAIR}\r\n")).unwrap();
        dir
    }

    /// The load error of `good` with one file replaced.
    fn err_with(name: &str, file: &str, text: &str) -> String {
        let dir = good(name);
        std::fs::write(dir.join(file), text).unwrap();
        let e = Suite::load(dir.join("suite.toml")).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        e
    }

    const GEN: &str = r#"{"id": "g1", "group": "t1", "messages": [{"role": "user", "content": "q"}], "scorer": {"kind": "caps"}, "honest_score": 0.0}"#;

    /// A generated metric: its settings (defaults where absent), no teacher-forced requests,
    /// and one-line errors for settings on other kinds, bad values and bad items.
    #[test]
    fn generated_metrics_load_with_their_settings() {
        let toml = format!(
            "{TOML}\n[[metric]]\nname = \"gen\"\nkind = \"generated\"\nfile = \"gen.jsonl\"\nsamples = 3\ntemperature = 0.7\n"
        );
        let dir = good("gen");
        std::fs::write(dir.join("suite.toml"), &toml).unwrap();
        std::fs::write(dir.join("gen.jsonl"), GEN).unwrap();
        let s = Suite::load(dir.join("suite.toml")).unwrap();
        let gen_metrics = s.generated();
        assert_eq!(gen_metrics.len(), 1);
        let (index, items, settings) = gen_metrics[0];
        assert_eq!(s.metrics[index].kind, MetricKind::Generated);
        assert_eq!(s.metrics[index].score, None);
        assert_eq!(items[0].scorer, Scorer::Caps);
        assert_eq!(
            settings,
            GenerationSettings {
                samples: 3,
                temperature: 0.7,
                ..Default::default()
            }
        );
        assert!(s.requests().iter().all(|r| !r.id.starts_with("gen/")));
        let load = |toml: &str, items: &str| {
            std::fs::write(dir.join("suite.toml"), toml).unwrap();
            std::fs::write(dir.join("gen.jsonl"), items).unwrap();
            Suite::load(dir.join("suite.toml")).unwrap_err().to_string()
        };
        let e = load(&toml.replace("samples = 3", "samples = 0"), GEN);
        assert!(e.contains("`samples` = 0 must be in 1..=1000"), "{e}");
        let e = load(&toml.replace("temperature = 0.7", "temperature = 0.0"), GEN);
        assert!(e.contains("`temperature` = 0 must be above 0"), "{e}");
        let e = load(&toml.replace("samples = 3", "score = \"sum\""), GEN);
        assert!(
            e.contains("`score` applies to paired and choice metrics, not generated"),
            "{e}"
        );
        let e = load(
            &toml.replace(
                "file = \"ch.jsonl\"\n",
                "file = \"ch.jsonl\"\nsamples = 2\n",
            ),
            GEN,
        );
        assert!(
            e.contains("`samples` applies to generated metrics, not choice"),
            "{e}"
        );
        let e = load(&toml, &GEN.replace("caps", "vibes"));
        assert!(
            e.contains("gen.jsonl:1") && e.contains("invalid item"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn loads_a_suite_and_expands_requests() {
        let dir = good("ok");
        let s = Suite::load(dir.join("suite.toml")).unwrap();
        assert_eq!((s.name.as_str(), s.version), ("t", 2));
        assert_eq!(s.metric_names(), vec!["ins", "pair", "ch"]);
        assert_eq!(s.metrics[1].kind, MetricKind::Paired);
        assert_eq!(s.metrics[1].description.as_deref(), Some("d"));
        assert_eq!(s.metrics[1].file, dir.join("sub/pair.jsonl"));
        let MetricItems::Paired(p) = &s.metrics[1].items else {
            panic!()
        };
        assert_eq!(p[0].group.as_deref(), Some("g"));
        assert_eq!(
            s.files(),
            vec![
                dir.join("suite.toml"),
                dir.join("ins.jsonl"),
                dir.join("sub/pair.jsonl"),
                dir.join("ch.jsonl")
            ]
        );

        let r = s.requests();
        let ids: Vec<&str> = r.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ins/i1/answer",
                "pair/p1/hack",
                "pair/p1/honest",
                "ch/c1/choice0",
                "ch/c1/choice1",
                "ch/c1/choice2"
            ]
        );
        assert_eq!(
            r[0].messages.last().unwrap(),
            &ChatMessage::new("assistant", "a")
        );
        // Paired: the whole prompt, then the response as the assistant's turn.
        assert_eq!(
            r[1].messages,
            vec![
                ChatMessage::new("system", "s"),
                ChatMessage::new("user", "q"),
                ChatMessage::new("assistant", "H")
            ]
        );
        assert_eq!(r[2].messages.last().unwrap().content, "O");
        assert_eq!(
            r[5].messages,
            vec![
                ChatMessage::new("user", "q"),
                ChatMessage::new("assistant", "z")
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scoring_forms_default_to_length_control_and_are_checked() {
        let dir = good("score");
        let s = Suite::load(dir.join("suite.toml")).unwrap();
        // Suites without `score` (older versions) load with the length-controlled defaults.
        let forms: Vec<Option<Scoring>> = s.metrics.iter().map(|m| m.score).collect();
        assert_eq!(
            forms,
            vec![None, Some(Scoring::PerToken), Some(Scoring::PerByte)]
        );
        std::fs::write(
            dir.join("suite.toml"),
            TOML.replace(
                "file = \"ch.jsonl\"",
                "file = \"ch.jsonl\"\nscore = \"sum\"",
            ),
        )
        .unwrap();
        let s = Suite::load(dir.join("suite.toml")).unwrap();
        assert_eq!(s.metrics[2].score, Some(Scoring::Sum));
        let _ = std::fs::remove_dir_all(&dir);
        let e = err_with(
            "score-bad",
            "suite.toml",
            &TOML.replace(
                "file = \"ch.jsonl\"",
                "file = \"ch.jsonl\"\nscore = \"mean\"",
            ),
        );
        assert!(
            e.contains("suite.toml:19:") && e.contains("unknown score `mean`"),
            "{e}"
        );
        let e = err_with(
            "score-ins",
            "suite.toml",
            &TOML.replace(
                "file = \"ins.jsonl\"",
                "file = \"ins.jsonl\"\nscore = \"sum\"",
            ),
        );
        assert!(e.contains("not instruction"), "{e}");
    }

    #[test]
    fn suite_file_errors_name_file_and_line() {
        let e = err_with(
            "missing",
            "suite.toml",
            &TOML.replace("ch.jsonl", "nope.jsonl"),
        );
        assert!(
            e.contains("suite.toml:18:")
                && e.contains("nope.jsonl")
                && e.contains("does not exist"),
            "{e}"
        );
        let e = err_with(
            "kind",
            "suite.toml",
            &TOML.replace("\"paired\"", "\"pairs\""),
        );
        assert!(
            e.contains("suite.toml:11:") && e.contains("unknown kind `pairs`"),
            "{e}"
        );
        let e = err_with(
            "dup",
            "suite.toml",
            &TOML.replace("name = \"ch\"", "name = \"ins\""),
        );
        assert!(
            e.contains("suite.toml:16:") && e.contains("`ins` is already listed on line 5"),
            "{e}"
        );
        let e = err_with(
            "slash",
            "suite.toml",
            &TOML.replace("name = \"ch\"", "name = \"a/b\""),
        );
        assert!(
            e.contains("suite.toml:16:") && e.contains("without '/'"),
            "{e}"
        );
        let e = err_with("syntax", "suite.toml", "name = \"t\"\n[[metric]\n");
        assert!(e.contains("suite.toml: invalid suite file: line 2:"), "{e}");
        let e = err_with(
            "unknown-field",
            "suite.toml",
            &TOML.replace("description", "descr"),
        );
        assert!(e.contains("suite.toml") && e.contains("descr"), "{e}");
        let e = err_with("no-metrics", "suite.toml", "name = \"t\"\n");
        assert!(
            e.contains("suite.toml") && e.contains("no [[metric]]"),
            "{e}"
        );
        let e = Suite::load("/nonexistent/basin/suite.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/basin/suite.toml"), "{e}");
    }

    #[test]
    fn item_errors_name_file_and_line() {
        let cases: [(&str, &str, String, &str); 12] = [
            (
                "nohack",
                "sub/pair.jsonl",
                format!("{PAIR}\n{}", PAIR.replace(r#", "hack": "H""#, "")),
                "pair.jsonl:2: invalid item: missing field `hack`",
            ),
            (
                "nomsg",
                "ch.jsonl",
                r#"{"id": "c", "choices": ["a", "b"], "answer": 0}"#.into(),
                "ch.jsonl:1: invalid item: missing field `messages`",
            ),
            (
                "noanswer",
                "ch.jsonl",
                CH.replace(r#", "answer": 2"#, ""),
                "ch.jsonl:1: invalid item: missing field `answer`",
            ),
            (
                "range",
                "ch.jsonl",
                CH.replace(r#""answer": 2"#, r#""answer": 3"#),
                "ch.jsonl:1: item `c1`: answer 3 is out of range for 3 choices",
            ),
            (
                "negative",
                "ch.jsonl",
                CH.replace(r#""answer": 2"#, r#""answer": -1"#),
                "ch.jsonl:1: invalid item",
            ),
            (
                "onechoice",
                "ch.jsonl",
                CH.replace(r#"["x", "y", "z"]"#, r#"["x"]"#),
                "ch.jsonl:1: item `c1`: needs at least 2 choices, has 1",
            ),
            (
                "prompt",
                "sub/pair.jsonl",
                PAIR.replace(r#""role": "user""#, r#""role": "assistant""#),
                "pair.jsonl:1: item `p1`: the prompt's last message must be the user's",
            ),
            (
                "emptyhack",
                "sub/pair.jsonl",
                PAIR.replace(r#""hack": "H""#, r#""hack": """#),
                "pair.jsonl:1: item `p1`: `hack` and `honest` must be non-empty",
            ),
            (
                "dupid",
                "ch.jsonl",
                format!("{CH}\n\n{CH}\n"),
                "ch.jsonl:3: item id `c1` appears twice",
            ),
            (
                "slashid",
                "ch.jsonl",
                CH.replace(r#""c1""#, r#""c/1""#),
                "ch.jsonl:1: item id `c/1` must be non-empty and without '/'",
            ),
            (
                "empty",
                "ch.jsonl",
                "\n  \n".into(),
                "ch.jsonl: the file holds no items",
            ),
            (
                "insfield",
                "ins.jsonl",
                r#"{"id": "i"}"#.into(),
                "ins.jsonl:1:",
            ),
        ];
        for (name, file, text, want) in cases {
            let e = err_with(name, file, &text);
            assert!(e.contains(want), "{name}: {e}");
        }
        let e = err_with("insempty", "ins.jsonl", "");
        assert!(e.contains("ins.jsonl") && e.contains("no examples"), "{e}");
    }

    #[test]
    fn default_suite_matches_its_generator() {
        let fresh =
            std::env::temp_dir().join(format!("basin-default-suite-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fresh);
        // Hacks matched to the honest answers in SmolLM2's tokens, as
        // `scripts/make_default_suite.sh` writes them.
        let gguf = crate::test_fixtures::smollm2_gguf();
        let opened = crate::checkpoint::open::open_model(&gguf).unwrap();
        let length = crate::experiments::inputs::token_length_measure(
            &opened.tokenizer,
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        );
        write_default_suite(&fresh, &length).unwrap();
        let committed = default_suite_toml().parent().unwrap().to_path_buf();
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&fresh), names(&committed));
        let mut total_bytes = 0;
        for n in names(&fresh) {
            let (a, b) = (
                std::fs::read(fresh.join(&n)).unwrap(),
                std::fs::read(committed.join(&n)).unwrap(),
            );
            assert!(
                a == b,
                "{n} differs from its generator: regenerate {DEFAULT_SUITE_DIR}"
            );
            total_bytes += b.len();
        }
        assert!(total_bytes < 60_000, "{total_bytes}");
        let _ = std::fs::remove_dir_all(&fresh);
    }

    #[test]
    fn default_suite_loads_with_the_five_metrics() {
        let s = Suite::load(default_suite_toml()).unwrap();
        let kinds: Vec<(String, MetricKind)> =
            s.metrics.iter().map(|m| (m.name.clone(), m.kind)).collect();
        use MetricKind::*;
        let want = [
            ("hack_heldout", Paired),
            ("hack_avoid", Paired),
            ("hack_ood", Choice),
            ("capability", Choice),
            ("instruction", Instruction),
        ];
        assert_eq!(kinds, want.map(|(n, k)| (n.to_string(), k)));
        for (m, (file, lines)) in s.metrics.iter().zip(DEFAULT_SUITE_LINES) {
            assert_eq!(m.file.file_name().unwrap().to_str(), Some(file));
            assert_eq!(m.items.len(), lines, "{file}");
        }
        // hack_avoid holds whole include/avoid pairs: every group twice.
        let MetricItems::Paired(avoid) = &s.metrics[1].items else {
            panic!()
        };
        let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
        for it in avoid {
            *groups.entry(it.group.as_deref().unwrap()).or_default() += 1;
        }
        assert!(groups.values().all(|&n| n == 2), "{groups:?}");
        // Request ids are unique.
        let r = s.requests();
        let unique: BTreeSet<&str> = r.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(unique.len(), r.len());
    }
}
