//! `comet generate`: streamed text generation with throughput figures.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::FloatDType;
use comet::comet::load_snapshot;
use comet::generate::{
    generate, stop_tokens, CachedDecoder, CometDecoder, Decoder, GenerationConfig, SamplingConfig,
};
use comet::tokenizer::{Message, Tokenizer};

use super::comet_args::CometArgs;

/// Arguments of `comet generate`.
#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model directory or `.gguf` file (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The prompt text.
    #[arg(long, conflicts_with = "prompt_file")]
    prompt: Option<String>,
    /// A UTF-8 file holding the prompt.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    /// A JSON file of prompt token ids (a list, or an object with an `ids` list): the same
    /// tokens another program is given, for benchmarks.
    #[arg(long, conflicts_with_all = ["prompt", "prompt_file", "chat"])]
    prompt_ids: Option<PathBuf>,
    /// Keep only the first N prompt tokens.
    #[arg(long)]
    prompt_tokens: Option<usize>,
    /// Keep generating past end-of-sequence tokens (benchmarks decode a fixed count).
    #[arg(long)]
    ignore_eos: bool,
    /// Write the throughput figures and the generated ids to this JSON file.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// Float type of the key/value cache in plain decoding (default: the model's): `f16`
    /// halves its memory and the bytes each step reads after a long prompt (llama.cpp's
    /// default cache type).
    #[arg(long, value_enum)]
    kv_cache: Option<CacheType>,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Largest number of new tokens.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep the k most likely tokens when sampling (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0, value_parser = parse_unit)]
    top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Answer from a memory snapshot made by `comet ingest` (implies --comet).
    #[arg(long)]
    memory: Option<PathBuf>,
    /// A long UTF-8 document read (chunk by chunk, into memory) before the prompt, which
    /// then asks about it (implies --comet).
    #[arg(long)]
    document: Option<PathBuf>,
    #[command(flatten)]
    comet: CometArgs,
}

/// Float types a key/value cache may hold.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CacheType {
    F32,
    F16,
    Bf16,
}

impl From<CacheType> for FloatDType {
    fn from(t: CacheType) -> Self {
        match t {
            CacheType::F32 => FloatDType::F32,
            CacheType::F16 => FloatDType::F16,
            CacheType::Bf16 => FloatDType::BF16,
        }
    }
}

fn parse_unit(s: &str) -> std::result::Result<f32, String> {
    let p: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("{p} is not in (0, 1]"))
    }
}

/// The prompt as token ids: read from `--prompt-ids`, or the prompt text encoded (through
/// the chat template if asked); cut to `--prompt-tokens`.
fn prompt_ids(args: &Args, tokenizer: &Tokenizer, prompt: Option<&str>) -> Result<Vec<u32>> {
    let mut ids = match (&args.prompt_ids, prompt) {
        (Some(path), _) => read_ids(path)?,
        (None, Some(prompt)) => encode_prompt(args, tokenizer, prompt)?,
        (None, None) => anyhow::bail!("no prompt"),
    };
    if let Some(n) = args.prompt_tokens {
        if n == 0 || n > ids.len() {
            anyhow::bail!("--prompt-tokens {n}: the prompt has {} tokens", ids.len());
        }
        ids.truncate(n);
    }
    Ok(ids)
}

/// Token ids from a JSON list or an object's `ids` list.
fn read_ids(path: &std::path::Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read prompt ids {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let list = value.get("ids").unwrap_or(&value).clone();
    let ids: Vec<u32> = serde_json::from_value(list)
        .with_context(|| format!("{}: expected a list of token ids", path.display()))?;
    if ids.is_empty() {
        anyhow::bail!("{}: no token ids", path.display());
    }
    Ok(ids)
}

fn encode_prompt(args: &Args, tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    if !args.chat {
        return Ok(tokenizer.encode(prompt, true)?);
    }
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new("system", system));
    }
    messages.push(Message::new("user", prompt));
    let text = tokenizer.apply_chat_template(&messages, true, &serde_json::json!({}))?;
    Ok(tokenizer.encode(&text, false)?)
}

/// Runs `comet generate`.
pub fn run(args: Args) -> Result<()> {
    // A bad prompt fails before the model loads.
    let prompt = match &args.prompt_ids {
        Some(_) => None,
        None => Some(super::read_prompt(
            args.prompt.clone(),
            args.prompt_file.clone(),
        )?),
    };
    if args.comet.enabled() || args.memory.is_some() || args.document.is_some() {
        return run_comet(&args, prompt);
    }
    let loaded = super::load(args.model.as_deref())?;
    let tokenizer = loaded.tokenizer()?;
    let ids = prompt_ids(&args, tokenizer, prompt.as_deref())?;
    let stop = stop_tokens(loaded.model.config().eos_token_ids.clone(), tokenizer);
    let mut decoder = match args.kv_cache {
        Some(t) => CachedDecoder::with_cache_dtype(&loaded.model, t.into()),
        None => CachedDecoder::new(&loaded.model),
    };
    stream(&args, tokenizer, &mut decoder, &ids, stop)
}

/// `generate` over CoMeT memory: a snapshot's memory, a long document read chunk by chunk,
/// then the prompt.
fn run_comet(args: &Args, prompt: Option<String>) -> Result<()> {
    if args.kv_cache.is_some() {
        // CoMeT's cache holds one chunk and its memory: small whatever its type.
        anyhow::bail!("--kv-cache applies to plain decoding, not with CoMeT memory");
    }
    let loaded = args.comet.load(args.model.as_deref())?;
    let tokenizer = loaded
        .tokenizer
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("this model has no tokenizer"))?;
    // Text a snapshot has not read into memory yet comes first.
    let (state, mut ids) = match &args.memory {
        Some(path) => {
            let snapshot = load_snapshot(&loaded.model, path)?;
            eprintln!(
                "memory: {} ({} tokens read)",
                path.display(),
                snapshot.state.tokens_read[0] + snapshot.pending.len()
            );
            (snapshot.state, snapshot.pending)
        }
        None => (loaded.model.empty_state(1), Vec::new()),
    };
    if let Some(path) = &args.document {
        let text = super::read_prompt(None, Some(path.clone()))
            .with_context(|| format!("reading the document {}", path.display()))?;
        ids.extend(tokenizer.encode(&text, false)?);
    }
    ids.extend(prompt_ids(args, tokenizer, prompt.as_deref())?);
    let stop = stop_tokens(loaded.model.llm.config().eos_token_ids.clone(), tokenizer);
    // Long inputs show their reading: every chunk but the last goes into memory.
    let bar = super::token_bar(ids.len(), "reading");
    if ids.len() <= loaded.model.comet.chunk_size {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut decoder = CometDecoder::new(&loaded.model, state).with_progress(|n| {
        bar.inc(n as u64);
        if bar.position() >= ids.len() as u64 {
            bar.finish_and_clear(); // before the answer is printed
        }
    });
    stream(args, tokenizer, &mut decoder, &ids, stop)
}

/// Generates with `decoder`, printing text as it comes and the throughput at the end.
fn stream(
    args: &Args,
    tokenizer: &Tokenizer,
    decoder: &mut dyn Decoder,
    ids: &[u32],
    stop_tokens: Vec<u32>,
) -> Result<()> {
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        stop_tokens: if args.ignore_eos {
            Vec::new()
        } else {
            stop_tokens
        },
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
    };
    let mut stream = tokenizer.inner.decode_stream(false);
    let mut stdout = std::io::stdout();
    // Echo short prompts; a long document would drown the answer.
    if ids.len() <= 256 {
        print!("{}", tokenizer.decode(ids)?);
    }
    let (generated, stats) = generate(decoder, ids, &config, |id| {
        if let Some(piece) = stream
            .step(id)
            .map_err(|e| comet::Error::Tokenizer(e.to_string()))?
        {
            print!("{piece}");
            let _ = stdout.flush();
        }
        Ok(())
    })?;
    println!();
    eprintln!(
        "prefill: {} tokens in {:.2}s ({:.1} tokens/s) | decode: {} tokens in {:.2}s ({:.1} tokens/s) | backend {}",
        stats.prefill_tokens,
        stats.prefill_time.as_secs_f64(),
        stats.prefill_tps(),
        stats.decode_tokens,
        stats.decode_time.as_secs_f64(),
        stats.decode_tps(),
        comet::backend::NAME,
    );
    if let Some(path) = &args.stats_json {
        write_stats(path, &stats, &generated)?;
    }
    Ok(())
}

/// The throughput figures and generated ids as JSON (`--stats-json`).
fn write_stats(
    path: &std::path::Path,
    stats: &comet::generate::GenerationStats,
    generated: &[u32],
) -> Result<()> {
    let json = serde_json::json!({
        "backend": comet::backend::NAME,
        "prefill_tokens": stats.prefill_tokens,
        "prefill_seconds": stats.prefill_time.as_secs_f64(),
        "prefill_tokens_per_s": stats.prefill_tps(),
        "decode_tokens": stats.decode_tokens,
        "decode_seconds": stats.decode_time.as_secs_f64(),
        "decode_tokens_per_s": stats.decode_tps(),
        "generated_ids": generated,
    });
    let text = serde_json::to_string_pretty(&json).expect("serializable");
    Ok(comet::fsutil::write_atomic(path, text.as_bytes())?)
}
