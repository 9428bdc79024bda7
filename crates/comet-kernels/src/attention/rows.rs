//! Scores and values of a few query rows over many keys (a decoding step): every key and
//! value row is read once, straight from the cache, for all query rows of its group. A GEMM
//! would pack the keys first, reading them twice, and that read is all a decoding step's
//! attention costs.

/// Query rows (query heads of a group x queries) up to which these loops replace the GEMMs.
pub(super) const FEW_ROWS: usize = 8;

use crate::Element;

/// Key or value rows: row `j` is `data[j * stride..][..len]`.
pub(super) struct Rows<'a, K> {
    pub data: &'a [K],
    pub stride: usize,
    pub len: usize,
}

impl<K: Element> Rows<'_, K> {
    /// Row `j` as `f32` (converted into `buf` unless it is `f32`).
    #[inline(always)]
    fn row<'a>(&'a self, j: usize, buf: &'a mut [f32]) -> &'a [f32] {
        K::as_f32(&self.data[j * self.stride..][..self.len], buf)
    }
}

/// Room for one converted row.
fn row_buffer<K>(rows: &Rows<K>) -> Vec<f32> {
    vec![0.0; rows.len]
}

/// `scores[r * width + j] = scale * queries[r] . keys[j]` for `width` keys.
pub(super) fn scores<K: Element>(
    queries: &[f32],
    keys: Rows<K>,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { scores_avx2(queries, keys, width, scale, scores) };
    }
    scores_generic(queries, keys, width, scale, scores)
}

/// Eight keys at a time: eight independent multiply-add chains per query row (one chain per
/// key would wait on its own latency), summed across lanes together.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_avx2<K: Element>(
    queries: &[f32],
    keys: Rows<K>,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    use std::arch::x86_64::*;
    let dim = keys.len;
    let whole = if dim.is_multiple_of(8) {
        width / 8 * 8
    } else {
        0
    };
    let mut buf = vec![0f32; 8 * dim];
    for j0 in (0..whole).step_by(8) {
        let mut room = buf.chunks_exact_mut(dim);
        let k: [*const f32; 8] =
            std::array::from_fn(|i| keys.row(j0 + i, room.next().expect("8 rows")).as_ptr());
        for (r, query) in queries.chunks_exact(dim).enumerate() {
            let mut acc = [_mm256_setzero_ps(); 8];
            for c in (0..dim).step_by(8) {
                let q = _mm256_loadu_ps(query.as_ptr().add(c));
                for i in 0..8 {
                    acc[i] = _mm256_fmadd_ps(q, _mm256_loadu_ps(k[i].add(c)), acc[i]);
                }
            }
            let sums = _mm256_mul_ps(hsum8(acc), _mm256_set1_ps(scale));
            _mm256_storeu_ps(scores.as_mut_ptr().add(r * width + j0), sums);
        }
    }
    let mut one = row_buffer(&keys);
    for j in whole..width {
        let key = keys.row(j, &mut one);
        for (r, query) in queries.chunks_exact(dim).enumerate() {
            scores[r * width + j] = scale * crate::dot(query, key);
        }
    }
}

/// Lane `i` of the result is the sum of the lanes of `v[i]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn hsum8(v: [std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let t0 = _mm256_hadd_ps(v[0], v[1]);
    let t1 = _mm256_hadd_ps(v[2], v[3]);
    let t2 = _mm256_hadd_ps(v[4], v[5]);
    let t3 = _mm256_hadd_ps(v[6], v[7]);
    // Per 128-bit half: [s0 s1 s2 s3] of its own four lanes, for vectors 0-3 and 4-7.
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    let lo = _mm256_permute2f128_ps(u0, u1, 0x20);
    let hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    _mm256_add_ps(lo, hi)
}

#[inline(always)]
fn scores_generic<K: Element>(
    queries: &[f32],
    keys: Rows<K>,
    width: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let mut buf = row_buffer(&keys);
    for j in 0..width {
        let key = keys.row(j, &mut buf);
        for (r, query) in queries.chunks_exact(keys.len).enumerate() {
            scores[r * width + j] = scale * crate::dot(query, key);
        }
    }
}

/// `out[r] = sum_j weights[r * width + j] * values[j]` for `width` values.
pub(super) fn values<K: Element>(weights: &[f32], values: Rows<K>, width: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { values_avx2(weights, values, width, out) };
    }
    values_generic(weights, values, width, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn values_avx2<K: Element>(weights: &[f32], values: Rows<K>, width: usize, out: &mut [f32]) {
    values_generic(weights, values, width, out)
}

#[inline(always)]
fn values_generic<K: Element>(weights: &[f32], values: Rows<K>, width: usize, out: &mut [f32]) {
    out.fill(0.0);
    let mut buf = row_buffer(&values);
    for j in 0..width {
        let value = values.row(j, &mut buf);
        for (r, acc) in out.chunks_exact_mut(values.len).enumerate() {
            let w = weights[r * width + j];
            acc.iter_mut()
                .zip(value)
                .for_each(|(o, &x)| *o = x.mul_add(w, *o));
        }
    }
}
