//! The Study tab: open or edit a study file (`assets/studies/*.toml`), choose its folder, Run /
//! Cancel `basin study run`'s job, and follow each step (one row per step and training set:
//! status, wall time, a progress bar while it runs). A finished step's button opens its results
//! in the matching tab (Train, Curve, Path, Landscape, Influence); the report opens in the browser.
//! The panel owns its text and the shown state and returns [`StudyCommand`]s; the app runs them.

use std::path::{Path, PathBuf};

use eframe::egui;

use crate::experiments::job::Progress;
use crate::study::{
    Study,
    report::{REPORT_HTML, REPORT_JSON},
    run::{ARMS, Layout, Step, StepEvent, StepEventKind, StepStatus, StudyState, step_key},
};

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum StudyCommand {
    /// Run the study (saved to its file first) into the folder.
    Start {
        study: Box<Study>,
        out: PathBuf,
    },
    Cancel,
    /// Open these result folders in their tabs.
    Open(Vec<PathBuf>),
    /// Open the report in the system's browser.
    OpenReport(PathBuf),
}

/// The shown state of one step (of one training set).
#[derive(Debug, Clone, PartialEq)]
pub enum RowStatus {
    Pending,
    Running,
    Done {
        seconds: f64,
    },
    /// Finished in an earlier run with the same settings.
    Skipped,
    Failed(String),
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub key: String,
    pub step: Step,
    pub arm: Option<&'static str>,
    pub status: RowStatus,
    pub progress: Option<Progress>,
}

pub struct StudyPanel {
    /// The study file.
    pub path: String,
    /// Its text, as edited.
    pub text: String,
    /// The text differs from the file.
    pub dirty: bool,
    /// The study folder.
    pub out: String,
    /// Where a study gets its folder when none is typed (`<stem>` inside; the app's runs
    /// folder's `studies`).
    pub studies_dir: PathBuf,
    pub rows: Vec<StepRow>,
    /// The report's answers (from `report.json`), once there is one.
    pub answers: Vec<String>,
    pub running: bool,
    pub status: String,
}

impl Default for StudyPanel {
    fn default() -> Self {
        Self {
            path: String::new(),
            text: String::new(),
            dirty: false,
            out: String::new(),
            studies_dir: PathBuf::new(),
            rows: all_rows(),
            answers: Vec::new(),
            running: false,
            status: String::new(),
        }
    }
}

fn all_rows() -> Vec<StepRow> {
    Step::ALL
        .into_iter()
        .flat_map(|step| {
            let arms: Vec<Option<&'static str>> = if step.per_arm() {
                ARMS.iter().map(|a| Some(*a)).collect()
            } else {
                vec![None]
            };
            arms.into_iter().map(move |arm| StepRow {
                key: step_key(step, arm),
                step,
                arm,
                status: RowStatus::Pending,
                progress: None,
            })
        })
        .collect()
}

impl StudyPanel {
    /// Reads a study file into the editor (and the folder's state when one is chosen).
    pub fn open_file(&mut self, path: &Path) -> Result<(), String> {
        let text =
            crate::bounded::read_config(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.path = path.display().to_string();
        self.text = text;
        self.dirty = false;
        if self.out.trim().is_empty() {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "study".into());
            let root = if self.studies_dir.as_os_str().is_empty() {
                super::app::default_runs_dir().join("studies")
            } else {
                self.studies_dir.clone()
            };
            self.out = root.join(stem).display().to_string();
        }
        self.refresh();
        Ok(())
    }

    /// The study as edited, checked (paths relative to the file's folder).
    pub fn parsed(&self) -> Result<Study, String> {
        if self.path.trim().is_empty() {
            return Err("open a study file first (e.g. assets/studies/demo.toml)".into());
        }
        Study::parse(&self.text, Path::new(self.path.trim())).map_err(|e| e.to_string())
    }

    /// Reloads each row's status from the folder's `study.json` and the report's answers.
    pub fn refresh(&mut self) {
        self.answers = crate::bounded::read_config(Path::new(self.out.trim()).join(REPORT_JSON))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|r| {
                r.get("answers")?.as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
            })
            .unwrap_or_default();
        let state = if self.out.trim().is_empty() {
            None
        } else {
            StudyState::read(Path::new(self.out.trim())).ok().flatten()
        };
        for row in &mut self.rows {
            row.progress = None;
            row.status = match state.as_ref().and_then(|s| s.steps.get(&row.key)) {
                Some(s) => match s.status {
                    StepStatus::Done => RowStatus::Done { seconds: s.seconds },
                    StepStatus::Failed => RowStatus::Failed(s.error.clone().unwrap_or_default()),
                    StepStatus::Cancelled => RowStatus::Cancelled,
                },
                None => RowStatus::Pending,
            };
        }
    }

    pub fn on_started(&mut self) {
        self.running = true;
        self.status = "running".into();
    }

    pub fn on_step(&mut self, e: &StepEvent) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.key == e.key) {
            row.progress = None;
            row.status = match &e.kind {
                StepEventKind::Started => RowStatus::Running,
                StepEventKind::Skipped => RowStatus::Skipped,
                StepEventKind::Done { seconds } => RowStatus::Done { seconds: *seconds },
                StepEventKind::Failed { error } => RowStatus::Failed(error.clone()),
                StepEventKind::Cancelled => RowStatus::Cancelled,
            };
        }
    }

    pub fn on_progress(&mut self, key: &str, p: Progress) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.key == key) {
            row.progress = Some(p);
        }
    }

    pub fn on_finished(&mut self, message: String) {
        self.running = false;
        self.status = message;
        let rows = self.rows.clone();
        self.refresh();
        // Keep this run's events where study.json has nothing newer (a cancelled step).
        for (row, old) in self.rows.iter_mut().zip(rows) {
            if row.status == RowStatus::Pending {
                row.status = old.status;
            }
        }
        for row in &mut self.rows {
            if row.status == RowStatus::Running {
                row.status = RowStatus::Cancelled;
            }
            row.progress = None;
        }
    }

    /// The folders a finished row opens.
    fn folders(&self, row: &StepRow) -> Vec<PathBuf> {
        let layout = Layout::new(Path::new(self.out.trim()));
        match (row.step, row.arm) {
            (Step::Train, Some(a)) => vec![layout.train(a)],
            (Step::Efficiency, Some(a)) => vec![layout.efficiency(a)],
            // The fit in the Curve tab, then both sweeps on the Path tab's plots (shown last).
            (Step::Paths, Some(a)) => vec![layout.curve_fit(a), layout.line(a), layout.curve(a)],
            (Step::Landscape, Some(a)) => vec![layout.landscape(a)],
            (Step::Influence, Some(a)) => vec![layout.influence(a)],
            // Each replicate's training run, in the Train tab.
            (Step::Replicates, Some(a)) => self
                .parsed()
                .map(|s| {
                    s.file
                        .replicates
                        .seeds
                        .iter()
                        .map(|&seed| layout.replicate_train(a, seed))
                        .filter(|p| p.exists())
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) -> Vec<StudyCommand> {
        let mut commands = Vec::new();
        ui.horizontal(|ui| {
            ui.label("Study file");
            ui.add(egui::TextEdit::singleline(&mut self.path).desired_width(360.0));
            let clicked = ui.button("Open...").clicked();
            if let Some(p) = super::file_dialog::ask(
                ui.ctx(),
                "study.file",
                clicked.then(|| super::file_dialog::FileRequest::file().filter("Study", &["toml"])),
            ) && let Err(e) = self.open_file(&p)
            {
                self.status = e;
            }
            if ui
                .add_enabled(self.dirty, egui::Button::new("Save"))
                .clicked()
            {
                self.save();
            }
        });
        ui.horizontal(|ui| {
            ui.label("Study folder");
            if ui
                .add(egui::TextEdit::singleline(&mut self.out).desired_width(360.0))
                .changed()
            {
                self.refresh();
            }
            let clicked = ui.button("Choose...").clicked();
            if let Some(p) = super::file_dialog::ask(
                ui.ctx(),
                "study.out",
                clicked.then(super::file_dialog::FileRequest::folder),
            ) {
                self.out = p.display().to_string();
                self.refresh();
            }
            let parsed = self.parsed();
            let can_run = !self.running && parsed.is_ok() && !self.out.trim().is_empty();
            let run = ui
                .add_enabled(can_run, egui::Button::new("Run study"))
                .on_hover_text("Runs every step not finished yet; finished steps are skipped, an interrupted one resumes");
            if run.clicked()
                && let Ok(study) = parsed
            {
                if self.dirty {
                    self.save();
                }
                commands.push(StudyCommand::Start {
                    study: Box::new(study),
                    out: PathBuf::from(self.out.trim()),
                });
            }
            if ui
                .add_enabled(self.running, egui::Button::new("Cancel"))
                .on_hover_text("Stops after the work in flight; Run resumes it")
                .clicked()
            {
                commands.push(StudyCommand::Cancel);
            }
            let report = Path::new(self.out.trim()).join(REPORT_HTML);
            if ui
                .add_enabled(report.exists(), egui::Button::new("Open report"))
                .clicked()
            {
                commands.push(StudyCommand::OpenReport(report));
            }
        });
        if !self.status.is_empty() {
            ui.label(&self.status);
        }
        if let Err(e) = self.parsed()
            && !self.path.trim().is_empty()
        {
            ui.colored_label(egui::Color32::from_rgb(200, 60, 60), e);
        }
        ui.separator();
        ui.columns(2, |cols| {
            cols[0].strong("Steps");
            egui::Grid::new("study-steps")
                .striped(true)
                .show(&mut cols[0], |ui| {
                    ui.strong("step");
                    ui.strong("status");
                    ui.strong("");
                    ui.end_row();
                    for row in self.rows.clone() {
                        ui.monospace(&row.key);
                        match &row.status {
                            RowStatus::Running => {
                                let (frac, text) = match &row.progress {
                                    Some(p) if p.total > 0 => (
                                        p.done as f32 / p.total as f32,
                                        format!("{} {}/{}", p.stage, p.done, p.total),
                                    ),
                                    _ => (0.0, "starting".into()),
                                };
                                ui.add(
                                    egui::ProgressBar::new(frac).text(text).desired_width(220.0),
                                );
                            }
                            RowStatus::Done { seconds } => {
                                ui.label(format!("done ({seconds:.1} s)"));
                            }
                            RowStatus::Skipped => {
                                ui.label("done earlier");
                            }
                            RowStatus::Pending => {
                                ui.weak("pending");
                            }
                            RowStatus::Cancelled => {
                                ui.label("stopped (Run resumes)");
                            }
                            RowStatus::Failed(e) => {
                                ui.colored_label(egui::Color32::from_rgb(200, 60, 60), "failed")
                                    .on_hover_text(e);
                            }
                        }
                        let finished =
                            matches!(row.status, RowStatus::Done { .. } | RowStatus::Skipped);
                        let folders = self.folders(&row);
                        if finished && !folders.is_empty() {
                            if ui
                                .button("Open")
                                .on_hover_text("Show its results in their tab")
                                .clicked()
                            {
                                commands.push(StudyCommand::Open(folders));
                            }
                        } else {
                            ui.label("");
                        }
                        ui.end_row();
                    }
                });
            if !self.answers.is_empty() {
                cols[0].separator();
                cols[0].strong("Answers (report.json)");
                for a in &self.answers {
                    // The app's fonts have no arrows; the report's text is plain otherwise.
                    cols[0].label(format!("- {}", a.replace('→', "to")));
                }
            }
            cols[1].strong("Study file");
            egui::ScrollArea::vertical()
                .id_salt("study-text")
                .show(&mut cols[1], |ui| {
                    if ui
                        .add(
                            egui::TextEdit::multiline(&mut self.text)
                                .code_editor()
                                .desired_width(f32::INFINITY)
                                .desired_rows(30),
                        )
                        .changed()
                    {
                        self.dirty = true;
                    }
                });
        });
        commands
    }

    fn save(&mut self) {
        let path = PathBuf::from(self.path.trim());
        self.status = match super::export::write_text(&path, &self.text) {
            Ok(()) => {
                self.dirty = false;
                format!("saved {}", path.display())
            }
            Err(e) => format!("could not save: {e}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A study file's folder defaults to `<studies_dir>/<stem>` (the app's runs folder), never a
    /// fixed path in the shared temporary folder; a typed folder is kept.
    #[test]
    fn the_default_folder_is_in_the_apps_runs_folder() {
        let root = std::env::temp_dir().join(format!("basin-study-tab-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("my-study.toml");
        std::fs::write(&file, "name = \"x\"\n").unwrap();
        let mut p = StudyPanel {
            studies_dir: root.join("runs/studies"),
            ..StudyPanel::default()
        };
        p.open_file(&file).unwrap();
        assert_eq!(Path::new(&p.out), root.join("runs/studies/my-study"));
        let mut typed = StudyPanel {
            out: "/data/mine".into(),
            ..StudyPanel::default()
        };
        typed.open_file(&file).unwrap();
        assert_eq!(typed.out, "/data/mine");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn rows_follow_events_and_the_folder_state() {
        let mut p = StudyPanel::default();
        assert_eq!(p.rows.len(), 14);
        p.on_step(&StepEvent {
            key: "train/original".into(),
            kind: StepEventKind::Started,
        });
        p.on_progress(
            "train/original",
            Progress {
                done: 3,
                total: 10,
                stage: "training".into(),
            },
        );
        let row = p.rows.iter().find(|r| r.key == "train/original").unwrap();
        assert_eq!(row.status, RowStatus::Running);
        assert_eq!(row.progress.as_ref().unwrap().done, 3);
        p.on_finished("stopped".into());
        let row = p.rows.iter().find(|r| r.key == "train/original").unwrap();
        assert_eq!(row.status, RowStatus::Cancelled);
        assert!(!p.running);
    }

    #[test]
    fn a_bad_study_text_is_an_error_naming_the_file() {
        let p = StudyPanel {
            path: "/x/s.toml".into(),
            text: "name = 1".into(),
            ..Default::default()
        };
        let e = p.parsed().unwrap_err();
        assert!(e.contains("s.toml"), "{e}");
    }
}
