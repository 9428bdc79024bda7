//! Broken model files give one clear error naming the file, tensor or field — never a panic.

mod common;

use std::path::Path;

use comet::backend::{self, Backend};
use common::fixture;

/// A writable copy of a parity fixture.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

fn load_error(path: &Path) -> String {
    let device = backend::device().unwrap();
    match comet::load_model::<Backend>(path, &device) {
        Ok(_) => panic!("{} loaded, an error was expected", path.display()),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "error is not one line: {message}");
            message
        }
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(path, config.to_string()).unwrap();
}

#[test]
fn missing_path_is_named() {
    let message = load_error(Path::new("/no/such/model"));
    assert!(message.contains("/no/such/model"), "{message}");
}

#[test]
fn directory_without_weights_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let message = load_error(tmp.path());
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn truncated_safetensors_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = load_error(tmp.path());
    assert!(
        message.contains("model.safetensors") && message.contains("not a valid safetensors"),
        "{message}"
    );
}

#[test]
fn missing_shard_is_named() {
    let tmp = copy_fixture("llama-tiny");
    std::fs::remove_file(tmp.path().join("model-00003-of-00008.safetensors")).unwrap();
    let message = load_error(tmp.path());
    assert!(
        message.contains("model-00003-of-00008.safetensors"),
        "{message}"
    );
}

#[test]
fn tensor_of_the_wrong_shape_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let short = vec![0u8; 4 * 3];
    let mut tensors: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "model.norm.weight")
        .collect();
    tensors.push((
        "model.norm.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3], &short).unwrap(),
    ));
    std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
    let message = load_error(tmp.path());
    assert!(
        message.contains("model.norm.weight") && message.contains("[3]"),
        "{message}"
    );
}

#[test]
fn config_that_disagrees_with_the_weights_names_the_tensor() {
    let tmp = copy_fixture("qwen3-tiny");
    edit_config(tmp.path(), |c| {
        c["intermediate_size"] = serde_json::json!(7)
    });
    let message = load_error(tmp.path());
    assert!(message.contains("mlp.gate_proj.weight"), "{message}");
}

#[test]
fn unknown_architecture_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    edit_config(tmp.path(), |c| {
        c["model_type"] = serde_json::json!("gpt_neox")
    });
    let message = load_error(tmp.path());
    assert!(message.contains("gpt_neox"), "{message}");
}

#[test]
fn missing_config_field_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    edit_config(tmp.path(), |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let message = load_error(tmp.path());
    assert!(
        message.contains("hidden_size") && message.contains("config.json"),
        "{message}"
    );
}

#[test]
fn corrupt_config_json_is_named() {
    let tmp = copy_fixture("qwen3-tiny");
    std::fs::write(tmp.path().join("config.json"), "{ not json").unwrap();
    let message = load_error(tmp.path());
    assert!(
        message.contains("config.json") && message.contains("JSON"),
        "{message}"
    );
}

#[test]
fn gguf_with_bad_magic_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    std::fs::write(&path, b"NOPE and some more bytes").unwrap();
    let message = load_error(&path);
    assert!(
        message.contains("model.gguf") && message.contains("not a GGUF"),
        "{message}"
    );
}

#[test]
fn truncated_gguf_is_named() {
    let source = common::cached_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cut.gguf");
    let bytes = std::fs::read(source).unwrap();
    for keep in [100, bytes.len() / 2] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let message = load_error(&path);
        assert!(
            message.contains("cut.gguf") && message.contains("truncated"),
            "{keep}: {message}"
        );
    }
}

#[test]
fn checkpoint_tensors_the_config_does_not_read_are_refused() {
    // A config of one layer over a two-layer checkpoint must not load half the weights.
    let tmp = copy_fixture("qwen3-tiny");
    edit_config(tmp.path(), |c| c["num_hidden_layers"] = 1.into());
    let message = load_error(tmp.path());
    assert!(
        message.contains("model.safetensors")
            && message.contains("not part of the model")
            && message.contains("model.layers.1."),
        "{message}"
    );
}
