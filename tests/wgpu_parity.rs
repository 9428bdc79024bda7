//! The same weights on WGPU (a software Vulkan driver in CI) and on the CPU backend.

mod common;

use burn::backend::{Flex, Wgpu};
use burn::prelude::*;
use common::{fixture, ids_tensor, max_abs_diff, reference};

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
