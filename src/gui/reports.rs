//! Load reports: what a model, adapter or suite file holds, built on a worker thread when the user
//! picks a file, shown in the Models / Data panels (or the error, naming the file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    experiments::suite::{MetricItems, Suite},
};

use super::error_text;

/// Label/value lines plus warnings, for a model or an adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    pub path: PathBuf,
    /// A LoRA adapter (else a full checkpoint).
    pub is_adapter: bool,
    pub lines: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// A PEFT adapter folder holds `adapter_config.json`.
pub fn is_adapter_path(path: &Path) -> bool {
    path.join("adapter_config.json").is_file()
        || path.file_name().is_some_and(|n| n == "adapter_config.json")
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Report of a full checkpoint (HF folder or GGUF).
pub fn model_report(path: &Path) -> Result<ModelReport, String> {
    let m = open_model(path).map_err(|e| error_text(&e))?;
    let c = &m.config;
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    for name in m.tensors.tensor_names() {
        if let Some(d) = m.tensors.tensor_dtype(&name) {
            *dtypes.entry(d).or_default() += 1;
        }
    }
    let dtype = dtypes
        .iter()
        .map(|(d, n)| format!("{d} x{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut warnings = Vec::new();
    if m.tokenizer.chat_template.is_none() {
        warnings.push(
            "no chat template: suites are scored through the checkpoint's chat template".into(),
        );
    }
    let tok_vocab = m.tokenizer.tokenizer.get_vocab_size(true);
    if tok_vocab > c.vocab_size {
        warnings.push(format!(
            "tokenizer has {tok_vocab} tokens, the model's vocabulary {}",
            c.vocab_size
        ));
    }
    let lines = vec![
        ("format".into(), format!("{:?}", m.format)),
        (
            "architecture".into(),
            serde_json::to_value(c.architecture)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        ("parameters".into(), human_count(c.num_parameters())),
        ("dtype".into(), dtype),
        ("layers".into(), c.num_hidden_layers.to_string()),
        ("hidden".into(), c.hidden_size.to_string()),
        (
            "heads".into(),
            format!("{} (kv {})", c.num_attention_heads, c.num_key_value_heads),
        ),
        ("vocab".into(), c.vocab_size.to_string()),
        ("tied embeddings".into(), c.tie_word_embeddings.to_string()),
    ];
    Ok(ModelReport {
        path: path.to_path_buf(),
        is_adapter: false,
        lines,
        warnings,
    })
}

/// Report of a PEFT adapter, checked against the base when one is given.
pub fn adapter_report(path: &Path, base: Option<&Path>) -> Result<ModelReport, String> {
    let a = LoraAdapter::open(path).map_err(|e| error_text(&e))?;
    let mut targets: Vec<String> = a
        .modules
        .keys()
        .filter_map(|k| k.rsplit('.').next().map(str::to_string))
        .collect();
    targets.sort();
    targets.dedup();
    let ranks: Vec<usize> = a.modules.values().map(|m| m.a.shape[0]).collect();
    let (rmin, rmax) = (
        ranks.iter().min().copied().unwrap_or(0),
        ranks.iter().max().copied().unwrap_or(0),
    );
    let mut warnings = Vec::new();
    if let Some(base) = base
        && let Ok(b) = open_model(base)
        && let Err(e) = a.validate_against(b.tensors.as_ref(), &b.config)
    {
        return Err(format!(
            "{} does not fit the base model: {}",
            path.display(),
            error_text(&e)
        ));
    }
    // PEFT records the base it was trained on; say so when it names a different model.
    if let Some(name) = &a.config.base_model_name_or_path
        && let Some(base) = base
        && !name.is_empty()
    {
        let last = |s: &str| {
            s.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".gguf")
                .to_lowercase()
        };
        let base_name = last(&base.display().to_string());
        let trained = last(name);
        if !trained.is_empty() && !base_name.contains(&trained) && !trained.contains(&base_name) {
            warnings.push(format!(
                "trained on `{name}`; applied to {}",
                base.display()
            ));
        }
    }
    let lines = vec![
        ("type".into(), "LoRA adapter (PEFT)".into()),
        (
            "rank".into(),
            if rmin == rmax {
                rmin.to_string()
            } else {
                format!("{rmin}-{rmax}")
            },
        ),
        ("alpha".into(), format!("{}", a.config.lora_alpha)),
        ("rsLoRA".into(), a.config.use_rslora.to_string()),
        ("targets".into(), targets.join(", ")),
        ("adapted layers".into(), a.modules.len().to_string()),
    ];
    Ok(ModelReport {
        path: path.to_path_buf(),
        is_adapter: true,
        lines,
        warnings,
    })
}

/// An endpoint is an adapter folder or a full checkpoint.
pub fn endpoint_report(path: &Path, base: Option<&Path>) -> Result<ModelReport, String> {
    if is_adapter_path(path) {
        adapter_report(path, base)
    } else {
        model_report(path)
    }
}

/// One metric of a suite: name, kind, item count, a few item previews.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub name: String,
    pub kind: String,
    pub n_items: usize,
    pub description: Option<String>,
    pub preview: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub path: PathBuf,
    pub name: String,
    pub metrics: Vec<MetricSummary>,
    /// The loaded suite (item texts for the Items tab).
    pub suite: Arc<Suite>,
}

fn shorten(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}...", one_line.chars().take(n).collect::<String>())
    }
}

/// The last user message of an item's prompt.
pub fn prompt_of(messages: &[crate::text::dataset::ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .or(messages.last())
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

pub fn suite_report(path: &Path) -> Result<SuiteReport, String> {
    let suite = Suite::load(path).map_err(|e| error_text(&e))?;
    let metrics = suite
        .metrics
        .iter()
        .map(|m| {
            let preview = match &m.items {
                MetricItems::Instruction(items) => items
                    .iter()
                    .take(3)
                    .map(|e| shorten(&prompt_of(&e.messages), 90))
                    .collect(),
                MetricItems::Paired(items) => items
                    .iter()
                    .take(3)
                    .map(|e| {
                        format!(
                            "{} -> hack: {} | honest: {}",
                            shorten(&prompt_of(&e.messages), 60),
                            shorten(&e.hack, 30),
                            shorten(&e.honest, 30)
                        )
                    })
                    .collect(),
                MetricItems::Choice(items) => items
                    .iter()
                    .take(3)
                    .map(|e| {
                        format!(
                            "{} ({} choices)",
                            shorten(&prompt_of(&e.messages), 80),
                            e.choices.len()
                        )
                    })
                    .collect(),
                MetricItems::Generated { items, settings } => items
                    .iter()
                    .take(3)
                    .map(|e| {
                        format!(
                            "{} ({} samples, ≤ {} tokens)",
                            shorten(&prompt_of(&e.messages), 70),
                            settings.samples,
                            settings.max_new_tokens
                        )
                    })
                    .collect(),
            };
            MetricSummary {
                name: m.name.clone(),
                kind: m.kind.as_str().to_string(),
                n_items: m.items.len(),
                description: m.description.clone(),
                preview,
            }
        })
        .collect();
    Ok(SuiteReport {
        path: path.to_path_buf(),
        name: suite.name.clone(),
        metrics,
        suite: Arc::new(suite),
    })
}
