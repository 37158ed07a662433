//! A training run as the app shows it: its step log, checkpoints, progress and status, fed by
//! the training job's events (`on_*`) or read from a folder on disk, and drawn as loss and
//! learning-rate curves (plus the loss by t of a curve fit). The Train and Curve tabs each own
//! one; both kinds of run go through the same training job.

use std::path::{Path, PathBuf};

use eframe::egui;
use egui_plot::{Legend, Line, Plot, Points, VLine};

use crate::experiments::{
    job::Progress,
    train_store::{StepRecord, StoreLayout, read_steps, sample_points},
};

/// Buckets of t in the Train and Curve tabs' loss-along-the-path plot.
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

/// One training run's log as shown in a tab.
#[derive(Default)]
pub struct TrainRunView {
    /// The training folder shown (running or opened).
    pub run_dir: Option<PathBuf>,
    pub log: Vec<StepRecord>,
    pub checkpoints: Vec<(usize, PathBuf)>,
    pub running: bool,
    pub progress: Option<Progress>,
    pub status: String,
}

impl TrainRunView {
    /// Shows a training folder as it is on disk; returns the base model its run.json names.
    pub fn open_run(&mut self, dir: &Path) -> Result<Option<String>, String> {
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
        self.status = format!("{} steps in {}", self.log.len(), dir.display());
        Ok(crate::bounded::read_config(dir.join("run.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["spec"]["base"].as_str().map(str::to_string)))
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

    /// The progress bar (while running) and the status line.
    pub fn progress_ui(&self, ui: &mut egui::Ui) {
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
    }

    /// The loss and learning-rate curves of the log; for a curve fit also the loss by t.
    /// `id` keeps the plots of two panels apart.
    pub fn curves_ui(&self, ui: &mut egui::Ui, id: &str) {
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
        let link = egui::Id::unique((id, "curves"));
        let height = ((ui.available_height() - 60.0) * 0.6).clamp(140.0, 360.0);
        ui.strong("Training loss (mean masked NLL per step)");
        Plot::new((id, "loss"))
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
        // From 0 to above the largest rate, so a constant rate reads as its value rather than
        // as a line in the middle of an arbitrary range.
        let lr_max = lr.iter().map(|p| p[1]).fold(0.0f64, f64::max);
        Plot::new((id, "lr"))
            .height((height * 0.45).max(90.0))
            .link_axis(link, [true, false])
            .x_axis_label("samples seen")
            .include_y(0.0)
            .include_y(if lr_max > 0.0 { lr_max * 1.15 } else { 1e-3 })
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
            Plot::new((id, "loss-by-t"))
                .height((height * 0.6).max(110.0))
                .x_axis_label("t")
                .include_x(0.0)
                .include_x(1.0)
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
                        // Markers too: with one t per batch (a full bend, a checkpoint
                        // endpoint) a few steps fill only scattered buckets.
                        let buckets = loss_by_t_bucket(steps);
                        let color = super::path_tab::run_color(2 + k);
                        p.add(
                            Points::new(name.clone(), buckets.clone())
                                .color(color)
                                .radius(3.0),
                        );
                        p.add(Line::new(name, buckets).color(color).width(2.0));
                    }
                });
        }
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
