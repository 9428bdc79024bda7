//! One pre-norm decoder layer: attention and SwiGLU, each around a residual connection.

use burn::nn::RmsNorm;
use burn::prelude::*;

use super::attention::{Attention, AttentionMask};
use super::cache::KvCache;
use super::mlp::Mlp;
use super::rope::RopeTables;

/// `x + attn(norm(x))`, then `h + mlp(norm(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// `[batch, seq, hidden] -> [batch, seq, hidden]`.
    ///
    /// The first `memory` positions (CoMeT's slots) only lend keys and values: they come out
    /// unchanged, since the next layer replaces them and nothing reads them after the last.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &AttentionMask<B>,
        cache: Option<(&mut KvCache<B>, usize)>,
        memory: usize,
    ) -> Tensor<B, 3> {
        let kernels = crate::kernels::kernels::<B>();
        let normed = kernels.rms_norm(x.clone(), &self.input_layernorm);
        let Some(attended) = self.self_attn.forward(normed, rope, mask, cache, memory) else {
            return x;
        };
        let [batch, seq, hidden] = x.dims();
        let (memory_rows, rest) = match memory {
            0 => (None, x),
            // Each sample's rows after its memory are a strided view; flattening copies
            // them into one block, so the residual add is a vector add on flex rather
            // than an element-by-element walk of the view (~5% of reading a chunk).
            _ => (
                Some(x.clone().slice([0..batch, 0..memory, 0..hidden])),
                x.slice([0..batch, memory..seq, 0..hidden])
                    .reshape([batch * (seq - memory), hidden])
                    .reshape([batch, seq - memory, hidden]),
            ),
        };
        let h = rest + attended;
        let normed = kernels.rms_norm(h.clone(), &self.post_attention_layernorm);
        let out = h + self.mlp.forward(normed);
        match memory_rows {
            None => out,
            Some(rows) => Tensor::cat(vec![rows, out], 1),
        }
    }
}
