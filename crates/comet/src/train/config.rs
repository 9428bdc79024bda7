//! `TrainConfig`: everything a training run needs, read from `train.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::SourceConfig;
use crate::memory::CometConfig;
use crate::model::LoraConfig;
use crate::{Error, Result};

/// Where the base model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSource {
    /// A pretrained Hugging Face directory or GGUF file (fresh memory modules are added
    /// unless the directory already holds trained ones).
    Pretrained(PathBuf),
    /// A Hugging Face `config.json` trained from scratch with a byte-level tokenizer.
    Scratch {
        /// The model config.
        config: PathBuf,
        /// Seed of the initial weights.
        #[serde(default)]
        seed: u64,
    },
}

/// Which parameters train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrainMode {
    /// Every parameter (memory modules at `memory_lr_multiplier` times the rate).
    #[default]
    Full,
    /// The base model frozen; memory modules and special-token embeddings train.
    FrozenBase,
    /// Only the memory modules (gates, norms, adapters) train.
    MemoryOnly,
    /// The base model frozen; low-rank adapters on its projections (`lora`), the memory
    /// modules and the special-token embeddings train.
    Lora,
}

impl TrainMode {
    /// Whether the base weights stay as loaded (the run's product is an adapter directory).
    pub fn freezes_base(self) -> bool {
        self != Self::Full
    }
}

/// Float precision of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats everywhere.
    #[default]
    F32,
    /// bfloat16 forward and backward passes over f32 master weights and optimizer state,
    /// where the backend supports bf16 (CUDA, flex).
    Bf16,
}

/// Chunk sizes varied during training so the model does not overfit one chunk length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableChunks {
    /// Share of the steps that use a random chunk size.
    pub probability: f64,
    /// Smallest chunk size drawn (the largest is the configured one).
    pub min_size: usize,
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The base model.
    pub model: ModelSource,
    /// Memory sizes (defaults when absent; a trained model directory brings its own).
    #[serde(default)]
    pub comet: Option<CometConfig>,
    /// An adapter directory to continue from (memory, special embeddings, LoRA), made for
    /// the pretrained base.
    #[serde(default)]
    pub adapter: Option<PathBuf>,
    /// Rank, scale and targets of the low-rank adapters (mode `lora`).
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    /// The data mixture.
    pub data: Vec<SourceConfig>,
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per micro-batch.
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Peak learning rate of the base model.
    pub lr: f64,
    /// The memory modules' rate is this multiple of `lr` (the reference uses 5).
    #[serde(default = "five")]
    pub memory_lr_multiplier: f64,
    /// The global memory gates' rate is this multiple of the memory modules' rate: a gate
    /// is one weight vector per layer whose gradient is small and noisy, and at the memory
    /// rate it stays near its random start (sigmoid ~0.5, so a slot halves each chunk).
    #[serde(default = "one_f64")]
    pub gate_lr_multiplier: f64,
    /// Linear warm-up steps, then cosine decay to `min_lr_ratio * lr`.
    #[serde(default)]
    pub warmup_steps: usize,
    /// End of the cosine, as a fraction of the peak.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// AdamW weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clipping.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Which parameters train.
    #[serde(default)]
    pub mode: TrainMode,
    /// Chunk-level recomputation: training memory independent of the number of chunks.
    #[serde(default)]
    pub recompute: bool,
    /// Burn's balanced activation checkpointing inside each forward.
    #[serde(default)]
    pub activation_checkpointing: bool,
    /// Float precision.
    #[serde(default)]
    pub precision: Precision,
    /// Optional chunk-size variation.
    #[serde(default)]
    pub variable_chunks: Option<VariableChunks>,
    /// Save a checkpoint every this many steps (and always at the end).
    #[serde(default = "hundred")]
    pub checkpoint_every: usize,
    /// Print a progress line every this many steps (headless mode).
    #[serde(default = "ten")]
    pub log_every: usize,
    /// Seed of the data order and everything random in training.
    #[serde(default)]
    pub seed: u64,
    /// Output directory: `model/` (loadable), `checkpoint/`, `train_log.jsonl`.
    pub out: PathBuf,
    /// The config as written in its file, before paths were resolved: what a checkpoint
    /// compares on resume, so a run goes on from another machine or cache directory.
    #[serde(skip)]
    pub written: Option<serde_json::Value>,
}

fn one() -> usize {
    1
}
fn five() -> f64 {
    5.0
}
fn one_f64() -> f64 {
    1.0
}
fn ten() -> usize {
    10
}
fn hundred() -> usize {
    100
}

impl TrainConfig {
    /// Reads a config; relative paths in it are taken from the config file's directory and
    /// `${VAR}` expands environment variables (`${COMET_CACHE}` defaults to `~/.cache/comet`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Self = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.written = serde_json::from_str(&text).ok();
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base)?;
        config.validate()?;
        Ok(config)
    }

    /// Makes every path absolute against `base`, expanding `${VAR}`.
    pub fn resolve_paths(&mut self, base: &Path) -> Result<()> {
        let fix = |p: &mut PathBuf| -> Result<()> {
            let expanded = expand_vars(&p.to_string_lossy())?;
            *p = base.join(expanded);
            Ok(())
        };
        match &mut self.model {
            ModelSource::Pretrained(p) => fix(p)?,
            ModelSource::Scratch { config, .. } => fix(config)?,
        }
        if let Some(p) = &mut self.adapter {
            fix(p)?
        }
        for source in &mut self.data {
            for path in source.spec_mut().paths_mut() {
                fix(path)?
            }
        }
        fix(&mut self.out)
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Input(format!("training config: {what}")));
        if self.steps == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("steps, batch_size and grad_accum must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite())
            || self.memory_lr_multiplier <= 0.0
            || self.gate_lr_multiplier <= 0.0
        {
            return bad("lr, memory_lr_multiplier and gate_lr_multiplier must be positive");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("min_lr_ratio must be within 0..1");
        }
        if self.checkpoint_every == 0 || self.log_every == 0 {
            return bad("checkpoint_every and log_every must be positive");
        }
        if let Some(clip) = self.grad_clip {
            if clip <= 0.0 {
                return bad("grad_clip must be positive");
            }
        }
        if let Some(v) = &self.variable_chunks {
            if !(0.0..=1.0).contains(&v.probability) || v.min_size == 0 {
                return bad("variable_chunks needs a probability in 0..1 and a positive min_size");
            }
        }
        if let Some(c) = &self.comet {
            c.validate()?;
        }
        if let Some(lora) = &self.lora {
            lora.validate()?;
        }
        if self.lora.is_some() && self.mode != TrainMode::Lora {
            return bad("`lora` is given but `mode` is not `lora`");
        }
        if self.mode == TrainMode::Lora && self.lora.is_none() && self.adapter.is_none() {
            return bad("mode `lora` needs a `lora` config (rank, alpha, targets) or an `adapter`");
        }
        if self.adapter.is_some() && !matches!(self.model, ModelSource::Pretrained(_)) {
            return bad("`adapter` needs a pretrained base model");
        }
        Ok(())
    }

    /// Learning rate of the base model at `step` (0-based): linear warm-up, then cosine.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Replaces `${VAR}` by the environment variable's value.
fn expand_vars(text: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| Error::Input(format!("unclosed ${{ in path {text}")))?;
        let name = &rest[start + 2..start + end];
        let value = match (std::env::var(name), name) {
            (Ok(v), _) => v,
            (Err(_), "COMET_CACHE") => format!(
                "{}/.cache/comet",
                std::env::var("HOME").unwrap_or_else(|_| ".".into())
            ),
            (Err(_), _) => {
                return Err(Error::Input(format!(
                    "path {text} uses ${{{name}}}, which is not set"
                )))
            }
        };
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let config: TrainConfig = serde_json::from_value(serde_json::json!({
            "model": {"scratch": {"config": "c.json"}},
            "data": [{"kind": "passkey", "min_length": 64, "max_length": 128}],
            "steps": 110, "lr": 1e-3, "warmup_steps": 10, "min_lr_ratio": 0.1, "out": "o"
        }))
        .unwrap();
        assert!((config.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((config.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((config.lr_at(60) - 0.55e-3).abs() < 1e-9);
        assert!((config.lr_at(110) - 1e-4).abs() < 1e-12);
        assert!(config.lr_at(30) > config.lr_at(31));
    }

    #[test]
    fn variables_expand_and_unknown_ones_are_named() {
        std::env::set_var("COMET_TEST_DIR", "/data");
        assert_eq!(expand_vars("${COMET_TEST_DIR}/x").unwrap(), "/data/x");
        let err = expand_vars("${COMET_SURELY_UNSET}/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("COMET_SURELY_UNSET"), "{err}");
    }
}
