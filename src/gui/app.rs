//! The app's state and commands, and the frame layout (menu, left panel, tabs, bottom bar).
//! Commands (`open_demo`, `start_sweep`, `cancel_sweep`, `save_session`, ...) are methods, so
//! menus, buttons, the command line and tests all go through the same code.

use super::file_dialog::{self, FileRequest};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use eframe::egui::{self, Rect};

use crate::{
    compute::ComputeKind,
    experiments::{sweep_job::SweepRequest, train_store::StoreLayout},
};

use super::{
    LaunchOptions,
    curve_panel::{CurveCommand, CurvePanel},
    demo::demo_paths,
    export::{self, PngTarget},
    frame_times::FrameLog,
    influence_tab::{InfluenceCommand, InfluencePanel},
    jobs::{
        self, InfluenceJob, JobEvent, JobSink, LandscapeJob, Slot, StudyJob, SweepJob, Tagged,
        TrainJob,
    },
    landscape_tab::{LandscapeCommand, LandscapePanel},
    reports::{ModelReport, SuiteReport, is_adapter_path},
    run_view::RunView,
    session::{Persisted, SESSION_SCHEMA, STORAGE_KEY, Session, SessionRun, SweepSettings},
    study_tab::{StudyCommand, StudyPanel},
    train_panel::{TrainCommand, TrainPanel},
    train_view::TrainRunView,
};

/// A report being built, built, or failed.
#[derive(Debug, Clone)]
pub enum ReportState<T> {
    Empty,
    Loading,
    Ready(T),
    Failed(String),
}

/// One input: the path as typed or picked, and its report.
#[derive(Debug, Clone)]
pub struct InputSlot<T> {
    pub path: String,
    pub report: ReportState<T>,
    /// The job whose report is awaited (older ones are ignored).
    pub job: u64,
}

impl<T> Default for InputSlot<T> {
    fn default() -> Self {
        Self {
            path: String::new(),
            report: ReportState::Empty,
            job: 0,
        }
    }
}

impl<T> InputSlot<T> {
    pub fn path_buf(&self) -> Option<PathBuf> {
        let p = self.path.trim();
        (!p.is_empty()).then(|| PathBuf::from(p))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Path,
    Items,
    Train,
    Curve,
    Landscape,
    Influence,
    Generate,
    Study,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageLevel {
    Info,
    Error,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub level: MessageLevel,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub at_s: f64,
    pub text: String,
}

/// Where each plot was drawn last frame (for PNG crops and tests).
#[derive(Debug, Clone)]
pub struct PlotGeometry {
    pub metric: String,
    pub rect: Rect,
    /// Whether the whole plot was inside the visible part of its scroll area.
    pub visible: bool,
    /// (run index, t, plotted y, screen position) of every marker.
    pub points: Vec<(usize, f64, f64, egui::Pos2)>,
}

pub struct BasinApp {
    pub base: InputSlot<ModelReport>,
    pub endpoint: InputSlot<ModelReport>,
    pub adapter_b: InputSlot<ModelReport>,
    pub suite: InputSlot<SuiteReport>,
    /// The Data panel's suite check at θ₀ (`job` names the awaited one).
    pub suite_check: InputSlot<crate::experiments::suite_check::SuiteCheckReport>,
    pub settings: SweepSettings,
    /// Where new result folders go.
    pub runs_dir: PathBuf,
    pub gpu_label: Result<String, String>,
    pub runs: Vec<RunView>,
    pub sweep: Option<SweepJob>,
    /// The Train tab (owns its settings and the shown training run).
    pub train: TrainPanel,
    pub curve: CurvePanel,
    pub train_job: Option<TrainJob>,
    /// The Landscape tab (owns its settings and the shown slice).
    pub landscape: LandscapePanel,
    pub landscape_job: Option<LandscapeJob>,
    /// The Influence tab (owns its settings and the shown ranking).
    pub influence: InfluencePanel,
    pub influence_job: Option<InfluenceJob>,
    /// The Study tab (owns the study file's text and the shown steps).
    pub study: StudyPanel,
    pub study_job: Option<StudyJob>,
    pub generate: super::generate_tab::GeneratePanel,
    pub generate_job: Option<jobs::GenerateJob>,
    /// Sweeps cancelled while their worker finishes its batch.
    pub detached: Vec<JoinHandle<()>>,
    pub tab: Tab,
    pub delta: bool,
    pub hovered_t: Option<f64>,
    pub help_open: Option<String>,
    pub items: super::items_tab::ItemsState,
    pub log: Vec<LogEntry>,
    pub messages: Vec<Message>,
    pub recent: Vec<PathBuf>,
    pub session_path: String,
    pub plot_geometry: Vec<PlotGeometry>,
    /// The plot geometry of the frame the last screenshot (PNG export) was taken of.
    pub screenshot_geometry: Vec<PlotGeometry>,
    pub pending_png: Vec<PngTarget>,
    /// Frames a plot's PNG export has waited for its plot to come on screen.
    png_wait_frames: u32,
    /// Sweeps started in this app's life (tests assert reopening computes nothing).
    pub sweeps_started: usize,
    pub last_export: Option<Result<String, String>>,
    /// Each sweep job's result folder.
    job_dirs: Vec<(u64, PathBuf)>,
    sink: JobSink,
    events: Receiver<Tagged>,
    next_job: u64,
    started: Instant,
    launch: LaunchOptions,
    frame_log: Option<FrameLog>,
    screenshot_taken: bool,
    ctx: egui::Context,
}

/// Where the app writes result folders: `runs` in the app's own data folder (e.g.
/// `~/.local/share/basin/runs`); without one (no home), a new private folder (mode 0700, a name
/// no one can guess or create first) in the temporary folder, never a fixed shared path.
pub fn default_runs_dir() -> PathBuf {
    eframe::storage_dir("basin")
        .map(|d| d.join("runs"))
        .unwrap_or_else(private_temp_dir)
}

fn private_temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = std::env::temp_dir();
    for attempt in 0..16u32 {
        let dir = tmp.join(format!(
            "basin-runs-{}-{:x}",
            std::process::id(),
            nanos
                .wrapping_mul(6364136223846793005)
                .wrapping_add(u128::from(attempt))
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // `create` fails when the name exists: someone else's folder is never used.
        if builder.create(&dir).is_ok() {
            return dir;
        }
    }
    tmp.join(format!("basin-runs-{}", std::process::id()))
}

/// `YYYYmmdd-HHMMSS` (UTC) for result folder names.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

impl BasinApp {
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        launch: LaunchOptions,
        gpu_label: Result<String, String>,
    ) -> Self {
        let persisted: Persisted = cc
            .storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        // Burn's wgpu runtime is only touched when the GPU was set up (run_native did it).
        let shared = match (&cc.wgpu_render_state, &gpu_label) {
            (Some(rs), Ok(_)) => crate::compute::gpu_handles()
                .ok()
                .map(|h| rs.device == h.device),
            _ => None,
        };
        // The Landscape tab's 3-D view draws with the window's wgpu renderer.
        if let Some(rs) = &cc.wgpu_render_state {
            super::surface_view::install(rs);
        }
        let mut app = Self::with_context(cc.egui_ctx.clone(), launch.clone(), gpu_label);
        // Tests keep the built-in file browser (with_context); the real window asks the system's
        // dialogs when this machine has them.
        let (backend, why) = file_dialog::Backend::detect();
        file_dialog::set_backend(&cc.egui_ctx, backend);
        app.log(why);
        app.recent = persisted.recent_files.clone();
        match (&app.gpu_label, shared) {
            (Ok(l), Some(true)) => app.log(format!(
                "{l}: one wgpu device draws the window and computes"
            )),
            (Ok(l), _) => app.log(format!(
                "{l}: compute device (the window draws with its own)"
            )),
            (Err(e), _) => app.log(format!("GPU compute unavailable: {e}")),
        }
        if let Some(path) = &launch.session {
            app.open_session(path);
        } else if launch.demo {
            app.open_demo();
        } else if let Some(last) = persisted.last_session {
            app.apply_session(&last);
            app.log("restored the last session");
        } else {
            // First start: the built-in demo.
            app.open_demo();
        }
        if launch.run_on_start {
            app.start_sweep();
        }
        if launch.train_on_start {
            app.tab = Tab::Train;
            match app.train.request(Path::new("")) {
                Ok(req) => app.start_training(req),
                Err(e) => app.error(format!("--train: {e}")),
            }
        }
        app
    }

    /// An app with nothing loaded (tests build it through eframe's creation context).
    pub fn with_context(
        ctx: egui::Context,
        launch: LaunchOptions,
        gpu_label: Result<String, String>,
    ) -> Self {
        let (sink, events) = JobSink::new(ctx.clone());
        let runs_dir = launch.runs_dir.clone().unwrap_or_else(default_runs_dir);
        let studies_dir = runs_dir.join("studies");
        let frame_log = launch.log_frame_times.clone().map(FrameLog::new);
        Self {
            base: InputSlot::default(),
            endpoint: InputSlot::default(),
            adapter_b: InputSlot::default(),
            suite: InputSlot::default(),
            suite_check: InputSlot::default(),
            settings: SweepSettings {
                device: ComputeKind::Cpu,
                dtype: Default::default(),
                t_start: 0.0,
                t_stop: 1.0,
                t_points: 11,
                batch: 8,
                bootstrap: 1000,
            },
            runs_dir,
            gpu_label,
            runs: Vec::new(),
            sweep: None,
            train: TrainPanel::default(),
            curve: CurvePanel::default(),
            train_job: None,
            landscape: LandscapePanel::default(),
            landscape_job: None,
            influence: InfluencePanel::default(),
            influence_job: None,
            study: StudyPanel {
                studies_dir,
                ..StudyPanel::default()
            },
            study_job: None,
            generate: Default::default(),
            generate_job: None,
            detached: Vec::new(),
            tab: Tab::Path,
            delta: false,
            hovered_t: None,
            help_open: None,
            items: Default::default(),
            log: Vec::new(),
            messages: Vec::new(),
            recent: Vec::new(),
            session_path: String::new(),
            plot_geometry: Vec::new(),
            screenshot_geometry: Vec::new(),
            pending_png: Vec::new(),
            png_wait_frames: 0,
            sweeps_started: 0,
            last_export: None,
            job_dirs: Vec::new(),
            sink,
            events,
            next_job: 1,
            started: Instant::now(),
            launch,
            frame_log,
            screenshot_taken: false,
            ctx,
        }
    }

    // ----- messages and log -----

    /// Adds a Log-tab line (also on stderr, for scripts running the app).
    pub fn log(&mut self, text: impl Into<String>) {
        let entry = LogEntry {
            at_s: self.started.elapsed().as_secs_f64(),
            text: text.into(),
        };
        eprintln!("[{:8.2} s] {}", entry.at_s, entry.text);
        self.log.push(entry);
    }

    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.log(format!("error: {text}"));
        self.messages.push(Message {
            level: MessageLevel::Error,
            text,
        });
    }

    fn info(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.log(text.clone());
        self.messages.push(Message {
            level: MessageLevel::Info,
            text,
        });
    }

    fn job_id(&mut self) -> u64 {
        self.next_job += 1;
        self.next_job
    }

    fn remember(&mut self, path: &Path) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_path_buf());
        self.recent.truncate(10);
    }

    // ----- inputs -----

    fn slot_mut(&mut self, slot: Slot) -> &mut InputSlot<ModelReport> {
        match slot {
            Slot::Base => &mut self.base,
            Slot::Endpoint => &mut self.endpoint,
            Slot::AdapterB => &mut self.adapter_b,
        }
    }

    /// The run shown for a result folder.
    pub fn run_of(&self, dir: &Path) -> Option<&RunView> {
        self.runs.iter().find(|r| r.dir == dir)
    }

    /// Sets an input's path and builds its report on a worker thread.
    pub fn set_model_path(&mut self, slot: Slot, path: &Path) {
        let id = self.job_id();
        let s = self.slot_mut(slot);
        s.path = path.display().to_string();
        s.job = id;
        s.report = ReportState::Loading;
        let base = self.base.path_buf();
        if let Err(e) = jobs::spawn_model_report(&self.sink, id, slot, path.to_path_buf(), base) {
            self.error(format!("could not start a worker thread: {e}"));
        }
        self.remember(path);
    }

    /// Reloads the report of an input from its typed path; a Hugging Face repo id
    /// (`org/name[@revision]`) becomes its snapshot folder in the local cache.
    pub fn reload(&mut self, slot: Slot) {
        match self.slot_mut(slot).path_buf() {
            Some(p) => match crate::checkpoint::hub::resolve_cached(&p.to_string_lossy()) {
                Ok(resolved) => self.set_model_path(slot, &resolved),
                Err(e) => self.error(e),
            },
            None => self.slot_mut(slot).report = ReportState::Empty,
        }
    }

    pub fn set_suite_path(&mut self, path: &Path) {
        let id = self.job_id();
        self.suite.path = path.display().to_string();
        self.suite.job = id;
        self.suite.report = ReportState::Loading;
        if let Err(e) = jobs::spawn_suite_report(&self.sink, id, path.to_path_buf()) {
            self.error(format!("could not start a worker thread: {e}"));
        }
        self.remember(path);
    }

    /// Checks the suite at the base model θ₀ on a worker thread (floor / ceiling / length flags
    /// for the Data panel).
    pub fn check_suite(&mut self) {
        let (Some(model), Some(suite)) = (self.base.path_buf(), self.suite.path_buf()) else {
            return self.error("choose a base model and a suite to check");
        };
        let mut req = crate::experiments::suite_check::SuiteCheckRequest::new(model, suite.clone());
        req.device = self.settings.device;
        req.batch = self.settings.batch.max(1);
        req.bootstrap = self.settings.bootstrap;
        let id = self.job_id();
        self.suite_check.job = id;
        self.suite_check.path = suite.display().to_string();
        self.suite_check.report = ReportState::Loading;
        self.log(format!("checking suite {} at theta0", suite.display()));
        if let Err(e) = jobs::spawn_suite_check(&self.sink, id, req) {
            self.suite_check.report = ReportState::Failed(e.to_string());
            self.error(format!("could not start a worker thread: {e}"));
        }
    }

    /// Loads the demo's base, hacker and suite.
    pub fn open_demo(&mut self) {
        let d = demo_paths();
        self.adapter_b = InputSlot::default();
        self.set_model_path(Slot::Base, &d.base);
        self.set_model_path(Slot::Endpoint, &d.hacker);
        self.set_suite_path(&d.suite);
        self.settings.t_start = 0.0;
        self.settings.t_stop = 1.0;
        self.settings.t_points = 11;
        self.settings.device = ComputeKind::Cpu;
        // The Train tab: a new LoRA on the demo base, trained on the demo's hack chats, with
        // checkpoints to evaluate (a few seconds on a laptop CPU).
        if !self.curve.view.running {
            // The Curve tab: a LoRA bend between the demo base and hacker, kept low on the
            // generator's plain instruction chats.
            self.curve.data = d.instructions.display().to_string();
        }
        if !self.train.view.running {
            self.train.base = d.base.display().to_string();
            self.train.data = d.train_data.display().to_string();
            self.train.epochs = 3;
            self.train.steps = 0;
            self.train.lr = 2e-3;
            self.train.checkpoint_every = 64;
        }
        self.log("opened the demo: tiny llama base, LoRA reward hacker, demo suite");
    }

    /// Adds an existing result folder (e.g. a sweep run by the CLI on a cluster); a landscape
    /// folder opens in the Landscape tab.
    pub fn open_result_folder(&mut self, dir: &Path) {
        let schema = crate::bounded::read_config(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(String::from));
        if schema.as_deref() == Some(crate::experiments::influence_job::INFLUENCE_SCHEMA) {
            match self.influence.open_run(dir) {
                Ok(()) => {
                    self.remember(dir);
                    self.tab = Tab::Influence;
                    self.log(format!("opened influence ranking {}", dir.display()));
                }
                Err(e) => self.error(e),
            }
            return;
        }
        if crate::experiments::sweep_store::StoreFiles::of_dir(dir)
            == crate::experiments::sweep_store::StoreFiles::LANDSCAPE
        {
            match self.landscape.open_run(dir) {
                Ok(()) => {
                    self.remember(dir);
                    self.tab = Tab::Landscape;
                    self.log(format!("opened landscape {}", dir.display()));
                }
                Err(e) => self.error(e),
            }
            return;
        }
        match RunView::open(dir) {
            Ok(run) => {
                self.log(format!(
                    "opened {} ({} results)",
                    dir.display(),
                    run.results.len()
                ));
                if let Some(i) = self.runs.iter().position(|r| r.dir == run.dir) {
                    self.runs[i] = run;
                } else {
                    self.runs.push(run);
                }
                self.remember(dir);
            }
            Err(e) => self.error(e),
        }
    }

    pub fn all_reports_settled(&self) -> bool {
        !matches!(self.base.report, ReportState::Loading)
            && !matches!(self.endpoint.report, ReportState::Loading)
            && !matches!(self.adapter_b.report, ReportState::Loading)
            && !matches!(self.suite.report, ReportState::Loading)
    }

    // ----- sweeps -----

    pub fn t_spec(&self) -> String {
        format!(
            "{}:{}:{}",
            self.settings.t_start, self.settings.t_stop, self.settings.t_points
        )
    }

    /// The request the Run button would start, or why it cannot.
    pub fn sweep_request(&self) -> Result<SweepRequest, String> {
        let base = self
            .base
            .path_buf()
            .ok_or("choose a base model theta0 first")?;
        let end = self
            .endpoint
            .path_buf()
            .ok_or("choose an endpoint: a LoRA adapter folder or a full checkpoint")?;
        let suite = self.suite.path_buf().ok_or("choose a suite file first")?;
        let name = end
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "run".into());
        let out = self
            .runs_dir
            .join(format!("{}-{}", timestamp(), export::file_stem(&name)));
        let mut req = SweepRequest::new(base, suite, &self.t_spec(), out);
        if is_adapter_path(&end) {
            req.adapter = Some(end);
            req.adapter_b = self.adapter_b.path_buf();
        } else {
            if self.adapter_b.path_buf().is_some() {
                return Err(
                    "a second adapter goes with an adapter endpoint, not a full checkpoint".into(),
                );
            }
            req.target = Some(end);
        }
        req.device = self.settings.device;
        req.dtype = self.settings.dtype;
        req.batch = self.settings.batch.max(1);
        req.bootstrap = self.settings.bootstrap;
        Ok(req)
    }

    pub fn is_running(&self) -> bool {
        self.sweep.is_some()
    }

    /// Starts a sweep on a worker thread into a new result folder.
    pub fn start_sweep(&mut self) {
        match self.sweep_request() {
            Ok(r) => self.start_sweep_request(r),
            Err(e) => self.error(e),
        }
    }

    /// Starts `req` on a worker thread (into a fresh folder if `req.out` is taken).
    pub fn start_sweep_request(&mut self, mut req: SweepRequest) {
        if self.sweep.is_some() {
            self.error("a sweep is already running");
            return;
        }
        // Two runs started within one second get distinct folders.
        let mut out = req.out.clone();
        let mut k = 2;
        while out.exists() || self.runs.iter().any(|r| r.dir == out) {
            out = PathBuf::from(format!("{}-{k}", req.out.display()));
            k += 1;
        }
        req.out = out;
        let label = req
            .out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut view = RunView::new(req.out.clone(), label);
        if let Ok(kind) = req.path_kind() {
            view.coordinate = kind.coordinate().to_string();
        }
        self.runs.push(view);
        let id = self.job_id();
        self.job_dirs.push((id, req.out.clone()));
        let points = match &req.checkpoints {
            Some(dir) => format!("the checkpoints of {}", dir.display()),
            None => format!("t = {}", req.t),
        };
        self.log(format!(
            "sweep started: {points} on {:?}, results in {}",
            req.device,
            req.out.display()
        ));
        match jobs::spawn_sweep(&self.sink, id, req) {
            Ok(job) => {
                self.sweep = Some(job);
                self.sweeps_started += 1;
            }
            Err(e) => self.error(format!("could not start a worker thread: {e}")),
        }
    }

    /// Carries out what the Train tab asked for.
    pub fn train_command(&mut self, command: TrainCommand) {
        match command {
            TrainCommand::Start(req) => self.start_training(*req),
            TrainCommand::Cancel => self.cancel_training(),
            TrainCommand::EvaluateCheckpoints { train_dir, base } => {
                let Some(suite) = self.suite.path_buf() else {
                    return self
                        .error("choose a suite (Data, left) to evaluate the checkpoints with");
                };
                let name = train_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "train".into());
                let out = self.runs_dir.join(format!(
                    "{}-{}-checkpoints",
                    timestamp(),
                    export::file_stem(&name)
                ));
                let mut req = SweepRequest::new(base, suite, "", out);
                req.checkpoints = Some(train_dir);
                req.device = self.settings.device;
                req.batch = self.settings.batch.max(1);
                req.bootstrap = self.settings.bootstrap;
                self.start_sweep_request(req);
                self.tab = Tab::Path;
            }
        }
    }

    /// Carries out what the Curve tab asked for.
    pub fn curve_command(&mut self, command: CurveCommand) {
        match command {
            CurveCommand::Fit(req) => self.start_training(*req),
            CurveCommand::Cancel => self.cancel_training(),
            CurveCommand::Open(dir) => self.open_training_folder(&dir),
            CurveCommand::Sweep { curve_dir, base } => {
                let Some(suite) = self.suite.path_buf() else {
                    return self.error("choose a suite (Data, left) to sweep the curve with");
                };
                let out = self.runs_dir.join(format!("{}-curve-sweep", timestamp()));
                let mut req = SweepRequest::new(base, suite, &self.t_spec(), out);
                req.curve = Some(curve_dir);
                req.device = self.settings.device;
                req.dtype = self.settings.dtype;
                req.batch = self.settings.batch.max(1);
                req.bootstrap = self.settings.bootstrap;
                self.start_sweep_request(req);
                self.tab = Tab::Path;
            }
        }
    }

    /// Stops the training job (a training run or a curve fit) after the step in flight.
    fn cancel_training(&mut self) {
        if let Some(job) = &self.train_job {
            job.cancel.cancel();
            let is_curve = job.request.spec.curve.is_some();
            self.train_view(is_curve).status = "stopping after the step in flight...".into();
            self.log("training: stopping after the step in flight");
        }
    }

    /// The view a training job's events go to: the Curve tab's for a curve fit.
    fn train_view(&mut self, is_curve: bool) -> &mut TrainRunView {
        if is_curve {
            &mut self.curve.view
        } else {
            &mut self.train.view
        }
    }

    /// Whether the running training job is a curve fit.
    fn training_is_curve(&self) -> bool {
        self.train_job
            .as_ref()
            .is_some_and(|j| j.request.spec.curve.is_some())
    }

    /// Carries out what the Landscape tab asked for.
    pub fn landscape_command(&mut self, command: LandscapeCommand) {
        match command {
            LandscapeCommand::Start(mut req) => {
                if self.landscape_job.is_some() {
                    return self.error("a landscape is already running");
                }
                let Some(base) = self.base.path_buf() else {
                    return self.error("choose a base model theta0 first (Models, left)");
                };
                let Some(suite) = self.suite.path_buf() else {
                    return self.error("choose a suite (Data, left) to measure at each cell");
                };
                if req.curve.is_none() {
                    match self.endpoint.path_buf() {
                        Some(p) if is_adapter_path(&p) => req.adapter = Some(p),
                        Some(p) => req.target = Some(p),
                        None => {
                            return self
                                .error("choose the endpoint θ_H (Models, left) or a curve folder");
                        }
                    }
                }
                req.base = base;
                req.suite = suite;
                req.device = self.settings.device;
                req.dtype = self.settings.dtype;
                req.batch = self.settings.batch.max(1);
                req.bootstrap = self.settings.bootstrap;
                let mut out = self.runs_dir.join(format!("{}-landscape", timestamp()));
                let mut k = 2;
                while out.exists() {
                    out = self.runs_dir.join(format!("{}-landscape-{k}", timestamp()));
                    k += 1;
                }
                req.out = out;
                let grid =
                    crate::experiments::plane::Grid::parse(&req.grid, &req.range_or_default()).ok();
                self.landscape.on_started(&req.out, grid);
                self.log(format!(
                    "landscape started: {:?} plane, grid {}, results in {}",
                    req.plane,
                    req.grid,
                    req.out.display()
                ));
                let id = self.job_id();
                match jobs::spawn_landscape(&self.sink, id, *req) {
                    Ok(job) => self.landscape_job = Some(job),
                    Err(e) => {
                        self.landscape.on_finished(format!("could not start: {e}"));
                        self.error(format!("could not start a worker thread: {e}"));
                    }
                }
            }
            LandscapeCommand::ExportPng(path) => match self.landscape.png() {
                Some(img) => match export::save_png(&img, &path) {
                    Ok(()) => self.info(format!("saved {}", path.display())),
                    Err(e) => self.error(format!("export failed: {e}")),
                },
                None => self.error("nothing to export: no computed cell of this metric yet"),
            },
            LandscapeCommand::Cancel => {
                if let Some(job) = self.landscape_job.take() {
                    job.cancel.cancel();
                    self.landscape.on_finished(format!(
                        "cancelled; finished cells are saved in {}",
                        job.request.out.display()
                    ));
                    self.log("landscape cancelled");
                    self.detached.push(job.thread);
                }
            }
        }
    }

    /// A training folder in the Train tab, any other result folder in its tab.
    pub fn open_any_folder(&mut self, dir: &Path) {
        if dir.join(StoreLayout::of_dir(dir).log).exists() {
            self.open_training_folder(dir);
        } else {
            self.open_result_folder(dir);
        }
    }

    /// Carries out what the Study tab asked for.
    pub fn study_command(&mut self, command: StudyCommand) {
        match command {
            StudyCommand::Start { study, out } => {
                if self.study_job.is_some() {
                    return self.error("a study is already running");
                }
                let mut study = *study;
                study.file.device = self.settings.device;
                self.study.on_started();
                self.log(format!(
                    "study started: {} into {}",
                    study.file.name,
                    out.display()
                ));
                let id = self.job_id();
                match jobs::spawn_study(&self.sink, id, jobs::StudyRequest { study, out }) {
                    Ok(job) => self.study_job = Some(job),
                    Err(e) => {
                        self.study.on_finished(format!("could not start: {e}"));
                        self.error(format!("could not start a worker thread: {e}"));
                    }
                }
            }
            StudyCommand::Cancel => {
                if let Some(job) = self.study_job.take() {
                    job.cancel.cancel();
                    self.study
                        .on_finished("stopped; Run study resumes it".into());
                    self.log("study cancelled");
                    self.detached.push(job.thread);
                }
            }
            StudyCommand::Open(dirs) => {
                for dir in dirs {
                    self.open_any_folder(&dir);
                }
            }
            StudyCommand::OpenReport(path) => {
                match std::process::Command::new("xdg-open").arg(&path).spawn() {
                    Ok(_) => self.log(format!("opened {} in the browser", path.display())),
                    Err(e) => self.error(format!(
                        "could not start a browser (xdg-open: {e}); open {} yourself",
                        path.display()
                    )),
                }
            }
        }
    }

    /// Carries out what the Influence tab asked for.
    pub fn generate_command(&mut self, command: super::generate_tab::GenerateCommand) {
        use super::generate_tab::GenerateCommand;
        use crate::experiments::generate_job::{GenerateAt, PathEnd};
        match command {
            GenerateCommand::Start(mut req) => {
                if self.generate_job.is_some() {
                    return self.error("a generation is already running");
                }
                let (Some(base), Some(end)) = (self.base.path_buf(), self.endpoint.path_buf())
                else {
                    return self.error("choose a base model and an endpoint first (Models, left)");
                };
                let end = if is_adapter_path(&end) {
                    PathEnd::Adapter(end)
                } else {
                    PathEnd::Target(end)
                };
                if let GenerateAt::Path { t, .. } = &req.at {
                    req.at = GenerateAt::Path {
                        base,
                        end,
                        t: t.clone(),
                    };
                }
                req.device = self.settings.device;
                self.generate.on_started();
                let id = self.job_id();
                match jobs::spawn_generate(&self.sink, id, *req) {
                    Ok(job) => self.generate_job = Some(job),
                    Err(e) => {
                        self.generate.on_finished(format!("could not start: {e}"));
                        self.error(format!("could not start a worker thread: {e}"));
                    }
                }
            }
            GenerateCommand::Cancel => {
                if let Some(job) = self.generate_job.take() {
                    job.cancel.cancel();
                    self.generate.on_finished("cancelled".into());
                    self.log("generate: cancelled");
                    self.detached.push(job.thread);
                }
            }
        }
    }

    pub fn influence_command(&mut self, command: InfluenceCommand) {
        match command {
            InfluenceCommand::Start(mut req) => {
                if self.influence_job.is_some() {
                    return self.error("a ranking is already running");
                }
                let Some(base) = self.base.path_buf() else {
                    return self.error("choose a base model theta0 first (Models, left)");
                };
                if req.train_run.is_none() {
                    match self.endpoint.path_buf() {
                        Some(p) if is_adapter_path(&p) => req.adapter = Some(p),
                        _ => {
                            return self.error(
                                "influence needs the trained LoRA adapter as the endpoint (Models, left) or a training run folder",
                            );
                        }
                    }
                }
                req.base = base;
                req.device = self.settings.device;
                req.out = self.runs_dir.join(format!("{}-influence", timestamp()));
                let mut k = 2;
                while req.out.exists() {
                    req.out = self.runs_dir.join(format!("{}-influence-{k}", timestamp()));
                    k += 1;
                }
                self.influence.on_started(&req.out);
                self.log(format!(
                    "influence started: {:?} on {:?}, results in {}",
                    req.method,
                    req.query,
                    req.out.display()
                ));
                let id = self.job_id();
                match jobs::spawn_influence(&self.sink, id, *req) {
                    Ok(job) => self.influence_job = Some(job),
                    Err(e) => {
                        self.influence.on_finished(format!("could not start: {e}"));
                        self.error(format!("could not start a worker thread: {e}"));
                    }
                }
            }
            InfluenceCommand::Cancel => {
                if let Some(job) = self.influence_job.take() {
                    job.cancel.cancel();
                    self.influence.running = false;
                    self.influence.status = "cancelled".into();
                    self.log("influence cancelled");
                    self.detached.push(job.thread);
                }
            }
        }
    }

    /// Starts a training run on a worker thread (a new folder unless the panel names one; the
    /// same folder resumes).
    pub fn start_training(&mut self, mut req: crate::experiments::train_job::TrainRequest) {
        if self.train_job.is_some() {
            return self.error("a training run is already going");
        }
        if req.out.as_os_str().is_empty() {
            let name = req
                .data
                .file_stem()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "data".into());
            let what = if req.spec.curve.is_some() {
                "curve"
            } else {
                "train"
            };
            req.out = self.runs_dir.join(format!(
                "{}-{what}-{}",
                timestamp(),
                export::file_stem(&name)
            ));
        }
        let id = self.job_id();
        let is_curve = req.spec.curve.is_some();
        self.train_view(is_curve).on_started(&req.out);
        self.log(format!(
            "training started: {} on {}, {:?}; results in {}",
            req.base.display(),
            req.data.display(),
            req.device,
            req.out.display()
        ));
        match jobs::spawn_train(&self.sink, id, req) {
            Ok(job) => self.train_job = Some(job),
            Err(e) => {
                self.train_view(is_curve)
                    .on_finished(format!("could not start: {e}"));
                self.error(format!("could not start a worker thread: {e}"));
            }
        }
    }

    /// Shows a `basin train` folder in the Train tab, a `basin curve fit` folder in the Curve
    /// tab.
    pub fn open_training_folder(&mut self, dir: &Path) {
        let is_curve = StoreLayout::of_dir(dir) == StoreLayout::CURVE_FIT;
        let opened = if is_curve {
            self.curve.open_run(dir)
        } else {
            self.train.open_run(dir)
        };
        match opened {
            Ok(()) => {
                self.remember(dir);
                self.tab = if is_curve { Tab::Curve } else { Tab::Train };
                let what = if is_curve {
                    "curve fit"
                } else {
                    "training run"
                };
                self.log(format!("opened {what} {}", dir.display()));
            }
            Err(e) => self.error(e),
        }
    }

    /// Stops the running sweep: the UI lets go at once; the worker drops the point in flight
    /// after its current batch (finished points are already saved).
    pub fn cancel_sweep(&mut self) {
        if let Some(job) = self.sweep.take() {
            job.abort.cancel();
            let done = self
                .run_of(&job.request.out)
                .map_or(0, |r| r.t_values().len());
            self.log(format!(
                "sweep cancelled after {:.1} s; {done} finished points are saved in {}",
                job.started.elapsed().as_secs_f64(),
                job.request.out.display()
            ));
            self.detached.push(job.thread);
        }
    }

    /// Drains worker events. Called every frame before drawing.
    pub fn poll_jobs(&mut self) {
        while let Ok((id, event)) = self.events.try_recv() {
            self.handle(id, event);
        }
        self.detached.retain(|h| !h.is_finished());
    }

    fn handle(&mut self, id: u64, event: JobEvent) {
        let current_sweep = self.sweep.as_ref().map(|j| j.id) == Some(id);
        match event {
            JobEvent::ModelReport { slot, path, result } => {
                let s = self.slot_mut(slot);
                if s.job != id {
                    return;
                }
                match result {
                    Ok(r) => {
                        s.report = ReportState::Ready(r);
                        self.log(format!("loaded {}", path.display()));
                    }
                    Err(e) => {
                        s.report = ReportState::Failed(e.clone());
                        self.error(e);
                    }
                }
            }
            JobEvent::SuiteReport { path, result } => {
                if self.suite.job != id {
                    return;
                }
                match result {
                    Ok(r) => {
                        self.suite.report = ReportState::Ready(r);
                        self.log(format!("loaded suite {}", path.display()));
                    }
                    Err(e) => {
                        self.suite.report = ReportState::Failed(e.clone());
                        self.error(e);
                    }
                }
            }
            JobEvent::SweepStarted(info) => {
                self.log(format!(
                    "sweep: {} path, {} points x {} metrics, {} sequences per point, on {}",
                    info.path_kind,
                    info.points,
                    info.metrics,
                    info.sequences_per_point,
                    info.device_label
                ));
                if let Some(job) = self.sweep.as_mut().filter(|_| current_sweep) {
                    job.info = Some(info);
                }
            }
            JobEvent::SweepProgress(p) => {
                if let Some(job) = self.sweep.as_mut().filter(|_| current_sweep) {
                    job.progress = Some(p);
                }
            }
            JobEvent::SweepResult(r) => {
                // Saved on disk whether or not the sweep was cancelled since: show it.
                let dir = self
                    .job_dirs
                    .iter()
                    .find(|(j, _)| *j == id)
                    .map(|(_, d)| d.clone());
                if let Some(run) = dir.and_then(|d| self.runs.iter_mut().find(|r| r.dir == d)) {
                    run.push(r);
                }
            }
            JobEvent::SweepFinished(result) => {
                let job = if current_sweep {
                    self.sweep.take()
                } else {
                    None
                };
                match (result, job) {
                    (Ok(outcome), Some(job)) => {
                        let secs = job.started.elapsed().as_secs_f64();
                        self.info(format!(
                            "sweep finished in {secs:.1} s: {} points computed, {} already saved",
                            outcome.computed_points, outcome.skipped_points
                        ));
                        // Pick up run.json (the spec) for the legend and the report.
                        if let Ok(fresh) = RunView::open(&job.request.out)
                            && let Some(run) =
                                self.runs.iter_mut().find(|r| r.dir == job.request.out)
                        {
                            let (label, visible) = (run.label.clone(), run.visible);
                            *run = fresh;
                            run.label = label;
                            run.visible = visible;
                        }
                        self.detached.push(job.thread);
                        self.after_first_job();
                    }
                    (Err(e), Some(job)) => {
                        self.error(format!("sweep failed: {e}"));
                        // A sweep that failed before writing anything leaves no run to show.
                        self.runs
                            .retain(|r| r.dir != job.request.out || !r.results.is_empty());
                        self.detached.push(job.thread);
                    }
                    (Ok(_), None) => self.log("a cancelled sweep's worker finished"),
                    (Err(e), None) => self.log(format!("a cancelled sweep's worker stopped: {e}")),
                }
            }
            JobEvent::TrainStarted(info) => {
                if self.train_job.as_ref().map(|j| j.id) != Some(id) {
                    return;
                }
                let resumed = if info.resumed_at > 0 {
                    format!(", resuming after step {}", info.resumed_at)
                } else {
                    String::new()
                };
                self.log(format!(
                    "training: {} examples, {} LoRA modules ({} parameters), {} steps on {}{resumed}",
                    info.examples,
                    info.modules,
                    info.trainable_parameters,
                    info.total_steps,
                    info.device_label
                ));
                if info.resumed_at > 0
                    && let Some(dir) = self.train_job.as_ref().map(|j| j.request.out.clone())
                {
                    // Show the steps done before this run.
                    let view = self.train_view(self.training_is_curve());
                    let _ = view.open_run(&dir);
                    view.running = true;
                }
            }
            JobEvent::TrainProgress(p) => {
                if self.train_job.as_ref().map(|j| j.id) == Some(id) {
                    self.train_view(self.training_is_curve()).on_progress(p);
                }
            }
            JobEvent::TrainStep(r) => {
                if self.train_job.as_ref().map(|j| j.id) == Some(id) {
                    self.train_view(self.training_is_curve()).on_step(r);
                }
            }
            JobEvent::TrainCheckpoint(name) => {
                if self.train_job.as_ref().map(|j| j.id) == Some(id) {
                    self.train_view(self.training_is_curve()).on_checkpoint();
                    self.log(format!("training: checkpoint {name}"));
                }
            }
            JobEvent::TrainFinished(result) => {
                let Some(job) = self.train_job.take_if(|j| j.id == id) else {
                    return;
                };
                let secs = job.started.elapsed().as_secs_f64();
                let message = match result {
                    Ok(o) if o.cancelled => format!(
                        "stopped after step {}/{} ({secs:.1} s); Start resumes it",
                        o.steps_done, o.total_steps
                    ),
                    Ok(o) => format!(
                        "finished: {} steps ({} now, {secs:.1} s); {} in {}",
                        o.total_steps,
                        o.steps_computed,
                        if job.request.spec.curve.is_some() {
                            "bend"
                        } else {
                            "adapter"
                        },
                        job.request
                            .out
                            .join(StoreLayout::of_dir(&job.request.out).final_dir)
                            .display()
                    ),
                    Err(e) => {
                        self.error(format!("training failed: {e}"));
                        format!("failed: {e}")
                    }
                };
                self.log(format!("training {message}"));
                let is_curve = job.request.spec.curve.is_some();
                self.train_view(is_curve).on_finished(message);
                self.detached.push(job.thread);
                if self.launch.train_on_start {
                    self.after_first_job();
                }
            }
            JobEvent::LandscapeStarted {
                cells,
                device_label,
            } => {
                if self.landscape_job.as_ref().map(|j| j.id) == Some(id) {
                    self.landscape.on_plane_ready(cells);
                    self.log(format!("landscape: {cells} cells on {device_label}"));
                }
            }
            JobEvent::LandscapeProgress(p) => {
                if self.landscape_job.as_ref().map(|j| j.id) == Some(id) {
                    self.landscape.on_progress(p);
                }
            }
            JobEvent::LandscapeResult(r) => {
                if self.landscape_job.as_ref().map(|j| j.id) == Some(id) {
                    self.landscape.on_result(r);
                }
            }
            JobEvent::LandscapeFinished(result) => {
                let Some(job) = self.landscape_job.take_if(|j| j.id == id) else {
                    return;
                };
                let secs = job.started.elapsed().as_secs_f64();
                let message = match result {
                    Ok(o) => format!(
                        "finished: {} cells ({} now, {secs:.1} s); results in {}",
                        o.computed_points + o.skipped_points,
                        o.computed_points,
                        job.request.out.display()
                    ),
                    Err(e) => {
                        self.error(format!("landscape failed: {e}"));
                        format!("failed: {e}")
                    }
                };
                self.log(format!("landscape {message}"));
                self.landscape.on_finished(message);
                self.detached.push(job.thread);
            }
            JobEvent::StudyStep(e) => {
                if self.study_job.as_ref().map(|j| j.id) == Some(id) {
                    if let crate::study::run::StepEventKind::Failed { error } = &e.kind {
                        self.log(format!("study step {} failed: {error}", e.key));
                    }
                    self.study.on_step(&e);
                }
            }
            JobEvent::StudyProgress(key, p) => {
                if self.study_job.as_ref().map(|j| j.id) == Some(id) {
                    self.study.on_progress(&key, p);
                }
            }
            JobEvent::GenerateLines(lines) => {
                if self.generate_job.as_ref().map(|j| j.id) == Some(id) {
                    self.generate.on_lines(lines);
                }
            }
            JobEvent::GenerateProgress(p) => {
                if self.generate_job.as_ref().map(|j| j.id) == Some(id) {
                    self.generate.on_progress(p);
                }
            }
            JobEvent::GenerateFinished(result) => {
                let Some(job) = self.generate_job.take_if(|j| j.id == id) else {
                    return;
                };
                let message = match result {
                    Ok(o) => format!(
                        "{} answers, {} new tokens in {:.2} s on {}",
                        o.lines, o.new_tokens, o.generate_s, o.device_label
                    ),
                    Err(e) => {
                        self.error(format!("generation failed: {e}"));
                        format!("failed: {e}")
                    }
                };
                self.log(format!("generate: {message}"));
                self.generate.on_finished(message);
                self.detached.push(job.thread);
            }
            JobEvent::Waiting(other) => {
                self.info(format!(
                    "waiting for the cancelled job ({other}) to stop before loading another model"
                ));
            }
            JobEvent::StudyFinished(result) => {
                let Some(job) = self.study_job.take_if(|j| j.id == id) else {
                    return;
                };
                let secs = job.started.elapsed().as_secs_f64();
                let message = match result {
                    Ok(o) if o.cancelled => "stopped; Run study resumes it".to_string(),
                    Ok(o) => format!(
                        "finished in {secs:.0} s: {} steps run, {} done earlier; report in {}",
                        o.ran.len(),
                        o.skipped.len(),
                        job.request
                            .out
                            .join(crate::study::report::REPORT_HTML)
                            .display()
                    ),
                    Err(e) => {
                        self.error(format!("study failed: {e}"));
                        format!("failed: {e}")
                    }
                };
                self.log(format!("study {message}"));
                self.study.on_finished(message);
                self.detached.push(job.thread);
            }
            JobEvent::InfluenceProgress(p) => {
                if self.influence_job.as_ref().map(|j| j.id) == Some(id) {
                    self.influence.on_progress(p);
                }
            }
            JobEvent::InfluenceFinished(result) => {
                let Some(job) = self.influence_job.take_if(|j| j.id == id) else {
                    return;
                };
                let secs = job.started.elapsed().as_secs_f64();
                let message = match result {
                    Ok(s) => format!(
                        "finished: {} samples ranked ({secs:.1} s); results in {}",
                        s.samples,
                        job.request.out.display()
                    ),
                    Err(e) => {
                        self.error(format!("influence failed: {e}"));
                        format!("failed: {e}")
                    }
                };
                self.log(format!("influence {message}"));
                self.influence.on_finished(message);
                self.detached.push(job.thread);
            }
            JobEvent::SuiteChecked(result) => {
                if self.suite_check.job != id {
                    return;
                }
                match result {
                    Ok(r) => {
                        let flagged = r
                            .metrics
                            .iter()
                            .filter(|m| m.verdict != "ok" && m.score.is_some())
                            .count();
                        self.log(format!(
                            "suite check: {} metrics, {flagged} flagged",
                            r.metrics.len()
                        ));
                        self.suite_check.report = ReportState::Ready(r);
                    }
                    Err(e) => {
                        self.suite_check.report = ReportState::Failed(e.clone());
                        self.error(format!("suite check failed: {e}"));
                    }
                }
            }
            JobEvent::Exported(result) => {
                match &result {
                    Ok(m) => self.info(m.clone()),
                    Err(e) => self.error(format!("export failed: {e}")),
                }
                self.last_export = Some(result);
            }
        }
    }

    /// When the launch's job ends (the first sweep, or the `--train` run): the frame-time log
    /// and the launch's screenshot.
    fn after_first_job(&mut self) {
        if let Some(log) = &self.frame_log
            && let Err(e) = log.write()
        {
            self.error(format!("frame-time log: {e}"));
        }
        if let Some(path) = self.launch.screenshot.clone()
            && !self.screenshot_taken
        {
            self.screenshot_taken = true;
            self.pending_png.push(PngTarget::Window { path });
        }
    }

    // ----- sessions -----

    pub fn session(&self) -> Session {
        Session {
            schema: SESSION_SCHEMA.to_string(),
            base: self.base.path.clone(),
            endpoint: self.endpoint.path.clone(),
            adapter_b: self.adapter_b.path.clone(),
            suite: self.suite.path.clone(),
            sweep: self.settings.clone(),
            runs: self
                .runs
                .iter()
                .map(|r| SessionRun {
                    dir: r.dir.clone(),
                    label: r.label.clone(),
                    visible: r.visible,
                })
                .collect(),
            delta: self.delta,
        }
    }

    pub fn save_session(&mut self, path: &Path) {
        match self.session().save(path) {
            Ok(()) => {
                self.info(format!("session saved: {}", path.display()));
                self.session_path = path.display().to_string();
                self.remember(path);
            }
            Err(e) => self.error(e),
        }
    }

    pub fn open_session(&mut self, path: &Path) {
        match Session::load(path) {
            Ok(s) => {
                self.apply_session(&s);
                self.session_path = path.display().to_string();
                self.info(format!("session opened: {}", path.display()));
                self.remember(path);
            }
            Err(e) => self.error(e),
        }
    }

    /// Restores inputs and result folders; finished results are read, not recomputed.
    pub fn apply_session(&mut self, s: &Session) {
        if self.sweep.is_some() {
            self.cancel_sweep();
        }
        for (slot, p) in [
            (Slot::Base, &s.base),
            (Slot::Endpoint, &s.endpoint),
            (Slot::AdapterB, &s.adapter_b),
        ] {
            if p.trim().is_empty() {
                *self.slot_mut(slot) = InputSlot::default();
            } else {
                self.set_model_path(slot, Path::new(p));
            }
        }
        if s.suite.trim().is_empty() {
            self.suite = InputSlot::default();
        } else {
            self.set_suite_path(Path::new(&s.suite));
        }
        self.settings = s.sweep.clone();
        self.delta = s.delta;
        self.runs.clear();
        for r in &s.runs {
            match RunView::open(&r.dir) {
                Ok(mut run) => {
                    run.label = r.label.clone();
                    run.visible = r.visible;
                    self.runs.push(run);
                }
                Err(e) => self.error(e),
            }
        }
    }

    // ----- exports -----

    /// Every metric shown in the Path tab, in order.
    pub fn metric_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let ReportState::Ready(s) = &self.suite.report {
            out.extend(s.metrics.iter().map(|m| m.name.clone()));
        }
        for run in &self.runs {
            for m in &run.metric_order {
                if !out.contains(m) && !run.series(m).is_empty() {
                    out.push(m.clone());
                }
            }
        }
        out.retain(|m| self.runs.iter().any(|r| !r.series(m).is_empty()));
        out
    }

    pub fn export_csv(&mut self, metric: &str, path: &Path) {
        let result = export::write_text(path, &export::metric_csv(&self.runs, metric))
            .map(|()| format!("saved {}", path.display()));
        self.handle(0, JobEvent::Exported(result));
    }

    /// Queues a PNG export; it is written from the next frame's screenshot.
    pub fn export_png(&mut self, metric: &str, path: &Path) {
        self.pending_png.push(PngTarget::Plot {
            metric: metric.to_string(),
            path: path.to_path_buf(),
        });
        self.ctx.request_repaint();
    }

    /// Writes the HTML report, drawn from the data (not from the screen).
    pub fn export_report(&mut self, dir: &Path) {
        let landscape = self.landscape.report_section();
        let result =
            export::write_report(dir, &self.runs, &self.metric_names(), landscape.as_ref());
        self.handle(0, JobEvent::Exported(result));
    }

    pub fn save_window_png(&mut self, path: &Path) {
        self.pending_png.push(PngTarget::Window {
            path: path.to_path_buf(),
        });
        self.ctx.request_repaint();
    }

    /// Sends one screenshot request for every queued PNG export (after this frame's plots are
    /// laid out, so the crops match what is on screen).
    fn request_screenshots(&mut self, ctx: &egui::Context) {
        if self.pending_png.is_empty() {
            return;
        }
        // A plot's PNG is cropped from the screen, so its plot must be on it, whole: show the
        // Path tab (which scrolls to a plot waiting for export) and wait a few frames.
        let waiting: Vec<String> = self
            .pending_png
            .iter()
            .filter_map(|t| match t {
                PngTarget::Plot { metric, .. }
                    if !self
                        .plot_geometry
                        .iter()
                        .any(|g| &g.metric == metric && g.visible) =>
                {
                    Some(metric.clone())
                }
                _ => None,
            })
            .collect();
        if !waiting.is_empty() {
            if self.png_wait_frames < 10 {
                self.png_wait_frames += 1;
                self.tab = Tab::Path;
                ctx.request_repaint();
                return;
            }
            self.pending_png.retain(|t| match t {
                PngTarget::Plot { metric, .. } => !waiting.contains(metric),
                _ => true,
            });
            self.error(format!(
                "PNG export: no plot of {} could be brought on screen",
                waiting.join(", ")
            ));
        }
        self.png_wait_frames = 0;
        if self.pending_png.is_empty() {
            return;
        }
        let targets = std::mem::take(&mut self.pending_png);
        self.screenshot_geometry = self.plot_geometry.clone();
        let rects: Vec<(String, Rect)> = self
            .plot_geometry
            .iter()
            .map(|g| (g.metric.clone(), g.rect))
            .collect();
        let ppp = ctx.pixels_per_point();
        let sink = self.sink.clone();
        let quit = self.launch.quit_when_done
            && targets
                .iter()
                .any(|t| matches!(t, PngTarget::Window { .. }))
            && self.screenshot_taken;
        let ctx2 = ctx.clone();
        let callback = egui::ScreenshotCallback::new(move |image| {
            for t in &targets {
                sink.send(
                    0,
                    JobEvent::Exported(export::fulfil(t, &image, &rects, ppp)),
                );
            }
            if quit {
                ctx2.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        });
        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
    }

    // ----- frame -----

    fn bottom_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let mut cancel = false;
            if let Some(job) = &self.sweep {
                let eta = job
                    .eta_s()
                    .map(|s| format!(" · ETA {s:.0} s"))
                    .unwrap_or_default();
                let stage = job
                    .progress
                    .as_ref()
                    .map(|p| p.stage.clone())
                    .unwrap_or_else(|| "loading the model...".into());
                ui.label("Sweep:");
                ui.add(
                    egui::ProgressBar::new(job.fraction())
                        .desired_width(320.0)
                        .show_percentage()
                        .animate(true),
                );
                ui.label(format!(
                    "{stage} · {:.0} s{eta}",
                    job.started.elapsed().as_secs_f64()
                ));
                cancel = ui.button("Cancel").clicked();
                // Keep the elapsed time and ETA moving.
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(250));
            } else {
                ui.label("Idle");
                if let Some(e) = self.log.last() {
                    ui.weak(&e.text);
                }
            }
            if cancel {
                self.cancel_sweep();
            }
        });
    }

    fn messages_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, m) in self.messages.iter().enumerate().rev().take(4) {
            let color = match m.level {
                MessageLevel::Error => ui.visuals().error_fg_color,
                MessageLevel::Info => ui.visuals().text_color(),
            };
            ui.horizontal(|ui| {
                if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
                ui.colored_label(color, &m.text);
            });
        }
        if let Some(i) = dismiss {
            self.messages.remove(i);
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        // The File menu's dialogs: asked when clicked, answered (maybe on a later frame, when the
        // menu is closed) below the menu.
        let mut clicked: Option<MenuFile> = None;
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open session...").clicked() {
                    clicked = Some(MenuFile::OpenSession);
                }
                if ui.button("Save session...").clicked() {
                    clicked = Some(MenuFile::SaveSession);
                }
                if ui.button("Open result folder...").clicked() {
                    clicked = Some(MenuFile::OpenFolder);
                }
                ui.separator();
                if ui.button("Export report...").clicked() {
                    clicked = Some(MenuFile::ExportReport);
                }
                if ui.button("Save window as PNG...").clicked() {
                    clicked = Some(MenuFile::SavePng);
                }
                if !self.recent.is_empty() {
                    ui.separator();
                    ui.label("Recent");
                    let mut open = None;
                    for p in &self.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            open = Some(p.clone());
                        }
                    }
                    if let Some(p) = open {
                        if p.extension().is_some_and(|e| e == "json") {
                            self.open_session(&p);
                        } else if p.join("results.jsonl").exists() {
                            self.open_result_folder(&p);
                        } else if p.extension().is_some_and(|e| e == "toml") {
                            self.set_suite_path(&p);
                        }
                    }
                }
            });
            ui.menu_button("Help", |ui| {
                if ui.button("Open demo").clicked() {
                    self.open_demo();
                }
                ui.label(format!("Basin {}", env!("CARGO_PKG_VERSION")));
            });
        });
        self.menu_files(ui.ctx(), clicked);
    }

    /// Asks and answers the File menu's dialogs (every frame: answers may come later).
    fn menu_files(&mut self, ctx: &egui::Context, clicked: Option<MenuFile>) {
        let ask = |which: MenuFile, request: fn() -> FileRequest| {
            file_dialog::ask(ctx, ("menu", which), (clicked == Some(which)).then(request))
        };
        if let Some(p) = ask(MenuFile::OpenSession, || {
            FileRequest::file().filter("Basin session", &["json"])
        }) {
            self.open_session(&p);
        }
        if let Some(p) = ask(MenuFile::SaveSession, || {
            FileRequest::save("session.json").filter("Basin session", &["json"])
        }) {
            self.save_session(&p);
        }
        if let Some(p) = ask(MenuFile::OpenFolder, FileRequest::folder) {
            self.open_any_folder(&p);
        }
        if let Some(p) = ask(MenuFile::ExportReport, FileRequest::folder) {
            self.export_report(&p);
        }
        if let Some(p) = ask(MenuFile::SavePng, || {
            FileRequest::save("basin.png").filter("PNG", &["png"])
        }) {
            self.save_window_png(&p);
        }
    }
}

/// The File menu's entries that open a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MenuFile {
    OpenSession,
    SaveSession,
    OpenFolder,
    ExportReport,
    SavePng,
}

impl eframe::App for BasinApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.poll_jobs();
        let running = self.sweep.is_some()
            || self.train_job.is_some()
            || self.landscape_job.is_some()
            || self.influence_job.is_some()
            || self.study_job.is_some()
            || self.generate_job.is_some();
        if let Some(log) = &mut self.frame_log {
            log.record(frame.info().cpu_usage, running);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.bottom_bar_ui(ui));
        egui::Panel::left("inputs")
            .default_size(330.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    super::models_panel::inputs_ui(self, ui);
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            self.messages_ui(ui);
            ui.horizontal(|ui| {
                let running = self.sweep.is_some();
                if ui
                    .add_enabled(!running, egui::Button::new("Run sweep"))
                    .on_hover_text(format!(
                        "Walk t = {} with the settings on the left",
                        self.t_spec()
                    ))
                    .clicked()
                {
                    self.start_sweep();
                }
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Path, "Path");
                ui.selectable_value(&mut self.tab, Tab::Items, "Items");
                ui.selectable_value(&mut self.tab, Tab::Train, "Train");
                ui.selectable_value(&mut self.tab, Tab::Curve, "Curve");
                ui.selectable_value(&mut self.tab, Tab::Landscape, "Landscape");
                ui.selectable_value(&mut self.tab, Tab::Influence, "Influence");
                ui.selectable_value(&mut self.tab, Tab::Generate, "Generate");
                ui.selectable_value(&mut self.tab, Tab::Study, "Study");
                ui.selectable_value(&mut self.tab, Tab::Log, "Log");
            });
            ui.separator();
            // Each frame's plots record where they were drawn; none outside the Path tab.
            self.plot_geometry.clear();
            match self.tab {
                Tab::Path => super::path_tab::path_tab_ui(self, ui),
                Tab::Items => super::items_tab::items_tab_ui(self, ui),
                Tab::Train => {
                    let suite_ready = matches!(self.suite.report, ReportState::Ready(_));
                    for command in self.train.ui(ui, suite_ready) {
                        self.train_command(command);
                    }
                }
                Tab::Curve => {
                    let suite_ready = matches!(self.suite.report, ReportState::Ready(_));
                    let (base, endpoint) = (self.base.path_buf(), self.endpoint.path_buf());
                    for command in self.curve.ui(ui, base, endpoint, suite_ready) {
                        self.curve_command(command);
                    }
                }
                Tab::Landscape => {
                    let ready = self.base.path_buf().is_some() && self.suite.path_buf().is_some();
                    for command in self.landscape.ui(ui, ready) {
                        self.landscape_command(command);
                    }
                }
                Tab::Influence => {
                    let metrics = match &self.suite.report {
                        ReportState::Ready(r) => r.metrics.iter().map(|m| m.name.clone()).collect(),
                        _ => Vec::new(),
                    };
                    let suite = self.suite.path_buf();
                    let ready = self.base.path_buf().is_some() && suite.is_some();
                    for command in self.influence.ui(ui, &metrics, suite, ready) {
                        self.influence_command(command);
                    }
                }
                Tab::Study => {
                    for command in self.study.ui(ui) {
                        self.study_command(command);
                    }
                }
                Tab::Generate => {
                    let ready =
                        self.base.path_buf().is_some() && self.endpoint.path_buf().is_some();
                    let suite = match &self.suite.report {
                        ReportState::Ready(r) => Some(r.suite.clone()),
                        _ => None,
                    };
                    let mut swept: Vec<f64> = self.runs.iter().flat_map(|r| r.t_values()).collect();
                    swept.sort_by(f64::total_cmp);
                    swept.dedup_by(|a, b| a.to_bits() == b.to_bits());
                    for command in self.generate.ui(ui, suite.as_deref(), &swept, ready) {
                        self.generate_command(command);
                    }
                }
                Tab::Log => log_tab_ui(self, ui),
            }
        });
        let ctx = ui.ctx().clone();
        file_dialog::show(&ctx);
        self.request_screenshots(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        let p = Persisted {
            last_session: Some(self.session()),
            recent_files: self.recent.clone(),
        };
        eframe::set_value(storage, STORAGE_KEY, &p);
    }

    fn on_exit(&mut self) {
        if let Some(job) = &self.sweep {
            job.abort.cancel();
        }
        if let Some(job) = &self.train_job {
            job.cancel.cancel();
        }
        if let Some(job) = &self.landscape_job {
            job.cancel.cancel();
        }
        if let Some(job) = &self.influence_job {
            job.cancel.cancel();
        }
        if let Some(job) = &self.study_job {
            job.cancel.cancel();
        }
        if let Some(job) = &self.generate_job {
            job.cancel.cancel();
        }
        if let Some(log) = &self.frame_log
            && let Err(e) = log.write()
        {
            eprintln!("frame-time log: {e}");
        }
    }
}

fn log_tab_ui(app: &mut BasinApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .show(ui, |ui| {
            for e in &app.log {
                ui.monospace(format!("{:>8.2} s  {}", e.at_s, e.text));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a home, runs go to a new private folder each time, never a fixed shared path.
    #[test]
    fn the_fallback_runs_folder_is_new_and_private() {
        let (a, b) = (private_temp_dir(), private_temp_dir());
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        let _ = (std::fs::remove_dir(&a), std::fs::remove_dir(&b));
    }
}
