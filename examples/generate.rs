//! Library use of the base model: load a model and complete a prompt greedily.
//!
//! ```bash
//! cargo run --example generate -- ~/.cache/comet/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "The capital of France is"
//! ```

use comet::backend::{self, Backend};
use comet::generate::{generate, CachedDecoder, GenerationConfig, SamplingConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(prompt)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: generate MODEL PROMPT");
    };
    let device = backend::device()?;
    let loaded = comet::load_model::<Backend>(model.as_ref(), &device)?;
    let tokenizer = loaded.tokenizer()?;
    let ids = tokenizer.encode(&prompt, true)?;
    let config = GenerationConfig {
        max_new_tokens: 16,
        stop_tokens: loaded.model.config().eos_token_ids.clone(),
        sampling: SamplingConfig::default(),
    };
    let mut decoder = CachedDecoder::new(&loaded.model);
    let (out, stats) = generate(&mut decoder, &ids, &config, |_| Ok(()))?;
    println!("{prompt}{}", tokenizer.decode(&out)?);
    eprintln!("{:.1} tokens/s decoding", stats.decode_tps());
    Ok(())
}
