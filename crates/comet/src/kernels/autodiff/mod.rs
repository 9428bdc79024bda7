//! Training on flex: the hot operations as single autodiff operations whose forward and
//! backward passes are `comet-kernels` (attention, RoPE, RMSNorm, SwiGLU), instead of
//! Burn's compositions of generic ops, each of which keeps its intermediate tensors and
//! copies strided layouts. Gradients are checked against those compositions
//! (`tests/kernel_gradients.rs`).

mod attention;
mod linear;
mod loss;
mod rows;

use std::any::TypeId;

use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::RmsNorm;
use burn::prelude::*;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;

use super::flex::{head_view, strided};
use super::{generic_attention, generic_nll, known_same, same_type, Kernels};
use crate::model::{AttentionMask, RopeTables};

type Plain = Autodiff<Flex, NoCheckpointing>;
type Balanced = Autodiff<Flex, BalancedCheckpointing>;

/// Whether `B` is flex under autodiff (either checkpointing strategy the trainer uses).
pub fn is_autodiff_flex<B: Backend>() -> bool {
    let id = TypeId::of::<B>();
    id == TypeId::of::<Plain>() || id == TypeId::of::<Balanced>()
}

/// `$op::<C>(args)` when `args` (of type `$Args<B>`) are of `Autodiff<Flex, C>` for one of
/// the trainer's strategies `C`, else `$fallback(args)`.
macro_rules! on_autodiff_flex {
    ($args:expr, $Args:ident, $op:ident, $fallback:expr) => {
        match same_type::<_, $Args<Plain>>($args) {
            Ok(args) => known_same($op::<NoCheckpointing>(args)),
            Err(args) => match same_type::<_, $Args<Balanced>>(args) {
                Ok(args) => known_same($op::<BalancedCheckpointing>(args)),
                Err(args) => $fallback(args),
            },
        }
    };
}

type AttentionArgs<B> = ([Tensor<B, 4>; 3], AttentionMask<B>);
type RopeArgs<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);
type NormArgs<B> = (Tensor<B, 3>, Tensor<B, 1>, f64);
type PairArgs<B> = (Tensor<B, 3>, Tensor<B, 3>);
type NllArgs<B> = (Tensor<B, 2>, Vec<usize>);
type LinearArgs<B> = (Tensor<B, 3>, Tensor<B, 2>, Option<Tensor<B, 1>>);

/// Fast training kernels; used only where `B` is flex under autodiff.
pub struct AutodiffFlexKernels;

impl<B: Backend> Kernels<B> for AutodiffFlexKernels {
    fn attention(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &AttentionMask<B>,
    ) -> Tensor<B, 4> {
        if [&q, &k, &v].iter().any(|t| t.dtype() != DType::F32) {
            return generic_attention(q, k, v, mask);
        }
        on_autodiff_flex!(
            ([q, k, v], mask.clone()),
            AttentionArgs,
            tracked_attention,
            |([q, k, v], mask): AttentionArgs<B>| generic_attention(q, k, v, &mask)
        )
    }

    fn rope(&self, x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
        let (cos, sin) = tables.halves();
        if x.dtype() != DType::F32 || cos.dtype() != DType::F32 {
            return tables.apply(x);
        }
        on_autodiff_flex!(
            (x, cos.clone(), sin.clone()),
            RopeArgs,
            tracked_rope,
            |(x, _, _): RopeArgs<B>| tables.apply(x)
        )
    }

    fn rms_norm(&self, x: Tensor<B, 3>, norm: &RmsNorm<B>) -> Tensor<B, 3> {
        let gamma = norm.gamma.val();
        if x.dtype() != DType::F32 || gamma.dtype() != DType::F32 {
            return norm.forward(x);
        }
        on_autodiff_flex!(
            (x, gamma, norm.epsilon),
            NormArgs,
            tracked_rms_norm,
            |(x, _, _): NormArgs<B>| norm.forward(x)
        )
    }

    fn swiglu(&self, gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
        let generic = |(gate, up): PairArgs<B>| burn::tensor::activation::silu(gate) * up;
        if gate.dtype() != DType::F32 || up.dtype() != DType::F32 || gate.dims() != up.dims() {
            return generic((gate, up));
        }
        on_autodiff_flex!((gate, up), PairArgs, tracked_swiglu, generic)
    }

    fn linear(
        &self,
        x: Tensor<B, 3>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 3> {
        let generic = |(x, w, b): LinearArgs<B>| burn::tensor::module::linear(x, w, b);
        let f32s = [x.dtype(), weight.dtype()] == [DType::F32; 2]
            && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
        if !f32s {
            return generic((x, weight, bias));
        }
        on_autodiff_flex!((x, weight, bias), LinearArgs, linear_or_generic, generic)
    }

    fn nll(&self, logits: Tensor<B, 2>, targets: &[usize]) -> Tensor<B, 1> {
        if logits.dtype() != DType::F32 {
            return generic_nll(logits, targets);
        }
        on_autodiff_flex!(
            (logits, targets.to_vec()),
            NllArgs,
            tracked_nll,
            |(logits, targets): NllArgs<B>| generic_nll(logits, &targets)
        )
    }
}

use attention::tracked_attention;
use linear::tracked_linear;
use loss::tracked_nll;
use rows::{tracked_rms_norm, tracked_rope, tracked_swiglu};

/// [`tracked_linear`], or Burn's linear for a weight layout it does not take.
fn linear_or_generic<C: CheckpointStrategy>(
    args: LinearArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 3> {
    let (x, w, b) = args.clone();
    tracked_linear(args).unwrap_or_else(|| burn::tensor::module::linear(x, w, b))
}

/// The autodiff tensor inside `t`.
fn inner<C: CheckpointStrategy, const D: usize>(
    t: Tensor<Autodiff<Flex, C>, D>,
) -> FloatTensor<Autodiff<Flex, C>> {
    match t.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("f32 checked"),
    }
}

/// `output` as the result of `op` over `parents`; the state is made only when a gradient
/// will be asked for.
fn record<C: CheckpointStrategy, const N: usize, O: Backward<Flex, N>, const D: usize>(
    op: O,
    parents: [&FloatTensor<Autodiff<Flex, C>>; N],
    output: FlexTensor,
    state: impl FnOnce() -> O::State,
) -> Tensor<Autodiff<Flex, C>, D> {
    let result = match op
        .prepare::<C>(parents.map(|t| t.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

/// A flex tensor of `shape` holding `data`.
fn flex_tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    Flex::float_from_data(TensorData::new(data, shape.to_vec()), &Default::default())
}

/// `t` read through its strides where none is negative (a transposed view stays a view),
/// else copied contiguous.
fn readable(t: FlexTensor) -> FlexTensor {
    match strided::<f32>(&t) {
        Some(_) => t,
        None => t.to_contiguous(),
    }
}

/// `t` laid out contiguously (unchanged if it already is).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous `t`, or the storage of a `head_view` in memory order.
fn values(t: &FlexTensor) -> &[f32] {
    let n = t.layout().num_elements();
    &t.storage::<f32>()[t.layout().start_offset()..][..n]
}
