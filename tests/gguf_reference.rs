//! GGUF against reference data made by llama.cpp's own Python package (`gguf`), not by us
//! (`scripts/make_gguf_fixtures.py`): every block type we read dequantizes to gguf-py's
//! values, and the parity fixture `llama-tiny` written as llama.cpp's converter writes it
//! (GGUF names, Q/K rows permuted for interleaved RoPE) gives transformers' logits.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use comet::backend::{self, Backend};
use comet::weights::{dequantize, GgufFile, GgufWeights, WeightSource};
use common::{fixture, max_abs_diff};
use safetensors::SafeTensors;

fn asset(name: &str) -> PathBuf {
    common::root().join("assets/gguf").join(name)
}

/// name -> (shape, f32 values) of an all-f32 safetensors file.
fn f32_tensors(name: &str) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(asset(name)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

#[test]
fn every_block_type_dequantizes_as_gguf_py_does() {
    let file = GgufFile::open(&asset("quants.gguf")).unwrap();
    let expected = f32_tensors("quants.reference.safetensors");
    let types = [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
    ];
    assert_eq!(file.tensors.len(), types.len());
    for ty in types {
        let name = format!("t.{ty}");
        let info = &file.tensors[&name];
        assert_eq!(info.dims, [512, 2], "{name}");
        let got = dequantize(info.ggml_type, file.data(info));
        let (_, want) = &expected[&name];
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = max_abs_diff(&got, want);
        assert!(
            scale > 0.0 && diff <= 1e-6 * scale,
            "{ty}: differs from gguf-py by {diff} (values up to {scale})"
        );
    }
}

#[test]
fn llama_written_by_gguf_py_gives_transformers_logits() {
    let device = backend::device().unwrap();
    let loaded = comet::load_model::<Backend>(&asset("llama-tiny.gguf"), &device).unwrap();
    common::assert_reference_logits(&loaded.model, &fixture("llama-tiny"));
}

#[test]
fn q8_0_llama_weights_come_back_in_hugging_face_layout() {
    let mut weights = GgufWeights::open(&asset("llama-tiny-q8.gguf")).unwrap();
    let expected = f32_tensors("llama-tiny-q8.reference.safetensors");
    assert!(expected.len() >= 3 * 7 + 2, "{} tensors", expected.len());
    for (name, (shape, want)) in &expected {
        let got = weights.load(name, shape).unwrap();
        let diff = max_abs_diff(&got, want);
        assert!(diff <= 1e-6, "{name}: differs from gguf-py by {diff}");
    }
}
