//! GFLOP/s of the CPU matmul kernel on the model's shapes:
//! `cargo run --release --example gemm_bench`.

use std::time::Instant;

use comet_kernels::{matmul, Matrix};

fn main() {
    for (m, k, n) in [
        (1024, 576, 1536),
        (1024, 1536, 576),
        (1024, 576, 576),
        (1024, 576, 49152),
        (2048, 2048, 2048),
        (1, 576, 1536),
    ] {
        let x = vec![0.5f32; m * k];
        let w = vec![0.25f32; k * n];
        let run = || {
            let start = Instant::now();
            let out = matmul(
                Matrix {
                    data: &x,
                    offset: 0,
                    shape: [m, k],
                    strides: [k, 1],
                },
                Matrix {
                    data: &w,
                    offset: 0,
                    shape: [k, n],
                    strides: [n, 1],
                },
                None,
            );
            std::hint::black_box(out);
            start.elapsed().as_secs_f64()
        };
        let reps = if m * n * k > 1 << 28 { 3 } else { 20 };
        let best = (0..reps).map(|_| run()).fold(f64::INFINITY, f64::min);
        println!(
            "{m}x{k}x{n}: {:.1} GFLOP/s",
            2.0 * (m * n * k) as f64 / best / 1e9
        );
    }
}
