//! The CoMeT recurrence inside one chunk: memory in before each layer, memory out after it.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::indices::{gather_rows, ChunkIndices};
use crate::layout::ChunkLayout;
use crate::memory::{
    padding_penalty, quote, span_weights, trace_span_start, CometConfig, Gate, GlobalSource,
    LayerMemory, LayerState, TempSource,
};
use crate::model::LayerHook;

/// One chunk's memory step at any layer: what the chunk's slots read before the layer, and
/// the layer's memory after it. Chunk-major reading ([`ChunkHook`]) and layer-major reading
/// (context parallelism) both go through it.
pub struct ChunkMemory<'a, B: Backend> {
    /// Per-layer memory modules.
    pub memory: &'a [LayerMemory<B>],
    /// Memory sizes and switches.
    pub config: &'a CometConfig,
    /// The chunk being read.
    pub layout: &'a ChunkLayout,
    /// Its device-side indices.
    pub indices: &'a ChunkIndices<B>,
}

impl<B: Backend> ChunkMemory<'_, B> {
    fn keep_inactive(&self, new: Tensor<B, 3>, old: Option<&Tensor<B, 3>>) -> Tensor<B, 3> {
        match old {
            Some(old) if !self.indices.all_active => {
                let a = self.indices.active.clone().cast(new.dtype());
                new * a.clone() + old.clone() * (a.neg() + 1.0)
            }
            _ => new,
        }
    }

    /// The input of layer `layer` `[batch, seq, hidden]` with its slots replaced by `state`.
    pub fn read(&self, layer: usize, hidden: Tensor<B, 3>, state: &LayerState<B>) -> Tensor<B, 3> {
        let (g, t) = (self.layout.global_slots, self.layout.temp_slots);
        let memory = self.layout.memory_slots();
        if memory == 0 {
            return hidden;
        }
        let [batch, len, d] = hidden.dims();
        let mut parts = Vec::with_capacity(3);
        if g > 0 {
            let s = state
                .global
                .clone()
                .expect("global slots imply a global state");
            parts.push(self.memory[layer].global.slots(s));
        }
        if t > 0 {
            let queue = state.queue.clone().expect("temporary slots imply a queue");
            parts.push(queue.slice([0..batch, 0..t, 0..d]));
        }
        parts.push(hidden.slice([0..batch, memory..len, 0..d]));
        Tensor::cat(parts, 1)
    }

    /// Layer `layer`'s memory after the chunk, from the layer's `input` (as [`Self::read`]
    /// returned it), its output `hidden` and `old`. A shared span's global state is not
    /// written here but by [`Self::write_shared_span`], once every layer has run.
    pub fn write(
        &self,
        layer: usize,
        input: &Tensor<B, 3>,
        hidden: &Tensor<B, 3>,
        old: &LayerState<B>,
    ) -> LayerState<B> {
        LayerState {
            global: self.write_global(layer, input, hidden, old.global.clone()),
            queue: self.write_queue(layer, input, hidden, old.queue.as_ref()),
            salience: old.salience.clone(),
            tail: old.tail.clone(),
        }
    }

    /// The readout outputs `[batch, m, hidden]` of a layer's output, if the chunk has them.
    fn readouts(&self, hidden: &Tensor<B, 3>) -> Option<Tensor<B, 3>> {
        let start = self.layout.readout_start?;
        let [batch, _, d] = hidden.dims();
        let end = start + self.config.memory_slots;
        Some(hidden.clone().slice([0..batch, start..end, 0..d]))
    }

    /// The text-token rows `[batch, n, hidden]` of a layer's input and which are real
    /// `[batch, 1, n]`, for text-sourced global memories.
    fn text(&self, input: &Tensor<B, 3>) -> Option<(Tensor<B, 3>, Tensor<B, 3>)> {
        let (positions, real) = self.indices.text.as_ref()?;
        Some((input.clone().select(1, positions.clone()), real.clone()))
    }

    /// The gated global state after the chunk (unchanged without readouts).
    fn write_global(
        &self,
        layer: usize,
        input: &Tensor<B, 3>,
        hidden: &Tensor<B, 3>,
        old: Option<Tensor<B, 3>>,
    ) -> Option<Tensor<B, 3>> {
        let Some(readouts) = self.readouts(hidden) else {
            return old;
        };
        let global = &self.memory[layer].global;
        let (candidates, gate) = match (self.text(input), self.config.global_source) {
            (None, _) => (readouts, Gate::PerSlot),
            (Some(_), GlobalSource::SharedSpan) => return old,
            (Some((text, real)), GlobalSource::TextSpan) => {
                (global.span(readouts, text, real), Gate::Shared)
            }
            (Some((text, real)), _) => (global.pool(readouts, text, real), Gate::PerSlot),
        };
        let gate = if self.config.use_gate {
            gate
        } else {
            Gate::Off
        };
        let updated = global.update(candidates, old.clone(), gate);
        Some(self.keep_inactive(updated, old.as_ref()))
    }

    /// Layer `layer`'s part of a shared span (`None` for other sources or without
    /// readouts): the text a span may quote, the layer's start scores over it, and the
    /// tail the next chunk's span may start in.
    pub fn span_part(
        &self,
        layer: usize,
        input: &Tensor<B, 3>,
        hidden: &Tensor<B, 3>,
        old: &LayerState<B>,
    ) -> Option<SpanPart<B>> {
        if self.config.global_source != GlobalSource::SharedSpan {
            return None;
        }
        let readouts = self.readouts(hidden)?;
        let (mut text, _) = self.text(input)?;
        let mut tail = None;
        if let Some((next, _)) = &self.indices.tail {
            let [batch, rows] = next.dims();
            let d = text.dims()[2];
            let before = old.tail.clone().unwrap_or_else(|| {
                Tensor::<B, 3>::zeros([batch, rows, d], &text.device()).cast(text.dtype())
            });
            text = Tensor::cat(vec![before, text], 1); // [batch, tail + n, hidden]
            tail = Some(gather_rows(text.clone(), next.clone()));
        }
        let scores = self.memory[layer]
            .global
            .start_scores(readouts, text.clone());
        Some(SpanPart { text, scores, tail })
    }

    /// Every layer's global state and salience in `next` after the chunk, from the layers'
    /// [`Self::span_part`]s and the memory `old` the chunk read: one span start for all
    /// layers from the sum of their scores, its expected score the new span's salience,
    /// and a kept span replaced as far as the new one scores higher.
    pub fn write_shared_span(
        &self,
        parts: Vec<SpanPart<B>>,
        old: &[LayerState<B>],
        next: &mut [LayerState<B>],
    ) {
        let real = match (&self.indices.tail, &self.indices.text) {
            (Some((_, real)), _) | (None, Some((_, real))) => real.clone(),
            (None, None) => return,
        };
        let Some(scores) = parts.iter().map(|p| p.scores.clone()).reduce(|a, b| a + b) else {
            return;
        };
        // [batch, 1, n], and its expected score [batch, 1, 1]
        let start = softmax(scores.clone() + padding_penalty(real.clone()), 2);
        let salience = (start.clone() * scores).sum_dim(2);
        let weights = span_weights(start.clone(), self.config.memory_slots);
        for (l, part) in parts.into_iter().enumerate() {
            let global = &self.memory[l].global;
            trace_span_start(&start);
            let candidates = quote(weights.clone(), part.text, real.clone());
            let kept = match (&old[l].global, &old[l].salience) {
                (Some(state), Some(score)) if self.config.use_gate => {
                    Some((state.clone(), score.clone()))
                }
                _ => None,
            };
            let (state, kept) = global.keep_salient(candidates, salience.clone(), kept);
            next[l].global = Some(self.keep_inactive(state, old[l].global.as_ref()));
            next[l].salience = Some(self.keep_inactive(kept, old[l].salience.as_ref()));
            next[l].tail = part.tail;
        }
    }

    /// The FIFO queue after the chunk: the newest entries of `[old queue ; this chunk's]`.
    fn write_queue(
        &self,
        layer: usize,
        input: &Tensor<B, 3>,
        hidden: &Tensor<B, 3>,
        old: Option<&Tensor<B, 3>>,
    ) -> Option<Tensor<B, 3>> {
        let (Some(positions), Some(keep)) = (&self.indices.entries, &self.indices.queue_keep)
        else {
            return old.cloned();
        };
        let [batch, _, d] = hidden.dims();
        let source = match self.config.temp_source {
            TempSource::CompressionOutput => hidden,
            TempSource::TextInput => input,
        };
        let entries = self.memory[layer]
            .temporary
            .compress(source.clone().select(1, positions.clone()));
        let pool = match old {
            // Only the chunk's temp_slots rows of the old queue are addressed by `keep`.
            Some(q) => Tensor::cat(
                vec![
                    q.clone().slice([0..batch, 0..self.layout.temp_slots, 0..d]),
                    entries,
                ],
                1,
            ),
            None => entries,
        };
        Some(gather_rows(pool, keep.clone()))
    }
}

/// One layer's part of a shared span ([`ChunkMemory::span_part`]).
pub struct SpanPart<B: Backend> {
    /// Text a span may quote: the chunk's text-token layer inputs, after the previous
    /// chunk's tail with [`CometConfig::cross_chunk_span`] `[batch, n, hidden]`.
    text: Tensor<B, 3>,
    /// The layer's start scores over `text` `[batch, 1, n]`.
    scores: Tensor<B, 3>,
    /// The tail the next chunk's span may start in `[batch, tail, hidden]`.
    tail: Option<Tensor<B, 3>>,
}

/// Replaces slot inputs with memory before each layer and computes the next memory after it.
pub struct ChunkHook<'a, B: Backend> {
    /// The chunk's memory step.
    pub step: ChunkMemory<'a, B>,
    /// Memory the chunk reads (per layer).
    pub state: &'a [LayerState<B>],
    /// Memory after the chunk (per layer), filled as layers run.
    pub next: Vec<LayerState<B>>,
    /// The current layer's input, kept for [`ChunkMemory::write`].
    input: Option<Tensor<B, 3>>,
    /// The layers' [`ChunkMemory::span_part`]s so far (a shared span only).
    span_parts: Vec<SpanPart<B>>,
}

impl<'a, B: Backend> ChunkHook<'a, B> {
    /// A hook for the chunk `step` reads, starting from the memory `state`.
    pub fn new(step: ChunkMemory<'a, B>, state: &'a [LayerState<B>]) -> Self {
        Self {
            step,
            state,
            next: Vec::with_capacity(state.len()),
            input: None,
            span_parts: Vec::new(),
        }
    }
}

impl<B: Backend> LayerHook<B> for ChunkHook<'_, B> {
    fn before_layer(&mut self, layer: usize, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let input = self.step.read(layer, hidden, &self.state[layer]);
        self.input = Some(input.clone());
        input
    }

    fn after_layer(&mut self, layer: usize, hidden: &Tensor<B, 3>) {
        let input = self.input.take().expect("before_layer runs first");
        self.next
            .push(self.step.write(layer, &input, hidden, &self.state[layer]));
        self.span_parts.extend(
            self.step
                .span_part(layer, &input, hidden, &self.state[layer]),
        );
        if layer + 1 == self.state.len() && !self.span_parts.is_empty() {
            let parts = std::mem::take(&mut self.span_parts);
            self.step
                .write_shared_span(parts, self.state, &mut self.next);
        }
    }
}
