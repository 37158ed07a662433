//! A loss-landscape slice from file paths: open and check the inputs, build the plane
//! ([`super::plane`]), write `plane.json`, then evaluate every cell of the grid through the same
//! loop as a sweep ([`run_points`]) into a result folder whose points are (α, β)
//! (`grid.jsonl`, `grid.csv`; resumable, shardable, mergeable like a sweep's).
//!
//! The model holds the endpoint as LoRA slot 0 (an adapter) or dense delta 0 (a full checkpoint,
//! θ_H − θ₀), a fitted curve's bend in the next LoRA slot, and any random direction in the slots
//! after them; a cell is one set of per-sequence coefficients, so with a LoRA endpoint
//! `cells_per_pass` cells share each forward pass (dense coefficients are per pass: one cell).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    curve::{BendKind, CurveEndpoint, CurveRecord},
    fingerprint::fingerprints,
    inputs::{chat_template_of, encode_examples},
    plane::{
        Center, Direction, Grid, PLANE_SCHEMA, Plane, PlaneKind, Projection, gram_of,
        linear_layers, random_direction_on,
    },
    suite::Suite,
    sweep::{PointsSpec, RunPoint, SweepHooks, SweepOutcome, run_points},
    sweep_job::{SweepJobError, check_compatible},
    sweep_store::{Execution, LANDSCAPE_SCHEMA, RunRecord, SweepStore, parse_shard, write_atomic},
};
use crate::{
    checkpoint::{open::open_model, peft::LoraAdapter},
    compute::{ComputeDevice, ComputeKind},
    model::{load::PathEndpoints, transformer::CausalLm, weight_dtype::WeightDType},
};

/// `plane.json` in a landscape's folder.
pub const PLANE_FILE: &str = "plane.json";

/// Everything a landscape needs, as a user gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeRequest {
    pub base: PathBuf,
    /// θ_H as a LoRA adapter.
    pub adapter: Option<PathBuf>,
    /// θ_H as a full checkpoint (its difference to θ₀ is a dense delta: one cell per pass).
    pub target: Option<PathBuf>,
    /// A `basin curve fit` folder: its endpoint is θ_H and its bend the plane's third point.
    pub curve: Option<PathBuf>,
    pub suite: PathBuf,
    /// Metrics of the suite measured at each cell; empty: all of them.
    #[serde(default)]
    pub metrics: Vec<String>,
    pub plane: PlaneKind,
    /// Centre of a random plane.
    pub center: Center,
    /// Seeds the random directions and the bootstrap.
    pub seed: u64,
    /// Filter-normalise random directions (Li et al.).
    pub filter_norm: bool,
    /// `NXxNY`.
    pub grid: String,
    /// `A0:A1,B0:B1`; empty: the kind's default.
    pub range: String,
    pub device: ComputeKind,
    /// What the model's large weights are stored in on the device.
    #[serde(default)]
    pub dtype: WeightDType,
    pub batch: usize,
    pub cells_per_pass: usize,
    pub shard: Option<String>,
    pub bootstrap: usize,
    pub out: PathBuf,
    pub max_tokens: usize,
    pub allow_resume_change: bool,
}

impl LandscapeRequest {
    /// A request with the CLI's defaults for everything but the inputs.
    pub fn new(base: PathBuf, suite: PathBuf, out: PathBuf) -> Self {
        Self {
            base,
            adapter: None,
            target: None,
            curve: None,
            suite,
            metrics: Vec::new(),
            plane: PlaneKind::Endpoints,
            center: Center::Base,
            seed: 0,
            filter_norm: true,
            grid: "21x21".into(),
            range: String::new(),
            device: ComputeKind::Cpu,
            dtype: WeightDType::F32,
            batch: 8,
            cells_per_pass: 4,
            shard: None,
            bootstrap: 1000,
            out,
            max_tokens: 8192,
            allow_resume_change: false,
        }
    }

    /// The range given, or the plane kind's default: the endpoints plane shows θ₀, θ_H and a
    /// margin around them; a random plane ±1 around its centre.
    pub fn range_or_default(&self) -> String {
        if !self.range.trim().is_empty() {
            return self.range.clone();
        }
        match self.plane {
            PlaneKind::Endpoints => "-0.5:1.5,-0.5:1.5".into(),
            PlaneKind::Random => "-1:1,-1:1".into(),
        }
    }
}

/// What a landscape tells its caller once the model is on the device.
pub struct LandscapeStart {
    pub cells: usize,
    pub metrics: usize,
    pub sequences_per_cell: usize,
    pub device_label: String,
}

/// A named point of weight space on the plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedPoint {
    pub name: String,
    #[serde(flatten)]
    pub at: Projection,
}

/// A path drawn on the plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    pub t: f64,
    #[serde(flatten)]
    pub at: Projection,
}

/// A LoRA slot of the landscape's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub slot: usize,
    /// `endpoint`, `bend`, `third` (random third point), `u` or `v` (random directions).
    pub role: String,
    pub source: String,
}

/// `plane.json`: the basis, its norms, the named points and the projected paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneRecord {
    pub schema: String,
    pub kind: PlaneKind,
    pub center: String,
    pub slots: Vec<SlotInfo>,
    pub plane: Plane,
    /// ‖u‖ and ‖v‖ in weight space (Frobenius norm over every changed weight).
    pub norm_u: f64,
    pub norm_v: f64,
    pub cos_uv: f64,
    pub grid: Grid,
    /// θ₀ (`base`), θ_H (`end`), and the bend's control point (`bend`) or the centre.
    pub points: Vec<NamedPoint>,
    /// The straight path θ₀ + t·(θ_H − θ₀), t ∈ [0, 1].
    pub line: Vec<PathPoint>,
    /// The fitted curve, when one was given.
    pub curve: Option<Vec<PathPoint>>,
}

impl PlaneRecord {
    pub fn read(dir: &std::path::Path) -> Result<Self, String> {
        let path = dir.join(PLANE_FILE);
        let text = crate::bounded::read_to_string(&path, crate::bounded::CONFIG_BYTES)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a plane record: {e}", path.display()))
    }
}

/// Folder of a landscape's random directions (one PEFT adapter per role: `third`, `u`, `v`).
pub const DIRECTIONS_DIR: &str = "directions";

/// Writes a random direction as a PEFT adapter whose scaling is 1 (alpha = r, per layer).
fn write_direction(
    dir: &std::path::Path,
    adapter: &LoraAdapter,
    base: &std::path::Path,
) -> Result<(), crate::checkpoint::error::CheckpointError> {
    use crate::checkpoint::peft_writer::{PeftModule, new_lora_config, write_peft_adapter};
    let r = adapter.config.r;
    let targets: Vec<String> = adapter.modules.keys().cloned().collect();
    let mut config = new_lora_config(
        r,
        r as f64,
        &targets,
        false,
        0.0,
        &base.display().to_string(),
    );
    let mut ranks = serde_json::Map::new();
    let mut alphas = serde_json::Map::new();
    for (name, m) in &adapter.modules {
        let rank = m.a.shape[0];
        if rank != r {
            ranks.insert(name.clone(), rank.into());
            alphas.insert(name.clone(), (rank as f64).into());
        }
    }
    config["rank_pattern"] = ranks.into();
    config["alpha_pattern"] = alphas.into();
    let modules: Vec<PeftModule> = adapter
        .modules
        .iter()
        .map(|(name, m)| PeftModule {
            module: name,
            rank: m.a.shape[0],
            in_features: m.a.shape[1],
            out_features: m.b.shape[0],
            a: &m.a.data,
            b: &m.b.data,
        })
        .collect();
    write_peft_adapter(dir, &config, &modules)
}

/// Points of a path drawn on the plane.
const PATH_DRAW_POINTS: usize = 41;

/// Rank of a random direction when θ_H is a full checkpoint (no adapter to copy ranks from).
pub const RANDOM_RANK: usize = 8;

/// θ_H as given: a LoRA adapter or a full checkpoint.
enum Endpoint {
    Lora(PathBuf),
    Checkpoint(PathBuf),
}

impl Endpoint {
    fn path(&self) -> &std::path::Path {
        match self {
            Endpoint::Lora(p) | Endpoint::Checkpoint(p) => p,
        }
    }
}

/// Runs a whole landscape: checks and opens the inputs (one clear error naming the file on bad
/// input), resumes from `req.out` when it holds the same spec, and saves each finished cell.
pub fn run_landscape_job(
    req: &LandscapeRequest,
    hooks: &SweepHooks,
    on_start: &dyn Fn(&LandscapeStart),
) -> Result<SweepOutcome, SweepJobError> {
    let input = |m: String| SweepJobError::Input(m);
    if req.batch == 0 {
        return Err(input("batch size must be at least 1".into()));
    }
    let grid = Grid::parse(&req.grid, &req.range_or_default()).map_err(input)?;
    let all_cells = grid.cells();
    let cells: Vec<(f64, f64)> = match &req.shard {
        Some(s) => {
            let (i, n) = parse_shard(s)?;
            all_cells
                .iter()
                .enumerate()
                .filter(|(k, _)| k % n == i)
                .map(|(_, &c)| c)
                .collect()
        }
        None => all_cells,
    };
    // The endpoint (a LoRA adapter or a full checkpoint) and, for a curve, its bend and kind.
    let (endpoint, curve) = match (&req.adapter, &req.target, &req.curve) {
        (Some(a), None, None) => (Endpoint::Lora(a.clone()), None),
        (None, Some(t), None) => (Endpoint::Checkpoint(t.clone()), None),
        (None, None, Some(dir)) => {
            let record = CurveRecord::read(dir).map_err(input)?;
            if record.bend == BendKind::Full {
                return Err(input(format!(
                    "{}: a full (dense) bend; landscape planes through a fitted curve take a LoRA bend (`basin curve fit --bend lora`). Sweep this curve with `basin sweep --curve`, or slice the plane with --target / --adapter and a random direction",
                    dir.display()
                )));
            }
            let bend = CurveRecord::bend_dir(dir);
            if !bend.join("adapter_model.safetensors").exists() {
                return Err(input(format!(
                    "{}: no fitted bend yet (the fit has not finished; rerun `basin curve fit` to resume it)",
                    bend.display()
                )));
            }
            let end = PathBuf::from(&record.endpoint);
            let endpoint = match record.endpoint_kind {
                CurveEndpoint::Lora => Endpoint::Lora(end),
                CurveEndpoint::Checkpoint => Endpoint::Checkpoint(end),
            };
            (endpoint, Some((record.kind, bend)))
        }
        (None, None, None) => {
            return Err(input(
                "give θ_H: --adapter A (a LoRA adapter), --target T (a full checkpoint) or --curve DIR (a fitted curve)"
                    .into(),
            ));
        }
        _ => {
            return Err(input(
                "give one θ_H: --adapter, --target or --curve (a curve brings its own endpoint)"
                    .into(),
            ));
        }
    };

    let mut suite = Suite::load(&req.suite)?;
    suite.keep_only(&req.metrics)?;
    let mut compute = ComputeDevice::new(req.device)?;
    req.dtype.check_device(&compute.device)?;
    compute.label = req.dtype.device_label(&compute.label);
    let base = open_model(&req.base)?;
    // The directions in coefficient order: the endpoint (dense delta 0 for a checkpoint, else
    // LoRA slot 0), the bend, then random directions; the model's LoRA slots are the LoRA ones
    // in the same order.
    let mut lora: Vec<LoraAdapter> = Vec::new();
    let mut info = Vec::new();
    let target = match &endpoint {
        Endpoint::Lora(p) => {
            lora.push(LoraAdapter::open_for(
                p,
                base.tensors.as_ref(),
                &base.config,
            )?);
            None
        }
        Endpoint::Checkpoint(p) => {
            let t = open_model(p)?;
            check_compatible(&base, &t)?;
            Some(t.tensors)
        }
    };
    info.push(SlotInfo {
        slot: 0,
        role: "endpoint".into(),
        source: endpoint.path().display().to_string(),
    });
    if let Some((_, bend)) = &curve {
        lora.push(LoraAdapter::open_for(
            bend,
            base.tensors.as_ref(),
            &base.config,
        )?);
        info.push(SlotInfo {
            slot: 1,
            role: "bend".into(),
            source: bend.display().to_string(),
        });
    }
    let random_roles: &[&str] = match (req.plane, curve.is_some()) {
        (PlaneKind::Endpoints, true) => &[],
        (PlaneKind::Endpoints, false) => &["third"],
        (PlaneKind::Random, _) => &["u", "v"],
    };
    // Random directions live on the endpoint adapter's layers at its ranks, or, for a full
    // checkpoint, on every linear layer at rank RANDOM_RANK.
    let layers: Vec<(String, usize, usize, usize)> = match lora.first() {
        Some(a) if matches!(endpoint, Endpoint::Lora(_)) => a
            .modules
            .iter()
            .map(|(n, m)| (n.clone(), m.a.shape[1], m.b.shape[0], m.a.shape[0]))
            .collect(),
        _ => linear_layers(base.tensors.as_ref())
            .into_iter()
            .map(|(n, i, o)| (n, i, o, RANDOM_RANK))
            .collect(),
    };
    let config = match lora.first() {
        Some(a) => a.config.clone(),
        None => serde_json::from_value(serde_json::json!({
            "peft_type": "LORA", "r": RANDOM_RANK, "lora_alpha": RANDOM_RANK as f64
        }))
        .map_err(|e| input(format!("random direction: {e}")))?,
    };
    for role in random_roles {
        // The endpoints plane's third point is only a direction: it is orthogonalised and
        // rescaled, so its filter normalisation would change nothing but rounding.
        let normalise = req.filter_norm && req.plane == PlaneKind::Random;
        let direction = random_direction_on(
            &layers,
            config.clone(),
            req.seed,
            &format!("landscape-{role}"),
            base.tensors.as_ref(),
            normalise,
        )
        .map_err(input)?;
        info.push(SlotInfo {
            slot: info.len(),
            role: (*role).into(),
            source: format!("{DIRECTIONS_DIR}/{role}"),
        });
        lora.push(direction);
    }
    let n_dense = usize::from(target.is_some());
    let mut dirs: Vec<Direction> = target
        .iter()
        .map(|t| Direction::Dense {
            base: base.tensors.as_ref(),
            target: t.as_ref(),
        })
        .collect();
    dirs.extend(lora.iter().map(Direction::Lora));
    let g = gram_of(&dirs).map_err(input)?;
    let n = dirs.len();
    drop(dirs);
    // The path's coefficients at t: the straight line, or the curve (the bend at φ(t)).
    let path_at = |t: f64, on_curve: bool| -> Vec<f64> {
        let mut p = vec![0.0; n];
        p[0] = t;
        if on_curve && let Some((kind, _)) = &curve {
            p[1] = kind.phi(t);
        }
        p
    };
    let mut plane = match req.plane {
        PlaneKind::Endpoints => Plane::endpoints(g, 0, 1).map_err(input)?,
        PlaneKind::Random => {
            let center = match req.center {
                Center::Base => path_at(0.0, true),
                Center::End => path_at(1.0, true),
                Center::T(t) => path_at(t, true),
            };
            Plane::around(g, center, n - 2, n - 1)
        }
    };
    plane.n_dense = n_dense;
    let draw = |on_curve: bool| -> Vec<PathPoint> {
        (0..PATH_DRAW_POINTS)
            .map(|i| {
                let t = i as f64 / (PATH_DRAW_POINTS - 1) as f64;
                PathPoint {
                    t,
                    at: plane.project(&path_at(t, on_curve)),
                }
            })
            .collect()
    };
    let mut points = vec![
        NamedPoint {
            name: "base".into(),
            at: plane.project(&path_at(0.0, false)),
        },
        NamedPoint {
            name: "end".into(),
            at: plane.project(&path_at(1.0, false)),
        },
    ];
    if curve.is_some() {
        // The control point θ_b = θ₀ + ½·Δ_H + Δ_bend (θ(½) of a polychain).
        let mut p = path_at(0.5, false);
        p[1] = 1.0;
        points.push(NamedPoint {
            name: "bend".into(),
            at: plane.project(&p),
        });
    }
    if req.plane == PlaneKind::Random {
        points.push(NamedPoint {
            name: "center".into(),
            at: plane.project(&plane.center),
        });
    }
    let record = PlaneRecord {
        schema: PLANE_SCHEMA.into(),
        kind: req.plane,
        center: req.center.label(),
        slots: info,
        norm_u: plane.norm_u(),
        norm_v: plane.norm_v(),
        cos_uv: plane.cos_uv(),
        grid,
        points,
        line: draw(false),
        curve: curve.as_ref().map(|_| draw(true)),
        plane,
    };

    let mut run = run_record(req, &suite, endpoint.path(), curve.as_ref().map(|c| &c.1))?;
    run.execution = Some(Execution {
        device: compute.label.clone(),
        batch: req.batch,
        t_per_pass: req.cells_per_pass,
    });
    let mut store = SweepStore::open_or_create_allowing(&req.out, &run, req.allow_resume_change)?;
    let plane_json = serde_json::to_vec_pretty(&record)
        .map_err(|e| input(format!("{}: {e}", req.out.join(PLANE_FILE).display())))?;
    write_atomic(&req.out.join(PLANE_FILE), &plane_json)?;
    // The random directions as PEFT adapters (scale 1), so the plane can be rebuilt elsewhere.
    for slot in record
        .slots
        .iter()
        .filter(|s| s.source.starts_with(DIRECTIONS_DIR))
    {
        if let Some(adapter) = slot.slot.checked_sub(n_dense).and_then(|k| lora.get(k)) {
            write_direction(&req.out.join(&slot.source), adapter, &req.base)
                .map_err(SweepJobError::Checkpoint)?;
        }
    }

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
    let generation =
        super::sweep_job::generation_inputs(&base.tokenizer, &template, &suite, req.max_tokens)
            .map_err(|source| SweepJobError::Text {
                suite: req.suite.clone(),
                source,
            })?;
    let endpoints = PathEndpoints {
        adapters: lora.iter().collect(),
        checkpoints: target.iter().map(|t| t.as_ref()).collect(),
    };
    let model = CausalLm::load_path_until(
        &base.config,
        base.tensors.as_ref(),
        &endpoints,
        &compute.device,
        req.dtype,
        &|| hooks.abort.is_cancelled(),
    )
    .map_err(|e| match e {
        crate::model::error::ModelError::Cancelled => {
            SweepJobError::Sweep(super::sweep::SweepError::Cancelled { done: 0, total: 0 })
        }
        e => e.into(),
    })?;
    drop(endpoints);
    drop(target);
    drop(lora);
    drop(base);
    crate::compute::release_free_host_memory();

    on_start(&LandscapeStart {
        cells: cells.len(),
        metrics: suite.metrics.len(),
        sequences_per_cell: items.len(),
        device_label: compute.label.clone(),
    });
    let run_points_list: Vec<RunPoint> = cells
        .iter()
        .map(|&(a, b)| RunPoint {
            t: a,
            beta: Some(b),
            coefficients: record.plane.point(a, b),
        })
        .collect();
    let opts = PointsSpec {
        batch_size: req.batch,
        bootstrap_samples: req.bootstrap,
        bootstrap_seed: req.seed,
        points_per_pass: req.cells_per_pass.max(1),
    };
    Ok(run_points(
        &model,
        &suite,
        &items,
        generation.as_ref(),
        &run_points_list,
        &opts,
        &mut store,
        hooks,
    )?)
}

/// The `run.json` record: the spec and the fingerprints of every input file.
fn run_record(
    req: &LandscapeRequest,
    suite: &Suite,
    endpoint: &std::path::Path,
    bend: Option<&PathBuf>,
) -> Result<RunRecord, SweepJobError> {
    let mut inputs = BTreeMap::new();
    for f in suite.files() {
        fingerprints(&f, &mut inputs)?;
    }
    for p in [Some(&req.base), Some(&endpoint.to_path_buf()), bend]
        .into_iter()
        .flatten()
    {
        fingerprints(p, &mut inputs)?;
    }
    let mut spec = serde_json::json!({
        "base": req.base.display().to_string(),
        "adapter": req.adapter.as_ref().map(|p| p.display().to_string()),
        "target": req.target.as_ref().map(|p| p.display().to_string()),
        "curve": req.curve.as_ref().map(|p| p.display().to_string()),
        "suite": req.suite.display().to_string(),
        "plane": req.plane,
        "center": req.center.label(),
        "seed": req.seed,
        "filter_norm": req.filter_norm,
        "grid": req.grid,
        "range": req.range_or_default(),
        "coordinate": "alpha,beta",
        "shard": req.shard,
        "bootstrap": req.bootstrap,
        "max_tokens": req.max_tokens,
    });
    // Only when chosen, so that folders written before `--metrics` existed still resume.
    if !req.metrics.is_empty()
        && let Some(fields) = spec.as_object_mut()
    {
        fields.insert("metrics".into(), serde_json::json!(suite.metric_names()));
    }
    Ok(RunRecord {
        schema: LANDSCAPE_SCHEMA.to_string(),
        basin_version: env!("CARGO_PKG_VERSION").to_string(),
        spec,
        inputs,
        execution: None,
    })
}
