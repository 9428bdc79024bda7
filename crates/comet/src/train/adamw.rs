//! The trainer's AdamW: Burn's algorithm, state and checkpoint records (a checkpoint written
//! with Burn's `AdamW` resumes here and the other way round), each parameter's update done
//! by [`Kernels::adamw`](crate::kernels::Kernels::adamw), one threaded pass on flex where
//! Burn's composition makes a dozen single-threaded ones (2.2 s a step for 135 M
//! parameters, a fifth of a full fine-tuning step on two cores).

use burn::optim::{AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::prelude::*;

use crate::kernels::{kernels, AdamWSettings};

/// AdamW as Burn computes it, through the backend's kernels.
#[derive(Clone, Debug)]
pub struct FusedAdamW {
    settings: AdamWSettings,
}

impl FusedAdamW {
    /// AdamW with Burn's default moments' decays (0.9, 0.999).
    pub fn new(epsilon: f32, weight_decay: f32) -> Self {
        Self {
            settings: AdamWSettings {
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon,
                weight_decay,
            },
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &AdamWSettings {
        &self.settings
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let shape = tensor.shape();
        let n = shape.num_elements();
        let state = state.map(|s| map_state(s, |t| t.reshape([n])));
        let (param, state) = kernels::<B>().adamw(
            &self.settings,
            lr,
            tensor.reshape([n]),
            grad.reshape([n]),
            state,
        );
        let shaped = |t: Tensor<B, 1>| t.reshape(shape.clone());
        (shaped(param), Some(map_state(state, shaped)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

/// `state` with `f` applied to each of its tensors (a change of shape).
fn map_state<B: Backend, const D: usize, const E: usize>(
    state: AdamWState<B, D>,
    f: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
) -> AdamWState<B, E> {
    let m = state.momentum;
    AdamWState::new(AdaptiveMomentumState {
        time: m.time,
        moment_1: f(m.moment_1),
        moment_2: f(m.moment_2),
        max_moment_2: m.max_moment_2.map(&f),
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, Param};
    use burn::optim::adaptor::OptimizerAdaptor;
    use burn::optim::{AdamW, GradientsParams, Optimizer};
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::Distribution;

    use super::*;
    use crate::kernels::with_generic;

    type A = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        w: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
    }

    fn net() -> Net<A> {
        let device = Default::default();
        Net {
            w: Param::from_tensor(Tensor::random([37, 29], Distribution::Default, &device)),
            b: Param::from_tensor(Tensor::random([29], Distribution::Default, &device)),
        }
    }

    /// Gradients as a backward pass would leave them (registered directly: no autodiff
    /// graph, which Burn 0.21 shares between the tests' threads).
    fn grads(net: &Net<A>, step: usize) -> GradientsParams {
        let mut grads = GradientsParams::new();
        let pattern = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * (step + 3)) as f32 * 0.37).sin() * 10f32.powi(i as i32 % 5 - 3))
                .collect()
        };
        let device = Default::default();
        let w = Tensor::<Flex, 1>::from_floats(pattern(37 * 29).as_slice(), &device);
        grads.register(net.w.id, w.reshape([37, 29]));
        let b = Tensor::<Flex, 1>::from_floats(pattern(29).as_slice(), &device);
        grads.register(net.b.id, b);
        grads
    }

    fn values(net: &Net<A>) -> Vec<f32> {
        let w: Vec<f32> = net.w.val().into_data().to_vec().unwrap();
        w.into_iter()
            .chain(net.b.val().into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    /// Steps `steps` times with `optim`, holding an extra copy of the model (as the trainer
    /// does) on odd steps so that both the in-place and the copying paths run.
    fn train<O: SimpleOptimizer<Flex>>(
        mut optim: OptimizerAdaptor<O, Net<A>, A>,
        mut model: Net<A>,
        steps: std::ops::Range<usize>,
    ) -> (Net<A>, OptimizerAdaptor<O, Net<A>, A>) {
        for step in steps {
            let g = grads(&model, step);
            let held = (step % 2 == 1).then(|| model.clone());
            model = optim.step(1e-2, model, g);
            drop(held);
        }
        (model, optim)
    }

    fn burn_adamw() -> AdamW {
        FusedAdamW::new(1e-8, 0.1).settings().burn()
    }

    #[test]
    fn fused_adamw_matches_burns_adamw_bit_for_bit() {
        let start = net();
        let (burn, _) = train(OptimizerAdaptor::from(burn_adamw()), start.clone(), 0..4);
        let fused = FusedAdamW::new(1e-8, 0.1);
        let (fast, _) = train(OptimizerAdaptor::from(fused.clone()), start.clone(), 0..4);
        let (generic, _) = with_generic(|| train(OptimizerAdaptor::from(fused), start, 0..4));
        assert_eq!(values(&fast), values(&burn), "fused flex path");
        assert_eq!(values(&generic), values(&burn), "generic path");
    }

    #[test]
    fn a_checkpoint_of_burns_adamw_resumes_in_the_fused_one_and_back() {
        let start = net();
        let (model, burn) = train(OptimizerAdaptor::from(burn_adamw()), start, 0..2);
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = Recorder::<A>::record(&recorder, burn.to_record(), ()).unwrap();
        let record = Recorder::<A>::load(&recorder, bytes, &Default::default()).unwrap();
        let fused = OptimizerAdaptor::from(FusedAdamW::new(1e-8, 0.1)).load_record(record);
        let (resumed, fused) = train(fused, model.clone(), 2..4);
        let (continued, _) = train(burn, model, 2..4);
        assert_eq!(values(&resumed), values(&continued));
        // The fused optimizer's record is Burn's: it loads back into Burn's AdamW.
        let bytes = Recorder::<A>::record(&recorder, fused.to_record(), ()).unwrap();
        let record = Recorder::<A>::load(&recorder, bytes, &Default::default()).unwrap();
        let back = OptimizerAdaptor::<AdamW, Net<A>, A>::from(burn_adamw()).load_record(record);
        assert_eq!(back.to_record().len(), 2);
    }
}
