//! Errors raised while building a model from named tensors.

use std::path::PathBuf;

use crate::checkpoint::error::CheckpointError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{}: missing weight `{name}` (needed by the {arch} architecture)", origin.display())]
    MissingWeight {
        origin: PathBuf,
        name: String,
        arch: String,
    },
    #[error("{}: weight `{name}` has shape {got:?}, the config implies {expected:?}", origin.display())]
    Shape {
        origin: PathBuf,
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{}: {msg}", origin.display())]
    Adapter { origin: PathBuf, msg: String },
    #[error("invalid model configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Input(String),
    #[error("the {device} device failed: {msg}")]
    Device { device: String, msg: String },
    /// The caller asked loading to stop (a cancelled job); nothing was built.
    #[error("cancelled while loading the model")]
    Cancelled,
}
