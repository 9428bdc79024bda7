//! Context parallelism as the paper's code does it: each rank (device) owns a contiguous
//! range of a sample's chunks and all layers. The forward runs layer-major; when a rank has
//! run layer `l` over its chunks, it hands layer `l`'s memory (global state and queue) to
//! the next rank, which runs its own chunks at layer `l` while the first goes on to layer
//! `l + 1`: the ranks work on a diagonal wavefront. Autodiff carries gradients back along
//! the same hand-overs (`to_device`), and each rank's replica collects gradients for its
//! own chunks; their sum is the single-device gradient.
//!
//! Ranks may share a device ("virtual ranks"): the results are the same, which is how the
//! equivalence is tested on a CPU.

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::forward::check_batch;
use super::model::{ChunkInputs, CometModel};
use crate::layout::{ChunkLayout, LayoutBuilder, Sequence};
use crate::memory::{GlobalSource, LayerState};
use crate::model::RopeTables;
use crate::{Error, Result};

/// Model replicas, one per rank, each on its rank's device.
pub struct ContextParallel<B: AutodiffBackend> {
    /// The replicas' parameters (leaves that collect gradients).
    replicas: Vec<CometModel<B>>,
    /// What the ranks compute with: the replicas, or views of them (another precision).
    views: Vec<CometModel<B>>,
    devices: Vec<B::Device>,
}

/// Contiguous, near-equal ranges of `chunks` chunks for `ranks` ranks (later ranks get one
/// chunk less when it does not divide); ranks beyond the number of chunks get none.
pub fn chunk_ranges(chunks: usize, ranks: usize) -> Vec<std::ops::Range<usize>> {
    let (base, extra) = (chunks / ranks, chunks % ranks);
    let mut start = 0;
    (0..ranks)
        .map(|r| {
            let len = base + usize::from(r < extra);
            start += len;
            start - len..start
        })
        .collect()
}

impl<B: AutodiffBackend> ContextParallel<B> {
    /// Replicas of `model` on `devices` (one rank per entry; entries may repeat). Each is
    /// a fork: its parameters are leaves of their own, so its gradients can be told apart.
    /// The ranks compute with `view(replica)` (the replica itself, or e.g. a bf16 view).
    pub fn new(
        model: &CometModel<B>,
        devices: &[B::Device],
        view: impl Fn(&CometModel<B>) -> CometModel<B>,
    ) -> Result<Self> {
        if devices.is_empty() {
            return Err(Error::Input(
                "context parallelism needs at least one device".into(),
            ));
        }
        let replicas: Vec<_> = devices.iter().map(|d| model.clone().fork(d)).collect();
        Ok(Self {
            views: replicas.iter().map(view).collect(),
            replicas,
            devices: devices.to_vec(),
        })
    }

    /// Mean next-token loss `[1]` of `batch` on the first rank's device, computed by the
    /// ranks together; equal to [`CometModel::loss_with`] on one device.
    pub fn loss(&self, batch: &[Sequence], builder: &LayoutBuilder) -> Result<Tensor<B, 1>> {
        check_batch(batch)?;
        let first = &self.views[0];
        if first.comet.global_source == GlobalSource::SharedSpan {
            // Its span start sums every layer's scores, so a chunk's memory exists only
            // once all its layers have run: no layer-major wavefront.
            return Err(Error::Input(
                "context parallelism cannot read a `shared_span` global memory; use one rank"
                    .into(),
            ));
        }
        let start = CometModel::memory_shape(&first.empty_state(batch.len()));
        let layouts = builder.chunks(batch, start, false);
        let ranges = chunk_ranges(layouts.len(), self.views.len());
        let owner = |t: usize| ranges.iter().position(|r| r.contains(&t)).unwrap_or(0);
        // Host-side queue lengths each chunk starts from (they do not depend on values).
        let mut queue_lengths = vec![vec![0; batch.len()]];
        for layout in &layouts {
            let next = layout
                .queue_lengths_after(queue_lengths.last().unwrap(), builder.config.temp_budget);
            queue_lengths.push(next);
        }
        // Tokens read only place a shared span's tail, refused above.
        let unread = vec![0; batch.len()];
        let mut inputs: Vec<ChunkInputs<B>> = layouts
            .iter()
            .enumerate()
            .map(|(t, l)| self.views[owner(t)].chunk_inputs(l, (&queue_lengths[t], &unread)))
            .collect();
        // RoPE tables once per chunk, not at every layer.
        let ropes: Vec<RopeTables<B>> = inputs
            .iter()
            .enumerate()
            .map(|(t, i)| {
                let tables = self.views[owner(t)].llm.rope.tables(i.positions.clone());
                tables.cast(i.hidden.dtype())
            })
            .collect();
        let layers = first.llm.layers.len();
        // Layer l's memory as the next chunk to run at layer l will read it.
        let mut carry = vec![LayerState::empty(); layers];
        let ranks = self.views.len();
        for wave in 0..layers + ranks - 1 {
            for (rank, range) in ranges.iter().enumerate() {
                let Some(layer) = wave.checked_sub(rank).filter(|&l| l < layers) else {
                    continue;
                };
                // The hand-over from the previous rank (a no-op on a shared device).
                let state = to_device(carry[layer].clone(), &self.devices[rank]);
                carry[layer] = run_layer(
                    &self.views[rank],
                    layer,
                    range.clone(),
                    &layouts,
                    &ropes,
                    &mut inputs,
                    state,
                );
            }
        }
        self.mean_nll(&layouts, inputs, owner)
    }

    /// The final norm and the loss of every chunk on its rank, summed on the first rank.
    fn mean_nll(
        &self,
        layouts: &[ChunkLayout],
        inputs: Vec<ChunkInputs<B>>,
        owner: impl Fn(usize) -> usize,
    ) -> Result<Tensor<B, 1>> {
        let (mut total, mut count) = (None::<Tensor<B, 1>>, 0);
        for (t, (layout, input)) in layouts.iter().zip(inputs).enumerate() {
            let model = &self.views[owner(t)];
            let normed = model.llm.norm.forward(input.hidden);
            if let Some((nll, n)) = model.chunk_nll(layout, normed) {
                let nll = nll.to_device(&self.devices[0]);
                total = Some(total.map_or(nll.clone(), |s| s + nll));
                count += n;
            }
        }
        let total =
            total.ok_or_else(|| Error::Input("no token in the batch has a target".into()))?;
        Ok(total / count as f32)
    }

    /// Parameter gradients of all replicas from `grads` (after `loss.backward()`), summed on
    /// the first rank's device and keyed like `master`'s parameters (the same ids).
    pub fn gradients(&self, mut grads: B::Gradients, master: &CometModel<B>) -> GradientsParams {
        let mut sum = GradientsAccumulator::<CometModel<B>>::new();
        for replica in &self.replicas {
            let own = GradientsParams::from_module(&mut grads, replica);
            sum.accumulate(master, own.to_device(&self.devices[0], master));
        }
        sum.grads()
    }
}

fn to_device<B: Backend>(state: LayerState<B>, device: &B::Device) -> LayerState<B> {
    state.map(|t| t.to_device(device))
}

/// Runs layer `layer` of a rank's `model` over its chunks `range`, starting from `state`;
/// returns the memory after its last chunk.
fn run_layer<B: AutodiffBackend>(
    model: &CometModel<B>,
    layer: usize,
    range: std::ops::Range<usize>,
    layouts: &[ChunkLayout],
    ropes: &[RopeTables<B>],
    inputs: &mut [ChunkInputs<B>],
    mut state: LayerState<B>,
) -> LayerState<B> {
    for t in range {
        let input = &mut inputs[t];
        let step = model.chunk_memory(&layouts[t], &input.indices);
        let layer_input = step.read(layer, input.hidden.clone(), &state);
        let memory = layouts[t].memory_slots();
        let hidden = model.llm.layers[layer].forward(
            layer_input.clone(),
            &ropes[t],
            &input.mask,
            None,
            memory,
        );
        state = step.write(layer, &layer_input, &hidden, &state);
        input.hidden = hidden;
    }
    state
}
