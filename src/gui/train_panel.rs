//! The Train tab: a training run's inputs and recipe, Start / Cancel, the live loss and
//! learning-rate curves, the checkpoint list and "Evaluate checkpoints". The panel owns its state
//! and returns [`TrainCommand`]s; the app starts and stops the jobs and feeds their events to its
//! [`TrainRunView`]. A training folder written by `basin train` opens here too, without
//! recomputing. (Curve fits have their own tab, [`super::curve_panel`].)

use std::path::{Path, PathBuf};

use eframe::egui;

use super::train_view::TrainRunView;
use crate::{
    compute::ComputeKind,
    experiments::{
        optim::Schedule,
        train::{TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest},
    },
};

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
    /// The run shown: its log, checkpoints and status.
    pub view: TrainRunView,
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
            view: TrainRunView::default(),
        }
    }
}

/// The optimizer recipe shared by the Train and Curve tabs, drawn as three rows of a 4-column
/// grid.
pub(crate) struct Recipe<'a> {
    pub lr: &'a mut f64,
    pub schedule: &'a mut Schedule,
    pub epochs: &'a mut usize,
    /// 0: train for `epochs`.
    pub steps: &'a mut usize,
    pub batch: &'a mut usize,
    /// 0: no clipping.
    pub max_grad_norm: &'a mut f64,
}

/// Rows: learning rate and schedule; epochs and steps; batch and clip norm. `id` keeps the
/// schedule box of two tabs apart.
pub(crate) fn recipe_rows_ui(ui: &mut egui::Ui, id: &str, r: Recipe<'_>) {
    ui.label("Learning rate");
    ui.add(
        egui::DragValue::new(r.lr)
            .speed(1e-5)
            .range(0.0..=1.0)
            .max_decimals(6),
    );
    ui.label("Schedule");
    egui::ComboBox::from_id_salt((id, "schedule"))
        .selected_text(r.schedule.as_str())
        .show_ui(ui, |ui| {
            for s in [Schedule::Constant, Schedule::Linear, Schedule::Cosine] {
                ui.selectable_value(r.schedule, s, s.as_str());
            }
        });
    ui.end_row();
    ui.label("Epochs");
    ui.add_enabled(
        *r.steps == 0,
        egui::DragValue::new(r.epochs).range(1..=1000),
    );
    ui.label("Steps (0: epochs)");
    ui.add(egui::DragValue::new(r.steps).range(0..=10_000_000));
    ui.end_row();
    ui.label("Batch");
    ui.add(egui::DragValue::new(r.batch).range(1..=4096));
    ui.label("Clip norm (0: off)");
    ui.add(
        egui::DragValue::new(r.max_grad_norm)
            .speed(0.01)
            .range(0.0..=1e6),
    );
    ui.end_row();
}

/// CPU / GPU.
pub(crate) fn device_ui(ui: &mut egui::Ui, device: &mut ComputeKind) {
    ui.horizontal(|ui| {
        ui.selectable_value(device, ComputeKind::Cpu, "CPU");
        ui.selectable_value(device, ComputeKind::Gpu, "GPU");
    });
}

pub(crate) fn path_of(s: &str) -> Option<PathBuf> {
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
            curve: None,
        };
        req.max_seq_len = self.max_seq_len;
        req.device = self.device;
        Ok(req)
    }

    /// Shows a `basin train` folder as it is on disk (its log and checkpoints); nothing is
    /// computed.
    pub fn open_run(&mut self, dir: &Path) -> Result<(), String> {
        if let Some(base) = self.view.open_run(dir)? {
            self.base = base;
        }
        Ok(())
    }

    /// A path field with a Browse button; `scope` keeps the dialogs of two tabs apart.
    pub(crate) fn path_row_ui(
        ui: &mut egui::Ui,
        scope: &str,
        label: &str,
        value: &mut String,
        folder: bool,
        hint: &str,
    ) {
        ui.horizontal(|ui| {
            ui.label(label);
            ui.add(
                egui::TextEdit::singleline(value)
                    .desired_width(260.0)
                    .hint_text(hint),
            );
            let clicked = ui.small_button("...").on_hover_text("Browse").clicked();
            let request = if folder {
                super::file_dialog::FileRequest::folder()
            } else {
                super::file_dialog::FileRequest::file()
            };
            if let Some(p) =
                super::file_dialog::ask(ui.ctx(), (scope, label), clicked.then_some(request))
            {
                *value = p.display().to_string();
            }
        });
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        Self::path_row_ui(
            ui,
            "train",
            "Base model",
            &mut self.base,
            false,
            "HF folder or .gguf",
        );
        Self::path_row_ui(ui, "train", "Data", &mut self.data, false, "chat JSONL");
        Self::path_row_ui(
            ui,
            "train",
            "Continue adapter",
            &mut self.init_adapter,
            true,
            "empty: a new adapter",
        );
        Self::path_row_ui(
            ui,
            "train",
            "Result folder",
            &mut self.out,
            true,
            "empty: a new folder",
        );
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
                ui.label("Warmup steps");
                ui.add(egui::DragValue::new(&mut self.warmup_steps).range(0..=100_000));
                ui.end_row();
                recipe_rows_ui(
                    ui,
                    "train",
                    Recipe {
                        lr: &mut self.lr,
                        schedule: &mut self.schedule,
                        epochs: &mut self.epochs,
                        steps: &mut self.steps,
                        batch: &mut self.batch,
                        max_grad_norm: &mut self.max_grad_norm,
                    },
                );
                ui.label("Grad accum");
                ui.add(egui::DragValue::new(&mut self.grad_accum).range(1..=4096));
                ui.label("Weight decay");
                ui.add(
                    egui::DragValue::new(&mut self.weight_decay)
                        .speed(1e-3)
                        .range(0.0..=10.0),
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
                device_ui(ui, &mut self.device);
                ui.end_row();
            });
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
                            .add_enabled(!self.view.running, egui::Button::new("Start training"))
                            .on_hover_text(
                                "Train on a worker thread; rerunning into the same folder resumes",
                            )
                            .clicked()
                        {
                            match self.request(Path::new("")) {
                                Ok(req) => commands.push(TrainCommand::Start(Box::new(req))),
                                Err(e) => self.view.status = e,
                            }
                        }
                        if ui
                            .add_enabled(self.view.running, egui::Button::new("Cancel training"))
                            .on_hover_text("Stop after the step in flight; the state is saved to resume")
                            .clicked()
                        {
                            commands.push(TrainCommand::Cancel);
                        }
                    });
                    self.view.progress_ui(ui);
                    ui.separator();
                    ui.strong("Checkpoints");
                    if self.view.checkpoints.is_empty() {
                        ui.weak("none yet (set \"Checkpoint every\" to save some)");
                    }
                    for (samples, dir) in &self.view.checkpoints {
                        let name = dir
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        ui.horizontal(|ui| {
                            ui.monospace(format!("{samples:>8} samples"));
                            ui.weak(name).on_hover_text(dir.display().to_string());
                        });
                    }
                    let can_eval = !self.view.running
                        && !self.view.checkpoints.is_empty()
                        && suite_ready
                        && self.view.run_dir.is_some();
                    if ui
                        .add_enabled(can_eval, egui::Button::new("Evaluate checkpoints"))
                        .on_hover_text(
                            "Every metric of the suite (Data, left) at the base and each checkpoint, against samples seen; the plots go to the Path tab",
                        )
                        .clicked()
                        && let (Some(train_dir), Some(base)) =
                            (self.view.run_dir.clone(), path_of(&self.base))
                    {
                        commands.push(TrainCommand::EvaluateCheckpoints { train_dir, base });
                    }
                    });
                });
            self.view.curves_ui(&mut cols[1], "train");
        });
        commands
    }
}
