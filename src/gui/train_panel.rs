//! The Train tab: a training run's inputs and recipe, Start / Cancel, the live loss and
//! learning-rate curves, the checkpoint list and "Evaluate checkpoints". The panel owns its state
//! and returns [`TrainCommand`]s; the app starts and stops the jobs and feeds their events back
//! (`on_*`). A training folder written by `basin train` opens here too, without recomputing.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Legend, Line, Plot, VLine};

use crate::{
    compute::ComputeKind,
    experiments::{
        curve::{CurveKind, CurveRecord, CurveSpec, TSampling},
        job::Progress,
        optim::Schedule,
        train::{TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest},
        train_store::{StepRecord, StoreLayout, read_steps, sample_points},
    },
};

/// Buckets of t in the Train tab's loss-along-the-path plot.
pub const LOSS_T_BUCKETS: usize = 10;

/// `[bucket centre, mean loss]` of every bucket of t that holds a sequence of `steps`.
pub fn loss_by_t_bucket(steps: &[&StepRecord]) -> Vec<[f64; 2]> {
    let mut sums = [(0.0f64, 0usize); LOSS_T_BUCKETS];
    for r in steps {
        let (Some(ts), Some(losses)) = (&r.t, &r.t_loss) else {
            continue;
        };
        for (t, loss) in ts.iter().zip(losses) {
            if let Some(loss) = loss.filter(|l| l.is_finite()) {
                let b = ((t * LOSS_T_BUCKETS as f64) as usize).min(LOSS_T_BUCKETS - 1);
                sums[b].0 += loss;
                sums[b].1 += 1;
            }
        }
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(b, (s, n))| [(b as f64 + 0.5) / LOSS_T_BUCKETS as f64, s / *n as f64])
        .collect()
}

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainCommand {
    Start(Box<TrainRequest>),
    Cancel,
    /// Evaluate the suite at the base and every checkpoint of this training folder.
    EvaluateCheckpoints {
        train_dir: PathBuf,
        base: PathBuf,
    },
    /// Sweep the suite along this fitted curve (a `basin curve fit` folder).
    SweepCurve {
        curve_dir: PathBuf,
        base: PathBuf,
    },
}

pub struct TrainPanel {
    pub base: String,
    pub data: String,
    /// A PEFT adapter to continue (empty: a new adapter).
    pub init_adapter: String,
    /// Result folder of the next run (empty: a new folder in the app's runs folder).
    pub out: String,
    pub rank: usize,
    pub alpha: f64,
    pub targets: String,
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub epochs: usize,
    /// Optimizer steps; 0 trains for `epochs`.
    pub steps: usize,
    pub batch: usize,
    pub grad_accum: usize,
    /// 0: no clipping.
    pub max_grad_norm: f64,
    pub seed: u64,
    pub shuffle: bool,
    /// 0: no checkpoints.
    pub checkpoint_every: usize,
    pub max_seq_len: usize,
    pub device: ComputeKind,
    /// Fit a curve instead: train a LoRA bend between the base and the Models panel's endpoint
    /// adapter, keeping the loss on the data low along the whole path.
    pub curve: bool,
    pub curve_kind: CurveKind,
    /// The training folder shown (running or opened).
    pub run_dir: Option<PathBuf>,
    pub log: Vec<StepRecord>,
    pub checkpoints: Vec<(usize, PathBuf)>,
    pub running: bool,
    pub progress: Option<Progress>,
    pub status: String,
}

impl Default for TrainPanel {
    fn default() -> Self {
        let d = TrainRequest::new(PathBuf::new(), PathBuf::new(), PathBuf::new());
        let (rank, alpha, targets) = match &d.init {
            AdapterInit::New {
                rank,
                alpha,
                targets,
                ..
            } => (*rank, *alpha, targets.join(",")),
            AdapterInit::Existing(_) => (8, 16.0, "q_proj,v_proj".into()),
        };
        Self {
            base: String::new(),
            data: String::new(),
            init_adapter: String::new(),
            out: String::new(),
            rank,
            alpha,
            targets,
            lr: d.spec.lr,
            schedule: d.spec.schedule,
            warmup_steps: d.spec.warmup_steps,
            weight_decay: d.spec.weight_decay,
            epochs: 1,
            steps: 0,
            batch: d.spec.batch,
            grad_accum: d.spec.grad_accum,
            max_grad_norm: d.spec.max_grad_norm.unwrap_or(0.0),
            seed: d.spec.seed,
            shuffle: d.spec.shuffle,
            checkpoint_every: 0,
            max_seq_len: d.max_seq_len,
            device: d.device,
            curve: false,
            curve_kind: CurveKind::Bezier,
            run_dir: None,
            log: Vec::new(),
            checkpoints: Vec::new(),
            running: false,
            progress: None,
            status: String::new(),
        }
    }
}

fn path_of(s: &str) -> Option<PathBuf> {
    let t = s.trim();
    (!t.is_empty()).then(|| PathBuf::from(t))
}

impl TrainPanel {
    /// The request the current settings describe; `default_out` when no folder is given.
    pub fn request(&self, default_out: &Path) -> Result<TrainRequest, String> {
        let base = path_of(&self.base).ok_or("choose a base model to train")?;
        let data = path_of(&self.data).ok_or("choose the training data (chat JSONL)")?;
        let out = path_of(&self.out).unwrap_or_else(|| default_out.to_path_buf());
        let init = match path_of(&self.init_adapter) {
            Some(p) => AdapterInit::Existing(p),
            None => AdapterInit::New {
                rank: self.rank,
                alpha: self.alpha,
                targets: self
                    .targets
                    .split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
                rslora: false,
            },
        };
        let mut req = TrainRequest::new(base, data, out);
        req.init = init;
        req.spec = TrainSpec {
            lr: self.lr,
            schedule: self.schedule,
            warmup_steps: self.warmup_steps,
            weight_decay: self.weight_decay,
            length: if self.steps > 0 {
                TrainLength::Steps(self.steps)
            } else {
                TrainLength::Epochs(self.epochs)
            },
            batch: self.batch,
            grad_accum: self.grad_accum,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            seed: self.seed,
            shuffle: self.shuffle,
            checkpoint_every: (self.checkpoint_every > 0).then_some(self.checkpoint_every),
            lora_dropout: 0.0,
            // The app sets the endpoint (and its kind) from the Models panel.
            curve: self.curve.then_some(CurveSpec {
                kind: self.curve_kind,
                t_sampling: TSampling::Stratified,
                endpoint: Default::default(),
            }),
        };
        req.max_seq_len = self.max_seq_len;
        req.device = self.device;
        Ok(req)
    }

    /// Shows a training folder as it is on disk (its log and checkpoints); nothing is computed.
    pub fn open_run(&mut self, dir: &Path) -> Result<(), String> {
        let layout = StoreLayout::of_dir(dir);
        let log = read_steps(&dir.join(layout.log)).map_err(|e| super::error_text(&e))?;
        if log.is_empty() && !dir.join("run.json").exists() {
            return Err(format!(
                "{}: no run.json or {} (not a `basin train` or `basin curve fit` folder?)",
                dir.display(),
                layout.log
            ));
        }
        self.log = log;
        self.checkpoints = sample_points(dir);
        self.run_dir = Some(dir.to_path_buf());
        if let Ok(text) = std::fs::read_to_string(dir.join("run.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(base) = v["spec"]["base"].as_str()
        {
            self.base = base.to_string();
        }
        self.status = format!("{} steps in {}", self.log.len(), dir.display());
        Ok(())
    }

    pub fn on_started(&mut self, dir: &Path) {
        self.running = true;
        self.progress = None;
        self.log.clear();
        self.checkpoints.clear();
        self.run_dir = Some(dir.to_path_buf());
        self.status = "loading the model...".into();
    }

    pub fn on_step(&mut self, r: StepRecord) {
        self.log.retain(|s| s.step < r.step);
        self.log.push(r);
    }

    pub fn on_progress(&mut self, p: Progress) {
        self.status = format!("step {}/{} · {}", p.done, p.total, p.stage);
        self.progress = Some(p);
    }

    pub fn on_checkpoint(&mut self) {
        if let Some(dir) = &self.run_dir {
            self.checkpoints = sample_points(dir);
        }
    }

    pub fn on_finished(&mut self, message: String) {
        self.running = false;
        self.status = message;
        self.on_checkpoint();
    }

    pub fn fraction(&self) -> f32 {
        match &self.progress {
            Some(p) if p.total > 0 => p.done as f32 / p.total as f32,
            _ => 0.0,
        }
    }

    fn path_row_ui(ui: &mut egui::Ui, label: &str, value: &mut String, folder: bool, hint: &str) {
        ui.horizontal(|ui| {
            ui.label(label);
            ui.add(
                egui::TextEdit::singleline(value)
                    .desired_width(260.0)
                    .hint_text(hint),
            );
            if ui.small_button("...").on_hover_text("Browse").clicked() {
                let dialog = rfd::FileDialog::new();
                let picked = if folder {
                    dialog.pick_folder()
                } else {
                    dialog.pick_file()
                };
                if let Some(p) = picked {
                    *value = p.display().to_string();
                }
            }
        });
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        Self::path_row_ui(
            ui,
            "Base model",
            &mut self.base,
            false,
            "HF folder or .gguf",
        );
        Self::path_row_ui(ui, "Data", &mut self.data, false, "chat JSONL");
        Self::path_row_ui(
            ui,
            "Continue adapter",
            &mut self.init_adapter,
            true,
            "empty: a new adapter",
        );
        Self::path_row_ui(
            ui,
            "Result folder",
            &mut self.out,
            true,
            "empty: a new folder",
        );
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.curve, "Fit a curve to the endpoint")
                .on_hover_text(
                    "Train a LoRA bend instead: θ(t) = θ₀ + t·ΔW + φ(t)·Δ_bend between the base and the \
                     endpoint adapter of the Models panel, keeping the loss on Data low at every t \
                     (basin curve fit)",
                );
            ui.add_enabled_ui(self.curve, |ui| {
                egui::ComboBox::from_id_salt("curve-kind")
                    .selected_text(match self.curve_kind {
                        CurveKind::Bezier => "Bezier",
                        CurveKind::Polychain => "polychain",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.curve_kind, CurveKind::Bezier, "Bezier");
                        ui.selectable_value(
                            &mut self.curve_kind,
                            CurveKind::Polychain,
                            "polychain",
                        );
                    });
            });
        });
        egui::Grid::new("train-settings")
            .num_columns(4)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let new = self.init_adapter.trim().is_empty();
                ui.label("Rank");
                ui.add_enabled(new, egui::DragValue::new(&mut self.rank).range(1..=1024));
                ui.label("Alpha");
                ui.add_enabled(
                    new,
                    egui::DragValue::new(&mut self.alpha).range(0.0..=4096.0),
                );
                ui.end_row();
                ui.label("Modules");
                ui.add_enabled(
                    new,
                    egui::TextEdit::singleline(&mut self.targets).desired_width(160.0),
                );
                ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut self.lr)
                        .speed(1e-5)
                        .range(0.0..=1.0)
                        .max_decimals(6),
                );
                ui.end_row();
                ui.label("Schedule");
                egui::ComboBox::from_id_salt("train-schedule")
                    .selected_text(self.schedule.as_str())
                    .show_ui(ui, |ui| {
                        for s in [Schedule::Constant, Schedule::Linear, Schedule::Cosine] {
                            ui.selectable_value(&mut self.schedule, s, s.as_str());
                        }
                    });
                ui.label("Warmup steps");
                ui.add(egui::DragValue::new(&mut self.warmup_steps).range(0..=100_000));
                ui.end_row();
                ui.label("Epochs");
                ui.add_enabled(
                    self.steps == 0,
                    egui::DragValue::new(&mut self.epochs).range(1..=1000),
                );
                ui.label("Steps (0: epochs)");
                ui.add(egui::DragValue::new(&mut self.steps).range(0..=10_000_000));
                ui.end_row();
                ui.label("Batch");
                ui.add(egui::DragValue::new(&mut self.batch).range(1..=4096));
                ui.label("Grad accum");
                ui.add(egui::DragValue::new(&mut self.grad_accum).range(1..=4096));
                ui.end_row();
                ui.label("Weight decay");
                ui.add(
                    egui::DragValue::new(&mut self.weight_decay)
                        .speed(1e-3)
                        .range(0.0..=10.0),
                );
                ui.label("Clip norm (0: off)");
                ui.add(
                    egui::DragValue::new(&mut self.max_grad_norm)
                        .speed(0.01)
                        .range(0.0..=1e6),
                );
                ui.end_row();
                ui.label("Checkpoint every");
                ui.add(
                    egui::DragValue::new(&mut self.checkpoint_every)
                        .range(0..=100_000_000)
                        .suffix(" samples"),
                );
                ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.seed));
                ui.end_row();
                ui.label("Shuffle");
                ui.checkbox(&mut self.shuffle, "each epoch");
                ui.label("Device");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.device, ComputeKind::Cpu, "CPU");
                    ui.selectable_value(&mut self.device, ComputeKind::Gpu, "GPU");
                });
                ui.end_row();
            });
    }

    fn curves_ui(&self, ui: &mut egui::Ui) {
        let loss: Vec<[f64; 2]> = self
            .log
            .iter()
            .map(|r| [r.samples_seen as f64, r.loss])
            .collect();
        let lr: Vec<[f64; 2]> = self
            .log
            .iter()
            .map(|r| [r.samples_seen as f64, r.lr])
            .collect();
        let link = egui::Id::unique("train-curves");
        let height = ((ui.available_height() - 60.0) * 0.6).clamp(140.0, 360.0);
        ui.strong("Training loss (mean masked NLL per step)");
        Plot::new("train-loss")
            .height(height)
            .link_axis(link, [true, false])
            .x_axis_label("samples seen")
            .legend(Legend::default().position(egui_plot::Corner::RightTop))
            .show(ui, |p| {
                p.add(
                    Line::new("loss", loss)
                        .color(super::path_tab::run_color(0))
                        .width(2.0),
                );
                for (samples, _) in &self.checkpoints {
                    p.add(
                        VLine::new("checkpoints", *samples as f64)
                            .color(egui::Color32::GRAY.gamma_multiply(0.6))
                            .allow_hover(false),
                    );
                }
            });
        ui.strong("Learning rate");
        Plot::new("train-lr")
            .height((height * 0.45).max(90.0))
            .link_axis(link, [true, false])
            .x_axis_label("samples seen")
            .show(ui, |p| {
                p.add(
                    Line::new("lr", lr)
                        .color(super::path_tab::run_color(1))
                        .width(1.5),
                );
            });
        let n_fit = self.log.iter().filter(|r| r.t_loss.is_some()).count();
        if n_fit > 0 {
            // A curve fit: the loss of each sequence at its own t, in buckets of t, over the
            // first and the latest quarter of the steps (the fit should flatten the middle).
            let quarter = n_fit.div_ceil(4);
            let fit: Vec<&StepRecord> = self.log.iter().filter(|r| r.t_loss.is_some()).collect();
            ui.strong(format!(
                "Loss along the path (by t, {LOSS_T_BUCKETS} buckets)"
            ));
            Plot::new("train-loss-by-t")
                .height((height * 0.6).max(110.0))
                .x_axis_label("t")
                .legend(Legend::default().position(egui_plot::Corner::RightTop))
                .show(ui, |p| {
                    for (k, (name, steps)) in [
                        (format!("first {quarter} steps"), &fit[..quarter]),
                        (
                            format!("latest {quarter} steps"),
                            &fit[fit.len() - quarter..],
                        ),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        p.add(
                            Line::new(name, loss_by_t_bucket(steps))
                                .color(super::path_tab::run_color(2 + k))
                                .width(2.0),
                        );
                    }
                });
        }
    }

    /// Draws the tab; returns what the user asked for.
    pub fn ui(&mut self, ui: &mut egui::Ui, suite_ready: bool) -> Vec<TrainCommand> {
        let mut commands = Vec::new();
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            egui::ScrollArea::vertical()
                .id_salt("train-settings-scroll")
                .show(ui, |ui| {
                    // `columns` lays out justified, which would stretch labels letter by letter.
                    ui.with_layout(egui::Layout::top_down(egui::Align::LEFT), |ui| {
                    self.settings_ui(ui);
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui
                            .add_enabled(!self.running, egui::Button::new("Start training"))
                            .on_hover_text(
                                "Train on a worker thread; rerunning into the same folder resumes",
                            )
                            .clicked()
                        {
                            match self.request(Path::new("")) {
                                Ok(req) => commands.push(TrainCommand::Start(Box::new(req))),
                                Err(e) => self.status = e,
                            }
                        }
                        if ui
                            .add_enabled(self.running, egui::Button::new("Cancel training"))
                            .on_hover_text("Stop after the step in flight; the state is saved to resume")
                            .clicked()
                        {
                            commands.push(TrainCommand::Cancel);
                        }
                    });
                    if self.running {
                        ui.add(
                            egui::ProgressBar::new(self.fraction())
                                .show_percentage()
                                .animate(true),
                        );
                        ui.ctx()
                            .request_repaint_after(std::time::Duration::from_millis(250));
                    }
                    if !self.status.is_empty() {
                        ui.add(egui::Label::new(&self.status).wrap());
                    }
                    ui.separator();
                    ui.strong("Checkpoints");
                    if self.checkpoints.is_empty() {
                        ui.weak("none yet (set \"Checkpoint every\" to save some)");
                    }
                    for (samples, dir) in &self.checkpoints {
                        let name = dir
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        ui.horizontal(|ui| {
                            ui.monospace(format!("{samples:>8} samples"));
                            ui.weak(name).on_hover_text(dir.display().to_string());
                        });
                    }
                    let can_eval = !self.running
                        && !self.checkpoints.is_empty()
                        && suite_ready
                        && self.run_dir.is_some();
                    if ui
                        .add_enabled(can_eval, egui::Button::new("Evaluate checkpoints"))
                        .on_hover_text(
                            "Every metric of the suite (Data, left) at the base and each checkpoint, against samples seen; the plots go to the Path tab",
                        )
                        .clicked()
                        && let (Some(train_dir), Some(base)) =
                            (self.run_dir.clone(), path_of(&self.base))
                    {
                        commands.push(TrainCommand::EvaluateCheckpoints { train_dir, base });
                    }
                    let curve_dir = self
                        .run_dir
                        .clone()
                        .filter(|d| CurveRecord::bend_dir(d).exists());
                    if curve_dir.is_some()
                        && ui
                            .add_enabled(
                                !self.running && suite_ready,
                                egui::Button::new("Sweep curve"),
                            )
                            .on_hover_text(
                                "Every metric of the suite along the fitted curve (t range of the Sweep settings); overlaid with the straight path's runs in the Path tab",
                            )
                            .clicked()
                        && let (Some(curve_dir), Some(base)) = (curve_dir, path_of(&self.base))
                    {
                        commands.push(TrainCommand::SweepCurve { curve_dir, base });
                    }
                    });
                });
            self.curves_ui(&mut cols[1]);
        });
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t: Vec<f64>, t_loss: Vec<Option<f64>>) -> StepRecord {
        StepRecord {
            step: 1,
            samples_seen: t.len(),
            tokens: 1,
            input_tokens: 1,
            loss: 0.0,
            lr: 0.0,
            grad_norm: 0.0,
            elapsed_s: 0.0,
            t: Some(t),
            t_loss: Some(t_loss),
        }
    }

    #[test]
    fn loss_by_t_bucket_averages_each_bucket_and_skips_empty_ones() {
        let a = step(
            vec![0.01, 0.05, 0.55, 1.0],
            vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)],
        );
        let b = step(vec![0.02, 0.5], vec![None, Some(9.0)]);
        let got = loss_by_t_bucket(&[&a, &b]);
        assert_eq!(got, vec![[0.05, 2.0], [0.55, 7.0], [0.95, 7.0]]);
    }
}
