//! Training on flex: attention as one autodiff operation. Its forward pass is the fast
//! kernel (which also returns each row's log-sum-exp) and its backward pass is
//! `comet_kernels::attention_backward`, which recomputes the softmax tile by tile: no
//! `[queries, keys]` matrix is kept between the passes, and no key/value head is copied
//! for its query heads. Burn's composition keeps scores and probabilities of every layer.

use std::any::TypeId;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;

use super::flex::{kernel_mask, strided};
use super::{generic_attention, known_same, same_type, Kernels};
use crate::model::AttentionMask;

type Plain = Autodiff<Flex, NoCheckpointing>;
type Balanced = Autodiff<Flex, BalancedCheckpointing>;

/// Whether `B` is flex under autodiff (either checkpointing strategy the trainer uses).
pub fn is_autodiff_flex<B: Backend>() -> bool {
    let id = TypeId::of::<B>();
    id == TypeId::of::<Plain>() || id == TypeId::of::<Balanced>()
}

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
        let qkv = match same_type::<_, [Tensor<Plain, 4>; 3]>([q, k, v]) {
            Ok(qkv) => {
                let mask = known_same::<_, AttentionMask<Plain>>(mask.clone());
                return known_same(tracked_attention(qkv, &mask));
            }
            Err(qkv) => qkv,
        };
        match same_type::<_, [Tensor<Balanced, 4>; 3]>(qkv) {
            Ok(qkv) => {
                let mask = known_same::<_, AttentionMask<Balanced>>(mask.clone());
                known_same(tracked_attention(qkv, &mask))
            }
            Err([q, k, v]) => generic_attention(q, k, v, mask),
        }
    }
}

/// What the backward pass reads: the inputs, the output and its log-sum-exp.
#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    mask: Option<FlexTensor>,
    out: Vec<f32>,
    lse: Vec<f32>,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous_if_needed(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (Some(q), Some(k), Some(v), Some(g), Some(mask)) = (
            strided::<f32>(&s.q),
            strided::<f32>(&s.k),
            strided::<f32>(&s.v),
            strided::<f32>(&grad),
            kernel_mask(&s.mask),
        ) else {
            unreachable!("layouts checked in the forward pass; grad made contiguous");
        };
        let scale = 1.0 / (q.shape[3] as f32).sqrt();
        let grads_qkv = comet_kernels::attention_backward(q, k, v, &s.out, g, &s.lse, mask, scale);
        let shapes = [q.shape, k.shape, v.shape];
        for ((node, grad), shape) in ops.parents.into_iter().zip(grads_qkv).zip(shapes) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex_tensor(grad, shape));
            }
        }
    }
}

/// The fast attention as a tracked operation of `Autodiff<Flex, C>`.
fn tracked_attention<C: CheckpointStrategy>(
    [q, k, v]: [Tensor<Autodiff<Flex, C>, 4>; 3],
    mask: &AttentionMask<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let mask = match mask {
        AttentionMask::Explicit(m) => Some(m.clone().into_primitive()),
        AttentionMask::Causal => None,
    };
    let [q, k, v] = [q, k, v].map(|t| match t.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("f32 checked"),
    });
    let readable = |t: &FloatTensor<Autodiff<Flex, C>>| strided::<f32>(&t.primitive).is_some();
    if ![&q, &k, &v].into_iter().all(readable) || kernel_mask(&mask).is_none() {
        let wrap = |t| Tensor::from_primitive(TensorPrimitive::Float(t));
        let mask = match mask {
            Some(m) => AttentionMask::Explicit(Tensor::from_primitive(m)),
            None => AttentionMask::Causal,
        };
        return generic_attention(wrap(q), wrap(k), wrap(v), &mask);
    }
    let prep = AttentionBackward
        .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful();
    let (q, k, v) = (q.primitive, k.primitive, v.primitive);
    let (out, lse) = forward(&q, &k, &v, &mask);
    let shape = q.layout().shape().clone();
    let dims = [shape[0], shape[1], shape[2], v.layout().shape()[3]];
    let output = flex_tensor(out.clone(), dims);
    let result = match prep {
        OpsKind::Tracked(prep) => {
            let saved = Saved {
                q,
                k,
                v,
                mask,
                out,
                lse,
            };
            prep.finish(saved, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

/// The kernel's output and log-sum-exp (layouts already checked).
fn forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    mask: &Option<FlexTensor>,
) -> (Vec<f32>, Vec<f32>) {
    let (Some(sq), Some(sk), Some(sv), Some(m)) = (
        strided::<f32>(q),
        strided::<f32>(k),
        strided::<f32>(v),
        kernel_mask(mask),
    ) else {
        unreachable!("layouts checked by the caller");
    };
    comet_kernels::attention_lse(sq, sk, sv, m, 1.0 / (sq.shape[3] as f32).sqrt())
}

fn flex_tensor(data: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    let t = Tensor::<Flex, 4>::from_data(TensorData::new(data, shape), &Default::default());
    match t.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("made from f32 data"),
    }
}

/// `t` unchanged if the kernels can read its strides, else a contiguous copy.
fn contiguous_if_needed(t: FlexTensor) -> FlexTensor {
    if strided::<f32>(&t).is_some() {
        t
    } else {
        t.to_contiguous()
    }
}
