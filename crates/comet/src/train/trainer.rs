//! The training loop: batches from the data mixture, gradients through every chunk, two
//! AdamW parameter groups, warm-up + cosine, clipping, accumulation, checkpoints.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::{list_param_ids, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};

use super::adamw::FusedAdamW;
use super::checkpoint::{self, check_resumable, checkpoint_dir, Adam, TrainerState};
use super::log::{self, Observer, StepLog};
use super::start::{build_model, freeze, Base};
use super::{
    compute_model, grads, join_parameter_graphs, recomputed_gradients, TrainConfig, TrainMode,
};
use crate::comet::{CometModel, ContextParallel};
use crate::data::{mix_seed, TrainData};
use crate::fsutil::replace_dir;
use crate::layout::{LayoutBuilder, Sequence};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

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
    /// The global memory gates (a subset of `memory_ids`, at `gate_lr_multiplier`).
    gate_ids: HashSet<ParamId>,
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
        let adam = FusedAdamW::new(1e-8, config.weight_decay as f32);
        let optimizers = [adam.clone().into(), adam.into()];
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
        let gate_ids = model
            .memory
            .iter()
            .flat_map(|layer| list_param_ids(&layer.global.gate))
            .collect();
        let trainer = Self {
            config,
            model,
            tokenizer,
            data,
            optimizers,
            memory_ids,
            gate_ids,
            step,
            base,
            ranks: vec![device.clone()],
        };
        log::truncate(&trainer.config.out, trainer.step)?;
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
        join_parameter_graphs(&self.model);
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
        let mut memory = grads::take(&self.model, &mut all, &self.memory_ids);
        let gates = grads::take(&self.model, &mut memory, &self.gate_ids);
        let lr = c.lr_at(self.step);
        let [base_opt, memory_opt] = &mut self.optimizers;
        if matches!(c.mode, TrainMode::Full | TrainMode::Lora) {
            // Only parameters with gradients move: under `lora`, the adapters.
            self.model = base_opt.step(lr, self.model.clone(), all);
        }
        let memory_lr = lr * c.memory_lr_multiplier;
        self.model = memory_opt.step(memory_lr, self.model.clone(), memory);
        // Adam's state is per parameter, so a second step over the gates alone moves each
        // gate once, at its own rate.
        self.model = memory_opt.step(memory_lr * c.gate_lr_multiplier, self.model.clone(), gates);
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
        log::append(&self.config.out, &log)?;
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
}
