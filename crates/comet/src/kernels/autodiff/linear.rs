//! A linear layer as one autodiff operation over `comet_kernels::matmul`, whose backward
//! passes read the weight and the input transposed through their strides (Burn's generic
//! linear copies the transposed weight contiguous for every backward pass, and flex zeroes
//! each product's output and copies it once more to align it before the product writes it).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn_flex::FlexTensor;
use comet_kernels::Matrix;

use super::super::flex::matrix;
use super::{contiguous, flex_tensor, inner, record, values, LinearArgs};

/// The weight as the forward pass read it, and the input (rows contiguous) where the
/// weight's gradient will be asked for (a frozen weight's layer keeps no activation).
#[derive(Debug, Clone)]
struct Saved {
    x: Option<FlexTensor>,
    w: FlexTensor,
    rows: usize,
}

/// A contiguous tensor `[.., cols]` as the matrix `[rows, cols]` of its flattened rows.
fn rows_of(t: &FlexTensor, rows: usize) -> Matrix<'_> {
    let cols = t.layout().num_elements() / rows.max(1);
    Matrix {
        data: t.storage::<f32>(),
        offset: t.layout().start_offset(),
        shape: [rows, cols],
        strides: [cols, 1],
    }
}

/// The weight `[d_in, d_out]` as a matrix (its strides were checked in the forward pass).
fn weight(w: &FlexTensor) -> Matrix<'_> {
    matrix(w).expect("strides checked in the forward pass")
}

#[derive(Debug)]
struct LinearBackward;

/// Parents: the input, the weight and, when there is one (`N` = 3), the bias.
impl<const N: usize> Backward<Flex, N> for LinearBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let Saved { x, w, rows } = &ops.state;
        let [d_in, d_out] = [w.layout().shape()[0], w.layout().shape()[1]];
        let dy = rows_of(&grad, *rows);
        let mut dx_shape = grad.layout().shape().to_vec();
        *dx_shape.last_mut().expect("[batch, seq, d_out]") = d_in;
        let mut parents = ops.parents.into_iter();
        let (node_x, node_w) = (parents.next().flatten(), parents.next().flatten());
        if let Some(node) = node_x {
            let dx = comet_kernels::matmul(dy, weight(w).transposed(), None);
            grads.register::<Flex>(node.id, flex_tensor(dx, &dx_shape));
        }
        if let Some(node) = node_w {
            let x = x.as_ref().expect("kept for a weight that needs a gradient");
            let dw = comet_kernels::matmul(rows_of(x, *rows).transposed(), dy, None);
            grads.register::<Flex>(node.id, flex_tensor(dw, &[d_in, d_out]));
        }
        if let Some(node) = parents.next().flatten() {
            let mut db = vec![0f32; d_out];
            for row in values(&grad).chunks_exact(d_out) {
                db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
            }
            grads.register::<Flex>(node.id, flex_tensor(db, &[d_out]));
        }
    }
}

/// `x` `[batch, seq, d_in]` times `w` `[d_in, d_out]` plus `b` `[d_out]`, or `None` for a
/// weight whose strides the kernels do not take.
pub(super) fn tracked_linear<C: CheckpointStrategy>(
    (x, w, b): LinearArgs<Autodiff<Flex, C>>,
) -> Option<Tensor<Autodiff<Flex, C>, 3>> {
    let [batch, seq, _] = x.dims();
    let [_, d_out] = w.dims();
    let (x, w) = (inner(x), inner(w));
    matrix(&w.primitive)?; // a negative stride goes the generic way
    let input = contiguous(x.primitive.clone());
    let b = b.map(inner);
    let bias = b.as_ref().map(|b| contiguous(b.primitive.clone()));
    let out = comet_kernels::matmul(
        rows_of(&input, batch * seq),
        weight(&w.primitive),
        bias.as_ref().map(values),
    );
    let saved = Saved {
        x: (!w.node.requirement.is_none()).then_some(input),
        w: w.primitive.clone(),
        rows: batch * seq,
    };
    let output = flex_tensor(out, &[batch, seq, d_out]);
    Some(match &b {
        Some(b) => record(LinearBackward, [&x, &w, b], output, || saved),
        None => record(LinearBackward, [&x, &w], output, || saved),
    })
}
