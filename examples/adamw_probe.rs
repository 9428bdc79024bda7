//! Times one AdamW step over a model of SmolLM2-135M's parameter count (one 135 M-element
//! parameter) on flex, the optimizer alone (what a full fine-tuning step spends after its
//! backward pass): Burn's `AdamW` against the trainer's `FusedAdamW` (the same arithmetic in
//! one threaded pass), and the largest difference between the parameters they produce.
//! `cargo run --release --example adamw_probe`.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use comet::train::FusedAdamW;

type B = Autodiff<Flex>;

/// 135 M parameters in one tensor.
#[derive(Module, Debug)]
struct Weights<B: Backend> {
    w: Param<Tensor<B, 2>>,
}

fn run<O: SimpleOptimizer<Flex>>(name: &str, optim: O) -> Tensor<Flex, 2> {
    let device = Default::default();
    let rows = 135_000_000 / 1024;
    let mut model = Weights::<B> {
        w: Param::from_tensor(Tensor::from_data(
            TensorData::new(start_values(rows * 1024), [rows, 1024]),
            &device,
        )),
    };
    let mut optim = burn::optim::adaptor::OptimizerAdaptor::<O, Weights<B>, B>::from(optim);
    for step in 0..3 {
        let loss = (model.w.val() * model.w.val()).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let start = Instant::now();
        model = optim.step(1e-3, model, grads);
        // Wait for the update itself, not just its scheduling.
        let _ = model.w.val().slice([0..1, 0..1]).into_data();
        let seconds = start.elapsed().as_secs_f64();
        println!("{name}: step {step} over 135 M parameters in {seconds:.3} s");
    }
    model.w.val().inner()
}

/// The same pseudo-random start for both optimizers.
fn start_values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u64).wrapping_mul(2654435761) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn main() {
    let burn = run(
        "Burn AdamW",
        AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(0.01)
            .build(),
    );
    let fused = run("FusedAdamW", FusedAdamW::new(1e-8, 0.01));
    let diff = (burn - fused).abs().max().into_scalar();
    println!("largest difference between the two: {diff:e}");
}
