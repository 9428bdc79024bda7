//! The device-side indices one chunk's memory step needs, built once per chunk from its
//! layout, and the per-sample row gather they are used with.

use burn::prelude::*;
use burn::tensor::Int;

use crate::layout::ChunkLayout;
use crate::memory::{CometConfig, GlobalSource};

/// Device-side indices a chunk's memory update needs, built once per chunk.
pub struct ChunkIndices<B: Backend> {
    /// Positions whose hidden state becomes a temporary-memory entry `[k]`.
    pub(super) entries: Option<Tensor<B, 1, Int>>,
    /// Which rows of each sample's `[old queue ; new entries]` to keep `[batch, new_slots]`
    /// (for [`gather_rows`]).
    pub(super) queue_keep: Option<Tensor<B, 2, Int>>,
    /// Text positions `[n]` and 1 for the real ones `[batch, 1, n]`, for pooled global
    /// candidates ([`GlobalSource::TextPool`], [`GlobalSource::TextSpan`]).
    pub(super) text: Option<(Tensor<B, 1, Int>, Tensor<B, 3>)>,
    /// For spans that may start in the previous chunk ([`CometConfig::cross_chunk_span`]):
    /// the rows of each sample's `[tail ; text]` that become its next tail, its last real
    /// tokens `[batch, tail]` (for [`gather_rows`]), and which rows of `[tail ; text]` are
    /// real `[batch, 1, tail + n]`.
    pub(super) tail: Option<(Tensor<B, 2, Int>, Tensor<B, 3>)>,
    /// 1 for samples with text in this chunk `[batch, 1, 1]`.
    pub(super) active: Tensor<B, 3>,
    /// Whether every sample is active (the common case; skips a blend).
    pub(super) all_active: bool,
}

impl<B: Backend> ChunkIndices<B> {
    /// Indices for `layout`, given the queue lengths and text tokens read (per sample) the
    /// chunk starts from.
    pub fn new(
        layout: &ChunkLayout,
        config: &CometConfig,
        (queue_lengths, tokens_read): (&[usize], &[usize]),
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
            Tensor::from_data(TensorData::new(idx, [batch, slots]), device)
        });
        let from_text = config.global_source != GlobalSource::Readout;
        let text =
            (from_text && layout.readout_start.is_some()).then(|| text_indices(layout, device));
        let tail = config.span_tail();
        let tail =
            (text.is_some() && tail > 0).then(|| tail_indices(layout, tail, tokens_read, device));
        let active: Vec<f32> = layout
            .active
            .iter()
            .map(|&a| if a { 1.0 } else { 0.0 })
            .collect();
        Self {
            entries,
            queue_keep,
            text,
            tail,
            active: Tensor::from_data(TensorData::new(active, [batch, 1, 1]), device),
            all_active: layout.active.iter().all(|&a| a),
        }
    }
}

/// Rows `rows[b]` of each sample `b` of `x` `[batch, n, hidden]` -> `[batch, k, hidden]`.
///
/// The same as `x.gather(1, rows expanded over hidden)`, but as one `select` of whole rows
/// of `x` seen as `[batch * n, hidden]`: a gather reads every element through its own
/// index (on flex, ~12% of reading a long input went into the queue's gather), a row
/// select copies rows. Its gradient is the same scatter-add of rows.
pub fn gather_rows<B: Backend>(x: Tensor<B, 3>, rows: Tensor<B, 2, Int>) -> Tensor<B, 3> {
    let [batch, n, d] = x.dims();
    let [_, k] = rows.dims();
    let offsets = Tensor::<B, 1, Int>::arange(0..batch as i64, &rows.device()).mul_scalar(n as i64);
    let flat = (rows + offsets.unsqueeze_dim::<2>(1)).reshape([batch * k]);
    x.reshape([batch * n, d])
        .select(0, flat)
        .reshape([batch, k, d])
}

/// The text positions of `layout` `[n]` and which are real `[batch, 1, n]`.
fn text_indices<B: Backend>(
    layout: &ChunkLayout,
    device: &B::Device,
) -> (Tensor<B, 1, Int>, Tensor<B, 3>) {
    let n = layout.text_positions.len();
    let idx: Vec<i64> = layout.text_positions.iter().map(|&p| p as i64).collect();
    let real = (0..layout.batch)
        .flat_map(|b| text_real(layout, b))
        .collect();
    (
        Tensor::from_data(TensorData::new(idx, [n]), device),
        Tensor::from_data(TensorData::new(real, [layout.batch, 1, n]), device),
    )
}

/// 1 for sample `b`'s real text positions of `layout`, 0 for padding.
fn text_real(layout: &ChunkLayout, b: usize) -> impl Iterator<Item = f32> + '_ {
    layout
        .text_positions
        .iter()
        .map(move |&p| f32::from(u8::from(layout.real[b * layout.len + p])))
}

/// [`ChunkIndices::tail`]: the `tail` tokens before the chunk (zeros in front while fewer
/// were read) followed by its text; sample b's next tail is rows `count_b..count_b + tail`
/// of `[tail ; text]` (its real text comes first), the old tail itself when inactive.
fn tail_indices<B: Backend>(
    layout: &ChunkLayout,
    tail: usize,
    tokens_read: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 3>) {
    let batch = layout.batch;
    let next: Vec<i64> = (0..batch)
        .flat_map(|b| (0..tail).map(move |j| (layout.text_counts[b] + j) as i64))
        .collect();
    let real: Vec<f32> = (0..batch)
        .flat_map(|b| {
            let padding = tail - tail.min(tokens_read[b]);
            (0..tail)
                .map(move |i| f32::from(u8::from(i >= padding)))
                .chain(text_real(layout, b))
        })
        .collect();
    let n = tail + layout.text_positions.len();
    (
        Tensor::from_data(TensorData::new(next, [batch, tail]), device),
        Tensor::from_data(TensorData::new(real, [batch, 1, n]), device),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Distribution;

    type A = Autodiff<Flex>;

    /// Per-sample rows (repeated, out of order, different per sample) come out as burn's
    /// element gather gives them, and so do the gradients flowing back.
    #[test]
    fn row_gather_matches_element_gather_and_its_gradient() {
        let device = Default::default();
        let x = Tensor::<A, 3>::random([3, 5, 4], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let rows = [4, 0, 4, 2, 1, 1, 3, 0, 0, 2, 4, 3];
        let rows = Tensor::<A, 2, Int>::from_data(TensorData::new(rows.to_vec(), [3, 4]), &device);
        let weights = Tensor::<A, 3>::random([3, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let expanded = rows.clone().unsqueeze_dim::<3>(2).expand([3, 4, 4]);
        let want = x.clone().gather(1, expanded);
        let got = gather_rows(x.clone(), rows);
        got.to_data().assert_eq(&want.to_data(), true);
        let grad = |y: Tensor<A, 3>| {
            let grads = (y * weights.clone()).sum().backward();
            x.grad(&grads).expect("x takes part").into_data()
        };
        grad(got).assert_approx_eq::<f32>(&grad(want), Default::default());
    }
}
