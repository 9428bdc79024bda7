//! Decoding over CoMeT memory: the prompt is read chunk by chunk, its final chunk becomes a
//! KV cache, and a hidden compression token follows every `stride` generated tokens so the
//! layout matches what training saw.
//!
//! When the final chunk is full, it is absorbed into memory and a new chunk starts, exactly
//! where the training layout starts one; generation is therefore unbounded in constant
//! memory. (The reference keeps extending its cache instead.)

use burn::prelude::*;

use super::Decoder;
use crate::comet::CometModel;
use crate::memory::{MemoryState, TempSource};
use crate::model::{AttentionMask, ForwardInput, KvCache, NoHook};
use crate::Result;

/// A [`Decoder`] that reads its prompt into CoMeT memory.
pub struct CometDecoder<'a, B: Backend> {
    model: &'a CometModel<B>,
    /// Memory the prompt starts from (and, after prefill, the memory of all but its final chunk).
    pub state: MemoryState<B>,
    cache: KvCache<B>,
    /// Text tokens of the current (final) chunk so far.
    chunk_tokens: Vec<u32>,
    /// Told the text tokens of each chunk the prefill reads (a progress bar).
    on_chunk: Option<Box<dyn FnMut(usize) + 'a>>,
}

impl<'a, B: Backend> CometDecoder<'a, B> {
    /// A decoder starting from `state` (empty memory, or a loaded snapshot).
    pub fn new(model: &'a CometModel<B>, state: MemoryState<B>) -> Self {
        Self {
            cache: KvCache::new(model.llm.layers.len()),
            model,
            state,
            chunk_tokens: Vec::new(),
            on_chunk: None,
        }
    }

    /// Reports the text tokens of every chunk the prefill reads to `on_chunk`.
    pub fn with_progress(mut self, on_chunk: impl FnMut(usize) + 'a) -> Self {
        self.on_chunk = Some(Box::new(on_chunk));
        self
    }
}

impl<B: Backend> Decoder for CometDecoder<'_, B> {
    fn prefill(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let on_chunk = &mut self.on_chunk;
        let prefill = self.model.prefill(ids, self.state.clone(), |n| {
            if let Some(f) = on_chunk.as_mut() {
                f(n)
            }
        })?;
        self.state = prefill.state;
        self.cache = prefill.cache;
        self.chunk_tokens = ids[ids.len() - prefill.final_text..].to_vec();
        Ok(prefill.logits)
    }

    fn step(&mut self, id: u32) -> Result<Vec<f32>> {
        let c = &self.model.comet;
        if self.chunk_tokens.len() == c.chunk_size {
            let full = std::mem::take(&mut self.chunk_tokens);
            self.state = self.model.absorb(&full, self.state.clone(), |_| {})?;
            return self.prefill(&[id]);
        }
        self.chunk_tokens.push(id);
        let mut ids = vec![id];
        // With text-input entries no compression token is laid out (see `TempSource`).
        if c.use_temp
            && c.temp_source == TempSource::CompressionOutput
            && self.chunk_tokens.len().is_multiple_of(c.compression_stride)
        {
            ids.push(self.model.special_tokens().compression);
        }
        let n = ids.len();
        let device = self.model.llm.embed_tokens.weight.device();
        let start = self.cache.len() as i64;
        let positions = Tensor::arange(start..start + n as i64, &device).reshape([1, n]);
        let hidden = self.model.embed(&ids, 1, n);
        let input = ForwardInput {
            positions,
            mask: AttentionMask::Causal,
            cache: Some(&mut self.cache),
            memory: 0,
        };
        let hidden = self.model.llm.forward_hidden(hidden, input, &mut NoHook);
        // The prediction comes from the text token; the compression token is hidden.
        let [_, _, d] = hidden.dims();
        let logits = self.model.llm.logits(hidden.slice([0..1, 0..1, 0..d]));
        Ok(logits
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits"))
    }
}
