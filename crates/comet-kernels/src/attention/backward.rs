//! The backward pass of [`attention`](super::attention), FlashAttention-2 style: nothing of
//! the `[queries, keys]` softmax is stored; each tile of keys recomputes its probabilities
//! from the forward pass's log-sum-exp, one block of queries at a time, and accumulates the
//! key and value gradients it owns. Work is split over (batch, key/value head, key tile),
//! so no two threads write the same key gradient; each unit's query gradients are summed
//! at the end.

use rayon::prelude::*;

use super::{check, gather_rows, mm, Block, Mask, Strided, View, QUERY_BLOCK};
use crate::Out;

/// Keys per work item.
const KEY_TILE: usize = 128;

/// Gradients of `attention(q, k, v, mask, scale)` given the upstream gradient `grad` of
/// its output `out` (as the forward pass returned it: `[batch, queries, heads, dim_v]`,
/// contiguous) and the log-sum-exp `lse` ([`attention_lse`](super::attention_lse)):
/// `[dq, dk, dv]`, token-major like the output (`[batch, seq, heads, dim]` contiguous for
/// `q`'s shape `[batch, heads, seq, dim]`), so that the gradients of the model's head
/// split are views, not copies.
///
/// # Panics
/// On inconsistent shapes or strides reaching outside their storage.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: Strided,
    k: Strided,
    v: Strided,
    out: &[f32],
    grad: Strided,
    lse: &[f32],
    mask: Mask,
    scale: f32,
) -> [Vec<f32>; 3] {
    check_backward(&q, &k, &v, out, &grad, lse, &mask);
    let [batch, heads, queries, dim] = q.shape;
    let [_, kv_heads, keys, dim_v] = v.shape;
    let mut dk = vec![0f32; batch * kv_heads * keys * dim];
    let mut dv = vec![0f32; batch * kv_heads * keys * dim_v];
    let mut dq = vec![0f32; batch * heads * queries * dim];
    if dq.is_empty() || keys == 0 {
        return [dq, dk, dv];
    }
    let delta = row_deltas(&grad, out);
    let groups = heads / kv_heads;
    #[rustfmt::skip]
    let pass = Pass { q, k, v, grad, lse, delta: &delta, mask, scale, groups };
    let tiles = keys.div_ceil(KEY_TILE);
    let dst = [Out(dk.as_mut_ptr()), Out(dv.as_mut_ptr())];
    let parts: Vec<(usize, Vec<f32>)> = (0..batch * kv_heads * tiles)
        .into_par_iter()
        .map(|unit| {
            let (bkv, t) = (unit / tiles, unit % tiles);
            let range = t * KEY_TILE..((t + 1) * KEY_TILE).min(keys);
            // SAFETY: unit (bkv, t) writes only the rows `range` of head `bkv` of dk/dv.
            (bkv, unsafe {
                pass.tile(bkv / kv_heads, bkv % kv_heads, range, dst)
            })
        })
        .collect();
    // Each unit's query gradients `[groups, queries, dim]` cover its group's heads: summed
    // over key tiles into the token-major dq.
    for (bkv, part) in parts {
        let (b, first_head) = (bkv / kv_heads, bkv % kv_heads * pass.groups);
        for (r, row) in part.chunks_exact(dim).enumerate() {
            let (h, i) = (first_head + r / queries, r % queries);
            let dst = &mut dq[((b * queries + i) * heads + h) * dim..][..dim];
            dst.iter_mut().zip(row).for_each(|(d, p)| *d += p);
        }
    }
    [dq, dk, dv]
}

/// The checks of [`attention`](super::attention), and the backward pass's own inputs'.
fn check_backward(
    q: &Strided,
    k: &Strided,
    v: &Strided,
    out: &[f32],
    grad: &Strided,
    lse: &[f32],
    mask: &Mask,
) {
    check(q, k, v, mask);
    let [batch, heads, queries, _] = q.shape;
    let dim_v = v.shape[3];
    let rows = batch * heads * queries;
    let shape = [batch, heads, queries, dim_v];
    assert_eq!(grad.shape, shape, "attention backward: grad shape");
    assert!(grad.in_bounds(), "attention backward: grad strides");
    assert_eq!(out.len(), rows * dim_v, "attention backward: output length");
    assert_eq!(lse.len(), rows, "attention backward: lse length");
}

/// `D_i = dO_i . O_i` for every query row `[batch, heads, queries]`: the softmax's
/// backward needs it once per row.
fn row_deltas(grad: &Strided, out: &[f32]) -> Vec<f32> {
    let [_, heads, queries, dim_v] = grad.shape;
    (0..out.len() / dim_v.max(1))
        .map(|row| {
            let (b, h, i) = (
                row / (heads * queries),
                row / queries % heads,
                row % queries,
            );
            let at = grad.row(b, h, i);
            let o = &out[((b * queries + i) * heads + h) * dim_v..][..dim_v];
            (0..dim_v)
                .map(|d| grad.data[at + d * grad.strides[3]] * o[d])
                .sum()
        })
        .collect()
}

/// Inputs shared by every unit.
struct Pass<'a> {
    q: Strided<'a>,
    k: Strided<'a>,
    v: Strided<'a>,
    grad: Strided<'a>,
    lse: &'a [f32],
    delta: &'a [f32],
    mask: Mask<'a>,
    scale: f32,
    groups: usize,
}

/// A unit's gradients: its key tile's dK and dV rows, and its heads' dQ.
struct Grads {
    dk: Vec<f32>,
    dv: Vec<f32>,
    dq: Vec<f32>,
}

/// Per-unit buffers.
#[derive(Default)]
struct Tile {
    q: Vec<f32>,
    grad: Vec<f32>,
    p: Vec<f32>,
    ds: Vec<f32>,
    dq: Vec<f32>,
}

impl Pass<'_> {
    /// Key tile `keys` of head `kv` of batch `b`: writes its dk/dv rows, returns the
    /// query gradients `[groups, queries, dim]` of the heads sharing it.
    unsafe fn tile(
        &self,
        b: usize,
        kv: usize,
        keys: std::ops::Range<usize>,
        [dk, dv]: [Out; 2],
    ) -> Vec<f32> {
        let [_, _, queries, dim] = self.q.shape;
        let [_, kv_heads, n_keys, dim_v] = self.v.shape;
        let width = keys.len();
        let mut acc = Grads {
            dk: vec![0f32; width * dim],
            dv: vec![0f32; width * dim_v],
            dq: vec![0f32; self.groups * queries * dim],
        };
        let mut t = Tile::default();
        let (k, v) = (&self.k, &self.v);
        let at = |x: &Strided| {
            let ptr = x.data.as_ptr().add(x.row(b, kv, keys.start));
            View(ptr, x.strides[2] as isize, x.strides[3] as isize)
        };
        let (kt, vt) = (at(k), at(v));
        for first in (0..queries).step_by(QUERY_BLOCK) {
            let count = QUERY_BLOCK.min(queries - first);
            // A causal block whose last query sees none of these keys has nothing here.
            let causal = matches!(self.mask, Mask::Causal);
            if causal && n_keys - queries + first + count <= keys.start {
                continue;
            }
            #[rustfmt::skip]
            let block = Block { b, kv, first, rows: count, keys: keys.clone() };
            gather_rows(&self.q, &block, self.groups, &mut t.q);
            gather_rows(&self.grad, &block, self.groups, &mut t.grad);
            self.score_gradients(&block, [kt, vt], &mut t);
            self.accumulate(&block, kt, &mut t, &mut acc);
        }
        let rows = acc.dk.chunks_exact(dim).zip(acc.dv.chunks_exact(dim_v));
        for (j, (rk, rv)) in rows.enumerate() {
            // Token-major: `[batch, keys, kv_heads, dim]`.
            let key = (b * n_keys + keys.start + j) * kv_heads + kv;
            std::ptr::copy_nonoverlapping(rk.as_ptr(), dk.0.add(key * dim), dim);
            std::ptr::copy_nonoverlapping(rv.as_ptr(), dv.0.add(key * dim_v), dim_v);
        }
        acc.dq
    }

    /// The block's probabilities `P` (recomputed from the log-sum-exp) into `t.p`, and the
    /// gradients of its scores `dS = P (dO V^T - D)` into `t.ds`.
    unsafe fn score_gradients(&self, block: &Block, [kt, vt]: [View; 2], t: &mut Tile) {
        let (dim, dim_v) = (self.q.shape[3], self.v.shape[3]);
        let (rows, width) = (self.groups * block.rows, block.keys.len());
        t.p.resize(rows * width, 0.0);
        let q = View(t.q.as_ptr(), dim as isize, 1);
        mm(
            [rows, width, dim],
            t.p.as_mut_ptr(),
            false,
            q,
            kt.t(),
            self.scale,
        );
        self.probabilities(block, &mut t.p);
        t.ds.resize(rows * width, 0.0);
        let grad = View(t.grad.as_ptr(), dim_v as isize, 1);
        mm(
            [rows, width, dim_v],
            t.ds.as_mut_ptr(),
            false,
            grad,
            vt.t(),
            1.0,
        );
        self.softmax_backward(block, &t.p, &mut t.ds, width);
    }

    /// `dV += P^T dO`, `dK += scale dS^T Q`, and the block's `dQ = scale dS K` added to
    /// its rows.
    unsafe fn accumulate(&self, block: &Block, kt: View, t: &mut Tile, acc: &mut Grads) {
        let [_, _, queries, dim] = self.q.shape;
        let dim_v = self.v.shape[3];
        let (rows, width) = (self.groups * block.rows, block.keys.len());
        let (p, ds) = (
            View(t.p.as_ptr(), width as isize, 1),
            View(t.ds.as_ptr(), width as isize, 1),
        );
        let grad = View(t.grad.as_ptr(), dim_v as isize, 1);
        let q = View(t.q.as_ptr(), dim as isize, 1);
        mm(
            [width, dim_v, rows],
            acc.dv.as_mut_ptr(),
            true,
            p.t(),
            grad,
            1.0,
        );
        mm(
            [width, dim, rows],
            acc.dk.as_mut_ptr(),
            true,
            ds.t(),
            q,
            self.scale,
        );
        t.dq.resize(rows * dim, 0.0);
        mm(
            [rows, dim, width],
            t.dq.as_mut_ptr(),
            false,
            ds,
            kt,
            self.scale,
        );
        for (r, row) in t.dq.chunks_exact(dim).enumerate() {
            let (h, i) = block.head_row(self.groups, r);
            let g = h - block.kv * self.groups;
            let dq = &mut acc.dq[(g * queries + i) * dim..][..dim];
            dq.iter_mut().zip(row).for_each(|(a, x)| *a += x);
        }
    }

    /// Scores -> probabilities `exp(s - lse)`, 0 where hidden.
    fn probabilities(&self, block: &Block, p: &mut [f32]) {
        let [_, heads, queries, _] = self.q.shape;
        let (n_keys, b, key0) = (self.k.shape[2], block.b, block.keys.start);
        let width = block.keys.len();
        for (r, row) in p.chunks_exact_mut(width).enumerate() {
            let (h, i) = block.head_row(self.groups, r);
            let lse = self.lse[(b * heads + h) * queries + i];
            if lse == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            crate::exp::exp_sub_sum(row, lse);
            if let Mask::Causal = self.mask {
                row[Mask::causal_seen(queries, n_keys, i, key0, width)..].fill(0.0);
            }
            self.mask.set_hidden([b, h, i], key0, row, 0.0);
        }
    }

    /// `ds = p * (ds - D)` row by row (`ds` holds dP on entry).
    fn softmax_backward(&self, block: &Block, p: &[f32], ds: &mut [f32], width: usize) {
        let [_, heads, queries, _] = self.q.shape;
        let b = block.b;
        for (r, (row, prow)) in ds
            .chunks_exact_mut(width)
            .zip(p.chunks_exact(width))
            .enumerate()
        {
            let (h, i) = block.head_row(self.groups, r);
            let d = self.delta[(b * heads + h) * queries + i];
            row.iter_mut()
                .zip(prow)
                .for_each(|(x, &p)| *x = p * (*x - d));
        }
    }
}
