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
use crate::{Element, Out};

mod backward;
mod rows;
pub use backward::attention_backward;
use rows::{Rows, FEW_ROWS};

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

/// Per-thread buffers, reused across blocks.
#[derive(Default)]
struct Scratch {
    queries: Vec<f32>,
    scores: Vec<f32>,
    /// Keys or values converted to `f32` (an `f16` cache).
    converted: Vec<f32>,
}

/// A block's result over part of the keys: per row (head-major: `groups x rows`) the
/// largest score, the sum of `exp(score - max)`, and the unnormalised output.
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    out: Vec<f32>,
}

/// The parts of one block over disjoint key ranges, combined by their statistics.
fn merge<'a>(mut parts: impl Iterator<Item = &'a Partial>) -> Partial {
    let first = parts.next().expect("at least one part");
    let mut acc = Partial {
        max: first.max.clone(),
        sum: first.sum.clone(),
        out: first.out.clone(),
    };
    let dim_v = acc.out.len() / acc.max.len().max(1);
    for part in parts {
        for r in 0..acc.max.len() {
            let m = acc.max[r].max(part.max[r]);
            if m == f32::NEG_INFINITY {
                continue;
            }
            let (wa, wb) = ((acc.max[r] - m).exp(), (part.max[r] - m).exp());
            acc.sum[r] = acc.sum[r] * wa + part.sum[r] * wb;
            let (oa, ob) = (
                &mut acc.out[r * dim_v..][..dim_v],
                &part.out[r * dim_v..][..dim_v],
            );
            oa.iter_mut()
                .zip(ob)
                .for_each(|(a, b)| *a = *a * wa + *b * wb);
            acc.max[r] = m;
        }
    }
    acc
}

impl<K: Element> Context<'_, K> {
    /// Scores, softmax statistics and unnormalised output of `block`.
    fn partial(&self, block: &Block, scratch: &mut Scratch) -> Partial {
        let [_, _, queries, _] = self.q.shape;
        let [_, _, keys, dim_v] = self.v.shape;
        let rows = self.groups * block.rows;
        // The block's last query sees keys up to `keys - queries + last` when causal.
        let end = match self.mask {
            Mask::Causal => block
                .keys
                .end
                .min(keys - queries + block.first + block.rows),
            _ => block.keys.end,
        };
        let width = end.saturating_sub(block.keys.start);
        gather_rows(&self.q, block, self.groups, &mut scratch.queries);
        scratch.scores.clear();
        scratch.scores.resize(rows * width, 0.0);
        let mut part = Partial {
            max: vec![f32::NEG_INFINITY; rows],
            sum: vec![0.0; rows],
            out: vec![0.0; rows * dim_v],
        };
        if width == 0 {
            return part;
        }
        let key0 = block.keys.start;
        let at = (block.b, block.kv, key0);
        // SAFETY: `in_bounds` checked every stride; the buffers have the sizes given.
        unsafe {
            self.scores(
                at,
                &scratch.queries,
                [rows, width],
                &mut scratch.scores,
                &mut scratch.converted,
            )
        };
        for (r, row) in scratch.scores.chunks_exact_mut(width).enumerate() {
            let (h, i) = block.head_row(self.groups, r);
            (part.max[r], part.sum[r]) = self.softmax(block.b, h, i, key0, row);
        }
        // SAFETY: as above.
        unsafe {
            self.values(
                at,
                &scratch.scores,
                [rows, width],
                &mut part.out,
                &mut scratch.converted,
            )
        };
        part
    }

    /// `scores = scale * queries k^T` for the keys from `at.2`: one GEMM, or for a few rows
    /// one read of the keys.
    unsafe fn scores(
        &self,
        (b, kv, key0): (usize, usize, usize),
        queries: &[f32],
        [rows, width]: [usize; 2],
        scores: &mut [f32],
        converted: &mut Vec<f32>,
    ) {
        let (k, dim) = (&self.k, self.q.shape[3]);
        if rows <= FEW_ROWS && k.strides[3] == 1 {
            let keys = Rows {
                data: &k.data[k.row(b, kv, key0)..],
                stride: k.strides[2],
                len: dim,
            };
            return rows::scores(queries, keys, width, self.scale, scores);
        }
        let keys = f32_rows(k, (b, kv, key0), width, converted);
        let queries = View(queries.as_ptr(), dim as isize, 1);
        mm(
            [rows, width, dim],
            scores.as_mut_ptr(),
            false,
            queries,
            keys.t(),
            self.scale,
        );
    }

    /// `out = scores v` for the values from `at.2`: one GEMM, or for a few rows one read of
    /// the values.
    unsafe fn values(
        &self,
        (b, kv, key0): (usize, usize, usize),
        scores: &[f32],
        [rows, width]: [usize; 2],
        out: &mut [f32],
        converted: &mut Vec<f32>,
    ) {
        let (v, dim_v) = (&self.v, self.v.shape[3]);
        if rows <= FEW_ROWS && v.strides[3] == 1 {
            let values = Rows {
                data: &v.data[v.row(b, kv, key0)..],
                stride: v.strides[2],
                len: dim_v,
            };
            return rows::values(scores, values, width, out);
        }
        let values = f32_rows(v, (b, kv, key0), width, converted);
        let scores = View(scores.as_ptr(), width as isize, 1);
        mm(
            [rows, dim_v, width],
            out.as_mut_ptr(),
            false,
            scores,
            values,
            1.0,
        );
    }

    /// Masks the scores of query `i` of head `h` (keys from `key0`) and replaces them by
    /// `exp(score - max)`, hidden keys 0; returns (max, sum), `(-inf, 0)` if it sees none.
    fn softmax(&self, b: usize, h: usize, i: usize, key0: usize, row: &mut [f32]) -> (f32, f32) {
        let [_, _, queries, _] = self.q.shape;
        let keys = self.k.shape[2];
        let row = match self.mask {
            Mask::None => row,
            Mask::Causal => {
                let seen = Mask::causal_seen(queries, keys, i, key0, row.len());
                let (seen, hidden) = row.split_at_mut(seen);
                hidden.fill(0.0);
                seen
            }
            Mask::Explicit { .. } => {
                self.mask
                    .set_hidden([b, h, i], key0, row, f32::NEG_INFINITY);
                row
            }
        };
        let m = max(row);
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            return (m, 0.0);
        }
        let sum = exp_sub_sum(row, m);
        // Hidden keys came out as exp(-87) ~ 1e-38: make them exactly 0.
        if let Mask::Explicit { .. } = self.mask {
            self.mask.set_hidden([b, h, i], key0, row, 0.0);
        }
        (m, sum)
    }

    /// Writes a block's normalised rows to the `[batch, queries, heads, dim_v]` output and
    /// their log-sum-exp to `[batch, heads, queries]`.
    unsafe fn write(&self, block: &Block, part: &Partial, [dst, lse]: [Out; 2], queries: usize) {
        let dim_v = self.v.shape[3];
        let heads = self.q.shape[1];
        for (r, (&sum, row)) in part
            .sum
            .iter()
            .zip(part.out.chunks_exact(dim_v))
            .enumerate()
        {
            let (h, i) = block.head_row(self.groups, r);
            let at = ((block.b * queries + i) * heads + h) * dim_v;
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            if sum > 0.0 {
                *lse.0.add((block.b * heads + h) * queries + i) = part.max[r] + sum.ln();
            }
            for (d, &x) in row.iter().enumerate() {
                *dst.0.add(at + d) = x * inv;
            }
        }
    }
}

/// Rows `at.2..at.2 + width` of head `(at.0, at.1)` of `x` as an `f32` GEMM operand
/// `[width, dim]`: in place for `f32`, else converted into `buf`.
fn f32_rows<K: Element>(
    x: &Strided<K>,
    (b, h, first): (usize, usize, usize),
    width: usize,
    buf: &mut Vec<f32>,
) -> View {
    let dim = x.shape[3];
    if K::IS_F32 {
        let data = x.data.as_ptr().cast::<f32>();
        // SAFETY: `check` verified every row and column lies inside `data`.
        let at = unsafe { data.add(x.row(b, h, first)) };
        return View(at, x.strides[2] as isize, x.strides[3] as isize);
    }
    buf.clear();
    buf.resize(width * dim, 0.0);
    for (j, out) in (first..first + width).zip(buf.chunks_exact_mut(dim)) {
        let at = x.row(b, h, j);
        if x.strides[3] == 1 {
            K::as_f32(&x.data[at..][..dim], out);
        } else {
            for (d, o) in out.iter_mut().enumerate() {
                *o = x.data[at + d * x.strides[3]].to_f32();
            }
        }
    }
    View(buf.as_ptr(), dim as isize, 1)
}

#[cfg(test)]
mod tests;
