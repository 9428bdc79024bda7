//! Whole inputs through the recurrence: the training loss, absorbing text into memory, and
//! the prefill that leaves the final chunk in a KV cache for decoding.

use burn::prelude::*;
use burn::tensor::DType;

use super::model::CometModel;
use crate::kernels::kernels;
use crate::layout::{check_ids, ChunkLayout, LayoutBuilder, Sequence};
use crate::memory::MemoryState;
use crate::model::KvCache;
use crate::{Error, Result};

/// What a prefill leaves for decoding.
pub struct Prefill<B: Backend> {
    /// Memory after every chunk but the final one.
    pub state: MemoryState<B>,
    /// Keys/values of the final chunk (its slots, text and compression tokens).
    pub cache: KvCache<B>,
    /// Logits `[vocab]` at the final text token.
    pub logits: Vec<f32>,
    /// Text tokens in the final chunk (decoding continues its compression stride).
    pub final_text: usize,
}

impl<B: Backend> CometModel<B> {
    /// Mean next-token loss over every chunk of a batch, as a `[1]` tensor whose graph
    /// spans all chunks (memory carries gradients back to the first one).
    pub fn loss(&self, batch: &[Sequence]) -> Result<Tensor<B, 1>> {
        self.loss_with(batch, &self.layout_builder())
    }

    /// [`Self::loss`] with a given layout builder (e.g. another chunk size).
    pub fn loss_with(&self, batch: &[Sequence], builder: &LayoutBuilder) -> Result<Tensor<B, 1>> {
        check_batch(batch)?;
        let mut total: Option<Tensor<B, 1>> = None;
        let mut count = 0usize;
        for chunk in self.reader(batch, builder, self.empty_state(batch.len()), false) {
            if let Some((nll, n)) = self.chunk_nll(&chunk.layout, chunk.hidden) {
                total = Some(match total {
                    Some(t) => t + nll,
                    None => nll,
                });
                count += n;
            }
        }
        let total =
            total.ok_or_else(|| Error::Input("no token in the batch has a target".into()))?;
        Ok(total / count as f32)
    }

    /// Summed next-token NLL `[1]` of a chunk's text tokens that have targets, and their
    /// number; `None` when no token of the chunk has a target. The output head runs only
    /// where there is a target (answer-only losses need a handful of a chunk's rows).
    pub fn chunk_nll(
        &self,
        layout: &ChunkLayout,
        hidden: Tensor<B, 3>,
    ) -> Option<(Tensor<B, 1>, usize)> {
        let device = hidden.device();
        let [batch, len, d] = hidden.dims();
        let n = layout.text_positions.len();
        // Rows of the flattened [batch * len] hidden states that predict a target.
        let (rows, targets): (Vec<i64>, Vec<usize>) = layout
            .targets
            .iter()
            .enumerate()
            .filter(|(_, &t)| t >= 0)
            .map(|(i, &t)| {
                (
                    ((i / n) * len + layout.text_positions[i % n]) as i64,
                    t as usize,
                )
            })
            .unzip();
        let k = rows.len();
        if k == 0 {
            return None;
        }
        let picked = hidden
            .reshape([batch * len, d])
            .select(0, Tensor::from_data(TensorData::new(rows, [k]), &device))
            .unsqueeze_dim::<3>(0);
        // The softmax in f32 whatever the compute type, as transformers does.
        let logits = self.llm.logits(picked).cast(DType::F32); // [1, k, vocab]
        let nll = kernels::<B>().nll(logits.squeeze_dim(0), &targets);
        Some((nll, k))
    }

    /// Reads `ids` entirely into memory (every chunk, the last included, updates it).
    pub fn absorb(
        &self,
        ids: &[u32],
        state: MemoryState<B>,
        mut on_chunk: impl FnMut(usize),
    ) -> Result<MemoryState<B>> {
        let seq = self.checked_sequence(ids, &state)?;
        let builder = self.layout_builder();
        let batch = [seq];
        let mut reader = self.reader(&batch, &builder, state, true);
        for chunk in reader.by_ref() {
            on_chunk(chunk.layout.text_counts[0]);
        }
        Ok(reader.into_state())
    }

    /// Reads `ids` for generation: every chunk but the final one into memory, the final
    /// one into a KV cache; returns the logits after the last token. A final chunk that is
    /// already full goes into memory too (its update is read in the same pass), and the cache
    /// holds the next chunk's memory prefix instead (then `final_text` is 0): decoding goes
    /// on without reading the chunk a second time.
    pub fn prefill(
        &self,
        ids: &[u32],
        state: MemoryState<B>,
        mut on_chunk: impl FnMut(usize),
    ) -> Result<Prefill<B>> {
        let seq = self.checked_sequence(ids, &state)?;
        let builder = self.layout_builder();
        let batch = [seq];
        let full = ids.len().is_multiple_of(self.comet.chunk_size);
        let mut reader = self.reader(&batch, &builder, state, full);
        while reader.remaining() > 1 {
            let chunk = reader.next().expect("chunks remain");
            on_chunk(chunk.layout.text_counts[0]);
        }
        let mut cache = KvCache::new(self.llm.layers.len());
        let out = match full {
            true => reader.next(),
            // The final chunk's memory update is not used: decoding reads the memory it
            // started from.
            false => reader.next_into_cache(&mut cache),
        }
        .expect("non-empty input has a chunk");
        let last = &out.layout;
        on_chunk(last.text_counts[0]);
        let position = *last.text_positions.last().expect("final chunk has text");
        let [b, _, d] = out.hidden.dims();
        let hidden = out.hidden.slice([0..b, position..position + 1, 0..d]);
        let logits = self
            .llm
            .logits(hidden)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits");
        let state = reader.into_state();
        if full {
            // The next chunk's memory prefix, ready for the first generated token.
            let next = builder.chunk(&batch, ids.len(), &Self::memory_shape(&state), false);
            self.read_chunk(&next, &state, Some(&mut cache));
        }
        Ok(Prefill {
            state,
            cache,
            logits,
            final_text: if full { 0 } else { last.text_counts[0] },
        })
    }

    /// Next-token logits of every text token of `ids` as the training forward computes them,
    /// handed to `on_chunk` one chunk at a time (`[text, vocab]`, with the chunk's targets).
    pub fn score(&self, ids: &[u32], mut on_chunk: impl FnMut(Tensor<B, 2>, &[i64])) -> Result<()> {
        let seq = self.checked_sequence(ids, &self.empty_state(1))?;
        let builder = self.layout_builder();
        let batch = [seq];
        for chunk in self.reader(&batch, &builder, self.empty_state(1), false) {
            let logits = self.text_logits(&chunk.layout, chunk.hidden);
            on_chunk(logits.squeeze_dim::<2>(0), &chunk.layout.targets);
        }
        Ok(())
    }

    fn checked_sequence(&self, ids: &[u32], state: &MemoryState<B>) -> Result<Sequence> {
        check_ids(ids, self.llm.config().vocab_size)?;
        if state.batch() != 1 {
            return Err(Error::Input(format!(
                "memory holds {} samples, inference reads one",
                state.batch()
            )));
        }
        Ok(Sequence::language_model(ids.to_vec()))
    }
}

/// Refuses an empty batch or an empty sample.
pub fn check_batch(batch: &[Sequence]) -> Result<()> {
    if batch.is_empty() || batch.iter().any(|s| s.tokens.is_empty()) {
        return Err(Error::Input(
            "a training batch or sample has no tokens".into(),
        ));
    }
    Ok(())
}
