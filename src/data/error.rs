//! Errors of the data module: every message names the file (or asset) and the line at fault.

use std::path::PathBuf;

/// Anything that can go wrong while loading banks, generating data or importing SoRH.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A line of a bundled or user-supplied JSONL file did not parse.
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// A CSV record is malformed (unterminated quote, wrong field count, missing column).
    #[error("{}:{line}: {message}", file.display())]
    Csv {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Serialising an output record failed.
    #[error("{}: cannot serialise record: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The request cannot be satisfied (bad flip probability, too few tasks for the split, ...).
    #[error("invalid data spec: {0}")]
    Spec(String),
    /// A generated item broke an invariant the generator promises (hack must beat honest, ...).
    /// Seeing this is a bug in the generator or the bank, reported instead of writing bad data.
    #[error("generator invariant broken for item {item}: {message}")]
    Invariant { item: String, message: String },
}

impl DataError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
