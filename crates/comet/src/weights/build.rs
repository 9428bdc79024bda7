//! Builds the model's modules from a [`WeightSource`], one tensor at a time.

use std::collections::HashSet;

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use indicatif::ProgressBar;

use super::source::WeightSource;
use crate::config::ModelConfig;
use crate::model::{Attention, DecoderLayer, Llm, Mlp, Rope};
use crate::Result;

/// Reads tensors from a source onto a device, ticking a progress bar per tensor. Names are
/// relative to `prefix`: each module names its own tensors (`b.pp("self_attn")`).
struct Builder<'a, B: Backend> {
    source: &'a mut dyn WeightSource,
    device: &'a B::Device,
    progress: &'a ProgressBar,
    prefix: String,
}

impl<B: Backend> Builder<'_, B> {
    /// A builder for the tensors under `name` (`model.layers.3` + `self_attn`).
    fn pp(&mut self, name: &str) -> Builder<'_, B> {
        let prefix = self.path(name);
        Builder {
            source: &mut *self.source,
            device: self.device,
            progress: self.progress,
            prefix,
        }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        let data = self.source.load(&self.path(name), &shape)?;
        self.progress.inc(1);
        Ok(Tensor::from_data(TensorData::new(data, shape), self.device))
    }

    /// A PyTorch `[out, in]` weight stored as Burn's `[in, out]`.
    fn linear(&mut self, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear<B>> {
        let data = self
            .source
            .load(&self.path(&format!("{prefix}.weight")), &[d_out, d_in])?;
        let mut transposed = vec![0f32; data.len()];
        for (o, row) in data.chunks_exact(d_in).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                transposed[i * d_out + o] = w;
            }
        }
        self.progress.inc(1);
        let weight = Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), self.device);
        let bias = if bias {
            Some(Param::from_tensor(
                self.tensor(&format!("{prefix}.bias"), [d_out])?,
            ))
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

    fn layer(&mut self, c: &ModelConfig) -> Result<DecoderLayer<B>> {
        let (d, eps) = (c.hidden_size, c.rms_norm_eps);
        // Reading order = `tensor_specs` order: attention, the two norms, the MLP.
        let self_attn = self.pp("self_attn").attention(c)?;
        Ok(DecoderLayer {
            input_layernorm: self.norm("input_layernorm", d, eps)?,
            self_attn,
            post_attention_layernorm: self.norm("post_attention_layernorm", d, eps)?,
            mlp: self.pp("mlp").mlp(c)?,
        })
    }

    fn attention(&mut self, c: &ModelConfig) -> Result<Attention<B>> {
        let (d, hd, bias) = (c.hidden_size, c.head_dim, c.attention_bias);
        let (q, kv) = (c.num_heads * hd, c.num_kv_heads * hd);
        Ok(Attention {
            q_proj: self.linear("q_proj", d, q, bias)?,
            k_proj: self.linear("k_proj", d, kv, bias)?,
            v_proj: self.linear("v_proj", d, kv, bias)?,
            o_proj: self.linear("o_proj", q, d, false)?,
            q_norm: self.qk_norm(c, "q_norm")?,
            k_norm: self.qk_norm(c, "k_norm")?,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: hd,
            q_lora: None,
            k_lora: None,
            v_lora: None,
            o_lora: None,
        })
    }

    /// Qwen3's per-head RMSNorm of queries and keys, when the family has it.
    fn qk_norm(&mut self, c: &ModelConfig, name: &str) -> Result<Option<RmsNorm<B>>> {
        c.qk_norm
            .then(|| self.norm(name, c.head_dim, c.rms_norm_eps))
            .transpose()
    }

    fn mlp(&mut self, c: &ModelConfig) -> Result<Mlp<B>> {
        let (d, ff) = (c.hidden_size, c.intermediate_size);
        Ok(Mlp {
            gate_proj: self.linear("gate_proj", d, ff, false)?,
            up_proj: self.linear("up_proj", d, ff, false)?,
            down_proj: self.linear("down_proj", ff, d, false)?,
            gate_lora: None,
            up_lora: None,
            down_lora: None,
        })
    }
}

/// Name and PyTorch shape of every tensor [`build_llm`] reads for a config, in reading order.
pub fn tensor_specs(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, hd, ff) = (c.hidden_size, c.head_dim, c.intermediate_size);
    let mut specs = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![c.vocab_size, d],
    )];
    for l in 0..c.num_layers {
        let p = format!("model.layers.{l}");
        let mut layer = Vec::new();
        for (proj, out) in [
            ("q", c.num_heads * hd),
            ("k", c.num_kv_heads * hd),
            ("v", c.num_kv_heads * hd),
        ] {
            layer.push((format!("self_attn.{proj}_proj.weight"), vec![out, d]));
            if c.attention_bias {
                layer.push((format!("self_attn.{proj}_proj.bias"), vec![out]));
            }
        }
        layer.push(("self_attn.o_proj.weight".into(), vec![d, c.num_heads * hd]));
        if c.qk_norm {
            layer.push(("self_attn.q_norm.weight".into(), vec![hd]));
            layer.push(("self_attn.k_norm.weight".into(), vec![hd]));
        }
        layer.push(("input_layernorm.weight".into(), vec![d]));
        layer.push(("post_attention_layernorm.weight".into(), vec![d]));
        layer.push(("mlp.gate_proj.weight".into(), vec![ff, d]));
        layer.push(("mlp.up_proj.weight".into(), vec![ff, d]));
        layer.push(("mlp.down_proj.weight".into(), vec![d, ff]));
        specs.extend(
            layer
                .into_iter()
                .map(|(name, shape)| (format!("{p}.{name}"), shape)),
        );
    }
    specs.push(("model.norm.weight".into(), vec![d]));
    if !c.tie_word_embeddings {
        specs.push(("lm_head.weight".into(), vec![c.vocab_size, d]));
    }
    specs
}

/// Builds a model for `config` with every weight taken from `source`.
pub fn build_llm<B: Backend>(
    config: &ModelConfig,
    source: &mut dyn WeightSource,
    device: &B::Device,
    progress: &ProgressBar,
) -> Result<Llm<B>> {
    let mut tracked = Tracked {
        inner: source,
        used: HashSet::new(),
    };
    let llm = build_from(config, &mut tracked, device, progress)?;
    tracked.inner.check_all_used(&tracked.used)?;
    Ok(llm)
}

/// A source that remembers what was read from it.
struct Tracked<'a> {
    inner: &'a mut dyn WeightSource,
    used: HashSet<String>,
}

impl WeightSource for Tracked<'_> {
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.used.insert(name.to_string());
        self.inner.load(name, shape)
    }
}

fn build_from<B: Backend>(
    config: &ModelConfig,
    source: &mut dyn WeightSource,
    device: &B::Device,
    progress: &ProgressBar,
) -> Result<Llm<B>> {
    let mut b = Builder {
        source,
        device,
        progress,
        prefix: String::new(),
    };
    let embed = b.tensor(
        "model.embed_tokens.weight",
        [config.vocab_size, config.hidden_size],
    )?;
    let layers = (0..config.num_layers)
        .map(|l| b.pp(&format!("model.layers.{l}")).layer(config))
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
        lora: None,
    })
}

/// A model for `config` with fresh random weights, std 0.02 (tests, benchmarks).
pub fn random_llm<B: Backend>(config: &ModelConfig, seed: u64, device: &B::Device) -> Llm<B> {
    random_llm_from(config, super::source::RandomWeights::new(seed), device)
}

/// A model with random weights from `source` (e.g. `RandomWeights::for_training`).
pub fn random_llm_from<B: Backend>(
    config: &ModelConfig,
    mut source: super::source::RandomWeights,
    device: &B::Device,
) -> Llm<B> {
    build_llm(config, &mut source, device, &ProgressBar::hidden())
        .expect("random weights match any config")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Architecture;
    use crate::weights::RandomWeights;

    /// Records what the builder asks for.
    struct Recording(RandomWeights, Vec<(String, Vec<usize>)>);

    impl WeightSource for Recording {
        fn contains(&self, _: &str) -> bool {
            true
        }
        fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
            self.1.push((name.to_string(), shape.to_vec()));
            self.0.load(name, shape)
        }
    }

    #[test]
    fn builder_reads_exactly_the_specs() {
        for (architecture, tied) in [(Architecture::Qwen2, false), (Architecture::Qwen3, true)] {
            let config = ModelConfig {
                architecture,
                vocab_size: 11,
                hidden_size: 8,
                intermediate_size: 12,
                num_layers: 2,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 6,
                rope_theta: 10000.0,
                rope_scaling: None,
                rms_norm_eps: 1e-6,
                tie_word_embeddings: tied,
                attention_bias: architecture == Architecture::Qwen2,
                qk_norm: architecture == Architecture::Qwen3,
                max_position_embeddings: 64,
                eos_token_ids: vec![],
                bos_token_id: None,
            };
            let mut source = Recording(RandomWeights::new(0), Vec::new());
            let device = Default::default();
            build_llm::<burn::backend::Flex>(&config, &mut source, &device, &ProgressBar::hidden())
                .unwrap();
            assert_eq!(source.1, tensor_specs(&config));
        }
    }
}
