//! Passkey retrieval as a training source (`kind: "passkey"`): lengths and depths drawn
//! per sample, optionally several samples read one after another.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::filler::{Filler, DEFAULT_FILLER};
use super::passkey::Passkey;
use super::source::{one, DataSource, SourceSpec};
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Passkey retrieval with lengths uniform in `min_length..=max_length` and uniform depths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyData {
    /// Shortest sample, tokens.
    pub min_length: usize,
    /// Longest sample, tokens.
    pub max_length: usize,
    /// Haystack text file; the classic repeated filler when absent.
    #[serde(default)]
    pub haystack: Option<PathBuf>,
    /// Digits of the key.
    #[serde(default = "five")]
    pub digits: u32,
    /// Needles per sample: more than one hides named keys, one of them asked for.
    #[serde(default = "one_usize")]
    pub needles: usize,
    /// With several needles, the question asks for every key in turn (each answer
    /// scored), not only one: several keys read through memory per sample.
    #[serde(default)]
    pub ask_all: bool,
    /// Chunk size: each needle crosses a chunk boundary (one needle only), the case where
    /// no chunk sees the whole needle.
    #[serde(default)]
    pub straddle: Option<usize>,
    /// Depths of the asked-for needle are uniform in `min_depth..=max_depth` (a
    /// curriculum can keep the needle in the first chunk, read only through memory).
    #[serde(default)]
    pub min_depth: f64,
    /// See `min_depth`.
    #[serde(default = "one")]
    pub max_depth: f64,
    /// Loss on every token, not only the answer: a model trained from scratch learns
    /// to copy (the needle repeats its key) much sooner.
    #[serde(default)]
    pub loss_on_all_tokens: bool,
    /// Passkey samples (each of `min_length..=max_length` tokens, with its own key)
    /// read one after another as one training sample: more answers per token, and
    /// each must come from the latest needle, so the memory learns to overwrite.
    #[serde(default = "one_usize")]
    pub segments: usize,
    /// Share of the samples drawn from this source (relative).
    #[serde(default = "one")]
    pub weight: f64,
}

fn five() -> u32 {
    5
}

fn one_usize() -> usize {
    1
}

impl PasskeyData {
    fn check(&self) -> Result<()> {
        let (min, max, digits, segments) =
            (self.min_length, self.max_length, self.digits, self.segments);
        if min > max || digits == 0 || digits > 18 || segments == 0 {
            return Err(Error::Input(format!(
                "passkey data: need min_length <= max_length, 1..=18 digits and at least one segment, got {min}, {max}, {digits}, {segments}"
            )));
        }
        let (lo, hi, needles) = (self.min_depth, self.max_depth, self.needles);
        let depths_ok = 0.0 <= lo && lo <= hi && hi <= 1.0;
        if !(depths_ok && (1..=40).contains(&needles)) {
            return Err(Error::Input(format!(
                "passkey data: need 0 <= min_depth <= max_depth <= 1 and 1..=40 needles, got {lo}, {hi}, {needles}"
            )));
        }
        if self.straddle.is_some_and(|chunk| chunk < 2 || needles > 1) {
            return Err(Error::Input(
                "passkey data: `straddle` needs a chunk of at least 2 tokens and one needle".into(),
            ));
        }
        Ok(())
    }
}

impl SourceSpec for PasskeyData {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        self.haystack.iter_mut().collect()
    }

    fn open(&self) -> Result<Box<dyn DataSource>> {
        self.check()?;
        let filler = match &self.haystack {
            Some(path) => Filler::corpus(path)?,
            None => Filler::Repeated(DEFAULT_FILLER.into()),
        };
        Ok(Box::new((self.clone(), filler)))
    }
}

impl DataSource for (PasskeyData, Filler) {
    fn sample(&self, tokenizer: &Tokenizer, _: u64, _: u64, rng: &mut StdRng) -> Result<Sequence> {
        let (config, filler) = self;
        let mut gen = Passkey::new(tokenizer, filler.clone());
        gen.digits = config.digits;
        gen.needles = config.needles;
        gen.ask_all = config.ask_all;
        gen.straddle = config.straddle;
        let mut whole = Sequence::default();
        for _ in 0..config.segments {
            let length = rng.random_range(config.min_length..=config.max_length);
            let depth =
                config.min_depth + (config.max_depth - config.min_depth) * rng.random::<f64>();
            let sample = gen.sample(length, depth, rng.random())?;
            let part = if config.loss_on_all_tokens {
                Sequence::language_model(sample.ids)
            } else {
                sample.sequence()
            };
            whole.tokens.extend(part.tokens);
            whole.targets.extend(part.targets);
        }
        Ok(whole)
    }
}
