//! One sweep's results as the GUI holds them: read from a result folder (`run.json`,
//! `results.jsonl`, whether the CLI or the GUI wrote it) and grown as a running sweep reports.

use std::path::{Path, PathBuf};

use crate::experiments::{
    metrics::MetricResult,
    sweep_store::{RunRecord, read_results},
};

use super::error_text;

#[derive(Debug, Clone)]
pub struct RunView {
    pub dir: PathBuf,
    /// Legend label (editable).
    pub label: String,
    pub visible: bool,
    pub record: Option<RunRecord>,
    /// Sorted by (t, metric order of arrival).
    pub results: Vec<MetricResult>,
    /// Metric names in suite order (order of first arrival).
    pub metric_order: Vec<String>,
    /// What the x coordinate is: `t` (a path) or `samples_seen` (training checkpoints).
    pub coordinate: String,
}

impl RunView {
    pub fn new(dir: PathBuf, label: String) -> Self {
        Self {
            dir,
            label,
            visible: true,
            record: None,
            results: Vec::new(),
            metric_order: Vec::new(),
            coordinate: "t".into(),
        }
    }

    /// Opens a result folder. A folder without `run.json` is not a sweep's.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let run_path = dir.join("run.json");
        let text = crate::bounded::read_config(&run_path).map_err(|e| {
            format!(
                "{}: {} (not a sweep result folder?)",
                run_path.display(),
                error_text(&e)
            )
        })?;
        let record: RunRecord =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", run_path.display()))?;
        let results = read_results(&dir.join("results.jsonl")).map_err(|e| error_text(&e))?;
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| dir.display().to_string());
        let mut view = Self::new(dir.to_path_buf(), label);
        if let Some(c) = record.spec.get("coordinate").and_then(|c| c.as_str()) {
            view.coordinate = c.to_string();
        }
        view.record = Some(record);
        let mut all: Vec<MetricResult> = results.into_values().collect();
        all.sort_by(|a, b| a.t.total_cmp(&b.t));
        for r in all {
            view.push(r);
        }
        Ok(view)
    }

    /// Over training checkpoints: the samples seen at which `metric`'s CI first clears the
    /// base's ([`crate::experiments::sweep_store::onsets`]); `None` on a path or when not reached.
    pub fn onset(&self, metric: &str) -> Option<f64> {
        if self.coordinate != "samples_seen" {
            return None;
        }
        let series = self.series(metric);
        crate::experiments::sweep_store::onsets(&series)
            .get(metric)
            .copied()
            .flatten()
    }

    /// Adds (or replaces) one result.
    pub fn push(&mut self, r: MetricResult) {
        if !self.metric_order.contains(&r.metric) {
            self.metric_order.push(r.metric.clone());
        }
        if let Some(old) = self
            .results
            .iter_mut()
            .find(|o| o.metric == r.metric && o.t.to_bits() == r.t.to_bits())
        {
            *old = r;
        } else {
            self.results.push(r);
        }
    }

    /// One metric's results, sorted by t.
    pub fn series(&self, metric: &str) -> Vec<&MetricResult> {
        let mut v: Vec<&MetricResult> =
            self.results.iter().filter(|r| r.metric == metric).collect();
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
        v
    }

    /// The distinct t values with results, sorted.
    pub fn t_values(&self) -> Vec<f64> {
        let mut ts: Vec<f64> = self.results.iter().map(|r| r.t).collect();
        ts.sort_by(f64::total_cmp);
        ts.dedup_by(|a, b| a.to_bits() == b.to_bits());
        ts
    }

    /// The result of `metric` nearest to `t`.
    pub fn nearest(&self, metric: &str, t: f64) -> Option<&MetricResult> {
        self.results
            .iter()
            .filter(|r| r.metric == metric)
            .min_by(|a, b| (a.t - t).abs().total_cmp(&(b.t - t).abs()))
    }

    /// The value the Δ toggle subtracts: the metric at the t nearest 0.
    pub fn baseline(&self, metric: &str) -> Option<f64> {
        self.nearest(metric, 0.0).map(|r| r.value)
    }

    /// The spec's path kind and t range, for the legend's tooltip.
    pub fn spec_summary(&self) -> String {
        match &self.record {
            Some(r) => {
                let s = &r.spec;
                let get = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
                format!(
                    "{} path, t = {}, base {}, end {}",
                    get("path"),
                    get("t"),
                    get("base"),
                    s.get("adapter")
                        .and_then(|v| v.as_str())
                        .or_else(|| s.get("target").and_then(|v| v.as_str()))
                        .unwrap_or("-")
                )
            }
            None => self.dir.display().to_string(),
        }
    }
}
