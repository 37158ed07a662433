//! The Influence tab: rank the training chats by their influence on a suite metric (or a chats
//! file) with `basin influence`'s job, then browse the ranking: a filterable table sorted by score,
//! id or gradient norm (rank, score, id, gradient norm, text preview; CSV export), the full text of a clicked row, and the
//! sign convention. The panel owns its settings and the shown ranking and returns
//! [`InfluenceCommand`]s; the app fills in the Models and Data panels' inputs and runs the job.
//! A folder written by the CLI opens here without recomputing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use eframe::egui;

use crate::experiments::{
    influence::{InfluenceMethod, Normalize, SampleScore},
    influence_job::{INFLUENCE_SCHEMA, InfluenceRequest, InfluenceSummary, Query},
    job::Progress,
    sweep_store::RunRecord,
};
use crate::text::dataset::load_chat_jsonl;

/// Table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Highest score first.
    Rank,
    /// Lowest score first (the samples that push the query down the most).
    ReverseRank,
    Id,
    /// Largest training gradient first.
    GradNorm,
}

/// `rank,score,id,family,sign,grad_norm` rows (a header, then one per sample in the given
/// order; family and sign empty for chats the generator does not describe).
pub fn scores_csv(rows: &[&SampleScore], fields: &BTreeMap<String, (String, String)>) -> String {
    let mut out = String::from("rank,score,id,family,sign,grad_norm\n");
    for s in rows {
        let (family, sign) = fields
            .get(&s.id)
            .map_or(("", ""), |(f, g)| (f.as_str(), g.as_str()));
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            s.rank,
            s.score,
            super::export::csv_field(&s.id),
            super::export::csv_field(family),
            super::export::csv_field(sign),
            s.grad_norm.last().copied().unwrap_or(f64::NAN)
        ));
    }
    out
}

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum InfluenceCommand {
    /// Start a ranking; the app fills in the base, the adapter and the suite.
    Start(Box<InfluenceRequest>),
    Cancel,
}

pub struct InfluencePanel {
    /// The training chats (JSONL) the adapter was trained on.
    pub data: String,
    /// A `basin train` folder (empty: the Models panel's adapter and `data`).
    pub train_run: String,
    /// The suite metric used as the query.
    pub metric: String,
    pub method: InfluenceMethod,
    pub normalize: Normalize,
    /// Only rows whose id or text contains this, or whose family or sign is this.
    pub filter: String,
    /// The column the table is sorted by (rank = score, highest first).
    pub sort: SortBy,
    /// The folder shown (running or opened).
    pub dir: Option<PathBuf>,
    pub scores: Vec<SampleScore>,
    pub summary: Option<InfluenceSummary>,
    /// Training chat id → its text (user turns and the answer), for previews.
    pub texts: HashMap<String, String>,
    /// Training chat id → (task family, include/avoid sign), from the generator's
    /// `items.jsonl` beside the chats (empty for other data).
    pub fields: BTreeMap<String, (String, String)>,
    pub selected: Option<String>,
    pub running: bool,
    pub progress: Option<Progress>,
    pub status: String,
}

impl Default for InfluencePanel {
    fn default() -> Self {
        Self {
            data: String::new(),
            train_run: String::new(),
            metric: String::new(),
            method: InfluenceMethod::Gradsim,
            // The form that passed the retraining check (RESULTS.md); raw gradients rank by norm.
            normalize: Normalize::Unit,
            filter: String::new(),
            sort: SortBy::Rank,
            dir: None,
            scores: Vec::new(),
            summary: None,
            texts: HashMap::new(),
            fields: BTreeMap::new(),
            selected: None,
            running: false,
            progress: None,
            status: String::new(),
        }
    }
}

impl InfluencePanel {
    /// The request the Run button starts (base, adapter, suite and out left for the app).
    pub fn request(&self, suite: Option<PathBuf>) -> Result<InfluenceRequest, String> {
        let query = match suite {
            Some(suite) if !self.metric.is_empty() => Query::Metric {
                suite,
                metric: self.metric.clone(),
            },
            _ => return Err("choose a suite (Data, left) and the metric to rank by".into()),
        };
        let train_run =
            (!self.train_run.trim().is_empty()).then(|| PathBuf::from(self.train_run.trim()));
        let data = (!self.data.trim().is_empty()).then(|| PathBuf::from(self.data.trim()));
        if train_run.is_none() && data.is_none() {
            return Err("give the training chats (JSONL) or a training run folder".into());
        }
        Ok(InfluenceRequest {
            base: PathBuf::new(),
            adapter: None,
            data,
            train_run,
            query,
            method: self.method,
            normalize: self.normalize,
            damping: crate::experiments::influence::Damping::Auto,
            device: crate::compute::ComputeKind::Cpu,
            batch: 1,
            max_tokens: 8192,
            top: 10,
            out: PathBuf::new(),
            proj_dim: None,
            proj_seed: 0,
            grad_cache: None,
        })
    }

    pub fn on_started(&mut self, dir: &Path) {
        self.dir = Some(dir.to_path_buf());
        self.scores.clear();
        self.summary = None;
        self.running = true;
        self.progress = None;
        self.status = "loading the model...".into();
    }

    pub fn on_progress(&mut self, p: Progress) {
        self.status = format!("{}: {} of {} samples", p.stage, p.done, p.total);
        self.progress = Some(p);
    }

    pub fn on_finished(&mut self, message: String) {
        self.running = false;
        self.progress = None;
        self.status = message;
        if let Some(dir) = self.dir.clone() {
            let _ = self.load(&dir);
        }
    }

    /// Reads a ranking folder (`run.json`, `scores.jsonl`, `summary.json`) and the training
    /// chats it names (for previews).
    fn load(&mut self, dir: &Path) -> Result<(), String> {
        let read = |name: &str| -> Result<String, String> {
            crate::bounded::read_config(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let record: RunRecord = serde_json::from_str(&read("run.json")?)
            .map_err(|e| format!("{}: {e}", dir.join("run.json").display()))?;
        if record.schema != INFLUENCE_SCHEMA {
            return Err(format!(
                "{}: not an influence folder (schema {})",
                dir.display(),
                record.schema
            ));
        }
        let summary: InfluenceSummary = serde_json::from_str(&read("summary.json")?)
            .map_err(|e| format!("{}: {e}", dir.join("summary.json").display()))?;
        let mut scores = Vec::new();
        for (i, line) in read("scores.jsonl")?.lines().enumerate() {
            scores.push(serde_json::from_str::<SampleScore>(line).map_err(|e| {
                format!(
                    "{}: line {}: {e}",
                    dir.join("scores.jsonl").display(),
                    i + 1
                )
            })?);
        }
        self.texts.clear();
        self.fields.clear();
        if let Some(data) = record.spec.get("data").and_then(|v| v.as_str()) {
            self.fields = crate::experiments::influence_job::generator_fields(Path::new(data));
        }
        if let Some(data) = record.spec.get("data").and_then(|v| v.as_str())
            && let Ok(chats) = load_chat_jsonl(data)
        {
            for c in chats {
                let text: Vec<String> = c
                    .messages
                    .iter()
                    .filter(|m| m.role != "system")
                    .map(|m| format!("[{}] {}", m.role, m.content))
                    .collect();
                self.texts.insert(c.id.clone(), text.join("\n"));
            }
        }
        self.summary = Some(summary);
        self.scores = scores;
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// Shows a ranking folder written by the app or `basin influence`.
    pub fn open_run(&mut self, dir: &Path) -> Result<(), String> {
        self.load(dir)?;
        self.status = format!("opened {} ({} samples)", dir.display(), self.scores.len());
        Ok(())
    }

    /// The rows the table shows: the filter applied, in the chosen order.
    pub fn visible_rows(&self) -> Vec<&SampleScore> {
        let f = self.filter.to_lowercase();
        let mut rows: Vec<&SampleScore> = self
            .scores
            .iter()
            .filter(|s| {
                f.is_empty()
                    || s.id.to_lowercase().contains(&f)
                    || self.fields.get(&s.id).is_some_and(|(family, sign)| {
                        family.to_lowercase() == f || sign.to_lowercase() == f
                    })
                    || self
                        .texts
                        .get(&s.id)
                        .is_some_and(|t| t.to_lowercase().contains(&f))
            })
            .collect();
        let norm = |s: &SampleScore| s.grad_norm.last().copied().unwrap_or(f64::NAN);
        match self.sort {
            SortBy::Rank => rows.sort_by_key(|s| s.rank),
            SortBy::ReverseRank => rows.sort_by_key(|s| std::cmp::Reverse(s.rank)),
            SortBy::Id => rows.sort_by(|a, b| a.id.cmp(&b.id)),
            SortBy::GradNorm => rows.sort_by(|a, b| norm(b).total_cmp(&norm(a))),
        }
        rows
    }

    /// Draws the tab; `metrics` are the suite's metric names.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        metrics: &[String],
        suite: Option<PathBuf>,
        inputs_ready: bool,
    ) -> Vec<InfluenceCommand> {
        let mut commands = Vec::new();
        ui.horizontal_wrapped(|ui| {
            ui.label("Query metric");
            egui::ComboBox::from_id_salt("influence-metric")
                .selected_text(self.metric.clone())
                .show_ui(ui, |ui| {
                    for m in metrics {
                        ui.selectable_value(&mut self.metric, m.clone(), m);
                    }
                });
            ui.label("Method");
            egui::ComboBox::from_id_salt("influence-method")
                .selected_text(match self.method {
                    InfluenceMethod::Gradsim => "gradsim",
                    InfluenceMethod::Tracin => "tracin",
                    InfluenceMethod::Datainf => "datainf",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.method, InfluenceMethod::Gradsim, "gradsim")
                        .on_hover_text("One adapter: -grad f . grad l(z)");
                    ui.selectable_value(&mut self.method, InfluenceMethod::Tracin, "tracin")
                        .on_hover_text(
                            "A training run's checkpoints, weighted by their learning rates",
                        );
                    ui.selectable_value(&mut self.method, InfluenceMethod::Datainf, "datainf")
                        .on_hover_text(
                            "One adapter, DataInf's closed-form inverse Hessian per LoRA layer",
                        );
                });
            let mut unit = self.normalize == Normalize::Unit;
            ui.checkbox(&mut unit, "unit-normalise training gradients")
                .on_hover_text(
                    "Divide each training gradient by its norm (cosine form). Without it the \
                     largest-gradient chats top every ranking; with it, removing the top-ranked \
                     chats lowered hacking more than removing random ones (RESULTS.md).",
                );
            self.normalize = if unit {
                Normalize::Unit
            } else {
                Normalize::None
            };
        });
        ui.horizontal(|ui| {
            ui.label("Training chats");
            ui.add(
                egui::TextEdit::singleline(&mut self.data)
                    .hint_text("the JSONL the adapter was trained on")
                    .desired_width(260.0),
            );
            ui.label("or training run");
            ui.add(
                egui::TextEdit::singleline(&mut self.train_run)
                    .hint_text("a basin train folder")
                    .desired_width(200.0),
            );
        });
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!self.running && inputs_ready, egui::Button::new("Rank samples"))
                .on_hover_text("Per-sample LoRA gradients on a worker thread (base and adapter from the Models panel)")
                .on_disabled_hover_text("choose a base, an adapter endpoint and a suite (left)")
                .clicked()
            {
                match self.request(suite) {
                    Ok(r) => commands.push(InfluenceCommand::Start(Box::new(r))),
                    Err(e) => self.status = e,
                }
            }
            if ui
                .add_enabled(self.running, egui::Button::new("Cancel ranking"))
                .clicked()
            {
                commands.push(InfluenceCommand::Cancel);
            }
            if let Some(p) = &self.progress
                && p.total > 0
            {
                ui.add(
                    egui::ProgressBar::new(p.done as f32 / p.total as f32)
                        .desired_width(160.0)
                        .show_percentage(),
                );
            }
            ui.label(&self.status);
        });
        ui.separator();
        let Some(summary) = &self.summary else {
            ui.label("No ranking yet: choose the query metric and the training chats, then Rank samples; or open an influence folder (File > Open result folder).");
            return commands;
        };
        ui.label(format!(
            "{} samples by {:?} on {}; query value {}",
            summary.samples,
            summary.method,
            summary.query,
            summary
                .query_value
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        ui.weak(format!("Sign: {}", summary.sign));
        if !summary.groups.is_empty() {
            group_chart_ui(ui, &summary.groups);
        }
        ui.horizontal(|ui| {
            ui.label("Filter");
            ui.add(egui::TextEdit::singleline(&mut self.filter).desired_width(200.0));
            ui.label("Sort");
            ui.selectable_value(&mut self.sort, SortBy::Rank, "highest score");
            ui.selectable_value(&mut self.sort, SortBy::ReverseRank, "lowest score");
            ui.selectable_value(&mut self.sort, SortBy::Id, "id");
            ui.selectable_value(&mut self.sort, SortBy::GradNorm, "|grad|");
            let clicked = ui
                .button("Export CSV...")
                .on_hover_text(
                    "The rows shown, in this order (scores.jsonl in the folder has everything)",
                )
                .clicked();
            if let Some(path) = super::file_dialog::ask(
                ui.ctx(),
                "influence.csv",
                clicked.then(|| super::file_dialog::FileRequest::save("influence.csv")),
            ) {
                let text = scores_csv(&self.visible_rows(), &self.fields);
                self.status = match super::export::write_text(&path, &text) {
                    Ok(()) => format!("saved {}", path.display()),
                    Err(e) => format!("export failed: {e}"),
                };
            }
        });
        let rows: Vec<SampleScore> = self.visible_rows().into_iter().cloned().collect();
        let detail_height = if self.selected.is_some() { 140.0 } else { 0.0 };
        egui::ScrollArea::vertical()
            .id_salt("influence-table")
            .max_height((ui.available_height() - detail_height).max(80.0))
            .show(ui, |ui| {
                egui::Grid::new("influence-grid")
                    .striped(true)
                    .show(ui, |ui| {
                        ui.strong("rank");
                        ui.strong("score");
                        ui.strong("id");
                        ui.strong("family");
                        ui.strong("sign");
                        ui.strong("|grad|");
                        ui.strong("text");
                        ui.end_row();
                        for s in &rows {
                            ui.monospace(format!("{}", s.rank));
                            ui.monospace(format!("{:+.4e}", s.score));
                            if ui
                                .selectable_label(self.selected.as_ref() == Some(&s.id), &s.id)
                                .clicked()
                            {
                                self.selected = Some(s.id.clone());
                            }
                            let (family, sign) = self
                                .fields
                                .get(&s.id)
                                .map_or(("", ""), |(f, g)| (f.as_str(), g.as_str()));
                            ui.label(family);
                            ui.label(sign);
                            ui.monospace(format!(
                                "{:.3}",
                                s.grad_norm.last().copied().unwrap_or(f64::NAN)
                            ));
                            let preview: String = self
                                .texts
                                .get(&s.id)
                                .map(|t| t.replace('\n', " ").chars().take(90).collect())
                                .unwrap_or_default();
                            ui.label(preview);
                            ui.end_row();
                        }
                    });
            });
        if let Some(id) = self.selected.clone() {
            ui.separator();
            ui.horizontal(|ui| {
                ui.strong(format!("Sample {id}"));
                if ui.button("Close sample").clicked() {
                    self.selected = None;
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("influence-detail")
                .show(ui, |ui| {
                    ui.label(self.texts.get(&id).cloned().unwrap_or_default());
                });
        }
        commands
    }
}

/// Total influence per task family, include and avoid side by side (the generator's fields).
fn group_chart_ui(ui: &mut egui::Ui, groups: &[crate::experiments::influence_job::GroupInfluence]) {
    use egui_plot::{Bar, BarChart, Legend, Plot};
    let mut families: Vec<&str> = groups.iter().map(|g| g.family.as_str()).collect();
    families.dedup();
    let bars = |sign: &str, offset: f64| -> Vec<Bar> {
        groups
            .iter()
            .filter(|g| g.sign == sign)
            .filter_map(|g| {
                let x = families.iter().position(|f| *f == g.family)? as f64;
                Some(Bar::new(x + offset, g.total).width(0.35).name(&g.family))
            })
            .collect()
    };
    let names = families.iter().map(|f| f.to_string()).collect::<Vec<_>>();
    Plot::new("influence-groups")
        .height(150.0)
        .legend(Legend::default())
        .x_axis_formatter(move |mark, _| {
            names
                .get(mark.value.round() as usize)
                .filter(|_| (mark.value - mark.value.round()).abs() < 1e-6)
                .cloned()
                .unwrap_or_default()
        })
        .y_axis_label("total score")
        .show(ui, |plot_ui| {
            plot_ui.bar_chart(BarChart::new("include", bars("include", -0.18)));
            plot_ui.bar_chart(BarChart::new("avoid", bars("avoid", 0.18)));
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_matches_ids_and_texts() {
        let mut p = InfluencePanel::default();
        for (id, rank) in [("a-1", 1), ("b-2", 2)] {
            p.scores.push(SampleScore {
                id: id.into(),
                score: 0.0,
                rank,
                per_point: vec![0.0],
                grad_norm: vec![1.0],
            });
        }
        p.texts
            .insert("b-2".into(), "[user] Count the exclamation marks".into());
        assert_eq!(p.visible_rows().len(), 2);
        p.filter = "EXCLAMATION".into();
        assert_eq!(p.visible_rows()[0].id, "b-2");
        p.filter = "a-".into();
        assert_eq!(p.visible_rows().len(), 1);
        p.filter.clear();
        p.sort = SortBy::ReverseRank;
        assert_eq!(p.visible_rows()[0].id, "b-2");
        p.sort = SortBy::Id;
        assert_eq!(p.visible_rows()[0].id, "a-1");
        p.fields
            .insert("b-2".into(), ("exclamation".into(), "include".into()));
        p.filter = "include".into();
        assert_eq!(p.visible_rows().len(), 1, "a sign matches whole");
        p.filter = "exclamation".into();
        assert_eq!(p.visible_rows()[0].id, "b-2");
        p.filter = "clude".into();
        assert!(p.visible_rows().is_empty(), "not part of a family or sign");
        p.filter.clear();
        let csv = scores_csv(&p.visible_rows(), &p.fields);
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "rank,score,id,family,sign,grad_norm",
                "1,0,a-1,,,1",
                "2,0,b-2,exclamation,include,1"
            ]
        );
        // A request needs a query metric and the training chats (or a run).
        assert!(p.request(None).is_err());
        p.metric = "hack".into();
        assert!(p.request(Some("s.toml".into())).is_err());
        p.data = "train.jsonl".into();
        let r = p.request(Some("s.toml".into())).unwrap();
        assert_eq!(r.data, Some(PathBuf::from("train.jsonl")));
    }
}
