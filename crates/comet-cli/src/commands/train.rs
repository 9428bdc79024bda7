//! `comet train --config train.json [--resume]`: fine-tune or train CoMeT, with progress,
//! checkpoints, Ctrl-C handling and a throughput summary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use comet::backend::{self, Backend};
use comet::train::{TrainConfig, Trainer};

use super::train_progress::Progress;

/// `comet train` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training config (JSON; relative paths are resolved against its folder).
    #[arg(long)]
    config: PathBuf,
    /// Continue from the checkpoint in the config's `out` folder.
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps instead of the config's `steps` (same schedule).
    #[arg(long)]
    stop_at: Option<usize>,
    /// Context parallelism: devices, one rank each (`0,1,2,3`: four GPUs, each reading a
    /// quarter of every sample's chunks; on the CPU, virtual ranks; in a `remote` build,
    /// `comet serve` addresses `ws://host:3000,...`). The result equals one device's; the
    /// first device holds the model and the optimizer.
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
}

/// Runs `comet train`.
pub fn run(args: Args) -> Result<()> {
    let config = TrainConfig::from_file(&args.config)?;
    if config.activation_checkpointing {
        // Recomputes cheap activations in the backward pass instead of keeping them.
        train::<Autodiff<Backend, BalancedCheckpointing>>(config, &args)
    } else {
        train::<Autodiff<Backend>>(config, &args)
    }
}

fn train<B: AutodiffBackend<Device = backend::Device>>(
    config: TrainConfig,
    args: &Args,
) -> Result<()> {
    let ranks = backend::devices(&args.devices)?;
    let device = ranks.first().cloned().map_or_else(backend::device, Ok)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        eprintln!(
            "\ninterrupted: finishing the step and writing a checkpoint (Ctrl-C again waits too)"
        );
        flag.store(true, Ordering::SeqCst);
    })
    .context("cannot install the Ctrl-C handler")?;
    let log_every = config.log_every.max(1);
    let out = config.out.clone();
    let mut trainer = Trainer::<B>::new(config, args.resume, &device)?.with_ranks(ranks)?;
    let first = trainer.step_count();
    eprintln!(
        "training {} from step {first} on {} -> {}",
        args.config.display(),
        backend::NAME,
        out.display()
    );
    let mut progress = Progress::new(first, log_every, stop, args.stop_at);
    let result = trainer.run(&mut progress);
    progress.finish();
    let summary = result?;
    if summary.steps == 0 {
        eprintln!(
            "nothing to train: already at step {}; model in {}",
            summary.last_step,
            trainer.model_dir().display()
        );
        return Ok(());
    }
    eprintln!(
        "trained {} steps (now at step {}): {} tokens in {:.1}s ({:.0} tokens/s), last loss {:.4}; checkpoint in {}, model in {}",
        summary.steps,
        summary.last_step,
        summary.tokens,
        summary.seconds,
        summary.tokens as f64 / summary.seconds.max(1e-9),
        summary.last_loss,
        out.join("checkpoint").display(),
        trainer.model_dir().display()
    );
    Ok(())
}
