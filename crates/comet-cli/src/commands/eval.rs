//! `comet eval passkey | qa | ppl`: retrieval grids, SCROLLS metrics, per-chunk perplexity.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use comet::data::{Filler, JsonlData, Passkey, DEFAULT_FILLER};
use comet::eval::{chunk_perplexity, evaluate_passkey, evaluate_qa, PasskeyGrid, QaOptions};
use comet::fsutil::write_atomic;
use serde::Serialize;

use super::comet_args::CometArgs;

/// Which evaluation.
#[derive(clap::Subcommand)]
pub enum Eval {
    /// Passkey retrieval: lengths x needle depths, exact-match accuracy, JSON + heatmap PNG.
    Passkey(PasskeyArgs),
    /// Long-document QA over JSONL (`input`/`output` or chat `messages`): EM, F1, ROUGE.
    Qa(QaArgs),
    /// Per-chunk perplexity of a text with and without memory.
    Ppl(PplArgs),
}

/// Model options shared by every evaluation.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// Model directory or GGUF file [default: the packaged SmolLM2-135M-Instruct].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// CoMeT sizes for a model without trained memory; for a trained one, changes to its
    /// stored config that its weights allow (chunk size, budget, ablation switches).
    #[command(flatten)]
    pub comet: CometArgs,
}

/// `comet eval passkey` arguments.
#[derive(clap::Args, Debug)]
pub struct PasskeyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "2048,4096,8192")]
    lengths: Vec<usize>,
    /// Needle depths (0 = start, 1 = end).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    depths: Vec<f64>,
    /// Trials per (length, depth) cell.
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Haystack text (e.g. Paul Graham essays) [default: a repeated filler sentence].
    #[arg(long)]
    haystack: Option<PathBuf>,
    /// Digits of each key.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=18))]
    digits: u32,
    /// Trials read together.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Results JSON (the heatmap is written next to it as .png).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `comet eval qa` arguments.
#[derive(clap::Args, Debug)]
pub struct QaArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL records: {"input", "output"} (output a string or a list) or {"messages": [...]}.
    #[arg(long)]
    data: PathBuf,
    /// Largest answer length in tokens.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Score only the first N records.
    #[arg(long)]
    limit: Option<usize>,
    /// Keep the whole generated answer (default: its first non-empty line).
    #[arg(long)]
    full_answer: bool,
    /// Scores and predictions as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `comet eval ppl` arguments.
#[derive(clap::Args, Debug)]
pub struct PplArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text file to score.
    #[arg(long)]
    text: PathBuf,
    /// Score only the first N tokens.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Per-chunk results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs one evaluation.
pub fn run(eval: Eval) -> Result<()> {
    super::keep_freed_memory();
    match eval {
        Eval::Passkey(args) => passkey(args),
        Eval::Qa(args) => qa(args),
        Eval::Ppl(args) => ppl(args),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    write_atomic(path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn passkey(args: PasskeyArgs) -> Result<()> {
    if args.trials == 0 || args.lengths.is_empty() || args.depths.is_empty() {
        bail!("--trials, --lengths and --depths must not be empty");
    }
    let loaded = args.model.comet.load(args.model.model.as_deref())?;
    let tokenizer = loaded.tokenizer.context("the model has no tokenizer")?;
    let filler = match &args.haystack {
        Some(path) => Filler::corpus(path)?,
        None => Filler::Repeated(DEFAULT_FILLER.to_string()),
    };
    let mut passkey = Passkey::new(&tokenizer, filler);
    passkey.digits = args.digits;
    let grid = PasskeyGrid {
        lengths: args.lengths.clone(),
        depths: args.depths.clone(),
        trials: args.trials,
        seed: args.seed,
        batch_size: args.batch_size,
    };
    let total: usize = args.lengths.iter().sum::<usize>() * args.depths.len() * args.trials;
    let bar = super::token_bar(total, "passkey");
    let start = Instant::now();
    let cells = evaluate_passkey(&loaded.model, &passkey, &grid, |_, tokens| {
        bar.inc(tokens as u64)
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{:>8} {}",
        "length",
        args.depths
            .iter()
            .map(|d| format!("{d:>7}"))
            .collect::<String>()
    );
    for &length in &args.lengths {
        let row: String = cells
            .iter()
            .filter(|c| c.length == length)
            .map(|c| format!("{:>6.0}%", c.accuracy * 100.0))
            .collect();
        println!("{length:>8} {row}");
    }
    let correct: usize = cells.iter().map(|c| c.correct).sum();
    let trials: usize = cells.iter().map(|c| c.trials).sum();
    let token_accuracy = cells.iter().map(|c| c.token_accuracy).sum::<f64>() / cells.len() as f64;
    eprintln!(
        "passkey: {correct}/{trials} correct ({:.1}%; key tokens {:.1}%), {total} tokens in {seconds:.1}s ({:.0} tokens/s)",
        100.0 * correct as f64 / trials as f64,
        100.0 * token_accuracy,
        total as f64 / seconds
    );
    if let Some(json) = &args.json {
        write_json(json, &cells)?;
        let columns: Vec<String> = args.lengths.iter().map(|l| l.to_string()).collect();
        let rows: Vec<String> = args.depths.iter().map(|d| format!("{d}")).collect();
        let png = json.with_extension("png");
        let title = format!(
            "passkey accuracy, {}-digit keys, {} trials per cell ({})",
            args.digits,
            args.trials,
            args.model
                .model
                .as_deref()
                .map_or("SmolLM2".into(), |p| p.display().to_string())
        );
        crate::plot::heatmap(&png, &title, &columns, &rows, |r, c| {
            cells
                .iter()
                .find(|cell| cell.length == args.lengths[c] && cell.depth == args.depths[r])
                .map(|cell| cell.accuracy)
        })?;
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

fn qa(args: QaArgs) -> Result<()> {
    let loaded = args.model.comet.load(args.model.model.as_deref())?;
    let tokenizer = loaded.tokenizer.context("the model has no tokenizer")?;
    let data = JsonlData::open(&args.data)?;
    let options = QaOptions {
        max_new_tokens: args.max_new_tokens,
        limit: args.limit,
        first_line: !args.full_answer,
    };
    let count = args.limit.map_or(data.len(), |l| l.min(data.len()));
    let bar = indicatif::ProgressBar::new(count as u64);
    let start = Instant::now();
    let mut tokens = 0;
    let (scores, predictions) = evaluate_qa(&loaded.model, &tokenizer, &data, &options, |n| {
        tokens += n;
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string_pretty(&scores)?);
    eprintln!(
        "qa: {} records, {tokens} prompt tokens in {seconds:.1}s ({:.0} tokens/s)",
        scores.count,
        tokens as f64 / seconds
    );
    if let Some(json) = &args.json {
        write_json(
            json,
            &serde_json::json!({ "scores": scores, "predictions": predictions }),
        )?;
    }
    Ok(())
}

fn ppl(args: PplArgs) -> Result<()> {
    let loaded = args.model.comet.load(args.model.model.as_deref())?;
    let tokenizer = loaded.tokenizer.context("the model has no tokenizer")?;
    let text = super::read_prompt(None, Some(args.text.clone()))?;
    let mut ids = tokenizer.encode(&text, false)?;
    if let Some(max) = args.max_tokens {
        ids.truncate(max);
    }
    let bar = super::token_bar(ids.len(), "ppl");
    let start = Instant::now();
    let chunks = chunk_perplexity(&loaded.model, &ids, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    println!(
        "{:>6} {:>7} {:>12} {:>15}",
        "chunk", "tokens", "with memory", "without memory"
    );
    for c in &chunks {
        println!(
            "{:>6} {:>7} {:>12.3} {:>15.3}",
            c.chunk, c.tokens, c.with_memory, c.without_memory
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "ppl: {} tokens, {} chunks in {seconds:.1}s ({:.0} tokens/s, each chunk read twice)",
        ids.len(),
        chunks.len(),
        ids.len() as f64 / seconds
    );
    if let Some(json) = &args.json {
        write_json(json, &chunks)?;
    }
    Ok(())
}
