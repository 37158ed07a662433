//! A result folder of points: `run.json` (what was run), `results.jsonl` (one line per finished
//! (point, metric), appended and fsync'd), `summary.csv` (one row per point, rewritten
//! atomically). A point has coordinates: t on a path (or samples seen over training
//! checkpoints), or (α, β) on a plane, where a landscape's folder (`basin.landscape.v1`) names
//! the files `grid.jsonl` / `grid.csv` and the first coordinate `alpha` ([`StoreFiles`]).
//!
//! Restarting with the same folder resumes: finished points are read back (a line cut short by
//! a kill is dropped) and skipped; a different spec is refused, naming what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::MetricResult;

pub const SWEEP_SCHEMA: &str = "basin.sweep.v1";
/// `run.json` schema of a loss-landscape slice (`basin landscape`).
pub const LANDSCAPE_SCHEMA: &str = "basin.landscape.v1";

/// The files of a result folder and how its points are addressed; which one a folder uses
/// follows from its `run.json` schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFiles {
    pub results: &'static str,
    pub summary: &'static str,
    /// Points are (α, β) on a plane: lines carry `alpha` and `beta` instead of `t`.
    pub plane: bool,
}

impl StoreFiles {
    pub const SWEEP: StoreFiles = StoreFiles {
        results: "results.jsonl",
        summary: "summary.csv",
        plane: false,
    };
    pub const LANDSCAPE: StoreFiles = StoreFiles {
        results: "grid.jsonl",
        summary: "grid.csv",
        plane: true,
    };

    /// The files a `run.json` schema uses.
    pub fn of_schema(schema: &str) -> StoreFiles {
        if schema == LANDSCAPE_SCHEMA {
            Self::LANDSCAPE
        } else {
            Self::SWEEP
        }
    }

    /// The files of a result folder, from its `run.json` (a sweep's when it cannot be read).
    pub fn of_dir(dir: &Path) -> StoreFiles {
        crate::bounded::read_config(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<RunRecord>(&t).ok())
            .map_or(Self::SWEEP, |r| Self::of_schema(&r.schema))
    }
}

/// The canonical key of a point: [`t_key`] of t, and of β on a plane.
pub fn point_key(t: f64, beta: Option<f64>) -> String {
    match beta {
        Some(b) => format!("{},{}", t_key(t), t_key(b)),
        None => t_key(t),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{}: this folder holds a different run ({diff}); use another --out or the same settings", path.display())]
    SpecMismatch { path: PathBuf, diff: String },
    #[error("{}: this run was started {diff}; resuming would mix results; use another --out, or pass --allow-resume-change to continue here (each new point then records where it ran)", path.display())]
    ExecutionChanged { path: PathBuf, diff: String },
    #[error("{0}")]
    Input(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: String,
    pub basin_version: String,
    /// The sweep's settings (path kind, inputs, t range, suite, bootstrap, shard).
    pub spec: serde_json::Value,
    /// Fingerprint of every input file: `sha256:<hex>` of its content (large files hashed once
    /// per machine, see `fingerprint`); folders of older versions may hold
    /// `size:<bytes>,mtime:<secs>` for large files, accepted while those are unchanged.
    pub inputs: BTreeMap<String, String>,
    /// Where and how it ran (absent in folders of older versions and in training runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
}

/// How a sweep runs: not part of what it computes (any device, batch or t-per-pass gives the
/// same values to float rounding), but recorded, and a resume on another device or Basin version
/// is refused unless the user asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The compute device as Basin names it, e.g. `cpu (burn-flex)`.
    pub device: String,
    pub batch: usize,
    pub t_per_pass: usize,
}

/// Canonical text of a t value (12 decimals), so float drift never breaks a resume.
pub fn t_key(t: f64) -> String {
    let s = format!("{t:.12}");
    if s == "-0.000000000000" {
        "0.000000000000".to_string()
    } else {
        s
    }
}

/// `START:STOP:N` → N evenly spaced points including both ends (N = 1 → START).
pub fn parse_t_range(spec: &str) -> Result<Vec<f64>, StoreError> {
    let bad = |why: &str| {
        StoreError::Input(format!(
            "--t `{spec}`: {why} (expected START:STOP:N, e.g. 0:1:11 or -0.5:1.5:9)"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [start, stop, n] = parts[..] else {
        return Err(bad("needs three fields"));
    };
    let start: f64 = start
        .trim()
        .parse()
        .map_err(|_| bad("START is not a number"))?;
    let stop: f64 = stop
        .trim()
        .parse()
        .map_err(|_| bad("STOP is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| bad("N is not a whole number"))?;
    if !start.is_finite() || !stop.is_finite() {
        return Err(bad("START and STOP must be finite"));
    }
    if n == 0 || n > 100_000 {
        return Err(bad("N must be between 1 and 100000"));
    }
    if n > 1 && start == stop {
        return Err(bad("START equals STOP with N > 1"));
    }
    Ok((0..n)
        .map(|i| {
            let t = if n == 1 {
                start
            } else {
                start + i as f64 * (stop - start) / (n - 1) as f64
            };
            // Canonicalise through the key so 0.1 + 0.2 style drift is gone.
            t_key(t).parse().unwrap_or(t)
        })
        .collect())
}

/// `i/n` → (i, n) with i < n.
pub fn parse_shard(spec: &str) -> Result<(usize, usize), StoreError> {
    let bad = |why: &str| {
        StoreError::Input(format!(
            "--shard `{spec}`: {why} (expected i/n with 0 ≤ i < n, e.g. 0/4)"
        ))
    };
    let (i, n) = spec.split_once('/').ok_or_else(|| bad("needs i/n"))?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| bad("i is not a whole number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| bad("n is not a whole number"))?;
    if n == 0 || i >= n {
        return Err(bad("needs 0 ≤ i < n"));
    }
    Ok((i, n))
}

/// The points of shard `i` of `n`: every n-th point starting at i (deterministic; the shards
/// of one range partition it).
pub fn shard_points(points: &[f64], i: usize, n: usize) -> Vec<f64> {
    points
        .iter()
        .enumerate()
        .filter(|(k, _)| k % n == i)
        .map(|(_, &t)| t)
        .collect()
}

/// Creates `dir` and writes `run.json`, or checks that the `run.json` already there holds the
/// same schema, spec and input fingerprints (a different one is refused, naming what differs).
/// Every result folder (sweeps, training runs) starts with this.
pub fn open_run_record(dir: &Path, record: &RunRecord) -> Result<(), StoreError> {
    open_run_record_allowing(dir, record, false).map(|_| ())
}

/// [`open_run_record`], also comparing where the run ran: another device or Basin version than
/// run.json's is refused unless `allow_changed`; then the answer is what each new point records
/// (`{"device", "basin_version"}`), `None` when nothing changed.
pub fn open_run_record_allowing(
    dir: &Path,
    record: &RunRecord,
    allow_changed: bool,
) -> Result<Option<serde_json::Value>, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let run_path = dir.join("run.json");
    if run_path.exists() {
        let text = crate::bounded::read_to_string(&run_path, crate::bounded::CONFIG_BYTES)
            .map_err(io(&run_path))?;
        let stored: RunRecord = serde_json::from_str(&text).map_err(|e| StoreError::Format {
            path: run_path.clone(),
            msg: format!("not a Basin run record: {e}"),
        })?;
        let current = RunRecord {
            inputs: super::fingerprint::with_legacy_fingerprints(&stored.inputs, &record.inputs),
            ..record.clone()
        };
        let diffs = record_differences(&stored, &current);
        if !diffs.is_empty() {
            return Err(StoreError::SpecMismatch {
                path: dir.to_path_buf(),
                diff: diffs.join("; "),
            });
        }
        let mut changed = Vec::new();
        if let (Some(was), Some(now)) = (&stored.execution, &record.execution)
            && was.device != now.device
        {
            changed.push(format!("on {} (now {})", was.device, now.device));
        }
        if stored.basin_version != record.basin_version {
            changed.push(format!(
                "by Basin {} (this is {})",
                stored.basin_version, record.basin_version
            ));
        }
        if !changed.is_empty() {
            if !allow_changed {
                return Err(StoreError::ExecutionChanged {
                    path: dir.to_path_buf(),
                    diff: changed.join(" and "),
                });
            }
            return Ok(Some(serde_json::json!({
                "device": record.execution.as_ref().map(|e| e.device.clone()),
                "basin_version": record.basin_version,
            })));
        }
    } else {
        let json = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Format {
            path: run_path.clone(),
            msg: e.to_string(),
        })?;
        write_atomic(&run_path, &json)?;
    }
    Ok(None)
}

pub struct SweepStore {
    dir: PathBuf,
    files: StoreFiles,
    /// What a point's coordinate is (`t` on a path, `samples_seen` for training checkpoints),
    /// from the spec's `coordinate` (`t` when absent, as in folders of older versions).
    coordinate: String,
    results: BTreeMap<(String, String), MetricResult>,
    file: File,
    /// Set when a resume runs on another device or Basin version than run.json's: written into
    /// each new point's `extra.resumed_under`.
    resumed_under: Option<serde_json::Value>,
}

impl SweepStore {
    /// Creates the folder (writing `run.json`) or reopens it, refusing a different spec, device
    /// or Basin version.
    pub fn open_or_create(dir: &Path, record: &RunRecord) -> Result<SweepStore, StoreError> {
        Self::open_or_create_allowing(dir, record, false)
    }

    /// [`Self::open_or_create`]; with `allow_changed`, a resume on another device or Basin
    /// version goes on, and each point it computes records where it ran.
    pub fn open_or_create_allowing(
        dir: &Path,
        record: &RunRecord,
        allow_changed: bool,
    ) -> Result<SweepStore, StoreError> {
        let resumed_under = open_run_record_allowing(dir, record, allow_changed)?;
        let files = StoreFiles::of_schema(&record.schema);
        let results_path = dir.join(files.results);
        let results = read_results(&results_path)?;
        // Drop a torn last line (a kill mid-write) by rewriting the file from what parsed. This
        // must happen before the append handle is opened: the rewrite replaces the file (rename),
        // and a handle to the old one would append to an unlinked file.
        rewrite_if_torn(&results_path, &results, files.plane)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&results_path)
            .map_err(io(&results_path))?;
        // The new file's entry in the folder must be durable too (its lines are fsync'd).
        crate::durable::sync_dir(dir).map_err(io(dir))?;
        let coordinate = record
            .spec
            .get("coordinate")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("t")
            .to_string();
        Ok(SweepStore {
            dir: dir.to_path_buf(),
            files,
            coordinate,
            results,
            file,
            resumed_under,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_finished(&self, t: f64, metric: &str) -> bool {
        self.is_finished_at(t, None, metric)
    }

    /// Whether the point (t or α, and β on a plane) has `metric`.
    pub fn is_finished_at(&self, t: f64, beta: Option<f64>, metric: &str) -> bool {
        self.results
            .contains_key(&(point_key(t, beta), metric.to_string()))
    }

    pub fn files(&self) -> StoreFiles {
        self.files
    }

    /// All finished results, sorted by t (then β) then metric name.
    pub fn results(&self) -> Vec<&MetricResult> {
        sorted(&self.results)
    }

    /// Every finished (point, metric), with the point as its canonical key ([`point_key`]).
    pub fn finished(&self) -> BTreeSet<(String, String)> {
        self.results.keys().cloned().collect()
    }

    /// Appends one finished (point, metric) and makes it durable before returning.
    pub fn append(&mut self, r: &MetricResult) -> Result<(), StoreError> {
        let path = self.dir.join(self.files.results);
        if !r.t.is_finite() || !r.beta.unwrap_or(0.0).is_finite() {
            return Err(StoreError::Format {
                path,
                msg: format!(
                    "metric `{}`: point ({}, {:?}) is not finite",
                    r.metric, r.t, r.beta
                ),
            });
        }
        if r.beta.is_some() != self.files.plane {
            return Err(StoreError::Format {
                path,
                msg: format!(
                    "metric `{}`: a {} point in a {} folder",
                    r.metric,
                    if r.beta.is_some() { "plane" } else { "path" },
                    if self.files.plane {
                        "landscape"
                    } else {
                        "sweep"
                    }
                ),
            });
        }
        let mut r = r.clone();
        if let Some(note) = &self.resumed_under {
            match r.extra.as_object_mut() {
                Some(extra) => {
                    extra.insert("resumed_under".into(), note.clone());
                }
                None => r.extra = serde_json::json!({ "resumed_under": note }),
            }
        }
        let line = result_line(&path, &r, self.files.plane)?;
        self.file.write_all(line.as_bytes()).map_err(io(&path))?;
        self.file.sync_data().map_err(io(&path))?;
        self.results
            .insert((point_key(r.t, r.beta), r.metric.clone()), r);
        Ok(())
    }

    /// Rewrites `summary.csv` (`grid.csv`): one row per point, per metric its value and CI.
    pub fn write_summary(&self) -> Result<(), StoreError> {
        let path = self.dir.join(self.files.summary);
        let text = if self.files.plane {
            grid_csv(&self.results())
        } else {
            summary_csv(&self.results(), &self.coordinate)
        };
        write_atomic(&path, text.as_bytes())
    }
}

/// Rewrites `results.jsonl` from `results` when its last line lacks its newline (cut by a kill).
fn rewrite_if_torn(
    path: &Path,
    results: &BTreeMap<(String, String), MetricResult>,
    plane: bool,
) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    if !ends_torn(path).map_err(io(path))? {
        return Ok(());
    }
    let mut out = String::new();
    for r in sorted(results) {
        out.push_str(&result_line(path, r, plane)?);
    }
    write_atomic(path, out.as_bytes())
}

/// One `results.jsonl` line, newline included; on a plane the first coordinate is `alpha`.
fn result_line(path: &Path, r: &MetricResult, plane: bool) -> Result<String, StoreError> {
    if !plane {
        return json_line(path, r);
    }
    let format = |e: serde_json::Error| StoreError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let value = serde_json::to_value(r).map_err(format)?;
    let mut line = serde_json::Map::new();
    if let serde_json::Value::Object(fields) = value {
        for (k, v) in fields {
            line.insert(if k == "t" { "alpha".into() } else { k }, v);
        }
    }
    json_line(path, &line)
}

/// One JSON-lines record of a store file (`path` names it in errors), newline included.
pub fn json_line<T: Serialize>(path: &Path, value: &T) -> Result<String, StoreError> {
    let mut line = serde_json::to_string(value).map_err(|e| StoreError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    line.push('\n');
    Ok(line)
}

/// Results sorted by t (then β), then metric name.
fn sorted(results: &BTreeMap<(String, String), MetricResult>) -> Vec<&MetricResult> {
    let mut v: Vec<&MetricResult> = results.values().collect();
    v.sort_by(|a, b| {
        a.t.total_cmp(&b.t)
            .then_with(|| a.beta.unwrap_or(0.0).total_cmp(&b.beta.unwrap_or(0.0)))
            .then_with(|| a.metric.cmp(&b.metric))
    });
    v
}

/// `grid.csv` text: `alpha,beta`, then per metric its value and CI, one row per cell (sorted by
/// β, then α: the rows of a picture from the bottom up).
pub fn grid_csv(results: &[&MetricResult]) -> String {
    let mut metrics: Vec<&str> = results.iter().map(|r| r.metric.as_str()).collect();
    metrics.sort();
    metrics.dedup();
    let mut cells: BTreeMap<String, (f64, f64, BTreeMap<&str, &MetricResult>)> = BTreeMap::new();
    for r in results {
        let beta = r.beta.unwrap_or(0.0);
        cells
            .entry(point_key(r.t, r.beta))
            .or_insert((r.t, beta, BTreeMap::new()))
            .2
            .insert(r.metric.as_str(), r);
    }
    let mut out = String::from("alpha,beta");
    for m in &metrics {
        out.push_str(&format!(",{m},{m}_ci_low,{m}_ci_high"));
    }
    out.push('\n');
    let mut ordered: Vec<_> = cells.values().collect();
    ordered.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.total_cmp(&b.0)));
    for (alpha, beta, by_metric) in ordered {
        out.push_str(&format!("{alpha},{beta}"));
        for m in &metrics {
            match by_metric.get(m) {
                Some(r) => out.push_str(&format!(",{},{},{}", r.value, r.ci_low, r.ci_high)),
                None => out.push_str(",,,"),
            }
        }
        out.push('\n');
    }
    out
}

/// The onset of each metric over training checkpoints: the smallest coordinate (samples seen)
/// above 0 whose 95% CI lies entirely above the CI at 0 (the base); `None` when none does or
/// there is no base point.
pub fn onsets(results: &[&MetricResult]) -> BTreeMap<String, Option<f64>> {
    let mut by_metric: BTreeMap<&str, Vec<&MetricResult>> = BTreeMap::new();
    for r in results {
        by_metric.entry(r.metric.as_str()).or_default().push(r);
    }
    by_metric
        .into_iter()
        .map(|(m, mut rs)| {
            rs.sort_by(|a, b| a.t.total_cmp(&b.t));
            let base = rs.iter().find(|r| r.t == 0.0);
            let onset = base.and_then(|b| {
                rs.iter()
                    .find(|r| r.t > 0.0 && r.ci_low > b.ci_high)
                    .map(|r| r.t)
            });
            (m.to_string(), onset)
        })
        .collect()
}

/// `summary.csv` text for a set of results: a header naming the coordinate, one row per point;
/// over training checkpoints (`samples_seen`) a last row `onset` gives each metric's onset
/// ([`onsets`]) or `not reached`.
pub fn summary_csv(results: &[&MetricResult], coordinate: &str) -> String {
    let mut metrics: Vec<&str> = results.iter().map(|r| r.metric.as_str()).collect();
    metrics.sort();
    metrics.dedup();
    let mut rows: BTreeMap<String, (f64, BTreeMap<&str, &MetricResult>)> = BTreeMap::new();
    for r in results {
        rows.entry(t_key(r.t))
            .or_insert((r.t, BTreeMap::new()))
            .1
            .insert(r.metric.as_str(), r);
    }
    let mut out = String::from(coordinate);
    for m in &metrics {
        out.push_str(&format!(",{m},{m}_ci_low,{m}_ci_high"));
    }
    out.push('\n');
    let mut ordered: Vec<&(f64, BTreeMap<&str, &MetricResult>)> = rows.values().collect();
    ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (t, by_metric) in ordered {
        out.push_str(&format!("{t}"));
        for m in &metrics {
            match by_metric.get(m) {
                Some(r) => out.push_str(&format!(",{},{},{}", r.value, r.ci_low, r.ci_high)),
                None => out.push_str(",,,"),
            }
        }
        out.push('\n');
    }
    if coordinate == "samples_seen" {
        let onset = onsets(results);
        out.push_str("onset");
        for m in &metrics {
            match onset.get(*m).copied().flatten() {
                Some(s) => out.push_str(&format!(",{s},,")),
                None => out.push_str(",not reached,,"),
            }
        }
        out.push('\n');
    }
    out
}

/// Whether a non-empty file's last byte is not a newline (its last line was cut by a kill); reads
/// only that byte.
fn ends_torn(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Reads `results.jsonl`; a last line without its newline (cut by a kill) is dropped; any
/// other malformed line is an error naming the line.
pub fn read_results(path: &Path) -> Result<BTreeMap<(String, String), MetricResult>, StoreError> {
    let mut out = BTreeMap::new();
    if !path.exists() {
        return Ok(out);
    }
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut i = 0usize;
    loop {
        let n = crate::bounded::read_line(&mut reader, &mut buf, crate::bounded::LINE_BYTES)
            .map_err(|e| StoreError::Format {
                path: path.to_path_buf(),
                msg: format!("line {}: {e}", i + 1),
            })?;
        // A last line without its newline was cut by a kill (it may end inside a multi-byte
        // character): dropped.
        if n == 0 || !buf.ends_with(b"\n") {
            break;
        }
        i += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| StoreError::Format {
            path: path.to_path_buf(),
            msg: format!("line {i}: not UTF-8: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |e: serde_json::Error| StoreError::Format {
            path: path.to_path_buf(),
            msg: format!("line {i}: {e}"),
        };
        let mut value: serde_json::Value = serde_json::from_str(line).map_err(bad)?;
        // A landscape's line names its first coordinate `alpha`.
        if let Some(fields) = value.as_object_mut()
            && !fields.contains_key("t")
            && let Some(alpha) = fields.remove("alpha")
        {
            fields.insert("t".into(), alpha);
        }
        let r: MetricResult = serde_json::from_value(value).map_err(bad)?;
        out.insert((point_key(r.t, r.beta), r.metric.clone()), r);
    }
    Ok(out)
}

/// Combines shard folders of one sweep into `out`: their specs must agree except for `shard`;
/// identical duplicate lines are merged, conflicting ones refused.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<usize, StoreError> {
    let first = dirs
        .first()
        .ok_or_else(|| StoreError::Input("merge needs at least one folder".into()))?;
    let mut base: Option<RunRecord> = None;
    let mut all: BTreeMap<(String, String), MetricResult> = BTreeMap::new();
    for dir in dirs {
        let run_path = dir.join("run.json");
        let text = crate::bounded::read_to_string(&run_path, crate::bounded::CONFIG_BYTES)
            .map_err(io(&run_path))?;
        let mut rec: RunRecord = serde_json::from_str(&text).map_err(|e| StoreError::Format {
            path: run_path.clone(),
            msg: e.to_string(),
        })?;
        if let Some(obj) = rec.spec.as_object_mut() {
            obj.remove("shard");
        }
        let results = dir.join(StoreFiles::of_schema(&rec.schema).results);
        match &base {
            None => base = Some(rec),
            Some(b) => {
                let diffs = record_differences(b, &rec);
                if !diffs.is_empty() {
                    return Err(StoreError::SpecMismatch {
                        path: dir.clone(),
                        diff: format!("vs {}: {}", first.display(), diffs.join("; ")),
                    });
                }
            }
        }
        for (k, r) in read_results(&results)? {
            match all.get(&k) {
                Some(existing) if !same_result(existing, &r) => {
                    return Err(StoreError::Format {
                        path: results.clone(),
                        msg: format!(
                            "point {}, metric `{}` conflicts with another shard's value",
                            k.0, k.1
                        ),
                    });
                }
                _ => {
                    all.insert(k, r);
                }
            }
        }
    }
    let Some(mut record) = base else {
        return Err(StoreError::Input("merge needs at least one folder".into()));
    };
    if let Some(obj) = record.spec.as_object_mut() {
        obj.insert(
            "merged_from".into(),
            serde_json::json!(
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
            ),
        );
    }
    let mut store = SweepStore::open_or_create(out, &record)?;
    let n = all.len();
    for r in all.values() {
        if !store.is_finished_at(r.t, r.beta, &r.metric) {
            store.append(r)?;
        }
    }
    store.write_summary()?;
    Ok(n)
}

/// Equal as written (so NaN, written as `null`, equals NaN).
fn same_result(a: &MetricResult, b: &MetricResult) -> bool {
    matches!((serde_json::to_value(a), serde_json::to_value(b)), (Ok(x), Ok(y)) if x == y)
}

/// What differs between two records of the same run, by content: the schema, the spec, and the
/// input files. Inputs are compared by their file names and fingerprints, not by where they
/// are, so a folder moved (or a shard computed on another machine, under other paths) still
/// matches while a changed file does not; spec values that name input files are compared the
/// same way (through the inputs), not as strings.
pub fn record_differences(stored: &RunRecord, new: &RunRecord) -> Vec<String> {
    let mut diffs = Vec::new();
    if stored.schema != new.schema {
        diffs.push(format!("schema {} vs {}", stored.schema, new.schema));
    }
    let paths = (&stored.inputs, &new.inputs);
    diff_json("spec", &stored.spec, &new.spec, paths, &mut diffs);
    let by_content = |inputs: &BTreeMap<String, String>| {
        let mut v: Vec<(String, String)> = inputs
            .iter()
            .map(|(path, fp)| {
                let name = Path::new(path)
                    .file_name()
                    .map_or_else(|| path.clone(), |n| n.to_string_lossy().to_string());
                (name, fp.clone())
            })
            .collect();
        v.sort();
        v
    };
    let (was, now) = (by_content(&stored.inputs), by_content(&new.inputs));
    if was != now {
        let changed: Vec<String> = now
            .iter()
            .filter(|x| !was.contains(x))
            .map(|(name, _)| {
                if was.iter().any(|(n, _)| n == name) {
                    format!("input {name} changed")
                } else {
                    format!("input {name} is new")
                }
            })
            .chain(
                was.iter()
                    .filter(|(name, _)| !now.iter().any(|(n, _)| n == name))
                    .map(|(name, _)| format!("input {name} is gone")),
            )
            .collect();
        if changed.is_empty() {
            diffs.push("the input files differ".into());
        }
        diffs.extend(changed);
    }
    diffs
}

/// Whether `s` names an input of the record: one of its files, or a folder holding some.
fn names_input(s: &str, inputs: &BTreeMap<String, String>) -> bool {
    !s.is_empty()
        && inputs
            .keys()
            .any(|k| k == s || k.strip_prefix(s).is_some_and(|rest| rest.starts_with('/')))
}

fn diff_json(
    at: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    inputs: (&BTreeMap<String, String>, &BTreeMap<String, String>),
    out: &mut Vec<String>,
) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                diff_json(
                    &format!("{at}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    inputs,
                    out,
                );
            }
        }
        // Where an input lives is not part of what was computed: its content is compared
        // through the fingerprints.
        (serde_json::Value::String(x), serde_json::Value::String(y))
            if names_input(x, inputs.0) && names_input(y, inputs.1) => {}
        _ if a != b => out.push(format!("{at}: {a} vs {b}")),
        _ => {}
    }
}

/// Writes through a temporary file + rename (creating the folder if needed), so readers never
/// see half a file and a crash never leaves one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_data().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    crate::durable::sync_parent(path).map_err(io(path))
}

/// Number of lines of a file (0 when it cannot be read); tests use it to wait for progress.
pub fn count_lines(path: &Path) -> usize {
    File::open(path)
        .map(|f| BufReader::new(f).lines().count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_basin_version_is_refused_unless_allowed() {
        let dir = std::env::temp_dir().join(format!("basin-version-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut rec = record(serde_json::json!({"t": "0:1:2"}));
        rec.basin_version = "0.1.0".into();
        assert_eq!(open_run_record_allowing(&dir, &rec, false).unwrap(), None);
        rec.basin_version = "0.2.0".into();
        let e = open_run_record_allowing(&dir, &rec, false).unwrap_err();
        assert!(matches!(e, StoreError::ExecutionChanged { .. }), "{e}");
        assert!(e.to_string().contains("Basin 0.1.0 (this is 0.2.0)"), "{e}");
        let note = open_run_record_allowing(&dir, &rec, true).unwrap().unwrap();
        assert_eq!(note["basin_version"], "0.2.0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn renames_and_new_result_files_sync_their_folder() {
        let dir = std::env::temp_dir().join(format!("basin-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let before = crate::durable::dir_syncs();
        write_atomic(&dir.join("a.json"), b"{}").unwrap();
        assert!(
            crate::durable::dir_syncs() > before,
            "write_atomic did not sync the folder"
        );
        let before = crate::durable::dir_syncs();
        let record = RunRecord {
            schema: "basin.sweep.v1".into(),
            basin_version: "test".into(),
            spec: serde_json::json!({"coordinate": "t"}),
            inputs: BTreeMap::new(),
            execution: None,
        };
        let _store = SweepStore::open_or_create(&dir, &record).unwrap();
        // run.json's rename and results.jsonl's creation: two syncs at least.
        assert!(crate::durable::dir_syncs() >= before + 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn result(t: f64, metric: &str, value: f64) -> MetricResult {
        MetricResult {
            t,
            beta: None,
            metric: metric.into(),
            kind: "paired".into(),
            value,
            ci_low: value - 0.1,
            ci_high: value + 0.1,
            n: 3,
            extra: serde_json::json!({}),
        }
    }

    fn record(spec: serde_json::Value) -> RunRecord {
        RunRecord {
            schema: SWEEP_SCHEMA.into(),
            basin_version: "test".into(),
            spec,
            inputs: BTreeMap::from([("suite".into(), "sha256:ab".into())]),
            execution: None,
        }
    }

    #[test]
    fn a_landscape_folder_keys_cells_by_alpha_and_beta() {
        let dir = tmp("plane");
        let mut rec = record(serde_json::json!({"plane": "endpoints"}));
        rec.schema = LANDSCAPE_SCHEMA.into();
        let cell = |a: f64, b: f64, v: f64| MetricResult {
            beta: Some(b),
            ..result(a, "loss", v)
        };
        {
            let mut store = SweepStore::open_or_create(&dir, &rec).unwrap();
            store.append(&cell(0.0, 0.0, 1.0)).unwrap();
            store.append(&cell(0.5, 0.0, 2.0)).unwrap();
            store.append(&cell(0.0, 1.0, 3.0)).unwrap();
            // A path point in a landscape folder is refused.
            assert!(store.append(&result(0.0, "loss", 1.0)).is_err());
            store.write_summary().unwrap();
        }
        let text = std::fs::read_to_string(dir.join("grid.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["alpha"], 0.0);
        assert_eq!(first["beta"], 0.0);
        assert!(first.get("t").is_none(), "{first}");
        assert!(!dir.join("results.jsonl").exists());
        let csv = std::fs::read_to_string(dir.join("grid.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "alpha,beta,loss,loss_ci_low,loss_ci_high");
        assert_eq!(rows[1], "0,0,1,0.9,1.1");
        assert_eq!(rows[2], "0.5,0,2,1.9,2.1");
        assert!(rows[3].starts_with("0,1,3,"));
        // Reopened, the same cells are finished and (0, 1) is not (1, 0).
        let store = SweepStore::open_or_create(&dir, &rec).unwrap();
        assert!(store.is_finished_at(0.0, Some(1.0), "loss"));
        assert!(!store.is_finished_at(1.0, Some(0.0), "loss"));
        assert_eq!(store.results().len(), 3);
        assert_eq!(StoreFiles::of_dir(&dir), StoreFiles::LANDSCAPE);
        // Two shards merge into one grid.
        let other = tmp("plane-shard");
        {
            let mut s2 = SweepStore::open_or_create(&other, &rec).unwrap();
            s2.append(&cell(0.5, 1.0, 4.0)).unwrap();
        }
        let out = tmp("plane-merged");
        assert_eq!(merge(&[dir.clone(), other.clone()], &out).unwrap(), 4);
        assert_eq!(read_results(&out.join("grid.jsonl")).unwrap().len(), 4);
        // A sweep folder does not merge with a landscape.
        let sweep = tmp("plane-vs-sweep");
        SweepStore::open_or_create(&sweep, &record(serde_json::json!({"plane": "endpoints"})))
            .unwrap();
        let e = merge(&[dir.clone(), sweep.clone()], &tmp("plane-bad")).unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
        for d in [dir, other, out, sweep] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("basin-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn t_ranges() {
        assert_eq!(parse_t_range("0:1:3").unwrap(), vec![0.0, 0.5, 1.0]);
        assert_eq!(
            parse_t_range("-0.5:1.5:5").unwrap(),
            vec![-0.5, 0.0, 0.5, 1.0, 1.5]
        );
        assert_eq!(parse_t_range("0.3:9:1").unwrap(), vec![0.3]);
        let eleven = parse_t_range("0:1:11").unwrap();
        assert_eq!(eleven[3], 0.3);
        for bad in [
            "0:1", "a:1:3", "0:1:0", "0:1:x", "1:1:3", "0:inf:3", "0:1:3:4", "",
        ] {
            let e = parse_t_range(bad).unwrap_err().to_string();
            assert!(e.contains("START:STOP:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn shards_partition_the_points() {
        let pts = parse_t_range("0:1:11").unwrap();
        let mut seen: Vec<f64> = (0..3).flat_map(|i| shard_points(&pts, i, 3)).collect();
        seen.sort_by(f64::total_cmp);
        assert_eq!(seen, pts);
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
        for bad in ["4/4", "0/0", "x/2", "1"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resume_skips_finished_and_survives_a_torn_line() {
        let dir = tmp("resume");
        let spec = serde_json::json!({"path": "lora", "t": "0:1:3"});
        let mut s = SweepStore::open_or_create(&dir, &record(spec.clone())).unwrap();
        s.append(&result(0.0, "a", 0.1)).unwrap();
        s.append(&result(0.5, "a", 0.2)).unwrap();
        s.write_summary().unwrap();
        drop(s);
        // A kill mid-write leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("results.jsonl"))
            .unwrap();
        f.write_all(b"{\"t\":1.0,\"metric\":\"a\",\"val").unwrap();
        drop(f);
        let s = SweepStore::open_or_create(&dir, &record(spec.clone())).unwrap();
        assert!(s.is_finished(0.0, "a") && s.is_finished(0.5, "a") && !s.is_finished(1.0, "a"));
        assert!(
            std::fs::read_to_string(dir.join("results.jsonl"))
                .unwrap()
                .ends_with('\n')
        );
        let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
        assert_eq!(csv.lines().next().unwrap(), "t,a,a_ci_low,a_ci_high");
        assert_eq!(csv.lines().count(), 3);
        drop(s);
        // A different spec is refused, naming the difference.
        let e = SweepStore::open_or_create(
            &dir,
            &record(serde_json::json!({"path": "lora", "t": "0:1:5"})),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("spec.t"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn merge_combines_shards_and_refuses_conflicts() {
        let (a, b, out) = (tmp("ma"), tmp("mb"), tmp("mout"));
        let mut sa = SweepStore::open_or_create(
            &a,
            &record(serde_json::json!({"t": "0:1:2", "shard": "0/2"})),
        )
        .unwrap();
        sa.append(&result(0.0, "m", 0.1)).unwrap();
        let mut sb = SweepStore::open_or_create(
            &b,
            &record(serde_json::json!({"t": "0:1:2", "shard": "1/2"})),
        )
        .unwrap();
        sb.append(&result(1.0, "m", 0.9)).unwrap();
        assert_eq!(merge(&[a.clone(), b.clone()], &out).unwrap(), 2);
        let merged = read_results(&out.join("results.jsonl")).unwrap();
        assert_eq!(merged.len(), 2);
        // Conflicting values for the same point are refused.
        sb.append(&result(0.0, "m", 0.5)).unwrap();
        let e = merge(&[a.clone(), b.clone()], &tmp("mout2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicts"), "{e}");
        for d in [a, b, out] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn t_values_are_canonical_and_extrapolate() {
        // 0.1 + 0.2 style drift is gone: the points equal their decimal literals.
        assert_eq!(parse_t_range("0:0.3:4").unwrap(), vec![0.0, 0.1, 0.2, 0.3]);
        let nine = parse_t_range("-0.5:1.5:9").unwrap();
        assert_eq!(
            nine,
            vec![-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
        );
        // Descending ranges work; -0 and 0 share a key.
        assert_eq!(parse_t_range("1:0:3").unwrap(), vec![1.0, 0.5, 0.0]);
        assert_eq!(t_key(-0.0), t_key(0.0));
        assert_eq!(t_key(0.1 + 0.2), t_key(0.3));
        let e = parse_t_range("0:1:-3").unwrap_err().to_string();
        assert!(e.contains("`0:1:-3`") && e.contains("N"), "{e}");
    }

    #[test]
    fn every_shard_count_covers_each_point_exactly_once() {
        let pts = parse_t_range("-0.5:1.5:9").unwrap();
        for n in 1..=12 {
            let mut all: Vec<f64> = (0..n).flat_map(|i| shard_points(&pts, i, n)).collect();
            assert_eq!(all.len(), pts.len(), "n = {n}");
            all.sort_by(f64::total_cmp);
            assert_eq!(all, pts, "n = {n}");
        }
        // Deterministic: the same call gives the same subset.
        assert_eq!(shard_points(&pts, 1, 4), vec![-0.25, 0.75]);
        assert_eq!(shard_points(&pts, 1, 4), shard_points(&pts, 1, 4));
        let e = parse_shard("5/3").unwrap_err().to_string();
        assert!(e.contains("`5/3`") && e.contains("i < n"), "{e}");
    }

    #[test]
    fn appends_after_a_torn_line_are_kept() {
        let dir = tmp("torn-append");
        let spec = serde_json::json!({"t": "0:1:3"});
        let mut s = SweepStore::open_or_create(&dir, &record(spec.clone())).unwrap();
        s.append(&result(0.0, "a", 0.1)).unwrap();
        drop(s);
        // Cut inside a multi-byte character, as a kill may.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("results.jsonl"))
            .unwrap();
        f.write_all("{\"t\":0.5,\"metric\":\"é".as_bytes().get(..20).unwrap())
            .unwrap();
        drop(f);
        let mut s = SweepStore::open_or_create(&dir, &record(spec.clone())).unwrap();
        assert_eq!(
            s.finished(),
            BTreeSet::from([(t_key(0.0), "a".to_string())])
        );
        s.append(&result(0.5, "a", 0.2)).unwrap();
        drop(s);
        let s = SweepStore::open_or_create(&dir, &record(spec)).unwrap();
        assert!(
            s.is_finished(0.5, "a"),
            "the append after recovery went to the live file"
        );
        assert_eq!(count_lines(&dir.join("results.jsonl")), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_malformed_middle_line_is_an_error_naming_the_line() {
        let dir = tmp("midline");
        std::fs::create_dir_all(&dir).unwrap();
        let good = serde_json::to_string(&result(0.0, "a", 0.1)).unwrap();
        std::fs::write(
            dir.join("results.jsonl"),
            format!("{good}\n{{oops\n{good}\n"),
        )
        .unwrap();
        let e = read_results(&dir.join("results.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("results.jsonl") && e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nan_values_survive_a_round_trip() {
        let dir = tmp("nan");
        let spec = serde_json::json!({"t": "0:1:3"});
        let mut s = SweepStore::open_or_create(&dir, &record(spec.clone())).unwrap();
        let mut r = result(0.0, "a", f64::NAN);
        r.ci_low = f64::NAN;
        s.append(&r).unwrap();
        assert!(s.append(&result(f64::INFINITY, "a", 0.0)).is_err());
        drop(s);
        let s = SweepStore::open_or_create(&dir, &record(spec)).unwrap();
        let back = s.results();
        assert_eq!(back.len(), 1);
        assert!(back[0].value.is_nan() && back[0].ci_low.is_nan());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn run_json_and_summary_csv_contents() {
        let dir = tmp("summary");
        let rec = record(serde_json::json!({"t": "0:1:3"}));
        let mut s = SweepStore::open_or_create(&dir, &rec).unwrap();
        let stored: RunRecord =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
        assert_eq!(stored, rec);
        assert_eq!(stored.schema, "basin.sweep.v1");
        // Written out of order; rows come out sorted by t, columns by metric name.
        s.append(&result(1.0, "b", 0.5)).unwrap();
        s.append(&result(-0.5, "a", 0.25)).unwrap();
        s.append(&result(1.0, "a", 0.75)).unwrap();
        s.write_summary().unwrap();
        let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
        assert_eq!(
            csv,
            "t,a,a_ci_low,a_ci_high,b,b_ci_low,b_ci_high\n\
             -0.5,0.25,0.15,0.35,,,\n\
             1,0.75,0.65,0.85,0.5,0.4,0.6\n"
        );
        // No temporary file left behind.
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn changed_inputs_are_refused_by_name() {
        let dir = tmp("inputs");
        let rec = record(serde_json::json!({"t": "0:1:3"}));
        drop(SweepStore::open_or_create(&dir, &rec).unwrap());
        let mut changed = rec.clone();
        changed.inputs.insert("suite".into(), "sha256:cd".into());
        changed.inputs.insert("adapter".into(), "sha256:ef".into());
        let e = SweepStore::open_or_create(&dir, &changed)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("input suite changed") && e.contains("input adapter is new"),
            "{e}"
        );
        // The same record reopens fine.
        assert!(SweepStore::open_or_create(&dir, &rec).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn merge_dedups_identical_lines_and_refuses_other_sweeps() {
        let (a, b, c, out) = (tmp("da"), tmp("db"), tmp("dc"), tmp("dout"));
        let mut sa = SweepStore::open_or_create(
            &a,
            &record(serde_json::json!({"t": "0:1:2", "shard": "0/2"})),
        )
        .unwrap();
        let mut sb = SweepStore::open_or_create(
            &b,
            &record(serde_json::json!({"t": "0:1:2", "shard": "1/2"})),
        )
        .unwrap();
        let mut nan = result(0.0, "m", f64::NAN);
        nan.ci_high = f64::NAN;
        sa.append(&nan).unwrap();
        sb.append(&nan).unwrap();
        sb.append(&result(1.0, "m", 0.9)).unwrap();
        assert_eq!(merge(&[a.clone(), b.clone()], &out).unwrap(), 2);
        assert_eq!(count_lines(&out.join("results.jsonl")), 2);
        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        // A shard of a different sweep is refused, naming what differs.
        drop(
            SweepStore::open_or_create(
                &c,
                &record(serde_json::json!({"t": "0:1:5", "shard": "1/2"})),
            )
            .unwrap(),
        );
        let e = merge(&[a.clone(), c.clone()], &tmp("dout2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.t"), "{e}");
        assert!(merge(&[], &tmp("dout3")).is_err());
        for d in [a, b, c, out] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn onset_is_the_first_checkpoint_whose_ci_clears_the_base() {
        let r = |t: f64, lo: f64, hi: f64| MetricResult {
            ci_low: lo,
            ci_high: hi,
            ..result(t, "hack", (lo + hi) / 2.0)
        };
        let rs = [
            r(0.0, 0.2, 0.4),
            r(8.0, 0.3, 0.5),
            r(16.0, 0.41, 0.6),
            r(24.0, 0.5, 0.7),
        ];
        let refs: Vec<&MetricResult> = rs.iter().collect();
        assert_eq!(onsets(&refs)["hack"], Some(16.0));
        let never = [r(0.0, 0.2, 0.4), r(8.0, 0.1, 0.5)];
        let refs: Vec<&MetricResult> = never.iter().collect();
        assert_eq!(onsets(&refs)["hack"], None);
        let csv = summary_csv(&refs, "samples_seen");
        assert!(csv.starts_with("samples_seen,hack,"), "{csv}");
        assert!(csv.trim_end().ends_with("onset,not reached,,"), "{csv}");
        assert!(!summary_csv(&refs, "t").contains("onset"));
    }
}
