//! The Path tab: one plot per metric against t, x-axes linked, 95% CI bands, a cursor at the
//! hovered t with every metric's value, a Δ-vs-t=0 toggle, runs overlaid with a legend, and per
//! plot "?" / PNG / CSV buttons.

use super::file_dialog::{self, FileRequest};
use eframe::egui::{self, Color32};
use egui_plot::{FilledArea, Legend, Line, Plot, PlotPoint, Points, VLine};

use super::{
    app::{BasinApp, PlotGeometry},
    export::PngTarget,
    help::metric_help,
};

/// Colours of runs in legend order (colour-blind friendly, Okabe-Ito).
pub const RUN_COLORS: [Color32; 7] = [
    Color32::from_rgb(0, 114, 178),
    Color32::from_rgb(213, 94, 0),
    Color32::from_rgb(0, 158, 115),
    Color32::from_rgb(204, 121, 167),
    Color32::from_rgb(230, 159, 0),
    Color32::from_rgb(86, 180, 233),
    Color32::from_rgb(120, 120, 120),
];

pub fn run_color(i: usize) -> Color32 {
    RUN_COLORS[i % RUN_COLORS.len()]
}

fn kind_of(app: &BasinApp, metric: &str) -> String {
    app.runs
        .iter()
        .flat_map(|r| r.results.iter())
        .find(|r| r.metric == metric)
        .map(|r| r.kind.clone())
        .unwrap_or_default()
}

fn hover_readout_ui(app: &BasinApp, ui: &mut egui::Ui, metrics: &[String]) {
    let Some(t) = app.hovered_t else {
        ui.weak("Hover a plot to read every metric at that t.");
        return;
    };
    egui::Grid::new("readout").striped(true).show(ui, |ui| {
        ui.strong(format!("t ~ {t:.3}"));
        for m in metrics {
            ui.strong(m);
        }
        ui.end_row();
        for (i, run) in app.runs.iter().enumerate().filter(|(_, r)| r.visible) {
            ui.colored_label(run_color(i), &run.label);
            for m in metrics {
                match run.nearest(m, t) {
                    Some(r) => {
                        let base = if app.delta {
                            run.baseline(m).unwrap_or(0.0)
                        } else {
                            0.0
                        };
                        ui.label(format!("{:.4} (t={})", r.value - base, r.t))
                    }
                    None => ui.weak("-"),
                };
            }
            ui.end_row();
        }
    });
}

pub fn path_tab_ui(app: &mut BasinApp, ui: &mut egui::Ui) {
    let metrics = app.metric_names();
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.delta, "Δ vs t=0")
            .on_hover_text("Subtract each run's value at t = 0");
        let clicked = ui.button("Export report...").clicked();
        if let Some(p) =
            file_dialog::ask(ui.ctx(), "path.report", clicked.then(FileRequest::folder))
        {
            app.export_report(&p);
        }
    });
    if metrics.is_empty() {
        app.plot_geometry.clear();
        ui.add_space(20.0);
        ui.label(
            "No results yet. Load a base model, an endpoint and a suite (or Help -> Open demo), \
             then press Run sweep. Finished points appear here as they are computed.",
        );
        return;
    }
    hover_readout_ui(app, ui, &metrics);
    ui.separator();

    let link = egui::Id::unique("basin-path-plots");
    let n = metrics.len() as f32;
    let plot_h = ((ui.available_height() - 30.0 * n) / n).clamp(110.0, 320.0);
    let mut geometry = Vec::new();
    let mut hovered = None;
    let mut help = None;
    let mut csv = None;
    let mut png = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        for metric in &metrics {
            let kind = kind_of(app, metric);
            ui.horizontal(|ui| {
                ui.strong(if app.delta {
                    format!("Δ {metric} (vs t=0)")
                } else {
                    metric.clone()
                });
                ui.weak(&kind);
                if ui
                    .small_button("?")
                    .on_hover_text("What this plot shows")
                    .clicked()
                {
                    help = Some(metric.clone());
                }
                if ui.small_button("PNG...").clicked() {
                    png = Some(metric.clone());
                }
                if ui.small_button("CSV...").clicked() {
                    csv = Some(metric.clone());
                }
            });
            let cursor_t = app.hovered_t;
            let delta = app.delta;
            let runs = &app.runs;
            let mut plot = Plot::new(("path-plot", metric))
                .height(plot_h)
                .link_axis(link, [true, false])
                .link_cursor(link, [true, false])
                // Three to five labelled y ticks on every plot, however short or flat
                // (egui_plot's own levels can leave a flat metric with one "0.5").
                .y_grid_spacer(y_ticks)
                .custom_y_axes(vec![
                    egui_plot::AxisHints::new_y()
                        .label_spacing(12.0..=18.0)
                        .formatter(|mark, _| y_tick_label(mark)),
                ])
                .y_axis_min_width(48.0);
            // A legend only when runs are overlaid (one run is named in the Runs list).
            if runs.iter().filter(|r| r.visible).count() > 1 {
                plot = plot.legend(Legend::default().position(egui_plot::Corner::LeftTop));
            }
            let x_label = if runs
                .iter()
                .filter(|r| r.visible && !r.results.is_empty())
                .all(|r| r.coordinate == "samples_seen")
            {
                "samples seen"
            } else {
                "t"
            };
            let response = plot.x_axis_label(x_label).show(ui, |plot_ui| {
                let mut points = Vec::new();
                for (i, run) in runs.iter().enumerate().filter(|(_, r)| r.visible) {
                    let series = run.series(metric);
                    if series.is_empty() {
                        continue;
                    }
                    let base = if delta {
                        run.baseline(metric).unwrap_or(0.0)
                    } else {
                        0.0
                    };
                    let color = run_color(i);
                    let xs: Vec<f64> = series.iter().map(|r| r.t).collect();
                    let lo: Vec<f64> = series.iter().map(|r| r.ci_low - base).collect();
                    let hi: Vec<f64> = series.iter().map(|r| r.ci_high - base).collect();
                    if xs.len() > 1 && lo.iter().chain(&hi).all(|v| v.is_finite()) {
                        plot_ui.add(
                            FilledArea::new(run.label.clone(), &xs, &lo, &hi)
                                .fill_color(color.gamma_multiply(0.18))
                                .allow_hover(false),
                        );
                    }
                    let ys: Vec<[f64; 2]> = series.iter().map(|r| [r.t, r.value - base]).collect();
                    plot_ui.add(
                        Line::new(run.label.clone(), ys.clone())
                            .color(color)
                            .width(2.0),
                    );
                    plot_ui.add(
                        Points::new(run.label.clone(), ys.clone())
                            .color(color)
                            .radius(3.5)
                            .filled(true),
                    );
                    for [t, y] in ys {
                        points.push((i, t, y));
                    }
                    if let Some(onset) = run.onset(metric) {
                        plot_ui.add(
                            VLine::new(format!("{} onset", run.label), onset)
                                .color(color)
                                .style(egui_plot::LineStyle::dashed_loose())
                                .width(1.5),
                        );
                    }
                }
                // The hovered t stays marked after the pointer leaves (linked plots draw
                // the live cursor themselves).
                if let Some(t) = cursor_t {
                    plot_ui.add(
                        VLine::new("", t)
                            .color(Color32::GRAY.gamma_multiply(0.5))
                            .allow_hover(false),
                    );
                }
                let pointer = plot_ui
                    .response()
                    .hovered()
                    .then(|| plot_ui.pointer_coordinate())
                    .flatten();
                (points, pointer)
            });
            let (points, pointer) = response.inner;
            // Screen positions from the transform the plot was finally drawn with.
            let points = points
                .into_iter()
                .map(|(i, t, y)| {
                    (
                        i,
                        t,
                        y,
                        response
                            .transform
                            .position_from_point(&PlotPoint::new(t, y)),
                    )
                })
                .collect();
            if let Some(p) = pointer {
                hovered = Some(p.x);
            }
            let rect = response.response.rect;
            let exporting = app
                .pending_png
                .iter()
                .any(|t| matches!(t, PngTarget::Plot { metric: m, .. } if m == metric));
            let visible = ui.clip_rect().contains_rect(rect);
            if exporting && !visible {
                response.response.scroll_to_me(Some(egui::Align::Center));
            }
            geometry.push(PlotGeometry {
                metric: metric.clone(),
                rect,
                visible,
                points,
            });
            ui.add_space(6.0);
        }
    });
    app.plot_geometry = geometry;
    if hovered.is_some() {
        app.hovered_t = hovered;
    }
    if let Some(m) = help {
        app.help_open = Some(m);
    }
    let csv = csv.map(|m| {
        FileRequest::save(format!("{}.csv", super::export::file_stem(&m)))
            .filter("CSV", &["csv"])
            .tag(m)
    });
    if let Some((p, m)) = file_dialog::ask_tagged(ui.ctx(), "path.csv", csv) {
        app.export_csv(&m, &p);
    }
    let png = png.map(|m| {
        FileRequest::save(format!("{}.png", super::export::file_stem(&m)))
            .filter("PNG", &["png"])
            .tag(m)
    });
    if let Some((p, m)) = file_dialog::ask_tagged(ui.ctx(), "path.png", png) {
        app.export_png(&m, &p);
    }
    if let Some(m) = app.help_open.clone() {
        let mut open = true;
        let text = metric_help(&m, &kind_of(app, &m));
        egui::Window::new(format!("About {m}"))
            .open(&mut open)
            .default_width(420.0)
            .show(ui.ctx(), |ui| {
                ui.label(text);
            });
        if !open {
            app.help_open = None;
        }
    }
}

/// The y grid of a path plot: one level of evenly spaced marks at a round step (1, 2, 2.5 or 5
/// × 10ᵏ), the smallest such step that leaves at most five marks in view, or a finer one when
/// that leaves fewer than three; so a plot always labels three to five values it can fit.
pub fn y_ticks(input: egui_plot::GridInput) -> Vec<egui_plot::GridMark> {
    let (lo, hi) = input.bounds;
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0 && lo.is_finite()) {
        return Vec::new();
    }
    let marks = |step: f64| {
        let first = (lo / step).ceil();
        let last = (hi / step).floor();
        ((last - first) as i64 + 1).max(0)
    };
    let mut candidates = Vec::new();
    let top = (span.log10().floor() as i32) + 1;
    for k in (top - 3)..=top {
        for m in [1.0, 2.0, 2.5, 5.0] {
            candidates.push(m * 10f64.powi(k));
        }
    }
    let mut pick = candidates[candidates.len() - 1];
    for (i, &step) in candidates.iter().enumerate() {
        if marks(step) <= 5 {
            pick = if marks(step) < 3 && i > 0 {
                candidates[i - 1]
            } else {
                step
            };
            break;
        }
    }
    let first = (lo / pick).ceil() as i64;
    (0..marks(pick).min(16))
        .map(|j| egui_plot::GridMark {
            value: (first + j) as f64 * pick,
            step_size: pick,
        })
        .collect()
}

/// A y tick's text with as many decimals as its step needs (0.005 → 3, 0.25 → 2, 5 → 0).
pub fn y_tick_label(mark: egui_plot::GridMark) -> String {
    let step = mark.step_size.abs();
    let decimals = (0..12usize)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(12);
    let text = format!("{:.*}", decimals, mark.value);
    // No "-0.000".
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(lo: f64, hi: f64) -> Vec<egui_plot::GridMark> {
        y_ticks(egui_plot::GridInput {
            bounds: (lo, hi),
            base_step_size: (hi - lo) / 100.0,
        })
    }

    /// Flat, tiny, negative and wide ranges all get three to five distinct labels in view.
    #[test]
    fn every_range_gets_three_to_five_readable_ticks() {
        for (lo, hi) in [
            (0.491, 0.504),
            (0.0, 0.05),
            (-1e-3, 1e-3),
            (0.0149, 0.0151),
            (0.0, 1.0),
            (-0.02, 1.02),
            (3.1, 14.7),
            (-250.0, 1800.0),
            (0.58, 0.59),
        ] {
            let t = ticks(lo, hi);
            assert!((3..=5).contains(&t.len()), "{lo}..{hi}: {} ticks", t.len());
            assert!(
                t.iter()
                    .all(|m| m.value >= lo - 1e-12 && m.value <= hi + 1e-12)
            );
            let labels: Vec<String> = t.iter().map(|m| y_tick_label(*m)).collect();
            let mut distinct = labels.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), labels.len(), "{lo}..{hi}: {labels:?}");
        }
        assert!(ticks(0.5, 0.5).is_empty() && ticks(f64::NAN, 1.0).is_empty());
        let m = |value, step_size| egui_plot::GridMark { value, step_size };
        assert_eq!(y_tick_label(m(0.495, 0.005)), "0.495");
        assert_eq!(y_tick_label(m(0.04, 0.02)), "0.04");
        assert_eq!(y_tick_label(m(1500.0, 500.0)), "1500");
        assert_eq!(y_tick_label(m(-1e-17, 0.25)), "0.00");
    }
}
