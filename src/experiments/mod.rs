//! Experiments: pure functions (inputs, spec, progress, cancel) → typed, versioned results.

pub mod bootstrap;
pub mod eval;
pub mod inputs;
pub mod job;
pub mod metrics;
pub mod path;
pub mod suite;
pub mod sweep;
pub mod sweep_job;
pub mod sweep_store;
