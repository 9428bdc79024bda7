//! The optimizer's element-wise work over flattened parameters: Burn's AdamW and tensor
//! ops as the generic path, one threaded pass over buffers written in place on flex.

use burn::optim::{AdamWConfig, AdamWState, SimpleOptimizer};
use burn::prelude::*;

/// AdamW's hyper-parameters (the learning rate comes with each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWSettings {
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the second moment's square root.
    pub epsilon: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

impl AdamWSettings {
    /// Burn's optimizer with these settings.
    pub fn burn(&self) -> burn::optim::AdamW {
        AdamWConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
            .build()
    }
}

/// [`super::Kernels::adamw`] by Burn's `AdamW`.
pub fn generic_adamw<B: Backend>(
    settings: &AdamWSettings,
    lr: f64,
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    state: Option<AdamWState<B, 1>>,
) -> (Tensor<B, 1>, AdamWState<B, 1>) {
    let (param, state) = settings.burn().step(lr, param, grad, state);
    (param, state.expect("AdamW always keeps its moments"))
}

/// [`super::Kernels::sum_squares`] by tensor ops.
pub fn generic_sum_squares<B: Backend>(x: Tensor<B, 1>) -> f64 {
    x.powi_scalar(2).sum().into_scalar().elem()
}

#[cfg(feature = "flex")]
pub(super) use fast::{flex_adamw, flex_scale, flex_sum_squares};

#[cfg(feature = "flex")]
mod fast {
    use burn::backend::Flex;
    use burn::optim::AdaptiveMomentumState;
    use burn::tensor::{DType, TensorPrimitive};
    use burn_flex::FlexTensor;

    use super::super::flex::float;
    use super::super::{known_same, same_type};
    use super::*;

    type Step<B> = (Tensor<B, 1>, Tensor<B, 1>, Option<AdamWState<B, 1>>);

    /// [`generic_adamw`] in one threaded pass (`comet_kernels::optim`) where `B` is flex and
    /// everything `f32` without AMSGrad: the moments updated in place, the parameter too
    /// where nothing else holds it.
    pub fn flex_adamw<B: Backend>(
        settings: &AdamWSettings,
        lr: f64,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        state: Option<AdamWState<B, 1>>,
    ) -> (Tensor<B, 1>, AdamWState<B, 1>) {
        let f32s = |s: &Option<AdamWState<B, 1>>| match s {
            Some(AdamWState { momentum: m }) => {
                m.max_moment_2.is_none()
                    && m.moment_1.dtype() == DType::F32
                    && m.moment_2.dtype() == DType::F32
            }
            None => true,
        };
        if param.dtype() != DType::F32 || grad.dtype() != DType::F32 || !f32s(&state) {
            return generic_adamw(settings, lr, param, grad, state);
        }
        match same_type::<Step<B>, Step<Flex>>((param, grad, state)) {
            Ok((param, grad, state)) => known_same(fused(settings, lr, param, grad, state)),
            Err((param, grad, state)) => generic_adamw(settings, lr, param, grad, state),
        }
    }

    fn fused(
        settings: &AdamWSettings,
        lr: f64,
        param: Tensor<Flex, 1>,
        grad: Tensor<Flex, 1>,
        state: Option<AdamWState<Flex, 1>>,
    ) -> (Tensor<Flex, 1>, AdamWState<Flex, 1>) {
        let [n] = param.dims();
        let (time, moments) = match state {
            Some(AdamWState { momentum: s }) => (s.time + 1, [s.moment_1, s.moment_2]),
            None => (1, [0, 1].map(|_| Tensor::zeros([n], &param.device()))),
        };
        let step = comet_kernels::optim::AdamW {
            lr,
            beta_1: settings.beta_1,
            beta_2: settings.beta_2,
            epsilon: settings.epsilon,
            weight_decay: settings.weight_decay,
            time: i32::try_from(time).unwrap_or(i32::MAX),
        };
        let grad = float(grad).to_contiguous();
        let grad = &grad.storage::<f32>()[..n];
        let [mut m, mut v] = moments.map(|t| owned(float(t)));
        let (m_buf, v_buf) = (m.storage_mut::<f32>(), v.storage_mut::<f32>());
        let mut param = float(param);
        let param = match writable(&mut param) {
            Some(p) => {
                comet_kernels::optim::adamw(p, grad, m_buf, v_buf, &step);
                param
            }
            None => {
                let mut out = vec![0f32; n];
                let p = param.to_contiguous();
                comet_kernels::optim::adamw_into(
                    &mut out,
                    &p.storage()[..n],
                    grad,
                    m_buf,
                    v_buf,
                    &step,
                );
                vector(out)
            }
        };
        let momentum = AdaptiveMomentumState::new(time, wrap(m), wrap(v));
        (wrap(param), AdamWState::new(momentum))
    }

    /// [`generic_sum_squares`], threaded and without a squared copy, where `B` is flex.
    pub fn flex_sum_squares<B: Backend>(x: Tensor<B, 1>) -> f64 {
        if x.dtype() != DType::F32 {
            return generic_sum_squares(x);
        }
        match same_type::<_, Tensor<Flex, 1>>(x) {
            Ok(x) => {
                let c = float(x).to_contiguous();
                let n = c.layout().num_elements();
                comet_kernels::optim::sum_squares(&c.storage::<f32>()[..n])
            }
            Err(x) => generic_sum_squares(x),
        }
    }

    /// `x * factor`, in place and threaded where `B` is flex and `x` held by nothing else.
    pub fn flex_scale<B: Backend>(x: Tensor<B, 1>, factor: f32) -> Tensor<B, 1> {
        if x.dtype() != DType::F32 {
            return x * factor;
        }
        match same_type::<_, Tensor<Flex, 1>>(x) {
            Ok(x) => {
                let mut t = float(x);
                match writable(&mut t) {
                    Some(data) => comet_kernels::optim::scale(data, factor),
                    None => return known_same(wrap(t) * factor),
                }
                known_same(wrap(t))
            }
            Err(x) => x * factor,
        }
    }

    /// `t`'s elements as a mutable slice, when `t` alone holds its whole buffer in order.
    fn writable(t: &mut FlexTensor) -> Option<&mut [f32]> {
        let n = t.layout().num_elements();
        if t.layout().contiguous_offsets() != Some((0, n)) {
            return None;
        }
        t.try_storage_mut::<f32>().filter(|s| s.len() == n)
    }

    /// `t` itself when it can be written in place, else a contiguous copy of its own.
    fn owned(mut t: FlexTensor) -> FlexTensor {
        if writable(&mut t).is_some() {
            return t;
        }
        let n = t.layout().num_elements();
        let c = t.to_contiguous();
        vector(c.storage::<f32>()[..n].to_vec())
    }

    fn vector(data: Vec<f32>) -> FlexTensor {
        let n = data.len();
        float(Tensor::<Flex, 1>::from_data(
            TensorData::new(data, [n]),
            &Default::default(),
        ))
    }

    fn wrap(t: FlexTensor) -> Tensor<Flex, 1> {
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }
}
