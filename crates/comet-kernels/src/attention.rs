//! `softmax(q k^T * scale + mask) v` for grouped-query heads, on the CPU.
//!
//! Work is split over (batch, head, block of queries) on rayon's pool. For each block the
//! scores against every key it may see are one GEMM (`[block, dim] x [dim, keys]`), the
//! softmax runs row by row with a vectorised `exp`, and the output is a second GEMM
//! (`[block, keys] x [keys, dim]`). A causal block stops at its last query's last visible
//! key, so the tiles above the diagonal are never computed. Query head `h` reads key/value
//! head `h / (heads / kv_heads)` in place: shared heads are indexed, not copied.

use rayon::prelude::*;

use crate::exp::{exp_sub_sum, max};

/// Queries per work item: big enough for an efficient GEMM, small enough to balance a
/// causal triangle over threads and keep a block's scores in cache.
const QUERY_BLOCK: usize = 32;

/// A 4-D `f32` tensor `[batch, heads, seq, dim]` read through element strides.
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a> {
    /// The storage the offsets index.
    pub data: &'a [f32],
    /// Element offset of `[0, 0, 0, 0]`.
    pub offset: usize,
    /// `[batch, heads, seq, dim]`.
    pub shape: [usize; 4],
    /// Element strides of the four dimensions.
    pub strides: [usize; 4],
}

impl Strided<'_> {
    /// Offset of row `s` of head `h` of batch `b`.
    fn row(&self, b: usize, h: usize, s: usize) -> usize {
        self.offset + b * self.strides[0] + h * self.strides[1] + s * self.strides[2]
    }

    /// Whether every element the strides can reach lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.shape.contains(&0) {
            return true;
        }
        let last: usize = (0..4).map(|i| (self.shape[i] - 1) * self.strides[i]).sum();
        self.offset + last < self.data.len()
    }
}

/// Which keys each query may see.
#[derive(Debug, Clone, Copy)]
pub enum Mask<'a> {
    /// Every key.
    None,
    /// Causal, aligned bottom-right: of `q` queries over `k` keys, query `i` sees keys
    /// `0..=k - q + i` (the queries are the last `q` positions, as after a cache).
    Causal,
    /// Explicit `[batch, heads, queries, keys]`, nonzero = hidden; a stride of 0 broadcasts
    /// (one mask for every head).
    Explicit {
        /// Mask storage, one byte per element.
        data: &'a [u8],
        /// Element offset of `[0, 0, 0, 0]`.
        offset: usize,
        /// Element strides.
        strides: [usize; 4],
    },
}

/// Attention of `q` `[batch, heads, queries, dim]` over `k` `[batch, kv_heads, keys, dim]`
/// and `v` `[batch, kv_heads, keys, dim_v]`; returns `[batch, heads, queries, dim_v]`,
/// contiguous. `heads` must be a multiple of `kv_heads`. A query that sees no key gets zeros.
///
/// # Panics
/// On inconsistent shapes or strides reaching outside their storage.
pub fn attention(q: Strided, k: Strided, v: Strided, mask: Mask, scale: f32) -> Vec<f32> {
    let [batch, heads, queries, dim] = q.shape;
    let [_, kv_heads, keys, dim_v] = v.shape;
    assert_eq!(
        k.shape,
        [batch, kv_heads, keys, dim],
        "attention: key shape"
    );
    assert_eq!(v.shape[0], batch, "attention: value batch");
    assert!(
        kv_heads > 0 && heads % kv_heads == 0,
        "attention: heads % kv_heads"
    );
    assert!(
        keys >= queries || !matches!(mask, Mask::Causal),
        "attention: causal with fewer keys than queries"
    );
    assert!(
        q.in_bounds() && k.in_bounds() && v.in_bounds(),
        "attention: strides out of bounds"
    );
    if let Mask::Explicit {
        data,
        offset,
        strides,
    } = mask
    {
        let shape = [batch, heads, queries, keys];
        let last: usize = (0..4).map(|i| (shape[i].max(1) - 1) * strides[i]).sum();
        assert!(
            offset + last < data.len(),
            "attention: mask strides out of bounds"
        );
    }
    let groups = heads / kv_heads;
    let mut out = vec![0f32; batch * heads * queries * dim_v];
    if out.is_empty() {
        return out;
    }
    let per_head = queries * dim_v;
    out.par_chunks_mut(per_head)
        .enumerate()
        .for_each(|(bh, head_out)| {
            let (b, h) = (bh / heads, bh % heads);
            let kv = h / groups;
            head_out
                .par_chunks_mut(QUERY_BLOCK * dim_v)
                .enumerate()
                .for_each_init(Vec::new, |scores, (blk, block_out)| {
                    let first = blk * QUERY_BLOCK;
                    let head = Head {
                        q,
                        k,
                        v,
                        mask,
                        b,
                        h,
                        kv,
                        scale,
                    };
                    head.block(first, block_out, scores);
                });
        });
    out
}

/// One (batch, head) pair: what a query block needs to find its rows.
struct Head<'a> {
    q: Strided<'a>,
    k: Strided<'a>,
    v: Strided<'a>,
    mask: Mask<'a>,
    b: usize,
    h: usize,
    kv: usize,
    scale: f32,
}

impl Head<'_> {
    /// Rows `first..first + out.len() / dim_v` of this head's output.
    fn block(&self, first: usize, out: &mut [f32], scores: &mut Vec<f32>) {
        let [_, _, queries, dim] = self.q.shape;
        let [_, _, keys, dim_v] = self.v.shape;
        let rows = out.len() / dim_v;
        // Causal: the block's last query sees keys up to `keys - queries + last`.
        let visible = match self.mask {
            Mask::Causal => keys - queries + first + rows,
            _ => keys,
        };
        scores.clear();
        scores.resize(rows * visible, 0.0);
        let (q, k, v) = (&self.q, &self.k, &self.v);
        // SAFETY: `in_bounds` checked every stride; `scores` is `rows x visible`.
        unsafe {
            gemm::gemm(
                rows,
                visible,
                dim,
                scores.as_mut_ptr(),
                1,
                visible as isize,
                false,
                q.data.as_ptr().add(q.row(self.b, self.h, first)),
                q.strides[3] as isize,
                q.strides[2] as isize,
                k.data.as_ptr().add(k.row(self.b, self.kv, 0)),
                k.strides[2] as isize,
                k.strides[3] as isize,
                0.0,
                self.scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (r, row) in scores.chunks_exact_mut(visible).enumerate() {
            self.softmax(first + r, queries, row);
        }
        // SAFETY: as above; `out` is `rows x dim_v`, contiguous.
        unsafe {
            gemm::gemm(
                rows,
                dim_v,
                visible,
                out.as_mut_ptr(),
                1,
                dim_v as isize,
                false,
                scores.as_ptr(),
                1,
                visible as isize,
                v.data.as_ptr().add(v.row(self.b, self.kv, 0)),
                v.strides[3] as isize,
                v.strides[2] as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// Masks and normalises the scores of query `i` in place (all zeros if it sees nothing).
    fn softmax(&self, i: usize, queries: usize, row: &mut [f32]) {
        let keys = self.k.shape[2];
        let row = match self.mask {
            Mask::None => row,
            Mask::Causal => {
                let (seen, hidden) = row.split_at_mut(keys - queries + i + 1);
                hidden.fill(0.0);
                seen
            }
            Mask::Explicit { .. } => {
                self.each_hidden(i, row, f32::NEG_INFINITY);
                row
            }
        };
        let m = max(row);
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            return;
        }
        let sum = exp_sub_sum(row, m);
        // Hidden keys came out as exp(-87) ~ 1e-38: make them exactly 0.
        if let Mask::Explicit { .. } = self.mask {
            self.each_hidden(i, row, 0.0);
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|s| *s *= inv);
    }

    /// Sets the scores of the keys query `i` may not see to `value` (explicit masks).
    fn each_hidden(&self, i: usize, row: &mut [f32], value: f32) {
        if let Mask::Explicit {
            data,
            offset,
            strides,
        } = self.mask
        {
            let start = offset + self.b * strides[0] + self.h * strides[1] + i * strides[2];
            for (j, s) in row.iter_mut().enumerate() {
                if data[start + j * strides[3]] != 0 {
                    *s = value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
