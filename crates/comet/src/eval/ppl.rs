//! Per-chunk perplexity of a text, read with memory (the CoMeT recurrence) and without it
//! (every chunk from empty memory), so the gain memory brings is visible chunk by chunk.

use burn::prelude::*;
use serde::Serialize;

use crate::comet::CometModel;
use crate::layout::Sequence;
use crate::Result;

/// Perplexities of one chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkPerplexity {
    /// 0-based chunk index.
    pub chunk: usize,
    /// Tokens scored in the chunk.
    pub tokens: usize,
    /// Perplexity with the memory of all earlier chunks.
    pub with_memory: f64,
    /// Perplexity of the chunk read from empty memory.
    pub without_memory: f64,
}

/// Per-chunk perplexities of `ids` (language-model targets), `on_chunk` after each chunk.
pub fn chunk_perplexity<B: Backend>(
    model: &CometModel<B>,
    ids: &[u32],
    mut on_chunk: impl FnMut(usize),
) -> Result<Vec<ChunkPerplexity>> {
    crate::layout::check_ids(ids, model.llm.config().vocab_size)?;
    let batch = [Sequence::language_model(ids.to_vec())];
    let builder = model.layout_builder();
    let empty = model.empty_state(1);
    let mut out = Vec::new();
    let mut start = 0;
    for (chunk, with) in model
        .reader(&batch, &builder, empty.clone(), false)
        .enumerate()
    {
        let layout = with.layout;
        // Alone, the chunk is laid out for empty memory (no temporary slots), keeping the
        // stream's targets so its last token still predicts the next chunk's first.
        let text = layout.text_counts[0];
        let alone = [Sequence {
            tokens: batch[0].tokens[start..start + text].to_vec(),
            targets: batch[0].targets[start..start + text].to_vec(),
        }];
        start += text;
        let alone = builder
            .iter(&alone, CometModel::<B>::memory_shape(&empty), false)
            .next()
            .expect("a chunk of text has a layout");
        let without = model.read_chunk(&alone, &empty, None);
        if let (Some((a, n)), Some((b, _))) = (
            model.chunk_nll(&layout, with.hidden),
            model.chunk_nll(&alone, without.hidden),
        ) {
            let ppl = |t: Tensor<B, 1>| (t.into_scalar().elem::<f64>() / n as f64).exp();
            out.push(ChunkPerplexity {
                chunk,
                tokens: n,
                with_memory: ppl(a),
                without_memory: ppl(b),
            });
        }
        on_chunk(text);
    }
    Ok(out)
}
