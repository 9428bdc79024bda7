//! RoPE, RMSNorm and SwiGLU as single autodiff operations over `comet-kernels`' threaded
//! row kernels and their backward passes (Burn's compositions take several passes over the
//! activations each way, single-threaded on flex, and keep every intermediate).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;

use super::super::flex::strided;
use super::{
    contiguous, flex_tensor, head_view, inner, readable, record, values, NormArgs, PairArgs,
    RopeArgs,
};

/// Tables of the rotation: cosines and sines `[batch, 1, seq, head_dim / 2]`, contiguous.
#[derive(Debug, Clone)]
struct Angles {
    cos: FlexTensor,
    sin: FlexTensor,
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    type State = Angles;

    fn backward(self, ops: Ops<Angles, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        // From attention's backward, token-major: read through its strides.
        let grad = readable(grads.consume::<Flex>(&ops.node));
        let [Some(node)] = ops.parents else { return };
        // A rotation's transpose turns by the opposite angles.
        let minus_sin: Vec<f32> = values(&ops.state.sin).iter().map(|s| -s).collect();
        let g = strided::<f32>(&grad).expect("strides made positive");
        let dx = comet_kernels::rope(g, values(&ops.state.cos), &minus_sin);
        grads.register::<Flex>(node.id, head_view(dx, g.shape));
    }
}

/// RoPE of `x` by the tables' halves.
pub(super) fn tracked_rope<C: CheckpointStrategy>(
    (x, cos, sin): RopeArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 4> {
    let x = inner(x);
    let angles = Angles {
        cos: contiguous(inner(cos).primitive),
        sin: contiguous(inner(sin).primitive),
    };
    let xp = readable(x.primitive.clone());
    let sx = strided::<f32>(&xp).expect("strides checked");
    let out = comet_kernels::rope(sx, values(&angles.cos), values(&angles.sin));
    let output = head_view(out, sx.shape);
    record(RopeBackward, [&x], output, || angles)
}

/// RMSNorm's input, weight and epsilon.
#[derive(Debug, Clone)]
struct NormSaved {
    x: FlexTensor,
    gamma: FlexTensor,
    eps: f32,
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    type State = NormSaved;

    fn backward(self, ops: Ops<NormSaved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let (dx, dgamma) =
            comet_kernels::rms_norm_backward(values(&s.x), values(&s.gamma), values(&grad), s.eps);
        let [node_x, node_gamma] = ops.parents;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(dx, s.x.layout().shape()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_tensor(dgamma, s.gamma.layout().shape()));
        }
    }
}

/// RMSNorm of `x` `[batch, seq, hidden]` with weight `gamma` `[hidden]`.
pub(super) fn tracked_rms_norm<C: CheckpointStrategy>(
    (x, gamma, eps): NormArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 3> {
    let (x, gamma) = (inner(x), inner(gamma));
    let saved = NormSaved {
        x: contiguous(x.primitive.clone()),
        gamma: contiguous(gamma.primitive.clone()),
        eps: eps as f32,
    };
    let out = comet_kernels::rms_norm(values(&saved.x), values(&saved.gamma), saved.eps);
    let output = flex_tensor(out, saved.x.layout().shape());
    record(RmsNormBackward, [&x, &gamma], output, || saved)
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    type State = [FlexTensor; 2];

    fn backward(self, ops: Ops<[FlexTensor; 2], 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let [gate, up] = &ops.state;
        let (dgate, dup) = comet_kernels::swiglu_backward(values(gate), values(up), values(&grad));
        let shape = gate.layout().shape();
        for (node, g) in ops.parents.into_iter().zip([dgate, dup]) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex_tensor(g, shape));
            }
        }
    }
}

/// `silu(gate) * up`, both `[batch, seq, intermediate]`.
pub(super) fn tracked_swiglu<C: CheckpointStrategy>(
    (gate, up): PairArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 3> {
    let (gate, up) = (inner(gate), inner(up));
    let saved = [
        contiguous(gate.primitive.clone()),
        contiguous(up.primitive.clone()),
    ];
    let out = comet_kernels::swiglu(values(&saved[0]), values(&saved[1]));
    let output = flex_tensor(out, saved[0].layout().shape());
    record(SwigluBackward, [&gate, &up], output, || saved)
}
