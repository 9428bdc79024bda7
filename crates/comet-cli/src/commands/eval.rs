//! `comet eval passkey | qa | ppl`: retrieval grids, SCROLLS metrics, per-chunk perplexity.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use comet::data::{Filler, JsonlData, Passkey, DEFAULT_FILLER};
use comet::eval::{
    chunk_perplexity, evaluate_passkey, evaluate_qa, PasskeyCell, PasskeyGrid, QaOptions, Reader,
};
use comet::fsutil::{file_label, write_atomic};
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
    /// Redraws passkey heatmaps from their JSON reports (no model is run).
    Replot {
        /// Passkey reports written by `eval passkey --json`.
        #[arg(required = true)]
        json: Vec<PathBuf>,
    },
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
    /// Read each input whole with the plain base model (full attention, no memory): the
    /// reference CoMeT is compared with.
    #[arg(long)]
    full_attention: bool,
    /// Results JSON (the heatmap is written next to it as .png), rewritten after every cell.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the cells that an earlier run of the same grid (model, adapter, memory config,
    /// haystack, digits, seed, trials) left in --json and read only the others: a grid too
    /// long for one sitting is stopped and continued.
    #[arg(long, requires = "json")]
    resume: bool,
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
    match eval {
        Eval::Passkey(args) => passkey(args),
        Eval::Qa(args) => qa(args),
        Eval::Ppl(args) => ppl(args),
        Eval::Replot { json } => json
            .iter()
            .try_for_each(|path| plot_passkey_report(path, &super::read_json(path)?)),
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
    let model_path = super::model_path(args.model.model.as_deref())?;
    let loaded = args.model.comet.load(Some(&model_path))?;
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer")?;
    let filler = match &args.haystack {
        Some(path) => Filler::corpus(path)?,
        None => Filler::Repeated(DEFAULT_FILLER.to_string()),
    };
    let mut passkey = Passkey::new(tokenizer, filler);
    passkey.digits = args.digits;
    let grid = PasskeyGrid {
        lengths: args.lengths.clone(),
        depths: args.depths.clone(),
        trials: args.trials,
        seed: args.seed,
        batch_size: args.batch_size,
    };
    let reader = if args.full_attention {
        Reader::FullAttention(&loaded.model.llm)
    } else {
        Reader::Memory(&loaded.model)
    };
    let header = report_header(&args, &loaded, &model_path)?;
    let kept = match (&args.json, args.resume) {
        (Some(json), true) if json.exists() => resumable_cells(json, &header)?,
        _ => Vec::new(),
    };
    let todo: Vec<(usize, f64)> = grid_cells(&args)
        .filter(|&(l, d)| !kept.iter().any(|c| c.length == l && c.depth == d))
        .collect();
    let total: usize = todo.iter().map(|&(l, _)| l * args.trials).sum();
    if !kept.is_empty() {
        eprintln!(
            "resuming: {} cells kept, {} to read",
            kept.len(),
            todo.len()
        );
    }
    let bar = super::token_bar(total, "passkey");
    let mut cells = kept;
    for (length, depth) in todo {
        let one = PasskeyGrid {
            lengths: vec![length],
            depths: vec![depth],
            ..grid.clone()
        };
        cells.extend(evaluate_passkey(&reader, &passkey, &one, |_, tokens| {
            bar.inc(tokens as u64)
        })?);
        if let Some(json) = &args.json {
            write_passkey_report(&header, &cells, json)?;
        }
    }
    bar.finish_and_clear();
    // Grid order, whatever order the cells were read in.
    let order: Vec<_> = grid_cells(&args).collect();
    cells.retain(|c| order.contains(&(c.length, c.depth)));
    cells.sort_by_key(|c| order.iter().position(|&o| o == (c.length, c.depth)));
    print_passkey_table(&args, &cells);
    print_passkey_summary(&cells);
    match &args.json {
        Some(json) => plot_passkey_report(json, &write_passkey_report(&header, &cells, json)?),
        None => Ok(()),
    }
}

/// The grid's (length, depth) cells in reading order.
fn grid_cells(args: &PasskeyArgs) -> impl Iterator<Item = (usize, f64)> + '_ {
    args.lengths
        .iter()
        .flat_map(|&l| args.depths.iter().map(move |&d| (l, d)))
}

/// The cells of an earlier report at `json`, refused unless it was written for the same
/// grid (`header`): resuming must not mix models, adapters or samples.
fn resumable_cells(json: &Path, header: &serde_json::Value) -> Result<Vec<PasskeyCell>> {
    let report = super::read_json(json)?;
    let fields = header.as_object().context("report header")?;
    if let Some((key, value)) = fields.iter().find(|(k, v)| report[k.as_str()] != **v) {
        bail!(
            "{}: written with another `{key}` ({} in the report, {value} now); drop --resume or choose another --json",
            json.display(),
            report[key.as_str()]
        );
    }
    serde_json::from_value(report["cells"].clone())
        .with_context(|| format!("{}: unreadable `cells`", json.display()))
}

/// The run's one-line summary: exact keys, through memory only, key tokens, throughput
/// (over every cell of the report, read in this run or an earlier one).
fn print_passkey_summary(cells: &[PasskeyCell]) {
    let correct: usize = cells.iter().map(|c| c.correct).sum();
    let trials: usize = cells.iter().map(|c| c.trials).sum();
    let (memory_correct, memory_trials) = cells.iter().fold((0, 0), |(c, t), cell| {
        (c + cell.memory_correct, t + cell.memory_trials)
    });
    let token_accuracy = cells.iter().map(|c| c.token_accuracy).sum::<f64>() / cells.len() as f64;
    let (total, seconds) = tokens_and_seconds(cells);
    eprintln!(
        "passkey: {correct}/{trials} correct ({:.1}%; through memory only {memory_correct}/{memory_trials}; key tokens {:.1}%), {total} tokens in {seconds:.1}s ({:.0} tokens/s)",
        100.0 * correct as f64 / trials as f64,
        100.0 * token_accuracy,
        total as f64 / seconds
    );
}

/// Tokens read and seconds spent over `cells`.
fn tokens_and_seconds(cells: &[PasskeyCell]) -> (usize, f64) {
    let total = cells.iter().map(|c| c.length * c.trials).sum();
    (total, cells.iter().map(|c| c.seconds).sum())
}

/// What identifies a grid's samples and reader: model, adapter and their fingerprints,
/// memory config, haystack, digits, seed, trials.
fn report_header(
    args: &PasskeyArgs,
    loaded: &comet::comet::LoadedComet<comet::backend::Backend>,
    model_path: &std::path::Path,
) -> Result<serde_json::Value> {
    let adapter_name = args.model.comet.adapter.as_deref().map(file_label);
    Ok(serde_json::json!({
        "model": file_label(model_path),
        "base_fingerprint": comet::comet::base_fingerprint(&loaded.model.llm)?,
        "adapter": adapter_name,
        "fingerprint": loaded.model.fingerprint()?,
        "reader": if args.full_attention { "full attention" } else { "CoMeT" },
        "comet": loaded.model.comet,
        "digits": args.digits,
        "haystack": args.haystack.as_deref().map_or("repeated filler".into(), file_label),
        "seed": args.seed,
        "trials": args.trials,
    }))
}

/// Writes the JSON report (the grid's `header`, its cells, and the seconds they took) and
/// returns it.
fn write_passkey_report(
    header: &serde_json::Value,
    cells: &[PasskeyCell],
    json: &std::path::Path,
) -> Result<serde_json::Value> {
    let (total, seconds) = tokens_and_seconds(cells);
    let mut report = header.clone();
    report["seconds"] = seconds.into();
    report["tokens_per_second"] = (total as f64 / seconds).into();
    report["cells"] = serde_json::to_value(cells)?;
    write_json(json, &report)?;
    Ok(report)
}

/// Draws the heatmap of a passkey report (what `write_passkey_report` wrote) beside it.
fn plot_passkey_report(json: &Path, report: &serde_json::Value) -> Result<()> {
    let field = |cell: &serde_json::Value, key: &str| {
        cell[key]
            .as_f64()
            .with_context(|| format!("{}: a cell without `{key}`", json.display()))
    };
    let cells = report["cells"]
        .as_array()
        .with_context(|| format!("{}: no `cells`", json.display()))?
        .iter()
        .map(|c| {
            Ok((
                field(c, "length")?,
                field(c, "depth")?,
                field(c, "accuracy")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut lengths, mut depths) = (Vec::new(), Vec::new());
    for &(length, depth, _) in &cells {
        if !lengths.contains(&length) {
            lengths.push(length);
        }
        if !depths.contains(&depth) {
            depths.push(depth);
        }
    }
    let text = |key: &str| report[key].as_str().unwrap_or("?").to_string();
    let who = match (report["adapter"].as_str(), text("reader").as_str()) {
        (_, "full attention") => format!("{}, full attention", text("model")),
        (Some(adapter), _) => format!("{} + {adapter}{}", text("model"), memory_notes(report)),
        (None, _) => format!("{}{}", text("model"), memory_notes(report)),
    };
    let title = format!(
        "passkey accuracy: {who}, {}-digit keys, {} trials per cell",
        report["digits"], report["trials"]
    );
    let columns: Vec<String> = lengths.iter().map(|l| l.to_string()).collect();
    let rows: Vec<String> = depths.iter().map(|d| format!("{d}")).collect();
    let png = json.with_extension("png");
    crate::plot::heatmap(&png, &title, &columns, &rows, |r, c| {
        cells
            .iter()
            .find(|&&(l, d, _)| l == lengths[c] && d == depths[r])
            .map(|&(_, _, accuracy)| accuracy)
    })?;
    eprintln!("wrote {}", png.display());
    Ok(())
}

/// Accuracy per (length, depth), one row per length.
fn print_passkey_table(args: &PasskeyArgs, cells: &[PasskeyCell]) {
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
            .map(|c| {
                // '*': some needles of the cell sat in the question's own chunk.
                let mark = if c.in_question_chunk > 0 { "*" } else { " " };
                format!("{:>5.0}%{mark}", c.accuracy * 100.0)
            })
            .collect();
        println!("{length:>8} {row}");
    }
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

/// The memory's switches and budget for a heatmap title: " (no gate, budget 256)".
fn memory_notes(report: &serde_json::Value) -> String {
    let comet = &report["comet"];
    let off = |key: &str| comet[key].as_bool() == Some(false);
    let mut notes = Vec::new();
    match (off("use_global"), off("use_gate")) {
        (true, _) => notes.push("no global memory".to_string()),
        (false, true) => notes.push("no gate".to_string()),
        _ => {}
    }
    match (off("use_temp"), comet["temp_budget"].as_u64()) {
        (true, _) => notes.push("no temporary memory".to_string()),
        (false, Some(budget)) => notes.push(format!("budget {budget}")),
        _ => {}
    }
    if comet["cross_chunk_span"].as_bool() == Some(true) {
        notes.push("spans across chunks".to_string());
    }
    match notes.is_empty() {
        true => String::new(),
        false => format!(" ({})", notes.join(", ")),
    }
}
