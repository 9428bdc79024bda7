//! GFLOP/s of the CPU matmul kernel on the model's shapes (and the weights' read rate):
//! `cargo run --release --example gemm_bench [-- --json]` (`--json`: one JSON object a
//! shape, as `scripts/gemm_vs_blas.sh` reads them beside OpenBLAS and MKL).

use std::time::Instant;

use comet_kernels::{matmul, Matrix};

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    // (rows, d_in, d_out, weight stored transposed as a tied output head is)
    let shapes = [
        (1024, 576, 1536, false),
        (1024, 1536, 576, false),
        (1024, 576, 49152, true),
        (1, 576, 1536, false),
        (1, 1536, 576, false),
        (1, 576, 49152, true),
    ];
    for (m, k, n, transposed) in shapes {
        let x = vec![0.5f32; m * k];
        let w = vec![0.25f32; k * n];
        let strides = if transposed { [1, k] } else { [n, 1] };
        let run = || {
            let start = Instant::now();
            let x = Matrix {
                data: &x,
                offset: 0,
                shape: [m, k],
                strides: [k, 1],
            };
            let w = Matrix {
                data: &w,
                offset: 0,
                shape: [k, n],
                strides,
            };
            std::hint::black_box(matmul(x, w, None));
            start.elapsed().as_secs_f64()
        };
        // A warm-up run, then the best of several.
        run();
        let reps = if m * n * k > 1 << 28 { 5 } else { 20 };
        let best = (0..reps).map(|_| run()).fold(f64::INFINITY, f64::min);
        let gbs = 4.0 * (k * n) as f64 / best / 1e9;
        let flops = 2.0 * (m * n * k) as f64 / best / 1e9;
        if json {
            println!(
                "{{\"program\": \"comet-kernels\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"transposed\": {transposed}, \"gflops\": {flops:.2}, \"seconds\": {best:.6}}}"
            );
            continue;
        }
        let t = if transposed { " (w^T)" } else { "" };
        println!("{m}x{k}x{n}{t}: {flops:.1} GFLOP/s, weights read at {gbs:.1} GB/s");
    }
}
