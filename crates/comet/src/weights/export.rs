//! Writes any weight source as a Hugging Face model directory (`comet convert`):
//! `config.json`, `model.safetensors` (f32), `tokenizer.json`, `tokenizer_config.json`.

use std::path::Path;

use super::build::tensor_specs;
use super::source::WeightSource;
use crate::config::ModelConfig;
use crate::fsutil::{write_atomic as write, write_f32_safetensors};
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

    let tensors = tensor_specs(config)
        .into_iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                s.shape.clone(),
                source.load(&s.name, &s.shape)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    write_f32_safetensors(&dir.join("model.safetensors"), &tensors, None)?;

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
