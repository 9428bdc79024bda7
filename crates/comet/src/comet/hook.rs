//! The CoMeT recurrence inside one chunk: memory in before each layer, memory out after it.

use burn::prelude::*;
use burn::tensor::Int;

use crate::layout::ChunkLayout;
use crate::memory::{CometConfig, GlobalSource, LayerMemory, LayerState, TempSource};
use crate::model::LayerHook;

/// Device-side indices a chunk's memory update needs, built once per chunk.
pub struct ChunkIndices<B: Backend> {
    /// Positions whose hidden state becomes a temporary-memory entry `[k]`.
    entries: Option<Tensor<B, 1, Int>>,
    /// Which of `[old queue ; new entries]` to keep `[batch, new_slots, hidden]`.
    queue_keep: Option<Tensor<B, 3, Int>>,
    /// Text positions `[n]` and 1 for the real ones `[batch, 1, n]`, for pooled global
    /// candidates ([`GlobalSource::TextPool`], [`GlobalSource::TextSpan`]).
    text: Option<(Tensor<B, 1, Int>, Tensor<B, 3>)>,
    /// 1 for samples with text in this chunk `[batch, 1, 1]`.
    active: Tensor<B, 3>,
    /// Whether every sample is active (the common case; skips a blend).
    all_active: bool,
}

impl<B: Backend> ChunkIndices<B> {
    /// Indices for `layout`, given the queue lengths the chunk starts from.
    pub fn new(
        layout: &ChunkLayout,
        config: &CometConfig,
        queue_lengths: &[usize],
        hidden: usize,
        device: &B::Device,
    ) -> Self {
        let batch = layout.batch;
        let k = layout.entry_positions.len();
        let entries = (k > 0).then(|| {
            let idx: Vec<i64> = layout.entry_positions.iter().map(|&p| p as i64).collect();
            Tensor::from_data(TensorData::new(idx, [k]), device)
        });
        let queue_keep = (k > 0).then(|| {
            let (idx, slots) = layout.queue_update(config.temp_budget, queue_lengths);
            Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [batch, slots]), device)
                .unsqueeze_dim::<3>(2)
                .expand([batch, slots, hidden])
        });
        let from_text = config.global_source != GlobalSource::Readout;
        let text =
            (from_text && layout.readout_start.is_some()).then(|| text_indices(layout, device));
        let active: Vec<f32> = layout
            .active
            .iter()
            .map(|&a| if a { 1.0 } else { 0.0 })
            .collect();
        Self {
            entries,
            queue_keep,
            text,
            active: Tensor::from_data(TensorData::new(active, [batch, 1, 1]), device),
            all_active: layout.active.iter().all(|&a| a),
        }
    }
}

/// The text positions of `layout` `[n]` and which are real `[batch, 1, n]`.
fn text_indices<B: Backend>(
    layout: &ChunkLayout,
    device: &B::Device,
) -> (Tensor<B, 1, Int>, Tensor<B, 3>) {
    let positions = &layout.text_positions;
    let n = positions.len();
    let idx: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
    let real: Vec<f32> = (0..layout.batch)
        .flat_map(|b| {
            positions
                .iter()
                .map(move |&p| layout.real[b * layout.len + p])
        })
        .map(|real| if real { 1.0 } else { 0.0 })
        .collect();
    (
        Tensor::from_data(TensorData::new(idx, [n]), device),
        Tensor::from_data(TensorData::new(real, [layout.batch, 1, n]), device),
    )
}

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
    /// returned it), its output `hidden` and `old`.
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
        }
    }

    /// The gated global state after the chunk (unchanged without readouts).
    fn write_global(
        &self,
        layer: usize,
        input: &Tensor<B, 3>,
        hidden: &Tensor<B, 3>,
        old: Option<Tensor<B, 3>>,
    ) -> Option<Tensor<B, 3>> {
        let Some(start) = self.layout.readout_start else {
            return old;
        };
        let [batch, _, d] = hidden.dims();
        let global = &self.memory[layer].global;
        let readouts =
            hidden
                .clone()
                .slice([0..batch, start..start + self.config.memory_slots, 0..d]);
        let source = self.config.global_source;
        let candidates = match &self.indices.text {
            Some((positions, real)) => {
                let text = input.clone().select(1, positions.clone());
                match source {
                    GlobalSource::TextSpan => global.span(readouts, text, real.clone()),
                    _ => global.pool(readouts, text, real.clone()),
                }
            }
            None => readouts,
        };
        let one_gate = source == GlobalSource::TextSpan;
        let updated = global.update(candidates, old.clone(), self.config.use_gate, one_gate);
        Some(self.keep_inactive(updated, old.as_ref()))
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
        Some(pool.gather(1, keep.clone()))
    }
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
    pub input: Option<Tensor<B, 3>>,
}

impl<B: Backend> LayerHook<B> for ChunkHook<'_, B> {
    fn before_layer(&mut self, layer: usize, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let input = self.step.read(layer, hidden, &self.state[layer]);
        self.input = Some(input.clone());
        input
    }

    fn after_layer(&mut self, layer: usize, hidden: &Tensor<B, 3>) {
        let input = self.input.take().expect("before_layer runs first");
        let next = self.step.write(layer, &input, hidden, &self.state[layer]);
        self.next.push(next);
    }
}
