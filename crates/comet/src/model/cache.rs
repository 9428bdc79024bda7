//! The key/value cache: per layer, the rotated keys and values of every position seen so far.
//!
//! It holds an arbitrary prefix: plain text for ordinary generation, or for CoMeT the
//! memory slots plus the final chunk, each with whatever position ids the caller chose.

use burn::prelude::*;

/// One layer's cached keys and values, each `[batch, kv_heads, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// Rotated keys.
    pub keys: Tensor<B, 4>,
    /// Values.
    pub values: Tensor<B, 4>,
}

/// The cache of every layer; empty until the first forward pass fills it.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<LayerCache<B>>>,
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
            .map_or(0, |l| l.keys.dims()[2])
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
        let merged = match self.layers[layer].take() {
            None => LayerCache { keys, values },
            Some(old) => LayerCache {
                keys: Tensor::cat(vec![old.keys, keys], 2),
                values: Tensor::cat(vec![old.values, values], 2),
            },
        };
        self.layers[layer] = Some(merged.clone());
        merged
    }
}
