//! Next-token cross-entropy over rows of logits, threaded over rows, with the fast `exp`:
//! the log-sum-exp of each row in one pass (on a scratch copy that stays in cache), and
//! the backward pass `softmax - one_hot` written once (a composition of tensor ops makes
//! five or six passes over the `[rows, vocab]` logits each way, each with its own buffer).

use rayon::prelude::*;

use crate::exp::{exp_sub_sum, max};

/// Per row of logits: the log-sum-exp (what the backward pass needs) and the negative
/// log-likelihood `lse - logits[target]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrossEntropy {
    /// Each row's log-sum-exp.
    pub lse: Vec<f32>,
    /// Each row's negative log-likelihood of its target.
    pub nll: Vec<f32>,
}

impl CrossEntropy {
    /// The rows' summed negative log-likelihood (accumulated in `f64`).
    pub fn total(&self) -> f32 {
        self.nll.iter().map(|&x| x as f64).sum::<f64>() as f32
    }
}

/// [`CrossEntropy`] of each row of `logits` (`vocab` wide) against its `targets` entry.
pub fn cross_entropy(logits: &[f32], vocab: usize, targets: &[usize]) -> CrossEntropy {
    check(logits, vocab, targets);
    logits
        .par_chunks(vocab)
        .zip(targets.par_iter())
        .map_init(
            || vec![0f32; vocab],
            |scratch, (row, &t)| {
                let m = max(row);
                scratch.copy_from_slice(row);
                let lse = m + exp_sub_sum(scratch, m).ln();
                (lse, lse - row[t])
            },
        )
        .unzip::<_, _, Vec<f32>, Vec<f32>>()
        .into()
}

impl From<(Vec<f32>, Vec<f32>)> for CrossEntropy {
    fn from((lse, nll): (Vec<f32>, Vec<f32>)) -> Self {
        Self { lse, nll }
    }
}

/// The gradient of `grad * sum(nll)` with respect to `logits`, given each row's
/// log-sum-exp `lse` from [`cross_entropy`]: `grad * (softmax(row) - one_hot(target))`.
pub fn cross_entropy_backward(
    logits: &[f32],
    vocab: usize,
    targets: &[usize],
    lse: &[f32],
    grad: f32,
) -> Vec<f32> {
    check(logits, vocab, targets);
    assert_eq!(
        lse.len(),
        targets.len(),
        "cross_entropy_backward: one lse per row"
    );
    let mut out = logits.to_vec();
    out.par_chunks_mut(vocab)
        .zip(targets.par_iter().zip(lse.par_iter()))
        .for_each(|(row, (&t, &lse))| {
            exp_sub_sum(row, lse);
            row.iter_mut().for_each(|p| *p *= grad);
            row[t] -= grad;
        });
    out
}

fn check(logits: &[f32], vocab: usize, targets: &[usize]) {
    assert!(
        vocab > 0 && logits.len() == vocab * targets.len(),
        "cross_entropy: {} logits for {} rows of {vocab}",
        logits.len(),
        targets.len()
    );
    assert!(
        targets.iter().all(|&t| t < vocab),
        "cross_entropy: a target outside the vocabulary of {vocab}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(rows: usize, vocab: usize) -> Vec<f32> {
        (0..rows * vocab)
            .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
            .collect()
    }

    #[test]
    fn loss_and_gradient_match_f64_definitions() {
        let (rows, vocab) = (5, 1003);
        let x = logits(rows, vocab);
        let targets = [0, 17, 1002, 500, 17];
        let out = cross_entropy(&x, vocab, &targets);
        let grad = cross_entropy_backward(&x, vocab, &targets, &out.lse, 0.25);
        for (r, &t) in targets.iter().enumerate() {
            let row: Vec<f64> = x[r * vocab..][..vocab].iter().map(|&v| v as f64).collect();
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            assert!(
                (out.nll[r] as f64 - (lse - row[t])).abs() < 1e-5,
                "nll of row {r}"
            );
            for (j, v) in row.iter().enumerate() {
                let want = 0.25 * ((v - lse).exp() - if j == t { 1.0 } else { 0.0 });
                let got = grad[r * vocab + j] as f64;
                assert!((got - want).abs() < 1e-7, "d[{r}][{j}]: {got} vs {want}");
            }
        }
    }
}
