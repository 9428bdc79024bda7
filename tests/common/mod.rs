//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::SafeTensors;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A committed Hugging Face parity fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    root().join("assets/parity").join(name)
}

/// The cache directory `scripts/fetch_assets.sh` fills.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("COMET_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/comet"),
    }
}

/// A fetched asset, or a panic telling how to fetch it.
pub fn cached_asset(relative: &str) -> PathBuf {
    let path = cache_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/fetch_assets.sh` first",
        path.display()
    );
    path
}

/// The recorded `input_ids` and `logits` `[seq, vocab]` of a fixture.
pub fn reference(dir: &Path) -> (Vec<u32>, Vec<f32>, [usize; 2]) {
    let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("valid reference");
    let ids = st.tensor("input_ids").expect("input_ids");
    let ids: Vec<u32> = ids
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
        .collect();
    let logits = st.tensor("logits").expect("logits");
    let shape = [logits.shape()[0], logits.shape()[1]];
    let values = logits
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (ids, values, shape)
}

/// Runs `model` over the recorded input of the parity fixture `dir` and checks every
/// logit against transformers' within 1e-4.
pub fn assert_reference_logits<B: Backend>(model: &comet::model::Llm<B>, dir: &Path) {
    let device = model.embed_tokens.weight.device();
    let (ids, expected, [seq, vocab]) = reference(dir);
    let logits = model.forward(ids_tensor(&ids, &device), None);
    assert_eq!(logits.dims(), [1, seq, vocab]);
    let got: Vec<f32> = logits.into_data().to_vec().unwrap();
    let diff = max_abs_diff(&got, &expected);
    assert!(diff < 1e-4, "{}: max |logit - HF| = {diff}", dir.display());
}

/// Token ids as a `[1, seq]` tensor.
pub fn ids_tensor<B: Backend>(ids: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let data: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    Tensor::<B, 1, Int>::from_data(TensorData::new(data, [ids.len()]), device)
        .reshape([1, ids.len()])
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A small random model config of the given family (for CoMeT tests).
pub fn tiny_config(tied: bool) -> comet::config::ModelConfig {
    comet::config::ModelConfig {
        architecture: comet::config::Architecture::Qwen3,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        rope_theta: 10000.0,
        rope_scaling: None,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
        attention_bias: false,
        qk_norm: true,
        max_position_embeddings: 512,
        eos_token_ids: vec![],
        bos_token_id: None,
    }
}

/// A small CoMeT config: chunks of 12, 3 slots, stride 4, budget 5.
pub fn tiny_comet() -> comet::memory::CometConfig {
    comet::memory::CometConfig {
        chunk_size: 12,
        memory_slots: 3,
        compression_stride: 4,
        temp_budget: 5,
        adapter_rank: 2,
        ..Default::default()
    }
}

/// Deterministic pseudo-random token ids in `lo..hi`.
pub fn tokens(n: usize, seed: u64, lo: u32, hi: u32) -> Vec<u32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + ((x >> 33) as u32) % (hi - lo)
        })
        .collect()
}

/// Burn 0.21's autodiff graph is shared by the threads of a process, and a `backward()` on
/// one thread can free the steps another thread is still building, silently dropping a
/// gradient (tracel-ai/burn#5573). Tests run on parallel threads, so the ones that train
/// or back-propagate take this lock first.
pub fn autodiff_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `dir/model.json`: the tiny config with the byte-level vocabulary (256 tokens),
/// for training from scratch; returns its path.
pub fn byte_level_model_json(dir: &Path) -> PathBuf {
    let mut model = tiny_config(true);
    model.vocab_size = 256;
    let path = dir.join("model.json");
    std::fs::write(&path, serde_json::to_vec(&model.to_hf_json()).unwrap()).unwrap();
    path
}

/// Logits `[batch * text, vocab]` of every chunk, by the training forward.
pub fn training_logits<B: Backend>(
    model: &comet::comet::CometModel<B>,
    batch: &[comet::layout::Sequence],
) -> Vec<Vec<f32>> {
    use comet::comet::CometModel;
    let layouts = model.layout_builder().chunks(
        batch,
        CometModel::memory_shape(&model.empty_state(batch.len())),
        false,
    );
    let mut state = model.empty_state(batch.len());
    let mut out = Vec::new();
    for layout in &layouts {
        let chunk = model.read_chunk(layout, &state, None);
        out.push(
            model
                .text_logits(layout, chunk.hidden)
                .into_data()
                .convert::<f32>()
                .to_vec()
                .unwrap(),
        );
        state = chunk.state;
    }
    out
}

/// Prefills 3.5 chunks of a tiny-vocabulary (64) model (memory from three chunks, a short
/// final chunk, a queue past its budget), then decodes `steps` tokens one by one (crossing
/// compression tokens and a chunk boundary): every prediction equals the training
/// forward's over the same tokens within `tolerance`.
pub fn assert_decoding_follows_the_training_forward<B: Backend>(
    model: &comet::comet::CometModel<B>,
    steps: usize,
    tolerance: f32,
) {
    use comet::generate::{CometDecoder, Decoder};
    use comet::layout::Sequence;
    let vocab = 64;
    let last_row = |ids: &[u32]| {
        let chunks = training_logits(model, &[Sequence::language_model(ids.to_vec())]);
        let last = chunks.last().unwrap();
        last[last.len() - vocab..].to_vec()
    };
    let ids = tokens(42, 1, 0, 64);
    let mut decoder = CometDecoder::new(model, model.empty_state(1));
    let got = decoder.prefill(&ids).unwrap();
    let diff = max_abs_diff(&got, &last_row(&ids));
    assert!(diff < tolerance, "prefill: {diff}");
    let mut all = ids;
    for id in tokens(steps, 2, 0, 64) {
        let step = decoder.step(id).unwrap();
        all.push(id);
        let diff = max_abs_diff(&step, &last_row(&all));
        assert!(diff < tolerance, "after {} tokens: {diff}", all.len());
    }
}

/// A short sample read alone and beside a longer one (so padded) gives the same logits in
/// every chunk (tiny vocabulary of 64).
pub fn assert_padding_is_invisible<B: Backend>(model: &comet::comet::CometModel<B>) {
    use comet::layout::Sequence;
    let short = Sequence::language_model(tokens(17, 4, 0, 64));
    let long = Sequence::language_model(tokens(40, 5, 0, 64));
    let alone = training_logits(model, std::slice::from_ref(&short));
    let batched = training_logits(model, &[long, short.clone()]);
    for (t, alone) in alone.iter().enumerate() {
        let per_sample = batched[t].len() / 2;
        let second = &batched[t][per_sample..per_sample + alone.len()];
        assert!(max_abs_diff(second, alone) < 1e-4, "chunk {t}");
        assert_eq!(alone.len() % 64, 0);
    }
}

/// A tiny random model (seed 3) with CoMeT memory `comet`.
pub fn tiny_model<B: Backend>(
    comet: comet::memory::CometConfig,
    tied: bool,
) -> comet::comet::CometModel<B> {
    let device = Default::default();
    comet::comet::CometModel::new(
        comet::weights::random_llm::<B>(&tiny_config(tied), 3, &device),
        comet,
    )
}
