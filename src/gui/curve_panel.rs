//! The Curve tab: fit a low-loss curve between θ₀ and θ_H (the Models panel's base and endpoint)
//! as `basin curve fit` does: the bend's settings, Fit / Cancel with the live loss (overall and
//! by t bucket), then "Sweep curve", which walks the fitted curve with the suite and overlays it
//! on the Path tab's plots beside the straight path. The panel owns its state and returns
//! [`CurveCommand`]s; the fit is the same training job as the Train tab's, its events fed to
//! this panel's [`TrainRunView`].

use std::path::{Path, PathBuf};

use eframe::egui;

use super::{
    train_panel::{Recipe, TrainPanel, device_ui, recipe_rows_ui},
    train_view::TrainRunView,
};
use crate::{
    compute::ComputeKind,
    experiments::{
        curve::{BendKind, CurveEndpoint, CurveKind, CurveRecord, CurveSpec, TSampling},
        optim::Schedule,
        train::{TrainLength, TrainSpec},
        train_job::{AdapterInit, TrainRequest},
    },
};

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum CurveCommand {
    Fit(Box<TrainRequest>),
    Cancel,
    /// Sweep the suite along this fitted curve (a `basin curve fit` folder).
    Sweep {
        curve_dir: PathBuf,
        base: PathBuf,
    },
    /// Show a `basin curve fit` folder picked by the user.
    Open(PathBuf),
}

pub struct CurvePanel {
    /// Chats whose loss the fit keeps low along t (ordinary instruction data).
    pub data: String,
    /// Result folder of the next fit (empty: a new folder in the app's runs folder).
    pub out: String,
    pub kind: CurveKind,
    pub bend: BendKind,
    pub bend_rank: usize,
    pub bend_alpha: f64,
    pub bend_targets: String,
    pub t_sampling: TSampling,
    pub lr: f64,
    pub schedule: Schedule,
    pub epochs: usize,
    /// Optimizer steps; 0 fits for `epochs`.
    pub steps: usize,
    pub batch: usize,
    /// 0: no clipping.
    pub max_grad_norm: f64,
    pub seed: u64,
    /// In optimizer steps; 0: no checkpoints.
    pub checkpoint_every: usize,
    pub max_seq_len: usize,
    pub device: ComputeKind,
    /// The fit shown: its log (with each sequence's t), checkpoints and status.
    pub view: TrainRunView,
    /// The base of the fit shown (from its run.json when opened from disk).
    pub fitted_base: Option<PathBuf>,
}

impl Default for CurvePanel {
    fn default() -> Self {
        // `basin curve fit`'s defaults.
        Self {
            data: String::new(),
            out: String::new(),
            kind: CurveKind::Bezier,
            bend: BendKind::Lora,
            bend_rank: 8,
            bend_alpha: 16.0,
            bend_targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj".into(),
            t_sampling: TSampling::Stratified,
            lr: 1e-3,
            schedule: Schedule::Constant,
            epochs: 1,
            steps: 0,
            batch: 8,
            max_grad_norm: 1.0,
            seed: 0,
            checkpoint_every: 0,
            max_seq_len: 2048,
            device: ComputeKind::Cpu,
            view: TrainRunView::default(),
            fitted_base: None,
        }
    }
}

impl CurvePanel {
    /// The fit the settings describe between `base` and `endpoint` (a LoRA adapter, or a full
    /// checkpoint); `default_out` when no folder is given.
    pub fn request(
        &self,
        base: Option<PathBuf>,
        endpoint: Option<PathBuf>,
        default_out: &Path,
    ) -> Result<TrainRequest, String> {
        let base = base.ok_or("choose the base model θ₀ (Models, left)")?;
        let endpoint = endpoint
            .ok_or("choose the endpoint θ_H (Models, left): a LoRA adapter or a full checkpoint")?;
        let data = super::train_panel::path_of(&self.data)
            .ok_or("choose the data the curve keeps a low loss on (instruction chats, JSONL)")?;
        let out = super::train_panel::path_of(&self.out).unwrap_or_else(|| default_out.into());
        let endpoint_kind = if endpoint.join("adapter_config.json").exists() {
            CurveEndpoint::Lora
        } else {
            CurveEndpoint::Checkpoint
        };
        let mut req = TrainRequest::new(base, data, out);
        req.init = AdapterInit::New {
            rank: self.bend_rank,
            alpha: self.bend_alpha,
            targets: self
                .bend_targets
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            rslora: false,
        };
        req.endpoint = Some(endpoint);
        req.spec = TrainSpec {
            lr: self.lr,
            schedule: self.schedule,
            warmup_steps: 0,
            weight_decay: 0.0,
            length: if self.steps > 0 {
                TrainLength::Steps(self.steps)
            } else {
                TrainLength::Epochs(self.epochs)
            },
            batch: self.batch,
            grad_accum: 1,
            max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
            seed: self.seed,
            shuffle: true,
            checkpoint_every: (self.checkpoint_every > 0)
                .then(|| self.checkpoint_every.saturating_mul(self.batch)),
            lora_dropout: 0.0,
            curve: Some(CurveSpec {
                kind: self.kind,
                t_sampling: self.t_sampling,
                endpoint: endpoint_kind,
                bend: self.bend,
            }),
        };
        req.max_seq_len = self.max_seq_len;
        req.device = self.device;
        Ok(req)
    }

    /// Shows a `basin curve fit` folder as it is on disk; nothing is computed.
    pub fn open_run(&mut self, dir: &Path) -> Result<(), String> {
        let record = CurveRecord::read(dir)?;
        self.view.open_run(dir)?;
        self.fitted_base = Some(PathBuf::from(&record.base));
        self.kind = record.kind;
        self.bend = record.bend;
        Ok(())
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        TrainPanel::path_row_ui(
            ui,
            "curve",
            "Data",
            &mut self.data,
            false,
            "instruction chats (JSONL)",
        );
        TrainPanel::path_row_ui(
            ui,
            "curve",
            "Result folder",
            &mut self.out,
            true,
            "empty: a new folder",
        );
        egui::Grid::new("curve-settings")
            .num_columns(4)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                ui.label("Curve");
                egui::ComboBox::from_id_salt("curve-kind")
                    .selected_text(match self.kind {
                        CurveKind::Bezier => "Bezier",
                        CurveKind::Polychain => "polychain",
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.kind, CurveKind::Bezier, "Bezier")
                            .on_hover_text("φ(t) = 2t(1 − t): a quadratic Bezier through θ_b");
                        ui.selectable_value(&mut self.kind, CurveKind::Polychain, "polychain")
                            .on_hover_text("φ(t) = 1 − |2t − 1|: two segments meeting at θ_b");
                    });
                ui.label("Bend");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.bend, BendKind::Lora, "LoRA")
                        .on_hover_text("A low-rank bend (rank and alpha below), any model size");
                    ui.selectable_value(&mut self.bend, BendKind::Full, "full")
                        .on_hover_text(
                            "Dense weights of the modules below (small models; the base must be a \
                         Hugging Face folder; one t per batch)",
                        );
                });
                ui.end_row();
                let lora = self.bend == BendKind::Lora;
                ui.label("Bend rank");
                ui.add_enabled(
                    lora,
                    egui::DragValue::new(&mut self.bend_rank).range(1..=1024),
                );
                ui.label("Bend alpha");
                ui.add_enabled(
                    lora,
                    egui::DragValue::new(&mut self.bend_alpha).range(0.0..=4096.0),
                );
                ui.end_row();
                ui.label("Modules");
                ui.add(egui::TextEdit::singleline(&mut self.bend_targets).desired_width(160.0));
                ui.label("t per step");
                // A full bend is a dense delta: one t (and φ(t)) per batch.
                ui.add_enabled_ui(lora, |ui| {
                    egui::ComboBox::from_id_salt("curve-t-sampling")
                        .selected_text(match self.t_sampling {
                            TSampling::Stratified => "stratified",
                            TSampling::Uniform => "uniform",
                        })
                        .show_ui(ui, |ui| {
                            ui.selectable_value(
                                &mut self.t_sampling,
                                TSampling::Stratified,
                                "stratified",
                            );
                            ui.selectable_value(
                                &mut self.t_sampling,
                                TSampling::Uniform,
                                "uniform",
                            );
                        });
                })
                .response
                .on_disabled_hover_text("A full bend draws one t per batch");
                ui.end_row();
                recipe_rows_ui(
                    ui,
                    "curve",
                    Recipe {
                        lr: &mut self.lr,
                        schedule: &mut self.schedule,
                        epochs: &mut self.epochs,
                        steps: &mut self.steps,
                        batch: &mut self.batch,
                        max_grad_norm: &mut self.max_grad_norm,
                    },
                );
                ui.label("Checkpoint every");
                ui.add(
                    egui::DragValue::new(&mut self.checkpoint_every)
                        .range(0..=10_000_000)
                        .suffix(" steps"),
                );
                ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.seed));
                ui.end_row();
                ui.label("Device");
                device_ui(ui, &mut self.device);
                ui.end_row();
            });
    }

    /// Draws the tab. `base` and `endpoint` are the Models panel's θ₀ and θ_H; `suite_ready`
    /// enables "Sweep curve".
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        base: Option<PathBuf>,
        endpoint: Option<PathBuf>,
        suite_ready: bool,
    ) -> Vec<CurveCommand> {
        let mut commands = Vec::new();
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            egui::ScrollArea::vertical()
                .id_salt("curve-settings-scroll")
                .show(ui, |ui| {
                    ui.with_layout(egui::Layout::top_down(egui::Align::LEFT), |ui| {
                        let name = |p: &Option<PathBuf>| {
                            p.as_ref()
                                .map_or("(none: Models, left)".to_string(), |p| {
                                    p.display().to_string()
                                })
                        };
                        ui.label(format!("θ₀ (base): {}", name(&base)));
                        ui.label(format!("θ_H (endpoint): {}", name(&endpoint)));
                        ui.weak(
                            "θ(t) = θ₀ + t·Δ_H + φ(t)·Δ_bend; the fit trains Δ_bend only, keeping \
                             the loss on Data low at every t (Garipov et al. 2018)",
                        );
                        self.settings_ui(ui);
                        ui.add_space(8.0);
                        ui.horizontal(|ui| {
                            if ui
                                .add_enabled(!self.view.running, egui::Button::new("Fit curve"))
                                .on_hover_text(
                                    "Fit on a worker thread; rerunning into the same folder resumes",
                                )
                                .clicked()
                            {
                                match self.request(base.clone(), endpoint.clone(), Path::new("")) {
                                    Ok(req) => commands.push(CurveCommand::Fit(Box::new(req))),
                                    Err(e) => self.view.status = e,
                                }
                            }
                            if ui
                                .add_enabled(self.view.running, egui::Button::new("Cancel fit"))
                                .on_hover_text(
                                    "Stop after the step in flight; the state is saved to resume",
                                )
                                .clicked()
                            {
                                commands.push(CurveCommand::Cancel);
                            }
                            let clicked = ui
                                .add_enabled(!self.view.running, egui::Button::new("Open fit…"))
                                .on_hover_text("Show a `basin curve fit` folder")
                                .clicked();
                            if let Some(dir) = super::file_dialog::ask(
                                ui.ctx(),
                                "curve.open",
                                clicked.then(super::file_dialog::FileRequest::folder),
                            ) {
                                commands.push(CurveCommand::Open(dir));
                            }
                        });
                        self.view.progress_ui(ui);
                        let curve_dir = self
                            .view
                            .run_dir
                            .clone()
                            .filter(|d| CurveRecord::bend_dir(d).exists());
                        let fitted_base = self.fitted_base.clone().or(base.clone());
                        if ui
                            .add_enabled(
                                !self.view.running
                                    && suite_ready
                                    && curve_dir.is_some()
                                    && fitted_base.is_some(),
                                egui::Button::new("Sweep curve"),
                            )
                            .on_hover_text(
                                "Every metric of the suite along the fitted curve (t range of the \
                                 Sweep settings); overlaid with the straight path's runs in the \
                                 Path tab",
                            )
                            .clicked()
                            && let (Some(curve_dir), Some(base)) = (curve_dir, fitted_base)
                        {
                            commands.push(CurveCommand::Sweep { curve_dir, base });
                        }
                    });
                });
            self.view.curves_ui(&mut cols[1], "curve");
        });
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_endpoint_kind_and_the_bend() {
        let mut panel = CurvePanel {
            data: "chats.jsonl".into(),
            bend: BendKind::Full,
            checkpoint_every: 5,
            ..Default::default()
        };
        let base = Some(PathBuf::from("base"));
        // Not an adapter folder: a full checkpoint.
        let req = panel
            .request(base.clone(), Some("other".into()), Path::new("out"))
            .unwrap();
        let curve = req.spec.curve.unwrap();
        assert_eq!(curve.endpoint, CurveEndpoint::Checkpoint);
        assert_eq!(curve.bend, BendKind::Full);
        assert_eq!(req.spec.checkpoint_every, Some(40), "steps × batch samples");
        assert_eq!(req.out, PathBuf::from("out"));
        assert!(panel.request(base.clone(), None, Path::new("out")).is_err());
        panel.data.clear();
        let e = panel
            .request(base, Some("other".into()), Path::new("out"))
            .unwrap_err();
        assert!(e.contains("data"), "{e}");
    }
}
