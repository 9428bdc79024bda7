//! What every source of training samples implements. A new source is one file: its config
//! (a serde struct) implementing [`SourceSpec`], what it opens implementing [`DataSource`],
//! and one variant of [`super::SourceConfig`].

use std::path::PathBuf;

use rand::rngs::StdRng;

use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::Result;

/// A source's entry in a training config.
pub trait SourceSpec {
    /// Share of the samples drawn from this source (relative to the others').
    fn weight(&self) -> f64;

    /// File paths in the config, resolved against the config's folder when it is read.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }

    /// Checks the numbers and opens the files (indexed, not loaded).
    fn open(&self) -> Result<Box<dyn DataSource>>;
}

/// An opened source: sample `index` of a run is a pure function of the run's seed and
/// `index` (`rng` is seeded from both), so a resumed run sees the same samples.
pub trait DataSource: Send + Sync {
    /// Sample number `index`, drawn with `rng`; `seed` is the run's (for whole-epoch orders).
    fn sample(
        &self,
        tokenizer: &Tokenizer,
        index: u64,
        seed: u64,
        rng: &mut StdRng,
    ) -> Result<Sequence>;
}

/// Default share of a source.
pub(crate) fn one() -> f64 {
    1.0
}
