//! Plain-text language modelling over a corpus file: seeded windows read on demand.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::filler::Filler;
use super::source::{one, DataSource, SourceSpec};
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::Result;

/// Language modelling on windows of a text file (`kind: "text"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextData {
    /// The corpus.
    pub path: PathBuf,
    /// Tokens per sample.
    pub length: usize,
    /// Share of the samples (relative).
    #[serde(default = "one")]
    pub weight: f64,
}

impl SourceSpec for TextData {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.path]
    }

    fn open(&self) -> Result<Box<dyn DataSource>> {
        Ok(Box::new((TextCorpus::open(&self.path)?, self.length)))
    }
}

impl DataSource for (TextCorpus, usize) {
    fn sample(&self, tokenizer: &Tokenizer, _: u64, _: u64, rng: &mut StdRng) -> Result<Sequence> {
        self.0.sample(tokenizer, self.1, rng.random())
    }
}

/// Windows of `length` tokens at seeded offsets of a text file.
pub struct TextCorpus {
    path: PathBuf,
    filler: Filler,
}

impl TextCorpus {
    /// A corpus over `path` (checked to exist and hold at least 1 KiB).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            filler: Filler::corpus(path)?,
        })
    }

    /// The corpus file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sample `seed`: `length` consecutive tokens starting at a sentence, loss on all.
    pub fn sample(&self, tokenizer: &Tokenizer, length: usize, seed: u64) -> Result<Sequence> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let _ = rng.random::<u64>();
        let mut ids = self
            .filler
            .sentences(tokenizer, length, &mut rng)?
            .0
            .concat();
        ids.truncate(length);
        Ok(Sequence::language_model(ids))
    }
}
