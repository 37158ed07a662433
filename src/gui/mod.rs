//! The desktop workbench: eframe (wgpu renderer) + egui_plot.
//!
//! Panels never compute: they change state or issue commands. Model work (load reports, sweeps)
//! runs on worker threads ([`jobs`]) through the same library functions as the CLI
//! ([`crate::experiments::sweep_job::run_sweep_job`]), which report progress, results and errors as
//! events the UI polls each frame. Result folders are the sweep's own, so a CLI run opens here.

pub mod app;
pub mod curve_panel;
pub mod demo;
pub mod export;
pub mod file_dialog;
pub mod frame_times;
pub mod generate_tab;
pub mod help;
pub mod influence_tab;
pub mod items_tab;
pub mod jobs;
pub mod landscape_tab;
pub mod models_panel;
pub mod path_tab;
pub mod reports;
pub mod run_view;
pub mod session;
pub mod study_tab;
pub mod surface_view;
pub mod train_panel;
pub mod train_view;

use std::path::PathBuf;

pub use app::BasinApp;

/// How the window starts (the CLI's top-level flags).
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Open the built-in demo instead of the last session.
    pub demo: bool,
    /// Open this session file.
    pub session: Option<PathBuf>,
    /// Start a sweep as soon as the window opens.
    pub run_on_start: bool,
    /// Start the Train tab's run as soon as the window opens.
    pub train_on_start: bool,
    /// When the first sweep finishes, save a screenshot of the window here.
    pub screenshot: Option<PathBuf>,
    /// Close the window once the screenshot is saved (scripts).
    pub quit_when_done: bool,
    /// Append per-frame times (CSV) here.
    pub log_frame_times: Option<PathBuf>,
    /// Where new result folders go (default: the app's data folder).
    pub runs_dir: Option<PathBuf>,
}

pub use crate::error_line as error_text;

/// Opens the window. Burn creates the wgpu device first, and eframe renders with the same one, so
/// one device serves drawing and GPU compute; without a usable adapter for compute, eframe picks
/// its own for drawing and the GPU choice is disabled with the reason shown.
pub fn run_native(launch: LaunchOptions) -> Result<(), String> {
    let mut options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Basin")
            .with_app_id("basin")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0]),
        ..Default::default()
    };
    let gpu = crate::compute::gpu_handles();
    if let Ok(h) = &gpu {
        options.wgpu_options.wgpu_setup =
            eframe::egui_wgpu::WgpuSetup::Existing(eframe::egui_wgpu::WgpuSetupExisting {
                instance: h.instance.clone(),
                adapter: h.adapter.clone(),
                device: h.device.clone(),
                queue: h.queue.clone(),
            });
    }
    let gpu_label = match gpu {
        Ok(_) => crate::compute::ComputeDevice::new(crate::compute::ComputeKind::Gpu)
            .map(|d| d.label)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    eframe::run_native(
        "basin",
        options,
        Box::new(move |cc| Ok(Box::new(BasinApp::new(cc, launch, gpu_label)))),
    )
    .map_err(|e| format!("could not open the window: {e}"))
}
