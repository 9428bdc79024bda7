//! Adapter directories: what cheap fine-tuning (`frozen_base`, `memory_only`, `lora`)
//! produces, loaded on top of an unchanged base model (GGUF or Hugging Face directory).
//!
//! ```text
//! adapter/
//!   adapter.json        format, the base model's name and weight fingerprint, LoRA config
//!   comet.json          CoMeT sizes and switches
//!   comet.safetensors   memory modules and special-token embeddings
//!   lora.safetensors    low-rank adapters (when trained with `lora`)
//! ```

use std::path::Path;

use burn::prelude::*;
use burn::store::ModuleSnapshot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::CometModel;
use crate::fsutil::write_atomic;
use crate::model::{Llm, LoraConfig};
use crate::{Error, Result};

/// The adapter description inside an adapter directory.
pub const ADAPTER_FILE: &str = "adapter.json";
/// The low-rank adapter weights inside an adapter directory.
pub const LORA_FILE: &str = "lora.safetensors";
/// Parameters of the low-rank adapters.
pub(crate) const LORA_PARAMS: &str = r"_lora\.";
/// Every parameter an adapter directory holds (memory, special embeddings, LoRA).
pub const ADAPTER_PARAMS: &str = r"(^memory\.|^special_embeddings|_lora\.)";
const FORMAT: &str = "comet-adapter";

/// `adapter.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterInfo {
    /// Always `comet-adapter`.
    pub format: String,
    /// File or directory name of the base the adapter was trained on (for messages).
    pub base: String,
    /// [`base_fingerprint`] of that base.
    pub base_fingerprint: String,
    /// The low-rank adapters' config, when there are any.
    #[serde(default)]
    pub lora: Option<LoraConfig>,
}

impl AdapterInfo {
    /// Reads `dir/adapter.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_FILE);
        if !dir.is_dir() {
            return Err(Error::Missing(format!(
                "{}: the adapter directory does not exist",
                dir.display()
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let info: Self = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if info.format != FORMAT {
            return Err(Error::Config {
                path,
                reason: format!("`format` is {:?}, expected {FORMAT:?}", info.format),
            });
        }
        if let Some(lora) = &info.lora {
            lora.validate()?;
        }
        Ok(info)
    }

    /// Refuses a base whose weights differ from the one the adapter was trained on.
    pub fn check_base<B: Backend>(self, dir: &Path, path: &Path, llm: &Llm<B>) -> Result<Self> {
        let found = base_fingerprint(llm)?;
        if found != self.base_fingerprint {
            return Err(Error::Input(format!(
                "{} was trained on {} (weights {}), but {} has other weights ({})",
                dir.display(),
                self.base,
                &self.base_fingerprint[..12],
                path.display(),
                &found[..12]
            )));
        }
        Ok(self)
    }
}

/// Identifies a base model's weights as loaded (so a GGUF file and the Hugging Face
/// directory converted from it agree): every tensor's name, shape and a strided sample of
/// its values, low-rank adapters excluded.
pub fn base_fingerprint<B: Backend>(llm: &Llm<B>) -> Result<String> {
    const SAMPLES: usize = 4096;
    let mut snapshots = llm.collect(None, None, false);
    snapshots.retain(|s| !s.full_path().contains("_lora."));
    snapshots.sort_by_key(|s| s.full_path());
    let mut hash = Sha256::new();
    for snapshot in snapshots {
        let path = snapshot.full_path();
        let data = snapshot
            .to_data()
            .map_err(|e| Error::tensor(&path, format!("{e:?}")))?;
        let values = data
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| Error::tensor(&path, format!("{e:?}")))?;
        hash.update(path.as_bytes());
        hash.update(format!("{:?}", snapshot.shape).as_bytes());
        let stride = values.len().div_ceil(SAMPLES).max(1);
        for v in values.iter().step_by(stride) {
            hash.update(v.to_le_bytes());
        }
    }
    Ok(format!("{:x}", hash.finalize()))
}

impl<B: Backend> CometModel<B> {
    /// Writes an adapter directory for this model's base (named `base` in messages):
    /// each file atomically.
    pub fn save_adapter(&self, dir: &Path, base: &str, base_fingerprint: &str) -> Result<()> {
        self.save_memory(dir)?;
        if self.llm.lora.is_some() {
            write_atomic(&dir.join(LORA_FILE), &self.params_bytes(LORA_PARAMS)?)?;
        }
        let info = AdapterInfo {
            format: FORMAT.into(),
            base: base.into(),
            base_fingerprint: base_fingerprint.into(),
            lora: self.llm.lora.clone(),
        };
        let json = serde_json::to_vec_pretty(&info).expect("serializable");
        write_atomic(&dir.join(ADAPTER_FILE), &json)
    }
}
