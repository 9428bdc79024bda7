//! Grouped-query self-attention with optional QKV bias (Qwen2) and per-head Q/K norm (Qwen3).

use burn::nn::{Linear, RmsNorm};
use burn::prelude::*;

use super::cache::KvCache;
use super::lora::{project, project_all, Lora};
use super::rope::RopeTables;

/// Which key positions each query may see.
#[derive(Debug, Clone)]
pub enum AttentionMask<B: Backend> {
    /// Plain causal attention, aligned so the last query sees every key (works with a cache).
    Causal,
    /// An explicit mask `[batch, 1, queries, keys]`, `true` = hidden (causality included).
    Explicit(Tensor<B, 4, Bool>),
}

/// Multi-head attention whose key/value heads are shared by groups of query heads.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[hidden, heads * head_dim]`.
    pub q_proj: Linear<B>,
    /// `[hidden, kv_heads * head_dim]`.
    pub k_proj: Linear<B>,
    /// `[hidden, kv_heads * head_dim]`.
    pub v_proj: Linear<B>,
    /// `[heads * head_dim, hidden]`.
    pub o_proj: Linear<B>,
    /// Qwen3's RMSNorm over each query head.
    pub q_norm: Option<RmsNorm<B>>,
    /// Qwen3's RMSNorm over each key head.
    pub k_norm: Option<RmsNorm<B>>,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Low-rank adapters on the projections (none in a plain model).
    pub q_lora: Option<Lora<B>>,
    /// Adapter on `k_proj`.
    pub k_lora: Option<Lora<B>>,
    /// Adapter on `v_proj`.
    pub v_lora: Option<Lora<B>>,
    /// Adapter on `o_proj`.
    pub o_lora: Option<Lora<B>>,
}

impl<B: Backend> Attention<B> {
    /// `x`: `[batch, seq, hidden]` -> `[batch, seq - memory, hidden]`.
    ///
    /// The first `memory` positions only lend keys and values (CoMeT's memory slots, whose
    /// outputs nothing reads): they get no query and no output row. With a cache, the new
    /// keys/values are appended to layer `layer` of it and the queries attend to the whole
    /// cached sequence. `None` when every position is memory (nothing to compute but the
    /// cache).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &AttentionMask<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
        memory: usize,
    ) -> Option<Tensor<B, 3>> {
        let [batch, seq, _] = x.dims();
        let (q, k, v) = self.project(x, memory);
        let queries = seq - memory;
        let kernels = crate::kernels::kernels::<B>();
        let k = kernels.rope(self.heads(k, self.num_kv_heads, &self.k_norm), rope);
        let v = self.heads(v, self.num_kv_heads, &None);
        let (k, v) = match cache {
            Some((cache, layer)) => {
                let all = cache.append(layer, k, v);
                (all.keys, all.values)
            }
            None => (k, v),
        };
        if queries == 0 {
            return None;
        }
        let q_rope = match memory {
            0 => rope.clone(),
            _ => rope.rows(memory..seq),
        };
        let q = kernels.rope(self.heads(q, self.num_heads, &self.q_norm), &q_rope);
        let mask = match mask {
            AttentionMask::Explicit(m) if memory > 0 => {
                let [b, h, _, keys] = m.dims();
                AttentionMask::Explicit(m.clone().slice([0..b, 0..h, memory..seq, 0..keys]))
            }
            // Causal masks align bottom-right: the remaining queries still see their prefix.
            other => other.clone(),
        };
        // [batch, heads, queries, head_dim] -> [batch, queries, heads * head_dim]
        let out = kernels.attention(q, k, v, &mask).swap_dims(1, 2).reshape([
            batch,
            queries,
            self.num_heads * self.head_dim,
        ]);
        Some(project(&self.o_proj, &self.o_lora, out))
    }

    /// Queries of the positions after the first `memory`, keys and values of all,
    /// `[batch, positions, heads * head_dim]` each.
    fn project(
        &self,
        x: Tensor<B, 3>,
        memory: usize,
    ) -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 3>) {
        let q = (&self.q_proj, &self.q_lora);
        let kv = [(&self.k_proj, &self.k_lora), (&self.v_proj, &self.v_lora)];
        if memory == 0 {
            let [q, k, v] = project_all([q, kv[0], kv[1]], x);
            return (q, k, v);
        }
        let [batch, seq, hidden] = x.dims();
        let queries = x.clone().slice([0..batch, memory..seq, 0..hidden]);
        let [k, v] = project_all(kv, x);
        (project(q.0, q.1, queries), k, v)
    }

    /// `[batch, seq, n * head_dim]` -> `[batch, n, seq, head_dim]`, normalised per head if asked.
    fn heads(&self, x: Tensor<B, 3>, n: usize, norm: &Option<RmsNorm<B>>) -> Tensor<B, 4> {
        let [batch, seq, _] = x.dims();
        let x = x.reshape([batch, seq, n, self.head_dim]);
        let x = match norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        x.swap_dims(1, 2)
    }
}

/// Causal mask `[1, 1, queries, keys]` (`true` = hidden) for the last `queries` of `keys`
/// positions: query `i` sees keys `0..=keys - queries + i`.
pub fn causal_after<B: Backend>(
    queries: usize,
    keys: usize,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let first = keys - queries;
    let hidden: Vec<bool> = (0..queries)
        .flat_map(|i| (0..keys).map(move |j| j > first + i))
        .collect();
    Tensor::<B, 2, Bool>::from_data(TensorData::new(hidden, [queries, keys]), device)
        .reshape([1, 1, queries, keys])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn queries_after_a_cache_see_the_cache_and_their_own_prefix() {
        let mask = causal_after::<Flex>(2, 5, &Default::default());
        let hidden: Vec<bool> = mask.into_data().to_vec().unwrap();
        // Query 0 is position 3 of 5, query 1 position 4: bottom-right aligned.
        assert_eq!(
            hidden,
            [[false, false, false, false, true], [false; 5]].concat()
        );
    }
}
