//! The chunk loop, written once: a batch read chunk by chunk, the memory carried from
//! each chunk to the next. The training loss, absorbing a document, prefill, scoring and
//! the evaluations all iterate a [`ChunkReader`].

use burn::prelude::*;

use super::model::CometModel;
use crate::layout::{ChunkLayout, LayoutBuilder, Sequence};
use crate::memory::MemoryState;
use crate::model::KvCache;

/// One chunk read: its layout and the final normed hidden states `[batch, len, hidden]`.
pub struct ReadChunk<B: Backend> {
    /// Where the chunk's text, slots and special tokens lie.
    pub layout: ChunkLayout,
    /// Hidden states after the final norm.
    pub hidden: Tensor<B, 3>,
}

/// An iterator over the chunks of a batch that reads each one from the memory the
/// previous one left (see [`CometModel::reader`]).
pub struct ChunkReader<'a, B: Backend, I: ExactSizeIterator<Item = ChunkLayout>> {
    model: &'a CometModel<B>,
    layouts: I,
    state: MemoryState<B>,
}

impl<B: Backend> CometModel<B> {
    /// Reads `batch` chunk by chunk from `state`; `updates_last` makes the final chunk
    /// update the memory too (its readouts are laid out), as absorbing a document needs.
    pub fn reader<'a>(
        &'a self,
        batch: &'a [Sequence],
        builder: &'a LayoutBuilder,
        state: MemoryState<B>,
        updates_last: bool,
    ) -> ChunkReader<'a, B, impl ExactSizeIterator<Item = ChunkLayout> + 'a> {
        let layouts = builder.iter(batch, Self::memory_shape(&state), updates_last);
        self.reader_over(layouts, state)
    }

    /// Reads the given chunk layouts in order from `state` (laid out for it).
    pub fn reader_over<I: ExactSizeIterator<Item = ChunkLayout>>(
        &self,
        layouts: impl IntoIterator<IntoIter = I>,
        state: MemoryState<B>,
    ) -> ChunkReader<'_, B, I> {
        ChunkReader {
            model: self,
            layouts: layouts.into_iter(),
            state,
        }
    }
}

impl<B: Backend, I: ExactSizeIterator<Item = ChunkLayout>> ChunkReader<'_, B, I> {
    /// The memory after the chunks read so far.
    pub fn state(&self) -> &MemoryState<B> {
        &self.state
    }

    /// The memory after the chunks read.
    pub fn into_state(self) -> MemoryState<B> {
        self.state
    }

    /// How many chunks are left to read.
    pub fn remaining(&self) -> usize {
        self.layouts.len()
    }

    /// Reads the next chunk into `cache` (its keys and values stay there for decoding),
    /// leaving the memory as it was before the chunk: decoding reads from that memory.
    pub fn next_into_cache(&mut self, cache: &mut KvCache<B>) -> Option<ReadChunk<B>> {
        let layout = self.layouts.next()?;
        let out = self.model.read_chunk(&layout, &self.state, Some(cache));
        Some(ReadChunk {
            layout,
            hidden: out.hidden,
        })
    }
}

impl<B: Backend, I: ExactSizeIterator<Item = ChunkLayout>> Iterator for ChunkReader<'_, B, I> {
    type Item = ReadChunk<B>;

    fn next(&mut self) -> Option<ReadChunk<B>> {
        let layout = self.layouts.next()?;
        let out = self.model.read_chunk(&layout, &self.state, None);
        self.state = out.state;
        Some(ReadChunk {
            layout,
            hidden: out.hidden,
        })
    }
}
