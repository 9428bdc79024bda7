//! Low-rank adapters (LoRA) on the base model's projections: `W x + scale * B(A x)`, with
//! `B` starting at zero so an adapted model computes exactly what its base computes until
//! training moves it. Only the adapters train; the base weights stay frozen and shared.

use burn::module::Param;
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Llm;
use crate::{Error, Result};

/// A projection that can carry an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// Attention query projection.
    Q,
    /// Attention key projection.
    K,
    /// Attention value projection.
    V,
    /// Attention output projection.
    O,
    /// MLP gate projection.
    Gate,
    /// MLP up projection.
    Up,
    /// MLP down projection.
    Down,
}

/// Rank, scale and targets of the adapters, saved with them (`adapter.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank r of every adapter.
    pub rank: usize,
    /// The update is scaled by `alpha / rank` (as in the LoRA paper and PEFT).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Projections that get an adapter, in every layer.
    #[serde(default = "attention_targets")]
    pub targets: Vec<LoraTarget>,
}

fn default_alpha() -> f64 {
    16.0
}

fn attention_targets() -> Vec<LoraTarget> {
    vec![LoraTarget::Q, LoraTarget::K, LoraTarget::V, LoraTarget::O]
}

impl LoraConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err(Error::Input(
                "lora: `rank` and `alpha` must be positive".into(),
            ));
        }
        if self.targets.is_empty() {
            return Err(Error::Input("lora: `targets` lists no projection".into()));
        }
        Ok(())
    }

    fn has(&self, target: LoraTarget) -> bool {
        self.targets.contains(&target)
    }

    /// Whether adapters made with `self` can continue training as `wanted`: the same rank
    /// and scale, on the same projections or more (the new ones start at zero).
    pub fn grows_into(&self, wanted: &LoraConfig) -> bool {
        self.rank == wanted.rank
            && self.alpha == wanted.alpha
            && self.targets.iter().all(|&t| wanted.has(t))
    }
}

/// One adapter: `x -> scale * (x A) B`, A `[d_in, rank]`, B `[rank, d_out]`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// Down projection `[d_in, rank]`, random.
    pub a: Param<Tensor<B, 2>>,
    /// Up projection `[rank, d_out]`, zero at the start.
    pub b: Param<Tensor<B, 2>>,
    /// `alpha / rank`.
    pub scale: f64,
}

impl<B: Backend> Lora<B> {
    /// A fresh adapter; A is Kaiming-uniform (PEFT's default) from a host RNG, so a seed
    /// gives the same adapter on every backend.
    pub fn new(
        d_in: usize,
        d_out: usize,
        config: &LoraConfig,
        rng: &mut StdRng,
        device: &B::Device,
    ) -> Self {
        let bound = (1.0 / d_in as f32).sqrt();
        let a: Vec<f32> = (0..d_in * config.rank)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(a, [d_in, config.rank]),
                device,
            )),
            b: Param::from_tensor(Tensor::zeros([config.rank, d_out], device)),
            scale: config.alpha / config.rank as f64,
        }
    }

    /// The update `[batch, seq, d_out]` for inputs `[batch, seq, d_in]`. The scale goes on
    /// the `[batch * seq, rank]` product, not on `B`: an op on a parameter alone can start an
    /// autodiff graph that costs a merge (see `train/graph.rs`).
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d_in] = x.dims();
        let d_out = self.b.dims()[1];
        x.reshape([batch * seq, d_in])
            .matmul(self.a.val())
            .mul_scalar(self.scale)
            .matmul(self.b.val())
            .reshape([batch, seq, d_out])
    }
}

/// `linear(x)`, plus the adapter's update when there is one.
pub fn project<B: Backend>(
    linear: &burn::nn::Linear<B>,
    lora: &Option<Lora<B>>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [out] = project_all([(linear, lora)], x);
    out
}

/// [`project`] of one input through several layers, the base products together
/// ([`Kernels::linears`](crate::kernels::Kernels::linears)).
pub fn project_all<B: Backend, const N: usize>(
    layers: [(&burn::nn::Linear<B>, &Option<Lora<B>>); N],
    x: Tensor<B, 3>,
) -> [Tensor<B, 3>; N] {
    let params = layers
        .iter()
        .map(|(l, _)| (l.weight.val(), l.bias.as_ref().map(|b| b.val())))
        .collect();
    let base = crate::kernels::kernels::<B>().linears(x.clone(), params);
    let mut outs = base
        .into_iter()
        .zip(layers)
        .map(|(out, (_, lora))| match lora {
            Some(lora) => out + lora.forward(x.clone()),
            None => out,
        });
    std::array::from_fn(|_| outs.next().expect("one output per layer"))
}

impl<B: Backend> Llm<B> {
    /// Adds fresh adapters on `config.targets` in every layer (drawn from `seed`). Adapters
    /// already there stay as trained, so an adapter can grow onto more projections (see
    /// [`LoraConfig::grows_into`]) and still compute what it computed.
    pub fn with_lora(mut self, config: &LoraConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let device = self.embed_tokens.weight.device();
        let mut add =
            |target: LoraTarget, linear: &burn::nn::Linear<B>, have: &mut Option<Lora<B>>| {
                if have.is_none() && config.has(target) {
                    let [d_in, d_out] = linear.weight.dims();
                    *have = Some(Lora::new(d_in, d_out, config, &mut rng, &device));
                }
            };
        for layer in &mut self.layers {
            let attn = &mut layer.self_attn;
            add(LoraTarget::Q, &attn.q_proj, &mut attn.q_lora);
            add(LoraTarget::K, &attn.k_proj, &mut attn.k_lora);
            add(LoraTarget::V, &attn.v_proj, &mut attn.v_lora);
            add(LoraTarget::O, &attn.o_proj, &mut attn.o_lora);
            let mlp = &mut layer.mlp;
            add(LoraTarget::Gate, &mlp.gate_proj, &mut mlp.gate_lora);
            add(LoraTarget::Up, &mlp.up_proj, &mut mlp.up_lora);
            add(LoraTarget::Down, &mlp.down_proj, &mut mlp.down_lora);
        }
        self.lora = Some(config.clone());
        self
    }

    /// The model with its base weights frozen (no gradient, no optimizer state) and its
    /// adapters, if any, still trainable.
    pub fn freeze_base(mut self) -> Self {
        let mut adapters = Vec::new();
        for layer in &mut self.layers {
            let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
            adapters.push([
                a.q_lora.take(),
                a.k_lora.take(),
                a.v_lora.take(),
                a.o_lora.take(),
                m.gate_lora.take(),
                m.up_lora.take(),
                m.down_lora.take(),
            ]);
        }
        let mut frozen = self.no_grad();
        for (layer, [q, k, v, o, gate, up, down]) in frozen.layers.iter_mut().zip(adapters) {
            let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
            (a.q_lora, a.k_lora, a.v_lora, a.o_lora) = (q, k, v, o);
            (m.gate_lora, m.up_lora, m.down_lora) = (gate, up, down);
        }
        frozen
    }
}
