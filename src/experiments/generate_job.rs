//! A whole generation run as the CLI and the app start it: open the model and the path's ends,
//! tokenise the prompts, build the model once, and generate at each requested point
//! ([`super::generate`]), handing each batch's lines over as they finish.

use std::path::PathBuf;

use super::{
    eval::PathPointSpec,
    generate::{GenerateError, GenerateSpec, Generated, Prompt, RowOutput, Sampling, generate},
    inputs::chat_template_of,
    job::{CancelFlag, Progress},
    path::PathKind,
    sweep_job::{SweepJobError, check_compatible, curve_endpoints, curve_path_kind},
};
use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    model::{
        error::ModelError, load::PathEndpoints, transformer::CausalLm, weight_dtype::WeightDType,
    },
    text::{
        dataset::ChatExample,
        encode::{encode_prompt, stop_ids},
    },
};

/// Where the model sits: a plain model (optionally with an adapter at a scale) or points of a
/// path from a base.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateAt {
    /// `model` alone, or with `adapter` at `scale`.
    Model {
        model: PathBuf,
        adapter: Option<PathBuf>,
        scale: f32,
    },
    /// θ(t) for each t: from `base` to an adapter (LoRA line), a full checkpoint, or along a
    /// fitted curve folder.
    Path {
        base: PathBuf,
        end: PathEnd,
        t: Vec<f64>,
    },
}

/// The far end of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum PathEnd {
    Adapter(PathBuf),
    Target(PathBuf),
    Curve(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub at: GenerateAt,
    pub prompts: Vec<ChatExample>,
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub samples: usize,
    pub seed: u64,
    pub batch: usize,
    pub device: ComputeKind,
    /// What the model's large weights are stored in on the device.
    pub dtype: WeightDType,
    /// Most prompt tokens.
    pub max_tokens: usize,
    /// Run every answer to `max_new_tokens` (no stop tokens).
    pub ignore_eos: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOutcome {
    pub lines: usize,
    pub new_tokens: usize,
    pub generate_s: f64,
    pub device_label: String,
}

/// Where one batch of answers is drawn: the path's t (none for a plain model) and its point.
type GenerationPoint = (Option<f64>, PathPointSpec);

/// Runs the request; `on_lines` sees each batch's lines (text decoded, `t` set on a path).
pub fn run_generate_job(
    req: &GenerateRequest,
    on_lines: &mut dyn FnMut(&[Generated]) -> Result<(), String>,
    progress: &dyn Fn(Progress),
    cancel: &CancelFlag,
) -> Result<GenerateOutcome, SweepJobError> {
    let input = SweepJobError::Input;
    req.sampling.check().map_err(input)?;
    if req.max_new_tokens == 0 || req.batch == 0 || req.samples == 0 {
        return Err(input(
            "max new tokens, batch and samples must be at least 1".into(),
        ));
    }
    if req.prompts.is_empty() {
        return Err(input("no prompt to answer".into()));
    }
    let mut compute = ComputeDevice::new(req.device)?;
    req.dtype.check_device(&compute.device)?;
    compute.label = req.dtype.device_label(&compute.label);
    let model_path = match &req.at {
        GenerateAt::Model { model, .. } => model,
        GenerateAt::Path { base, t, .. } => {
            if t.is_empty() || t.iter().any(|t| !t.is_finite()) {
                return Err(input("give one or more finite values of t".into()));
            }
            base
        }
    };
    let opened = open_model(model_path)?;
    let text_err = |source| SweepJobError::Text {
        suite: model_path.clone(),
        source,
    };
    let template = chat_template_of(&opened.tokenizer).map_err(text_err)?;
    let prompts = req
        .prompts
        .iter()
        .map(|ex| {
            Ok(Prompt {
                id: ex.id.clone(),
                ids: encode_prompt(&opened.tokenizer, &template, ex, req.max_tokens)?,
            })
        })
        .collect::<Result<Vec<_>, crate::text::error::TextError>>()
        .map_err(text_err)?;
    // The path's kind, LoRA adapters (slots in order) and dense checkpoints (deltas in order),
    // and the points to generate at.
    let (adapter_paths, target_paths, points): (Vec<PathBuf>, Vec<PathBuf>, Vec<GenerationPoint>) =
        match &req.at {
            GenerateAt::Model { adapter, scale, .. } => (
                adapter.iter().cloned().collect(),
                Vec::new(),
                vec![(
                    None,
                    PathPointSpec {
                        lora: adapter.iter().map(|_| *scale).collect(),
                        dense: vec![],
                    },
                )],
            ),
            GenerateAt::Path { end, t, .. } => {
                let (kind, a, c) = match end {
                    PathEnd::Adapter(p) => (PathKind::Lora, vec![p.clone()], vec![]),
                    PathEnd::Target(p) => (PathKind::FullWeight, vec![], vec![p.clone()]),
                    PathEnd::Curve(dir) => {
                        let (a, c) = curve_endpoints(dir)?;
                        (curve_path_kind(dir)?, a, c)
                    }
                };
                let points = t.iter().map(|&t| (Some(t), kind.point(t, &[]))).collect();
                (a, c, points)
            }
        };
    let adapters = adapter_paths
        .iter()
        .map(|p| LoraAdapter::open_for(p, opened.tensors.as_ref(), &opened.config))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets = Vec::new();
    for p in &target_paths {
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled.into());
        }
        let other = open_model(p)?;
        check_compatible(&opened, &other)?;
        targets.push(other.tensors);
    }
    let endpoints = PathEndpoints {
        adapters: adapters.iter().collect(),
        checkpoints: targets.iter().map(|t| t.as_ref()).collect(),
    };
    let model = CausalLm::load_path_until(
        &opened.config,
        opened.tensors.as_ref(),
        &endpoints,
        &compute.device,
        req.dtype,
        &|| cancel.is_cancelled(),
    )?;
    drop(endpoints);
    drop(targets);
    let stops = if req.ignore_eos {
        Vec::new()
    } else {
        stop_ids(&opened.tokenizer, &template)
    };
    let tokenizer = &opened.tokenizer.tokenizer;
    let started = std::time::Instant::now();
    let (mut lines, mut new_tokens) = (0, 0);
    let total = points.len() * prompts.len() * req.samples;
    for (k, (t, point)) in points.iter().enumerate() {
        let spec = GenerateSpec {
            max_new_tokens: req.max_new_tokens,
            sampling: req.sampling,
            samples: req.samples,
            seed: req.seed,
            batch: req.batch,
            point: point.clone(),
            stop_ids: stops.clone(),
        };
        let offset = k * prompts.len() * req.samples;
        let mut write = |rows: &[RowOutput]| -> Result<(), GenerateError> {
            let out: Vec<Generated> = rows
                .iter()
                .map(|r| Generated {
                    id: prompts[r.prompt].id.clone(),
                    sample: r.sample,
                    t: *t,
                    text: tokenizer.decode(&r.token_ids, true).unwrap_or_default(),
                    n_tokens: r.token_ids.len(),
                    token_ids: r.token_ids.clone(),
                    finish_reason: r.finish_reason,
                })
                .collect();
            new_tokens += out.iter().map(|g| g.n_tokens).sum::<usize>();
            lines += out.len();
            on_lines(&out).map_err(GenerateError::Spec)
        };
        let stage = |p: Progress| {
            progress(Progress {
                done: offset + p.done,
                total,
                stage: match t {
                    Some(t) => format!("t = {t}: {}", p.stage),
                    None => p.stage,
                },
            })
        };
        generate(&model, &prompts, &spec, &mut write, &stage, cancel).map_err(|e| match e {
            GenerateError::Model(m) => SweepJobError::Model(m),
            GenerateError::Cancelled { .. } => SweepJobError::Model(ModelError::Cancelled),
            GenerateError::Spec(s) => SweepJobError::Input(s),
        })?;
    }
    Ok(GenerateOutcome {
        lines,
        new_tokens,
        generate_s: started.elapsed().as_secs_f64(),
        device_label: compute.label,
    })
}
