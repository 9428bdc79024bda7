//! Context parallelism: ranks owning contiguous chunk ranges and handing each layer's
//! memory on give single-device training's loss and gradients (virtual ranks on one device).

mod common;

use burn::backend::Autodiff;
use burn::optim::GradientsParams;
use comet::comet::{chunk_ranges, CometModel, ContextParallel};
use comet::layout::Sequence;
use comet::train::grads;
use comet::weights::random_llm;
use common::{autodiff_lock, tiny_comet, tiny_config, tokens};

/// The backend cargo features select (flex here; cuda in `scripts/gpu_check.sh`).
type TB = Autodiff<comet::backend::Backend>;

#[test]
fn chunk_ranges_are_contiguous_and_near_equal() {
    assert_eq!(chunk_ranges(5, 2), vec![0..3, 3..5]);
    assert_eq!(chunk_ranges(6, 4), vec![0..2, 2..4, 4..5, 5..6]);
    assert_eq!(chunk_ranges(2, 3), vec![0..1, 1..2, 2..2]);
}

#[test]
fn context_parallel_training_equals_one_device() {
    let _serial = autodiff_lock();
    let device = Default::default();
    let model = CometModel::new(
        random_llm::<TB>(&tiny_config(false), 3, &device),
        tiny_comet(),
    );
    // Six chunks of 12 for the first sample, five for the padded second one.
    let batch = [
        Sequence::language_model(tokens(70, 1, 0, 64)),
        Sequence::language_model(tokens(55, 2, 0, 64)),
    ];
    let builder = model.layout_builder();
    let reference = model.loss_with(&batch, &builder).unwrap();
    let expected: f32 = reference.clone().into_scalar();
    let mut expected_grads = GradientsParams::from_grads(reference.backward(), &model);
    for ranks in [2, 4] {
        let parallel = ContextParallel::new(&model, &vec![device; ranks], |m| m.clone()).unwrap();
        let loss = parallel.loss(&batch, &builder).unwrap();
        let value: f32 = loss.clone().into_scalar();
        assert!(
            (value - expected).abs() < 1e-5,
            "{ranks} ranks: {value} vs {expected}"
        );
        let got = parallel.gradients(loss.backward(), &model);
        assert_eq!(got.len(), expected_grads.len(), "{ranks} ranks");
        let diff = grads::max_relative_difference(&model, &mut expected_grads, &got);
        assert!(
            diff < 1e-4,
            "{ranks} ranks: largest relative gradient difference {diff}"
        );
    }
}
