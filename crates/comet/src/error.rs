//! The error type every fallible public function of the crate returns.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model, each naming what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file or directory could not be written (full disk, permissions).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// Training cannot go on (a NaN loss, a checkpoint that does not match the config).
    #[error("training: {0}")]
    Training(String),
    /// A model directory or file lacks something it must have.
    #[error("{0}")]
    Missing(String),
    /// A file's contents are not what its format requires.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A config field is absent, of the wrong type or out of range.
    #[error("config {path}: {reason}")]
    Config {
        /// The config file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The config names an architecture this crate does not implement.
    #[error("unsupported architecture `{0}` (supported: {names})", names = crate::config::family_names())]
    UnknownArchitecture(String),
    /// A weight tensor is missing or has the wrong shape.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor's name in the file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer could not be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller's input cannot be processed (empty prompt, bad token id, ...).
    #[error("{0}")]
    Input(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error tagged with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error tagged with the path it concerns.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A tensor error tagged with the tensor's name.
    pub fn tensor(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Tensor {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
