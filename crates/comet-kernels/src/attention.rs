//! `softmax(q k^T * scale + mask) v` for grouped-query heads, on the CPU.
//!
//! Work is split over (batch, head, block of queries) on rayon's pool. For each block the
//! scores against every key it may see are one GEMM (`[block, dim] x [dim, keys]`), the
//! softmax runs row by row with a vectorised `exp`, and the output is a second GEMM
//! (`[block, keys] x [keys, dim]`). A causal block stops at its last query's last visible
//! key, so the tiles above the diagonal are never computed. Query head `h` reads key/value
//! head `h / (heads / kv_heads)` in place: shared heads are indexed, not copied.

use rayon::prelude::*;

use crate::{Element, Out};

mod backward;
mod block;
mod rows;
pub use backward::attention_backward;
use block::{merge, Partial, Scratch};

/// Queries per work item: big enough for an efficient GEMM, small enough to balance a
/// causal triangle over threads and keep a block's scores in cache.
const QUERY_BLOCK: usize = 32;

/// A 4-D tensor `[batch, heads, seq, dim]` read through element strides (`f32`, or for a
/// key/value cache `f16`).
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a, T = f32> {
    /// The storage the offsets index.
    pub data: &'a [T],
    /// Element offset of `[0, 0, 0, 0]`.
    pub offset: usize,
    /// `[batch, heads, seq, dim]`.
    pub shape: [usize; 4],
    /// Element strides of the four dimensions.
    pub strides: [usize; 4],
}

impl<T> Strided<'_, T> {
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
/// and `v` `[batch, kv_heads, keys, dim_v]`; returns the output token-major, `[batch,
/// queries, heads, dim_v]` contiguous: the layout the output projection reads, so merging
/// the heads is a view, not a copy. `heads` must be a multiple of `kv_heads`. A query that sees no key gets zeros.
/// Keys and values may be `f16` (a half-precision cache); everything is computed in `f32`.
///
/// # Panics
/// On inconsistent shapes or strides reaching outside their storage.
pub fn attention<K: Element>(
    q: Strided,
    k: Strided<K>,
    v: Strided<K>,
    mask: Mask,
    scale: f32,
) -> Vec<f32> {
    attention_lse(q, k, v, mask, scale).0
}

/// [`attention`], also returning each query row's log-sum-exp of its scaled scores
/// `[batch, heads, queries]` (`-inf` for a row that sees no key): what the backward pass
/// needs to recompute the softmax without storing it.
pub fn attention_lse<K: Element>(
    q: Strided,
    k: Strided<K>,
    v: Strided<K>,
    mask: Mask,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    check(&q, &k, &v, &mask);
    let [batch, heads, queries, _] = q.shape;
    let [_, kv_heads, keys, dim_v] = v.shape;
    let mut out = vec![0f32; batch * heads * queries * dim_v];
    let mut lse = vec![f32::NEG_INFINITY; batch * heads * queries];
    if out.is_empty() || keys == 0 {
        return (out, lse);
    }
    let groups = heads / kv_heads;
    #[rustfmt::skip]
    let ctx = Context { q, k, v, mask, scale, groups };
    let dst = [Out(out.as_mut_ptr()), Out(lse.as_mut_ptr())];
    let blocks = queries.div_ceil(QUERY_BLOCK);
    let units = batch * kv_heads * blocks;
    let splits = key_splits(units, keys);
    let split_len = keys.div_ceil(splits);
    let block_of = |unit: usize, split: usize| {
        let (bkv, blk) = (unit / blocks, unit % blocks);
        Block {
            b: bkv / kv_heads,
            kv: bkv % kv_heads,
            first: blk * QUERY_BLOCK,
            rows: QUERY_BLOCK.min(queries - blk * QUERY_BLOCK),
            keys: split * split_len..((split + 1) * split_len).min(keys),
        }
    };
    if splits == 1 {
        (0..units)
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, unit| {
                let block = block_of(unit, 0);
                let part = ctx.partial(&block, scratch);
                // SAFETY: each unit writes its own (batch, head, query) rows of `out`.
                unsafe { ctx.write(&block, &part, dst, queries) };
            });
        return (out, lse);
    }
    let parts: Vec<Partial> = (0..units * splits)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, task| {
            ctx.partial(&block_of(task / splits, task % splits), scratch)
        })
        .collect();
    for (unit, group) in parts.chunks(splits).enumerate() {
        // SAFETY: as above, one unit at a time.
        unsafe { ctx.write(&block_of(unit, 0), &merge(group.iter()), dst, queries) };
    }
    (out, lse)
}

/// How many parts the keys of each block are split into: few queries over many keys
/// (decoding) leave threads idle otherwise; the parts are merged by their softmax
/// statistics (flash-decoding).
fn key_splits(units: usize, keys: usize) -> usize {
    let threads = rayon::current_num_threads();
    if units < 2 * threads && keys >= 2 * KEY_SPLIT {
        (2 * threads).div_ceil(units).min(keys / KEY_SPLIT)
    } else {
        1
    }
}

/// The shape, stride and mask checks [`attention`] documents.
fn check<K>(q: &Strided, k: &Strided<K>, v: &Strided<K>, mask: &Mask) {
    let [batch, heads, queries, dim] = q.shape;
    let [_, kv_heads, keys, _] = v.shape;
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
    let causal = matches!(mask, Mask::Causal);
    assert!(
        keys >= queries || !causal,
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
    } = *mask
    {
        let shape = [batch, heads, queries, keys];
        let last: usize = (0..4).map(|i| (shape[i].max(1) - 1) * strides[i]).sum();
        assert!(
            offset + last < data.len(),
            "attention: mask strides out of bounds"
        );
    }
}

/// Keys a split of a decoding step covers at least.
const KEY_SPLIT: usize = 512;

/// Inputs shared by every block.
struct Context<'a, K> {
    q: Strided<'a>,
    k: Strided<'a, K>,
    v: Strided<'a, K>,
    mask: Mask<'a>,
    scale: f32,
    groups: usize,
}

/// Queries `first..first + rows` of every query head sharing key/value head `kv`, over
/// the keys in `keys`.
struct Block {
    b: usize,
    kv: usize,
    first: usize,
    rows: usize,
    keys: std::ops::Range<usize>,
}

impl Block {
    /// (head, query) of the block's row `r` (rows are head-major: `groups x rows`).
    fn head_row(&self, groups: usize, r: usize) -> (usize, usize) {
        (self.kv * groups + r / self.rows, self.first + r % self.rows)
    }
}

/// Rows `block.first..` of every head of the block's group of `x`, gathered into one
/// contiguous matrix `[groups * rows, dim]` (head-major).
fn gather_rows(x: &Strided, block: &Block, groups: usize, out: &mut Vec<f32>) {
    let dim = x.shape[3];
    out.clear();
    for h in block.kv * groups..(block.kv + 1) * groups {
        for i in block.first..block.first + block.rows {
            let at = x.row(block.b, h, i);
            match x.strides[3] {
                1 => out.extend_from_slice(&x.data[at..][..dim]),
                step => out.extend((0..dim).map(|d| x.data[at + d * step])),
            }
        }
    }
}

impl Mask<'_> {
    /// How many of the `width` keys from `key0` query `i` of `queries` over `keys` sees
    /// under a causal mask (aligned bottom-right).
    fn causal_seen(queries: usize, keys: usize, i: usize, key0: usize, width: usize) -> usize {
        (keys - queries + i + 1).saturating_sub(key0).min(width)
    }

    /// Sets `row[j]` (key `key0 + j` of query `i` of head `h`) to `value` where an explicit
    /// mask hides it; other masks leave the row alone.
    fn set_hidden(&self, [b, h, i]: [usize; 3], key0: usize, row: &mut [f32], value: f32) {
        if let Mask::Explicit {
            data,
            offset,
            strides,
        } = *self
        {
            let start =
                offset + b * strides[0] + h * strides[1] + i * strides[2] + key0 * strides[3];
            for (j, s) in row.iter_mut().enumerate() {
                if data[start + j * strides[3]] != 0 {
                    *s = value;
                }
            }
        }
    }
}

/// A GEMM operand: pointer, row stride, column stride.
#[derive(Clone, Copy)]
struct View(*const f32, isize, isize);

impl View {
    /// The transpose (strides swapped).
    fn t(self) -> View {
        View(self.0, self.2, self.1)
    }
}

/// `dst (+)= scale * lhs rhs` for `[m, k] x [k, n]`, `dst` row-major with row stride `n`,
/// on the calling thread.
unsafe fn mm([m, n, k]: [usize; 3], dst: *mut f32, add: bool, lhs: View, rhs: View, scale: f32) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        add,
        lhs.0,
        lhs.2,
        lhs.1,
        rhs.0,
        rhs.2,
        rhs.1,
        if add { 1.0 } else { 0.0 },
        scale,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests;
