//! Autoregressive generation over any [`Decoder`], with streaming and throughput figures.

mod comet;
mod sampler;

use std::time::{Duration, Instant};

use burn::prelude::*;

pub use comet::CometDecoder;
pub use sampler::{argmax, Sampler, SamplingConfig};

use crate::model::{KvCache, Llm};
use crate::tokenizer::Tokenizer;
use crate::Result;

/// Something that turns a prompt and then one token at a time into next-token logits.
///
/// The plain model implements it with a KV cache; CoMeT implements it with chunked memory.
pub trait Decoder {
    /// Reads the prompt and returns the logits `[vocab]` of its last position.
    fn prefill(&mut self, ids: &[u32]) -> Result<Vec<f32>>;
    /// Appends one token and returns the logits `[vocab]` that follow it.
    fn step(&mut self, id: u32) -> Result<Vec<f32>>;
}

/// Plain full-attention decoding with a KV cache.
pub struct CachedDecoder<'a, B: Backend> {
    model: &'a Llm<B>,
    cache: KvCache<B>,
}

impl<'a, B: Backend> CachedDecoder<'a, B> {
    /// A decoder with an empty cache.
    pub fn new(model: &'a Llm<B>) -> Self {
        Self {
            model,
            cache: KvCache::new(model.layers.len()),
        }
    }

    /// A decoder whose cache stores keys and values as `dtype` (`f16`: half the memory and
    /// faster decoding after long prompts, as llama.cpp's default cache).
    pub fn with_cache_dtype(model: &'a Llm<B>, dtype: burn::tensor::FloatDType) -> Self {
        Self {
            model,
            cache: KvCache::with_dtype(model.layers.len(), dtype),
        }
    }

    fn run(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let device = self.model.embed_tokens.weight.device();
        let ids = token_tensor::<B>(ids, self.model.config().vocab_size, &device)?;
        Ok(self.model.forward_last(ids, Some(&mut self.cache)))
    }
}

impl<B: Backend> Decoder for CachedDecoder<'_, B> {
    fn prefill(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        self.run(ids)
    }
    fn step(&mut self, id: u32) -> Result<Vec<f32>> {
        self.run(&[id])
    }
}

pub use crate::layout::check_ids;

/// Token ids `[1, seq]` on `device`, checked by [`check_ids`].
pub fn token_tensor<B: Backend>(
    ids: &[u32],
    vocab: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2, Int>> {
    check_ids(ids, vocab)?;
    let data: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    Ok(
        Tensor::<B, 1, Int>::from_data(TensorData::new(data, [ids.len()]), device)
            .reshape([1, ids.len()]),
    )
}

/// What to generate and when to stop.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    /// Largest number of new tokens.
    pub max_new_tokens: usize,
    /// Token ids that end generation (not emitted).
    pub stop_tokens: Vec<u32>,
    /// Token choice.
    pub sampling: SamplingConfig,
}

/// Throughput of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerationStats {
    /// Prompt tokens read.
    pub prefill_tokens: usize,
    /// Time spent reading the prompt.
    pub prefill_time: Duration,
    /// Tokens generated (each costs one decoding step, the first one excepted).
    pub decode_tokens: usize,
    /// Time spent in decoding steps.
    pub decode_time: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tps(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill_time.as_secs_f64().max(1e-9)
    }
    /// Generated tokens per second of decoding.
    pub fn decode_tps(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_time.as_secs_f64().max(1e-9)
    }
}

/// The model's end-of-sequence ids plus the chat end-of-turn token, if the vocabulary has one.
pub fn stop_tokens(mut eos: Vec<u32>, tokenizer: &Tokenizer) -> Vec<u32> {
    eos.extend(tokenizer.token_id("<|im_end|>"));
    eos.extend(tokenizer.token_id("<|eot_id|>"));
    eos
}

/// Generates after `prompt`, calling `on_token` with each new token as soon as it is chosen.
pub fn generate(
    decoder: &mut dyn Decoder,
    prompt: &[u32],
    config: &GenerationConfig,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<(Vec<u32>, GenerationStats)> {
    let mut sampler = Sampler::new(config.sampling.clone());
    let mut stats = GenerationStats {
        prefill_tokens: prompt.len(),
        ..Default::default()
    };
    let start = Instant::now();
    let mut logits = decoder.prefill(prompt)?;
    stats.prefill_time = start.elapsed();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < config.max_new_tokens {
        let next = sampler.sample(&logits);
        if config.stop_tokens.contains(&next) {
            break;
        }
        out.push(next);
        on_token(next)?;
        if out.len() == config.max_new_tokens {
            break;
        }
        logits = decoder.step(next)?;
        stats.decode_tokens += 1;
    }
    stats.decode_time = start.elapsed();
    Ok((out, stats))
}
