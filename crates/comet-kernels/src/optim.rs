//! Optimizer arithmetic over flat parameter buffers, threaded: AdamW's update in one pass
//! over parameter, gradient and both moments (a composition of tensor ops reads and writes
//! each buffer about a dozen times, one thread at a time), and the gradients' sum of
//! squares (for clipping by the global norm) without a squared copy.

use rayon::prelude::*;

/// Elements per task: large enough to amortise the hand-over, small enough to balance.
const CHUNK: usize = 1 << 15;

/// One AdamW step's constants, in the order and precision of Burn's `AdamW`
/// (`burn-optim` 0.21), so that this update and Burn's agree bit for bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the second moment's square root.
    pub epsilon: f32,
    /// Decoupled weight decay (scaled by the learning rate).
    pub weight_decay: f32,
    /// The step's number, from 1 (for the moments' bias corrections).
    pub time: i32,
}

impl AdamW {
    /// The per-element update of `(param, grad, moment_1, moment_2)`: the new parameter,
    /// the moments updated in place.
    #[inline(always)]
    fn kernel(&self) -> impl Fn(f32, f32, &mut f32, &mut f32) -> f32 + Sync {
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let (c1, c2) = (1f32 - b1.powi(self.time), 1f32 - b2.powi(self.time));
        let decay_rate = self.lr * self.weight_decay as f64;
        let keep = (1.0 - decay_rate) as f32;
        let lr = self.lr as f32;
        move |p, g, m, v| {
            *m = *m * b1 + g * f1;
            *v = *v * b2 + g * g * f2;
            let delta = (*m / c1) / ((*v / c2).sqrt() + eps);
            p * keep - delta * lr
        }
    }
}

/// One AdamW step in place: `param`, `moment_1` and `moment_2` updated from `grad`
/// (all of one length).
pub fn adamw(
    param: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    step: &AdamW,
) {
    check_lengths(param.len(), grad, moment_1, moment_2);
    let update = step.kernel();
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(
            moment_1
                .par_chunks_mut(CHUNK)
                .zip(moment_2.par_chunks_mut(CHUNK)),
        )
        .for_each(|((p, g), (m, v))| {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                *p = update(*p, *g, m, v);
            }
        });
}

/// [`adamw`] for a parameter held elsewhere too: the new parameter written to `out`,
/// `param` left as it is.
pub fn adamw_into(
    out: &mut [f32],
    param: &[f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    step: &AdamW,
) {
    assert_eq!(out.len(), param.len(), "adamw: output length");
    check_lengths(param.len(), grad, moment_1, moment_2);
    let update = step.kernel();
    out.par_chunks_mut(CHUNK)
        .zip(param.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
        .zip(
            moment_1
                .par_chunks_mut(CHUNK)
                .zip(moment_2.par_chunks_mut(CHUNK)),
        )
        .for_each(|((o, (p, g)), (m, v))| {
            for ((((o, p), g), m), v) in o.iter_mut().zip(p).zip(g).zip(m).zip(v) {
                *o = update(*p, *g, m, v);
            }
        });
}

fn check_lengths(n: usize, grad: &[f32], moment_1: &[f32], moment_2: &[f32]) {
    assert!(
        grad.len() == n && moment_1.len() == n && moment_2.len() == n,
        "adamw: parameter {n}, gradient {}, moments {} and {}",
        grad.len(),
        moment_1.len(),
        moment_2.len()
    );
}

/// `sum(x^2)`, accumulated in `f64` across blocks (eight `f32` lanes within one).
pub fn sum_squares(x: &[f32]) -> f64 {
    x.par_chunks(CHUNK)
        .map(|c| {
            let mut lanes = [0f32; 8];
            let blocks = c.chunks_exact(8);
            let tail: f32 = blocks.remainder().iter().map(|v| v * v).sum();
            for b in blocks {
                for i in 0..8 {
                    lanes[i] += b[i] * b[i];
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// `x *= factor` in place.
pub fn scale(x: &mut [f32], factor: f32) {
    x.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|v| *v *= factor));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(time: i32) -> AdamW {
        AdamW {
            lr: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.1,
            time,
        }
    }

    /// AdamW written out in `f64` (Loshchilov & Hutter, with bias correction).
    fn reference(p: f64, gs: &[f64], s: &AdamW) -> f64 {
        let (b1, b2) = (s.beta_1 as f64, s.beta_2 as f64);
        let (mut p, mut m, mut v) = (p, 0.0, 0.0);
        for (t, g) in gs.iter().enumerate() {
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let t = t as i32 + 1;
            let (mh, vh) = (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t)));
            p = p * (1.0 - s.lr * s.weight_decay as f64)
                - s.lr * mh / (vh.sqrt() + s.epsilon as f64);
        }
        p
    }

    #[test]
    fn adamw_follows_its_definition_over_steps_in_place_and_not() {
        let n = 3 * CHUNK + 17;
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let grads: Vec<Vec<f32>> = (0..3)
            .map(|t| {
                (0..n)
                    .map(|i| ((i * (t + 2)) as f32 * 0.011).cos() * 0.1)
                    .collect()
            })
            .collect();
        let (mut p, mut m, mut v) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
        let (mut q, mut m2, mut v2) = (p0.clone(), vec![0f32; n], vec![0f32; n]);
        for (t, g) in grads.iter().enumerate() {
            adamw(&mut p, g, &mut m, &mut v, &step(t as i32 + 1));
            let mut out = vec![0f32; n];
            adamw_into(&mut out, &q, g, &mut m2, &mut v2, &step(t as i32 + 1));
            q = out;
        }
        assert_eq!(p, q, "in place and into another buffer differ");
        for i in (0..n).step_by(997) {
            let gs: Vec<f64> = grads.iter().map(|g| g[i] as f64).collect();
            let want = reference(p0[i] as f64, &gs, &step(1));
            assert!(
                (p[i] as f64 - want).abs() < 1e-6,
                "element {i}: {} vs {want}",
                p[i]
            );
        }
    }

    #[test]
    fn sum_squares_and_scale() {
        let mut x: Vec<f32> = (0..CHUNK * 2 + 5).map(|i| (i % 7) as f32 - 3.0).collect();
        let want: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        assert_eq!(sum_squares(&x), want);
        scale(&mut x, 0.5);
        assert_eq!(sum_squares(&x), want / 4.0);
    }
}
