//! Experiments: pure functions (inputs, spec, progress, cancel) → typed, versioned results.

pub mod bootstrap;
pub mod control_point;
pub mod curve;
pub mod eval;
pub mod fingerprint;
pub mod generate;
pub mod generate_job;
pub mod grad_sketch;
pub mod influence;
pub mod influence_job;
pub mod inputs;
pub mod job;
pub mod landscape_job;
pub mod metrics;
pub mod optim;
pub mod path;
pub mod plane;
pub mod suite;
pub mod suite_check;
pub mod sweep;
pub mod sweep_job;
pub mod sweep_store;
pub mod train;
pub mod train_job;
pub mod train_store;
