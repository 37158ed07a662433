//! Influence rankings from file paths (`basin influence`): open the base, the adapter (or a
//! training run's checkpoints with their learning rates), the training chats and the query,
//! build the model on the autodiff device, score every training sample
//! ([`super::influence::influence_scores`]) and write `run.json`, `scores.jsonl` (one line per
//! training sample, ranked) and `summary.json` (the query, the sign convention, top and bottom
//! samples).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    eval::EvalItem,
    fingerprint::fingerprints,
    grad_sketch::{GradCache, cache_key, default_cache_dir},
    influence::{
        Damping, InfluenceError, InfluenceMethod, InfluencePoint, Normalize, QueryRow, SampleScore,
        ScoreSpec, form_weight, influence_scores, instruction_query,
    },
    inputs::{chat_template_of, encode_examples},
    job::{CancelFlag, Progress},
    suite::{MetricItems, Scoring, Suite},
    sweep_job::SweepJobError,
    sweep_store::{RunRecord, json_line, open_run_record, write_atomic},
    train_store::{StoreLayout, read_steps, sample_points},
};
use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    model::{load::PathEndpoints, trainable::LoraFactors, transformer::CausalLm},
    text::dataset::{ChatExample, ChatMessage, load_chat_jsonl},
};

pub const INFLUENCE_SCHEMA: &str = "basin.influence.v1";

/// What to rank the training samples by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Query {
    /// Instruction chats (JSONL): f = their token-weighted mean NLL.
    Data(PathBuf),
    /// A metric of a suite: `SUITE.toml:METRIC` (instruction: mean NLL; paired: mean margin
    /// s(hack) − s(honest); choice: mean s(keyed option), s under the metric's scoring form).
    Metric { suite: PathBuf, metric: String },
}

impl Query {
    /// `SUITE.toml:METRIC`.
    pub fn parse_metric(s: &str) -> Result<Self, String> {
        let (suite, metric) = s.rsplit_once(':').ok_or_else(|| {
            format!("--query `{s}`: expected SUITE.toml:METRIC, e.g. suite.toml:instruction")
        })?;
        Ok(Self::Metric {
            suite: PathBuf::from(suite),
            metric: metric.to_string(),
        })
    }
}

/// Everything an influence ranking needs, as a user gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfluenceRequest {
    pub base: PathBuf,
    /// One adapter (with `data`): `gradsim` at it.
    pub adapter: Option<PathBuf>,
    /// The training chats (with `adapter`; a training run names its own).
    pub data: Option<PathBuf>,
    /// A `basin train` folder: its checkpoints (TracIn) or its last adapter (gradsim).
    pub train_run: Option<PathBuf>,
    pub query: Query,
    pub method: InfluenceMethod,
    pub normalize: Normalize,
    /// DataInf's damping per layer.
    pub damping: Damping,
    pub device: ComputeKind,
    pub batch: usize,
    pub max_tokens: usize,
    /// Samples listed in `summary.json` at each end of the ranking.
    pub top: usize,
    pub out: PathBuf,
    /// `--proj-dim`: sketch gradients to about this many entries (memory ∝ samples × dim);
    /// sketched training gradients are cached for later queries.
    #[serde(default)]
    pub proj_dim: Option<usize>,
    #[serde(default)]
    pub proj_seed: u64,
    /// Where sketched gradients are cached (default `$BASIN_CACHE/influence-grads`).
    #[serde(default)]
    pub grad_cache: Option<PathBuf>,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfluenceSummary {
    pub schema: String,
    pub method: InfluenceMethod,
    pub normalize: Normalize,
    pub query: String,
    pub sign: String,
    /// The query function's value at each point.
    pub query_value: Vec<f64>,
    /// DataInf: the damping λ of each LoRA layer, in module order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damping: Vec<f64>,
    /// `--proj-dim`, when the gradients were sketched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proj_dim: Option<usize>,
    /// Points whose training gradients were read from the cache instead of computed.
    #[serde(default)]
    pub cached_points: usize,
    pub points: Vec<String>,
    pub samples: usize,
    pub top: Vec<SampleScore>,
    pub bottom: Vec<SampleScore>,
    /// Per task family and sign (include / avoid), when the training chats come from
    /// `basin data generate` (its `items.jsonl` beside them names each chat's family and sign).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupInfluence>,
}

/// The total and mean score of the training chats of one task family and sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfluence {
    pub family: String,
    pub sign: String,
    pub n: usize,
    pub total: f64,
    pub mean: f64,
}

/// `id → (family, sign)` from the generator's `items.jsonl` next to `data`, if there is one.
pub fn generator_fields(data: &Path) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let Some(items) = data.parent().map(|d| d.join("items.jsonl")) else {
        return out;
    };
    let Ok(text) = crate::bounded::read_to_string(&items, crate::bounded::DATA_BYTES) else {
        return out;
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        if let (Some(id), Some(family), Some(sign)) = (field("id"), field("family"), field("sign"))
        {
            out.insert(id, (family, sign));
        }
    }
    out
}

/// Totals and means of the scores per (family, sign) of the chats the generator describes.
pub fn group_scores(
    scores: &[SampleScore],
    fields: &BTreeMap<String, (String, String)>,
) -> Vec<GroupInfluence> {
    let mut groups: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for s in scores {
        if let Some((family, sign)) = fields.get(&s.id) {
            let g = groups
                .entry((family.clone(), sign.clone()))
                .or_insert((0, 0.0));
            g.0 += 1;
            g.1 += s.score;
        }
    }
    groups
        .into_iter()
        .map(|((family, sign), (n, total))| GroupInfluence {
            family,
            sign,
            n,
            total,
            mean: total / n as f64,
        })
        .collect()
}

pub const SIGN_CONVENTION: &str = "positive = one gradient step on the sample pushes the query \
function up (for an NLL query: makes the query chats less likely)";

/// An adapter to score at: its label, folder and learning rate.
type PointPath = (String, PathBuf, f64);

/// The adapters to score at, each with its learning rate, and the training data.
fn points_of(req: &InfluenceRequest) -> Result<(Vec<PointPath>, PathBuf), String> {
    match (&req.adapter, &req.train_run) {
        (Some(a), None) => {
            if req.method == InfluenceMethod::Tracin {
                return Err(
                    "--method tracin sums over a run's checkpoints: give --train-run DIR".into(),
                );
            }
            let data = req.data.clone().ok_or(
                "--adapter needs --data TRAIN.jsonl (the chats the adapter was trained on)",
            )?;
            Ok((vec![(a.display().to_string(), a.clone(), 1.0)], data))
        }
        (None, Some(dir)) => {
            let run_path = dir.join("run.json");
            let text = crate::bounded::read_to_string(&run_path, crate::bounded::CONFIG_BYTES)
                .map_err(|e| format!("{}: {e} (a `basin train` folder)", run_path.display()))?;
            let record: RunRecord = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a run record: {e}", run_path.display()))?;
            let data = match &req.data {
                Some(d) => d.clone(),
                None => record
                    .spec
                    .get("data")
                    .and_then(|v| v.as_str())
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{}: names no training data", run_path.display()))?,
            };
            let mut points = sample_points(dir);
            if points.is_empty() {
                return Err(format!(
                    "{}: no checkpoint or final adapter (train with --checkpoint-every N)",
                    dir.display()
                ));
            }
            if req.method != InfluenceMethod::Tracin {
                points = points.split_off(points.len() - 1);
            }
            let steps =
                read_steps(&dir.join(StoreLayout::of_dir(dir).log)).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for (samples, path) in points {
                let lr = if req.method != InfluenceMethod::Tracin {
                    1.0
                } else {
                    // The step that brought the run to this many samples.
                    steps
                        .iter()
                        .find(|s| s.samples_seen >= samples)
                        .map(|s| s.lr)
                        .ok_or_else(|| {
                            format!(
                                "{}: no step reaches {samples} samples in the log",
                                dir.display()
                            )
                        })?
                };
                out.push((format!("samples-{samples}"), path, lr));
            }
            Ok((out, data))
        }
        (Some(_), Some(_)) => Err("give --adapter or --train-run, not both".into()),
        (None, None) => Err(
            "give the trained adapter: --adapter A --data TRAIN.jsonl, or --train-run DIR".into(),
        ),
    }
}

fn factors_of(adapter: &LoraAdapter) -> Result<Vec<LoraFactors>, SweepJobError> {
    let mut out = Vec::with_capacity(adapter.modules.len());
    for (name, m) in &adapter.modules {
        out.push(LoraFactors::from_peft(
            name,
            &m.a.data,
            &m.b.data,
            m.a.shape[0],
            m.a.shape[1],
            m.b.shape[0],
            m.scale as f32,
        )?);
    }
    Ok(out)
}

/// Runs a whole ranking and writes its folder; returns the summary.
pub fn run_influence_job(
    req: &InfluenceRequest,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &CancelFlag,
) -> Result<InfluenceSummary, SweepJobError> {
    let input = SweepJobError::Input;
    if req.batch == 0 {
        return Err(input("batch size must be at least 1".into()));
    }
    let (point_paths, data) = points_of(req).map_err(input)?;
    let compute = ComputeDevice::new(req.device)?;
    let base = open_model(&req.base)?;
    let template = chat_template_of(&base.tokenizer).map_err(|source| SweepJobError::Text {
        suite: data.clone(),
        source,
    })?;
    let encode = |path: &Path, examples| -> Result<Vec<EvalItem>, SweepJobError> {
        encode_examples(&base.tokenizer, &template, examples, req.max_tokens).map_err(|source| {
            SweepJobError::Text {
                suite: path.to_path_buf(),
                source,
            }
        })
    };
    let train_chats = load_chat_jsonl(&data).map_err(|source| SweepJobError::Text {
        suite: data.clone(),
        source,
    })?;
    let train = encode(&data, &train_chats)?;
    let (query_label, query_rows, query_files) = match &req.query {
        Query::Data(path) => {
            let chats = load_chat_jsonl(path).map_err(|source| SweepJobError::Text {
                suite: path.clone(),
                source,
            })?;
            (
                path.display().to_string(),
                instruction_query(encode(path, &chats)?),
                vec![path.clone()],
            )
        }
        Query::Metric { suite, metric } => {
            let s = Suite::load(suite)?;
            let m = s
                .metrics
                .iter()
                .find(|m| &m.name == metric)
                .ok_or_else(|| {
                    input(format!(
                        "{}: no metric `{metric}` (it has {})",
                        suite.display(),
                        s.metric_names().join(", ")
                    ))
                })?;
            let form = m
                .score
                .or(Scoring::default_for(m.kind))
                .unwrap_or(Scoring::PerToken);
            let with = |messages: &[ChatMessage], answer: &str| {
                let mut all = messages.to_vec();
                all.push(ChatMessage::new("assistant", answer));
                all
            };
            // (chat, response text, sign): f = mean over items of Σ sign · s(response).
            let mut parts: Vec<(ChatExample, String, f64)> = Vec::new();
            let n_items = match &m.items {
                MetricItems::Generated { .. } => {
                    return Err(input(format!(
                        "{}: metric `{metric}` is generated (sampled answers, no gradient); query a paired, choice or instruction metric",
                        suite.display()
                    )));
                }
                MetricItems::Instruction(_) => 0,
                MetricItems::Paired(items) => {
                    for it in items {
                        parts.push((
                            ChatExample {
                                id: format!("{}/hack", it.id),
                                messages: with(&it.messages, &it.hack),
                            },
                            it.hack.clone(),
                            1.0,
                        ));
                        parts.push((
                            ChatExample {
                                id: format!("{}/honest", it.id),
                                messages: with(&it.messages, &it.honest),
                            },
                            it.honest.clone(),
                            -1.0,
                        ));
                    }
                    items.len()
                }
                MetricItems::Choice(items) => {
                    for it in items {
                        let answer = it.choices.get(it.answer).cloned().unwrap_or_default();
                        parts.push((
                            ChatExample {
                                id: format!("{}/answer", it.id),
                                messages: with(&it.messages, &answer),
                            },
                            answer,
                            1.0,
                        ));
                    }
                    items.len()
                }
            };
            let rows = if let MetricItems::Instruction(chats) = &m.items {
                instruction_query(encode(&m.file, chats)?)
            } else {
                let chats: Vec<ChatExample> = parts.iter().map(|p| p.0.clone()).collect();
                let items = encode(&m.file, &chats)?;
                items
                    .into_iter()
                    .zip(&parts)
                    .map(|(item, (_, text, sign))| {
                        let weight = sign * form_weight(form, &item, text) / n_items.max(1) as f64;
                        QueryRow { item, weight }
                    })
                    .collect()
            };
            (
                format!("{}:{metric} ({})", suite.display(), form.as_str()),
                rows,
                s.files(),
            )
        }
    };
    if req.proj_dim == Some(0) {
        return Err(input("--proj-dim must be at least 1".into()));
    }
    let mut points = Vec::new();
    let mut inputs = BTreeMap::new();
    // The training side's identity by content: the base and the data (a moved folder still hits
    // the cache; a changed file misses it).
    let mut train_side = BTreeMap::new();
    for f in [&data, &req.base] {
        fingerprints(f, &mut train_side)?;
    }
    for (label, path, lr) in &point_paths {
        let adapter = LoraAdapter::open_for(path, base.tensors.as_ref(), &base.config)?;
        let mut own = BTreeMap::new();
        fingerprints(path, &mut own)?;
        let cache_key = req.proj_dim.map(|dim| {
            let mut parts: Vec<String> = train_side.values().chain(own.values()).cloned().collect();
            parts.push(format!(
                "max_tokens={} dim={dim} seed={}",
                req.max_tokens, req.proj_seed
            ));
            parts.push(format!("basin {}", env!("CARGO_PKG_VERSION")));
            cache_key(&parts)
        });
        points.push(InfluencePoint {
            label: label.clone(),
            factors: factors_of(&adapter)?,
            lr: *lr,
            cache_key,
        });
        inputs.extend(own);
    }
    inputs.extend(train_side);
    for f in &query_files {
        fingerprints(f, &mut inputs)?;
    }
    let record = RunRecord {
        schema: INFLUENCE_SCHEMA.into(),
        basin_version: env!("CARGO_PKG_VERSION").into(),
        spec: serde_json::json!({
            "base": req.base.display().to_string(),
            "adapter": req.adapter.as_ref().map(|p| p.display().to_string()),
            "train_run": req.train_run.as_ref().map(|p| p.display().to_string()),
            "data": data.display().to_string(),
            "query": query_label,
            "method": req.method,
            "normalize": req.normalize,
            "damping": req.damping,
            "max_tokens": req.max_tokens,
            "proj_dim": req.proj_dim,
            "proj_seed": req.proj_seed,
            "points": point_paths.iter().map(|(l, _, lr)| serde_json::json!({"label": l, "lr": lr})).collect::<Vec<_>>(),
        }),
        inputs,
        execution: None,
    };
    open_run_record(&req.out, &record)?;
    let device = compute.device.clone().autodiff();
    let mut model = CausalLm::load_path_until(
        &base.config,
        base.tensors.as_ref(),
        &PathEndpoints::default(),
        &device,
        crate::model::weight_dtype::WeightDType::F32,
        &|| cancel.is_cancelled(),
    )?;
    drop(base);
    crate::compute::release_free_host_memory();
    let spec = ScoreSpec {
        method: req.method,
        normalize: req.normalize,
        damping: req.damping,
        batch: req.batch,
        sketch_dim: req.proj_dim,
        sketch_seed: req.proj_seed,
        cache: req
            .grad_cache
            .clone()
            .or_else(default_cache_dir)
            .map(|dir| GradCache { dir }),
    };
    let result = influence_scores(
        &mut model,
        &points,
        &train,
        &query_rows,
        &spec,
        progress,
        cancel,
    )
    .map_err(|e| match e {
        InfluenceError::Train(t) => input(t.to_string()),
        other => input(other.to_string()),
    })?;
    let query_value = result.query_values;
    let mut ranked = result.scores;
    ranked.sort_by_key(|s| s.rank);
    let path = req.out.join("scores.jsonl");
    let mut text = String::new();
    for s in &ranked {
        text.push_str(&json_line(&path, s)?);
    }
    write_atomic(&path, text.as_bytes())?;
    let k = req.top.min(ranked.len());
    let summary = InfluenceSummary {
        schema: INFLUENCE_SCHEMA.into(),
        method: req.method,
        normalize: req.normalize,
        query: query_label,
        sign: SIGN_CONVENTION.into(),
        query_value,
        damping: result.lambdas,
        proj_dim: req.proj_dim,
        cached_points: result.cached_points,
        points: point_paths.iter().map(|(l, _, _)| l.clone()).collect(),
        samples: ranked.len(),
        top: ranked[..k].to_vec(),
        bottom: ranked[ranked.len() - k..].iter().rev().cloned().collect(),
        groups: group_scores(&ranked, &generator_fields(&data)),
    };
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| input(format!("summary.json: {e}")))?;
    write_atomic(&req.out.join("summary.json"), &json)?;
    Ok(summary)
}
