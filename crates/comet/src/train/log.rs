//! What a run reports: one [`StepLog`] per optimizer step, to an [`Observer`] and to
//! `out/train_log.jsonl`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 1-based step number.
    pub step: usize,
    /// Mean token loss of the step's samples.
    pub loss: f64,
    /// Base learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Text tokens read in the step.
    pub tokens: usize,
    /// Chunk size used.
    pub chunk_size: usize,
    /// Wall time of the step.
    pub seconds: f64,
}

/// Watches training; the CLI renders progress, tests stop early.
pub trait Observer {
    /// After every step.
    fn on_step(&mut self, log: &StepLog, total_steps: usize);
    /// Checked before and after every step: true ends the run (with a checkpoint when a
    /// step was taken).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {
    fn on_step(&mut self, _: &StepLog, _: usize) {}
}

fn path(out: &Path) -> PathBuf {
    out.join("train_log.jsonl")
}

/// Appends one step to `out/train_log.jsonl`.
pub(super) fn append(out: &Path, log: &StepLog) -> Result<()> {
    let path = path(out);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(
            file,
            "{}",
            serde_json::to_string(log).expect("serializable")
        )
    };
    write().map_err(|e| Error::Write {
        path: path.clone(),
        source: e,
    })
}

/// Drops log lines of steps after `step`, the checkpoint's (a killed run logged them; the
/// resumed run redoes them).
pub(super) fn truncate(out: &Path, step: usize) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::Write {
        path: out.to_path_buf(),
        source: e,
    })?;
    let path = path(out);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| serde_json::from_str::<StepLog>(line).is_ok_and(|l| l.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    crate::fsutil::write_atomic(&path, kept.as_bytes())
}
