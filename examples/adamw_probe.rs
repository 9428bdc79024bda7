//! Times one step of Burn's AdamW on flex for a model of SmolLM2-135M's parameter count
//! (one 135 M-element parameter), the optimizer alone: what a full fine-tuning step spends
//! after its backward pass. `cargo run --release --example adamw_probe`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;

type B = Autodiff<Flex>;

/// 135 M parameters in one tensor.
#[derive(Module, Debug)]
struct Weights<B: Backend> {
    w: Param<Tensor<B, 2>>,
}

fn main() {
    let device = Default::default();
    let rows = 135_000_000 / 1024;
    let mut model = Weights::<B> {
        w: Param::from_tensor(Tensor::ones([rows, 1024], &device)),
    };
    let mut optim = AdamWConfig::new().init::<B, Weights<B>>();
    for step in 0..3 {
        let grads = GradientsParams::from_grads(model.w.val().sum().backward(), &model);
        let start = Instant::now();
        model = optim.step(1e-4, model, grads);
        // Wait for the update itself, not just its scheduling.
        let _ = model.w.val().slice([0..1, 0..1]).into_data();
        let seconds = start.elapsed().as_secs_f64();
        println!("step {step}: AdamW over 135 M parameters in {seconds:.3} s");
    }
}
