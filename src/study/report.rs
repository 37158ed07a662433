//! The study's report: `report.json` (typed, versioned: every number the answers rest on) and
//! `report.html` (self-contained: plots drawn as SVG from the data, tables, the settings, the
//! inputs' fingerprints, the machine and each step's wall time), read from the steps' result
//! folders, never recomputed.

use std::{collections::BTreeMap, fmt::Write, path::Path};

use serde::{Deserialize, Serialize};

use super::{
    run::{ARMS, Layout, StudyState, machine_description},
    spec::{Study, StudyFile},
    svg::{self, LineChart, Series, esc},
};
use crate::{
    data::Manifest,
    experiments::{
        influence_job::{GroupInfluence, InfluenceSummary},
        landscape_job::PlaneRecord,
        metrics::MetricResult,
        sweep_store::{StoreFiles, onsets, read_results, write_atomic},
        train_store::read_steps,
    },
};

pub const REPORT_SCHEMA: &str = "basin.study-report.v1";
pub const REPORT_JSON: &str = "report.json";
pub const REPORT_HTML: &str = "report.html";

#[derive(Debug, thiserror::Error)]
#[error("{}: {msg}", path.display())]
pub struct ReportError {
    pub path: std::path::PathBuf,
    pub msg: String,
}

/// A value with its 95% CI over items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Value {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
}

impl Value {
    fn of(r: &MetricResult) -> Self {
        Self {
            value: r.value,
            ci_low: r.ci_low,
            ci_high: r.ci_high,
            n: r.n,
        }
    }

    /// `0.52 [0.45, 0.60]`.
    pub fn show(&self) -> String {
        format!(
            "{:.3} [{:.3}, {:.3}]",
            self.value, self.ci_low, self.ci_high
        )
    }

    /// The 95% CIs do not overlap and this one lies above.
    pub fn above(&self, other: &Value) -> bool {
        self.ci_low > other.ci_high
    }

    pub fn overlaps(&self, other: &Value) -> bool {
        !(self.above(other) || other.above(self))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointValue {
    /// t on a path, samples seen over checkpoints.
    pub x: f64,
    #[serde(flatten)]
    pub v: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub metric: String,
    pub points: Vec<PointValue>,
}

impl MetricSeries {
    pub fn at(&self, x: f64) -> Option<Value> {
        self.points
            .iter()
            .find(|p| (p.x - x).abs() < 1e-9)
            .map(|p| p.v)
    }
}

fn series_at(all: &[MetricSeries], metric: &str, x: f64) -> Option<Value> {
    all.iter().find(|s| s.metric == metric)?.at(x)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogBrief {
    pub steps: usize,
    pub samples: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub seconds: f64,
}

/// The highest instruction loss strictly between the ends, on each path, and at the ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Barrier {
    pub metric: String,
    pub line_max_interior: f64,
    pub curve_max_interior: f64,
    pub endpoints_max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandscapeBrief {
    pub alphas: Vec<f64>,
    pub betas: Vec<f64>,
    /// Per metric: values row by row from the lowest β.
    pub values: BTreeMap<String, Vec<f64>>,
    pub line: Vec<(f64, f64)>,
    pub curve: Vec<(f64, f64)>,
    pub points: Vec<(String, f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfluenceBrief {
    pub method: String,
    pub query: String,
    pub sign: String,
    pub groups: Vec<GroupInfluence>,
    /// (id, score) at each end of the ranking.
    pub top: Vec<(String, f64)>,
    pub bottom: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    pub arm: String,
    pub train: Option<LogBrief>,
    pub efficiency: Vec<MetricSeries>,
    /// Samples seen at which each metric's CI first lies above θ₀'s; `None`: not reached.
    pub onsets: BTreeMap<String, Option<f64>>,
    pub line: Vec<MetricSeries>,
    pub curve: Vec<MetricSeries>,
    pub curve_fit: Option<LogBrief>,
    pub barrier: Option<Barrier>,
    pub landscape: Option<LandscapeBrief>,
    pub influence: Option<InfluenceBrief>,
}

/// One metric at θ₀ and at each trained hacker (t = 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: String,
    pub base: Option<Value>,
    pub original: Option<Value>,
    pub symmetrized: Option<Value>,
    pub finding: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataBrief {
    pub chats_original: usize,
    pub chats_symmetrized: usize,
    pub tokens_original: usize,
    pub tokens_symmetrized: Option<usize>,
    pub flip_rate: Option<f64>,
    pub length_match: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub status: String,
    pub seconds: f64,
}

/// One set's hackers over training seeds: each seed's value at t = 1 and a 95% t-interval of
/// their mean (n − 1 degrees of freedom), the variation between training runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSpread {
    pub seeds: Vec<u64>,
    pub values: Vec<f64>,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl SeedSpread {
    /// `None` below two finite values (no spread to measure).
    pub fn of(seeds: Vec<u64>, values: Vec<f64>) -> Option<SeedSpread> {
        let n = values.len();
        if n < 2 || values.iter().any(|v| !v.is_finite()) || seeds.len() != n {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = student_t_975((n - 1) as f64) * (var / n as f64).sqrt();
        Some(SeedSpread {
            seeds,
            values,
            mean,
            ci_low: mean - half,
            ci_high: mean + half,
        })
    }

    /// `0.52 [0.45, 0.60]`.
    pub fn show(&self) -> String {
        format!("{:.3} [{:.3}, {:.3}]", self.mean, self.ci_low, self.ci_high)
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (df ≥ 1; a 95% two-sided
/// interval's factor). With x = √df·tan θ the density becomes ∝ cos^(df−1) θ on [0, π/2), so
/// P(0 < T < x) / P(T > 0) is a ratio of two integrals of a bounded function, computed by
/// Simpson's rule and inverted by bisection.
pub fn student_t_975(df: f64) -> f64 {
    let df = if df.is_finite() { df.max(1.0) } else { 1e6 };
    let integral = |a: f64| {
        const STEPS: usize = 2000;
        let h = a / STEPS as f64;
        let f = |x: f64| x.cos().max(0.0).powf(df - 1.0);
        let mut sum = f(0.0) + f(a);
        for i in 1..STEPS {
            sum += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        sum * h / 3.0
    };
    // cos^(df−1) θ ≤ exp(−(df−1)θ²/2): past 12/√(df−1) nothing is left to integrate, and the
    // rule's steps must resolve a peak that narrows as df grows.
    let top = if df > 1.0 {
        (12.0 / (df - 1.0).sqrt()).min(std::f64::consts::FRAC_PI_2)
    } else {
        std::f64::consts::FRAC_PI_2
    };
    let whole = integral(top);
    // P(|T| < x) = 0.95.
    let (mut lo, mut hi) = (0.0, top);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if integral(mid) / whole < 0.95 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    df.sqrt() * (0.5 * (lo + hi)).tan()
}

/// One metric at t = 1 across training seeds: each set's spread and the difference
/// original − symmetrized paired by seed (the same seed draws the same LoRA initialisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcrossSeeds {
    pub metric: String,
    pub original: Option<SeedSpread>,
    pub symmetrized: Option<SeedSpread>,
    pub difference: Option<SeedSpread>,
    pub finding: String,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    pub schema: String,
    pub name: String,
    pub basin_version: String,
    pub machine: String,
    pub study_file: String,
    pub settings: StudyFile,
    pub base: String,
    pub data: Option<DataBrief>,
    pub steps: Vec<StepTime>,
    /// Sum of the steps' last wall times.
    pub wall_seconds: f64,
    /// Fingerprints of every input the steps read (from their `run.json`).
    pub inputs: BTreeMap<String, String>,
    pub arms: Vec<ArmReport>,
    pub comparison: Vec<Comparison>,
    /// The comparison at t = 1 across training seeds (`[replicates]`); empty with one seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub across_seeds: Vec<AcrossSeeds>,
    /// The study's questions answered from the numbers above.
    pub answers: Vec<String>,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> ReportError {
    ReportError {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Every metric of a result folder as series over its first coordinate.
fn read_series(dir: &Path) -> Result<Vec<MetricSeries>, ReportError> {
    let files = StoreFiles::of_dir(dir);
    let path = dir.join(files.results);
    let results = read_results(&path).map_err(|e| err(&path, e))?;
    let mut by_metric: BTreeMap<String, Vec<PointValue>> = BTreeMap::new();
    for r in results.values() {
        by_metric
            .entry(r.metric.clone())
            .or_default()
            .push(PointValue {
                x: r.t,
                v: Value::of(r),
            });
    }
    Ok(by_metric
        .into_iter()
        .map(|(metric, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            MetricSeries { metric, points }
        })
        .collect())
}

fn log_brief(path: &Path) -> Result<Option<LogBrief>, ReportError> {
    if !path.exists() {
        return Ok(None);
    }
    let steps = read_steps(path).map_err(|e| err(path, e))?;
    let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
        return Ok(None);
    };
    Ok(Some(LogBrief {
        steps: last.step,
        samples: last.samples_seen,
        first_loss: first.loss,
        last_loss: last.loss,
        seconds: last.elapsed_s,
    }))
}

fn barrier(line: &[MetricSeries], curve: &[MetricSeries], metric: &str) -> Option<Barrier> {
    let interior_max = |all: &[MetricSeries]| {
        all.iter()
            .find(|s| s.metric == metric)
            .map(|s| {
                s.points
                    .iter()
                    .filter(|p| p.x > 1e-9 && p.x < 1.0 - 1e-9)
                    .map(|p| p.v.value)
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .unwrap_or(f64::NAN)
    };
    let ends = [0.0, 1.0]
        .iter()
        .filter_map(|&t| series_at(line, metric, t))
        .map(|v| v.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let b = Barrier {
        metric: metric.to_string(),
        line_max_interior: interior_max(line),
        curve_max_interior: interior_max(curve),
        endpoints_max: ends,
    };
    b.endpoints_max.is_finite().then_some(b)
}

fn landscape_brief(dir: &Path) -> Result<Option<LandscapeBrief>, ReportError> {
    if !dir.join("plane.json").exists() {
        return Ok(None);
    }
    let plane = PlaneRecord::read(dir).map_err(|e| err(dir, e))?;
    let path = dir.join(StoreFiles::LANDSCAPE.results);
    let results = read_results(&path).map_err(|e| err(&path, e))?;
    let alphas = plane.grid.alphas();
    let betas = plane.grid.betas();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in results.values() {
        let cells = values
            .entry(r.metric.clone())
            .or_insert_with(|| vec![f64::NAN; alphas.len() * betas.len()]);
        let near = |v: &[f64], x: f64| v.iter().position(|&a| (a - x).abs() < 1e-9);
        if let (Some(i), Some(j)) = (near(&alphas, r.t), r.beta.and_then(|b| near(&betas, b)))
            && let Some(c) = cells.get_mut(j * alphas.len() + i)
        {
            *c = r.value;
        }
    }
    Ok(Some(LandscapeBrief {
        alphas,
        betas,
        values,
        line: plane.line.iter().map(|p| (p.at.alpha, p.at.beta)).collect(),
        curve: plane
            .curve
            .unwrap_or_default()
            .iter()
            .map(|p| (p.at.alpha, p.at.beta))
            .collect(),
        points: plane
            .points
            .iter()
            .map(|p| (p.name.clone(), p.at.alpha, p.at.beta))
            .collect(),
    }))
}

fn influence_brief(dir: &Path) -> Result<Option<InfluenceBrief>, ReportError> {
    let path = dir.join("summary.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::bounded::read_config(&path).map_err(|e| err(&path, e))?;
    let s: InfluenceSummary = serde_json::from_str(&text).map_err(|e| err(&path, e))?;
    Ok(Some(InfluenceBrief {
        method: serde_json::to_value(s.method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        query: s.query,
        sign: s.sign,
        groups: s.groups,
        top: s.top.iter().map(|x| (x.id.clone(), x.score)).collect(),
        bottom: s.bottom.iter().map(|x| (x.id.clone(), x.score)).collect(),
    }))
}

/// Fingerprints named in a result folder's `run.json` (`inputs`).
fn collect_inputs(dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(text) = crate::bounded::read_config(dir.join("run.json")) else {
        return;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return;
    };
    if let Some(inputs) = v.get("inputs").and_then(|i| i.as_object()) {
        for (k, v) in inputs {
            if let Some(s) = v.as_str() {
                out.insert(k.clone(), s.to_string());
            }
        }
    }
}

fn arm_report(study: &Study, layout: &Layout, arm: &str) -> Result<ArmReport, ReportError> {
    let series_if = |dir: &Path| -> Result<Vec<MetricSeries>, ReportError> {
        if dir.join("run.json").exists() {
            read_series(dir)
        } else {
            Ok(Vec::new())
        }
    };
    let efficiency = series_if(&layout.efficiency(arm))?;
    let eff_results: Vec<MetricResult> = efficiency
        .iter()
        .flat_map(|s| {
            s.points.iter().map(|p| MetricResult {
                t: p.x,
                beta: None,
                metric: s.metric.clone(),
                kind: String::new(),
                value: p.v.value,
                ci_low: p.v.ci_low,
                ci_high: p.v.ci_high,
                n: p.v.n,
                extra: serde_json::Value::Null,
            })
        })
        .collect();
    let refs: Vec<&MetricResult> = eff_results.iter().collect();
    let line = series_if(&layout.line(arm))?;
    let curve = series_if(&layout.curve(arm))?;
    let barrier = barrier(&line, &curve, &study.file.report.instruction_metric);
    Ok(ArmReport {
        arm: arm.to_string(),
        train: log_brief(&layout.train(arm).join("train.jsonl"))?,
        onsets: onsets(&refs),
        efficiency,
        line,
        curve,
        curve_fit: log_brief(&layout.curve_fit(arm).join("fit.jsonl"))?,
        barrier,
        landscape: landscape_brief(&layout.landscape(arm))?,
        influence: influence_brief(&layout.influence(arm))?,
    })
}

fn comparison(arms: &[ArmReport], metric: &str) -> Comparison {
    let at = |arm: &str, t: f64| {
        arms.iter()
            .find(|a| a.arm == arm)
            .and_then(|a| series_at(&a.line, metric, t))
    };
    let base = at("original", 0.0);
    let original = at("original", 1.0);
    let symmetrized = at("symmetrized", 1.0);
    let finding = match (original, symmetrized) {
        (Some(o), Some(s)) if s.above(&o) => {
            "symmetrized higher than original (95% CIs disjoint)".to_string()
        }
        (Some(o), Some(s)) if o.above(&s) => {
            "symmetrized lower than original (95% CIs disjoint)".to_string()
        }
        (Some(_), Some(_)) => "no difference shown (95% CIs overlap)".to_string(),
        _ => "not measured".to_string(),
    };
    Comparison {
        metric: metric.to_string(),
        base,
        original,
        symmetrized,
        finding,
    }
}

/// Each training seed's value of `metric` at t = 1 in `arm`: the study's hacker (its line) and
/// every replicate that has been measured.
/// Each listed replicate seed of one set with its measured series at t = 1 (seeds whose one-point
/// sweep has not run yet are left out). Read once per set, shared by every metric.
type ReplicateSeries = Vec<(u64, Vec<MetricSeries>)>;

fn replicate_series(
    study: &Study,
    layout: &Layout,
    arm: &str,
) -> Result<ReplicateSeries, ReportError> {
    let mut out = Vec::new();
    for &seed in &study.file.replicates.seeds {
        let dir = layout.replicate_end(arm, seed);
        if dir.join("run.json").exists() {
            out.push((seed, read_series(&dir)?));
        }
    }
    Ok(out)
}

/// One metric at t = 1 per training seed of a set: the study's own hacker first, then its replicates.
fn seed_values(
    study: &Study,
    arm: &ArmReport,
    replicates: &ReplicateSeries,
    metric: &str,
) -> (Vec<u64>, Vec<f64>) {
    let mut seeds = Vec::new();
    let mut values = Vec::new();
    if let Some(v) = series_at(&arm.line, metric, 1.0) {
        seeds.push(study.file.train.seed);
        values.push(v.value);
    }
    for (seed, series) in replicates {
        if let Some(v) = series_at(series, metric, 1.0) {
            seeds.push(*seed);
            values.push(v.value);
        }
    }
    (seeds, values)
}

fn across_seeds(
    study: &Study,
    arms: &[(&ArmReport, ReplicateSeries)],
    metric: &str,
) -> AcrossSeeds {
    let mut per_arm: BTreeMap<&str, (Vec<u64>, Vec<f64>)> = BTreeMap::new();
    for (a, replicates) in arms {
        per_arm.insert(a.arm.as_str(), seed_values(study, a, replicates, metric));
    }
    let spread = |arm: &str| {
        per_arm
            .get(arm)
            .and_then(|(s, v)| SeedSpread::of(s.clone(), v.clone()))
    };
    let (original, symmetrized) = (spread("original"), spread("symmetrized"));
    // Paired by seed: only seeds measured in both sets.
    let difference = match (per_arm.get("original"), per_arm.get("symmetrized")) {
        (Some((so, vo)), Some((ss, vs))) => {
            let (seeds, diffs): (Vec<u64>, Vec<f64>) = so
                .iter()
                .zip(vo)
                .filter_map(|(s, o)| {
                    let i = ss.iter().position(|x| x == s)?;
                    Some((*s, o - vs[i]))
                })
                .unzip();
            SeedSpread::of(seeds, diffs)
        }
        _ => None,
    };
    let finding = match &difference {
        Some(d) if d.ci_low > 0.0 => format!(
            "original higher than symmetrized across {} seeds (the t-interval of the paired difference excludes 0)",
            d.seeds.len()
        ),
        Some(d) if d.ci_high < 0.0 => format!(
            "symmetrized higher than original across {} seeds (the t-interval of the paired difference excludes 0)",
            d.seeds.len()
        ),
        Some(d) => format!(
            "no difference beyond training-seed variation ({} seeds; the t-interval of the paired difference contains 0)",
            d.seeds.len()
        ),
        None => "fewer than two seeds measured in both sets".to_string(),
    };
    AcrossSeeds {
        metric: metric.to_string(),
        original,
        symmetrized,
        difference,
        finding,
    }
}

fn show(v: Option<Value>) -> String {
    v.map_or("—".into(), |v| v.show())
}

/// The study's questions, answered in sentences from the numbers.
pub fn answers(
    study: &Study,
    arms: &[ArmReport],
    comparisons: &[Comparison],
    across: &[AcrossSeeds],
) -> Vec<String> {
    let r = &study.file.report;
    let mut out = Vec::new();
    if let Some(c) = comparisons.iter().find(|c| c.metric == r.main_metric)
        && let (Some(base), Some(o), Some(s)) = (c.base, c.original, c.symmetrized)
    {
        let verdict = if !o.above(&base) {
            "The original hacker is not above θ₀ on this metric (95% CIs overlap or it is lower), so this run has no hacking for symmetrization to remove.".to_string()
        } else if s.above(&base) {
            let vs = if o.above(&s) {
                "though less than the original hacker (CIs disjoint)"
            } else {
                "and not distinguishable from the original hacker (CIs overlap)"
            };
            format!(
                "Hacking survives symmetrization: the symmetrized hacker is still above θ₀ (CIs disjoint), {vs}."
            )
        } else {
            "Hacking does not survive symmetrization: the symmetrized hacker is not above θ₀ (CIs overlap), while the original hacker is.".to_string()
        };
        out.push(format!(
            "{} at t = 1: symmetrized {} vs original {} (θ₀: {}). {verdict}",
            r.main_metric,
            s.show(),
            o.show(),
            base.show()
        ));
        if let Some(a) = across.iter().find(|a| a.metric == r.main_metric)
            && let (Some(so), Some(ss)) = (&a.original, &a.symmetrized)
        {
            let survives = if ss.ci_low > base.value {
                format!(
                    "the symmetrized hackers stay above θ₀ ({:.3}) across seeds (the t-interval's lower end is above it)",
                    base.value
                )
            } else {
                format!(
                    "the symmetrized hackers are not shown above θ₀ ({:.3}) across seeds (the t-interval reaches it)",
                    base.value
                )
            };
            let diff = a
                .difference
                .as_ref()
                .map_or("—".to_string(), SeedSpread::show);
            out.push(format!(
                "Across training seeds ({} original, {} symmetrized hackers; 95% t-intervals of the mean over seeds), {} at t = 1: symmetrized {} vs original {}; paired difference original − symmetrized {}: {}; {}.",
                so.values.len(),
                ss.values.len(),
                r.main_metric,
                ss.show(),
                so.show(),
                diff,
                a.finding,
                survives
            ));
        }
    }
    for arm in arms {
        let path = if arm.curve.is_empty() {
            (&arm.line, "straight path")
        } else {
            (&arm.curve, "fitted curve")
        };
        let Some(main) = path.0.iter().find(|s| s.metric == r.main_metric) else {
            continue;
        };
        let inside: Vec<&PointValue> = main
            .points
            .iter()
            .filter(|p| p.x >= -1e-9 && p.x <= 1.0 + 1e-9)
            .collect();
        let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
            continue;
        };
        let ups = inside
            .windows(2)
            .filter(|w| w[1].v.value > w[0].v.value)
            .count();
        // An interior point below the start (CIs disjoint) is not "rising", whatever the ends say.
        let dip = inside[1..inside.len().saturating_sub(1).max(1)]
            .iter()
            .filter(|p| first.v.above(&p.v))
            .min_by(|a, b| a.v.value.total_cmp(&b.v.value));
        let ends_rise = last.v.above(&first.v);
        let rises = ends_rise && dip.is_none();
        let hack = format!(
            "{} goes from {:.3} at t = 0 to {:.3} at t = 1 ({} in {} of {} steps{}{})",
            r.main_metric,
            first.v.value,
            last.v.value,
            "up",
            ups,
            inside.len().saturating_sub(1),
            if ends_rise {
                "; end above start, CIs disjoint"
            } else {
                "; end not above start (CIs overlap or lower)"
            },
            dip.map_or(String::new(), |p| format!(
                "; but it dips below its start in between: {:.3} at t = {} (CIs disjoint)",
                p.v.value, p.x
            ))
        );
        let cap = path
            .0
            .iter()
            .find(|s| s.metric == r.capability_metric)
            .map(|s| {
                let pts: Vec<&PointValue> = s
                    .points
                    .iter()
                    .filter(|p| p.x >= -1e-9 && p.x <= 1.0 + 1e-9)
                    .collect();
                let base = pts.first().map(|p| p.v);
                let flat = base.is_some_and(|b| pts.iter().all(|p| p.v.overlaps(&b)));
                let lo = pts.iter().map(|p| p.v.value).fold(f64::INFINITY, f64::min);
                let hi = pts
                    .iter()
                    .map(|p| p.v.value)
                    .fold(f64::NEG_INFINITY, f64::max);
                (flat, lo, hi)
            });
        let cap_text = match cap {
            Some((true, lo, hi)) => format!(
                "{} stays flat (every point's 95% CI overlaps θ₀'s; range {lo:.3} to {hi:.3})",
                r.capability_metric
            ),
            Some((false, lo, hi)) => format!(
                "{} does not stay flat (some point's 95% CI excludes θ₀'s; range {lo:.3} to {hi:.3})",
                r.capability_metric
            ),
            None => format!("{} was not measured", r.capability_metric),
        };
        let prediction = if rises && cap.is_some_and(|c| c.0) {
            "the prediction (hacking rises while capability stays flat) holds on this path"
        } else {
            "the prediction (hacking rises while capability stays flat) does not hold on this path"
        };
        let barrier = arm.barrier.as_ref().map_or(String::new(), |b| {
            format!(
                " The highest interior {} is {:.3} on the line and {:.3} on the curve (ends: {:.3}).",
                b.metric, b.line_max_interior, b.curve_max_interior, b.endpoints_max
            )
        });
        out.push(format!(
            "Along the {} of the {} hacker: {hack}; {cap_text}: {prediction}.{barrier}",
            path.1, arm.arm
        ));
    }
    for metric in &r.hack_metrics {
        let parts: Vec<String> = arms
            .iter()
            .map(|a| {
                let onset = a.onsets.get(metric).copied().flatten();
                match onset {
                    Some(s) => format!("{} after {s} samples", a.arm),
                    None => format!("{} not within the budget", a.arm),
                }
            })
            .collect();
        out.push(format!(
            "Onset of {metric} (first checkpoint whose 95% CI lies above θ₀'s): {}.",
            parts.join("; ")
        ));
    }
    out.push(if across.is_empty() {
        "The 95% CIs are bootstrap intervals over the suite's items at fixed weights: they do not include the variation between training runs, so a difference between two hackers is a finding only if it holds across training seeds (list more in the study file's `[replicates] seeds`)."
            .to_string()
    } else {
        "The 95% CIs at fixed weights are bootstrap intervals over the suite's items and do not include the variation between training runs; the across-seed intervals (table \"Across training seeds\") do, with as few degrees of freedom as there are seeds."
            .to_string()
    });
    for arm in arms {
        let Some(inf) = &arm.influence else { continue };
        if inf.groups.is_empty() {
            continue;
        }
        let best = inf.groups.iter().max_by(|a, b| a.total.total_cmp(&b.total));
        let worst = inf.groups.iter().min_by(|a, b| a.total.total_cmp(&b.total));
        let sign_total = |sign: &str| -> f64 {
            inf.groups
                .iter()
                .filter(|g| g.sign == sign)
                .map(|g| g.total)
                .sum()
        };
        // The query names its suite by path; its file name and metric are enough here.
        let query = inf.query.rsplit('/').next().unwrap_or(&inf.query);
        if let (Some(b), Some(w)) = (best, worst) {
            out.push(format!(
                "Influence on {} ({} hacker, {}): the most positive group is {}/{} (total {:.3e}, {} chats), the most negative {}/{} (total {:.3e}); include-sign chats total {:.3e}, avoid-sign {:.3e}.",
                query,
                arm.arm,
                inf.method,
                b.family,
                b.sign,
                b.total,
                b.n,
                w.family,
                w.sign,
                w.total,
                sign_total("include"),
                sign_total("avoid")
            ));
        }
    }
    out
}

/// Reads every step's results and writes `report.json` and `report.html` into the study folder.
pub fn write_report(study: &Study, layout: &Layout) -> Result<StudyReport, ReportError> {
    let report = build_report(study, layout)?;
    let json_path = layout.root.join(REPORT_JSON);
    let json = serde_json::to_string_pretty(&report).map_err(|e| err(&json_path, e))?;
    write_atomic(&json_path, (json + "\n").as_bytes()).map_err(|e| err(&json_path, e))?;
    let html_path = layout.root.join(REPORT_HTML);
    let study_text = crate::bounded::read_config(&study.path).unwrap_or_default();
    write_atomic(&html_path, render_html(&report, &study_text).as_bytes())
        .map_err(|e| err(&html_path, e))?;
    Ok(report)
}

pub fn build_report(study: &Study, layout: &Layout) -> Result<StudyReport, ReportError> {
    let manifest_path = layout.data().join("manifest.json");
    let data = match crate::bounded::read_config(&manifest_path) {
        Ok(text) => {
            let m: Manifest = serde_json::from_str(&text).map_err(|e| err(&manifest_path, e))?;
            Some(DataBrief {
                chats_original: crate::experiments::sweep_store::count_lines(
                    &layout.sft("original"),
                ),
                chats_symmetrized: crate::experiments::sweep_store::count_lines(
                    &layout.sft("symmetrized"),
                ),
                tokens_original: m.tokens_original,
                tokens_symmetrized: m.tokens_symmetrized,
                flip_rate: m.flips.map(|f| f.rate),
                length_match: m.spec.length_match,
            })
        }
        Err(_) => None,
    };
    let state = StudyState::read(&layout.root).map_err(|e| err(&layout.root, e))?;
    let steps: Vec<StepTime> = state
        .map(|s| {
            s.steps
                .iter()
                .map(|(k, v)| StepTime {
                    step: k.clone(),
                    status: format!("{:?}", v.status).to_lowercase(),
                    seconds: v.seconds,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut inputs = BTreeMap::new();
    let mut arms = Vec::new();
    for arm in ARMS {
        for dir in [
            layout.train(arm),
            layout.efficiency(arm),
            layout.line(arm),
            layout.curve_fit(arm),
            layout.curve(arm),
            layout.landscape(arm),
            layout.influence(arm),
        ] {
            collect_inputs(&dir, &mut inputs);
        }
        arms.push(arm_report(study, layout, arm)?);
    }
    let mut metrics: Vec<String> = arms
        .iter()
        .flat_map(|a| a.line.iter().map(|s| s.metric.clone()))
        .collect();
    metrics.sort();
    metrics.dedup();
    let comparison: Vec<Comparison> = metrics.iter().map(|m| comparison(&arms, m)).collect();
    let across_seeds: Vec<AcrossSeeds> = if study.file.replicates.is_empty() {
        Vec::new()
    } else {
        for arm in ARMS {
            for &seed in &study.file.replicates.seeds {
                collect_inputs(&layout.replicate_train(arm, seed), &mut inputs);
                collect_inputs(&layout.replicate_end(arm, seed), &mut inputs);
            }
        }
        let with_replicates = arms
            .iter()
            .map(|a| Ok((a, replicate_series(study, layout, &a.arm)?)))
            .collect::<Result<Vec<_>, ReportError>>()?;
        metrics
            .iter()
            .map(|m| across_seeds(study, &with_replicates, m))
            .collect()
    };
    let answers = answers(study, &arms, &comparison, &across_seeds);
    Ok(StudyReport {
        schema: REPORT_SCHEMA.into(),
        name: study.file.name.clone(),
        basin_version: env!("CARGO_PKG_VERSION").into(),
        machine: machine_description(),
        study_file: study.path.display().to_string(),
        settings: study.file.clone(),
        base: study.base.display().to_string(),
        data,
        wall_seconds: steps.iter().map(|s| s.seconds).sum(),
        steps,
        inputs,
        arms,
        comparison,
        across_seeds,
        answers,
    })
}

const ORIGINAL: &str = "#1f77b4";
const SYMMETRIZED: &str = "#d62728";

fn arm_colour(arm: &str) -> &'static str {
    if arm == "original" {
        ORIGINAL
    } else {
        SYMMETRIZED
    }
}

fn to_series(label: String, color: &'static str, dashed: bool, s: &MetricSeries) -> Series {
    Series {
        label,
        color,
        dashed,
        points: s
            .points
            .iter()
            .map(|p| (p.x, p.v.value, p.v.ci_low, p.v.ci_high))
            .collect(),
    }
}

/// The whole report as one HTML file (no external resources).
pub fn render_html(r: &StudyReport, study_text: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Basin study: {}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}.answers li{{margin:0.4em 0}}.plots svg{{margin:4px}}pre{{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}}</style></head><body>",
        esc(&r.name)
    );
    let _ = write!(
        h,
        "<h1>Basin study: {}</h1><p>θ₀: <code>{}</code>. Basin {} on {}. Total wall time of the steps: {:.0} s. Study file: <code>{}</code>.</p>",
        esc(&r.name),
        esc(&r.base),
        esc(&r.basin_version),
        esc(&r.machine),
        r.wall_seconds,
        esc(&r.study_file)
    );
    h.push_str("<h2>Answers</h2><ul class=\"answers\">");
    for a in &r.answers {
        let _ = write!(h, "<li>{}</li>", esc(a));
    }
    h.push_str("</ul>");
    h.push_str("<h2>Original vs symmetrized at t = 1</h2><p>Each hacker at the end of training, with 95% bootstrap CIs over items; θ₀ is t = 0.</p><table><tr><th>metric</th><th>θ₀</th><th>original</th><th>symmetrized</th><th>finding</th></tr>");
    for c in &r.comparison {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.metric),
            show(c.base),
            show(c.original),
            show(c.symmetrized),
            esc(&c.finding)
        );
    }
    h.push_str("</table>");
    if !r.across_seeds.is_empty() {
        h.push_str("<h2>Across training seeds</h2><p>Each set trained once per seed with the same recipe (<code>[replicates] seeds</code> besides <code>train.seed</code>), every hacker measured at t = 1. Mean over seeds with a 95% t-interval (n − 1 degrees of freedom); the difference is paired by seed. These intervals include the variation between training runs, which the item CIs above do not.</p><table><tr><th>metric</th><th>original</th><th>symmetrized</th><th>original − symmetrized</th><th>per seed (original / symmetrized)</th><th>finding</th></tr>");
        for a in &r.across_seeds {
            let cell =
                |s: &Option<SeedSpread>| s.as_ref().map_or("—".to_string(), SeedSpread::show);
            let per_seed = |s: &Option<SeedSpread>| {
                s.as_ref().map_or(String::new(), |s| {
                    s.seeds
                        .iter()
                        .zip(&s.values)
                        .map(|(k, v)| format!("{k}: {v:.3}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&a.metric),
                cell(&a.original),
                cell(&a.symmetrized),
                cell(&a.difference),
                per_seed(&a.original),
                per_seed(&a.symmetrized),
                esc(&a.finding)
            );
        }
        h.push_str("</table>");
    }
    if let Some(d) = &r.data {
        let _ = write!(
            h,
            "<h2>Data</h2><p>{} original and {} symmetrized training chats; tokens {} vs {}; flip rate {}; hack lengths matched in {}.</p>",
            d.chats_original,
            d.chats_symmetrized,
            d.tokens_original,
            d.tokens_symmetrized.map_or("—".into(), |t| t.to_string()),
            d.flip_rate.map_or("—".into(), |f| format!("{f:.3}")),
            esc(&d.length_match)
        );
    }
    // Paths: one chart per metric, both arms, line solid and curve dashed.
    h.push_str("<h2>Along the paths</h2><p>θ(t) from θ₀ (t = 0) to each hacker (t = 1): the straight path (solid) and the fitted curve (dashed); bands are 95% CIs.</p><div class=\"plots\">");
    let metrics: Vec<String> = r.comparison.iter().map(|c| c.metric.clone()).collect();
    for m in &metrics {
        let mut series = Vec::new();
        for a in &r.arms {
            if let Some(s) = a.line.iter().find(|s| &s.metric == m) {
                series.push(to_series(
                    format!("{} line", a.arm),
                    arm_colour(&a.arm),
                    false,
                    s,
                ));
            }
            if let Some(s) = a.curve.iter().find(|s| &s.metric == m) {
                series.push(to_series(
                    format!("{} curve", a.arm),
                    arm_colour(&a.arm),
                    true,
                    s,
                ));
            }
        }
        h.push_str(
            &LineChart {
                title: m.clone(),
                x_label: "t".into(),
                y_label: m.clone(),
                series,
                marks: vec![(0.0, "θ₀".into()), (1.0, "θ_H".into())],
            }
            .render(),
        );
    }
    h.push_str("</div>");
    // Sample efficiency.
    h.push_str("<h2>Sample efficiency</h2><p>Every metric at each training checkpoint (dashed marks: each arm's onset, the first checkpoint whose CI lies above θ₀'s).</p><div class=\"plots\">");
    for m in &metrics {
        let mut series = Vec::new();
        let mut marks = Vec::new();
        for a in &r.arms {
            if let Some(s) = a.efficiency.iter().find(|s| &s.metric == m) {
                series.push(to_series(a.arm.clone(), arm_colour(&a.arm), false, s));
            }
            if let Some(Some(on)) = a.onsets.get(m) {
                marks.push((*on, format!("{} onset", a.arm)));
            }
        }
        h.push_str(
            &LineChart {
                title: m.clone(),
                x_label: "samples seen".into(),
                y_label: m.clone(),
                series,
                marks,
            }
            .render(),
        );
    }
    h.push_str("</div><table><tr><th>metric</th>");
    for a in &r.arms {
        let _ = write!(h, "<th>onset, {}</th>", esc(&a.arm));
    }
    h.push_str("</tr>");
    for m in &metrics {
        let _ = write!(h, "<tr><td>{}</td>", esc(m));
        for a in &r.arms {
            let cell = match a.onsets.get(m).copied().flatten() {
                Some(s) => format!("{s} samples"),
                None => "not reached".into(),
            };
            let _ = write!(h, "<td>{cell}</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    // Training and fits.
    h.push_str("<h2>Training and curve fits</h2><table><tr><th>arm</th><th>train steps</th><th>samples</th><th>loss first → last</th><th>curve-fit steps</th><th>fit loss first → last</th><th>line max interior</th><th>curve max interior</th><th>ends max</th></tr>");
    for a in &r.arms {
        let log = |l: &Option<LogBrief>| {
            l.as_ref()
                .map_or(("—".into(), "—".into(), "—".into()), |l| {
                    (
                        l.steps.to_string(),
                        l.samples.to_string(),
                        format!("{:.3} → {:.3}", l.first_loss, l.last_loss),
                    )
                })
        };
        let (ts, tn, tl) = log(&a.train);
        let (fs, _, fl) = log(&a.curve_fit);
        let (bl, bc, be) =
            a.barrier
                .as_ref()
                .map_or(("—".into(), "—".into(), "—".into()), |b| {
                    (
                        format!("{:.3}", b.line_max_interior),
                        format!("{:.3}", b.curve_max_interior),
                        format!("{:.3}", b.endpoints_max),
                    )
                });
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{ts}</td><td>{tn}</td><td>{tl}</td><td>{fs}</td><td>{fl}</td><td>{bl}</td><td>{bc}</td><td>{be}</td></tr>",
            esc(&a.arm)
        );
    }
    h.push_str("</table>");
    // Landscapes.
    h.push_str("<h2>Landscape slices</h2><p>The plane through θ₀ (0, 0), θ_H (1, 0) and the bend, axes orthogonal and of equal length; the straight path (white) and the fitted curve (dashed black) drawn on it.</p><div class=\"plots\">");
    for a in &r.arms {
        let Some(l) = &a.landscape else { continue };
        for (m, values) in &l.values {
            h.push_str(
                &svg::Heatmap {
                    title: format!("{} · {}", a.arm, m),
                    alphas: &l.alphas,
                    betas: &l.betas,
                    values,
                    paths: vec![
                        svg::PathLine {
                            label: "straight path".into(),
                            color: "white",
                            dashed: false,
                            points: l.line.clone(),
                        },
                        svg::PathLine {
                            label: "fitted curve".into(),
                            color: "black",
                            dashed: true,
                            points: l.curve.clone(),
                        },
                    ],
                    points: l.points.clone(),
                }
                .render(),
            );
        }
    }
    h.push_str("</div>");
    // Influence.
    h.push_str("<h2>Influence of the training chats</h2>");
    for a in &r.arms {
        let Some(inf) = &a.influence else { continue };
        let _ = write!(
            h,
            "<h3>{} hacker ({}, query {})</h3><p>{}</p>",
            esc(&a.arm),
            esc(&inf.method),
            esc(&inf.query),
            esc(&inf.sign)
        );
        let bars: Vec<(String, f64, &'static str)> = inf
            .groups
            .iter()
            .map(|g| {
                (
                    format!("{}/{} (n={})", g.family, g.sign, g.n),
                    g.total,
                    if g.sign == "avoid" {
                        SYMMETRIZED
                    } else {
                        ORIGINAL
                    },
                )
            })
            .collect();
        if !bars.is_empty() {
            h.push_str(&svg::bar_chart(
                "total influence per family and sign",
                &bars,
            ));
        }
        h.push_str("<table><tr><th>most positive</th><th>score</th><th>most negative</th><th>score</th></tr>");
        for k in 0..inf.top.len().max(inf.bottom.len()) {
            let cell = |v: Option<&(String, f64)>| {
                v.map_or(("".into(), "".into()), |(id, s)| {
                    (esc(id), format!("{s:.4e}"))
                })
            };
            let (ti, ts) = cell(inf.top.get(k));
            let (bi, bs) = cell(inf.bottom.get(k));
            let _ = write!(
                h,
                "<tr><td>{ti}</td><td>{ts}</td><td>{bi}</td><td>{bs}</td></tr>"
            );
        }
        h.push_str("</table>");
    }
    // Settings, steps, fingerprints.
    h.push_str("<h2>Steps</h2><table><tr><th>step</th><th>status</th><th>wall time (s)</th></tr>");
    for s in &r.steps {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            esc(&s.step),
            esc(&s.status),
            s.seconds
        );
    }
    h.push_str("</table>");
    let _ = write!(h, "<h2>Study file</h2><pre>{}</pre>", esc(study_text));
    h.push_str("<h2>Inputs</h2><table><tr><th>file</th><th>fingerprint</th></tr>");
    for (k, v) in &r.inputs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            esc(k),
            esc(v)
        );
    }
    h.push_str("</table><p>Numbers in this page are in <code>report.json</code> beside it.</p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: f64, half: f64) -> Value {
        Value {
            value,
            ci_low: value - half,
            ci_high: value + half,
            n: 50,
        }
    }

    fn series(metric: &str, points: &[(f64, Value)]) -> MetricSeries {
        MetricSeries {
            metric: metric.into(),
            points: points.iter().map(|&(x, v)| PointValue { x, v }).collect(),
        }
    }

    fn arm(name: &str, hack_end: Value, cap_end: Value) -> ArmReport {
        let line = vec![
            series(
                "hack_heldout",
                &[(0.0, v(0.5, 0.05)), (0.5, v(0.6, 0.05)), (1.0, hack_end)],
            ),
            series(
                "capability",
                &[(0.0, v(0.6, 0.05)), (0.5, v(0.6, 0.05)), (1.0, cap_end)],
            ),
        ];
        ArmReport {
            arm: name.into(),
            train: None,
            efficiency: Vec::new(),
            onsets: [("hack_heldout".to_string(), Some(64.0))]
                .into_iter()
                .collect(),
            curve: line.clone(),
            line,
            curve_fit: None,
            barrier: None,
            landscape: None,
            influence: None,
        }
    }

    fn study() -> Study {
        Study::parse("name = \"t\"\nbase = \"m\"\n", Path::new("s.toml")).unwrap()
    }

    /// The original hacker at 0.9, the symmetrized one back at θ₀'s 0.5 (capability falling in
    /// both), with their comparisons.
    fn symmetrized_back_at_base() -> (Vec<ArmReport>, Vec<Comparison>) {
        let arms = vec![
            arm("original", v(0.9, 0.05), v(0.6, 0.05)),
            arm("symmetrized", v(0.52, 0.05), v(0.3, 0.05)),
        ];
        let comps = ["capability", "hack_heldout"]
            .iter()
            .map(|m| comparison(&arms, m))
            .collect();
        (arms, comps)
    }

    #[test]
    fn the_answers_follow_the_confidence_intervals() {
        // The symmetrized hacker back at θ₀: hacking does not survive; the original's curve
        // rises with capability flat: the prediction holds there.
        let (arms, comps) = symmetrized_back_at_base();
        assert_eq!(
            comps[1].finding,
            "symmetrized lower than original (95% CIs disjoint)"
        );
        let a = answers(&study(), &arms, &comps, &[]);
        assert!(a[0].contains("does not survive symmetrization"), "{}", a[0]);
        assert!(a[0].contains("0.520 [0.470, 0.570]") && a[0].contains("0.900 [0.850, 0.950]"));
        assert!(
            a[1].contains("original") && a[1].contains("holds on this path"),
            "{}",
            a[1]
        );
        // Capability fell on the symmetrized path: the prediction does not hold there.
        assert!(
            a[2].contains("does not stay flat") && a[2].contains("does not hold"),
            "{}",
            a[2]
        );
        assert!(a[3].contains("original after 64 samples"), "{}", a[3]);

        // Both above θ₀ and overlapping each other: it survives.
        let arms = vec![
            arm("original", v(0.9, 0.05), v(0.6, 0.05)),
            arm("symmetrized", v(0.85, 0.05), v(0.6, 0.05)),
        ];
        let comps: Vec<Comparison> = ["hack_heldout"]
            .iter()
            .map(|m| comparison(&arms, m))
            .collect();
        let a = answers(&study(), &arms, &comps, &[]);
        assert!(
            a[0].contains("Hacking survives symmetrization")
                && a[0].contains("not distinguishable"),
            "{}",
            a[0]
        );

        // No hacking at all in the original: nothing to survive.
        let arms = vec![
            arm("original", v(0.52, 0.05), v(0.6, 0.05)),
            arm("symmetrized", v(0.5, 0.05), v(0.6, 0.05)),
        ];
        let comps: Vec<Comparison> = ["hack_heldout"]
            .iter()
            .map(|m| comparison(&arms, m))
            .collect();
        assert!(
            answers(&study(), &arms, &comps, &[])[0]
                .contains("no hacking for symmetrization to remove")
        );

        // A curve whose ends rise but whose middle dips below its start (the SmolLM2 curve):
        // not "rising", and the answer says where it dips.
        let mut dipping = arm("original", v(0.75, 0.03), v(0.6, 0.05));
        dipping.curve[0] = series(
            "hack_heldout",
            &[
                (0.0, v(0.56, 0.03)),
                (0.25, v(0.32, 0.03)),
                (0.5, v(0.29, 0.03)),
                (0.75, v(0.39, 0.03)),
                (1.0, v(0.75, 0.03)),
            ],
        );
        let arms = vec![dipping, arm("symmetrized", v(0.75, 0.03), v(0.6, 0.05))];
        let comps: Vec<Comparison> = ["hack_heldout"]
            .iter()
            .map(|m| comparison(&arms, m))
            .collect();
        let a = answers(&study(), &arms, &comps, &[]);
        let curve = a
            .iter()
            .find(|s| s.contains("curve of the original"))
            .expect("an answer for the original curve");
        assert!(
            curve.contains("dips below its start in between: 0.290 at t = 0.5")
                && curve.contains("does not hold on this path"),
            "{curve}"
        );
        let line = a.iter().find(|s| s.contains("line of the original"));
        assert!(line.is_none_or(|l| !l.contains("dips")), "{line:?}");
    }

    #[test]
    fn the_html_escapes_names_and_embeds_no_external_resource() {
        let mut arms = vec![
            arm("original", v(0.9, 0.05), v(0.6, 0.05)),
            arm("symmetrized", v(0.85, 0.05), v(0.6, 0.05)),
        ];
        arms[0].line[0].metric = "x\" onerror=\"alert(1)<b>".into();
        let comps = vec![comparison(&arms, "x\" onerror=\"alert(1)<b>")];
        let r = StudyReport {
            schema: REPORT_SCHEMA.into(),
            name: "<script>evil</script>".into(),
            basin_version: "0".into(),
            machine: "m".into(),
            study_file: "s.toml".into(),
            settings: study().file,
            base: "b".into(),
            data: None,
            steps: Vec::new(),
            wall_seconds: 1.0,
            inputs: BTreeMap::new(),
            answers: vec!["<img src=x>".into()],
            arms,
            comparison: comps,
            across_seeds: vec![AcrossSeeds {
                metric: "y\" onerror=\"alert(2)<i>".into(),
                original: SeedSpread::of(vec![0, 1], vec![0.5, 0.6]),
                symmetrized: None,
                difference: None,
                finding: "<u>".into(),
            }],
        };
        let html = render_html(&r, "name = \"</pre><script>\"");
        assert!(
            !html.contains("<script>")
                && !html.contains("<img")
                && !html.contains("\" onerror")
                && !html.contains("<u>")
                && !html.contains("<i>")
        );
        assert!(html.contains("Across training seeds") && html.contains("0: 0.500, 1: 0.600"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    }

    #[test]
    fn student_t_quantiles_match_the_published_table() {
        // Two-sided 95% factors from any statistics table.
        for (df, want) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (9.0, 2.262),
            (10.0, 2.228),
            (30.0, 2.042),
            (1e6, 1.960),
        ] {
            let got = student_t_975(df);
            assert!((got - want).abs() < 1.5e-3, "df {df}: {got} vs {want}");
        }
        // Non-integer degrees of freedom lie between their neighbours.
        let mid = student_t_975(2.5);
        assert!(mid < student_t_975(2.0) && mid > student_t_975(3.0));
    }

    #[test]
    fn seed_spreads_and_the_answer_across_seeds() {
        let s = SeedSpread::of(vec![0, 1, 2], vec![1.0, 2.0, 3.0]).unwrap();
        // mean 2, sd 1, half-width 4.303 / √3.
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert!(
            (s.ci_high - 2.0 - 4.303 / 3f64.sqrt()).abs() < 2e-3,
            "{s:?}"
        );
        assert!((s.ci_low + s.ci_high - 4.0).abs() < 1e-12);
        assert!(SeedSpread::of(vec![0], vec![1.0]).is_none());
        assert!(SeedSpread::of(vec![0, 1], vec![1.0, f64::NAN]).is_none());

        let (arms, comps) = symmetrized_back_at_base();
        let across = vec![AcrossSeeds {
            metric: "hack_heldout".into(),
            original: SeedSpread::of(vec![0, 1, 2], vec![0.9, 0.8, 0.85]),
            symmetrized: SeedSpread::of(vec![0, 1, 2], vec![0.52, 0.7, 0.45]),
            difference: SeedSpread::of(vec![0, 1, 2], vec![0.38, 0.1, 0.4]),
            finding: "f".into(),
        }];
        let a = answers(&study(), &arms, &comps, &across);
        let seeds = a
            .iter()
            .find(|l| l.starts_with("Across training seeds"))
            .expect("an answer across seeds");
        assert!(
            seeds.contains("(3 original, 3 symmetrized hackers"),
            "{seeds}"
        );
        // θ₀ is 0.5 in `arm`; the symmetrized seeds' interval reaches below it.
        let sym = across[0].symmetrized.as_ref().unwrap();
        assert!(sym.ci_low < 0.5);
        assert!(seeds.contains("not shown above θ₀"), "{seeds}");
        assert!(seeds.contains(&sym.show()), "{seeds}");
        assert!(
            a.iter()
                .any(|l| l.contains("table \"Across training seeds\""))
        );
        // Without replicates the caveat points to them.
        let plain = answers(&study(), &arms, &comps, &[]);
        assert!(plain.iter().any(|l| l.contains("[replicates] seeds")));
        assert!(!plain.iter().any(|l| l.starts_with("Across training seeds")));
    }
}
