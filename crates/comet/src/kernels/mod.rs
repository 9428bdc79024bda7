//! The model's hot operations behind one extension point: [`Kernels`] has Burn's generic
//! ops as its default (every backend: WGPU, CUDA, ndarray, and autodiff over them) and fast
//! CPU implementations (`comet-kernels`) for flex and, for training, for autodiff over flex
//! (operations with their own backward passes), picked at run time by backend type, so the
//! model stays written once over `B: Backend`.
//!
//! `COMET_KERNELS=generic` (or [`with_generic`] in tests) forces the generic path, to
//! compare the two.

#[cfg(feature = "flex")]
use std::any::Any;
use std::cell::Cell;
use std::sync::OnceLock;

use burn::nn::RmsNorm;
use burn::optim::AdamWState;
use burn::prelude::*;
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::model::{causal_after, AttentionMask, RopeTables};

#[cfg(feature = "flex")]
mod autodiff;
#[cfg(feature = "flex")]
mod cache_write;
#[cfg(feature = "flex")]
mod flex;
mod loss;
mod optim;

pub use loss::generic_nll;
pub use optim::{generic_adamw, generic_sum_squares, AdamWSettings};

/// Operations a backend may implement faster than Burn's generic composition.
pub trait Kernels<B: Backend>: Sync {
    /// Softmax attention (scale `1/sqrt(dim)`) of `q` `[batch, heads, queries, dim]` over `k`
    /// and `v` `[batch, kv_heads, keys, dim]`, `heads` a multiple of `kv_heads` (query head
    /// `h` reads key/value head `h / (heads / kv_heads)`); returns `[batch, heads, queries,
    /// dim]`. A causal mask is aligned bottom-right when keys outnumber queries. Keys and
    /// values may be stored narrower than `q` (an `f16` cache).
    fn attention(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 4> {
        generic_attention(q, k, v, mask)
    }

    /// `buffer` `[batch, heads, capacity, dim]` with positions `start..start + new` replaced
    /// by `values` `[batch, heads, new, dim]`, converted to the buffer's float type (a KV
    /// cache's append; in place where the backend can).
    fn write_positions(
        &self,
        buffer: Tensor<B, 4>,
        start: usize,
        values: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        generic_write_positions(buffer, start, values)
    }

    /// `x` `[batch, heads, seq, head_dim]` rotated by RoPE `tables` (half-split pairs).
    fn rope(&self, x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
        tables.apply(x)
    }

    /// RMSNorm of `x` `[batch, seq, hidden]` over its last dimension.
    fn rms_norm(&self, x: Tensor<B, 3>, norm: &RmsNorm<B>) -> Tensor<B, 3> {
        norm.forward(x)
    }

    /// SwiGLU's `silu(gate) * up`, both `[batch, seq, intermediate]`.
    fn swiglu(&self, gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
        burn::tensor::activation::silu(gate) * up
    }

    /// [`Kernels::linear`] of one input through several layers (a layer's query/key/value
    /// or gate/up projections), where a backend does them together faster.
    fn linears(&self, x: Tensor<B, 3>, layers: Vec<LinearParams<B>>) -> Vec<Tensor<B, 3>> {
        layers
            .into_iter()
            .map(|(weight, bias)| self.linear(x.clone(), weight, bias))
            .collect()
    }

    /// `x` `[batch, seq, d_in]` times `weight` `[d_in, d_out]` plus `bias` `[d_out]`.
    fn linear(
        &self,
        x: Tensor<B, 3>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 3> {
        burn::tensor::module::linear(x, weight, bias)
    }

    /// The summed next-token negative log-likelihood `[1]` of `targets` (one per row) under
    /// the softmax of each row of `logits` `[rows, vocab]`.
    fn nll(&self, logits: Tensor<B, 2>, targets: &[usize]) -> Tensor<B, 1> {
        generic_nll(logits, targets)
    }

    /// One AdamW step of a parameter flattened to `[n]`, with its gradient and Burn's
    /// AdamW state (moments and step count; `None` before the first step): the new
    /// parameter and state, as Burn's `AdamW` computes them.
    fn adamw(
        &self,
        settings: &AdamWSettings,
        lr: f64,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        state: Option<AdamWState<B, 1>>,
    ) -> (Tensor<B, 1>, AdamWState<B, 1>) {
        generic_adamw(settings, lr, param, grad, state)
    }

    /// `sum(x^2)` of a flattened tensor (a gradient's share of the global norm).
    fn sum_squares(&self, x: Tensor<B, 1>) -> f64 {
        generic_sum_squares(x)
    }

    /// `x * factor` (in place where the backend can).
    fn scale(&self, x: Tensor<B, 1>, factor: f32) -> Tensor<B, 1> {
        x * factor
    }
}

/// A linear layer's weight `[d_in, d_out]` and optional bias `[d_out]`.
pub type LinearParams<B> = (Tensor<B, 2>, Option<Tensor<B, 1>>);

/// Burn's ops for everything.
pub struct Generic;
impl<B: Backend> Kernels<B> for Generic {}

thread_local! {
    static FORCE_GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the generic kernels on this thread (tests compare both paths).
pub fn with_generic<T>(f: impl FnOnce() -> T) -> T {
    let before = FORCE_GENERIC.with(|c| c.replace(true));
    let out = f();
    FORCE_GENERIC.with(|c| c.set(before));
    out
}

/// Whether `COMET_KERNELS=generic` is set (read once).
fn generic_by_env() -> bool {
    static GENERIC: OnceLock<bool> = OnceLock::new();
    *GENERIC.get_or_init(|| std::env::var("COMET_KERNELS").is_ok_and(|v| v == "generic"))
}

/// The kernels for backend `B`: the fast ones where there are, else [`Generic`].
pub fn kernels<B: Backend>() -> &'static dyn Kernels<B> {
    if generic_by_env() || FORCE_GENERIC.with(Cell::get) {
        return &Generic;
    }
    #[cfg(feature = "flex")]
    if flex::is_flex::<B>() {
        return &flex::FlexKernels;
    }
    #[cfg(feature = "flex")]
    if autodiff::is_autodiff_flex::<B>() {
        return &autodiff::AutodiffFlexKernels;
    }
    &Generic
}

#[cfg(feature = "flex")]
/// `x` as a `U` when `T` and `U` are the same type (a backend known only as `B` that is in
/// fact flex), else `x` back.
fn same_type<T: 'static, U: 'static>(x: T) -> Result<U, T> {
    let mut slot = Some(x);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("just filled")),
        None => Err(slot.expect("untouched")),
    }
}

#[cfg(feature = "flex")]
/// `x` as the `U` it is known to be (a flex tensor handed back as `Tensor<B, _>`).
fn known_same<T: 'static, U: 'static>(x: T) -> U {
    same_type(x).unwrap_or_else(|_| unreachable!("called only where B is the same type"))
}

/// [`Kernels::write_positions`] by Burn's `slice_assign`.
pub fn generic_write_positions<B: Backend>(
    buffer: Tensor<B, 4>,
    start: usize,
    values: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch, heads, new, dim] = values.dims();
    let values = values.cast(buffer.dtype());
    buffer.slice_assign([0..batch, 0..heads, start..start + new, 0..dim], values)
}

/// Attention from Burn's ops: shared key/value heads repeated, masks expanded.
pub fn generic_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: &AttentionMask<B>,
) -> Tensor<B, 4> {
    let [batch, heads, queries, _] = q.dims();
    let keys = k.dims()[2];
    let (k, v) = (k.cast(q.dtype()), v.cast(q.dtype()));
    let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
    let expanded = |m: Tensor<B, 4, Bool>| Some(m.expand([batch, heads, queries, keys]));
    let (mask, is_causal) = match mask {
        AttentionMask::Causal if queries == 1 || queries == keys => (None, queries > 1),
        // Several queries after a cache: kernels differ in how they align a causal
        // triangle when queries and keys differ in number (cubecl's flash kernels mask
        // `j > i`, top-left), so the alignment is spelled out.
        AttentionMask::Causal => (expanded(causal_after(queries, keys, &q.device())), false),
        AttentionMask::Explicit(m) => (expanded(m.clone()), false),
    };
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal,
    };
    burn_attention(q, k, v, mask, None, options)
}

/// `[batch, kv_heads, len, dim]` -> `[batch, heads, len, dim]`.
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, heads: usize) -> Tensor<B, 4> {
    let [batch, kv_heads, len, dim] = x.dims();
    let groups = heads / kv_heads;
    if groups == 1 {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .expand([batch, kv_heads, groups, len, dim])
        .reshape([batch, heads, len, dim])
}

#[cfg(all(test, feature = "flex"))]
mod tests;
