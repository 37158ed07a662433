//! The Generate tab: what the model writes at several points of the path, side by side. A
//! prompt typed in or taken from a suite item, the values of t, greedy or sampled decoding with a
//! seed; Generate runs `basin generate`'s job on the Models panel's base and endpoint, and the
//! answers appear as they finish, one column per t. An item of a `generated` metric carries its
//! scoring rule, so each answer shows the rule's verdict (does it beat the honest answer?).
//! The panel owns its settings and the shown answers and returns [`GenerateCommand`]s.

use eframe::egui;

use crate::data::scorer::Scorer;
use crate::experiments::{
    generate::{FinishReason, Generated, Sampling},
    generate_job::{GenerateAt, GenerateRequest},
    job::Progress,
    suite::{MetricItems, Suite},
};
use crate::text::dataset::{ChatExample, ChatMessage};

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateCommand {
    /// Generate; the app fills in the path (base and endpoint) and the device.
    Start(Box<GenerateRequest>),
    Cancel,
}

/// The rule an answer is graded by (from a `generated` suite item).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRule {
    pub scorer: Scorer,
    pub honest_score: f64,
}

pub struct GeneratePanel {
    /// The user message.
    pub prompt: String,
    /// Earlier messages of a suite item's chat (system, earlier turns), kept with its prompt.
    pub context: Vec<ChatMessage>,
    /// `metric/id` of the suite item the prompt came from.
    pub item: Option<String>,
    pub rule: Option<ItemRule>,
    /// Comma-separated values of t.
    pub t_values: String,
    /// The slider's value (added to `t_values` with Add).
    pub t_slider: f64,
    pub greedy: bool,
    pub temperature: f32,
    pub top_p: f32,
    pub max_new_tokens: usize,
    pub samples: usize,
    pub seed: u64,
    pub running: bool,
    pub status: String,
    pub progress: Option<Progress>,
    /// Answers so far (every t), in arrival order.
    pub answers: Vec<Generated>,
}

impl Default for GeneratePanel {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            context: Vec::new(),
            item: None,
            rule: None,
            t_values: "0, 0.5, 1".into(),
            t_slider: 0.5,
            greedy: true,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 64,
            samples: 1,
            seed: 0,
            running: false,
            status: String::new(),
            progress: None,
            answers: Vec::new(),
        }
    }
}

/// Parses "0, 0.5, 1" (commas or spaces) into finite values of t.
pub fn parse_t_values(text: &str) -> Result<Vec<f64>, String> {
    let values: Vec<f64> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{s}` is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if values.is_empty() {
        return Err("give one or more values of t, e.g. 0, 0.5, 1".into());
    }
    if values.len() > 16 {
        return Err(format!("{} values of t; at most 16 columns", values.len()));
    }
    Ok(values)
}

impl GeneratePanel {
    /// The request the current settings make (the app fills in the path and device).
    pub fn request(&self) -> Result<GenerateRequest, String> {
        let t = parse_t_values(&self.t_values)?;
        if self.prompt.trim().is_empty() {
            return Err("type a prompt, or pick a suite item".into());
        }
        let mut messages = self.context.clone();
        messages.push(ChatMessage::new("user", self.prompt.trim()));
        let id = self
            .item
            .as_deref()
            .map_or_else(|| "prompt".to_string(), |i| i.replace('/', ":"));
        let sampling = if self.greedy {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature: self.temperature,
                top_p: self.top_p,
            }
        };
        sampling.check()?;
        Ok(GenerateRequest {
            at: GenerateAt::Path {
                base: Default::default(),
                end: crate::experiments::generate_job::PathEnd::Adapter(Default::default()),
                t,
            },
            prompts: vec![ChatExample { id, messages }],
            max_new_tokens: self.max_new_tokens.max(1),
            sampling,
            samples: self.samples.max(1),
            seed: self.seed,
            batch: 8,
            device: crate::compute::ComputeKind::Cpu,
            dtype: Default::default(),
            max_tokens: 8192,
            ignore_eos: false,
        })
    }

    pub fn on_started(&mut self) {
        self.running = true;
        self.answers.clear();
        self.progress = None;
        self.status = "loading the model...".into();
    }

    pub fn on_lines(&mut self, lines: Vec<Generated>) {
        self.answers.extend(lines);
    }

    pub fn on_progress(&mut self, p: Progress) {
        self.progress = Some(p);
    }

    pub fn on_finished(&mut self, message: String) {
        self.running = false;
        self.progress = None;
        self.status = message;
    }

    /// Takes a suite item's prompt (and its rule, for a generated metric's item).
    pub fn pick_item(&mut self, suite: &Suite, metric: &str, id: &str) {
        let Some(m) = suite.metrics.iter().find(|m| m.name == metric) else {
            return;
        };
        let found = match &m.items {
            MetricItems::Generated { items, .. } => items.iter().find(|i| i.id == id).map(|i| {
                (
                    i.messages.clone(),
                    Some(ItemRule {
                        scorer: i.scorer.clone(),
                        honest_score: i.honest_score,
                    }),
                )
            }),
            MetricItems::Paired(items) => items
                .iter()
                .find(|i| i.id == id)
                .map(|i| (i.messages.clone(), None)),
            MetricItems::Choice(items) => items
                .iter()
                .find(|i| i.id == id)
                .map(|i| (i.messages.clone(), None)),
            MetricItems::Instruction(items) => items.iter().find(|i| i.id == id).map(|i| {
                let mut m = i.messages.clone();
                if m.last().is_some_and(|l| l.role == "assistant") {
                    m.pop();
                }
                (m, None)
            }),
        };
        if let Some((mut messages, rule)) = found
            && let Some(last) = messages.pop()
        {
            self.prompt = last.content;
            self.context = messages;
            self.rule = rule;
            self.item = Some(format!("{metric}/{id}"));
        }
    }

    /// Draws the tab; returns what the app should do.
    /// Adds `t` to the list (unless it is there).
    pub fn add_t(&mut self, t: f64) {
        let mut values = parse_t_values(&self.t_values).unwrap_or_default();
        if !values.iter().any(|v| (v - t).abs() < 1e-9) {
            values.push(t);
            values.sort_by(f64::total_cmp);
        }
        self.t_values = values
            .iter()
            .map(|v| format!("{}", (v * 1e6).round() / 1e6))
            .collect::<Vec<_>>()
            .join(", ");
    }

    /// Draws the tab; `swept` are the t values of the runs on the Path tab (offered as marks).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        suite: Option<&Suite>,
        swept: &[f64],
        path_ready: bool,
    ) -> Vec<GenerateCommand> {
        let mut commands = Vec::new();
        ui.horizontal(|ui| {
            ui.label("Suite item");
            let shown = self.item.clone().unwrap_or_else(|| "(typed prompt)".into());
            let mut pick = None;
            egui::ComboBox::from_id_salt("generate-item")
                .selected_text(shown)
                .width(320.0)
                .show_ui(ui, |ui| {
                    if ui
                        .selectable_label(self.item.is_none(), "(typed prompt)")
                        .clicked()
                    {
                        pick = Some(None);
                    }
                    for m in suite.iter().flat_map(|s| &s.metrics) {
                        let ids: Vec<&str> = match &m.items {
                            MetricItems::Generated { items, .. } => {
                                items.iter().map(|i| i.id.as_str()).collect()
                            }
                            MetricItems::Paired(items) => {
                                items.iter().map(|i| i.id.as_str()).collect()
                            }
                            MetricItems::Choice(items) => {
                                items.iter().map(|i| i.id.as_str()).collect()
                            }
                            MetricItems::Instruction(items) => {
                                items.iter().map(|i| i.id.as_str()).collect()
                            }
                        };
                        for id in ids.into_iter().take(50) {
                            let key = format!("{}/{id}", m.name);
                            if ui
                                .selectable_label(self.item.as_deref() == Some(&key), &key)
                                .clicked()
                            {
                                pick = Some(Some((m.name.clone(), id.to_string())));
                            }
                        }
                    }
                });
            match pick {
                Some(Some((metric, id))) => {
                    if let Some(s) = suite {
                        self.pick_item(s, &metric, &id);
                    }
                }
                Some(None) => {
                    self.item = None;
                    self.rule = None;
                    self.context.clear();
                }
                None => {}
            }
            if let Some(rule) = &self.rule {
                ui.weak(format!(
                    "graded by its rule; the honest answer scores {}",
                    rule.honest_score
                ));
            }
        });
        let label = ui.label("Prompt (the user's message)");
        ui.add(
            egui::TextEdit::multiline(&mut self.prompt)
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.horizontal(|ui| {
            let label = ui.label("t values");
            ui.add(egui::TextEdit::singleline(&mut self.t_values).desired_width(140.0))
                .labelled_by(label.id)
                .on_hover_text("Points of the path from the base (t = 0) to the endpoint (t = 1), comma-separated; values outside [0, 1] extrapolate");
            ui.checkbox(&mut self.greedy, "greedy");
            ui.add_enabled_ui(!self.greedy, |ui| {
                ui.label("temperature");
                ui.add(egui::DragValue::new(&mut self.temperature).range(0.05..=5.0).speed(0.01));
                ui.label("top-p");
                ui.add(egui::DragValue::new(&mut self.top_p).range(0.01..=1.0).speed(0.01));
                ui.label("samples");
                ui.add(egui::DragValue::new(&mut self.samples).range(1..=16));
                ui.label("seed");
                ui.add(egui::DragValue::new(&mut self.seed));
            });
            ui.label("max new tokens");
            ui.add(egui::DragValue::new(&mut self.max_new_tokens).range(1..=2048));
        });
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut self.t_slider, -0.5..=1.5).text("t"));
            if ui.button("Add t").clicked() {
                self.add_t(self.t_slider);
            }
            if !swept.is_empty() {
                ui.weak("swept:");
                for &t in swept.iter().take(24) {
                    if ui
                        .small_button(format!("{t}"))
                        .on_hover_text("Add this swept point to the t values")
                        .clicked()
                    {
                        self.add_t(t);
                    }
                }
            }
            if ui.small_button("clear").clicked() {
                self.t_values.clear();
            }
        });
        ui.horizontal(|ui| {
            let ready = path_ready && !self.running;
            if ui
                .add_enabled(ready, egui::Button::new("Generate"))
                .on_disabled_hover_text("Choose a base model and an endpoint (Models, left)")
                .clicked()
            {
                match self.request() {
                    Ok(r) => commands.push(GenerateCommand::Start(Box::new(r))),
                    Err(e) => self.status = e,
                }
            }
            if ui
                .add_enabled(self.running, egui::Button::new("Cancel"))
                .clicked()
            {
                commands.push(GenerateCommand::Cancel);
            }
            if let Some(p) = &self.progress
                && p.total > 0
            {
                ui.add(
                    egui::ProgressBar::new(p.done as f32 / p.total as f32)
                        .text(p.stage.clone())
                        .desired_width(260.0),
                );
            }
            ui.label(&self.status);
        });
        ui.separator();
        self.answers_ui(ui);
        commands
    }

    /// One column per t, each with its samples and (for a suite item with a rule) the verdict.
    fn answers_ui(&self, ui: &mut egui::Ui) {
        if self.answers.is_empty() {
            ui.weak("Answers appear here, one column per t.");
            return;
        }
        let mut ts: Vec<f64> = Vec::new();
        for a in &self.answers {
            let t = a.t.unwrap_or(f64::NAN);
            if !ts.iter().any(|x| x.to_bits() == t.to_bits()) {
                ts.push(t);
            }
        }
        egui::ScrollArea::both().show(ui, |ui| {
            ui.horizontal_top(|ui| {
                let width = ((ui.available_width() - 12.0 * ts.len() as f32) / ts.len() as f32)
                    .clamp(220.0, 520.0);
                for &t in &ts {
                    ui.vertical(|ui| {
                        ui.set_width(width);
                        ui.strong(format!("t = {t}"));
                        for a in self
                            .answers
                            .iter()
                            .filter(|a| a.t.unwrap_or(f64::NAN).to_bits() == t.to_bits())
                        {
                            ui.group(|ui| {
                                ui.set_width(width - 12.0);
                                if self.samples > 1 || a.sample > 0 {
                                    ui.weak(format!("sample {}", a.sample));
                                }
                                ui.label(&a.text);
                                let end = match a.finish_reason {
                                    FinishReason::Stop => "ended its turn",
                                    FinishReason::Length => "cut at the token limit",
                                };
                                ui.weak(format!("{} tokens, {end}", a.n_tokens));
                                if let Some(rule) = &self.rule {
                                    let score = rule.scorer.score(&a.text);
                                    if score > rule.honest_score {
                                        ui.colored_label(
                                            ui.visuals().warn_fg_color,
                                            format!(
                                                "games the rule: scores {score} > honest {}",
                                                rule.honest_score
                                            ),
                                        );
                                    } else {
                                        ui.label(format!(
                                            "does not game the rule: scores {score} ≤ honest {}",
                                            rule.honest_score
                                        ));
                                    }
                                }
                            });
                        }
                    });
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_values_parse_and_bad_ones_are_named() {
        assert_eq!(parse_t_values("0, 0.5 1").unwrap(), vec![0.0, 0.5, 1.0]);
        assert_eq!(parse_t_values("-0.25,1.25").unwrap(), vec![-0.25, 1.25]);
        assert!(parse_t_values("").is_err());
        assert!(parse_t_values("0, x").unwrap_err().contains("`x`"));
        assert!(parse_t_values("inf").is_err());
        let mut p = GeneratePanel::default();
        p.add_t(0.25);
        assert_eq!(p.t_values, "0, 0.25, 0.5, 1");
        p.add_t(0.5);
        assert_eq!(p.t_values, "0, 0.25, 0.5, 1");
        p.t_values.clear();
        p.add_t(1.0 / 3.0);
        assert_eq!(p.t_values, "0.333333");
    }
}
