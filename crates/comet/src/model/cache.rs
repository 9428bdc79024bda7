//! The key/value cache: per layer, the rotated keys and values of every position seen so far.
//!
//! It holds an arbitrary prefix: plain text for ordinary generation, or for CoMeT the
//! memory slots plus the final chunk, each with whatever position ids the caller chose.
//! Each layer keeps a buffer with room to spare, written in place: a decoding step writes
//! one position instead of copying the whole cache (on flex, a buffer nobody else holds is
//! written in place; a cloned cache copies on its first write).
//!
//! The cache may hold a narrower float type than the model computes in ([`KvCache::with_dtype`]:
//! `f16`, as llama.cpp's default cache): half the memory, and half the bytes each decoding
//! step reads, which is what decoding after a long prompt costs. Attention widens it again.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

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
    /// The stored float type (`None`: the model's).
    dtype: Option<DType>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            dtype: None,
        }
    }

    /// An empty cache storing keys and values as `dtype` (e.g. `f16`).
    pub fn with_dtype(num_layers: usize, dtype: FloatDType) -> Self {
        Self {
            dtype: Some(dtype.into()),
            ..Self::new(num_layers)
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
            let dtype = self.dtype.unwrap_or(keys.dtype());
            let empty = Tensor::zeros([batch, heads, 0, dim], (&keys.device(), dtype));
            Buffer {
                keys: empty.clone(),
                values: empty,
                len: 0,
            }
        });
        let start = buffer.len;
        buffer.reserve(start + new);
        let kernels = crate::kernels::kernels::<B>();
        buffer.keys = kernels.write_positions(buffer.keys, start, keys);
        buffer.values = kernels.write_positions(buffer.values, start, values);
        buffer.len = start + new;
        let used = buffer.used();
        self.layers[layer] = Some(buffer);
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn values(n: usize, fill: f32) -> Tensor<Flex, 4> {
        Tensor::full([1, 2, n, 3], fill, &Default::default())
    }

    /// Appends write in place, yet a clone taken earlier keeps what it saw.
    #[test]
    fn appends_extend_the_cache_and_leave_clones_alone() {
        let mut cache = KvCache::<Flex>::new(1);
        cache.append(0, values(3, 1.0), values(3, -1.0));
        let before = cache.clone();
        for step in 0..300 {
            let all = cache.append(0, values(1, 2.0 + step as f32), values(1, 0.5));
            assert_eq!(all.keys.dims(), [1, 2, 4 + step, 3]);
        }
        let keys: Vec<f32> = cache
            .append(0, values(1, 9.0), values(1, 9.0))
            .keys
            .into_data()
            .to_vec()
            .unwrap();
        // Head 0: 3 ones, then 2, 3, ..., 301, then 9.
        assert_eq!(&keys[..3 * 3], &[1.0; 9]);
        assert_eq!(keys[3 * 3], 2.0);
        assert_eq!(keys[302 * 3], 301.0);
        assert_eq!(keys[303 * 3], 9.0);
        let old = before.clone().append(0, values(1, 5.0), values(1, 5.0));
        assert_eq!(old.keys.dims(), [1, 2, 4, 3]);
        let old: Vec<f32> = old.keys.into_data().to_vec().unwrap();
        assert_eq!(
            &old[..12],
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0]
        );
    }
}
