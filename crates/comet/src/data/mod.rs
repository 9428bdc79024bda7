//! Training and evaluation data, generated or streamed from disk, deterministic per seed:
//! sample `i` of a dataset is always the same, so a resumed run sees the same order.
//!
//! - [`passkey`]: passkey / needle samples over a haystack ([`filler`]).
//! - [`recall`]: cued recall of a passage from earlier in a haystack window.
//! - [`text`]: plain language modelling over a corpus file.
//! - [`jsonl`]: `input`/`output` and chat JSONL, loss on the answer only.

pub mod copy;
pub mod filler;
pub mod jsonl;
pub mod passkey;
mod passkey_source;
pub mod recall;
mod source;
pub mod text;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use copy::{copy_sample, CopyData};
pub use filler::{Filler, DEFAULT_FILLER};
pub use jsonl::{JsonlData, JsonlSource, Record};
pub use passkey::{mix_seed, Passkey, PasskeySample};
pub use passkey_source::PasskeyData;
pub use recall::RecallData;
pub use source::{DataSource, SourceSpec};
pub use text::{TextCorpus, TextData};

use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One source of training samples, as written in a training config (`"kind": ...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Passkey retrieval samples.
    Passkey(PasskeyData),
    /// Copying drills.
    Copy(CopyData),
    /// Cued recall of an earlier passage.
    Recall(RecallData),
    /// Windows of a text file.
    Text(TextData),
    /// `input`/`output` or chat JSONL.
    Jsonl(JsonlSource),
}

impl SourceConfig {
    /// The source's own config.
    pub fn spec(&self) -> &dyn SourceSpec {
        match self {
            Self::Passkey(c) => c,
            Self::Copy(c) => c,
            Self::Recall(c) => c,
            Self::Text(c) => c,
            Self::Jsonl(c) => c,
        }
    }

    /// The source's own config, to resolve its paths.
    pub fn spec_mut(&mut self) -> &mut dyn SourceSpec {
        match self {
            Self::Passkey(c) => c,
            Self::Copy(c) => c,
            Self::Recall(c) => c,
            Self::Text(c) => c,
            Self::Jsonl(c) => c,
        }
    }
}

/// A weighted mixture of sources; `sample(i)` is a pure function of the seed and `i`.
pub struct TrainData {
    sources: Vec<(Box<dyn DataSource>, f64)>,
    tokenizer: Tokenizer,
    seed: u64,
}

impl TrainData {
    /// Opens every source (files are indexed, not loaded).
    pub fn open(configs: &[SourceConfig], tokenizer: Tokenizer, seed: u64) -> Result<Self> {
        if configs.is_empty() {
            return Err(Error::Input("the training config lists no data".into()));
        }
        let mut sources = Vec::new();
        for config in configs {
            let weight = config.spec().weight();
            if !(weight > 0.0 && weight.is_finite()) {
                return Err(Error::Input(format!(
                    "data weight {weight} must be positive"
                )));
            }
            sources.push((config.spec().open()?, weight));
        }
        Ok(Self {
            sources,
            tokenizer,
            seed,
        })
    }

    /// The tokenizer samples are encoded with.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Sample number `index`: a source picked by weight, then its sample.
    pub fn sample(&self, index: u64) -> Result<Sequence> {
        let mut rng = StdRng::seed_from_u64(mix_seed(&[self.seed, index]));
        let total: f64 = self.sources.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random::<f64>() * total;
        let (source, _) = self
            .sources
            .iter()
            .find(|(_, w)| {
                pick -= w;
                pick < 0.0
            })
            .unwrap_or(self.sources.last().expect("at least one source"));
        source.sample(&self.tokenizer, index, self.seed, &mut rng)
    }
}
