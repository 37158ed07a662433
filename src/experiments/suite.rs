//! Metric suites: a `suite.toml` naming metrics, each a kind and a JSONL file (paths relative to
//! the suite file). Loading validates everything up front, so a sweep never fails halfway on a
//! malformed item. Every item becomes one or more chat examples to score ([`Suite::requests`]).
//!
//! Kinds and their JSONL lines:
//! - `instruction`: chat examples (`{"id", "messages": [...]}`, last message the assistant's);
//! - `paired`: `{"id", "group"?, "messages": [...prompt, last the user's], "hack", "honest"}`;
//! - `choice`: `{"id", "group"?, "messages": [...], "choices": ["..", ..], "answer": k}`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, de::DeserializeOwned};

use crate::text::dataset::{ChatExample, ChatMessage, load_chat_jsonl};
use crate::text::error::TextError;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Instruction,
    Paired,
    Choice,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Instruction => "instruction",
            MetricKind::Paired => "paired",
            MetricKind::Choice => "choice",
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricToml {
    name: String,
    kind: String,
    file: String,
    #[serde(default)]
    description: Option<String>,
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

#[derive(Debug, Clone, PartialEq)]
pub enum MetricItems {
    Instruction(Vec<ChatExample>),
    Paired(Vec<PairedItem>),
    Choice(Vec<ChoiceItem>),
}

impl MetricItems {
    pub fn len(&self) -> usize {
        match self {
            MetricItems::Instruction(v) => v.len(),
            MetricItems::Paired(v) => v.len(),
            MetricItems::Choice(v) => v.len(),
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
    pub fn load(path: impl AsRef<Path>) -> Result<Suite, SuiteError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let parsed: SuiteToml = toml::from_str(&text).map_err(|e| {
            // One line: toml's Display draws the offending line; keep its message and position.
            let line = e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            SuiteError::Toml {
                path: path.to_path_buf(),
                msg: format!("line {line}: {}", e.message().trim()),
            }
        })?;
        let invalid = |msg: String| SuiteError::Invalid {
            path: path.to_path_buf(),
            msg,
        };
        if parsed.metric.is_empty() {
            return Err(invalid("the suite lists no [[metric]]".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut names = BTreeSet::new();
        let mut metrics = Vec::with_capacity(parsed.metric.len());
        for m in parsed.metric {
            if m.name.is_empty() || m.name.contains('/') {
                return Err(invalid(format!(
                    "metric name `{}` must be non-empty and without '/'",
                    m.name
                )));
            }
            if !names.insert(m.name.clone()) {
                return Err(invalid(format!("metric `{}` is listed twice", m.name)));
            }
            let kind = match m.kind.as_str() {
                "instruction" => MetricKind::Instruction,
                "paired" => MetricKind::Paired,
                "choice" => MetricKind::Choice,
                other => {
                    return Err(invalid(format!(
                        "metric `{}` has unknown kind `{other}` (kinds: instruction, paired, choice)",
                        m.name
                    )));
                }
            };
            let file = dir.join(&m.file);
            if !file.is_file() {
                return Err(invalid(format!(
                    "metric `{}` names file `{}`, which does not exist",
                    m.name,
                    file.display()
                )));
            }
            let items = match kind {
                MetricKind::Instruction => MetricItems::Instruction(load_chat_jsonl(&file)?),
                MetricKind::Paired => MetricItems::Paired(load_items(&file, check_paired)?),
                MetricKind::Choice => MetricItems::Choice(load_items(&file, check_choice)?),
            };
            metrics.push(Metric {
                name: m.name,
                kind,
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

    /// Every file the suite reads (the suite file first), for hashing into a run record.
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.path.clone())
            .chain(self.metrics.iter().map(|m| m.file.clone()))
            .collect()
    }
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

/// Reads a JSONL file of items, naming file and line in every error; blank lines are skipped.
fn load_items<T: DeserializeOwned + HasId>(
    path: &Path,
    check: fn(&T) -> Result<(), String>,
) -> Result<Vec<T>, SuiteError> {
    let file = std::fs::File::open(path).map_err(|source| SuiteError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i + 1;
        let item_err = |msg: String| SuiteError::Item {
            path: path.to_path_buf(),
            line: line_no,
            msg,
        };
        let text = line.map_err(|e| item_err(e.to_string()))?;
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        let item: T =
            serde_json::from_str(text).map_err(|e| item_err(format!("invalid item: {e}")))?;
        check(&item).map_err(|msg| item_err(format!("item `{}`: {msg}", item.id())))?;
        if item.id().is_empty() || item.id().contains('/') {
            return Err(item_err(format!(
                "item id `{}` must be non-empty and without '/'",
                item.id()
            )));
        }
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
