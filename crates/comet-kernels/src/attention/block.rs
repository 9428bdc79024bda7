//! One block of queries of the forward pass: its scores against a range of keys (one GEMM,
//! or loops for a few rows), the row softmax with its statistics, the values, the merge of
//! a block's parts over key ranges, and the normalised write into the output.

use super::rows::{self, Rows, FEW_ROWS};
use super::{gather_rows, mm, Block, Context, Mask, Strided, View};
use crate::exp::{exp_sub_sum, max};
use crate::{Element, Out};

/// Per-thread buffers, reused across blocks.
#[derive(Default)]
pub(super) struct Scratch {
    queries: Vec<f32>,
    scores: Vec<f32>,
    /// Keys or values converted to `f32` (an `f16` cache).
    converted: Vec<f32>,
}

/// A block's result over part of the keys: per row (head-major: `groups x rows`) the
/// largest score, the sum of `exp(score - max)`, and the unnormalised output.
pub(super) struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    out: Vec<f32>,
}

/// The parts of one block over disjoint key ranges, combined by their statistics.
pub(super) fn merge<'a>(mut parts: impl Iterator<Item = &'a Partial>) -> Partial {
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
    pub(super) fn partial(&self, block: &Block, scratch: &mut Scratch) -> Partial {
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
    pub(super) unsafe fn write(
        &self,
        block: &Block,
        part: &Partial,
        [dst, lse]: [Out; 2],
        queries: usize,
    ) {
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
