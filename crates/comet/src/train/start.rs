//! What a run starts from: the model (pretrained with its memory, or from scratch), its
//! tokenizer, the pretrained base's fingerprint, and what the mode freezes.

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;

use super::checkpoint;
use super::{ModelSource, TrainConfig, TrainMode};
use crate::comet::{base_fingerprint, load_comet_adapter, CometModel};
use crate::config::ModelConfig;
use crate::data::mix_seed;
use crate::tokenizer::{byte_level, Tokenizer};
use crate::weights::{random_llm_from, RandomWeights};
use crate::{Error, Result};

/// The pretrained base a run adapts: its name and weight fingerprint, written into the
/// adapter directory so the adapter loads only on the same weights.
pub(super) struct Base {
    pub name: String,
    pub fingerprint: String,
}

/// The model and tokenizer a config starts from (and the pretrained base, if any).
pub(super) fn build_model<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<(CometModel<B>, Tokenizer, Option<Base>)> {
    let lora_seed = mix_seed(&[config.seed, 11]);
    match &config.model {
        ModelSource::Pretrained(path) => {
            let (model, tokenizer, base) = pretrained::<B>(config, path, device)?;
            // Fresh adapters, or more projections for an adapter trained on fewer.
            let grow = match (config.mode, &config.lora, model.llm.lora.as_ref()) {
                (TrainMode::Lora, Some(want), None) => Some(want),
                (TrainMode::Lora, Some(want), Some(have)) if have != want => {
                    if !have.grows_into(want) {
                        return Err(Error::Training(format!(
                            "the adapter's LoRA config ({have:?}) differs from the training config's ({want:?}): only more targets at the same rank and alpha can be added"
                        )));
                    }
                    Some(want)
                }
                _ => None,
            };
            let model = match grow {
                Some(want) => CometModel {
                    llm: model.llm.with_lora(want, lora_seed),
                    ..model
                },
                None => model,
            };
            Ok((model, tokenizer, Some(base)))
        }
        ModelSource::Scratch { config: path, seed } => {
            let model_config = ModelConfig::from_hf_file(path)?;
            if model_config.vocab_size < 256 {
                return Err(Error::Config {
                    path: path.clone(),
                    reason: "a model trained from scratch uses the 256-token byte-level tokenizer: vocab_size must be at least 256".into(),
                });
            }
            let comet = config.comet.clone().unwrap_or_default();
            comet.validate()?;
            let mut llm =
                random_llm_from::<B>(&model_config, RandomWeights::for_training(*seed), device);
            if let (TrainMode::Lora, Some(lora)) = (config.mode, &config.lora) {
                llm = llm.with_lora(lora, lora_seed);
            }
            let model = CometModel::new(llm, comet);
            let added = model.special_tokens().added(model.comet.special_tokens());
            let tokenizer = byte_level()?.with_special_tokens(&added)?;
            Ok((model, tokenizer, None))
        }
    }
}

/// A pretrained base with its memory (fresh, from its directory or from `config.adapter`).
fn pretrained<B: AutodiffBackend>(
    config: &TrainConfig,
    path: &std::path::Path,
    device: &B::Device,
) -> Result<(CometModel<B>, Tokenizer, Base)> {
    let loaded = load_comet_adapter::<B>(
        path,
        config.adapter.as_deref(),
        config.comet.clone(),
        device,
    )?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| Error::Missing(format!("{}: training needs a tokenizer", path.display())))?;
    let base = Base {
        name: crate::fsutil::file_label(path),
        fingerprint: base_fingerprint(&loaded.model.llm)?,
    };
    Ok((loaded.model, tokenizer, base))
}

/// Freezes what the mode keeps fixed; parameter ids follow from their paths, so a
/// checkpoint's optimizer state finds its parameters in any process.
pub(super) fn freeze<B: AutodiffBackend>(
    mut model: CometModel<B>,
    mode: TrainMode,
) -> CometModel<B> {
    model.llm = match mode {
        TrainMode::Full => model.llm,
        TrainMode::Lora => model.llm.freeze_base(),
        TrainMode::FrozenBase | TrainMode::MemoryOnly => model.llm.no_grad(),
    };
    if mode == TrainMode::MemoryOnly {
        model.special_embeddings = model.special_embeddings.set_require_grad(false);
    }
    checkpoint::stable_ids(model)
}
