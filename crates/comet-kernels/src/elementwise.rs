//! Row-wise operations of a decoder layer, threaded over rows: RMSNorm, rotary position
//! embedding (half-split, as Hugging Face), and SwiGLU's `silu(gate) * up`.

use rayon::prelude::*;

use crate::attention::Strided;
use crate::exp::exp;

mod backward;
pub use backward::{rms_norm_backward, swiglu_backward};

/// Rows handed to a thread at a time: enough work to outweigh the hand-over.
fn rows_per_task(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// `x / sqrt(mean(x^2) + eps) * gamma` over rows of `gamma.len()` of contiguous `x`.
pub fn rms_norm(x: &[f32], gamma: &[f32], eps: f32) -> Vec<f32> {
    let d = gamma.len();
    assert!(d > 0 && x.len().is_multiple_of(d), "rms_norm: rows of {d}");
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(d * rows_per_task(d))
        .zip(x.par_chunks(d * rows_per_task(d)))
        .for_each(|(out, x)| {
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let mean = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let inv = 1.0 / (mean + eps).sqrt();
                o.iter_mut()
                    .zip(x)
                    .zip(gamma)
                    .for_each(|((o, x), g)| *o = x * inv * g);
            }
        });
    out
}

/// `x` `[batch, heads, seq, dim]` rotated by the angles whose cosines and sines are `cos`
/// and `sin` `[batch, seq, dim / 2]` (contiguous): the first half of each head is paired
/// with the second. Returns the result token-major, `[batch, seq, heads, dim]` contiguous:
/// the layout the projections produce and the output projection reads, so a model's head
/// split and merge around attention are views in both directions, not copies.
pub fn rope(x: Strided, cos: &[f32], sin: &[f32]) -> Vec<f32> {
    let [batch, heads, seq, dim] = x.shape;
    let half = dim / 2;
    assert!(
        dim % 2 == 0 && cos.len() == batch * seq * half && sin.len() == cos.len(),
        "rope: tables"
    );
    let mut out = vec![0f32; batch * heads * seq * dim];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(dim * rows_per_task(dim))
        .enumerate()
        .for_each(|(task, chunk)| {
            let first = task * rows_per_task(dim);
            for (r, o) in chunk.chunks_exact_mut(dim).enumerate() {
                let row = first + r;
                let (bs, h) = (row / heads, row % heads);
                let (b, s) = (bs / seq, bs % seq);
                let at = x.offset + b * x.strides[0] + h * x.strides[1] + s * x.strides[2];
                let table = (b * seq + s) * half;
                let (c, sn) = (&cos[table..table + half], &sin[table..table + half]);
                let get = |j: usize| x.data[at + j * x.strides[3]];
                for j in 0..half {
                    let (x1, x2) = (get(j), get(j + half));
                    o[j] = x1 * c[j] - x2 * sn[j];
                    o[j + half] = x2 * c[j] + x1 * sn[j];
                }
            }
        });
    out
}

/// `silu(gate) * up` element by element (contiguous, same length).
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    assert_eq!(gate.len(), up.len(), "swiglu: lengths");
    let mut out = vec![0f32; gate.len()];
    out.par_chunks_mut(1 << 14)
        .zip(gate.par_chunks(1 << 14).zip(up.par_chunks(1 << 14)))
        .for_each(|(o, (g, u))| swiglu_chunk(o, g, u));
    out
}

fn swiglu_chunk(out: &mut [f32], gate: &[f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { swiglu_avx2(out, gate, up) };
    }
    swiglu_generic(out, gate, up);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_avx2(out: &mut [f32], gate: &[f32], up: &[f32]) {
    swiglu_generic(out, gate, up);
}

#[inline(always)]
fn swiglu_generic(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_its_definition() {
        let x: Vec<f32> = (0..3 * 40).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let gamma: Vec<f32> = (0..40).map(|i| 0.5 + i as f32 / 40.0).collect();
        let got = rms_norm(&x, &gamma, 1e-5);
        for (row, out) in x.chunks(40).zip(got.chunks(40)) {
            let rms = (row.iter().map(|v| (v * v) as f64).sum::<f64>() / 40.0 + 1e-5).sqrt();
            for ((x, o), g) in row.iter().zip(out).zip(&gamma) {
                let want = *x as f64 / rms * *g as f64;
                assert!((*o as f64 - want).abs() < 1e-5 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn rope_rotates_each_pair_by_its_angle() {
        let (batch, heads, seq, dim) = (2, 3, 5, 8);
        let x: Vec<f32> = (0..batch * heads * seq * dim)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let angle = |b: usize, s: usize, j: usize| (b * 7 + s) as f32 * 0.3 / (j + 1) as f32;
        let half = dim / 2;
        let mut cos = Vec::new();
        let mut sin = Vec::new();
        for b in 0..batch {
            for s in 0..seq {
                for j in 0..half {
                    cos.push(angle(b, s, j).cos());
                    sin.push(angle(b, s, j).sin());
                }
            }
        }
        let strided = Strided {
            data: &x,
            offset: 0,
            shape: [batch, heads, seq, dim],
            strides: [heads * seq * dim, seq * dim, dim, 1],
        };
        let got = rope(strided, &cos, &sin);
        for (row, input) in x.chunks(dim).enumerate() {
            let (b, h, s) = (row / (heads * seq), row / seq % heads, row % seq);
            let out = &got[((b * seq + s) * heads + h) * dim..][..dim];
            for j in 0..half {
                let (c, sn) = (angle(b, s, j).cos(), angle(b, s, j).sin());
                assert!((out[j] - (input[j] * c - input[j + half] * sn)).abs() < 1e-6);
                assert!((out[j + half] - (input[j + half] * c + input[j] * sn)).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn swiglu_matches_silu_times_up() {
        let gate: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 25.0).collect();
        let up: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.7).sin()).collect();
        for ((o, g), u) in swiglu(&gate, &up).iter().zip(&gate).zip(&up) {
            let want = (*g as f64) / (1.0 + (-*g as f64).exp()) * *u as f64;
            assert!((*o as f64 - want).abs() < 1e-6 * want.abs().max(1.0), "{g}");
        }
    }
}
