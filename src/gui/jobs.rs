//! Worker-thread jobs. Each job sends [`JobEvent`]s through one channel and asks egui for a
//! repaint; the UI thread drains the channel every frame, so it never waits on model work.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::experiments::{
    influence_job::{InfluenceRequest, InfluenceSummary, run_influence_job},
    job::{CancelFlag, Progress},
    landscape_job::{LandscapeRequest, LandscapeStart, run_landscape_job},
    metrics::MetricResult,
    suite_check::{SuiteCheckReport, SuiteCheckRequest, run_suite_check},
    sweep::{SweepHooks, SweepOutcome},
    sweep_job::{SweepRequest, run_sweep_job},
    train::{TrainHooks, TrainOutcome},
    train_job::{TrainRequest, TrainStart, run_train_job},
    train_store::StepRecord,
};

use super::{
    error_text,
    reports::{ModelReport, SuiteReport, endpoint_report, model_report, suite_report},
};

/// Which input a model report is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Base,
    Endpoint,
    AdapterB,
}

#[derive(Debug, Clone)]
pub struct SweepStartInfo {
    pub path_kind: String,
    pub points: usize,
    pub metrics: usize,
    pub sequences_per_point: usize,
    pub device_label: String,
}

pub enum JobEvent {
    ModelReport {
        slot: Slot,
        path: PathBuf,
        result: Result<ModelReport, String>,
    },
    SuiteReport {
        path: PathBuf,
        result: Result<SuiteReport, String>,
    },
    SweepStarted(SweepStartInfo),
    SweepProgress(Progress),
    SweepResult(MetricResult),
    SweepFinished(Result<SweepOutcome, String>),
    /// An export finished (message for the log) or failed.
    Exported(Result<String, String>),
    TrainStarted(TrainStartInfo),
    TrainProgress(Progress),
    TrainStep(StepRecord),
    /// A checkpoint folder was written (its name).
    TrainCheckpoint(String),
    TrainFinished(Result<TrainOutcome, String>),
    /// A suite check (Data panel) finished.
    SuiteChecked(Result<SuiteCheckReport, String>),
    /// A landscape's plane is written and its model loaded: this many cells to go.
    LandscapeStarted {
        cells: usize,
        device_label: String,
    },
    LandscapeProgress(Progress),
    LandscapeResult(MetricResult),
    LandscapeFinished(Result<SweepOutcome, String>),
    InfluenceProgress(Progress),
    InfluenceFinished(Result<InfluenceSummary, String>),
    /// A study step started, finished, failed or was skipped.
    StudyStep(crate::study::run::StepEvent),
    /// The running study step's progress (its key).
    StudyProgress(String, Progress),
    StudyFinished(Result<crate::study::run::StudyOutcome, String>),
    /// The job waits for a cancelled job (named) to let go of its model before loading its own.
    Waiting(String),
    /// Answers of a generation job, a batch at a time.
    GenerateLines(Vec<crate::experiments::generate::Generated>),
    GenerateProgress(Progress),
    GenerateFinished(Result<crate::experiments::generate_job::GenerateOutcome, String>),
}

#[derive(Debug, Clone)]
pub struct TrainStartInfo {
    pub examples: usize,
    pub modules: usize,
    pub trainable_parameters: usize,
    pub total_steps: usize,
    pub resumed_at: usize,
    pub device_label: String,
}

/// Runs a job's body, turning a panic (a bug, a device failure deep in a backend) into an
/// error, so every job ends with a finished event and the app never shows "running" forever.
pub fn run_guarded<T>(body: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("the worker crashed: {msg}"))
        }
    }
}

/// Events tagged with the job they come from.
pub type Tagged = (u64, JobEvent);

/// The channel every job writes to, the context to wake, and the app's running workers.
#[derive(Clone)]
pub struct JobSink {
    tx: Sender<Tagged>,
    ctx: eframe::egui::Context,
    live: Arc<Mutex<Vec<LiveWorker>>>,
}

/// A worker between its start and its end (a cancelled one too, until its thread lets go).
#[derive(Clone)]
struct LiveWorker {
    id: u64,
    name: String,
    cancel: CancelFlag,
}

/// Takes a worker off the live list when it ends, however it ends.
struct LiveGuard {
    live: Arc<Mutex<Vec<LiveWorker>>>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|w| w.id != self.id);
    }
}

impl JobSink {
    pub fn new(ctx: eframe::egui::Context) -> (Self, Receiver<Tagged>) {
        let (tx, rx) = channel();
        let live = Arc::new(Mutex::new(Vec::new()));
        (Self { tx, ctx, live }, rx)
    }

    /// Waits while a cancelled worker of this app is still running (it may hold a model, or be
    /// loading one: Cancel lets the UI go on at once, but two models must never be in memory
    /// together), then puts this worker on the live list until the returned guard drops. Says
    /// once what it waits for; stops waiting when this worker is cancelled too.
    fn enter(&self, id: u64, name: &str, cancel: &CancelFlag) -> LiveGuard {
        let mut told = false;
        loop {
            let blocking = {
                let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
                live.iter()
                    .find(|w| w.id != id && w.cancel.is_cancelled())
                    .map(|w| w.name.clone())
            };
            match blocking {
                Some(other) if !cancel.is_cancelled() => {
                    if !told {
                        self.send(id, JobEvent::Waiting(other));
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.push(LiveWorker {
            id,
            name: name.to_string(),
            cancel: cancel.clone(),
        });
        LiveGuard {
            live: self.live.clone(),
            id,
        }
    }

    pub fn send(&self, job: u64, event: JobEvent) {
        // A closed channel means the app is gone; nothing is waiting for the event.
        let _ = self.tx.send((job, event));
        self.ctx.request_repaint();
    }
}

/// A long job on a worker thread: its request, the flag that stops it, and its thread.
pub struct Worker<R> {
    pub id: u64,
    pub request: R,
    /// Stops the job at its next safe point (finished work is already saved).
    pub cancel: CancelFlag,
    pub started: Instant,
    pub thread: JoinHandle<()>,
}

/// Runs `body` on a worker thread named `name`, with a fresh cancel flag, and sends
/// `finished(result)` when it ends; a panic in `body` becomes an error result
/// ([`run_guarded`]), so every job ends with its finished event. The one mechanism behind every
/// long job the app runs.
fn spawn_worker<R, T>(
    sink: &JobSink,
    id: u64,
    name: &str,
    request: R,
    body: impl FnOnce(&JobSink, &R, &CancelFlag) -> Result<T, String> + Send + 'static,
    finished: impl FnOnce(Result<T, String>) -> JobEvent + Send + 'static,
) -> std::io::Result<Worker<R>>
where
    R: Clone + Send + 'static,
{
    let cancel = CancelFlag::new();
    let thread = {
        let sink = sink.clone();
        let cancel = cancel.clone();
        let request = request.clone();
        let name = name.to_string();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let live = sink.enter(id, &name, &cancel);
                let result = run_guarded(|| body(&sink, &request, &cancel));
                drop(live);
                sink.send(id, finished(result));
            })?
    };
    Ok(Worker {
        id,
        request,
        cancel,
        started: Instant::now(),
        thread,
    })
}

/// Builds a model report off the UI thread.
pub fn spawn_model_report(
    sink: &JobSink,
    job: u64,
    slot: Slot,
    path: PathBuf,
    base: Option<PathBuf>,
) -> std::io::Result<JoinHandle<()>> {
    let sink = sink.clone();
    std::thread::Builder::new()
        .name("basin-report".into())
        .spawn(move || {
            // A reader that panics on some file still answers: the slot shows the error.
            let result = run_guarded(|| match slot {
                Slot::Base => model_report(&path),
                Slot::Endpoint | Slot::AdapterB => endpoint_report(&path, base.as_deref()),
            });
            sink.send(job, JobEvent::ModelReport { slot, path, result });
        })
}

pub fn spawn_suite_report(
    sink: &JobSink,
    job: u64,
    path: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    let sink = sink.clone();
    std::thread::Builder::new()
        .name("basin-suite".into())
        .spawn(move || {
            let result = run_guarded(|| suite_report(&path));
            sink.send(job, JobEvent::SuiteReport { path, result });
        })
}

/// A sweep running on a worker thread.
pub struct SweepJob {
    pub id: u64,
    /// Its result folder is `request.out` (the run it fills is found by that folder).
    pub request: SweepRequest,
    pub abort: CancelFlag,
    pub started: Instant,
    pub progress: Option<Progress>,
    pub info: Option<SweepStartInfo>,
    pub thread: JoinHandle<()>,
}

impl SweepJob {
    /// Seconds left, from the rate so far.
    pub fn eta_s(&self) -> Option<f64> {
        let p = self.progress.as_ref()?;
        if p.done == 0 || p.total <= p.done {
            return None;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        Some(elapsed * (p.total - p.done) as f64 / p.done as f64)
    }

    pub fn fraction(&self) -> f32 {
        match &self.progress {
            Some(p) if p.total > 0 => p.done as f32 / p.total as f32,
            _ => 0.0,
        }
    }
}

pub fn spawn_sweep(sink: &JobSink, id: u64, request: SweepRequest) -> std::io::Result<SweepJob> {
    let worker = spawn_worker(
        sink,
        id,
        "basin-sweep",
        request,
        move |sink, request, cancel| {
            let never = CancelFlag::new();
            let hooks = SweepHooks {
                progress: &|p| sink.send(id, JobEvent::SweepProgress(p)),
                on_result: &|r| sink.send(id, JobEvent::SweepResult(r.clone())),
                stop_after_point: &never,
                abort: cancel,
            };
            let on_start = |s: &crate::experiments::sweep_job::SweepStart| {
                sink.send(
                    id,
                    JobEvent::SweepStarted(SweepStartInfo {
                        path_kind: s.path.as_str().to_string(),
                        points: s.points,
                        metrics: s.metrics,
                        sequences_per_point: s.sequences_per_point,
                        device_label: s.device_label.clone(),
                    }),
                )
            };
            run_sweep_job(request, &hooks, &on_start).map_err(|e| error_text(&e))
        },
        JobEvent::SweepFinished,
    )?;
    Ok(SweepJob {
        id: worker.id,
        request: worker.request,
        abort: worker.cancel,
        started: worker.started,
        progress: None,
        info: None,
        thread: worker.thread,
    })
}

/// A landscape slice on a worker thread (cancel: drop the batch in flight; finished cells are
/// saved).
pub type LandscapeJob = Worker<LandscapeRequest>;

pub fn spawn_landscape(
    sink: &JobSink,
    id: u64,
    request: LandscapeRequest,
) -> std::io::Result<LandscapeJob> {
    spawn_worker(
        sink,
        id,
        "basin-landscape",
        request,
        move |sink, request, cancel| {
            let never = CancelFlag::new();
            let hooks = SweepHooks {
                progress: &|p| sink.send(id, JobEvent::LandscapeProgress(p)),
                on_result: &|r| sink.send(id, JobEvent::LandscapeResult(r.clone())),
                stop_after_point: &never,
                abort: cancel,
            };
            let on_start = |s: &LandscapeStart| {
                sink.send(
                    id,
                    JobEvent::LandscapeStarted {
                        cells: s.cells,
                        device_label: s.device_label.clone(),
                    },
                )
            };
            run_landscape_job(request, &hooks, &on_start).map_err(|e| error_text(&e))
        },
        JobEvent::LandscapeFinished,
    )
}

/// An influence ranking on a worker thread (cancel: stop between samples; nothing is written
/// for a cancelled ranking).
pub type InfluenceJob = Worker<InfluenceRequest>;

pub fn spawn_influence(
    sink: &JobSink,
    id: u64,
    request: InfluenceRequest,
) -> std::io::Result<InfluenceJob> {
    spawn_worker(
        sink,
        id,
        "basin-influence",
        request,
        move |sink, request, cancel| {
            run_influence_job(
                request,
                &|p| sink.send(id, JobEvent::InfluenceProgress(p)),
                cancel,
            )
            .map_err(|e| error_text(&e))
        },
        JobEvent::InfluenceFinished,
    )
}

/// A generation on a worker thread (`basin generate`'s job; cancel: stop before the next token).
pub type GenerateJob = Worker<crate::experiments::generate_job::GenerateRequest>;

pub fn spawn_generate(
    sink: &JobSink,
    id: u64,
    request: crate::experiments::generate_job::GenerateRequest,
) -> std::io::Result<GenerateJob> {
    spawn_worker(
        sink,
        id,
        "basin-generate",
        request,
        move |sink, request, cancel| {
            crate::experiments::generate_job::run_generate_job(
                request,
                &mut |lines| {
                    sink.send(id, JobEvent::GenerateLines(lines.to_vec()));
                    Ok(())
                },
                &|p| sink.send(id, JobEvent::GenerateProgress(p)),
                cancel,
            )
            .map_err(|e| error_text(&e))
        },
        JobEvent::GenerateFinished,
    )
}

/// Checks the suite at a model off the UI thread (`basin suite check`'s code).
pub fn spawn_suite_check(
    sink: &JobSink,
    job: u64,
    request: SuiteCheckRequest,
) -> std::io::Result<JoinHandle<()>> {
    let sink = sink.clone();
    std::thread::Builder::new()
        .name("basin-suite-check".into())
        .spawn(move || {
            let result = run_guarded(|| {
                run_suite_check(&request, &|_| {}, &CancelFlag::new()).map_err(|e| error_text(&e))
            });
            sink.send(job, JobEvent::SuiteChecked(result));
        })
}

/// A training run on a worker thread (cancel: stop after the step in flight; the state is
/// saved for a resume).
pub type TrainJob = Worker<TrainRequest>;

pub fn spawn_train(sink: &JobSink, id: u64, request: TrainRequest) -> std::io::Result<TrainJob> {
    spawn_worker(
        sink,
        id,
        "basin-train",
        request,
        move |sink, request, cancel| {
            let hooks = TrainHooks {
                progress: &|p| sink.send(id, JobEvent::TrainProgress(p)),
                on_step: &|r| sink.send(id, JobEvent::TrainStep(r.clone())),
                on_checkpoint: &|name| sink.send(id, JobEvent::TrainCheckpoint(name.to_string())),
                cancel,
            };
            let on_start = |s: &TrainStart| {
                sink.send(
                    id,
                    JobEvent::TrainStarted(TrainStartInfo {
                        examples: s.examples,
                        modules: s.modules,
                        trainable_parameters: s.trainable_parameters,
                        total_steps: s.total_steps,
                        resumed_at: s.resumed_at,
                        device_label: s.device_label.clone(),
                    }),
                )
            };
            run_train_job(request, &hooks, &on_start).map_err(|e| error_text(&e))
        },
        JobEvent::TrainFinished,
    )
}

/// A study (`basin study run`) and its folder.
#[derive(Debug, Clone)]
pub struct StudyRequest {
    pub study: crate::study::Study,
    pub out: PathBuf,
}

/// A study on a worker thread (cancel: stop after the work in flight; a rerun resumes).
pub type StudyJob = Worker<StudyRequest>;

pub fn spawn_study(sink: &JobSink, id: u64, request: StudyRequest) -> std::io::Result<StudyJob> {
    spawn_worker(
        sink,
        id,
        "basin-study",
        request,
        move |sink, request, cancel| {
            let hooks = crate::study::StudyHooks {
                on_step: &|e| sink.send(id, JobEvent::StudyStep(e.clone())),
                progress: &|key, p| sink.send(id, JobEvent::StudyProgress(key.to_string(), p)),
                cancel,
            };
            crate::study::run_study(
                &request.study,
                &request.out,
                &crate::study::Selection::default(),
                &hooks,
            )
            .map_err(|e| error_text(&e))
        },
        JobEvent::StudyFinished,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_ends_with_its_message() {
        let r: Result<(), String> = run_guarded(|| panic!("device lost"));
        assert_eq!(r, Err("the worker crashed: device lost".into()));
        let r: Result<u8, String> = run_guarded(|| panic!("{}", String::from("owned")));
        assert!(r.unwrap_err().contains("owned"));
        assert_eq!(run_guarded(|| Ok::<_, String>(3)), Ok(3));
    }

    /// The app's one worker mechanism: a body that panics still ends its job, with the panic's
    /// message as the job's error, and the next job of the same kind is not held back.
    #[test]
    fn a_worker_that_panics_sends_its_end_with_the_message() {
        let (sink, events) = JobSink::new(eframe::egui::Context::default());
        let crashing = spawn_worker(
            &sink,
            5,
            "basin-landscape",
            (),
            |_: &JobSink, _: &(), _: &CancelFlag| -> Result<(), String> {
                panic!("wgpu: out of memory")
            },
            |r: Result<(), String>| JobEvent::Exported(r.map(|_| "done".into())),
        )
        .unwrap();
        assert!(
            crashing.thread.join().is_ok(),
            "the panic stays inside the job"
        );
        let (id, event) = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id, 5);
        let JobEvent::Exported(Err(e)) = event else {
            panic!("the crashed job's end should be an error")
        };
        assert_eq!(e, "the worker crashed: wgpu: out of memory");
        let next = spawn_worker(
            &sink,
            6,
            "basin-landscape",
            (),
            |_: &JobSink, _: &(), _: &CancelFlag| Ok(()),
            |r: Result<(), String>| JobEvent::Exported(r.map(|_| "done".into())),
        )
        .unwrap();
        next.thread.join().unwrap();
        let (id, event) = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id, 6);
        assert!(matches!(event, JobEvent::Exported(Ok(_))));
    }

    /// Cancel, then Run again at once: the second job waits (and says so) until the cancelled
    /// one has let go, so two models are never loaded side by side.
    #[test]
    fn a_new_job_waits_for_a_cancelled_one_to_end() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let (sink, events) = JobSink::new(eframe::egui::Context::default());
        let release = Arc::new(AtomicBool::new(false));
        let loaded = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // A "model load" that holds memory until released.
        let job = |release: Arc<AtomicBool>, loaded: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            move |_: &JobSink, _: &(), _: &CancelFlag| {
                let now = loaded.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                loaded.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        };
        let first = spawn_worker(
            &sink,
            1,
            "basin-sweep",
            (),
            job(release.clone(), loaded.clone(), most.clone()),
            |_| JobEvent::Exported(Ok("first".into())),
        )
        .unwrap();
        while loaded.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        first.cancel.cancel();
        let second = spawn_worker(
            &sink,
            2,
            "basin-sweep",
            (),
            job(release.clone(), loaded.clone(), most.clone()),
            |_| JobEvent::Exported(Ok("second".into())),
        )
        .unwrap();
        // The second says what it waits for, and has not started.
        let (id, event) = events.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id, 2);
        assert!(matches!(&event, JobEvent::Waiting(n) if n == "basin-sweep"));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            loaded.load(Ordering::SeqCst),
            1,
            "the second did not start loading"
        );
        release.store(true, Ordering::SeqCst);
        first.thread.join().unwrap();
        second.thread.join().unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two models at once");
        let ends: Vec<u64> = events.try_iter().map(|(id, _)| id).collect();
        assert_eq!(ends, [1, 2]);
        // A job that is not cancelled does not hold others back.
        let (sink, _events) = JobSink::new(eframe::egui::Context::default());
        let busy = CancelFlag::new();
        let _guard = sink.enter(7, "basin-train", &busy);
        let started = Instant::now();
        drop(sink.enter(8, "basin-sweep", &CancelFlag::new()));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
