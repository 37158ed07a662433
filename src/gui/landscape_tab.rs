//! The Landscape tab: a loss-landscape slice (`basin landscape`) drawn as a heatmap with a
//! colour bar (linear or log), contour lines (marching squares), the straight path and the
//! fitted curve projected onto the plane with their t marks, θ₀ / θ_H / the bend labelled, and
//! hover showing α, β and every metric. The panel owns its settings and the shown slice and
//! returns [`LandscapeCommand`]s; the app runs the job and feeds its events back (`on_*`).
//! A folder written by the CLI opens here without recomputing.

use super::file_dialog::FileRequest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eframe::egui::{self, Color32};
use egui_plot::{Heatmap, Line, Plot, PlotPoint, PlotPoints, Points, Text};

use crate::experiments::{
    job::Progress,
    landscape_job::{LandscapeRequest, PlaneRecord},
    metrics::MetricResult,
    plane::{Center, Grid, PlaneKind},
    sweep_store::{RunRecord, StoreFiles, point_key, read_results},
};

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum LandscapeCommand {
    /// Start a slice; the app fills in the base, endpoint and suite from the Models panel.
    Start(Box<LandscapeRequest>),
    Cancel,
    /// Write the shown slice as a PNG rendered from its data ([`LandscapePanel::png`]).
    ExportPng(PathBuf),
}

/// Contour levels drawn over the heatmap.
pub const CONTOUR_LEVELS: usize = 8;

pub struct LandscapePanel {
    pub plane: PlaneKind,
    /// `base`, `end` or `t=0.5` (random planes).
    pub center: String,
    pub nx: usize,
    pub ny: usize,
    /// Empty: the plane kind's default.
    pub range: String,
    pub seed: u64,
    pub cells_per_pass: usize,
    /// A `basin curve fit` folder (empty: the Models panel's adapter is θ_H).
    pub curve: String,
    /// The metric drawn.
    pub metric: String,
    pub log_scale: bool,
    pub contours: bool,
    /// The folder shown (running or opened).
    pub dir: Option<PathBuf>,
    pub grid: Option<Grid>,
    pub record: Option<PlaneRecord>,
    /// (point key, metric) → result.
    pub results: BTreeMap<(String, String), MetricResult>,
    pub running: bool,
    pub progress: Option<Progress>,
    pub status: String,
    /// The cell under the pointer last frame (α, β), for tests and the status line.
    pub hovered: Option<(f64, f64)>,
    /// Dragging on the plot draws a segment instead of panning; its 1-D slice is plotted below.
    pub slice_mode: bool,
    /// The segment (α, β) → (α, β) whose values are plotted under the heatmap.
    pub slice: Option<([f64; 2], [f64; 2])>,
    /// Show the 3-D surface (wgpu) instead of the heatmap.
    pub surface: bool,
    /// The surface's rotation about the vertical, and its tilt away from the top view (degrees).
    pub yaw_deg: f32,
    pub tilt_deg: f32,
    /// Where the 3-D view was drawn last frame (points), for tests and screenshots.
    pub surface_rect: Option<egui::Rect>,
    /// The cell clicked last (α, β): its per-item scores are listed under the heatmap.
    pub selected: Option<(f64, f64)>,
}

impl Default for LandscapePanel {
    fn default() -> Self {
        let d = LandscapeRequest::new(PathBuf::new(), PathBuf::new(), PathBuf::new());
        Self {
            plane: d.plane,
            center: d.center.label(),
            nx: 21,
            ny: 21,
            range: String::new(),
            seed: d.seed,
            cells_per_pass: d.cells_per_pass,
            curve: String::new(),
            metric: String::new(),
            log_scale: false,
            contours: true,
            dir: None,
            grid: None,
            record: None,
            results: BTreeMap::new(),
            running: false,
            progress: None,
            status: String::new(),
            hovered: None,
            slice_mode: false,
            slice: None,
            surface: false,
            yaw_deg: -30.0,
            tilt_deg: 55.0,
            surface_rect: None,
            selected: None,
        }
    }
}

/// The value of `metric` at each cell, row by row from the lowest β (NaN where not computed).
pub fn cell_values(
    results: &BTreeMap<(String, String), MetricResult>,
    metric: &str,
    grid: &Grid,
) -> Vec<f64> {
    let alphas = grid.alphas();
    grid.betas()
        .iter()
        .flat_map(|&b| {
            alphas.iter().map(move |&a| {
                results
                    .get(&(point_key(a, Some(b)), metric.to_string()))
                    .map_or(f64::NAN, |r| r.value)
            })
        })
        .collect()
}

/// A colour for x ∈ [0, 1] on a perceptually ordered dark-blue → green → yellow scale
/// (viridis's anchors).
pub fn colormap(x: f64) -> Color32 {
    const ANCHORS: [(u8, u8, u8); 6] = [
        (68, 1, 84),
        (65, 68, 135),
        (42, 120, 142),
        (34, 168, 132),
        (122, 209, 81),
        (253, 231, 37),
    ];
    if !x.is_finite() {
        return Color32::from_gray(40);
    }
    let x = x.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let i = (x as usize).min(ANCHORS.len() - 2);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    Color32::from_rgb(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Maps values to [0, 1] between the finite minimum and maximum, linearly or on a log scale
/// (log of the value above the minimum, so any range works).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorScale {
    pub min: f64,
    pub max: f64,
    pub log: bool,
}

impl ColorScale {
    pub fn of(values: &[f64], log: bool) -> Option<Self> {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let min = finite.clone().fold(f64::INFINITY, f64::min);
        let max = finite.fold(f64::NEG_INFINITY, f64::max);
        min.is_finite().then_some(Self { min, max, log })
    }

    /// Position of `v` on the bar, 0 at the minimum and 1 at the maximum.
    pub fn unit(&self, v: f64) -> f64 {
        let span = self.max - self.min;
        if span <= 0.0 || !v.is_finite() {
            return if v.is_finite() { 0.5 } else { f64::NAN };
        }
        if self.log {
            // log(1 + (v − min)/ε) with ε a thousandth of the span: detail near the minimum.
            let eps = span * 1e-3;
            ((v - self.min) / eps).ln_1p() / (span / eps).ln_1p()
        } else {
            (v - self.min) / span
        }
    }

    /// The value at position `u` of the bar (inverse of [`Self::unit`]).
    pub fn value_at(&self, u: f64) -> f64 {
        let span = self.max - self.min;
        if self.log && span > 0.0 {
            let eps = span * 1e-3;
            self.min + eps * ((u * (span / eps).ln_1p()).exp() - 1.0)
        } else {
            self.min + u * span
        }
    }
}

/// Contour segments of `values` (row by row from the lowest β, cell centres at `alphas` ×
/// `betas`) at `level`, by marching squares: each square of four finite neighbours contributes
/// the segments where the linear interpolation along its edges crosses the level; saddles are
/// split by the square's mean.
pub fn marching_squares(
    values: &[f64],
    alphas: &[f64],
    betas: &[f64],
    level: f64,
) -> Vec<[[f64; 2]; 2]> {
    let nx = alphas.len();
    let mut out = Vec::new();
    if nx < 2 || betas.len() < 2 || values.len() != nx * betas.len() {
        return out;
    }
    let at = |i: usize, j: usize| values[j * nx + i];
    for j in 0..betas.len() - 1 {
        for i in 0..nx - 1 {
            // Corners anticlockwise from the bottom left.
            let c = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
            if c.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let p = [
                [alphas[i], betas[j]],
                [alphas[i + 1], betas[j]],
                [alphas[i + 1], betas[j + 1]],
                [alphas[i], betas[j + 1]],
            ];
            let above: Vec<bool> = c.iter().map(|&v| v >= level).collect();
            // Crossings on edges bottom (0–1), right (1–2), top (2–3), left (3–0).
            let mut cross: [Option<[f64; 2]>; 4] = [None; 4];
            for (e, slot) in cross.iter_mut().enumerate() {
                let (a, b) = (e, (e + 1) % 4);
                if above[a] != above[b] {
                    let f = (level - c[a]) / (c[b] - c[a]);
                    *slot = Some([
                        p[a][0] + f * (p[b][0] - p[a][0]),
                        p[a][1] + f * (p[b][1] - p[a][1]),
                    ]);
                }
            }
            let found: Vec<(usize, [f64; 2])> = cross
                .iter()
                .enumerate()
                .filter_map(|(e, x)| x.map(|x| (e, x)))
                .collect();
            match found.len() {
                2 => out.push([found[0].1, found[1].1]),
                4 => {
                    let centre_above = c.iter().sum::<f64>() / 4.0 >= level;
                    let pts: Vec<[f64; 2]> = found.iter().map(|f| f.1).collect();
                    if centre_above == above[0] {
                        // Corners 1 and 3 are cut off.
                        out.push([pts[0], pts[1]]);
                        out.push([pts[2], pts[3]]);
                    } else {
                        out.push([pts[0], pts[3]]);
                        out.push([pts[1], pts[2]]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

impl LandscapePanel {
    /// The request the Run button starts (inputs left empty for the app to fill).
    pub fn request(&self) -> Result<LandscapeRequest, String> {
        let mut req = LandscapeRequest::new(PathBuf::new(), PathBuf::new(), PathBuf::new());
        req.plane = self.plane;
        req.center = Center::parse(self.center.trim())?;
        req.grid = format!("{}x{}", self.nx, self.ny);
        req.range = self.range.trim().to_string();
        Grid::parse(&req.grid, &req.range_or_default())?;
        req.seed = self.seed;
        req.cells_per_pass = self.cells_per_pass.max(1);
        req.curve = (!self.curve.trim().is_empty()).then(|| PathBuf::from(self.curve.trim()));
        Ok(req)
    }

    pub fn on_started(&mut self, dir: &Path, grid: Option<Grid>) {
        self.dir = Some(dir.to_path_buf());
        self.results.clear();
        self.record = None;
        self.grid = grid;
        self.running = true;
        self.progress = None;
        self.status = "loading the model...".into();
    }

    /// The job has written `plane.json` and loaded the model.
    pub fn on_plane_ready(&mut self, cells: usize) {
        if let Some(dir) = &self.dir {
            self.record = PlaneRecord::read(dir).ok();
            if let Some(r) = &self.record {
                self.grid = Some(r.grid);
            }
        }
        self.status = format!("running: {cells} cells");
    }

    pub fn on_progress(&mut self, p: Progress) {
        self.progress = Some(p);
    }

    pub fn on_result(&mut self, r: MetricResult) {
        if self.metric.is_empty() {
            self.metric = r.metric.clone();
        }
        self.results
            .insert((point_key(r.t, r.beta), r.metric.clone()), r);
    }

    pub fn on_finished(&mut self, message: String) {
        self.running = false;
        self.progress = None;
        self.status = message;
    }

    /// Shows a landscape folder (written by the app or `basin landscape`).
    pub fn open_run(&mut self, dir: &Path) -> Result<(), String> {
        if StoreFiles::of_dir(dir) != StoreFiles::LANDSCAPE {
            return Err(format!(
                "{}: not a landscape folder (its run.json is not a basin.landscape.v1 record)",
                dir.display()
            ));
        }
        let record = PlaneRecord::read(dir)?;
        let results =
            read_results(&dir.join(StoreFiles::LANDSCAPE.results)).map_err(|e| e.to_string())?;
        let run_text = crate::bounded::read_config(dir.join("run.json"))
            .map_err(|e| format!("{}: {e}", dir.join("run.json").display()))?;
        let _: RunRecord = serde_json::from_str(&run_text)
            .map_err(|e| format!("{}: {e}", dir.join("run.json").display()))?;
        // The settings show the opened slice's, so Run computes the same slice again.
        self.plane = record.kind;
        self.nx = record.grid.nx;
        self.ny = record.grid.ny;
        self.range = format!(
            "{}:{},{}:{}",
            record.grid.alpha.0, record.grid.alpha.1, record.grid.beta.0, record.grid.beta.1
        );
        self.center = record.center.clone();
        self.grid = Some(record.grid);
        self.record = Some(record);
        self.results = results;
        if !self.metric_names().contains(&self.metric) {
            self.metric = self.metric_names().first().cloned().unwrap_or_default();
        }
        self.dir = Some(dir.to_path_buf());
        self.status = format!("opened {} ({} cells)", dir.display(), self.cells_done());
        Ok(())
    }

    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.results.keys().map(|k| k.1.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The shown metric as an image from the data: the heatmap's colours, the straight path and
    /// the curve, and the named points (θ₀, θ_H, bend).
    pub fn png(&self) -> Option<image::RgbaImage> {
        let grid = self.grid?;
        let values = cell_values(&self.results, &self.metric, &grid);
        let scale = ColorScale::of(&values, self.log_scale)?;
        let mut paths = Vec::new();
        let mut marks = Vec::new();
        if let Some(r) = &self.record {
            paths.push(r.line.iter().map(|p| [p.at.alpha, p.at.beta]).collect());
            if let Some(c) = &r.curve {
                paths.push(c.iter().map(|p| [p.at.alpha, p.at.beta]).collect());
            }
            marks.extend(r.points.iter().map(|p| [p.at.alpha, p.at.beta]));
        }
        super::export::landscape_png(
            &values,
            &grid.alphas(),
            &grid.betas(),
            &|v| colormap(scale.unit(v)),
            &paths,
            &marks,
        )
    }

    /// The shown slice for the HTML report: its picture and a line about its plane.
    pub fn report_section(&self) -> Option<super::export::LandscapeSection> {
        let dir = self.dir.clone()?;
        if !dir.join("grid.csv").exists() {
            return None;
        }
        let image = self.png()?;
        let about = match &self.record {
            Some(r) => {
                let points: Vec<String> = r
                    .points
                    .iter()
                    .map(|p| format!("{} at ({:.3}, {:.3})", p.name, p.at.alpha, p.at.beta))
                    .collect();
                format!(
                    "{:?} plane, {} x {} cells over α {}..{}, β {}..{}; |u| = {:.4}, |v| = {:.4}; {}",
                    r.kind,
                    r.grid.nx,
                    r.grid.ny,
                    r.grid.alpha.0,
                    r.grid.alpha.1,
                    r.grid.beta.0,
                    r.grid.beta.1,
                    r.norm_u,
                    r.norm_v,
                    points.join(", ")
                )
            }
            None => String::new(),
        };
        Some(super::export::LandscapeSection {
            metric: self.metric.clone(),
            dir,
            about,
            image,
        })
    }

    fn cells_done(&self) -> usize {
        let mut keys: Vec<&String> = self.results.keys().map(|k| &k.0).collect();
        keys.dedup();
        keys.len()
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Plane");
            egui::ComboBox::from_id_salt("landscape-plane")
                .selected_text(match self.plane {
                    PlaneKind::Endpoints => "endpoints",
                    PlaneKind::Random => "random",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.plane, PlaneKind::Endpoints, "endpoints")
                        .on_hover_text(
                            "Through θ₀ (0, 0), θ_H (1, 0) and the bend or a random point",
                        );
                    ui.selectable_value(&mut self.plane, PlaneKind::Random, "random")
                        .on_hover_text(
                            "Two seeded, filter-normalised random directions around the centre",
                        );
                });
            if self.plane == PlaneKind::Random {
                ui.label("Centre");
                ui.add(egui::TextEdit::singleline(&mut self.center).desired_width(60.0))
                    .on_hover_text("base, end or t=0.5");
            }
            ui.label("Grid");
            ui.add(egui::DragValue::new(&mut self.nx).range(2..=201));
            ui.label("x");
            ui.add(egui::DragValue::new(&mut self.ny).range(2..=201));
            ui.label("Range");
            ui.add(
                egui::TextEdit::singleline(&mut self.range)
                    .hint_text("default")
                    .desired_width(130.0),
            )
            .on_hover_text(
                "A0:A1,B0:B1 (default -0.5:1.5,-0.5:1.5 for endpoints, -1:1,-1:1 for random)",
            );
            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed));
            ui.label("Cells / pass");
            ui.add(egui::DragValue::new(&mut self.cells_per_pass).range(1..=64));
        });
        ui.horizontal(|ui| {
            ui.label("Curve folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.curve)
                    .hint_text("none: the Models panel's adapter is θ_H")
                    .desired_width(320.0),
            )
            .on_hover_text(
                "A `basin curve fit` folder: its endpoint is θ_H, its bend the third point",
            );
            let clicked = ui.button("Browse...").clicked();
            if let Some(p) = super::file_dialog::ask(
                ui.ctx(),
                "landscape.curve",
                clicked.then(FileRequest::folder),
            ) {
                self.curve = p.display().to_string();
            }
        });
    }

    /// Draws the tab; returns what the app should do.
    pub fn ui(&mut self, ui: &mut egui::Ui, inputs_ready: bool) -> Vec<LandscapeCommand> {
        let mut commands = Vec::new();
        self.settings_ui(ui);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    !self.running && inputs_ready,
                    egui::Button::new("Run landscape"),
                )
                .on_hover_text("Evaluate the suite at every cell on a worker thread (base, adapter and suite from the left)")
                .on_disabled_hover_text("choose a base, an endpoint and a suite (left)")
                .clicked()
            {
                match self.request() {
                    Ok(r) => commands.push(LandscapeCommand::Start(Box::new(r))),
                    Err(e) => self.status = e,
                }
            }
            if ui
                .add_enabled(self.running, egui::Button::new("Cancel"))
                .on_hover_text("Stop after the batch in flight; finished cells are saved")
                .clicked()
            {
                commands.push(LandscapeCommand::Cancel);
            }
            if let Some(p) = &self.progress
                && p.total > 0
            {
                ui.add(
                    egui::ProgressBar::new(p.done as f32 / p.total as f32)
                        .desired_width(180.0)
                        .show_percentage(),
                );
            }
            ui.label(&self.status);
        });
        ui.horizontal(|ui| {
            ui.label("Metric");
            let names = self.metric_names();
            egui::ComboBox::from_id_salt("landscape-metric")
                .selected_text(self.metric.clone())
                .show_ui(ui, |ui| {
                    for n in names {
                        ui.selectable_value(&mut self.metric, n.clone(), n);
                    }
                });
            ui.checkbox(&mut self.log_scale, "log colour scale");
            ui.checkbox(&mut self.contours, "contours");
            ui.checkbox(&mut self.surface, "3-D")
                .on_hover_text("The slice as a surface drawn with wgpu; drag to rotate");
            ui.checkbox(&mut self.slice_mode, "drag a line: 1-D slice")
                .on_hover_text("Drag on the plane to plot the metric along that segment (the grid interpolated bilinearly); off: drag pans");
            if self.slice.is_some() && ui.button("Clear slice").clicked() {
                self.slice = None;
            }
            let clicked = ui
                .add_enabled(self.grid.is_some(), egui::Button::new("Export PNG..."))
                .on_hover_text("The shown metric rendered from the data, with the paths; grid.csv in the folder has every value")
                .clicked();
            if let Some(p) = super::file_dialog::ask(
                ui.ctx(),
                "landscape.png",
                clicked.then(|| FileRequest::save(format!("landscape-{}.png", self.metric))),
            ) {
                commands.push(LandscapeCommand::ExportPng(p));
            }
            if let Some((a, b)) = self.hovered {
                ui.label(format!("α = {a:.3}, β = {b:.3}"));
            }
        });
        ui.separator();
        self.plot_ui(ui);
        commands
    }

    fn plot_ui(&mut self, ui: &mut egui::Ui) {
        let Some(grid) = self.grid else {
            ui.label("No landscape yet: set the plane and press Run landscape, or open a landscape folder (File > Open result folder).");
            return;
        };
        let values = cell_values(&self.results, &self.metric, &grid);
        let scale = ColorScale::of(&values, self.log_scale);
        let (alphas, betas) = (grid.alphas(), grid.betas());
        let step = |v: &[f64]| {
            if v.len() > 1 {
                (v[1] - v[0]).abs()
            } else {
                1.0
            }
        };
        let (da, db) = (step(&alphas), step(&betas));
        // Point labels sit just above their marker: a twentieth of the β range.
        let label_lift = (grid.beta.1 - grid.beta.0).abs().max(db) / 20.0;
        let record = self.record.clone();
        let contours = self.contours;
        let mut hovered = None;
        if let Some(scale) = scale {
            colour_bar_ui(ui, &scale, &self.metric);
        }
        // The cell under the pointer (last frame): every metric there.
        ui.horizontal_wrapped(|ui| match self.hovered {
            Some((a, b)) => {
                let key = point_key(a, Some(b));
                ui.label(format!("α = {a:.3}, β = {b:.3}:"));
                for (k, r) in self.results.iter().filter(|(k, _)| k.0 == key) {
                    ui.monospace(format!(
                        "{}: {:.4} [{:.4}, {:.4}]",
                        k.1, r.value, r.ci_low, r.ci_high
                    ));
                }
            }
            None => {
                ui.weak("hover a cell for every metric there");
            }
        });
        if self.surface {
            self.surface_ui(ui, &values, &grid, scale);
            return;
        }
        let slice_values = self
            .slice
            .map(|(from, to)| slice_along(&values, &alphas, &betas, from, to, SLICE_SAMPLES));
        let items = self
            .selected
            .map(|(a, b)| (a, b, cell_items(&self.results, a, b, &self.metric)));
        let plot_height = if slice_values.is_some() || items.is_some() {
            (ui.available_height() * 0.62).max(120.0)
        } else {
            ui.available_height().max(120.0)
        };
        let slice_mode = self.slice_mode;
        let mut slice = self.slice;
        let mut clicked = None;
        Plot::new("landscape-plot")
            .height(plot_height)
            .data_aspect(1.0)
            .allow_drag(!slice_mode)
            .allow_boxed_zoom(!slice_mode)
            .x_axis_label("α")
            .y_axis_label("β")
            .show(ui, |plot_ui| {
                if let Some(scale) = scale {
                    let heat = Heatmap::new(values.clone(), grid.nx)
                        .at(PlotPoint::new(alphas[0] - da / 2.0, betas[0] - db / 2.0))
                        .tile_size(da as f32, db as f32)
                        .show_labels(false)
                        .custom_mapping(Box::new(move |v| colormap(scale.unit(v))))
                        .name("landscape");
                    plot_ui.heatmap(heat);
                    if contours {
                        for k in 1..=CONTOUR_LEVELS {
                            let level = scale.value_at(k as f64 / (CONTOUR_LEVELS + 1) as f64);
                            for seg in marching_squares(&values, &alphas, &betas, level) {
                                plot_ui.line(
                                    Line::new("", PlotPoints::from(vec![seg[0], seg[1]]))
                                        .color(Color32::from_white_alpha(140))
                                        .width(1.0),
                                );
                            }
                        }
                    }
                }
                if let Some(r) = &record {
                    let path_line = |pts: &[crate::experiments::landscape_job::PathPoint]| {
                        PlotPoints::from(
                            pts.iter()
                                .map(|p| [p.at.alpha, p.at.beta])
                                .collect::<Vec<_>>(),
                        )
                    };
                    plot_ui.line(
                        Line::new("straight path", path_line(&r.line))
                            .color(Color32::WHITE)
                            .width(2.0),
                    );
                    if let Some(c) = &r.curve {
                        plot_ui.line(
                            Line::new("fitted curve", path_line(c))
                                .color(Color32::from_rgb(255, 120, 60))
                                .width(2.0),
                        );
                        // t marks every 0.25.
                        let marks: Vec<[f64; 2]> = c
                            .iter()
                            .filter(|p| ((p.t * 4.0).round() - p.t * 4.0).abs() < 1e-9)
                            .map(|p| [p.at.alpha, p.at.beta])
                            .collect();
                        plot_ui.points(
                            Points::new("t marks", PlotPoints::from(marks))
                                .radius(3.0)
                                .color(Color32::from_rgb(255, 120, 60)),
                        );
                    }
                    for p in &r.points {
                        let label = match p.name.as_str() {
                            "base" => "θ₀".to_string(),
                            "end" => "θ_H".to_string(),
                            "bend" => "bend".to_string(),
                            other => other.to_string(),
                        };
                        plot_ui.points(
                            Points::new(label.clone(), vec![[p.at.alpha, p.at.beta]])
                                .radius(5.0)
                                .color(Color32::WHITE),
                        );
                        plot_ui.text(Text::new(
                            label.clone(),
                            PlotPoint::new(p.at.alpha, p.at.beta + label_lift),
                            egui::RichText::new(label).strong().color(Color32::WHITE),
                        ));
                    }
                }
                if slice_mode && let Some(p) = plot_ui.pointer_coordinate() {
                    let here = [p.x, p.y];
                    if plot_ui.response().drag_started() {
                        slice = Some((here, here));
                    } else if plot_ui.response().dragged()
                        && let Some((from, _)) = slice
                    {
                        slice = Some((from, here));
                    }
                }
                if let Some((from, to)) = slice {
                    plot_ui.line(
                        Line::new("slice", PlotPoints::from(vec![from, to]))
                            .color(Color32::from_rgb(80, 200, 255))
                            .width(2.5),
                    );
                }
                if let Some(p) = plot_ui.pointer_coordinate() {
                    let clicked_here = plot_ui.response().clicked();
                    let nearest = |v: &[f64], x: f64| {
                        v.iter()
                            .copied()
                            .min_by(|a, b| (a - x).abs().total_cmp(&(b - x).abs()))
                    };
                    if let (Some(a), Some(b)) = (nearest(&alphas, p.x), nearest(&betas, p.y))
                        && (a - p.x).abs() <= da
                        && (b - p.y).abs() <= db
                    {
                        hovered = Some((a, b));
                        if clicked_here && !slice_mode {
                            clicked = Some((a, b));
                        }
                    }
                }
            });
        self.hovered = hovered;
        if clicked.is_some() {
            self.selected = clicked;
        }
        self.slice = slice.filter(|(a, b)| a != b || self.slice_mode);
        if let Some((a, b, rows)) = items {
            ui.horizontal(|ui| {
                ui.strong(format!(
                    "Items at α = {a:.3}, β = {b:.3} ({}, {} items, highest score first)",
                    self.metric,
                    rows.len()
                ));
                if ui.button("Close items").clicked() {
                    self.selected = None;
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("landscape-items")
                .max_height(if self.slice.is_some() {
                    120.0
                } else {
                    ui.available_height()
                })
                .show(ui, |ui| {
                    egui::Grid::new("landscape-items-grid")
                        .striped(true)
                        .show(ui, |ui| {
                            for (id, score) in &rows {
                                ui.monospace(id);
                                ui.monospace(format!("{score:.4}"));
                                ui.end_row();
                            }
                        });
                });
        }
        if let (Some(points), Some((from, to))) = (slice_values, self.slice) {
            Plot::new("landscape-slice")
                .height(ui.available_height().max(80.0))
                .x_axis_label(format!(
                    "distance along ({:.2}, {:.2}) to ({:.2}, {:.2})",
                    from[0], from[1], to[0], to[1]
                ))
                .y_axis_label(self.metric.clone())
                .show(ui, |plot_ui| {
                    plot_ui.line(
                        Line::new(
                            format!("{} along the slice", self.metric),
                            PlotPoints::from(points),
                        )
                        .color(Color32::from_rgb(80, 200, 255)),
                    );
                });
        }
    }
}

impl LandscapePanel {
    /// The 3-D surface: a paint callback running `shaders/surface.wgsl`; drag rotates.
    fn surface_ui(
        &mut self,
        ui: &mut egui::Ui,
        values: &[f64],
        grid: &Grid,
        scale: Option<ColorScale>,
    ) {
        let size = ui.available_size().max(egui::vec2(120.0, 120.0));
        let (rect, response) = ui.allocate_exact_size(size, egui::Sense::drag());
        let delta = response.drag_delta();
        self.yaw_deg = (self.yaw_deg + delta.x * 0.4) % 360.0;
        self.tilt_deg = (self.tilt_deg - delta.y * 0.4).clamp(0.0, 89.0);
        self.surface_rect = Some(rect);
        let Some(scale) = scale else {
            return;
        };
        let triangles = super::surface_view::surface_triangles(
            values,
            grid.nx,
            grid.ny,
            &|v| scale.unit(v),
            &|v| colormap(scale.unit(v)),
        );
        let view = super::surface_view::view_matrix(
            self.yaw_deg,
            self.tilt_deg,
            rect.width() / rect.height().max(1.0),
        );
        let vertices = super::surface_view::sorted_vertex_floats(&triangles, &view);
        ui.painter()
            .add(eframe::egui_wgpu::Callback::new_paint_callback(
                rect,
                super::surface_view::SurfaceCallback {
                    vertices: std::sync::Arc::new(vertices),
                    view,
                },
            ));
        ui.painter().text(
            rect.left_top() + egui::vec2(6.0, 6.0),
            egui::Align2::LEFT_TOP,
            format!(
                "{}: drag to rotate (yaw {:.0} deg, tilt {:.0} deg)",
                self.metric, self.yaw_deg, self.tilt_deg
            ),
            egui::FontId::proportional(13.0),
            Color32::from_gray(200),
        );
    }
}

/// The per-item scores (`extra.items[].id` / `score`) of `metric` at cell (α, β), highest
/// first.
pub fn cell_items(
    results: &BTreeMap<(String, String), MetricResult>,
    alpha: f64,
    beta: f64,
    metric: &str,
) -> Vec<(String, f64)> {
    let Some(r) = results.get(&(point_key(alpha, Some(beta)), metric.to_string())) else {
        return Vec::new();
    };
    let mut rows: Vec<(String, f64)> = r
        .extra
        .get("items")
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .map(|it| {
                    (
                        it.get("id")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_string(),
                        it.get("score").and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    rows
}

/// Samples of a 1-D slice.
pub const SLICE_SAMPLES: usize = 101;

/// The grid's values along the segment `from` → `to` in (α, β): `n` evenly spaced samples, each
/// `[distance from `from`, value]` by bilinear interpolation between the four surrounding cell
/// centres; samples outside the grid or next to a missing cell are left out.
pub fn slice_along(
    values: &[f64],
    alphas: &[f64],
    betas: &[f64],
    from: [f64; 2],
    to: [f64; 2],
    n: usize,
) -> Vec<[f64; 2]> {
    let nx = alphas.len();
    if nx < 2 || betas.len() < 2 || values.len() != nx * betas.len() || n < 2 {
        return Vec::new();
    }
    // The cell interval holding x and the fraction within it.
    let locate = |axis: &[f64], x: f64| -> Option<(usize, f64)> {
        let (lo, hi) = (axis[0], axis[axis.len() - 1]);
        if !(x >= lo.min(hi) && x <= lo.max(hi)) {
            return None;
        }
        let step = (hi - lo) / (axis.len() - 1) as f64;
        let f = ((x - lo) / step).clamp(0.0, (axis.len() - 1) as f64);
        let i = (f.floor() as usize).min(axis.len() - 2);
        Some((i, f - i as f64))
    };
    let length = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt();
    (0..n)
        .filter_map(|k| {
            let s = k as f64 / (n - 1) as f64;
            let (a, b) = (
                from[0] + s * (to[0] - from[0]),
                from[1] + s * (to[1] - from[1]),
            );
            let (i, fa) = locate(alphas, a)?;
            let (j, fb) = locate(betas, b)?;
            let v = |ii: usize, jj: usize| values[jj * nx + ii];
            let value = (1.0 - fa) * (1.0 - fb) * v(i, j)
                + fa * (1.0 - fb) * v(i + 1, j)
                + (1.0 - fa) * fb * v(i, j + 1)
                + fa * fb * v(i + 1, j + 1);
            value.is_finite().then_some([s * length, value])
        })
        .collect()
}

/// A horizontal colour bar with the scale's ends and middle labelled.
fn colour_bar_ui(ui: &mut egui::Ui, scale: &ColorScale, metric: &str) {
    ui.horizontal(|ui| {
        ui.label(format!("{metric}:"));
        ui.label(format!("{:.4}", scale.min));
        let (rect, _) = ui.allocate_exact_size(egui::vec2(240.0, 14.0), egui::Sense::hover());
        let n = 48;
        for i in 0..n {
            let x0 = rect.left() + rect.width() * i as f32 / n as f32;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / n as f32;
            ui.painter().rect_filled(
                egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
                0.0,
                colormap((i as f64 + 0.5) / n as f64),
            );
        }
        ui.label(format!("{:.4}", scale.max));
        ui.label(format!(
            "(middle {:.4}{})",
            scale.value_at(0.5),
            if scale.log { ", log" } else { "" }
        ));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contours_of_a_bowl_lie_on_its_circles() {
        let axis: Vec<f64> = (0..21).map(|i| -1.0 + i as f64 * 0.1).collect();
        let values: Vec<f64> = axis
            .iter()
            .flat_map(|&b| axis.iter().map(move |&a| a * a + b * b))
            .collect();
        let segs = marching_squares(&values, &axis, &axis, 0.25);
        assert!(segs.len() > 12, "{}", segs.len());
        for s in &segs {
            for p in s {
                let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
                // Linear interpolation of r² on a 0.1 grid: within a few thousandths of 0.5.
                assert!((r - 0.5).abs() < 0.01, "{p:?} at r = {r}");
            }
        }
        // No level inside the range of values, no segments; missing cells are skipped.
        assert!(marching_squares(&values, &axis, &axis, 5.0).is_empty());
        let mut holes = values.clone();
        holes.iter_mut().for_each(|v| *v = f64::NAN);
        assert!(marching_squares(&holes, &axis, &axis, 0.25).is_empty());
    }

    #[test]
    fn a_saddle_square_gives_two_separate_segments() {
        let axis = [0.0, 1.0];
        // Corners anticlockwise from the bottom left: high, low, high, low; mean 0.5.
        let values = [1.0, 0.0, 0.0, 1.0];
        let segs = marching_squares(&values, &axis, &axis, 0.4);
        assert_eq!(segs.len(), 2);
        for s in segs {
            assert_ne!(s[0], s[1]);
        }
    }

    #[test]
    fn colour_scale_is_monotone_and_inverts() {
        for log in [false, true] {
            let s = ColorScale::of(&[2.0, 3.0, f64::NAN, 7.0], log).unwrap();
            assert_eq!((s.min, s.max), (2.0, 7.0));
            assert!((s.unit(2.0)).abs() < 1e-12 && (s.unit(7.0) - 1.0).abs() < 1e-12);
            let mut last = -1.0;
            for k in 0..=20 {
                let u = s.unit(2.0 + k as f64 * 0.25);
                assert!(u > last);
                last = u;
            }
            for u in [0.1, 0.5, 0.9] {
                assert!((s.unit(s.value_at(u)) - u).abs() < 1e-9);
            }
        }
        assert!(ColorScale::of(&[f64::NAN], false).is_none());
        assert_ne!(colormap(0.0), colormap(1.0));
        assert_eq!(colormap(f64::NAN), Color32::from_gray(40));
    }

    #[test]
    fn the_exported_png_has_each_cell_in_its_colour_with_the_lowest_beta_at_the_bottom() {
        let grid = Grid::parse("2x2", "0:1,0:1").unwrap();
        let mut panel = LandscapePanel {
            grid: Some(grid),
            metric: "m".into(),
            ..Default::default()
        };
        for (a, b, v) in [
            (0.0, 0.0, 1.0),
            (1.0, 0.0, 2.0),
            (0.0, 1.0, 3.0),
            (1.0, 1.0, 4.0),
        ] {
            panel.on_result(MetricResult {
                t: a,
                beta: Some(b),
                metric: "m".into(),
                kind: "instruction".into(),
                value: v,
                ci_low: v,
                ci_high: v,
                n: 1,
                extra: serde_json::json!({}),
            });
        }
        let img = panel.png().unwrap();
        let px = crate::gui::export::LANDSCAPE_CELL_PX;
        assert_eq!(img.dimensions(), (2 * px, 2 * px));
        let scale = ColorScale::of(&[1.0, 4.0], false).unwrap();
        let at = |x: u32, y: u32| {
            let p = img.get_pixel(x, y);
            Color32::from_rgb(p[0], p[1], p[2])
        };
        // Bottom left is (0, 0) = 1, top right (1, 1) = 4.
        assert_eq!(at(2, 2 * px - 3), colormap(scale.unit(1.0)));
        assert_eq!(at(2 * px - 3, 2), colormap(scale.unit(4.0)));
        assert_eq!(at(2, 2), colormap(scale.unit(3.0)));
    }

    #[test]
    fn a_slice_of_a_plane_is_exact_and_stops_at_the_grid() {
        // v = 2α − β + 1 is reproduced exactly by bilinear interpolation.
        let axis: Vec<f64> = (0..5).map(|i| i as f64 * 0.5).collect();
        let values: Vec<f64> = axis
            .iter()
            .flat_map(|&b| axis.iter().map(move |&a| 2.0 * a - b + 1.0))
            .collect();
        let pts = slice_along(&values, &axis, &axis, [0.1, 0.3], [1.9, 1.7], 11);
        assert_eq!(pts.len(), 11);
        let len = (1.8f64 * 1.8 + 1.4 * 1.4).sqrt();
        for (k, p) in pts.iter().enumerate() {
            let s = k as f64 / 10.0;
            let (a, b) = (0.1 + 1.8 * s, 0.3 + 1.4 * s);
            assert!((p[0] - s * len).abs() < 1e-12);
            assert!((p[1] - (2.0 * a - b + 1.0)).abs() < 1e-12, "{p:?}");
        }
        // Half the segment outside the grid: only the inside half is sampled.
        let half = slice_along(&values, &axis, &axis, [1.0, 1.0], [3.0, 1.0], 11);
        assert_eq!(half.len(), 6);
    }

    #[test]
    fn cell_values_are_row_by_row_with_holes() {
        let grid = Grid::parse("2x2", "0:1,0:1").unwrap();
        let mut results = BTreeMap::new();
        let r = |a: f64, b: f64, v: f64| MetricResult {
            t: a,
            beta: Some(b),
            metric: "m".into(),
            kind: "instruction".into(),
            value: v,
            ci_low: v,
            ci_high: v,
            n: 1,
            extra: serde_json::json!({}),
        };
        for (a, b, v) in [(0.0, 0.0, 1.0), (1.0, 0.0, 2.0), (1.0, 1.0, 4.0)] {
            results.insert((point_key(a, Some(b)), "m".to_string()), r(a, b, v));
        }
        let v = cell_values(&results, "m", &grid);
        assert_eq!(v[..2], [1.0, 2.0]);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 4.0);
    }
}
