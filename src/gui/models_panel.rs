//! The left panel: Models (base, endpoint, second adapter), Data (suite), Device, Sweep settings
//! and Runs. Widgets only edit state or call the app's commands.

use super::file_dialog::{self, FileRequest};
use std::path::PathBuf;

use eframe::egui;

use crate::compute::ComputeKind;

use super::{
    app::{BasinApp, InputSlot, ReportState},
    jobs::Slot,
    reports::ModelReport,
};

/// Which dialogs a model slot offers.
#[derive(Clone, Copy)]
enum Pick {
    Model,
    Endpoint,
    Adapter,
}

fn report_ui(ui: &mut egui::Ui, state: &ReportState<ModelReport>) {
    match state {
        ReportState::Empty => {
            ui.weak("nothing loaded");
        }
        ReportState::Loading => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("reading...");
            });
        }
        ReportState::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ReportState::Ready(r) => {
            egui::Grid::new(r.path.display().to_string())
                .num_columns(2)
                .spacing([8.0, 2.0])
                .show(ui, |ui| {
                    for (k, v) in &r.lines {
                        ui.weak(k);
                        ui.label(v);
                        ui.end_row();
                    }
                });
            for w in &r.warnings {
                ui.colored_label(ui.visuals().warn_fg_color, w.to_string());
            }
        }
    }
}

/// A path field with its dialogs and Load button; returns the slot to (re)load, if any.
fn slot_ui(
    ui: &mut egui::Ui,
    title: &str,
    field: &str,
    slot: &mut InputSlot<ModelReport>,
    pick: Pick,
) -> Option<Option<PathBuf>> {
    let mut action = None;
    ui.strong(title);
    ui.horizontal(|ui| {
        let label = ui.label(field);
        ui.add(
            egui::TextEdit::singleline(&mut slot.path)
                .desired_width(180.0)
                .hint_text("folder, .gguf or org/name"),
        )
        .labelled_by(label.id)
        .on_hover_text(slot.path.clone());
        if ui
            .button("Load")
            .on_hover_text("Read this path (or a Hugging Face repo id from the local cache)")
            .clicked()
        {
            action = Some(None);
        }
    });
    ui.horizontal(|ui| {
        let folder_label = match pick {
            Pick::Model | Pick::Endpoint => "Open folder...",
            Pick::Adapter => "Open adapter...",
        };
        // Ctrl+O (Cmd+O on macOS) opens θ₀'s folder, the first thing a session needs.
        let hint = if field == "base" {
            "Choose a Hugging Face model folder (Ctrl+O)"
        } else {
            "Choose a folder"
        };
        let shortcut = field == "base"
            && ui.input_mut(|i| {
                i.consume_shortcut(&egui::KeyboardShortcut::new(
                    egui::Modifiers::COMMAND,
                    egui::Key::O,
                ))
            });
        let clicked = ui.button(folder_label).on_hover_text(hint).clicked() || shortcut;
        if let Some(p) = file_dialog::ask(
            ui.ctx(),
            ("models.folder", field),
            clicked.then(FileRequest::folder),
        ) {
            action = Some(Some(p));
        }
        let gguf =
            matches!(pick, Pick::Model | Pick::Endpoint) && ui.button("Open GGUF...").clicked();
        if let Some(p) = file_dialog::ask(
            ui.ctx(),
            ("models.gguf", field),
            gguf.then(|| FileRequest::file().filter("GGUF", &["gguf"])),
        ) {
            action = Some(Some(p));
        }
        if !slot.path.is_empty() && ui.button("Clear").clicked() {
            slot.path.clear();
            slot.report = ReportState::Empty;
        }
    });
    report_ui(ui, &slot.report);
    action
}

pub fn inputs_ui(app: &mut BasinApp, ui: &mut egui::Ui) {
    ui.heading("Models");
    let mut actions: Vec<(Slot, Option<PathBuf>)> = Vec::new();
    if let Some(a) = slot_ui(ui, "Base model theta0", "base", &mut app.base, Pick::Model) {
        actions.push((Slot::Base, a));
    }
    ui.add_space(6.0);
    if let Some(a) = slot_ui(
        ui,
        "Endpoint (LoRA adapter or checkpoint)",
        "end",
        &mut app.endpoint,
        Pick::Endpoint,
    ) {
        actions.push((Slot::Endpoint, a));
    }
    ui.add_space(6.0);
    if let Some(a) = slot_ui(
        ui,
        "Second adapter (optional: A -> B path)",
        "B",
        &mut app.adapter_b,
        Pick::Adapter,
    ) {
        actions.push((Slot::AdapterB, a));
    }
    for (slot, path) in actions {
        match path {
            Some(p) => app.set_model_path(slot, &p),
            None => app.reload(slot),
        }
    }

    ui.separator();
    ui.heading("Data");
    let mut load_suite = None;
    ui.horizontal(|ui| {
        let label = ui.label("Suite");
        ui.add(
            egui::TextEdit::singleline(&mut app.suite.path)
                .desired_width(180.0)
                .hint_text("suite.toml"),
        )
        .labelled_by(label.id);
        if ui.button("Load suite").clicked() {
            load_suite = app.suite.path_buf();
        }
    });
    let clicked = ui.button("Open suite...").clicked();
    if let Some(p) = file_dialog::ask(
        ui.ctx(),
        "models.suite",
        clicked.then(|| FileRequest::file().filter("Basin suite", &["toml"])),
    ) {
        load_suite = Some(p);
    }
    if let Some(p) = load_suite {
        app.set_suite_path(&p);
    }
    match &app.suite.report {
        ReportState::Empty => {
            ui.weak("no suite");
        }
        ReportState::Loading => {
            ui.spinner();
        }
        ReportState::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ReportState::Ready(s) => {
            ui.label(format!("suite `{}`: {} metrics", s.name, s.metrics.len()));
            // The check applies to the suite it was run on.
            let check = match &app.suite_check.report {
                ReportState::Ready(r) if app.suite_check.path == app.suite.path => Some(r),
                _ => None,
            };
            for m in &s.metrics {
                let flag = check
                    .and_then(|c| c.metrics.iter().find(|x| x.name == m.name))
                    .map(|x| {
                        let mut tags = Vec::new();
                        if x.floor {
                            tags.push("floor".to_string());
                        }
                        if x.ceiling {
                            tags.push("ceiling".to_string());
                        }
                        if x.length_confound {
                            tags.push(format!("length ρ {:.2}", x.length_rho.unwrap_or(f64::NAN)));
                        }
                        (x, tags)
                    });
                ui.horizontal(|ui| {
                    egui::CollapsingHeader::new(format!(
                        "{} · {} · {} items",
                        m.name, m.kind, m.n_items
                    ))
                    .id_salt(("metric", &m.name))
                    .show(ui, |ui| {
                        if let Some(d) = &m.description {
                            ui.label(d);
                        }
                        if let Some((x, _)) = &flag {
                            for (form, v) in &x.forms {
                                ui.monospace(format!(
                                    "{form:<9} {:.3} [{:.3}, {:.3}]",
                                    v.value, v.ci_low, v.ci_high
                                ));
                            }
                        }
                        for p in &m.preview {
                            ui.weak(p);
                        }
                    });
                    match &flag {
                        Some((x, tags)) if !tags.is_empty() => {
                            ui.colored_label(ui.visuals().warn_fg_color, tags.join(", "))
                                .on_hover_text(&x.verdict);
                        }
                        Some((x, _)) => {
                            ui.weak("ok").on_hover_text(&x.verdict);
                        }
                        None => {}
                    }
                });
            }
            ui.horizontal(|ui| {
                let running = matches!(app.suite_check.report, ReportState::Loading);
                if ui
                    .add_enabled(!running, egui::Button::new("Check suite at θ₀"))
                    .on_hover_text(
                        "Score the suite at the base model and flag metrics at their floor or ceiling or confounded by answer length (basin suite check)",
                    )
                    .clicked()
                {
                    app.check_suite();
                }
                if running {
                    ui.spinner();
                }
            });
            if let ReportState::Failed(e) = &app.suite_check.report {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
    }

    ui.separator();
    ui.heading("Device");
    ui.horizontal(|ui| {
        ui.radio_value(&mut app.settings.device, ComputeKind::Cpu, "CPU");
        let gpu_ok = app.gpu_label.is_ok();
        ui.add_enabled_ui(gpu_ok, |ui| {
            ui.radio_value(&mut app.settings.device, ComputeKind::Gpu, "GPU");
        });
    });
    match &app.gpu_label {
        Ok(l) => ui.weak(l),
        Err(e) => ui.weak(format!("GPU unavailable: {e}")),
    };
    ui.horizontal(|ui| {
        use crate::model::weight_dtype::WeightDType;
        ui.label("Weights");
        ui.radio_value(&mut app.settings.dtype, WeightDType::F32, "f32");
        ui.radio_value(&mut app.settings.dtype, WeightDType::F16, "f16")
            .on_hover_text("linear weights and vocabulary tables stored in half precision (half their memory); computation stays f32");
        let cpu = app.settings.device == ComputeKind::Cpu;
        ui.add_enabled_ui(cpu, |ui| {
            ui.radio_value(&mut app.settings.dtype, WeightDType::Bf16, "bf16")
                .on_hover_text("bfloat16 storage: CPU only (WGSL has no bfloat16 type)")
                .on_disabled_hover_text("bfloat16 storage runs on the CPU only (WGSL has no bfloat16 type)");
        });
        if !cpu && app.settings.dtype == WeightDType::Bf16 {
            app.settings.dtype = WeightDType::F16;
        }
    });

    ui.separator();
    ui.heading("Sweep");
    egui::Grid::new("sweep-settings")
        .num_columns(2)
        .show(ui, |ui| {
            let row = |ui: &mut egui::Ui, name: &str, w: egui::DragValue<'_>| {
                let l = ui.label(name);
                ui.add(w).labelled_by(l.id);
                ui.end_row();
            };
            row(
                ui,
                "t from",
                egui::DragValue::new(&mut app.settings.t_start).speed(0.05),
            );
            row(
                ui,
                "t to",
                egui::DragValue::new(&mut app.settings.t_stop).speed(0.05),
            );
            row(
                ui,
                "points",
                egui::DragValue::new(&mut app.settings.t_points).range(1..=1001),
            );
            row(
                ui,
                "batch",
                egui::DragValue::new(&mut app.settings.batch).range(1..=256),
            );
            row(
                ui,
                "bootstrap",
                egui::DragValue::new(&mut app.settings.bootstrap).range(0..=100_000),
            );
        });
    ui.weak(format!("results go to {}", app.runs_dir.display()));
    ui.separator();
    ui.heading("Runs");
    let mut remove = None;
    for (i, run) in app.runs.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            ui.checkbox(&mut run.visible, "show")
                .on_hover_text("Show on the plots");
            let l = ui.label("label");
            ui.add(egui::TextEdit::singleline(&mut run.label).desired_width(130.0))
                .labelled_by(l.id)
                .on_hover_text(run.spec_summary());
            ui.weak(format!("{} pts", run.t_values().len()));
            if ui
                .small_button("Remove")
                .on_hover_text("Remove from the session (files stay)")
                .clicked()
            {
                remove = Some(i);
            }
        });
    }
    // The run a sweep is filling stays.
    if let Some(i) = remove
        && app
            .sweep
            .as_ref()
            .is_none_or(|j| app.runs.get(i).is_none_or(|r| r.dir != j.request.out))
    {
        app.runs.remove(i);
    }
    let clicked = ui.button("Open result folder...").clicked();
    if let Some(p) = file_dialog::ask(
        ui.ctx(),
        "models.results",
        clicked.then(FileRequest::folder),
    ) {
        app.open_result_folder(&p);
    }
}
