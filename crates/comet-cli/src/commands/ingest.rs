//! `comet ingest`: read a document into CoMeT memory and save the state as a snapshot.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use comet::comet::{load_snapshot, save_snapshot, Snapshot};

use super::comet_args::CometArgs;

/// Arguments of `comet ingest`.
#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model directory or `.gguf` file (default: SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The UTF-8 document to read.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the memory snapshot (default: the `--resume` file).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Continue from this snapshot instead of empty memory.
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    comet: CometArgs,
}

/// Runs `comet ingest`.
pub fn run(args: Args) -> Result<()> {
    let Some(out) = args.save.clone().or_else(|| args.resume.clone()) else {
        bail!("give --save (or --resume to update a snapshot in place)");
    };
    let text = super::read_prompt(None, Some(args.input.clone()))
        .with_context(|| format!("reading the document {}", args.input.display()))?;
    let loaded = args.comet.load(args.model.as_deref())?;
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .context("this model has no tokenizer")?;
    let ids = tokenizer.encode(&text, false)?;
    let model = &loaded.model;
    let snapshot = match &args.resume {
        Some(path) => load_snapshot(model, path)?,
        None => Snapshot {
            state: model.empty_state(1),
            pending: Vec::new(),
        },
    };
    let bar = super::token_bar(snapshot.pending.len() + ids.len(), "reading");
    let start = Instant::now();
    let snapshot = model.ingest(&ids, snapshot, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    save_snapshot(model, &snapshot, &out)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "read {} tokens in {secs:.1}s ({:.0} tokens/s); memory holds {} tokens, {} more wait for the next chunk; saved {} ({:.1} MiB)",
        ids.len(),
        ids.len() as f64 / secs.max(1e-9),
        snapshot.state.tokens_read[0],
        snapshot.pending.len(),
        out.display(),
        size as f64 / (1 << 20) as f64
    );
    Ok(())
}
