//! `x w (+ bias)` for a model's linear layers, threaded for every shape.
//!
//! The `gemm` crate alone runs products under ~7M multiply-adds on one thread; a decoding
//! step's projections (one token: `[1, 576] x [576, 1536]`) are all below that, and are
//! memory-bound, so they leave half the machine idle. Few rows are split here over blocks
//! of output columns, one thread each; many rows go to `gemm`'s own threading.

use rayon::prelude::*;

use crate::Out;

/// Rows up to which the output columns are split over threads.
const FEW_ROWS: usize = 32;

/// A row-major view of a matrix through element strides.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    /// The storage the offsets index.
    pub data: &'a [f32],
    /// Element offset of `[0, 0]`.
    pub offset: usize,
    /// `[rows, cols]`.
    pub shape: [usize; 2],
    /// Element strides of rows and columns.
    pub strides: [usize; 2],
}

impl Matrix<'_> {
    /// The same storage read as the transpose (`[cols, rows]`), without a copy.
    pub fn transposed(self) -> Self {
        let ([r, c], [sr, sc]) = (self.shape, self.strides);
        Self {
            shape: [c, r],
            strides: [sc, sr],
            ..self
        }
    }

    fn in_bounds(&self) -> bool {
        let [r, c] = self.shape;
        r == 0
            || c == 0
            || self.offset + (r - 1) * self.strides[0] + (c - 1) * self.strides[1] < self.data.len()
    }
}

/// `x` `[m, k]` times `w` `[k, n]`, plus `bias` `[n]` on every row: `[m, n]`, contiguous.
///
/// # Panics
/// On mismatched shapes or strides reaching outside their storage.
pub fn matmul(x: Matrix, w: Matrix, bias: Option<&[f32]>) -> Vec<f32> {
    let ([m, k], [k2, n]) = (x.shape, w.shape);
    assert_eq!(k, k2, "matmul: inner dimensions");
    assert!(
        x.in_bounds() && w.in_bounds(),
        "matmul: strides out of bounds"
    );
    assert!(bias.is_none_or(|b| b.len() == n), "matmul: bias length");
    if m * n == 0 || k == 0 {
        return add_bias_rows(vec![0f32; m * n], bias);
    }
    let threads = rayon::current_num_threads();
    if m <= GEMV_ROWS && w.strides[1] == 1 && x.strides[1] == 1 {
        let out = gemv_many(x, &[w], threads).pop().expect("one weight");
        return add_bias_rows(out, bias);
    }
    // Not zeroed first: every branch below writes all `m * n` elements through `dst`
    // (gemm with `read_dst = false` never reads it), and zeroing cost a training step ~1%.
    let mut out = Vec::<f32>::with_capacity(m * n);
    let dst = Out(out.as_mut_ptr());
    if m <= GEMV_ROWS && w.strides[0] == 1 && x.strides[1] == 1 {
        gemv_transposed(x, w, dst, threads);
    } else if m <= FEW_ROWS && threads > 1 {
        // Blocks of a multiple of 16 columns, a few per thread for balance.
        let block = n.div_ceil(4 * threads).next_multiple_of(16).max(16);
        (0..n.div_ceil(block)).into_par_iter().for_each(|b| {
            let (j0, j1) = (b * block, ((b + 1) * block).min(n));
            // SAFETY: bounds checked above; block `b` writes only columns j0..j1.
            unsafe { product(x, w, dst, [m, n], j0..j1, gemm::Parallelism::None) };
        });
    } else {
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: bounds checked above; the whole output.
        unsafe { product(x, w, dst, [m, n], 0..n, parallelism) };
    }
    // SAFETY: the capacity is `m * n` and every element was written above.
    unsafe { out.set_len(m * n) };
    add_bias_rows(out, bias)
}

/// `out` with `bias` (if any) added to each of its rows.
fn add_bias_rows(mut out: Vec<f32>, bias: Option<&[f32]>) -> Vec<f32> {
    if let Some(bias) = bias {
        add_bias(&mut out, bias);
    }
    out
}

/// `bias` added to every row of `out` (rows of `bias.len()`).
fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
    }
}

/// `x w_t (+ bias_t)` for several weights `w_t` `[k, n_t]` of the same input (a layer's
/// query/key/value or gate/up projections). A few rows of `x` against row-major weights
/// take one pass over all of them, split over threads together: one hand-over to the
/// threads instead of one per weight, which is most of a decoding step's idle time.
pub fn matmul_many(x: Matrix, ws: &[Matrix], biases: &[Option<&[f32]>]) -> Vec<Vec<f32>> {
    assert_eq!(
        ws.len(),
        biases.len(),
        "matmul_many: one bias slot per weight"
    );
    let k = x.shape[1];
    let streamable = x.shape[0] <= GEMV_ROWS
        && x.strides[1] == 1
        && ws.iter().all(|w| w.shape[0] == k && w.strides[1] == 1);
    if !streamable || ws.len() < 2 || rayon::current_num_threads() < 2 {
        return ws
            .iter()
            .zip(biases)
            .map(|(w, b)| matmul(x, *w, *b))
            .collect();
    }
    assert!(
        x.in_bounds() && ws.iter().all(Matrix::in_bounds),
        "matmul_many: strides out of bounds"
    );
    let mut outs = gemv_many(x, ws, rayon::current_num_threads());
    for ((out, w), bias) in outs.iter_mut().zip(ws).zip(biases) {
        if let Some(bias) = bias {
            assert_eq!(bias.len(), w.shape[1], "matmul_many: bias length");
            add_bias(out, bias);
        }
    }
    outs
}

/// Rows up to which a row-major weight is streamed once, split by its rows over threads.
const GEMV_ROWS: usize = 4;

/// `x w_t` for a few rows of `x` and each weight `w_t`: each thread reads a contiguous band
/// of rows of every weight once and adds `x[i, r] * w_t[r, :]` into its own partial outputs;
/// the partials are summed. Reading the weights in order is what a decoding step's time is
/// made of.
fn gemv_many(x: Matrix, ws: &[Matrix], threads: usize) -> Vec<Vec<f32>> {
    let [m, k] = x.shape;
    let bands = (2 * threads).min(k).max(1);
    let band = k.div_ceil(bands);
    let partials: Vec<Vec<Vec<f32>>> = (0..bands)
        .into_par_iter()
        .map(|b| {
            ws.iter()
                .map(|w| {
                    let n = w.shape[1];
                    let mut acc = vec![0f32; m * n];
                    for r in b * band..((b + 1) * band).min(k) {
                        let row = &w.data[w.offset + r * w.strides[0]..][..n];
                        for (i, acc) in acc.chunks_exact_mut(n).enumerate() {
                            axpy(x.data[x.offset + i * x.strides[0] + r], row, acc);
                        }
                    }
                    acc
                })
                .collect()
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut sums = parts.next().expect("at least one band");
    for part in parts {
        for (sum, p) in sums.iter_mut().zip(part) {
            sum.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
    }
    sums
}

/// `x w` for a few rows of `x` and a column-major `w` (a tied embedding read as the output
/// layer) into every element of the `[m, n]` output at `dst`: each column of `w` is
/// contiguous, so each output is one dot product; threads take bands of columns and read
/// each once.
fn gemv_transposed(x: Matrix, w: Matrix, dst: Out, threads: usize) {
    let ([m, k], n) = (x.shape, w.shape[1]);
    let band = n.div_ceil(4 * threads).max(1);
    let rows: Vec<&[f32]> = (0..m)
        .map(|i| &x.data[x.offset + i * x.strides[0]..][..k])
        .collect();
    (0..n.div_ceil(band)).into_par_iter().for_each(|b| {
        let cols = b * band..((b + 1) * band).min(n);
        let column = |j: usize| &w.data[w.offset + j * w.strides[1]..][..k];
        // SAFETY: band `b` writes only columns `cols` of the `[m, n]` output.
        unsafe { dots(&rows, column, cols, dst, n) };
    });
}

/// `dst[i * n + j] = rows[i] . column(j)` for `j` in `cols`.
unsafe fn dots<'a>(
    rows: &[&[f32]],
    column: impl Fn(usize) -> &'a [f32],
    cols: std::ops::Range<usize>,
    dst: Out,
    n: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        return dots_avx2(rows, column, cols, dst, n);
    }
    dots_generic(rows, column, cols, dst, n);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2<'a>(
    rows: &[&[f32]],
    column: impl Fn(usize) -> &'a [f32],
    cols: std::ops::Range<usize>,
    dst: Out,
    n: usize,
) {
    dots_generic(rows, column, cols, dst, n);
}

#[inline(always)]
unsafe fn dots_generic<'a>(
    rows: &[&[f32]],
    column: impl Fn(usize) -> &'a [f32],
    cols: std::ops::Range<usize>,
    dst: Out,
    n: usize,
) {
    for j in cols {
        let col = column(j);
        for (i, row) in rows.iter().enumerate() {
            *dst.0.add(i * n + j) = crate::dot(row, col);
        }
    }
}

/// `acc += a * row`.
fn axpy(a: f32, row: &[f32], acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { axpy_avx2(a, row, acc) };
    }
    axpy_generic(a, row, acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, row: &[f32], acc: &mut [f32]) {
    axpy_generic(a, row, acc);
}

#[inline(always)]
fn axpy_generic(a: f32, row: &[f32], acc: &mut [f32]) {
    acc.iter_mut()
        .zip(row)
        .for_each(|(c, &w)| *c = w.mul_add(a, *c));
}

/// Columns `cols` of `x w` into the contiguous `[m, n]` output at `dst`.
unsafe fn product(
    x: Matrix,
    w: Matrix,
    dst: Out,
    [m, n]: [usize; 2],
    cols: std::ops::Range<usize>,
    parallelism: gemm::Parallelism,
) {
    let k = x.shape[1];
    gemm::gemm(
        m,
        cols.len(),
        k,
        dst.0.add(cols.start),
        1,
        n as isize,
        false,
        x.data.as_ptr().add(x.offset),
        x.strides[1] as isize,
        x.strides[0] as isize,
        w.data.as_ptr().add(w.offset + cols.start * w.strides[1]),
        w.strides[1] as isize,
        w.strides[0] as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], [m, k, n]: [usize; 3], w_transposed: bool) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|t| {
                        let wv = if w_transposed {
                            w[j * k + t]
                        } else {
                            w[t * n + j]
                        };
                        x[i * k + t] as f64 * wv as f64
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn several_weights_at_once_match_one_at_a_time() {
        let (m, k) = (2, 64);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.3).sin()).collect();
        let ws: Vec<Vec<f32>> = [96, 32, 32]
            .iter()
            .map(|&n| (0..k * n).map(|i| (i as f32 * 0.17).cos()).collect())
            .collect();
        fn view(data: &[f32], shape: [usize; 2]) -> Matrix<'_> {
            Matrix {
                data,
                offset: 0,
                shape,
                strides: [shape[1], 1],
            }
        }
        let xm = view(&x, [m, k]);
        let mats: Vec<Matrix> = ws.iter().map(|w| view(w, [k, w.len() / k])).collect();
        let bias: Vec<f32> = (0..32).map(|j| j as f32).collect();
        let biases = [None, Some(&bias[..]), None];
        let together = matmul_many(xm, &mats, &biases);
        for ((got, w), b) in together.iter().zip(&mats).zip(biases) {
            let want = matmul(xm, *w, b);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn few_and_many_rows_and_transposed_weights_match_the_reference() {
        for &(m, k, n) in &[
            (1, 576, 1536),
            (4, 576, 1000),
            (3, 64, 17),
            (32, 40, 100),
            (33, 40, 100),
            (200, 96, 130),
            (1, 7, 1),
        ] {
            for transposed in [false, true] {
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0)
                    .collect();
                let w: Vec<f32> = (0..k * n)
                    .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
                    .collect();
                let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0).collect();
                let strides = if transposed { [1, k] } else { [n, 1] };
                let got = matmul(
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
                        strides,
                    },
                    Some(&bias),
                );
                let want = reference(&x, &w, [m, k, n], transposed);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let w = w + bias[i % n] as f64;
                    assert!(
                        (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{m}x{k}x{n} {transposed}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
