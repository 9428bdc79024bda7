//! The SwiGLU feed-forward block.

use burn::nn::Linear;
use burn::prelude::*;

use super::lora::{project, project_all, Lora};

/// `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[hidden, intermediate]`.
    pub gate_proj: Linear<B>,
    /// `[hidden, intermediate]`.
    pub up_proj: Linear<B>,
    /// `[intermediate, hidden]`.
    pub down_proj: Linear<B>,
    /// Low-rank adapter on `gate_proj` (none in a plain model).
    pub gate_lora: Option<Lora<B>>,
    /// Adapter on `up_proj`.
    pub up_lora: Option<Lora<B>>,
    /// Adapter on `down_proj`.
    pub down_lora: Option<Lora<B>>,
}

impl<B: Backend> Mlp<B> {
    /// `[batch, seq, hidden] -> [batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [gate, up] = project_all(
            [
                (&self.gate_proj, &self.gate_lora),
                (&self.up_proj, &self.up_lora),
            ],
            x,
        );
        let hidden = crate::kernels::kernels::<B>().swiglu(gate, up);
        project(&self.down_proj, &self.down_lora, hidden)
    }
}
