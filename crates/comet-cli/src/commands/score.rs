//! `comet score`: per-token negative log-likelihood and perplexity, optionally all logits.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::tensor::activation::log_softmax;
use comet::backend::Backend;
use comet::generate::token_tensor;
use safetensors::{serialize, tensor::TensorView, Dtype};
use serde::Serialize;

/// Arguments of `comet score`.
#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model directory or `.gguf` file (default: SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Text to score (needs the model's tokenizer).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    text: Option<String>,
    /// Comma-separated token ids to score, e.g. `1,2,3`.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// Also write every logit as a safetensors file: one f32 tensor `logits` `[tokens, vocab]`.
    #[arg(long)]
    dump_logits: Option<PathBuf>,
}

/// What `comet score` prints.
#[derive(Serialize)]
struct Report {
    tokens: usize,
    ids: Vec<u32>,
    /// `nll[i]` = -log p(ids[i+1] | ids[..=i]), in nats.
    nll: Vec<f32>,
    mean_nll: f64,
    perplexity: f64,
}

/// Runs `comet score`.
pub fn run(args: Args) -> Result<()> {
    let loaded = super::load(args.model.as_deref())?;
    let ids = match (&args.text, args.ids) {
        (Some(text), None) => {
            if text.is_empty() {
                bail!("--text is empty");
            }
            loaded.tokenizer()?.encode(text, true)?
        }
        (None, Some(ids)) => ids,
        _ => bail!("give exactly one of --text and --ids"),
    };
    let model = &loaded.model;
    let device = model.embed_tokens.weight.device();
    let input = token_tensor::<Backend>(&ids, model.config().vocab_size, &device)?;
    let n = ids.len();
    // [1, n, vocab] -> [n, vocab]
    let logits = model.forward(input.clone(), None).reshape([n as i32, -1]);
    let vocab = logits.dims()[1];

    let nll: Vec<f32> = if n > 1 {
        let targets = input.reshape([n]).slice([1..n]).reshape([n - 1, 1]);
        let logp = log_softmax(logits.clone().slice([0..n - 1, 0..vocab]), 1);
        logp.gather(1, targets)
            .neg()
            .into_data()
            .to_vec()
            .context("reading log-likelihoods")?
    } else {
        Vec::new()
    };
    let mean_nll = if nll.is_empty() {
        0.0
    } else {
        nll.iter().map(|&x| x as f64).sum::<f64>() / nll.len() as f64
    };
    if let Some(path) = &args.dump_logits {
        let values: Vec<f32> = logits.into_data().to_vec().context("reading logits")?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = TensorView::new(Dtype::F32, vec![n, vocab], &bytes)?;
        let file = serialize(HashMap::from([("logits".to_string(), view)]), None)?;
        super::write_atomic(path, &file)?;
        eprintln!("wrote logits [{n}, {vocab}] to {}", path.display());
    }
    let report = Report {
        tokens: n,
        ids,
        nll,
        mean_nll,
        perplexity: mean_nll.exp(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
