//! Builds the model's modules from a [`WeightSource`], one tensor at a time.

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use indicatif::ProgressBar;

use super::source::WeightSource;
use crate::config::ModelConfig;
use crate::model::{Attention, DecoderLayer, Llm, Mlp, Rope};
use crate::Result;

/// Reads tensors from a source onto a device, ticking a progress bar per tensor.
struct Builder<'a, B: Backend> {
    source: &'a mut dyn WeightSource,
    device: &'a B::Device,
    progress: &'a ProgressBar,
}

impl<B: Backend> Builder<'_, B> {
    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        let data = self.source.load(name, &shape)?;
        self.progress.inc(1);
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    /// A PyTorch `[out, in]` weight stored as Burn's `[in, out]`.
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear<B>> {
        let name = format!("{prefix}.weight");
        let data = self.source.load(&name, &[d_out, d_in])?;
        let mut transposed = vec![0f32; data.len()];
        for (o, row) in data.chunks_exact(d_in).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                transposed[i * d_out + o] = w;
            }
        }
        self.progress.inc(1);
        let weight = Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), self.device);
        let bias = if bias {
            Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"), [d_out])?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm<B>> {
        Ok(RmsNorm {
            gamma: Param::from_tensor(self.tensor(&format!("{name}.weight"), [dim])?),
            epsilon: eps,
        })
    }

    fn layer(&mut self, c: &ModelConfig, l: usize) -> Result<DecoderLayer<B>> {
        let p = format!("model.layers.{l}");
        let (d, hd) = (c.hidden_size, c.head_dim);
        let qk_norm = |b: &mut Self, which: &str| -> Result<Option<RmsNorm<B>>> {
            if c.qk_norm {
                Ok(Some(b.norm(&format!("{p}.self_attn.{which}_norm"), hd, c.rms_norm_eps)?))
            } else {
                Ok(None)
            }
        };
        let self_attn = Attention {
            q_proj: self.linear(&format!("{p}.self_attn.q_proj"), d, c.num_heads * hd, c.attention_bias)?,
            k_proj: self.linear(&format!("{p}.self_attn.k_proj"), d, c.num_kv_heads * hd, c.attention_bias)?,
            v_proj: self.linear(&format!("{p}.self_attn.v_proj"), d, c.num_kv_heads * hd, c.attention_bias)?,
            o_proj: self.linear(&format!("{p}.self_attn.o_proj"), c.num_heads * hd, d, false)?,
            q_norm: qk_norm(self, "q")?,
            k_norm: qk_norm(self, "k")?,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: hd,
        };
        Ok(DecoderLayer {
            input_layernorm: self.norm(&format!("{p}.input_layernorm"), d, c.rms_norm_eps)?,
            self_attn,
            post_attention_layernorm: self.norm(&format!("{p}.post_attention_layernorm"), d, c.rms_norm_eps)?,
            mlp: Mlp {
                gate_proj: self.linear(&format!("{p}.mlp.gate_proj"), d, c.intermediate_size, false)?,
                up_proj: self.linear(&format!("{p}.mlp.up_proj"), d, c.intermediate_size, false)?,
                down_proj: self.linear(&format!("{p}.mlp.down_proj"), c.intermediate_size, d, false)?,
            },
        })
    }
}

/// Number of tensors [`build_llm`] reads for a config (the progress bar's length).
pub fn tensor_count(c: &ModelConfig) -> u64 {
    let per_layer = 9 + if c.attention_bias { 3 } else { 0 } + if c.qk_norm { 2 } else { 0 };
    (2 + c.num_layers * per_layer + usize::from(!c.tie_word_embeddings)) as u64
}

/// Builds a model for `config` with every weight taken from `source`.
pub fn build_llm<B: Backend>(
    config: &ModelConfig,
    source: &mut dyn WeightSource,
    device: &B::Device,
    progress: &ProgressBar,
) -> Result<Llm<B>> {
    let mut b = Builder {
        source,
        device,
        progress,
    };
    let embed = b.tensor("model.embed_tokens.weight", [config.vocab_size, config.hidden_size])?;
    let layers = (0..config.num_layers)
        .map(|l| b.layer(config, l))
        .collect::<Result<Vec<_>>>()?;
    let norm = b.norm("model.norm", config.hidden_size, config.rms_norm_eps)?;
    // Some tied checkpoints still ship an `lm_head.weight` copy; the config decides.
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        Some(b.linear("lm_head", config.hidden_size, config.vocab_size, false)?)
    };
    Ok(Llm {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers,
        norm,
        lm_head,
        config: config.clone(),
        rope: Rope::new(config),
    })
}
