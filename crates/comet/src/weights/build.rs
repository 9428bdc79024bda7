//! Builds the model's modules from a [`WeightSource`], one tensor at a time. Each module
//! names its own tensors here, once: [`tensor_specs`] (what a checkpoint must hold, for
//! `comet convert`) and [`super::ModuleWeights`] (a built model read back in Hugging Face
//! naming) are derived from the same walk, run dry.

use std::collections::HashSet;

use burn::module::{Param, ParamId};
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;
use indicatif::ProgressBar;

use super::source::WeightSource;
use crate::config::ModelConfig;
use crate::model::{Attention, DecoderLayer, Llm, Mlp, Rope};
use crate::Result;

/// One stored tensor of the model: its Hugging Face name and PyTorch shape, where Burn keeps
/// it, and whether Burn keeps it transposed (linear weights are `[in, out]` in Burn).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Checkpoint name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Shape as stored in the checkpoint (PyTorch order).
    pub shape: Vec<usize>,
    /// Burn module path, e.g. `layers.0.self_attn.q_proj.weight`.
    pub burn_path: String,
    /// Stored `[out, in]`, held by Burn as `[in, out]`.
    pub transposed: bool,
}

/// Reads tensors from a source onto a device, ticking a progress bar per tensor. Names are
/// relative to a prefix: each module names its own tensors (`b.pp("self_attn")`). A dry
/// builder reads nothing: it records specs and leaves every parameter uninitialised.
struct Builder<'a, B: Backend> {
    source: Option<&'a mut dyn WeightSource>,
    specs: &'a mut Vec<TensorSpec>,
    device: &'a B::Device,
    progress: &'a ProgressBar,
    /// Prefixes of the Hugging Face name and of the Burn path (they differ at the root).
    prefix: (String, String),
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

impl<B: Backend> Builder<'_, B> {
    /// A builder for the tensors under `name` (`model.layers.3` + `self_attn`).
    fn pp(&mut self, name: &str) -> Builder<'_, B> {
        self.scope(name, name)
    }

    /// A builder whose Hugging Face prefix gains `hf` and whose Burn prefix gains `burn`.
    fn scope(&mut self, hf: &str, burn: &str) -> Builder<'_, B> {
        Builder {
            source: self
                .source
                .as_deref_mut()
                .map(|s| s as &mut dyn WeightSource),
            specs: &mut *self.specs,
            device: self.device,
            progress: self.progress,
            prefix: (join(&self.prefix.0, hf), join(&self.prefix.1, burn)),
        }
    }

    /// The tensor stored as `name` (Burn field `field`), in its stored `shape`; a linear
    /// weight is handed back as Burn's `[in, out]`.
    fn param<const D: usize>(
        &mut self,
        name: &str,
        field: &str,
        shape: [usize; D],
        transposed: bool,
    ) -> Result<Param<Tensor<B, D>>> {
        let spec = TensorSpec {
            name: join(&self.prefix.0, name),
            shape: shape.to_vec(),
            burn_path: join(&self.prefix.1, field),
            transposed,
        };
        let mut held = shape;
        if transposed {
            held.reverse();
        }
        let Some(source) = self.source.as_deref_mut() else {
            self.specs.push(spec);
            let shape = Shape::from(held.to_vec());
            let never = |_: &B::Device, _: bool| -> Tensor<B, D> {
                unreachable!("a dry-run parameter is never read")
            };
            return Ok(Param::uninitialized(
                ParamId::new(),
                never,
                self.device.clone(),
                false,
                shape,
            ));
        };
        let mut data = source.load(&spec.name, &shape)?;
        if transposed {
            data = transpose(&data, shape[0], shape[1]);
        }
        self.specs.push(spec);
        self.progress.inc(1);
        let tensor = Tensor::from_data(TensorData::new(data, held), self.device);
        Ok(Param::from_tensor(tensor))
    }

    /// A PyTorch `[out, in]` weight stored as Burn's `[in, out]`.
    fn linear(&mut self, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear<B>> {
        let mut b = self.pp(name);
        Ok(Linear {
            weight: b.param("weight", "weight", [d_out, d_in], true)?,
            bias: bias
                .then(|| b.param("bias", "bias", [d_out], false))
                .transpose()?,
        })
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm<B>> {
        Ok(RmsNorm {
            gamma: self.pp(name).param("weight", "gamma", [dim], false)?,
            epsilon: eps,
        })
    }

    fn layer(&mut self, c: &ModelConfig) -> Result<DecoderLayer<B>> {
        let (d, eps) = (c.hidden_size, c.rms_norm_eps);
        // Read in the order checkpoints store them: attention, the two norms, the MLP.
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

/// `[rows, cols]` row-major data as `[cols, rows]`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for (r, row) in data.chunks_exact(cols).enumerate() {
        for (c, &w) in row.iter().enumerate() {
            out[c * rows + r] = w;
        }
    }
    out
}

/// Every tensor [`build_llm`] reads for a config, in reading order (a dry run of it).
pub fn tensor_specs(config: &ModelConfig) -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    let device = Default::default();
    let mut b = Builder::<crate::backend::Compute> {
        source: None,
        specs: &mut specs,
        device: &device,
        progress: &ProgressBar::hidden(),
        prefix: Default::default(),
    };
    build_with(config, &mut b).expect("a dry run reads nothing, so cannot fail");
    specs
}

/// Builds a model for `config` with every weight taken from `source`; tensors the source
/// holds beyond those are an error.
pub fn build_llm<B: Backend>(
    config: &ModelConfig,
    source: &mut dyn WeightSource,
    device: &B::Device,
    progress: &ProgressBar,
) -> Result<Llm<B>> {
    let mut specs = Vec::new();
    let mut b = Builder {
        source: Some(&mut *source),
        specs: &mut specs,
        device,
        progress,
        prefix: Default::default(),
    };
    let llm = build_with(config, &mut b)?;
    let used: HashSet<String> = specs.into_iter().map(|s| s.name).collect();
    source.check_all_used(&used)?;
    Ok(llm)
}

fn build_with<B: Backend>(config: &ModelConfig, b: &mut Builder<'_, B>) -> Result<Llm<B>> {
    let (d, vocab, eps) = (config.hidden_size, config.vocab_size, config.rms_norm_eps);
    let mut m = b.scope("model", "");
    let embed_tokens = Embedding {
        weight: m
            .pp("embed_tokens")
            .param("weight", "weight", [vocab, d], false)?,
    };
    let layers = (0..config.num_layers)
        .map(|l| m.pp(&format!("layers.{l}")).layer(config))
        .collect::<Result<Vec<_>>>()?;
    let norm = m.norm("norm", d, eps)?;
    // Some tied checkpoints still ship an `lm_head.weight` copy; the config decides.
    let lm_head = (!config.tie_word_embeddings)
        .then(|| b.linear("lm_head", d, vocab, false))
        .transpose()?;
    Ok(Llm {
        embed_tokens,
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

    fn config(architecture: Architecture, tied: bool) -> ModelConfig {
        ModelConfig {
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
        }
    }

    #[test]
    fn the_dry_run_lists_what_a_build_reads() {
        for (architecture, tied) in [(Architecture::Qwen2, false), (Architecture::Qwen3, true)] {
            let config = config(architecture, tied);
            let mut source = Recording(RandomWeights::new(0), Vec::new());
            let device = Default::default();
            build_llm::<burn::backend::Flex>(&config, &mut source, &device, &ProgressBar::hidden())
                .unwrap();
            let specs = tensor_specs(&config);
            let listed: Vec<_> = specs
                .iter()
                .map(|s| (s.name.clone(), s.shape.clone()))
                .collect();
            assert_eq!(source.1, listed);
            // 2 layers x (4 projections + 2 norms + 3 MLP) + embedding + final norm.
            let extra = if tied { 2 * 2 } else { 3 * 2 + 1 };
            assert_eq!(specs.len(), 2 * 9 + 2 + extra, "{architecture:?}");
        }
    }

    #[test]
    fn specs_point_at_the_built_modules() {
        let config = config(Architecture::Qwen2, false);
        let llm = random_llm::<burn::backend::Flex>(&config, 0, &Default::default());
        let paths: HashSet<String> = burn::store::ModuleSnapshot::collect(&llm, None, None, false)
            .iter()
            .map(|s| s.full_path())
            .collect();
        for spec in tensor_specs(&config) {
            assert!(paths.contains(&spec.burn_path), "{spec:?}");
            assert_eq!(
                spec.transposed,
                spec.name.ends_with("proj.weight") || spec.name == "lm_head.weight"
            );
        }
    }
}
