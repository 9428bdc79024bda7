//! `comet convert`: a GGUF file to a Hugging Face model directory (f32 safetensors).

use std::path::PathBuf;

use anyhow::Result;
use comet::tokenizer::Tokenizer;
use comet::weights::{export_hf_dir, GgufWeights};

/// Arguments of `comet convert`.
#[derive(clap::Args)]
pub struct Args {
    /// The `.gguf` file to convert.
    #[arg(long)]
    model: PathBuf,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `comet convert`.
pub fn run(args: Args) -> Result<()> {
    let mut weights = GgufWeights::open(&args.model)?;
    let config = weights.config()?;
    let tokenizer = Tokenizer::from_gguf(&weights.file)?;
    export_hf_dir(&config, &mut weights, Some(&tokenizer), &args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
