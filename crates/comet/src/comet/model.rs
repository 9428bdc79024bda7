//! `CometModel`: a base LLM plus per-layer memory, reading any input chunk by chunk.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::embedding;

use super::hook::{ChunkHook, ChunkMemory};
use super::indices::ChunkIndices;
use crate::layout::{ChunkLayout, LayoutBuilder, MemoryShape, SpecialTokens};
use crate::memory::{CometConfig, LayerMemory, LayerState, MemoryModuleConfig, MemoryState};
use crate::model::{AttentionMask, ForwardInput, KvCache, Llm};

/// A base model with CoMeT memory modules and the embeddings of CoMeT's special tokens.
#[derive(Module, Debug)]
pub struct CometModel<B: Backend> {
    /// The pretrained (or from-scratch) base model.
    pub llm: Llm<B>,
    /// One memory per layer.
    pub memory: Vec<LayerMemory<B>>,
    /// Embeddings of the special tokens `[2 + m, hidden]` (slot, compression, readouts).
    pub special_embeddings: Param<Tensor<B, 2>>,
    /// Memory sizes and switches.
    #[module(skip)]
    pub comet: CometConfig,
}

/// What reading one chunk needs on the device, built once per chunk.
pub struct ChunkInputs<B: Backend> {
    /// Embeddings of the chunk's tokens and special tokens `[batch, len, hidden]`.
    pub hidden: Tensor<B, 3>,
    /// Position ids `[batch, len]` (restarting at 0 in every chunk).
    pub positions: Tensor<B, 2, Int>,
    /// Causal, or explicit when samples are padded.
    pub mask: AttentionMask<B>,
    /// Indices of the memory update.
    pub indices: ChunkIndices<B>,
}

/// The result of reading one chunk.
pub struct ChunkOutput<B: Backend> {
    /// Final normed hidden states `[batch, len, hidden]`.
    pub hidden: Tensor<B, 3>,
    /// The memory after the chunk.
    pub state: MemoryState<B>,
}

/// Per-column mean and standard deviation of a row-major `[rows, d]` table, on the host
/// in f64 and a fixed order: a parallel device reduction may sum in a different order in
/// another process, and snapshots check these exact values.
fn column_stats(table: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut sum, mut sq) = (vec![0f64; d], vec![0f64; d]);
    for row in table.chunks_exact(d) {
        for (j, &x) in row.iter().enumerate() {
            sum[j] += x as f64;
            sq[j] += x as f64 * x as f64;
        }
    }
    let rows = (table.len() / d).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / rows - m * m).max(0.0).sqrt())
        .collect();
    (mean, std)
}

impl<B: Backend> CometModel<B> {
    /// Adds fresh memory modules to `llm` (drawn from a fixed seed, so every process
    /// builds the same untrained memory); special-token embeddings start at the mean of
    /// the existing embeddings, the readouts' each with its own noise.
    pub fn new(llm: Llm<B>, comet: CometConfig) -> Self {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x00C0_4E7A);
        let device = llm.embed_tokens.weight.device();
        let d = llm.config().hidden_size;
        let modules = MemoryModuleConfig::new(d, comet.adapter_rank);
        let memory = (0..llm.layers.len())
            .map(|_| modules.init(&mut rng, &device))
            .collect();
        let table: Vec<f32> = llm
            .embed_tokens
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32 embeddings");
        let (mean, std) = column_stats(&table, d);
        // Readouts start apart (mean plus noise of half the embeddings' spread): identical
        // readouts would write near-identical slots until training broke the tie.
        let normal = rand_distr::Normal::new(0.0f64, 0.5).expect("valid std");
        let special: Vec<f32> = (0..comet.special_tokens())
            .flat_map(|t| {
                let noise = t >= 2; // 0: slot placeholder, 1: compression token
                (0..d)
                    .map(|j| {
                        let z = if noise { rng.sample(normal) } else { 0.0 };
                        (mean[j] + z * std[j]) as f32
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let special = Tensor::from_data(
            TensorData::new(special, [comet.special_tokens(), d]),
            &device,
        );
        Self {
            llm,
            memory,
            special_embeddings: Param::from_tensor(special),
            comet,
        }
    }

    /// The layout builder for this model's vocabulary and config.
    pub fn layout_builder(&self) -> LayoutBuilder {
        LayoutBuilder::new(self.comet.clone(), self.special_tokens())
    }

    /// Ids of the special tokens (after the base vocabulary).
    pub fn special_tokens(&self) -> SpecialTokens {
        SpecialTokens::after(self.llm.config().vocab_size)
    }

    /// Empty memory for `batch` samples.
    pub fn empty_state(&self, batch: usize) -> MemoryState<B> {
        MemoryState::empty(self.llm.layers.len(), batch)
    }

    /// Shape of the slots a memory state gives the next chunk.
    pub fn memory_shape(state: &MemoryState<B>) -> MemoryShape {
        MemoryShape {
            has_global: state.has_global(),
            queue_lengths: state.queue_lengths.clone(),
        }
    }

    /// Embeds ids `[batch * len]` that may include special tokens -> `[batch, len, hidden]`.
    pub fn embed(&self, input_ids: &[u32], batch: usize, len: usize) -> Tensor<B, 3> {
        let device = self.llm.embed_tokens.weight.device();
        let vocab = self.llm.config().vocab_size as u32;
        let ids = |f: &dyn Fn(u32) -> u32| -> Tensor<B, 2, Int> {
            let data: Vec<i64> = input_ids.iter().map(|&id| f(id) as i64).collect();
            Tensor::from_data(TensorData::new(data, [batch, len]), &device)
        };
        let text = self.llm.embed(ids(&|id| if id < vocab { id } else { 0 }));
        let special = embedding(
            self.special_embeddings.val(),
            ids(&|id| id.saturating_sub(vocab)),
        );
        let is_special: Vec<bool> = input_ids.iter().map(|&id| id >= vocab).collect();
        let mask =
            Tensor::<B, 2, Bool>::from_data(TensorData::new(is_special, [batch, len]), &device)
                .unsqueeze_dim::<3>(2)
                .expand([batch, len, self.llm.config().hidden_size]);
        text.mask_where(mask, special)
    }

    /// Reads one chunk from `state`; with a cache, the chunk's keys/values stay in it.
    pub fn read_chunk(
        &self,
        layout: &ChunkLayout,
        state: &MemoryState<B>,
        cache: Option<&mut KvCache<B>>,
    ) -> ChunkOutput<B> {
        let inputs = self.chunk_inputs(layout, (&state.queue_lengths, &state.tokens_read));
        let mut hook = ChunkHook::new(self.chunk_memory(layout, &inputs.indices), &state.layers);
        let input = ForwardInput {
            positions: inputs.positions,
            mask: inputs.mask,
            cache,
            memory: layout.memory_slots(),
        };
        let hidden = self.llm.forward_hidden(inputs.hidden, input, &mut hook);
        ChunkOutput {
            hidden,
            state: self.state_after(layout, state, hook.next),
        }
    }

    /// What reading `layout` needs on the device, given the queue lengths and text tokens
    /// read (per sample) it starts from.
    pub fn chunk_inputs(
        &self,
        layout: &ChunkLayout,
        before: (&[usize], &[usize]),
    ) -> ChunkInputs<B> {
        let device = self.llm.embed_tokens.weight.device();
        let (b, n) = (layout.batch, layout.len);
        let positions = Tensor::from_data(
            TensorData::new(layout.position_ids.clone(), [b, n]),
            &device,
        );
        let mask = if layout.has_padding() {
            AttentionMask::Explicit(
                Tensor::<B, 3, Bool>::from_data(TensorData::new(layout.mask(), [b, n, n]), &device)
                    .unsqueeze_dim(1),
            )
        } else {
            AttentionMask::Causal
        };
        ChunkInputs {
            hidden: self.embed(&layout.input_ids, b, n),
            positions,
            mask,
            indices: ChunkIndices::new(layout, &self.comet, before, &device),
        }
    }

    /// The memory step of chunk `layout` (its indices from [`Self::chunk_inputs`]).
    pub fn chunk_memory<'a>(
        &'a self,
        layout: &'a ChunkLayout,
        indices: &'a ChunkIndices<B>,
    ) -> ChunkMemory<'a, B> {
        ChunkMemory {
            memory: &self.memory,
            config: &self.comet,
            layout,
            indices,
        }
    }

    /// The memory after `layout` was read from `before`, given every layer's new state.
    pub fn state_after(
        &self,
        layout: &ChunkLayout,
        before: &MemoryState<B>,
        layers: Vec<LayerState<B>>,
    ) -> MemoryState<B> {
        MemoryState {
            layers,
            queue_lengths: layout
                .queue_lengths_after(&before.queue_lengths, self.comet.temp_budget),
            tokens_read: (0..layout.batch)
                .map(|i| before.tokens_read[i] + layout.text_counts[i])
                .collect(),
        }
    }

    /// Logits `[batch, text, vocab]` at the text positions of a chunk's output.
    pub fn text_logits(&self, layout: &ChunkLayout, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let device = hidden.device();
        let positions: Vec<i64> = layout.text_positions.iter().map(|&p| p as i64).collect();
        let n = positions.len();
        let text = hidden.select(
            1,
            Tensor::from_data(TensorData::new(positions, [n]), &device),
        );
        self.llm.logits(text)
    }
}
