//! The Qwen3 tokenizer and chat template against ids and text recorded with Hugging Face
//! `tokenizers`/`transformers` (`scripts/make_tokenizer_vectors.py`).

mod common;

use comet::tokenizer::{Message, Tokenizer};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(common::root().join("assets/tokenizer/qwen3-vectors.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn qwen3() -> Tokenizer {
    Tokenizer::from_dir(&common::cached_asset("qwen3-tokenizer")).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn qwen3_ids_match_hugging_face_on_tricky_strings() {
    let tokenizer = qwen3();
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = tokenizer.encode(text, false).unwrap();
        assert_eq!(got, ids(&case["ids"]), "ids of {text:?}");
        let decoded = tokenizer.decode(&got).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "decoding of {text:?}"
        );
    }
}

#[test]
fn qwen3_chat_template_renders_like_transformers() {
    let tokenizer = qwen3();
    let vectors = vectors();
    for case in vectors["chat_template_cases"].as_array().unwrap() {
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let mut extra = serde_json::json!({});
        if let Some(thinking) = case.get("enable_thinking") {
            extra["enable_thinking"] = thinking.clone();
        }
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let text = tokenizer
            .apply_chat_template(&messages, add, &extra)
            .unwrap();
        assert_eq!(text, case["expected"].as_str().unwrap());
        assert_eq!(tokenizer.encode(&text, false).unwrap(), ids(&case["ids"]));
    }
}
