//! `comet generate`: streamed text generation with throughput figures.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use comet::generate::{generate, CachedDecoder, GenerationConfig, SamplingConfig};
use comet::tokenizer::Message;

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
}

fn parse_unit(s: &str) -> std::result::Result<f32, String> {
    let p: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("{p} is not in (0, 1]"))
    }
}

/// Runs `comet generate`.
pub fn run(args: Args) -> Result<()> {
    let prompt = super::read_prompt(args.prompt, args.prompt_file)?;
    let loaded = super::load(args.model.as_deref())?;
    let tokenizer = loaded.tokenizer()?;
    let text = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", &prompt));
        tokenizer.apply_chat_template(&messages, true, &serde_json::json!({}))?
    } else {
        prompt
    };
    let ids = tokenizer.encode(&text, !args.chat)?;
    let mut stop_tokens = loaded.model.config().eos_token_ids.clone();
    if let Some(end) = tokenizer.token_id("<|im_end|>") {
        stop_tokens.push(end);
    }
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        stop_tokens,
        sampling: SamplingConfig {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
    };
    let mut decoder = CachedDecoder::new(&loaded.model);
    let mut stream = tokenizer.inner.decode_stream(false);
    let mut stdout = std::io::stdout();
    print!("{text}");
    let (_, stats) = generate(&mut decoder, &ids, &config, |id| {
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
    Ok(())
}
