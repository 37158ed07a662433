//! The Items tab: at a chosen t, the per-item scores of one metric (from the sweep's saved
//! results), sortable, with the texts from the suite; for paired metrics, the t at which each
//! item first prefers the hack.

use std::collections::HashMap;

use eframe::egui;

use crate::experiments::suite::MetricItems;

use super::{
    app::{BasinApp, ReportState},
    help::ITEMS_HELP,
    reports::prompt_of,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Score,
    Id,
    FlipT,
}

#[derive(Debug, Clone, Default)]
pub struct ItemsState {
    pub run: usize,
    pub metric: String,
    pub t: Option<f64>,
    pub sort: SortKey,
    pub descending: bool,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: String,
    pub score: f64,
    pub detail: String,
    /// Paired: the first t of the run where P(hack) > 0.5.
    pub flips_at: Option<f64>,
}

fn items_of(extra: &serde_json::Value) -> Vec<&serde_json::Value> {
    extra
        .get("items")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The rows of `metric` at `t` in a run, sorted as asked.
pub fn item_rows(app: &BasinApp, state: &ItemsState) -> Vec<ItemRow> {
    let Some(run) = app.runs.get(state.run) else {
        return Vec::new();
    };
    let Some(t) = state.t else {
        return Vec::new();
    };
    let Some(result) = run.nearest(&state.metric, t) else {
        return Vec::new();
    };
    let mut flips: HashMap<String, f64> = HashMap::new();
    if result.kind == "paired" {
        for r in run.series(&state.metric) {
            for it in items_of(&r.extra) {
                let id = it.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                let p = it.get("p_hack").and_then(|v| v.as_f64()).unwrap_or(0.0);
                if p > 0.5 && !flips.contains_key(id) {
                    flips.insert(id.to_string(), r.t);
                }
            }
        }
    }
    let mut rows: Vec<ItemRow> = items_of(&result.extra)
        .into_iter()
        .map(|it| {
            let id = it
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let score = it.get("score").and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            let detail = match result.kind.as_str() {
                "paired" => format!(
                    "margin {:.3}",
                    it.get("margin")
                        .and_then(|v| v.as_f64())
                        .unwrap_or(f64::NAN)
                ),
                "choice" => format!(
                    "chose {} (answer {})",
                    it.get("chosen").and_then(|v| v.as_u64()).unwrap_or(0),
                    it.get("answer").and_then(|v| v.as_u64()).unwrap_or(0)
                ),
                _ => format!(
                    "{} tokens",
                    it.get("n_tokens").and_then(|v| v.as_u64()).unwrap_or(0)
                ),
            };
            let flips_at = flips.get(&id).copied();
            ItemRow {
                id,
                score,
                detail,
                flips_at,
            }
        })
        .collect();
    match state.sort {
        SortKey::Score => rows.sort_by(|a, b| a.score.total_cmp(&b.score)),
        SortKey::Id => rows.sort_by(|a, b| a.id.cmp(&b.id)),
        SortKey::FlipT => rows.sort_by(|a, b| {
            a.flips_at
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.flips_at.unwrap_or(f64::INFINITY))
        }),
    }
    if state.descending {
        rows.reverse();
    }
    rows
}

/// Prompt and responses of an item, from the loaded suite.
fn item_texts(app: &BasinApp, metric: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let ReportState::Ready(s) = &app.suite.report else {
        return out;
    };
    let Some(m) = s.suite.metrics.iter().find(|m| m.name == metric) else {
        return out;
    };
    match &m.items {
        MetricItems::Instruction(v) => {
            for e in v {
                let answer = e.messages.last().map(|m| m.content.as_str()).unwrap_or("");
                out.insert(
                    e.id.clone(),
                    format!("{}\n-> {answer}", prompt_of(&e.messages)),
                );
            }
        }
        MetricItems::Paired(v) => {
            for e in v {
                out.insert(
                    e.id.clone(),
                    format!(
                        "{}\nhack: {}\nhonest: {}",
                        prompt_of(&e.messages),
                        e.hack,
                        e.honest
                    ),
                );
            }
        }
        MetricItems::Generated { items, .. } => {
            for e in items {
                out.insert(
                    e.id.clone(),
                    format!(
                        "{}\nrule: {}\nhonest answer scores {}",
                        prompt_of(&e.messages),
                        e.scorer.rule(),
                        e.honest_score
                    ),
                );
            }
        }
        MetricItems::Choice(v) => {
            for e in v {
                let choices: Vec<String> = e
                    .choices
                    .iter()
                    .enumerate()
                    .map(|(k, c)| format!("{k}: {c}"))
                    .collect();
                out.insert(
                    e.id.clone(),
                    format!("{}\n{}", prompt_of(&e.messages), choices.join("\n")),
                );
            }
        }
    }
    out
}

pub fn items_tab_ui(app: &mut BasinApp, ui: &mut egui::Ui) {
    if app.runs.is_empty() {
        ui.label("No runs yet.");
        return;
    }
    let metrics = app.metric_names();
    let mut st = app.items.clone();
    if st.run >= app.runs.len() {
        st.run = 0;
    }
    if !metrics.contains(&st.metric) {
        st.metric = metrics.first().cloned().unwrap_or_default();
    }
    let ts = app
        .runs
        .get(st.run)
        .map(|r| r.t_values())
        .unwrap_or_default();
    if st
        .t
        .is_none_or(|t| !ts.iter().any(|x| x.to_bits() == t.to_bits()))
    {
        st.t = ts.last().copied();
    }
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Run")
            .selected_text(
                app.runs
                    .get(st.run)
                    .map(|r| r.label.clone())
                    .unwrap_or_default(),
            )
            .show_ui(ui, |ui| {
                for (i, r) in app.runs.iter().enumerate() {
                    ui.selectable_value(&mut st.run, i, &r.label);
                }
            });
        egui::ComboBox::from_label("Metric")
            .selected_text(st.metric.clone())
            .show_ui(ui, |ui| {
                for m in &metrics {
                    ui.selectable_value(&mut st.metric, m.clone(), m);
                }
            });
        egui::ComboBox::from_label("t")
            .selected_text(st.t.map(|t| format!("{t}")).unwrap_or_default())
            .show_ui(ui, |ui| {
                for t in &ts {
                    ui.selectable_value(&mut st.t, Some(*t), format!("{t}"));
                }
            });
        ui.label("?").on_hover_text(ITEMS_HELP);
    });
    let rows = item_rows(app, &st);
    let texts = item_texts(app, &st.metric);
    ui.separator();
    let mut header = |ui: &mut egui::Ui, key: SortKey, text: &str| {
        let arrow = if st.sort == key {
            if st.descending { " v" } else { " ^" }
        } else {
            ""
        };
        if ui.button(format!("{text}{arrow}")).clicked() {
            if st.sort == key {
                st.descending = !st.descending;
            } else {
                st.sort = key;
                st.descending = key == SortKey::Score;
            }
        }
    };
    egui::ScrollArea::both().show(ui, |ui| {
        egui::Grid::new("items-grid").striped(true).show(ui, |ui| {
            header(ui, SortKey::Id, "item");
            header(ui, SortKey::Score, "score");
            ui.strong("detail");
            header(ui, SortKey::FlipT, "flips at");
            ui.strong("text");
            ui.end_row();
            for r in &rows {
                ui.monospace(&r.id);
                ui.label(format!("{:.4}", r.score));
                ui.label(&r.detail);
                ui.label(
                    r.flips_at
                        .map(|t| format!("{t}"))
                        .unwrap_or_else(|| "-".into()),
                );
                let text = texts.get(&r.id).cloned().unwrap_or_default();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect::<String>();
                ui.label(first).on_hover_text(text);
                ui.end_row();
            }
        });
    });
    app.items = st;
}
