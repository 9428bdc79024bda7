//! The fuzzing harness: every parser of untrusted bytes gets real files mutated by bit
//! flips, truncation, huge lengths and counts, offsets past the end and NaN/inf values.
//! Every case must end in `Ok` or in a one-line error naming the file. A panic fails the
//! property (proptest shrinks it and prints the input); an abort, a hang or an allocation
//! of a claimed size would kill or stall the test process.
//!
//! Cases per parser: `COMET_FUZZ_CASES` (default 48, the CI budget); `PROPTEST_RNG_SEED`
//! (fixed by default below) reproduces a run. A long run:
//! `COMET_FUZZ_CASES=2000 cargo test --release --test fuzz -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};

use comet::backend::{self, Backend};
use comet::comet::{load_snapshot, save_snapshot, CometModel, Snapshot};
use comet::weights::{dequantize, random_llm, GgufFile};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// One edit of a file's bytes; positions are drawn over the file (or its first KiB, where
/// headers, counts and offsets live).
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: Position,
        bit: u8,
    },
    /// A little-endian u64 over eight bytes: a length, count or offset gone huge.
    Huge {
        at: Position,
        value: u64,
    },
    /// A little-endian f32 over four bytes: NaN, infinities, the largest float.
    Float {
        at: Position,
        value: f32,
    },
    Truncate {
        keep: Index,
    },
}

#[derive(Debug, Clone)]
struct Position {
    head: bool,
    index: Index,
}

impl Position {
    fn within(&self, len: usize) -> usize {
        let span = if self.head { len.min(1024) } else { len };
        self.index.index(span.max(1))
    }
}

fn position() -> impl Strategy<Value = Position> {
    (any::<bool>(), any::<Index>()).prop_map(|(head, index)| Position { head, index })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = prop_oneof![
        Just(u64::MAX),
        Just(1u64 << 62),
        Just(u64::from(u32::MAX)),
        Just(1u64 << 40),
        any::<u64>()
    ];
    let float = prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX)
    ];
    prop_oneof![
        4 => (position(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (position(), huge).prop_map(|(at, value)| Mutation::Huge { at, value }),
        1 => (position(), float).prop_map(|(at, value)| Mutation::Float { at, value }),
        1 => any::<Index>().prop_map(|keep| Mutation::Truncate { keep }),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn mutate(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    let overwrite = |bytes: &mut Vec<u8>, at: &Position, new: &[u8]| {
        if bytes.len() >= new.len() {
            let i = at.within(bytes.len() - new.len() + 1);
            bytes[i..i + new.len()].copy_from_slice(new);
        }
    };
    for m in mutations {
        match m {
            Mutation::Flip { at, bit } if !bytes.is_empty() => {
                let i = at.within(bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Flip { .. } => {}
            Mutation::Huge { at, value } => overwrite(&mut bytes, at, &value.to_le_bytes()),
            Mutation::Float { at, value } => overwrite(&mut bytes, at, &value.to_le_bytes()),
            Mutation::Truncate { keep } => bytes.truncate(keep.index(bytes.len() + 1)),
        }
    }
    bytes
}

fn cases() -> u32 {
    std::env::var("COMET_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// Runs `check` on `cases()` mutations of `seed` and reports how many ended in an error.
fn fuzz(what: &str, seed: &[u8], check: impl Fn(&[u8]) -> Result<bool, TestCaseError>) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed unless PROPTEST_RNG_SEED asks for another: CI runs are reproducible.
    let seed_value = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(20261201);
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed_value));
    // The unmutated file must load: otherwise every case would stop at the first check.
    match check(seed) {
        Ok(false) => {}
        other => panic!("{what}: the unmutated seed does not load: {other:?}"),
    }
    let mut runner = TestRunner::new_with_rng(config, rng);
    let errors = std::cell::Cell::new(0u32);
    let verbose = std::env::var_os("COMET_FUZZ_VERBOSE").is_some();
    let result = runner.run(&mutations(), |m| {
        if verbose {
            eprintln!("{what}: {m:?}");
        }
        let refused = check(&mutate(seed, &m))?;
        errors.set(errors.get() + u32::from(refused));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{what}: {e}");
    }
    eprintln!(
        "fuzz {what}: {} cases, {} refused with an error, the rest loaded, 0 panics",
        cases(),
        errors.get()
    );
}

fn seed_bytes(value: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(value.wrapping_add(i as u64)).to_le_bytes());
    }
    out
}

/// `Ok(true)` for an error that is one line and names one of `names`; `Ok(false)` for
/// success; a failed case otherwise.
fn judged<T, E: std::fmt::Display>(
    result: Result<T, E>,
    names: &[&str],
) -> Result<bool, TestCaseError> {
    match result {
        Ok(_) => Ok(false),
        Err(e) => {
            let message = e.to_string();
            prop_assert!(!message.contains('\n'), "not one line: {message}");
            prop_assert!(
                names.iter().any(|n| message.contains(n)),
                "names none of {names:?}: {message}"
            );
            Ok(true)
        }
    }
}

fn gguf_asset(name: &str) -> PathBuf {
    common::root().join("assets/gguf").join(name)
}

/// A whole model load (tokenizer, config, every tensor) of a mutated GGUF file.
#[test]
fn gguf_models() {
    let seed = std::fs::read(gguf_asset("llama-tiny-q8.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.gguf");
    let device = backend::device().unwrap();
    fuzz("GGUF model", &seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        judged(
            comet::load_model::<Backend>(&path, &device),
            &["fuzzed.gguf"],
        )
    });
}

/// The container and every block type's decoding (F16 ... Q6_K) of mutated blocks.
#[test]
fn gguf_blocks() {
    let seed = std::fs::read(gguf_asset("quants.gguf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.gguf");
    fuzz("GGUF blocks", &seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let file = GgufFile::open(&path);
        if let Ok(file) = &file {
            for info in file.tensors.values() {
                dequantize(info.ggml_type, file.data(info));
            }
        }
        judged(file, &["blocks.gguf"])
    });
}

/// A copy of a parity fixture whose file `name` is replaced by each case's bytes.
fn fixture_case(fixture: &str, name: &str, check: impl Fn(&Path) -> Result<bool, TestCaseError>) {
    let source = common::fixture(fixture);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let seed = std::fs::read(source.join(name)).unwrap();
    fuzz(&format!("{fixture}/{name}"), &seed, |bytes| {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        check(dir.path())
    });
}

fn load_dir(dir: &Path, names: &[&str]) -> Result<bool, TestCaseError> {
    let device = backend::device().unwrap();
    let dir_name = dir.display().to_string();
    let mut names = names.to_vec();
    names.push(&dir_name);
    judged(comet::load_model::<Backend>(dir, &device), &names)
}

#[test]
fn safetensors_single_file() {
    fixture_case("qwen3-tiny", "model.safetensors", |dir| {
        load_dir(dir, &["model.safetensors"])
    });
}

#[test]
fn safetensors_shard_and_index() {
    fixture_case("llama-tiny", "model-00003-of-00008.safetensors", |dir| {
        load_dir(dir, &["model-00003-of-00008.safetensors"])
    });
    fixture_case("llama-tiny", "model.safetensors.index.json", |dir| {
        load_dir(dir, &["model.safetensors.index.json"])
    });
}

#[test]
fn config_json() {
    fixture_case("qwen2-tiny", "config.json", |dir| {
        load_dir(dir, &["config.json"])
    });
}

/// A tiny CoMeT model and a snapshot of one sample's memory.
fn snapshot_seed(dir: &Path) -> (CometModel<Backend>, Vec<u8>) {
    let device = backend::device().unwrap();
    let llm = random_llm::<Backend>(&common::tiny_config(false), 3, &device);
    let model = CometModel::new(llm, common::tiny_comet());
    let empty = Snapshot {
        state: model.empty_state(1),
        pending: Vec::new(),
    };
    let snapshot = model
        .ingest(&common::tokens(40, 5, 0, 64), empty, |_| {})
        .unwrap();
    let path = dir.join("seed.cmem");
    save_snapshot(&model, &snapshot, &path).unwrap();
    (model, std::fs::read(path).unwrap())
}

#[test]
fn memory_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (model, seed) = snapshot_seed(dir.path());
    let path = dir.path().join("fuzzed.cmem");
    fuzz(".cmem snapshot", &seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        judged(load_snapshot(&model, &path), &["fuzzed.cmem"])
    });
}

/// A word-level `tokenizer.json` small enough to parse in every case.
const TINY_TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [], "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
  "post_processor": null, "decoder": null,
  "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "Hello": 1}, "unk_token": "[UNK]"}}"#;

/// `tokenizer_config.json` with SmolLM2's chat template (from the packaged GGUF); each case
/// loads it and renders a conversation with what it became.
#[test]
fn tokenizer_config_and_chat_template() {
    let gguf = GgufFile::open(&common::cached_asset(
        "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ))
    .unwrap();
    let template = gguf.str("tokenizer.chat_template").unwrap();
    let seed = serde_json::to_vec_pretty(&serde_json::json!({
        "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "chat_template": template
    }))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), TINY_TOKENIZER).unwrap();
    let messages = [comet::tokenizer::Message::new("user", "Hello")];
    fuzz("tokenizer_config.json", &seed, |bytes| {
        std::fs::write(dir.path().join("tokenizer_config.json"), bytes).unwrap();
        let tokenizer = comet::tokenizer::Tokenizer::from_dir(dir.path());
        if let Ok(tokenizer) = &tokenizer {
            let rendered = tokenizer.apply_chat_template(&messages, true, &serde_json::json!({}));
            judged(rendered, &["chat template"])?;
        }
        judged(tokenizer, &["tokenizer_config.json"])
    });
}

/// A training checkpoint's state (that of the SmolLM2 stage-4 run at step 28).
#[test]
fn checkpoint_state() {
    let seed = std::fs::read(common::root().join("tests/fixtures/trainer.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trainer.json");
    fuzz("checkpoint trainer.json", &seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        judged(
            comet::train::checkpoint::read_state(dir.path()),
            &["trainer.json"],
        )
    });
}

/// Trained memory weights (`comet.safetensors` of a model or adapter directory).
#[test]
fn memory_weights() {
    let dir = tempfile::tempdir().unwrap();
    let device = backend::device().unwrap();
    let llm = random_llm::<Backend>(&common::tiny_config(false), 3, &device);
    let model = CometModel::new(llm, common::tiny_comet());
    let seed = model.memory_bytes().unwrap();
    let model = std::cell::RefCell::new(model);
    let path = dir.path().join("comet.safetensors");
    fuzz("comet.safetensors", &seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        judged(
            model.borrow_mut().load_memory(&path),
            &["comet.safetensors"],
        )
    });
}

#[test]
fn training_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let seed = concat!(
        r#"{"input": "The key is 68413. What is the key?", "output": "68413"}"#,
        "\n",
        r#"{"input": "Key? It is 5.", "output": ["5", "five"]}"#,
        "\n",
        r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
        "\n"
    )
    .as_bytes();
    let path = dir.path().join("train.jsonl");
    fuzz("training JSONL", seed, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let data = comet::data::jsonl::JsonlData::open(&path);
        let mut refused = false;
        if let Ok(data) = &data {
            for i in 0..data.len() {
                refused |= judged(data.record_with_references(i), &["train.jsonl"])?;
            }
        }
        Ok(judged(data, &["train.jsonl"])? || refused)
    });
}
