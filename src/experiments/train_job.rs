//! A whole training run from file paths: open and check the inputs, fingerprint them into
//! `run.json`, build the model on the autodiff device, pick up the latest saved state, then
//! [`run_training`]. The CLI (`basin train`) goes through [`run_train_job`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    control_point,
    curve::{BendKind, CurveEndpoint},
    eval::EvalItem,
    fingerprint::fingerprints,
    inputs::{chat_template_of, encode_examples},
    optim::AdamWState,
    optim::Schedule,
    sweep_job::check_compatible,
    sweep_store::{RunRecord, StoreError},
    train::{
        TrainError, TrainHooks, TrainLength, TrainOutcome, TrainSpec, new_lora_factors,
        run_training, zero_moments,
    },
    train_store::{StoreLayout, TRAIN_SCHEMA, TrainState, TrainStore},
};
use crate::{
    checkpoint::{error::CheckpointError, open::open_model, peft::LoraAdapter, peft_writer},
    compute::{ComputeDevice, ComputeKind, GpuUnavailable},
    model::{
        error::ModelError,
        load::PathEndpoints,
        trainable::{DenseFactor, LoraFactors},
        transformer::CausalLm,
    },
    text::{dataset::load_chat_jsonl, error::TextError},
};

/// How the trained adapter starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AdapterInit {
    /// Continue training an existing PEFT adapter (every A and B trainable).
    Existing(PathBuf),
    /// A new adapter initialised as PEFT does.
    New {
        rank: usize,
        alpha: f64,
        targets: Vec<String>,
        rslora: bool,
    },
}

/// Everything a training run needs, as a user gives it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainRequest {
    pub base: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    pub init: AdapterInit,
    /// A curve fit's endpoint: a LoRA adapter of `base`, frozen in slot 0 at coefficient t
    /// (`spec.curve` says the rest; the adapter trained is the bend).
    pub endpoint: Option<PathBuf>,
    pub spec: TrainSpec,
    pub max_seq_len: usize,
    /// Cut examples longer than `max_seq_len` instead of refusing them.
    pub truncate: bool,
    pub device: ComputeKind,
}

impl TrainRequest {
    /// A request with the CLI's defaults for everything but the inputs.
    pub fn new(base: PathBuf, data: PathBuf, out: PathBuf) -> Self {
        Self {
            base,
            data,
            out,
            endpoint: None,
            init: AdapterInit::New {
                rank: 8,
                alpha: 16.0,
                targets: vec!["q_proj".into(), "v_proj".into()],
                rslora: false,
            },
            spec: TrainSpec {
                lr: 2e-4,
                schedule: Schedule::Linear,
                warmup_steps: 0,
                weight_decay: 0.0,
                length: TrainLength::Epochs(1),
                batch: 8,
                grad_accum: 1,
                max_grad_norm: Some(1.0),
                seed: 0,
                shuffle: true,
                checkpoint_every: None,
                lora_dropout: 0.0,
                curve: None,
            },
            max_seq_len: 2048,
            truncate: false,
            device: ComputeKind::Cpu,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainJobError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: {source}", data.display())]
    Text {
        data: PathBuf,
        #[source]
        source: TextError,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Gpu(#[from] GpuUnavailable),
}

/// What the job tells its caller once the model is ready.
pub struct TrainStart {
    pub examples: usize,
    pub trainable_parameters: usize,
    pub modules: usize,
    pub total_steps: usize,
    /// Steps already done by an earlier run of this folder.
    pub resumed_at: usize,
    pub device_label: String,
}

/// Trains as `req` says, resuming from the latest state saved in `req.out`.
pub fn run_train_job(
    req: &TrainRequest,
    hooks: &TrainHooks,
    on_start: &dyn Fn(&TrainStart),
) -> Result<TrainOutcome, TrainJobError> {
    let spec = &req.spec;
    if req.max_seq_len < 2 {
        return Err(TrainJobError::Input(
            "--max-seq-len must be at least 2".into(),
        ));
    }
    if !(0.0..1.0).contains(&spec.lora_dropout) {
        return Err(TrainJobError::Input(format!(
            "--lora-dropout {} must be in [0, 1)",
            spec.lora_dropout
        )));
    }
    if let Some(g) = spec.max_grad_norm
        && !(g.is_finite() && g > 0.0)
    {
        return Err(TrainJobError::Input(format!(
            "--max-grad-norm {g} must be > 0"
        )));
    }
    if !(spec.weight_decay.is_finite() && spec.weight_decay >= 0.0) {
        return Err(TrainJobError::Input(format!(
            "--weight-decay {} must be ≥ 0",
            spec.weight_decay
        )));
    }
    match spec.length {
        TrainLength::Epochs(0) | TrainLength::Steps(0) => {
            return Err(TrainJobError::Input(
                "--epochs / --steps must be at least 1".into(),
            ));
        }
        _ => {}
    }
    if spec.batch == 0 || spec.grad_accum == 0 {
        return Err(TrainJobError::Input(
            "--batch and --grad-accum must be at least 1".into(),
        ));
    }
    if spec.curve.is_some() != req.endpoint.is_some() {
        return Err(TrainJobError::Input(
            "a curve fit needs both its endpoint adapter and its curve settings".into(),
        ));
    }
    let full_bend = spec.curve.is_some_and(|c| c.bend == BendKind::Full);
    if full_bend {
        control_point::check_base(&req.base).map_err(TrainJobError::Input)?;
        if matches!(req.init, AdapterInit::Existing(_)) {
            return Err(TrainJobError::Input(
                "a full bend starts at zero; it cannot continue a LoRA adapter".into(),
            ));
        }
    }
    let compute = ComputeDevice::new(req.device)?;
    let base = open_model(&req.base)?;
    let endpoint_kind = spec.curve.map(|c| c.endpoint);
    let (endpoint, endpoint_model) = match (&req.endpoint, endpoint_kind) {
        (Some(p), Some(CurveEndpoint::Lora)) => (
            Some(LoraAdapter::open_for(
                p,
                base.tensors.as_ref(),
                &base.config,
            )?),
            None,
        ),
        (Some(p), Some(CurveEndpoint::Checkpoint)) => {
            let t = open_model(p)?;
            check_compatible(&base, &t).map_err(|e| TrainJobError::Input(e.to_string()))?;
            // Only its weights are needed: θ₁ − θ₀ becomes the path's dense delta.
            (None, Some(t.tensors))
        }
        _ => (None, None),
    };
    let existing = match &req.init {
        AdapterInit::Existing(p) => {
            let a = LoraAdapter::open_for(p, base.tensors.as_ref(), &base.config)?;
            Some(a)
        }
        AdapterInit::New { .. } => None,
    };
    let text_err = |source| TrainJobError::Text {
        data: req.data.clone(),
        source,
    };
    let examples = load_chat_jsonl(&req.data).map_err(text_err)?;
    let template = chat_template_of(&base.tokenizer).map_err(text_err)?;
    let limit = if req.truncate {
        usize::MAX
    } else {
        req.max_seq_len
    };
    let mut items =
        encode_examples(&base.tokenizer, &template, &examples, limit).map_err(text_err)?;
    if req.truncate {
        truncate_items(&mut items, req.max_seq_len, &req.data)?;
    }

    let mut inputs = BTreeMap::new();
    for p in [&req.base, &req.data] {
        fingerprints(p, &mut inputs)?;
    }
    if let AdapterInit::Existing(p) = &req.init {
        fingerprints(p, &mut inputs)?;
    }
    if let Some(p) = &req.endpoint {
        fingerprints(p, &mut inputs)?;
    }
    let record = RunRecord {
        schema: TRAIN_SCHEMA.to_string(),
        basin_version: env!("CARGO_PKG_VERSION").to_string(),
        spec: serde_json::json!({
            "base": req.base.display().to_string(),
            "data": req.data.display().to_string(),
            "init": req.init,
            "endpoint": req.endpoint.as_ref().map(|p| p.display().to_string()),
            "train": spec,
            "max_seq_len": req.max_seq_len,
            "truncate": req.truncate,
        }),
        inputs,
        execution: None,
    };
    let adapter_config = match &req.init {
        AdapterInit::Existing(p) => {
            let path = p.join("adapter_config.json");
            let text = crate::bounded::read_to_string(&path, crate::bounded::CONFIG_BYTES)
                .map_err(|e| CheckpointError::io(&path, e))?;
            serde_json::from_str(&text)
                .map_err(|e| CheckpointError::format(&path, format!("not JSON: {e}")))?
        }
        AdapterInit::New {
            rank,
            alpha,
            targets,
            rslora,
        } => peft_writer::new_lora_config(
            *rank,
            *alpha,
            targets,
            *rslora,
            f64::from(spec.lora_dropout),
            &req.base.display().to_string(),
        ),
    };

    let device = compute.device.clone().autodiff();
    let opened_config = base.config.clone();
    let endpoints = PathEndpoints {
        adapters: endpoint.iter().collect(),
        checkpoints: endpoint_model.iter().map(|t| t.as_ref()).collect(),
    };
    // Cancel reaches loading: a run cancelled here ends as a cancelled run of no steps.
    let loaded = CausalLm::load_path_until(
        &opened_config,
        base.tensors.as_ref(),
        &endpoints,
        &device,
        crate::model::weight_dtype::WeightDType::F32,
        &|| hooks.cancel.is_cancelled(),
    );
    let mut model = match loaded {
        Err(ModelError::Cancelled) => {
            return Ok(TrainOutcome {
                steps_done: 0,
                total_steps: 0,
                steps_computed: 0,
                cancelled: true,
                final_loss: None,
            });
        }
        other => other?,
    };
    drop(endpoints);
    drop(endpoint);
    drop(endpoint_model);
    drop(base);
    crate::compute::release_free_host_memory();
    model.ensure_lora_slots(1);

    let factors = match (&req.init, &existing) {
        _ if full_bend => Vec::new(),
        (AdapterInit::Existing(_), Some(adapter)) => {
            let mut out = Vec::with_capacity(adapter.modules.len());
            for (name, m) in &adapter.modules {
                let (rank, in_f) = (m.a.shape[0], m.a.shape[1]);
                let out_f = m.b.shape[0];
                out.push(LoraFactors::from_peft(
                    name,
                    &m.a.data,
                    &m.b.data,
                    rank,
                    in_f,
                    out_f,
                    m.scale as f32,
                )?);
            }
            out
        }
        (
            AdapterInit::New {
                rank,
                alpha,
                targets,
                rslora,
            },
            _,
        ) => {
            let scale = if *rslora {
                alpha / (*rank as f64).sqrt()
            } else {
                alpha / *rank as f64
            };
            new_lora_factors(&model, targets, *rank, scale as f32, spec.seed)?
        }
        _ => return Err(TrainJobError::Input("adapter not opened".into())),
    };
    // Everything is checked: only now does the folder get (or check) its run.json.
    let layout = if spec.curve.is_some() {
        StoreLayout::CURVE_FIT
    } else {
        StoreLayout::TRAIN
    };
    let mut store = TrainStore::open(&req.out, &record, adapter_config, layout)?;
    if let (Some(curve), Some(endpoint)) = (&spec.curve, &req.endpoint) {
        write_curve_record(&req.out, curve, &req.base, endpoint)?;
    }
    let dense = match (&req.init, full_bend) {
        (AdapterInit::New { targets, .. }, true) => {
            let dense = DenseFactor::zeros_for(&model, targets);
            if dense.is_empty() {
                return Err(TrainJobError::Input(format!(
                    "--bend-targets {}: no linear layer of this model (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)",
                    targets.join(",")
                )));
            }
            dense
        }
        _ => Vec::new(),
    };
    let initial = TrainState {
        step: 0,
        samples_seen: 0,
        tokens_seen: 0,
        elapsed_s: 0.0,
        moments: zero_moments(&factors),
        factors,
        dense_moments: dense.iter().map(|d| AdamWState::zeros(d.w.len())).collect(),
        dense,
    };
    let state = store.latest_state(&initial)?.unwrap_or(initial);
    store.keep_steps_up_to(state.step)?;

    let order = super::train::DataOrder::new(items.len(), spec)?;
    on_start(&TrainStart {
        examples: items.len(),
        trainable_parameters: state
            .factors
            .iter()
            .map(|f| f.a.len() + f.b.len())
            .sum::<usize>()
            + state.dense.iter().map(|d| d.w.len()).sum::<usize>(),
        modules: state.factors.len() + state.dense.len(),
        total_steps: order.total_steps(spec.length),
        resumed_at: state.step,
        device_label: compute.label.clone(),
    });
    let outcome = run_training(&mut model, &items, spec, state, &mut store, hooks);
    drop(model);
    // The steps kept their freed blocks for reuse; hand them back now the run is over.
    crate::compute::release_free_host_memory();
    let outcome = outcome?;
    if full_bend
        && !outcome.cancelled
        && let Some(endpoint) = &req.endpoint
    {
        write_full_bend(req, endpoint, &store)?;
    }
    Ok(outcome)
}

/// θ_b of a finished full-bend fit into `bend/`, beside its saved state (see
/// [`control_point`]). Rewritten whenever the job ends complete, so a crash between the state
/// and the weights heals on the next run.
fn write_full_bend(
    req: &TrainRequest,
    endpoint: &std::path::Path,
    store: &TrainStore,
) -> Result<(), TrainJobError> {
    let bend_dir = store.dir().join(StoreLayout::CURVE_FIT.final_dir);
    let state = store.final_dense()?;
    let base = open_model(&req.base)?;
    let endpoint_kind = req.spec.curve.map(|c| c.endpoint);
    match endpoint_kind {
        Some(CurveEndpoint::Checkpoint) => {
            let other = open_model(endpoint)?;
            control_point::write_control_point(
                &bend_dir,
                &req.base,
                base.tensors.as_ref(),
                &control_point::Endpoint::Checkpoint(other.tensors.as_ref()),
                &state,
            )?;
        }
        _ => {
            let adapter = LoraAdapter::open_for(endpoint, base.tensors.as_ref(), &base.config)?;
            control_point::write_control_point(
                &bend_dir,
                &req.base,
                base.tensors.as_ref(),
                &control_point::Endpoint::Lora(&adapter),
                &state,
            )?;
        }
    }
    Ok(())
}

/// `dir/curve.json` of a curve fit (absolute paths, so a sweep can find the endpoint from
/// anywhere).
fn write_curve_record(
    dir: &std::path::Path,
    curve: &super::curve::CurveSpec,
    base: &std::path::Path,
    endpoint: &std::path::Path,
) -> Result<(), TrainJobError> {
    let absolute = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let record = super::curve::CurveRecord {
        schema: super::curve::CURVE_SCHEMA.into(),
        kind: curve.kind,
        base: absolute(base),
        endpoint: absolute(endpoint),
        endpoint_kind: curve.endpoint,
        bend: curve.bend,
    };
    let path = dir.join(super::curve::CURVE_FILE);
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| TrainJobError::Input(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| TrainJobError::Checkpoint(CheckpointError::io(&path, e)))
}

/// Cuts each sequence to `max_len` tokens; an example left without a target is an error.
fn truncate_items(
    items: &mut [EvalItem],
    max_len: usize,
    data: &std::path::Path,
) -> Result<(), TrainJobError> {
    for item in items.iter_mut() {
        let s = &mut item.sequence;
        if s.input_ids.len() > max_len {
            s.input_ids.truncate(max_len);
            s.target_mask.truncate(max_len);
            if !s.target_mask.iter().skip(1).any(|&m| m) {
                return Err(TrainJobError::Input(format!(
                    "{}: example `{}`: its prompt alone fills --max-seq-len {max_len}, so truncation leaves nothing to train on",
                    data.display(),
                    item.id
                )));
            }
        }
    }
    Ok(())
}
