//! The key/value cache: per layer, the rotated keys and values of every position seen so far.
//!
//! It holds an arbitrary prefix: plain text for ordinary generation, or for CoMeT the
//! memory slots plus the final chunk, each with whatever position ids the caller chose.
//! Each layer keeps a buffer with room to spare, written in place: a decoding step writes
//! one position instead of copying the whole cache (on flex, a buffer nobody else holds is
//! written without a copy; a cloned cache copies on its first write).

use burn::prelude::*;

/// Positions a fresh buffer holds before it first grows.
const MIN_CAPACITY: usize = 256;

/// One layer's cached keys and values, each `[batch, kv_heads, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// Rotated keys.
    pub keys: Tensor<B, 4>,
    /// Values.
    pub values: Tensor<B, 4>,
}

/// A layer's buffers `[batch, kv_heads, capacity, head_dim]` and how much of them is used.
#[derive(Debug, Clone)]
struct Buffer<B: Backend> {
    keys: Tensor<B, 4>,
    values: Tensor<B, 4>,
    len: usize,
}

impl<B: Backend> Buffer<B> {
    fn capacity(&self) -> usize {
        self.keys.dims()[2]
    }

    /// Grows the buffers to hold at least `needed` positions (doubling, so appends cost
    /// amortised O(1) copies).
    fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity() {
            return;
        }
        let [batch, heads, _, dim] = self.keys.dims();
        let extra = needed.max(2 * self.capacity()).max(MIN_CAPACITY) - self.capacity();
        let grow = |t: Tensor<B, 4>| {
            let pad = Tensor::zeros([batch, heads, extra, dim], (&t.device(), t.dtype()));
            Tensor::cat(vec![t, pad], 2)
        };
        self.keys = grow(self.keys.clone());
        self.values = grow(self.values.clone());
    }

    /// The used part, `[batch, kv_heads, len, head_dim]` (views of the buffers).
    fn used(&self) -> LayerCache<B> {
        let [batch, heads, _, dim] = self.keys.dims();
        let range = [0..batch, 0..heads, 0..self.len, 0..dim];
        LayerCache {
            keys: self.keys.clone().slice(range.clone()),
            values: self.values.clone().slice(range),
        }
    }
}

/// The cache of every layer; empty until the first forward pass fills it.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<Buffer<B>>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |l| l.len)
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends new keys/values `[batch, kv_heads, new, head_dim]` to layer `layer` and returns
    /// the whole cached sequence of that layer.
    pub fn append(
        &mut self,
        layer: usize,
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    ) -> LayerCache<B> {
        let [batch, heads, new, dim] = keys.dims();
        // Taken out, so that the buffers' only holder writes them (in place on flex).
        let mut buffer = self.layers[layer].take().unwrap_or_else(|| {
            let empty = Tensor::zeros([batch, heads, 0, dim], (&keys.device(), keys.dtype()));
            Buffer {
                keys: empty.clone(),
                values: empty,
                len: 0,
            }
        });
        let start = buffer.len;
        buffer.reserve(start + new);
        let range = [0..batch, 0..heads, start..start + new, 0..dim];
        buffer.keys = buffer.keys.slice_assign(range.clone(), keys);
        buffer.values = buffer.values.slice_assign(range, values);
        buffer.len = start + new;
        let used = buffer.used();
        self.layers[layer] = Some(buffer);
        used
    }
}
