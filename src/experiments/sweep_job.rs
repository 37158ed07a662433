//! A whole sweep from file paths: open and check the inputs, fingerprint them into `run.json`,
//! build the path model on the device, then [`run_sweep`]. The CLI (`basin sweep`) and the GUI's
//! Run button both go through [`run_sweep_job`], so a folder written by one opens in the other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    curve::{BendKind, CurveEndpoint, CurveKind, CurveRecord},
    fingerprint::fingerprints,
    generate::Prompt,
    inputs::{chat_template_of, encode_examples},
    path::PathKind,
    suite::{Suite, SuiteError},
    sweep::{GenerationInputs, SweepError, SweepHooks, SweepOutcome, SweepSpec, run_sweep},
    sweep_store::{
        Execution, RunRecord, SWEEP_SCHEMA, StoreError, SweepStore, parse_shard, parse_t_range,
        shard_points,
    },
    train_store::sample_points,
};
use crate::{
    checkpoint::tokenizer::TokenizerBundle,
    checkpoint::{
        error::CheckpointError,
        open::{OpenedModel, open_model},
        peft::LoraAdapter,
    },
    compute::{ComputeDevice, ComputeKind, GpuUnavailable},
    model::{
        error::ModelError, load::PathEndpoints, transformer::CausalLm, weight_dtype::WeightDType,
    },
    text::{
        chat_template::ChatTemplate,
        dataset::ChatExample,
        encode::{encode_prompt, stop_ids},
        error::TextError,
    },
};

/// Everything a sweep needs, as a user gives it (paths and options).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepRequest {
    pub base: PathBuf,
    pub adapter: Option<PathBuf>,
    pub adapter_b: Option<PathBuf>,
    pub target: Option<PathBuf>,
    /// A `basin train` folder: evaluate its checkpoints (coordinate: samples seen; `t` unused).
    #[serde(default)]
    pub checkpoints: Option<PathBuf>,
    /// A `basin curve fit` folder: walk its fitted curve from the base to its endpoint.
    #[serde(default)]
    pub curve: Option<PathBuf>,
    pub suite: PathBuf,
    /// `START:STOP:N`.
    pub t: String,
    pub device: ComputeKind,
    /// What the model's large weights are stored in on the device.
    #[serde(default)]
    pub dtype: WeightDType,
    pub batch: usize,
    pub shard: Option<String>,
    pub bootstrap: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub max_tokens: usize,
    pub t_per_pass: usize,
    /// Resume even when run.json was written on another device or by another Basin version
    /// (each new point then records where it ran).
    pub allow_resume_change: bool,
}

impl SweepRequest {
    /// A request with the CLI's defaults for everything but the inputs.
    pub fn new(base: PathBuf, suite: PathBuf, t: &str, out: PathBuf) -> Self {
        Self {
            base,
            adapter: None,
            adapter_b: None,
            target: None,
            checkpoints: None,
            curve: None,
            suite,
            t: t.to_string(),
            device: ComputeKind::Cpu,
            dtype: WeightDType::F32,
            batch: 8,
            shard: None,
            bootstrap: 1000,
            seed: 0,
            out,
            max_tokens: 8192,
            t_per_pass: 1,
            allow_resume_change: false,
        }
    }

    /// Which path the endpoints describe.
    pub fn path_kind(&self) -> Result<PathKind, SweepJobError> {
        if self.checkpoints.is_some() {
            if self.adapter.is_some() || self.adapter_b.is_some() || self.target.is_some() {
                return Err(SweepJobError::Input(
                    "--checkpoints evaluates a training run's adapters; give no --adapter / --target with it".into(),
                ));
            }
            return Ok(PathKind::Checkpoints);
        }
        if let Some(dir) = &self.curve {
            if self.adapter.is_some() || self.adapter_b.is_some() || self.target.is_some() {
                return Err(SweepJobError::Input(
                    "--curve walks a fitted curve to its own endpoint; give no --adapter / --target with it".into(),
                ));
            }
            return curve_path_kind(dir);
        }
        match (&self.adapter, &self.adapter_b, &self.target) {
            (Some(_), None, None) => Ok(PathKind::Lora),
            (Some(_), Some(_), None) => Ok(PathKind::TwoAdapter),
            (None, None, Some(_)) => Ok(PathKind::FullWeight),
            (None, Some(_), _) => Err(SweepJobError::Input(
                "a second adapter needs a first one (--adapter A --adapter-b B)".into(),
            )),
            _ => Err(SweepJobError::Input(
                "give the path's end: an adapter (optionally a second one), or a target checkpoint, not both".into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepJobError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Suite(#[from] SuiteError),
    #[error("{}: {source}", suite.display())]
    Text {
        suite: PathBuf,
        #[source]
        source: TextError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error(transparent)]
    Gpu(#[from] GpuUnavailable),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the job tells its caller besides progress and results.
pub struct SweepStart {
    pub path: PathKind,
    pub points: usize,
    pub metrics: usize,
    pub sequences_per_point: usize,
    pub device_label: String,
}

/// Full-weight paths need the same architecture, shapes and tokenizer at both ends.
pub fn check_compatible(base: &OpenedModel, target: &OpenedModel) -> Result<(), SweepJobError> {
    let a = serde_json::to_value(&base.config).unwrap_or_default();
    let b = serde_json::to_value(&target.config).unwrap_or_default();
    if a != b {
        let mut diffs = Vec::new();
        if let (Some(x), Some(y)) = (a.as_object(), b.as_object()) {
            for (k, v) in x {
                if y.get(k) != Some(v) {
                    diffs.push(format!(
                        "{k}: {v} vs {}",
                        y.get(k).unwrap_or(&serde_json::Value::Null)
                    ));
                }
            }
        }
        return Err(SweepJobError::Input(format!(
            "{} and {} differ in configuration ({}); a full-weight path needs the same architecture and shapes",
            base.path.display(),
            target.path.display(),
            diffs.join(", ")
        )));
    }
    if base.tokenizer.tokenizer.get_vocab(true) != target.tokenizer.tokenizer.get_vocab(true)
        || base.tokenizer.chat_template != target.tokenizer.chat_template
    {
        return Err(SweepJobError::Input(format!(
            "{} and {} have different tokenizers or chat templates; a full-weight path needs identical ones",
            base.path.display(),
            target.path.display()
        )));
    }
    Ok(())
}

/// A curve request's inputs, as its `curve.json` names them: its LoRA slots in order (a LoRA
/// endpoint, then a LoRA bend) and its dense endpoints in order (a checkpoint endpoint, then a
/// full bend's control point θ_b).
fn curve_inputs(req: &SweepRequest) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SweepJobError> {
    match &req.curve {
        Some(dir) => curve_endpoints(dir),
        None => Ok((Vec::new(), Vec::new())),
    }
}

/// The path kind of a fitted curve folder (`basin curve fit`): its curve, endpoint and bend kinds.
pub fn curve_path_kind(dir: &Path) -> Result<PathKind, SweepJobError> {
    let record = CurveRecord::read(dir).map_err(SweepJobError::Input)?;
    use {BendKind as B, CurveEndpoint as E, CurveKind as K};
    Ok(match (record.kind, record.endpoint_kind, record.bend) {
        (K::Bezier, E::Lora, B::Lora) => PathKind::Bezier,
        (K::Polychain, E::Lora, B::Lora) => PathKind::Polychain,
        (K::Bezier, E::Checkpoint, B::Lora) => PathKind::BezierCheckpoint,
        (K::Polychain, E::Checkpoint, B::Lora) => PathKind::PolychainCheckpoint,
        (K::Bezier, E::Lora, B::Full) => PathKind::BezierFull,
        (K::Polychain, E::Lora, B::Full) => PathKind::PolychainFull,
        (K::Bezier, E::Checkpoint, B::Full) => PathKind::BezierCheckpointFull,
        (K::Polychain, E::Checkpoint, B::Full) => PathKind::PolychainCheckpointFull,
    })
}

/// A fitted curve's LoRA adapters (slots in order) and dense checkpoints (deltas in order), as
/// [`curve_path_kind`]'s path expects them.
pub fn curve_endpoints(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SweepJobError> {
    let record = CurveRecord::read(dir).map_err(SweepJobError::Input)?;
    let bend = CurveRecord::bend_dir(dir);
    let marker = match record.bend {
        BendKind::Lora => "adapter_model.safetensors",
        BendKind::Full => "model.safetensors",
    };
    if !bend.join(marker).exists() {
        return Err(SweepJobError::Input(format!(
            "{}: no fitted bend yet (the fit has not finished; rerun `basin curve fit` to resume it)",
            bend.display()
        )));
    }
    let endpoint = PathBuf::from(record.endpoint);
    Ok(match (record.endpoint_kind, record.bend) {
        (CurveEndpoint::Lora, BendKind::Lora) => (vec![endpoint, bend], Vec::new()),
        (CurveEndpoint::Checkpoint, BendKind::Lora) => (vec![bend], vec![endpoint]),
        (CurveEndpoint::Lora, BendKind::Full) => (vec![endpoint], vec![bend]),
        (CurveEndpoint::Checkpoint, BendKind::Full) => (Vec::new(), vec![endpoint, bend]),
    })
}

/// The `run.json` record of a request: its spec and the fingerprints of every input file.
pub fn run_record(
    req: &SweepRequest,
    suite: &Suite,
    checkpoints: &[(usize, PathBuf)],
) -> Result<RunRecord, SweepJobError> {
    let path_kind = req.path_kind()?;
    let mut inputs = BTreeMap::new();
    for f in suite.files() {
        fingerprints(&f, &mut inputs)?;
    }
    for (_, dir) in checkpoints {
        fingerprints(dir, &mut inputs)?;
    }
    let (curve_adapters, curve_targets) = curve_inputs(req)?;
    for dir in curve_adapters.iter().chain(&curve_targets) {
        fingerprints(dir, &mut inputs)?;
    }
    for p in [
        Some(&req.base),
        req.adapter.as_ref(),
        req.adapter_b.as_ref(),
        req.target.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        fingerprints(p, &mut inputs)?;
    }
    let spec = serde_json::json!({
        "path": path_kind,
        "base": req.base.display().to_string(),
        "adapter": req.adapter.as_ref().map(|p| p.display().to_string()),
        "adapter_b": req.adapter_b.as_ref().map(|p| p.display().to_string()),
        "target": req.target.as_ref().map(|p| p.display().to_string()),
        "curve": req.curve.as_ref().map(|p| p.display().to_string()),
        "suite": req.suite.display().to_string(),
        "t": req.t,
        "coordinate": path_kind.coordinate(),
        "shard": req.shard,
        "bootstrap": req.bootstrap,
        "seed": req.seed,
        "max_tokens": req.max_tokens,
    });
    Ok(RunRecord {
        schema: SWEEP_SCHEMA.to_string(),
        basin_version: env!("CARGO_PKG_VERSION").to_string(),
        spec,
        inputs,
        execution: None,
    })
}

/// Runs a whole sweep: checks and opens the inputs (one clear error naming the file on bad
/// input), resumes from `req.out` when it holds the same spec, and saves each finished point.
/// `on_start` is called once the model is on the device and the work is known.
pub fn run_sweep_job(
    req: &SweepRequest,
    hooks: &SweepHooks,
    on_start: &dyn Fn(&SweepStart),
) -> Result<SweepOutcome, SweepJobError> {
    if req.batch == 0 {
        return Err(SweepJobError::Input("batch size must be at least 1".into()));
    }
    // A training run's checkpoints: the base (0 samples) and each adapter, one LoRA slot each.
    let checkpoints = match &req.checkpoints {
        Some(dir) => {
            let points = sample_points(dir);
            if points.is_empty() {
                return Err(SweepJobError::Input(format!(
                    "{}: no checkpoint or final adapter here (a `basin train` folder; train with --checkpoint-every N)",
                    dir.display()
                )));
            }
            points
        }
        None => Vec::new(),
    };
    let all_points = if req.checkpoints.is_some() {
        std::iter::once(0.0)
            .chain(checkpoints.iter().map(|(s, _)| *s as f64))
            .collect()
    } else {
        parse_t_range(&req.t)?
    };
    let points = match &req.shard {
        Some(s) => {
            let (i, n) = parse_shard(s)?;
            shard_points(&all_points, i, n)
        }
        None => all_points,
    };
    let path_kind = req.path_kind()?;
    // Cancel (the app's, a second Ctrl-C) also reaches loading: checked between the inputs and
    // before each layer is put on the device, so a cancelled job never finishes building a model.
    let total = points.len();
    let cancelled = || -> Result<(), SweepJobError> {
        if hooks.abort.is_cancelled() {
            Err(SweepError::Cancelled { done: 0, total }.into())
        } else {
            Ok(())
        }
    };
    let suite = Suite::load(&req.suite)?;
    let mut compute = ComputeDevice::new(req.device)?;
    req.dtype.check_device(&compute.device)?;
    compute.label = req.dtype.device_label(&compute.label);
    cancelled()?;
    let base = open_model(&req.base)?;
    let mut adapters = Vec::new();
    // A curve: its LoRA endpoint and LoRA bend in slots 0 and 1, a checkpoint endpoint and a
    // full bend's θ_b as dense deltas 0 and 1 (see `curve_inputs`).
    let (curve_adapters, curve_targets) = curve_inputs(req)?;
    let adapter_paths = [&req.adapter, &req.adapter_b]
        .into_iter()
        .flatten()
        .chain(checkpoints.iter().map(|(_, p)| p))
        .chain(curve_adapters.iter());
    for p in adapter_paths {
        cancelled()?;
        let a = LoraAdapter::open_for(p, base.tensors.as_ref(), &base.config)?;
        adapters.push(a);
    }
    let mut targets = Vec::new();
    for p in req.target.iter().chain(&curve_targets) {
        cancelled()?;
        let t = open_model(p)?;
        check_compatible(&base, &t)?;
        // Only the target's weights are needed from here on.
        targets.push(t.tensors);
    }
    let mut record = run_record(req, &suite, &checkpoints)?;
    record.execution = Some(Execution {
        device: compute.label.clone(),
        batch: req.batch,
        t_per_pass: req.t_per_pass,
    });
    let mut store =
        SweepStore::open_or_create_allowing(&req.out, &record, req.allow_resume_change)?;

    let template = chat_template_of(&base.tokenizer).map_err(|source| SweepJobError::Text {
        suite: req.suite.clone(),
        source,
    })?;
    let items = encode_examples(
        &base.tokenizer,
        &template,
        &suite.requests(),
        req.max_tokens,
    )
    .map_err(|source| SweepJobError::Text {
        suite: req.suite.clone(),
        source,
    })?;
    let generation = generation_inputs(&base.tokenizer, &template, &suite, req.max_tokens)
        .map_err(|source| SweepJobError::Text {
            suite: req.suite.clone(),
            source,
        })?;
    // The items are encoded: the tokenizer's tables go before the weights come in, so they do
    // not add to the peak of loading two models (a suite with generated metrics keeps a copy).
    let OpenedModel {
        config: base_config,
        tensors: base_tensors,
        tokenizer,
        ..
    } = base;
    drop(tokenizer);
    crate::compute::release_free_host_memory();
    let endpoints = PathEndpoints {
        adapters: adapters.iter().collect(),
        checkpoints: targets.iter().map(|t| t.as_ref()).collect(),
    };
    cancelled()?;
    let model = CausalLm::load_path_until(
        &base_config,
        base_tensors.as_ref(),
        &endpoints,
        &compute.device,
        req.dtype,
        &|| hooks.abort.is_cancelled(),
    )
    .map_err(|e| match e {
        ModelError::Cancelled => SweepJobError::Sweep(SweepError::Cancelled { done: 0, total }),
        e => e.into(),
    })?;
    // The weights now live on the device: unmap the files, so their pages stop counting
    // towards the sweep's memory.
    drop(endpoints);
    drop(targets);
    drop(base_tensors);
    crate::compute::release_free_host_memory();

    on_start(&SweepStart {
        path: path_kind,
        points: points.len(),
        metrics: suite.metrics.len(),
        sequences_per_point: items.len(),
        device_label: compute.label.clone(),
    });
    let spec = SweepSpec {
        path: path_kind,
        t_values: points,
        batch_size: req.batch,
        bootstrap_samples: req.bootstrap,
        bootstrap_seed: req.seed,
        t_per_pass: req.t_per_pass,
        checkpoint_samples: checkpoints.iter().map(|(s, _)| *s as f64).collect(),
    };
    Ok(run_sweep(
        &model,
        &suite,
        &items,
        generation.as_ref(),
        &spec,
        &mut store,
        hooks,
    )?)
}

/// The prompts, stop tokens and tokenizer a suite's generated metrics need (`None` when it has
/// none).
pub fn generation_inputs(
    tokenizer: &TokenizerBundle,
    template: &ChatTemplate,
    suite: &Suite,
    max_tokens: usize,
) -> Result<Option<GenerationInputs>, TextError> {
    let generated = suite.generated();
    if generated.is_empty() {
        return Ok(None);
    }
    let mut prompts = Vec::with_capacity(generated.len());
    for (index, items, _) in generated {
        let encoded = items
            .iter()
            .map(|it| {
                let chat = ChatExample {
                    id: it.id.clone(),
                    messages: it.messages.clone(),
                };
                Ok(Prompt {
                    id: it.id.clone(),
                    ids: encode_prompt(tokenizer, template, &chat, max_tokens)?,
                })
            })
            .collect::<Result<Vec<_>, TextError>>()?;
        prompts.push((index, encoded));
    }
    Ok(Some(GenerationInputs {
        prompts,
        stop_ids: stop_ids(tokenizer, template),
        tokenizer: tokenizer.tokenizer.clone(),
    }))
}
