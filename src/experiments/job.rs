//! What every experiment takes besides its inputs: a progress callback and a cancel flag.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// How far a job has come, in its own units (examples, points, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// What is being done now, e.g. `evaluating`.
    pub stage: String,
}

/// Cheap to clone; set from any thread (Ctrl-C handler, GUI Cancel button).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
