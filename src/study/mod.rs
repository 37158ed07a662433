//! The seed experiment end to end (`basin study run`): a study file names the base model, the
//! generator settings, the training recipe and the analyses; the runner chains the existing
//! jobs into one resumable run per training set (original, symmetrized) and the report answers
//! the study's questions from their results.

pub mod report;
pub mod run;
pub mod spec;
pub mod svg;

pub use run::{Selection, Step, StudyHooks, run_study};
pub use spec::Study;
