//! `comet score`: per-token negative log-likelihood and perplexity, optionally all logits.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use comet::backend::Backend;
use comet::generate::token_tensor;
use serde::Serialize;

use super::comet_args::CometArgs;

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
    #[command(flatten)]
    comet: CometArgs,
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

/// Negative log-likelihood of each target `[n]` (-1 = none) under logits `[n, vocab]`.
fn nll(logits: Tensor<Backend, 2>, targets: &[i64]) -> Result<Vec<f32>> {
    let [n, _] = logits.dims();
    let device = logits.device();
    let index: Vec<i64> = targets.iter().map(|&t| t.max(0)).collect();
    let index =
        Tensor::<Backend, 1, Int>::from_data(TensorData::new(index, [n]), &device).reshape([n, 1]);
    let picked: Vec<f32> = log_softmax(logits, 1)
        .gather(1, index)
        .neg()
        .into_data()
        .to_vec()
        .context("reading log-likelihoods")?;
    Ok(picked
        .into_iter()
        .zip(targets)
        .filter(|(_, &t)| t >= 0)
        .map(|(v, _)| v)
        .collect())
}

/// Runs `comet score`.
pub fn run(args: Args) -> Result<()> {
    let (ids, nll_values, logits) = if args.comet.enabled() {
        let loaded = args.comet.load(args.model.as_deref())?;
        let ids = token_ids(&args, loaded.tokenizer.as_ref())?;
        let mut values = Vec::new();
        let mut dumped = Vec::new();
        loaded.model.score(&ids, |logits, targets| {
            if args.dump_logits.is_some() {
                dumped.push(logits.clone());
            }
            values.push(nll(logits, targets));
        })?;
        let values: Vec<f32> = values.into_iter().collect::<Result<Vec<_>>>()?.concat();
        let logits = (!dumped.is_empty()).then(|| Tensor::cat(dumped, 0));
        (ids, values, logits)
    } else {
        let loaded = super::load(args.model.as_deref())?;
        let ids = token_ids(&args, loaded.tokenizer.as_ref())?;
        let model = &loaded.model;
        let device = model.embed_tokens.weight.device();
        let input = token_tensor::<Backend>(&ids, model.config().vocab_size, &device)?;
        let n = ids.len();
        let logits = model.forward(input, None).reshape([n as i32, -1]);
        let targets: Vec<i64> = ids.iter().skip(1).map(|&t| t as i64).chain([-1]).collect();
        let values = nll(logits.clone(), &targets)?;
        (ids, values, args.dump_logits.is_some().then_some(logits))
    };
    if let (Some(path), Some(logits)) = (&args.dump_logits, logits) {
        let [n, vocab] = logits.dims();
        let values: Vec<f32> = logits.into_data().to_vec().context("reading logits")?;
        let tensors = [("logits".to_string(), vec![n, vocab], values)];
        comet::fsutil::write_f32_safetensors(path, &tensors, None)?;
        eprintln!("wrote logits [{n}, {vocab}] to {}", path.display());
    }
    let mean_nll = if nll_values.is_empty() {
        0.0
    } else {
        nll_values.iter().map(|&x| x as f64).sum::<f64>() / nll_values.len() as f64
    };
    let report = Report {
        tokens: ids.len(),
        ids,
        nll: nll_values,
        mean_nll,
        perplexity: mean_nll.exp(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The ids to score, from `--ids` or by tokenizing `--text`.
fn token_ids(args: &Args, tokenizer: Option<&comet::tokenizer::Tokenizer>) -> Result<Vec<u32>> {
    match (&args.text, &args.ids) {
        (Some(text), None) => {
            if text.is_empty() {
                bail!("--text is empty");
            }
            let tokenizer = tokenizer
                .context("this model has no tokenizer (tokenizer.json); pass --ids instead")?;
            Ok(tokenizer.encode(text, true)?)
        }
        (None, Some(ids)) => Ok(ids.clone()),
        _ => bail!("give exactly one of --text and --ids"),
    }
}
