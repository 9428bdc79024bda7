//! Plain-text language modelling over a corpus file: seeded windows read on demand.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

use super::filler::Filler;
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::Result;

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
