//! The loss: next-token cross-entropy summed over rows of logits, by Burn's
//! `log_softmax` and `gather` generically, by `comet_kernels::cross_entropy` on flex.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// [`super::Kernels::nll`] by Burn's ops.
pub fn generic_nll<B: Backend>(logits: Tensor<B, 2>, targets: &[usize]) -> Tensor<B, 1> {
    let ids = targets.iter().map(|&t| t as i64).collect();
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [targets.len(), 1]), &logits.device());
    log_softmax(logits, 1).gather(1, ids).sum().neg()
}

#[cfg(feature = "flex")]
pub(super) use fast::flex_nll;

#[cfg(feature = "flex")]
mod fast {
    use burn::backend::Flex;
    use burn::tensor::DType;

    use super::super::flex::float;
    use super::super::{known_same, same_type};
    use super::*;

    /// [`generic_nll`] in one threaded pass where `B` is flex and `logits` are `f32`.
    pub fn flex_nll<B: Backend>(logits: Tensor<B, 2>, targets: &[usize]) -> Tensor<B, 1> {
        if logits.dtype() != DType::F32 {
            return generic_nll(logits, targets);
        }
        match same_type::<_, Tensor<Flex, 2>>(logits) {
            Ok(logits) => {
                let [_, vocab] = logits.dims();
                let device = logits.device();
                let x = float(logits).to_contiguous();
                let n = x.layout().num_elements();
                let loss = comet_kernels::cross_entropy(&x.storage::<f32>()[..n], vocab, targets);
                let out = Tensor::<Flex, 1>::from_floats([loss.total()], &device);
                known_same(out)
            }
            Err(logits) => generic_nll(logits, targets),
        }
    }
}
