//! Attention as one autodiff operation: forward by the fast kernel, which also returns each
//! row's log-sum-exp; backward by `comet_kernels::attention_backward`, which recomputes the
//! softmax tile by tile. No `[queries, keys]` matrix is kept between the passes, and no
//! key/value head is copied for its query heads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;

use super::super::flex::{kernel_mask, strided};
use super::super::generic_attention;
use super::{head_view, inner, readable, record, values, AttentionArgs};
use crate::model::AttentionMask;

/// What the backward pass reads: the inputs, the output and its log-sum-exp.
#[derive(Debug, Clone)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    mask: Option<FlexTensor>,
    /// The output (the tensor the forward pass returned: a `head_view`).
    out: FlexTensor,
    lse: Vec<f32>,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // The head merge's `swap_dims` leaves it transposed: read through its strides.
        let grad = readable(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (Some(q), Some(k), Some(v), Some(g), Some(mask)) = (
            strided::<f32>(&s.q),
            strided::<f32>(&s.k),
            strided::<f32>(&s.v),
            strided::<f32>(&grad),
            kernel_mask(&s.mask),
        ) else {
            unreachable!("layouts checked in the forward pass; grad's strides made positive");
        };
        let scale = 1.0 / (q.shape[3] as f32).sqrt();
        // The output in the kernel's token-major memory order, as the backward reads it.
        let out = values(&s.out);
        let grads_qkv = comet_kernels::attention_backward(q, k, v, out, g, &s.lse, mask, scale);
        let shapes = [q.shape, k.shape, v.shape];
        for ((node, grad), shape) in ops.parents.into_iter().zip(grads_qkv).zip(shapes) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, head_view(grad, shape));
            }
        }
    }
}

/// The fast attention as a tracked operation of `Autodiff<Flex, C>`.
pub(super) fn tracked_attention<C: CheckpointStrategy>(
    ([q, k, v], mask): AttentionArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let mask = match mask {
        AttentionMask::Explicit(m) => Some(m.into_primitive()),
        AttentionMask::Causal => None,
    };
    let [q, k, v] = [q, k, v].map(inner);
    let readable = [&q, &k, &v]
        .iter()
        .all(|t| strided::<f32>(&t.primitive).is_some());
    if !readable || kernel_mask(&mask).is_none() {
        let wrap = |t| Tensor::from_primitive(TensorPrimitive::Float(t));
        let mask = match mask {
            Some(m) => AttentionMask::Explicit(Tensor::from_primitive(m)),
            None => AttentionMask::Causal,
        };
        return generic_attention(wrap(q), wrap(k), wrap(v), &mask);
    }
    let (out, lse) = forward(&q.primitive, &k.primitive, &v.primitive, &mask);
    let shape = q.primitive.layout().shape().clone();
    let dims = [
        shape[0],
        shape[1],
        shape[2],
        v.primitive.layout().shape()[3],
    ];
    let output = head_view(out, dims);
    let out = output.clone();
    record(AttentionBackward, [&q, &k, &v], output, || Saved {
        q: q.primitive.clone(),
        k: k.primitive.clone(),
        v: v.primitive.clone(),
        mask,
        out,
        lse,
    })
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
