//! What CoMeT keeps between chunks: per layer the global state S and the temporary queue.

use burn::prelude::*;

/// One layer's memory between chunks.
#[derive(Debug, Clone)]
pub struct LayerState<B: Backend> {
    /// Global state S `[batch, m, hidden]`; `None` before the first chunk.
    pub global: Option<Tensor<B, 3>>,
    /// Temporary queue `[batch, queue_slots, hidden]`, sample b's real entries first
    /// (`MemoryState::queue_lengths[b]` of them); `None` while empty for every sample.
    pub queue: Option<Tensor<B, 3>>,
    /// Score `[batch, 1, 1]` the kept global span was chosen with
    /// ([`super::GlobalSource::SharedSpan`]'s salience gate); `None` for other sources.
    pub salience: Option<Tensor<B, 3>>,
    /// Layer inputs `[batch, memory_slots - 1, hidden]` of the last text tokens read, the
    /// newest last (zeros before the first), where a span may start
    /// ([`super::CometConfig::cross_chunk_span`]); `None` otherwise.
    pub tail: Option<Tensor<B, 3>>,
}

impl<B: Backend> LayerState<B> {
    /// No memory yet.
    pub fn empty() -> Self {
        Self {
            global: None,
            queue: None,
            salience: None,
            tail: None,
        }
    }

    /// Every tensor of the state through `f` (moved to a device, made a leaf, ...).
    pub fn map<C: Backend>(self, f: impl Fn(Tensor<B, 3>) -> Tensor<C, 3>) -> LayerState<C> {
        LayerState {
            global: self.global.map(&f),
            queue: self.queue.map(&f),
            salience: self.salience.map(&f),
            tail: self.tail.map(&f),
        }
    }
}

/// The whole memory of a batch: constant size however much has been read.
#[derive(Debug, Clone)]
pub struct MemoryState<B: Backend> {
    /// Per layer.
    pub layers: Vec<LayerState<B>>,
    /// Real temporary-memory entries per sample.
    pub queue_lengths: Vec<usize>,
    /// Text tokens read so far per sample.
    pub tokens_read: Vec<usize>,
}

impl<B: Backend> MemoryState<B> {
    /// The empty memory of a batch of `batch` samples for a model of `layers` layers.
    pub fn empty(layers: usize, batch: usize) -> Self {
        Self {
            layers: vec![LayerState::empty(); layers],
            queue_lengths: vec![0; batch],
            tokens_read: vec![0; batch],
        }
    }

    /// Whether a global state exists (after the first chunk with readouts).
    pub fn has_global(&self) -> bool {
        self.layers.first().is_some_and(|l| l.global.is_some())
    }

    /// Number of samples.
    pub fn batch(&self) -> usize {
        self.queue_lengths.len()
    }
}
