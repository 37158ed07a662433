//! A training run's folder:
//! - `run.json`: the recipe, the LoRA settings and the inputs' fingerprints (as a sweep's);
//! - `train.jsonl`: one line per optimizer step, appended and fsync'd;
//! - `checkpoints/samples-NNNNNN/`: the adapter after NNNNNN samples, every `--checkpoint-every`;
//! - `resume/`: the latest state written on cancel; `final/`: the adapter at the end.
//!
//! A curve fit's folder is the same store under other names ([`StoreLayout::CURVE_FIT`]):
//! `fit.jsonl` for the step log and `bend/` for the trained bend.
//!
//! Every state folder is a PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`) plus
//! `optimizer.safetensors` (AdamW moments under the factor's PEFT key + `.exp_avg` /
//! `.exp_avg_sq`) and `trainer_state.json` (step, samples, tokens, elapsed time); a full curve
//! bend's state folder holds its dense deltas in `bend_delta.safetensors` (Hugging Face weight
//! names and `[out, in]` layout) instead of a PEFT adapter. A folder is
//! written under a temporary name and renamed into place, `trainer_state.json` last, so a crash
//! never leaves a half state that looks whole. Reopening picks the state with the most steps and
//! cuts `train.jsonl` back to it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    optim::AdamWState,
    sweep_store::{RunRecord, StoreError, json_line, open_run_record, write_atomic},
};
use crate::{
    checkpoint::{
        error::CheckpointError,
        peft::LoraAdapter,
        peft_writer::{NamedF32, PeftModule, peft_key, write_f32_safetensors, write_peft_adapter},
        safetensors_file::SafetensorsFile,
    },
    model::trainable::{DenseFactor, LoraFactors},
};

pub const TRAIN_SCHEMA: &str = "basin.train.v1";
const STATE_SCHEMA: &str = "basin.train_state.v1";

/// One line of `train.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Optimizer steps done (1-based).
    pub step: usize,
    pub samples_seen: usize,
    /// Masked target tokens of this step (what its loss averages over).
    pub tokens: usize,
    /// Tokens of this step's sequences (what the forward processed).
    pub input_tokens: usize,
    /// Mean masked target NLL of the step.
    pub loss: f64,
    /// Learning rate of this step's update.
    pub lr: f64,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    /// Training time so far, across resumes.
    pub elapsed_s: f64,
    /// A curve fit's t of each sequence of the step, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<Vec<f64>>,
    /// A curve fit's loss at each of those t: each sequence's mean masked NLL (`null` for a
    /// sequence without targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_loss: Option<Vec<Option<f64>>>,
}

/// Everything a run needs to continue exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    pub samples_seen: usize,
    pub tokens_seen: usize,
    pub elapsed_s: f64,
    pub factors: Vec<LoraFactors>,
    /// AdamW moments of each factor's (A, B).
    pub moments: Vec<[AdamWState; 2]>,
    /// Dense deltas trained (a full curve bend; empty otherwise).
    pub dense: Vec<DenseFactor>,
    /// AdamW moments of each dense delta.
    pub dense_moments: Vec<AdamWState>,
}

/// The dense deltas of a state folder (a full bend's Δ_bend), Hugging Face names and layout.
pub const DENSE_FILE: &str = "bend_delta.safetensors";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerStateFile {
    schema: String,
    step: usize,
    samples_seen: usize,
    tokens_seen: usize,
    elapsed_s: f64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn ckpt(e: CheckpointError) -> StoreError {
    StoreError::Input(e.to_string())
}

/// The file names of a training store: a training run's, or a curve fit's (its adapter is the
/// bend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLayout {
    /// The step log.
    pub log: &'static str,
    /// The state folder written at the end.
    pub final_dir: &'static str,
}

impl StoreLayout {
    pub const TRAIN: Self = Self {
        log: "train.jsonl",
        final_dir: "final",
    };
    pub const CURVE_FIT: Self = Self {
        log: "fit.jsonl",
        final_dir: "bend",
    };

    /// The layout of an existing folder: a curve fit's when it holds `curve.json`.
    pub fn of_dir(dir: &Path) -> Self {
        if dir.join(super::curve::CURVE_FILE).is_file() {
            Self::CURVE_FIT
        } else {
            Self::TRAIN
        }
    }
}

pub struct TrainStore {
    dir: PathBuf,
    layout: StoreLayout,
    /// `adapter_config.json` of every saved adapter.
    adapter_config: serde_json::Value,
    steps: Vec<StepRecord>,
    log: File,
}

/// The name of the checkpoint after `samples` samples.
pub fn checkpoint_name(samples: usize) -> String {
    format!("samples-{samples:06}")
}

/// The checkpoints of a training folder, `(samples seen, folder)`, by samples; only complete ones.
pub fn list_checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let samples = name.strip_prefix("samples-")?.parse::<usize>().ok()?;
            let path = e.path();
            read_trainer_state(&path).ok()?;
            Some((samples, path))
        })
        .collect();
    out.sort();
    out
}

/// The adapters of a training folder to evaluate for a sample-efficiency curve, `(samples seen,
/// folder)` by samples: every complete checkpoint, and `final/` when it holds more samples than
/// the last checkpoint.
pub fn sample_points(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut points = list_checkpoints(dir);
    let last = points.last().map(|p| p.0);
    let final_dir = dir.join(StoreLayout::of_dir(dir).final_dir);
    if let Ok(meta) = read_trainer_state(&final_dir)
        && last.is_none_or(|l| meta.samples_seen > l)
    {
        points.push((meta.samples_seen, final_dir));
    }
    points
}

/// Reads a step log (`train.jsonl`, `fit.jsonl`; a torn last line from a kill is dropped).
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut steps = Vec::new();
    // A malformed line is an error unless it is the last one (a torn write from a kill).
    let mut pending: Option<StoreError> = None;
    let mut line_no = 0usize;
    loop {
        let n = crate::bounded::read_line(&mut reader, &mut buf, crate::bounded::LINE_BYTES)
            .map_err(|e| StoreError::Format {
                path: path.to_path_buf(),
                msg: format!("line {}: {e}", line_no + 1),
            })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = pending.take() {
            return Err(e);
        }
        match serde_json::from_str::<StepRecord>(&line) {
            Ok(r) => steps.push(r),
            Err(e) => {
                pending = Some(StoreError::Format {
                    path: path.to_path_buf(),
                    msg: format!("line {line_no}: {e}"),
                });
            }
        }
    }
    Ok(steps)
}

fn read_trainer_state(dir: &Path) -> Result<TrainerStateFile, StoreError> {
    let path = dir.join("trainer_state.json");
    let text =
        crate::bounded::read_to_string(&path, crate::bounded::CONFIG_BYTES).map_err(io(&path))?;
    let s: TrainerStateFile = serde_json::from_str(&text).map_err(|e| StoreError::Format {
        path: path.clone(),
        msg: format!("not a Basin trainer state: {e}"),
    })?;
    if s.schema != STATE_SCHEMA {
        return Err(StoreError::Format {
            path,
            msg: format!("schema {} (expected {STATE_SCHEMA})", s.schema),
        });
    }
    Ok(s)
}

impl TrainStore {
    /// Creates the folder or reopens it (refusing a different run); `adapter_config` is written
    /// with every adapter saved.
    pub fn open(
        dir: &Path,
        record: &RunRecord,
        adapter_config: serde_json::Value,
        layout: StoreLayout,
    ) -> Result<Self, StoreError> {
        open_run_record(dir, record)?;
        let log_path = dir.join(layout.log);
        let steps = read_steps(&log_path)?;
        let log = Self::open_log(&log_path)?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            layout,
            adapter_config,
            steps,
            log,
        };
        // Rewrite without a torn last line before appending.
        store.keep_steps_up_to(usize::MAX)?;
        Ok(store)
    }

    fn open_log(path: &Path) -> Result<File, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))?;
        crate::durable::sync_parent(path).map_err(io(path))?;
        Ok(file)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    /// Drops log lines after step `step` (a resume continues from a saved state).
    pub fn keep_steps_up_to(&mut self, step: usize) -> Result<(), StoreError> {
        let path = self.dir.join(self.layout.log);
        self.steps.retain(|r| r.step <= step);
        let mut text = String::new();
        for r in &self.steps {
            text.push_str(&json_line(&path, r)?);
        }
        write_atomic(&path, text.as_bytes())?;
        // The rename replaced the file: append to the new one.
        self.log = Self::open_log(&path)?;
        Ok(())
    }

    pub fn append_step(&mut self, r: &StepRecord) -> Result<(), StoreError> {
        let path = self.dir.join(self.layout.log);
        let line = json_line(&path, r)?;
        self.log.write_all(line.as_bytes()).map_err(io(&path))?;
        self.log.sync_data().map_err(io(&path))?;
        self.steps.push(r.clone());
        Ok(())
    }

    /// Saves `checkpoints/samples-NNNNNN/` (and the same state as the resume point).
    pub fn save_checkpoint(&mut self, state: &TrainState) -> Result<String, StoreError> {
        let name = checkpoint_name(state.samples_seen);
        let dir = self.dir.join("checkpoints").join(&name);
        self.write_state_dir(&dir, state)?;
        Ok(name)
    }

    /// Saves the state a cancelled run resumes from.
    pub fn save_resume(&mut self, state: &TrainState) -> Result<(), StoreError> {
        let dir = self.dir.join("resume");
        self.write_state_dir(&dir, state)
    }

    /// Saves `final/` (`bend/` for a curve fit), the adapter at the end of the run.
    pub fn save_final(&mut self, state: &TrainState) -> Result<(), StoreError> {
        let dir = self.dir.join(self.layout.final_dir);
        self.write_state_dir(&dir, state)
    }

    fn write_state_dir(&self, dir: &Path, state: &TrainState) -> Result<(), StoreError> {
        let parent = dir.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let pid = std::process::id();
        let tmp = parent.join(format!(".{name}.partial-{pid}"));
        let old = parent.join(format!(".{name}.old-{pid}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let a_peft: Vec<Vec<f32>> = state.factors.iter().map(LoraFactors::a_peft).collect();
        let b_peft: Vec<Vec<f32>> = state.factors.iter().map(LoraFactors::b_peft).collect();
        let modules: Vec<PeftModule> = state
            .factors
            .iter()
            .zip(a_peft.iter().zip(&b_peft))
            .map(|(f, (a, b))| PeftModule {
                module: &f.module,
                rank: f.rank,
                in_features: f.in_features,
                out_features: f.out_features,
                a,
                b,
            })
            .collect();
        if !state.factors.is_empty() || state.dense.is_empty() {
            write_peft_adapter(&tmp, &self.adapter_config, &modules).map_err(ckpt)?;
        }
        // Moments in PEFT's layout, so the optimizer file reads like the adapter beside it.
        let mut moments = Vec::with_capacity(state.factors.len() * 4);
        for (f, [ma, mb]) in state.factors.iter().zip(&state.moments) {
            let a_shape = vec![f.rank, f.in_features];
            let b_shape = vec![f.out_features, f.rank];
            let ta = |v: &[f32]| crate::model::trainable::transpose(v, f.in_features, f.rank);
            let tb = |v: &[f32]| crate::model::trainable::transpose(v, f.rank, f.out_features);
            moments.push((
                peft_key(&f.module, "lora_A"),
                a_shape.clone(),
                "exp_avg",
                ta(&ma.exp_avg),
            ));
            moments.push((
                peft_key(&f.module, "lora_A"),
                a_shape,
                "exp_avg_sq",
                ta(&ma.exp_avg_sq),
            ));
            moments.push((
                peft_key(&f.module, "lora_B"),
                b_shape.clone(),
                "exp_avg",
                tb(&mb.exp_avg),
            ));
            moments.push((
                peft_key(&f.module, "lora_B"),
                b_shape,
                "exp_avg_sq",
                tb(&mb.exp_avg_sq),
            ));
        }
        let dense_hf: Vec<Vec<f32>> = state.dense.iter().map(DenseFactor::hf).collect();
        if !state.dense.is_empty() {
            let named: Vec<NamedF32> = state
                .dense
                .iter()
                .zip(&dense_hf)
                .map(|(d, w)| NamedF32 {
                    name: format!("{}.weight", d.module),
                    shape: vec![d.out_features, d.in_features],
                    data: w,
                })
                .collect();
            write_f32_safetensors(&tmp.join(DENSE_FILE), &named).map_err(ckpt)?;
        }
        for (d, m) in state.dense.iter().zip(&state.dense_moments) {
            let shape = vec![d.out_features, d.in_features];
            let t =
                |v: &[f32]| crate::model::trainable::transpose(v, d.in_features, d.out_features);
            let key = format!("{}.weight", d.module);
            moments.push((key.clone(), shape.clone(), "exp_avg", t(&m.exp_avg)));
            moments.push((key, shape, "exp_avg_sq", t(&m.exp_avg_sq)));
        }
        let named: Vec<NamedF32> = moments
            .iter()
            .map(|(key, shape, what, data)| NamedF32 {
                name: format!("{key}.{what}"),
                shape: shape.clone(),
                data,
            })
            .collect();
        write_f32_safetensors(&tmp.join("optimizer.safetensors"), &named).map_err(ckpt)?;
        let meta = TrainerStateFile {
            schema: STATE_SCHEMA.to_string(),
            step: state.step,
            samples_seen: state.samples_seen,
            tokens_seen: state.tokens_seen,
            elapsed_s: state.elapsed_s,
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::Format {
            path: tmp.clone(),
            msg: e.to_string(),
        })?;
        write_atomic(&tmp.join("trainer_state.json"), &json)?;
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dir, &old).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        crate::durable::sync_parent(dir).map_err(io(dir))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The dense deltas saved in the final state folder (a full bend's Δ_bend), every tensor of
    /// its `bend_delta.safetensors`.
    pub fn final_dense(&self) -> Result<Vec<DenseFactor>, StoreError> {
        let path = self.dir.join(self.layout.final_dir).join(DENSE_FILE);
        let file = SafetensorsFile::open(&path).map_err(ckpt)?;
        let mut out = Vec::new();
        let names: Vec<String> = file.tensors().keys().cloned().collect();
        for name in names {
            let t = file.load_f32(&name).map_err(ckpt)?;
            let (Some(module), [rows, cols]) = (name.strip_suffix(".weight"), t.shape.as_slice())
            else {
                return Err(StoreError::Format {
                    path: path.clone(),
                    msg: format!("`{name}` {:?} is not a dense weight delta", t.shape),
                });
            };
            out.push(DenseFactor {
                module: module.to_string(),
                in_features: *cols,
                out_features: *rows,
                w: crate::model::trainable::transpose(&t.data, *rows, *cols),
            });
        }
        Ok(out)
    }

    /// The saved state with the most steps (final, resume or a checkpoint), read into the
    /// layout of `template` (same modules, ranks and shapes); `None` when nothing is saved.
    pub fn latest_state(&self, template: &TrainState) -> Result<Option<TrainState>, StoreError> {
        let mut candidates = vec![
            self.dir.join(self.layout.final_dir),
            self.dir.join("resume"),
        ];
        candidates.extend(list_checkpoints(&self.dir).into_iter().map(|(_, p)| p));
        let mut best: Option<(usize, PathBuf, TrainerStateFile)> = None;
        for dir in candidates {
            let Ok(meta) = read_trainer_state(&dir) else {
                continue;
            };
            if best.as_ref().is_none_or(|(s, _, _)| meta.step > *s) {
                best = Some((meta.step, dir, meta));
            }
        }
        let Some((_, dir, meta)) = best else {
            return Ok(None);
        };
        Ok(Some(load_state(&dir, &meta, template)?))
    }
}

fn load_state(
    dir: &Path,
    meta: &TrainerStateFile,
    template: &TrainState,
) -> Result<TrainState, StoreError> {
    let opt_path = dir.join("optimizer.safetensors");
    let opt = SafetensorsFile::open(&opt_path).map_err(ckpt)?;
    let mismatch = |msg: String| StoreError::Format {
        path: dir.to_path_buf(),
        msg: format!("{msg}; this state does not fit the run (delete the folder to start over)"),
    };
    let (dense, dense_moments) = load_dense(dir, &opt, template, &mismatch)?;
    if template.factors.is_empty() {
        return Ok(TrainState {
            step: meta.step,
            samples_seen: meta.samples_seen,
            tokens_seen: meta.tokens_seen,
            elapsed_s: meta.elapsed_s,
            factors: Vec::new(),
            moments: Vec::new(),
            dense,
            dense_moments,
        });
    }
    let adapter = LoraAdapter::open(dir).map_err(ckpt)?;
    if adapter.modules.len() != template.factors.len() {
        return Err(mismatch(format!(
            "{} adapted modules, the run trains {}",
            adapter.modules.len(),
            template.factors.len()
        )));
    }
    let mut factors = Vec::with_capacity(template.factors.len());
    let mut moments = Vec::with_capacity(template.factors.len());
    for f in &template.factors {
        let m = adapter
            .modules
            .get(&f.module)
            .ok_or_else(|| mismatch(format!("module `{}` is missing", f.module)))?;
        let loaded = LoraFactors::from_peft(
            &f.module,
            &m.a.data,
            &m.b.data,
            f.rank,
            f.in_features,
            f.out_features,
            f.scale,
        )
        .map_err(|e| mismatch(e.to_string()))?;
        let read = |key: String, rows: usize, cols: usize| -> Result<Vec<f32>, StoreError> {
            let t = opt.load_f32(&key).map_err(ckpt)?;
            if t.data.len() != rows * cols {
                return Err(mismatch(format!(
                    "optimizer tensor `{key}` has shape {:?}",
                    t.shape
                )));
            }
            Ok(crate::model::trainable::transpose(&t.data, rows, cols))
        };
        let ka = peft_key(&f.module, "lora_A");
        let kb = peft_key(&f.module, "lora_B");
        let (r, i, o) = (f.rank, f.in_features, f.out_features);
        moments.push([
            AdamWState {
                exp_avg: read(format!("{ka}.exp_avg"), r, i)?,
                exp_avg_sq: read(format!("{ka}.exp_avg_sq"), r, i)?,
            },
            AdamWState {
                exp_avg: read(format!("{kb}.exp_avg"), o, r)?,
                exp_avg_sq: read(format!("{kb}.exp_avg_sq"), o, r)?,
            },
        ]);
        factors.push(loaded);
    }
    Ok(TrainState {
        step: meta.step,
        samples_seen: meta.samples_seen,
        tokens_seen: meta.tokens_seen,
        elapsed_s: meta.elapsed_s,
        factors,
        moments,
        dense,
        dense_moments,
    })
}

/// The dense deltas of a state folder in the layout of `template.dense` (none when the template
/// has none).
fn load_dense(
    dir: &Path,
    opt: &SafetensorsFile,
    template: &TrainState,
    mismatch: &dyn Fn(String) -> StoreError,
) -> Result<(Vec<DenseFactor>, Vec<AdamWState>), StoreError> {
    if template.dense.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let file = SafetensorsFile::open(dir.join(DENSE_FILE)).map_err(ckpt)?;
    let mut dense = Vec::with_capacity(template.dense.len());
    let mut moments = Vec::with_capacity(template.dense.len());
    for d in &template.dense {
        let key = format!("{}.weight", d.module);
        let (rows, cols) = (d.out_features, d.in_features);
        let read = |src: &SafetensorsFile, name: &str| -> Result<Vec<f32>, StoreError> {
            let t = src.load_f32(name).map_err(ckpt)?;
            if t.shape != [rows, cols] {
                return Err(mismatch(format!(
                    "tensor `{name}` has shape {:?}, the run trains [{rows}, {cols}]",
                    t.shape
                )));
            }
            Ok(crate::model::trainable::transpose(&t.data, rows, cols))
        };
        dense.push(DenseFactor {
            module: d.module.clone(),
            in_features: cols,
            out_features: rows,
            w: read(&file, &key)?,
        });
        moments.push(AdamWState {
            exp_avg: read(opt, &format!("{key}.exp_avg"))?,
            exp_avg_sq: read(opt, &format!("{key}.exp_avg_sq"))?,
        });
    }
    Ok((dense, moments))
}
