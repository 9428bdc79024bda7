//! The base model against Hugging Face transformers' logits on small random-weight models
//! (fixtures from `scripts/make_parity_fixtures.py`).

mod common;

use comet::backend::{self, Backend};
use common::{fixture, ids_tensor, max_abs_diff, reference};

/// Loads a fixture, runs the whole reference sequence and compares every logit.
fn check(name: &str) {
    let device = backend::device().unwrap();
    let loaded = comet::load_model::<Backend>(&fixture(name), &device).unwrap();
    common::assert_reference_logits(&loaded.model, &fixture(name));
}

#[test]
fn qwen3_gqa_qk_norm_tied_head_dim_not_hidden_over_heads() {
    check("qwen3-tiny");
}

#[test]
fn qwen2_qkv_bias_untied_bf16() {
    check("qwen2-tiny");
}

#[test]
fn llama_sharded_untied_f32() {
    check("llama-tiny");
}

#[test]
fn llama_tied_f16() {
    check("llama-tied-f16");
}

/// Decoding with the KV cache, one token at a time, gives the logits of the full pass.
#[test]
fn kv_cache_steps_match_the_full_forward() {
    let dir = fixture("qwen2-tiny");
    let device = backend::device().unwrap();
    let model = comet::load_model::<Backend>(&dir, &device).unwrap().model;
    let (ids, expected, [seq, vocab]) = reference(&dir);
    let mut cache = comet::model::KvCache::new(model.layers.len());
    let split = seq / 2;
    let mut got: Vec<f32> = model
        .forward(ids_tensor(&ids[..split], &device), Some(&mut cache))
        .into_data()
        .to_vec()
        .unwrap();
    for &id in &ids[split..] {
        let step: Vec<f32> = model
            .forward(ids_tensor(&[id], &device), Some(&mut cache))
            .into_data()
            .to_vec()
            .unwrap();
        got.extend(step);
    }
    assert_eq!(cache.len(), seq);
    assert_eq!(got.len(), seq * vocab);
    let diff = max_abs_diff(&got, &expected);
    assert!(diff < 1e-4, "cached decoding differs from HF by {diff}");
}
