//! Chunk-level recomputation: gradients of the loss over all chunks while holding the
//! autodiff graph of only one chunk at a time.
//!
//! Forward: run every chunk without a graph, keeping only each chunk's incoming memory.
//! Backward, last chunk first: rerun chunk t from its stored memory (made a leaf), and
//! back-propagate its own loss plus `<memory out, dL/d memory out>` (the gradient chunk
//! t+1 handed back), which yields the parameter gradients of chunk t and dL/d memory in
//! for chunk t-1. The sum over chunks equals back-propagation through the whole input.

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::comet::{check_batch, CometModel};
use crate::layout::{LayoutBuilder, Sequence};
use crate::memory::{LayerState, MemoryState};
use crate::{Error, Result};

type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// Per layer, the gradient of the loss with respect to its global state, queue, salience
/// and span tail.
type StateGrads<B> = Vec<[Option<Tensor<Inner<B>, 3>>; 4]>;

/// A layer's state tensors in [`StateGrads`]' order.
fn parts<B: Backend>(layer: LayerState<B>) -> [Option<Tensor<B, 3>>; 4] {
    [layer.global, layer.queue, layer.salience, layer.tail]
}

/// Loss over every chunk of `batch` (mean over target tokens) and the gradients of
/// `params`' parameters multiplied by `scale`, computed chunk by chunk on `model` (`params`
/// itself, or a view of it in another precision: see [`super::compute_model`]).
pub fn recomputed_gradients<B: AutodiffBackend>(
    params: &CometModel<B>,
    model: &CometModel<B>,
    batch: &[Sequence],
    builder: &LayoutBuilder,
    scale: f32,
) -> Result<(f64, GradientsParams)> {
    check_batch(batch)?;
    let inner = model.valid();
    let state = inner.empty_state(batch.len());
    let layouts = builder.chunks(batch, CometModel::memory_shape(&state), false);
    let count: usize = layouts
        .iter()
        .map(|l| l.targets.iter().filter(|&&t| t >= 0).count())
        .sum();
    if count == 0 {
        return Err(Error::Input("no token in the batch has a target".into()));
    }
    // The memory each chunk starts from, without a graph: every chunk but the last read.
    let mut reader = inner.reader_over(layouts[..layouts.len() - 1].iter().cloned(), state);
    let mut incoming = vec![reader.state().clone()];
    while reader.next().is_some() {
        incoming.push(reader.state().clone());
    }

    let weight = scale / count as f32;
    let mut loss = 0.0f64;
    let mut accumulator = GradientsAccumulator::<CometModel<B>>::new();
    let mut upstream: Option<StateGrads<B>> = None;
    for (layout, state_in) in layouts.iter().zip(incoming).rev() {
        let leaves = to_leaves::<B>(state_in);
        let out = model.read_chunk(layout, &leaves, None);
        let objective = chunk_objective(model, layout, out, upstream.take(), weight, |nll| {
            loss += nll / count as f64;
        });
        let Some(objective) = objective else {
            upstream = None;
            continue;
        };
        let mut grads = objective.backward();
        upstream = Some(
            leaves
                .layers
                .iter()
                .map(|l| parts(l.clone()).map(|t| t.and_then(|t| t.grad_remove(&mut grads))))
                .collect(),
        );
        accumulator.accumulate(params, GradientsParams::from_grads(grads, params));
    }
    Ok((loss, accumulator.grads()))
}

/// What chunk t back-propagates: its own loss (its NLL times `weight`, handed to
/// `on_nll` unweighted) plus `<memory out, dL/d memory out>` for the gradient chunk t+1
/// handed back; `None` when the chunk has neither.
fn chunk_objective<B: AutodiffBackend>(
    model: &CometModel<B>,
    layout: &crate::layout::ChunkLayout,
    out: crate::comet::ChunkOutput<B>,
    upstream: Option<StateGrads<B>>,
    weight: f32,
    mut on_nll: impl FnMut(f64),
) -> Option<Tensor<B, 1>> {
    let mut objective: Option<Tensor<B, 1>> = None;
    let mut add = |t: Tensor<B, 1>| {
        objective = Some(match objective.take() {
            Some(o) => o + t,
            None => t,
        })
    };
    if let Some((nll, _)) = model.chunk_nll(layout, out.hidden) {
        on_nll(nll.clone().into_scalar().elem::<f64>());
        add(nll * weight);
    }
    for (layer, grads) in out
        .state
        .layers
        .into_iter()
        .zip(upstream.into_iter().flatten())
    {
        for (value, grad) in parts(layer).into_iter().zip(grads) {
            if let (Some(v), Some(g)) = (value, grad) {
                add((v * Tensor::from_inner(g))
                    .sum()
                    .cast(burn::tensor::DType::F32));
            }
        }
    }
    objective
}

/// A stored memory state as autodiff leaves that collect their gradients.
fn to_leaves<B: AutodiffBackend>(state: MemoryState<Inner<B>>) -> MemoryState<B> {
    MemoryState {
        layers: state
            .layers
            .into_iter()
            .map(|l| l.map(|t| Tensor::from_inner(t).require_grad()))
            .collect(),
        queue_lengths: state.queue_lengths,
        tokens_read: state.tokens_read,
    }
}
