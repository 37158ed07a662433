//! Experiments: pure functions (inputs, spec, progress, cancel) → typed, versioned results.

pub mod eval;
pub mod inputs;
pub mod job;
pub mod path;
