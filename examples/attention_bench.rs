//! Times one attention call on the flex backend, fast kernel against Burn's generic path:
//! `cargo run --release --example attention_bench -- [queries] [keys]`.

use std::time::Instant;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::Distribution;
use comet::kernels::{kernels, with_generic};
use comet::model::AttentionMask;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (queries, keys) = (args.first().copied().unwrap_or(2048), args.get(1).copied());
    let keys = keys.unwrap_or(queries);
    let device = Default::default();
    let random = |heads, len| {
        Tensor::<Flex, 4>::random([1, heads, len, 64], Distribution::Normal(0.0, 1.0), &device)
    };
    let (q, k, v) = (random(9, queries), random(3, keys), random(3, keys));
    let run = || {
        let start = Instant::now();
        let out =
            kernels::<Flex>().attention(q.clone(), k.clone(), v.clone(), &AttentionMask::Causal);
        let _ = out.into_data();
        start.elapsed().as_secs_f64()
    };
    let best = |f: &dyn Fn() -> f64| (0..3).map(|_| f()).fold(f64::INFINITY, f64::min);
    let fast = best(&run);
    let generic = best(&|| with_generic(run));
    println!("{queries} queries x {keys} keys, 9 heads / 3 kv heads: fast {fast:.4} s, generic {generic:.4} s ({:.2}x)", generic / fast);
}
