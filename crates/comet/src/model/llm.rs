//! The whole decoder-only language model: embeddings, layers, final norm, output head.

use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;

use super::attention::AttentionMask;
use super::block::DecoderLayer;
use super::cache::KvCache;
use super::lora::LoraConfig;
use super::rope::Rope;
use crate::config::ModelConfig;

/// Observes and edits the residual stream between layers.
///
/// This is the seam CoMeT uses: before layer `l` it overwrites the memory-slot positions
/// with layer `l`'s memory, after layer `l` it reads the readout and compression outputs.
pub trait LayerHook<B: Backend> {
    /// Receives the input of layer `layer` `[batch, seq, hidden]` and returns what the layer sees.
    fn before_layer(&mut self, _layer: usize, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        hidden
    }
    /// Receives the output of layer `layer` `[batch, seq, hidden]`.
    fn after_layer(&mut self, _layer: usize, _hidden: &Tensor<B, 3>) {}
}

/// A hook that changes nothing: the plain full-attention model.
pub struct NoHook;
impl<B: Backend> LayerHook<B> for NoHook {}

/// Everything one forward pass needs besides the token embeddings.
pub struct ForwardInput<'a, B: Backend> {
    /// Position id of every token `[batch, seq]` (RoPE angles).
    pub positions: Tensor<B, 2, Int>,
    /// Which keys each query may attend to.
    pub mask: AttentionMask<B>,
    /// Cache to extend and attend over, if decoding incrementally.
    pub cache: Option<&'a mut KvCache<B>>,
    /// Leading positions that only lend keys and values (CoMeT's memory slots): no query,
    /// no MLP, passed through unchanged.
    pub memory: usize,
}

/// A Llama / Qwen2 / Qwen3 decoder-only model.
#[derive(Module, Debug)]
pub struct Llm<B: Backend> {
    /// Token embeddings `[vocab, hidden]`.
    pub embed_tokens: Embedding<B>,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
    /// Output projection `[hidden, vocab]`; `None` when tied to the embeddings.
    pub lm_head: Option<Linear<B>>,
    /// Hyper-parameters.
    #[module(skip)]
    pub config: ModelConfig,
    /// RoPE frequencies.
    #[module(skip)]
    pub rope: Rope,
    /// The low-rank adapters' config, when the layers carry adapters.
    #[module(skip)]
    pub lora: Option<LoraConfig>,
}

impl<B: Backend> Llm<B> {
    /// Embeds token ids `[batch, seq]` -> `[batch, seq, hidden]`.
    pub fn embed(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.embed_tokens.forward(ids)
    }

    /// Runs the layers and the final norm over `hidden` `[batch, seq, hidden]`.
    pub fn forward_hidden(
        &self,
        mut hidden: Tensor<B, 3>,
        input: ForwardInput<'_, B>,
        hook: &mut impl LayerHook<B>,
    ) -> Tensor<B, 3> {
        let rope = self.rope.tables(input.positions).cast(hidden.dtype());
        let mut cache = input.cache;
        for (l, layer) in self.layers.iter().enumerate() {
            hidden = hook.before_layer(l, hidden);
            hidden = layer.forward(
                hidden,
                &rope,
                &input.mask,
                cache.as_deref_mut().map(|c| (c, l)),
                input.memory,
            );
            hook.after_layer(l, &hidden);
        }
        crate::kernels::kernels::<B>().rms_norm(hidden, &self.norm)
    }

    /// Projects normed hidden states `[batch, seq, hidden]` to logits `[batch, seq, vocab]`.
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let kernels = crate::kernels::kernels::<B>();
        match &self.lm_head {
            Some(head) => kernels.linear(
                hidden,
                head.weight.val(),
                head.bias.as_ref().map(|b| b.val()),
            ),
            // Tied: the embeddings `[vocab, hidden]` read transposed, in place.
            None => kernels.linear(hidden, self.embed_tokens.weight.val().transpose(), None),
        }
    }

    /// Final hidden states `[batch, seq, hidden]` of token ids `[batch, seq]` under plain
    /// causal attention, continuing `cache` if given (positions start where the cache ends).
    pub fn forward_normed(
        &self,
        ids: Tensor<B, 2, Int>,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let [batch, seq] = ids.dims();
        let start = cache.as_ref().map_or(0, |c| c.len()) as i64;
        let positions = Tensor::arange(start..start + seq as i64, &ids.device())
            .reshape([1, seq])
            .expand([batch, seq]);
        let input = ForwardInput {
            positions,
            mask: AttentionMask::Causal,
            cache,
            memory: 0,
        };
        self.forward_hidden(self.embed(ids), input, &mut NoHook)
    }

    /// Logits `[batch, seq, vocab]` of token ids `[batch, seq]` (see [`Self::forward_normed`]).
    pub fn forward(&self, ids: Tensor<B, 2, Int>, cache: Option<&mut KvCache<B>>) -> Tensor<B, 3> {
        self.logits(self.forward_normed(ids, cache))
    }

    /// Logits `[vocab]` of the last position of `ids` `[1, seq]`; the output head runs on that
    /// position alone, which matters with a 50k+ vocabulary.
    pub fn forward_last(&self, ids: Tensor<B, 2, Int>, cache: Option<&mut KvCache<B>>) -> Vec<f32> {
        let hidden = self.forward_normed(ids, cache);
        let [batch, seq, d] = hidden.dims();
        let last = hidden.slice([0..batch, seq - 1..seq, 0..d]);
        self.logits(last)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits")
    }

    /// The hyper-parameters the model was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}
