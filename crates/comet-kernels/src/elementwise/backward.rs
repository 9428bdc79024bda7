//! Backward passes of the row-wise operations, threaded the same way. RoPE needs none of
//! its own: a rotation's transpose is the rotation by the opposite angles (`rope` with the
//! sines negated).

use rayon::prelude::*;

use super::rows_per_task;
use crate::exp::exp;

/// Gradients of `rms_norm(x, gamma, eps)` given the upstream gradient `grad` (contiguous,
/// like `x`): `(dx, dgamma)`.
pub fn rms_norm_backward(x: &[f32], gamma: &[f32], grad: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "rms_norm_backward: rows of {d}"
    );
    assert_eq!(grad.len(), x.len(), "rms_norm_backward: grad length");
    let mut dx = vec![0f32; x.len()];
    let rows = d * rows_per_task(d);
    let dgamma = dx
        .par_chunks_mut(rows)
        .zip(x.par_chunks(rows).zip(grad.par_chunks(rows)))
        .map(|(dx, (x, g))| {
            let mut dgamma = vec![0f32; d];
            for ((dx, x), g) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(g.chunks_exact(d))
            {
                let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
                // d/dx of x * inv: the direct term, less the change of inv with every x_k.
                let dot: f32 = g
                    .iter()
                    .zip(gamma)
                    .zip(x)
                    .map(|((g, w), x)| g * w * x)
                    .sum();
                let k = dot * inv * inv * inv / d as f32;
                for j in 0..d {
                    dx[j] = g[j] * gamma[j] * inv - x[j] * k;
                    dgamma[j] += g[j] * x[j] * inv;
                }
            }
            dgamma
        })
        .reduce(
            || vec![0f32; d],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    (dx, dgamma)
}

/// Gradients of `swiglu(gate, up)` given `grad`: `(dgate, dup)`.
pub fn swiglu_backward(gate: &[f32], up: &[f32], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert!(
        gate.len() == up.len() && grad.len() == up.len(),
        "swiglu_backward: lengths"
    );
    let (mut dgate, mut dup) = (vec![0f32; gate.len()], vec![0f32; gate.len()]);
    const CHUNK: usize = 1 << 14;
    dgate
        .par_chunks_mut(CHUNK)
        .zip(dup.par_chunks_mut(CHUNK))
        .zip(
            gate.par_chunks(CHUNK)
                .zip(up.par_chunks(CHUNK))
                .zip(grad.par_chunks(CHUNK)),
        )
        .for_each(|((dg, du), ((g, u), o))| swiglu_backward_chunk([dg, du], [g, u, o]));
    (dgate, dup)
}

fn swiglu_backward_chunk(out: [&mut [f32]; 2], inputs: [&[f32]; 3]) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { swiglu_backward_avx2(out, inputs) };
    }
    swiglu_backward_generic(out, inputs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_backward_avx2(out: [&mut [f32]; 2], inputs: [&[f32]; 3]) {
    swiglu_backward_generic(out, inputs);
}

#[inline(always)]
fn swiglu_backward_generic([dgate, dup]: [&mut [f32]; 2], [gate, up, grad]: [&[f32]; 3]) {
    for i in 0..gate.len() {
        let (g, u, o) = (gate[i], up[i], grad[i]);
        let sigmoid = 1.0 / (1.0 + exp(-g));
        dup[i] = o * g * sigmoid;
        // silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g)))
        dgate[i] = o * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences in f64 of `f` at `x`, for the scalar `sum(f(x) * w)`.
    fn numeric(x: &[f32], w: &[f32], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let loss = |x: &[f64]| -> f64 { f(x).iter().zip(w).map(|(y, w)| y * *w as f64).sum() };
        (0..x.len())
            .map(|i| {
                let (mut a, mut b) = (x64.clone(), x64.clone());
                a[i] += 1e-6;
                b[i] -= 1e-6;
                (loss(&a) - loss(&b)) / 2e-6
            })
            .collect()
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < 1e-4 * w.abs().max(1.0),
                "{what} {i}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn rms_norm_gradients_match_central_differences() {
        let d = 24;
        let x: Vec<f32> = (0..3 * d).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        let gamma: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 / d as f32).collect();
        let w: Vec<f32> = (0..3 * d).map(|i| (i as f32 * 0.91).cos()).collect();
        let norm = |x: &[f64], gamma: &[f64]| -> Vec<f64> {
            x.chunks(d)
                .flat_map(|row| {
                    let inv =
                        1.0 / (row.iter().map(|v| v * v).sum::<f64>() / d as f64 + 1e-5).sqrt();
                    row.iter()
                        .zip(gamma)
                        .map(move |(x, g)| x * inv * g)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (dx, dgamma) = rms_norm_backward(&x, &gamma, &w, 1e-5);
        let g64: Vec<f64> = gamma.iter().map(|&v| v as f64).collect();
        close(&dx, &numeric(&x, &w, |x| norm(x, &g64)), "dx");
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        close(&dgamma, &numeric(&gamma, &w, |g| norm(&x64, g)), "dgamma");
    }

    #[test]
    fn swiglu_gradients_match_central_differences() {
        let gate: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) / 20.0).collect();
        let up: Vec<f32> = (0..300).map(|i| (i as f32 * 0.7).sin()).collect();
        let w: Vec<f32> = (0..300).map(|i| (i as f32 * 0.3).cos()).collect();
        let silu = |g: f64| g / (1.0 + (-g).exp());
        let (dgate, dup) = swiglu_backward(&gate, &up, &w);
        let up64: Vec<f64> = up.iter().map(|&v| v as f64).collect();
        let gate64: Vec<f64> = gate.iter().map(|&v| v as f64).collect();
        let from_gate = |g: &[f64]| g.iter().zip(&up64).map(|(g, u)| silu(*g) * u).collect();
        let from_up = |u: &[f64]| gate64.iter().zip(u).map(|(g, u)| silu(*g) * u).collect();
        close(&dgate, &numeric(&gate, &w, from_gate), "dgate");
        close(&dup, &numeric(&up, &w, from_up), "dup");
    }
}
