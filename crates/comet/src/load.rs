//! Opens a model from a path: a Hugging Face directory or a `.gguf` file.

use std::path::Path;

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::ModelConfig;
use crate::model::Llm;
use crate::tokenizer::Tokenizer;
use crate::weights::{build_llm, tensor_specs, GgufWeights, SafetensorsWeights, WeightSource};
use crate::{Error, Result};

/// A model with its tokenizer (absent for weight-only directories such as test fixtures).
pub struct LoadedModel<B: Backend> {
    /// The network.
    pub model: Llm<B>,
    /// The tokenizer and chat template, if the model ships them.
    pub tokenizer: Option<Tokenizer>,
}

impl<B: Backend> LoadedModel<B> {
    /// The tokenizer, or an error saying the model has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::Missing(
                "this model has no tokenizer (tokenizer.json); pass token ids instead".into(),
            )
        })
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("loading weights {bar:40} {pos}/{len} tensors {elapsed}")
            .expect("static template"),
    );
    bar
}

/// Loads a model from a Hugging Face directory (`config.json`, `*.safetensors`,
/// `tokenizer.json`) or a `.gguf` file, showing a progress bar on a terminal.
pub fn load_model<B: Backend>(path: &Path, device: &B::Device) -> Result<LoadedModel<B>> {
    if !path.exists() {
        return Err(Error::Missing(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    let (config, mut source, tokenizer): (ModelConfig, Box<dyn WeightSource>, _) = if path.is_dir()
    {
        let config = ModelConfig::from_hf_file(&path.join("config.json"))?;
        let weights = SafetensorsWeights::open_dir(path)?;
        let tokenizer = if path.join("tokenizer.json").exists() {
            Some(Tokenizer::from_dir(path)?)
        } else {
            None
        };
        (config, Box::new(weights), tokenizer)
    } else {
        let weights = GgufWeights::open(path)?;
        let config = weights.config()?;
        let sibling = path.parent().filter(|p| p.join("tokenizer.json").exists());
        let tokenizer = match sibling {
            Some(dir) => Tokenizer::from_dir(dir)?,
            None => Tokenizer::from_gguf(&weights.file)?,
        };
        (config, Box::new(weights), Some(tokenizer))
    };
    let bar = progress_bar(tensor_specs(&config).len() as u64);
    let model = build_llm(&config, source.as_mut(), device, &bar);
    bar.finish_and_clear();
    Ok(LoadedModel {
        model: model?,
        tokenizer,
    })
}
