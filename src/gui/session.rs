//! Sessions: a JSON file naming the inputs and the result folders, so reopening shows finished
//! results without recomputing. The last session and recent files also persist in eframe storage.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compute::ComputeKind;

pub const SESSION_SCHEMA: &str = "basin.session.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub schema: String,
    pub base: String,
    pub endpoint: String,
    pub adapter_b: String,
    pub suite: String,
    #[serde(flatten)]
    pub sweep: SweepSettings,
    /// Result folders, in legend order.
    pub runs: Vec<SessionRun>,
    #[serde(default)]
    pub delta: bool,
}

/// The sweep settings of the left panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    pub device: ComputeKind,
    /// What the model's large weights are stored in (sweeps and landscapes).
    #[serde(default)]
    pub dtype: crate::model::weight_dtype::WeightDType,
    pub t_start: f64,
    pub t_stop: f64,
    pub t_points: usize,
    pub batch: usize,
    pub bootstrap: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRun {
    pub dir: PathBuf,
    pub label: String,
    pub visible: bool,
}

impl Session {
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::experiments::sweep_store::write_atomic(path, text.as_bytes())
            .map_err(|e| super::error_text(&e))
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = crate::bounded::read_config(path)
            .map_err(|e| format!("{}: {}", path.display(), super::error_text(&e)))?;
        let s: Session = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a Basin session file: {e}", path.display()))?;
        if s.schema != SESSION_SCHEMA {
            return Err(format!(
                "{}: session schema `{}`, this Basin reads `{SESSION_SCHEMA}`",
                path.display(),
                s.schema
            ));
        }
        Ok(s)
    }
}

/// What eframe storage keeps between starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub last_session: Option<Session>,
    pub recent_files: Vec<PathBuf>,
}

pub const STORAGE_KEY: &str = "basin.app";
