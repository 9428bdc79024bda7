//! Loading a CoMeT model (base weights + `comet.json` + `comet.safetensors`) and saving
//! its memory modules.

use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::adapter::{AdapterInfo, LORA_FILE, LORA_PARAMS};
use super::model::CometModel;
use crate::fsutil::write_atomic;
use crate::memory::CometConfig;
use crate::tokenizer::Tokenizer;
use crate::weights::{export_hf_dir, ModuleWeights};
use crate::{load_model, Error, Result};

/// The memory-module weights file inside a CoMeT model directory.
pub const MEMORY_FILE: &str = "comet.safetensors";
/// The CoMeT config file inside a CoMeT model directory.
pub const CONFIG_FILE: &str = "comet.json";
/// Parameters CoMeT adds to the base model.
pub(crate) const MEMORY_PARAMS: &str = r"^(memory\.|special_embeddings)";

/// A CoMeT model with its tokenizer.
pub struct LoadedComet<B: Backend> {
    /// Base model + memory.
    pub model: CometModel<B>,
    /// The tokenizer, if the model ships one.
    pub tokenizer: Option<Tokenizer>,
    /// Whether the memory modules were loaded (trained) rather than freshly initialised.
    pub trained_memory: bool,
}

impl<B: Backend> CometModel<B> {
    /// Serialized memory modules and special embeddings (safetensors bytes).
    pub fn memory_bytes(&self) -> Result<Vec<u8>> {
        self.params_bytes(MEMORY_PARAMS)
    }

    /// Serialized parameters whose paths match `regex` (safetensors bytes).
    pub fn params_bytes(&self, regex: &str) -> Result<Vec<u8>> {
        let mut store = SafetensorsStore::from_bytes(None).with_regex(regex);
        self.save_into(&mut store)
            .map_err(|e| Error::Input(format!("serializing memory: {e}")))?;
        store
            .get_bytes()
            .map_err(|e| Error::Input(format!("serializing memory: {e}")))
    }

    /// Writes `comet.json` and `comet.safetensors` into `dir` (atomically each).
    pub fn save_memory(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config = serde_json::to_vec_pretty(&self.comet).expect("serializable config");
        write_atomic(&dir.join(CONFIG_FILE), &config)?;
        write_atomic(&dir.join(MEMORY_FILE), &self.memory_bytes()?)
    }

    /// Saves the whole model as a directory every command loads: the base model in Hugging
    /// Face format (`config.json`, `model.safetensors`, tokenizer files) plus the memory.
    pub fn save(&self, dir: &Path, tokenizer: Option<&Tokenizer>) -> Result<()> {
        let mut weights = ModuleWeights::new(&self.llm)?;
        export_hf_dir(self.llm.config(), &mut weights, tokenizer, dir)?;
        self.save_memory(dir)
    }

    /// Replaces the memory modules with those stored in `path`.
    pub fn load_memory(&mut self, path: &Path) -> Result<()> {
        self.load_params(
            path,
            MEMORY_PARAMS,
            "(does comet.json match these weights?)",
        )
    }

    /// Replaces every parameter matching `regex` with the one stored in `path`; each must
    /// be there with its shape.
    pub(crate) fn load_params(&mut self, path: &Path, regex: &str, hint: &str) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_regex(regex)
            .allow_partial(true);
        let result = self
            .load_from(&mut store)
            .map_err(|e| Error::corrupt(path, e.to_string()))?;
        if let Some(e) = result.errors.first() {
            return Err(Error::corrupt(path, format!("{e} {hint}")));
        }
        let wanted = regex::Regex::new(regex).expect("static regex");
        let missing: Vec<&str> = result
            .missing
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| wanted.is_match(p))
            .collect();
        if let Some(first) = missing.first() {
            return Err(Error::corrupt(
                path,
                format!(
                    "{} tensors are missing, e.g. `{first}` {hint}",
                    missing.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The CoMeT config stored in a trained model directory, if any.
pub fn stored_config(path: &Path) -> Result<Option<CometConfig>> {
    let file = path.join(CONFIG_FILE);
    if path.is_dir() && file.exists() {
        CometConfig::from_file(&file).map(Some)
    } else {
        Ok(None)
    }
}

/// Where a CoMeT model's memory comes from: the base model's own directory (a model
/// saved whole) or an adapter directory on top of an unchanged base.
fn memory_dir<'a>(path: &'a Path, adapter: Option<&'a Path>) -> Option<&'a Path> {
    adapter.or(path.is_dir().then_some(path))
}

/// The config to build with: the stored one, changed by `given` where the memory weights
/// allow it (same slots and adapter rank), else `given`, else the defaults.
fn resolve_config(
    stored: Option<CometConfig>,
    given: Option<CometConfig>,
    file: &Path,
) -> Result<CometConfig> {
    let comet = match (stored, given) {
        (Some(stored), None) => stored,
        (Some(stored), Some(config)) => {
            // Sizes and switches that do not shape a parameter may change (an ablation
            // trained from a shared model, a different chunk size at evaluation).
            if (stored.memory_slots, stored.adapter_rank)
                != (config.memory_slots, config.adapter_rank)
            {
                return Err(Error::Input(format!(
                    "{} stores memory for {} slots at adapter rank {}; the given CoMeT \
                     config asks for {} slots at rank {}",
                    file.display(),
                    stored.memory_slots,
                    stored.adapter_rank,
                    config.memory_slots,
                    config.adapter_rank
                )));
            }
            config
        }
        (None, Some(config)) => config,
        (None, None) => CometConfig::default(),
    };
    comet.validate()?;
    Ok(comet)
}

/// Loads a base model (HF directory or GGUF) with CoMeT memory: from `comet.json` and
/// `comet.safetensors` in the directory when present, else fresh modules for `config`
/// (or the defaults). A `config` given for a trained directory replaces its stored one
/// where the memory weights allow it (same slots and adapter rank).
pub fn load_comet<B: Backend>(
    path: &Path,
    config: Option<CometConfig>,
    device: &B::Device,
) -> Result<LoadedComet<B>> {
    load_comet_adapter(path, None, config, device)
}

/// [`load_comet`] with the memory (and low-rank adapters) taken from an adapter directory
/// (see [`super::adapter`]) made for this base; a base with other weights is refused.
pub fn load_comet_adapter<B: Backend>(
    path: &Path,
    adapter: Option<&Path>,
    config: Option<CometConfig>,
    device: &B::Device,
) -> Result<LoadedComet<B>> {
    let base = load_model::<B>(path, device)?;
    let info = adapter
        .map(|dir| AdapterInfo::read(dir)?.check_base(dir, path, &base.model))
        .transpose()?;
    let dir = memory_dir(path, adapter);
    let stored = dir.map(stored_config).transpose()?.flatten();
    let file = dir.unwrap_or(path).join(CONFIG_FILE);
    let comet = resolve_config(stored, config, &file)?;
    let mut llm = base.model;
    if let Some(lora) = info.as_ref().and_then(|i| i.lora.as_ref()) {
        llm = llm.with_lora(lora, 0);
    }
    let mut model = CometModel::new(llm, comet);
    let weights = dir.map(|d| d.join(MEMORY_FILE)).filter(|p| p.exists());
    match (&weights, adapter) {
        (Some(weights), _) => model.load_memory(weights)?,
        (None, Some(dir)) => {
            return Err(Error::Missing(format!(
                "{}: an adapter directory needs {MEMORY_FILE}",
                dir.display()
            )))
        }
        (None, None) => {}
    }
    if let (Some(dir), Some(_)) = (adapter, model.llm.lora.as_ref()) {
        model.load_params(
            &dir.join(LORA_FILE),
            LORA_PARAMS,
            "(does adapter.json match?)",
        )?;
    }
    let added = model.special_tokens().added(model.comet.special_tokens());
    let tokenizer = base
        .tokenizer
        .map(|t| t.with_special_tokens(&added))
        .transpose()?;
    Ok(LoadedComet {
        model,
        tokenizer,
        trained_memory: weights.is_some(),
    })
}
