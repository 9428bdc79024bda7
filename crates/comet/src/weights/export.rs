//! Writes any weight source as a Hugging Face model directory (`comet convert`):
//! `config.json`, `model.safetensors` (f32), `tokenizer.json`, `tokenizer_config.json`.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::build::tensor_specs;
use super::source::WeightSource;
use crate::config::ModelConfig;
use crate::fsutil::write_atomic as write;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Converts `source` (e.g. a dequantized GGUF) into a directory `transformers` can load.
pub fn export_hf_dir(
    config: &ModelConfig,
    source: &mut dyn WeightSource,
    tokenizer: Option<&Tokenizer>,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config_json = serde_json::to_vec_pretty(&config.to_hf_json()).expect("serializable");
    write(&dir.join("config.json"), &config_json)?;

    let mut tensors = Vec::new();
    for (name, shape) in tensor_specs(config) {
        let data = source.load(&name, &shape)?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, shape, bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::tensor(name, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let file = safetensors::serialize(views, None).map_err(|e| Error::Input(e.to_string()))?;
    write(&dir.join("model.safetensors"), &file)?;

    if let Some(tokenizer) = tokenizer {
        let json = tokenizer
            .inner
            .to_string(false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        write(&dir.join("tokenizer.json"), json.as_bytes())?;
        let token = |id: Option<u32>| id.and_then(|i| tokenizer.inner.id_to_token(i));
        let mut tc = serde_json::json!({
            "bos_token": token(config.bos_token_id),
            "eos_token": token(config.eos_token_ids.first().copied()),
            "tokenizer_class": "PreTrainedTokenizerFast",
        });
        if let Some(template) = &tokenizer.chat_template {
            tc["chat_template"] = template.source().into();
        }
        write(
            &dir.join("tokenizer_config.json"),
            &serde_json::to_vec_pretty(&tc).expect("json"),
        )?;
    }
    Ok(())
}
