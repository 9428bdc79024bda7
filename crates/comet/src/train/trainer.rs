//! The training loop: batches from the data mixture, gradients through every chunk, two
//! AdamW parameter groups, warm-up + cosine, clipping, accumulation, checkpoints.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{list_param_ids, ParamId};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, checkpoint_dir, Adam, TrainerState};
use super::{compute_model, grads, recomputed_gradients, ModelSource, TrainConfig, TrainMode};
use crate::comet::{base_fingerprint, load_comet_adapter, CometModel, ContextParallel};
use crate::config::ModelConfig;
use crate::data::{mix_seed, TrainData};
use crate::fsutil::replace_dir;
use crate::layout::{LayoutBuilder, Sequence};
use crate::tokenizer::{byte_level, Tokenizer};
use crate::weights::{random_llm_from, RandomWeights};
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

/// A training run in progress.
///
/// Run one trainer (or any back-propagation) per process at a time: Burn 0.21's autodiff
/// graph is shared by a process's threads, and a concurrent `backward()` can drop another
/// thread's gradients (tracel-ai/burn#5573).
pub struct Trainer<B: AutodiffBackend> {
    config: TrainConfig,
    model: CometModel<B>,
    tokenizer: Tokenizer,
    data: TrainData,
    optimizers: [Adam<B>; 2],
    memory_ids: HashSet<ParamId>,
    step: usize,
    base: Option<Base>,
    /// Devices of the context-parallel ranks (one entry: a single device).
    ranks: Vec<B::Device>,
}

/// Totals of a finished run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Steps done in this process.
    pub steps: usize,
    /// Step the run ended at.
    pub last_step: usize,
    /// Text tokens read in this process.
    pub tokens: usize,
    /// Wall time in this process.
    pub seconds: f64,
    /// Loss of the last step.
    pub last_loss: f64,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Builds the model and optimizers; with `resume`, continues from the checkpoint in
    /// `config.out` (refusing one made with a different config), without it refuses to
    /// overwrite one.
    pub fn new(config: TrainConfig, resume: bool, device: &B::Device) -> Result<Self> {
        config.validate()?;
        config.precision.check::<B>(device)?;
        let (model, tokenizer, base) = build_model::<B>(&config, device)?;
        let model = freeze(model, config.mode);
        let data = TrainData::open(&config.data, tokenizer.clone(), config.seed)?;
        let adam = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(config.weight_decay as f32);
        let optimizers = [adam.init(), adam.init()];
        let dir = checkpoint_dir(&config);
        let saved = checkpoint::read_state(&dir)?;
        let (model, optimizers, step) = match (saved, resume) {
            (Some(state), true) => {
                check_resumable(&state, &config)?;
                let (model, optimizers) =
                    checkpoint::load(&dir, model, optimizers, config.mode, device)?;
                (model, optimizers, state.step)
            }
            (Some(state), false) => {
                return Err(Error::Training(format!(
                    "{} holds a checkpoint at step {}; pass --resume to continue it or choose another `out`",
                    dir.display(),
                    state.step
                )))
            }
            (None, _) => (model, optimizers, 0),
        };
        let mut memory_ids: HashSet<ParamId> = list_param_ids(&model.memory).into_iter().collect();
        memory_ids.insert(model.special_embeddings.id);
        let trainer = Self {
            config,
            model,
            tokenizer,
            data,
            optimizers,
            memory_ids,
            step,
            base,
            ranks: vec![device.clone()],
        };
        trainer.truncate_log()?;
        Ok(trainer)
    }

    /// Trains context-parallel over `ranks` (devices, the first one the model's; repeats
    /// make virtual ranks): each reads a contiguous range of every sample's chunks, and the
    /// loss and gradients are those of one device (see [`ContextParallel`]).
    pub fn with_ranks(mut self, ranks: Vec<B::Device>) -> Result<Self> {
        if ranks.len() > 1 && self.config.recompute {
            return Err(Error::Training(
                "context parallelism and `recompute` cannot be combined yet; turn one off".into(),
            ));
        }
        if !ranks.is_empty() {
            self.ranks = ranks;
        }
        Ok(self)
    }

    /// Steps done so far (including those before a resume).
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The model being trained.
    pub fn model(&self) -> &CometModel<B> {
        &self.model
    }

    /// The layout builder of step `step`: usually the configured chunk size, sometimes
    /// (with `variable_chunks`) a seeded random smaller one.
    fn builder(&self, step: usize) -> LayoutBuilder {
        let mut comet = self.model.comet.clone();
        if let Some(v) = &self.config.variable_chunks {
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(mix_seed(&[self.config.seed, 7, step as u64]));
            if rng.random::<f64>() < v.probability && v.min_size < comet.chunk_size {
                comet.chunk_size = rng.random_range(v.min_size..=comet.chunk_size);
            }
        }
        LayoutBuilder::new(comet, self.model.special_tokens())
    }

    /// Loss of one micro-batch and its parameter gradients times `scale`.
    fn gradients(
        &self,
        batch: &[Sequence],
        builder: &LayoutBuilder,
        scale: f32,
    ) -> Result<(f64, GradientsParams)> {
        let precision = self.config.precision;
        if self.config.recompute {
            let compute = compute_model(&self.model, precision);
            return recomputed_gradients(&self.model, &compute, batch, builder, scale);
        }
        if self.ranks.len() > 1 {
            let parallel =
                ContextParallel::new(&self.model, &self.ranks, |m| compute_model(m, precision))?;
            let l = parallel.loss(batch, builder)?;
            let value = l.clone().into_scalar().elem::<f64>();
            return Ok((
                value,
                parallel.gradients((l * scale).backward(), &self.model),
            ));
        }
        let l = compute_model(&self.model, precision).loss_with(batch, builder)?;
        let value = l.clone().into_scalar().elem::<f64>();
        let grads = (l * scale).backward();
        Ok((value, GradientsParams::from_grads(grads, &self.model)))
    }

    /// One optimizer step.
    pub fn train_step(&mut self) -> Result<StepLog> {
        let start = Instant::now();
        let c = &self.config;
        let builder = self.builder(self.step);
        let scale = 1.0 / c.grad_accum as f32;
        let mut accumulator = GradientsAccumulator::<CometModel<B>>::new();
        let (mut loss, mut tokens) = (0.0, 0);
        for micro in 0..c.grad_accum {
            let first = ((self.step * c.grad_accum + micro) * c.batch_size) as u64;
            let batch = (first..first + c.batch_size as u64)
                .map(|i| self.data.sample(i))
                .collect::<Result<Vec<Sequence>>>()?;
            tokens += batch.iter().map(|s| s.tokens.len()).sum::<usize>();
            let (value, grads) = self.gradients(&batch, &builder, scale)?;
            if !value.is_finite() {
                return Err(self.diverged("loss", value));
            }
            loss += value / c.grad_accum as f64;
            accumulator.accumulate(&self.model, grads);
        }
        let mut all = accumulator.grads();
        let grad_norm = grads::global_norm(&self.model, &mut all);
        if !grad_norm.is_finite() {
            return Err(self.diverged("gradient norm", grad_norm));
        }
        if let Some(clip) = c.grad_clip {
            if grad_norm > clip {
                grads::scale(&self.model, &mut all, (clip / grad_norm) as f32);
            }
        }
        let memory = grads::take(&self.model, &mut all, &self.memory_ids);
        let lr = c.lr_at(self.step);
        let [base_opt, memory_opt] = &mut self.optimizers;
        if matches!(c.mode, TrainMode::Full | TrainMode::Lora) {
            // Only parameters with gradients move: under `lora`, the adapters.
            self.model = base_opt.step(lr, self.model.clone(), all);
        }
        self.model = memory_opt.step(lr * c.memory_lr_multiplier, self.model.clone(), memory);
        self.step += 1;
        let log = StepLog {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens,
            chunk_size: builder.config.chunk_size,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.append_log(&log)?;
        Ok(log)
    }

    fn diverged(&self, what: &str, value: f64) -> Error {
        let kept = match checkpoint::read_state(&checkpoint_dir(&self.config)) {
            Ok(Some(state)) => format!(
                "the last good checkpoint (step {}) is kept in {}",
                state.step,
                checkpoint_dir(&self.config).display()
            ),
            _ => "no checkpoint was written yet".into(),
        };
        Error::Training(format!(
            "{what} is {value} at step {} (lr {:.3e}); stopping: {kept}. Lower the learning rate or set grad_clip",
            self.step + 1,
            self.config.lr_at(self.step)
        ))
    }

    /// Trains until `config.steps` (or until the observer asks to stop), checkpointing
    /// every `checkpoint_every` steps and at the end, then exports the model.
    pub fn run(&mut self, observer: &mut dyn Observer) -> Result<Summary> {
        let start = Instant::now();
        let first = self.step;
        let (mut tokens, mut last_loss) = (0, f64::NAN);
        while self.step < self.config.steps && !observer.should_stop() {
            let log = self.train_step()?;
            tokens += log.tokens;
            last_loss = log.loss;
            observer.on_step(&log, self.config.steps);
            let stop = observer.should_stop();
            if self.step.is_multiple_of(self.config.checkpoint_every)
                || self.step == self.config.steps
                || stop
            {
                self.save_checkpoint()?;
            }
        }
        // A run resumed at its last step (or told to stop there) trains nothing and leaves
        // its files alone (another process may be reading the model), unless the model was
        // never exported.
        if self.step == first && !self.model_dir().exists() {
            self.save_checkpoint()?;
        }
        Ok(Summary {
            steps: self.step - first,
            last_step: self.step,
            tokens,
            seconds: start.elapsed().as_secs_f64(),
            last_loss,
        })
    }

    /// Writes the checkpoint and the loadable model directory `out/model`.
    pub fn save_checkpoint(&self) -> Result<()> {
        let state = TrainerState {
            format: 1,
            step: self.step,
            config: self.config.clone(),
            written: self.config.written.clone(),
        };
        let [a, b] = &self.optimizers;
        checkpoint::save(&checkpoint_dir(&self.config), &self.model, [a, b], &state)?;
        replace_dir(&self.model_dir(), |tmp| match &self.base {
            Some(base) if self.config.mode.freezes_base() => {
                self.model.save_adapter(tmp, &base.name, &base.fingerprint)
            }
            _ => self.model.save(tmp, Some(&self.tokenizer)),
        })
    }

    /// Where the product is exported: `out/adapter` (load it with the base model) when a
    /// pretrained base stays frozen, else `out/model` (a whole model directory).
    pub fn model_dir(&self) -> PathBuf {
        let name = match &self.base {
            Some(_) if self.config.mode.freezes_base() => "adapter",
            _ => "model",
        };
        self.config.out.join(name)
    }

    fn log_path(&self) -> PathBuf {
        self.config.out.join("train_log.jsonl")
    }

    fn append_log(&self, log: &StepLog) -> Result<()> {
        let path = self.log_path();
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

    /// Drops log lines of steps after the checkpoint (a killed run logged them; the
    /// resumed run redoes them).
    fn truncate_log(&self) -> Result<()> {
        std::fs::create_dir_all(&self.config.out).map_err(|e| Error::Write {
            path: self.config.out.clone(),
            source: e,
        })?;
        let path = self.log_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|line| serde_json::from_str::<StepLog>(line).is_ok_and(|l| l.step <= self.step))
            .map(|l| format!("{l}\n"))
            .collect();
        crate::fsutil::write_atomic(&path, kept.as_bytes())
    }
}

/// The pretrained base a run adapts: its name and weight fingerprint, written into the
/// adapter directory so the adapter loads only on the same weights.
struct Base {
    name: String,
    fingerprint: String,
}

/// The model and tokenizer a config starts from (and the pretrained base, if any).
fn build_model<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<(CometModel<B>, Tokenizer, Option<Base>)> {
    let lora_seed = mix_seed(&[config.seed, 11]);
    match &config.model {
        ModelSource::Pretrained(path) => {
            let (model, tokenizer, base) = pretrained::<B>(config, path, device)?;
            let model = match (config.mode, &config.lora, model.llm.lora.as_ref()) {
                (TrainMode::Lora, Some(lora), None) => CometModel {
                    llm: model.llm.with_lora(lora, lora_seed),
                    ..model
                },
                (TrainMode::Lora, Some(want), Some(have)) if have != want => {
                    return Err(Error::Training(format!(
                        "the adapter's LoRA config ({have:?}) differs from the training config's ({want:?})"
                    )))
                }
                _ => model,
            };
            Ok((model, tokenizer, Some(base)))
        }
        ModelSource::Scratch { config: path, seed } => {
            let model_config = ModelConfig::from_hf_file(path)?;
            if model_config.vocab_size < 256 {
                return Err(Error::Config {
                    path: path.clone(),
                    reason: "a model trained from scratch uses the 256-token byte-level tokenizer: vocab_size must be at least 256".into(),
                });
            }
            let comet = config.comet.clone().unwrap_or_default();
            comet.validate()?;
            let mut llm =
                random_llm_from::<B>(&model_config, RandomWeights::for_training(*seed), device);
            if let (TrainMode::Lora, Some(lora)) = (config.mode, &config.lora) {
                llm = llm.with_lora(lora, lora_seed);
            }
            let model = CometModel::new(llm, comet);
            let added = model.special_tokens().added(model.comet.special_tokens());
            let tokenizer = byte_level()?.with_special_tokens(&added)?;
            Ok((model, tokenizer, None))
        }
    }
}

/// A pretrained base with its memory (fresh, from its directory or from `config.adapter`).
fn pretrained<B: AutodiffBackend>(
    config: &TrainConfig,
    path: &std::path::Path,
    device: &B::Device,
) -> Result<(CometModel<B>, Tokenizer, Base)> {
    let loaded = load_comet_adapter::<B>(
        path,
        config.adapter.as_deref(),
        config.comet.clone(),
        device,
    )?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| Error::Missing(format!("{}: training needs a tokenizer", path.display())))?;
    let base = Base {
        name: crate::fsutil::file_label(path),
        fingerprint: base_fingerprint(&loaded.model.llm)?,
    };
    Ok((loaded.model, tokenizer, base))
}

/// Freezes what the mode keeps fixed; parameter ids follow from their paths, so a
/// checkpoint's optimizer state finds its parameters in any process.
fn freeze<B: AutodiffBackend>(mut model: CometModel<B>, mode: TrainMode) -> CometModel<B> {
    model.llm = match mode {
        TrainMode::Full => model.llm,
        TrainMode::Lora => model.llm.freeze_base(),
        TrainMode::FrozenBase | TrainMode::MemoryOnly => model.llm.no_grad(),
    };
    if mode == TrainMode::MemoryOnly {
        model.special_embeddings = model.special_embeddings.set_require_grad(false);
    }
    checkpoint::stable_ids(model)
}

/// A checkpoint continues only under the config it was made with (the number of steps and
/// the logging/checkpoint intervals may change). Configs read from files compare as
/// written, so the same file resumes from another machine or cache directory.
fn check_resumable(saved: &TrainerState, current: &TrainConfig) -> Result<()> {
    let (mut a, mut b) = match (&saved.written, &current.written) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => (
            serde_json::to_value(&saved.config).expect("serializable"),
            serde_json::to_value(current).expect("serializable"),
        ),
    };
    for key in ["steps", "checkpoint_every", "log_every"] {
        a[key] = serde_json::Value::Null;
        b[key] = serde_json::Value::Null;
    }
    let (a, b) = (
        a.as_object().expect("object"),
        b.as_object().expect("object"),
    );
    let mut differ: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    differ.sort_unstable();
    differ.dedup();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(Error::Training(format!(
            "the checkpoint was made with a different config ({} differ); resume with the original config or choose another `out`",
            differ.join(", ")
        )))
    }
}
