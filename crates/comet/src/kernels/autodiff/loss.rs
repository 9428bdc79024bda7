//! The summed next-token cross-entropy as one autodiff operation: the forward pass keeps
//! each row's log-sum-exp, the backward pass writes `softmax - one_hot` once
//! (`comet_kernels::cross_entropy_backward`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;

use super::{contiguous, flex_tensor, inner, record, values, NllArgs};

/// The logits, their rows' targets and log-sum-exps.
#[derive(Debug, Clone)]
struct Saved {
    logits: FlexTensor,
    targets: Vec<usize>,
    lse: Vec<f32>,
}

#[derive(Debug)]
struct NllBackward;

impl Backward<Flex, 1> for NllBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let [Some(node)] = ops.parents else { return };
        let s = &ops.state;
        let shape = s.logits.layout().shape();
        let vocab = shape[1];
        let d = comet_kernels::cross_entropy_backward(
            values(&s.logits),
            vocab,
            &s.targets,
            &s.lse,
            values(&grad)[0],
        );
        grads.register::<Flex>(node.id, flex_tensor(d, shape));
    }
}

/// `sum(lse(row) - row[target])` over the rows of `logits` `[rows, vocab]`: `[1]`.
pub(super) fn tracked_nll<C: CheckpointStrategy>(
    (logits, targets): NllArgs<Autodiff<Flex, C>>,
) -> Tensor<Autodiff<Flex, C>, 1> {
    let logits = inner(logits);
    let x = contiguous(logits.primitive.clone());
    let vocab = x.layout().shape()[1];
    let loss = comet_kernels::cross_entropy(values(&x), vocab, &targets);
    let output = flex_tensor(vec![loss.total()], &[1]);
    let saved = || Saved {
        logits: x,
        targets,
        lse: loss.lse,
    };
    record(NllBackward, [&logits], output, saved)
}
