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

#[test]
fn wgpu_matches_the_cpu_backend() {
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
