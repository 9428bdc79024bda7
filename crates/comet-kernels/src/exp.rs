//! A branch-free `exp(x)` written so that loops over slices vectorise (AVX2/FMA when the CPU
//! has them, chosen at run time): relative error below 2e-7 over the softmax's range.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that `x - n ln2` keeps its low bits (Cody-Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a branch.
const ROUND: f32 = 12_582_912.0;

/// `exp(x)`, with `x` clamped to [-87.3, 88.7] (results stay normal f32; `-inf` gives
/// `exp(-87.3)` ~ 1e-38, which a softmax treats as 0 next to its maximum's 1).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // exp(r) on [-ln2/2, ln2/2], degree-6 Taylor/minimax (Cephes expf coefficients).
    let p = 1.987_569_1e-4_f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 0.166_666_66);
    let p = p.mul_add(r, 0.5);
    let p = (p * r).mul_add(r, r) + 1.0;
    // 2^n: `t` is `ROUND + n` exactly, so `n` sits in its low mantissa bits. Integer
    // arithmetic on them vectorises; Rust's saturating `n as i32` became eight scalar
    // conversions with NaN and range checks per vector.
    let bits = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let scale = f32::from_bits(bits << 23);
    p * scale
}

/// `row[i] = exp(row[i] - max)` for every `i`; returns the sum of the new values.
pub fn exp_sub_sum(row: &mut [f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { exp_sub_sum_avx2(row, max) };
    }
    exp_sub_sum_generic(row, max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sub_sum_avx2(row: &mut [f32], max: f32) -> f32 {
    exp_sub_sum_generic(row, max)
}

#[inline(always)]
fn exp_sub_sum_generic(row: &mut [f32], max: f32) -> f32 {
    // Eight partial sums, so the loop vectorises (a single sum is a serial chain).
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (x, s) in chunk.iter_mut().zip(sums.iter_mut()) {
            *x = exp(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        sum += *x;
    }
    sum
}

/// The largest value of `row` (`-inf` when empty).
pub fn max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (x, m) in chunk.iter().zip(lanes.iter_mut()) {
            *m = if *x > *m { *x } else { *m };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(lanes.iter())
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_2e_7_relative_over_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64) - want).abs() / want);
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn exp_sub_sum_matches_the_scalar_loop() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let max = max(&row);
        assert_eq!(max, row.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
        let want: Vec<f64> = row.iter().map(|&x| ((x - max) as f64).exp()).collect();
        let sum = exp_sub_sum(&mut row, max);
        for (got, want) in row.iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() <= 2e-7 * want.max(1e-30),
                "{got} {want}"
            );
        }
        assert!((sum as f64 - want.iter().sum::<f64>()).abs() < 1e-5);
    }
}
