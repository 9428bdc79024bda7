//! The same weights on WGPU (a software Vulkan driver in CI) and on the CPU backend.

mod common;

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use comet::comet::{load_snapshot, save_snapshot, CometModel, Snapshot};
use comet::generate::{CometDecoder, Decoder};
use comet::layout::Sequence;
use common::{fixture, ids_tensor, max_abs_diff, reference, tiny_comet, tiny_config, tokens};

/// The tiny CoMeT model of the CPU tests, on any backend (weights drawn on the host).
fn tiny_model<B: Backend>(device: &B::Device) -> CometModel<B> {
    CometModel::new(
        comet::weights::random_llm::<B>(&tiny_config(true), 3, device),
        tiny_comet(),
    )
}

fn logits<B: Backend>(name: &str, ids: &[u32], device: &B::Device) -> Vec<f32> {
    let model = comet::load_model::<B>(&fixture(name), device)
        .unwrap()
        .model;
    model
        .forward(ids_tensor(ids, device), None)
        .into_data()
        .to_vec()
        .unwrap()
}

/// Whether a WGPU adapter exists. Without one (no Vulkan/Metal/DX12 driver) the test says
/// so and passes, unless `COMET_REQUIRE_WGPU` is set, as in CI, which installs lavapipe.
fn wgpu_available() -> bool {
    match comet::backend::probe::<Wgpu>(&Default::default()) {
        Ok(()) => true,
        Err(reason) if std::env::var_os("COMET_REQUIRE_WGPU").is_some() => {
            panic!("COMET_REQUIRE_WGPU is set but WGPU has no adapter: {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: no WGPU adapter ({reason}); install mesa-vulkan-drivers to run it");
            false
        }
    }
}

#[test]
fn wgpu_matches_the_cpu_backend() {
    if !wgpu_available() {
        return;
    }
    for name in ["qwen3-tiny", "qwen2-tiny"] {
        let (ids, expected, _) = reference(&fixture(name));
        let cpu = logits::<Flex>(name, &ids, &Default::default());
        let gpu = logits::<Wgpu>(name, &ids, &Default::default());
        let diff = max_abs_diff(&cpu, &gpu);
        assert!(diff < 1e-3, "{name}: wgpu differs from flex by {diff}");
        assert!(
            max_abs_diff(&gpu, &expected) < 1e-3,
            "{name}: wgpu differs from transformers"
        );
    }
}

/// CoMeT decoding on WGPU continues the training layout exactly, including the steps that
/// send a text token and a compression token together against the cache.
#[test]
fn comet_decoding_on_wgpu_follows_the_training_forward() {
    if !wgpu_available() {
        return;
    }
    let model = tiny_model::<Wgpu>(&Default::default());
    common::assert_decoding_follows_the_training_forward(&model, 10, 1e-3);
}

/// Memory read on WGPU, saved, and loaded again answers as the document read at once.
#[test]
fn comet_snapshot_round_trip_on_wgpu() {
    if !wgpu_available() {
        return;
    }
    let model = tiny_model::<Wgpu>(&Default::default());
    let (document, question) = (tokens(50, 10, 0, 64), tokens(7, 11, 0, 64));
    let empty = Snapshot {
        state: model.empty_state(1),
        pending: Vec::new(),
    };
    let snapshot = model.ingest(&document, empty, |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("doc.cmem");
    save_snapshot(&model, &snapshot, &path).unwrap();
    let loaded = load_snapshot(&model, &path).unwrap();
    let answer = |state, ids: &[u32]| {
        let mut decoder = CometDecoder::new(&model, state);
        let mut logits = decoder.prefill(ids).unwrap();
        logits.extend(decoder.step(5).unwrap());
        logits
    };
    let at_once = answer(model.empty_state(1), &[document, question.clone()].concat());
    let restored = answer(loaded.state, &[loaded.pending, question].concat());
    let diff = max_abs_diff(&at_once, &restored);
    assert!(diff < 1e-4, "restored memory answers differently: {diff}");
}

/// Losses of a few AdamW steps on one CoMeT sample (gradients through every chunk).
fn training_losses<B: AutodiffBackend>(steps: usize) -> Vec<f32> {
    let mut model = tiny_model::<B>(&Default::default());
    let mut optim = AdamWConfig::new().init();
    let sample = Sequence::language_model(tokens(40, 8, 0, 64));
    (0..steps)
        .map(|_| {
            let loss = model.loss(std::slice::from_ref(&sample)).unwrap();
            let value = loss.clone().into_scalar().elem::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model.clone(), grads);
            value
        })
        .collect()
}

/// CoMeT training on WGPU follows training on the CPU backend step for step.
#[test]
fn comet_training_steps_on_wgpu_match_the_cpu_backend() {
    if !wgpu_available() {
        return;
    }
    let _lock = common::autodiff_lock();
    let cpu = training_losses::<Autodiff<Flex>>(4);
    let gpu = training_losses::<Autodiff<Wgpu>>(4);
    assert!(
        cpu[3] < cpu[0] - 0.05,
        "training does not lower the loss: {cpu:?}"
    );
    let diff = max_abs_diff(&cpu, &gpu);
    assert!(diff < 2e-3, "wgpu losses {gpu:?} differ from flex {cpu:?}");
}
