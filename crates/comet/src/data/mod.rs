//! Training and evaluation data, generated or streamed from disk, deterministic per seed:
//! sample `i` of a dataset is always the same, so a resumed run sees the same order.
//!
//! - [`passkey`]: passkey / needle samples over a haystack ([`filler`]).
//! - [`text`]: plain language modelling over a corpus file.
//! - [`jsonl`]: `input`/`output` and chat JSONL, loss on the answer only.

pub mod copy;
pub mod filler;
pub mod jsonl;
pub mod passkey;
pub mod text;

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use copy::copy_sample;
pub use filler::{Filler, DEFAULT_FILLER};
pub use jsonl::{JsonlData, Record};
pub use passkey::{mix_seed, Passkey, PasskeySample};
pub use text::TextCorpus;

use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One source of training samples, as written in a training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Passkey retrieval with lengths uniform in `min_length..=max_length` and uniform depths.
    Passkey {
        /// Shortest sample, tokens.
        min_length: usize,
        /// Longest sample, tokens.
        max_length: usize,
        /// Haystack text file; the classic repeated filler when absent.
        #[serde(default)]
        haystack: Option<PathBuf>,
        /// Digits of the key.
        #[serde(default = "five")]
        digits: u32,
        /// Needles per sample: more than one hides named keys, one of them asked for.
        #[serde(default = "one_usize")]
        needles: usize,
        /// Depths of the asked-for needle are uniform in `min_depth..=max_depth` (a
        /// curriculum can keep the needle in the first chunk, read only through memory).
        #[serde(default)]
        min_depth: f64,
        /// See `min_depth`.
        #[serde(default = "one")]
        max_depth: f64,
        /// Loss on every token, not only the answer: a model trained from scratch learns
        /// to copy (the needle repeats its key) much sooner.
        #[serde(default)]
        loss_on_all_tokens: bool,
        /// Passkey samples (each of `min_length..=max_length` tokens, with its own key)
        /// read one after another as one training sample: more answers per token, and
        /// each must come from the latest needle, so the memory learns to overwrite.
        #[serde(default = "one_usize")]
        segments: usize,
        /// Share of the samples drawn from this source (relative).
        #[serde(default = "one")]
        weight: f64,
    },
    /// Copying drills (random letters and digits, then the same again; loss on the copies)
    /// packed into samples of `min_length..=max_length` tokens.
    Copy {
        /// Shortest sample, tokens.
        min_length: usize,
        /// Longest sample, tokens.
        max_length: usize,
        /// Share of the samples (relative).
        #[serde(default = "one")]
        weight: f64,
    },
    /// Language modelling on windows of a text file.
    Text {
        /// The corpus.
        path: PathBuf,
        /// Tokens per sample.
        length: usize,
        /// Share of the samples (relative).
        #[serde(default = "one")]
        weight: f64,
    },
    /// `input`/`output` or chat JSONL, in a seeded order, epoch after epoch.
    Jsonl {
        /// The file.
        path: PathBuf,
        /// Samples are cut to this many tokens (the start of the prompt goes first).
        max_length: usize,
        /// Share of the samples (relative).
        #[serde(default = "one")]
        weight: f64,
    },
}

fn five() -> u32 {
    5
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}

enum Source {
    Passkey {
        filler: Filler,
        min: usize,
        max: usize,
        digits: u32,
        needles: usize,
        depths: (f64, f64),
        all_tokens: bool,
        segments: usize,
    },
    Copy(usize, usize),
    Text(TextCorpus, usize),
    Jsonl(JsonlData, usize),
}

/// A weighted mixture of sources; `sample(i)` is a pure function of the seed and `i`.
pub struct TrainData {
    sources: Vec<(Source, f64)>,
    tokenizer: Tokenizer,
    seed: u64,
}

impl SourceConfig {
    fn weight(&self) -> f64 {
        match self {
            Self::Passkey { weight, .. }
            | Self::Copy { weight, .. }
            | Self::Text { weight, .. }
            | Self::Jsonl { weight, .. } => *weight,
        }
    }
}

impl TrainData {
    /// Opens every source (files are indexed, not loaded).
    pub fn open(configs: &[SourceConfig], tokenizer: Tokenizer, seed: u64) -> Result<Self> {
        if configs.is_empty() {
            return Err(Error::Input("the training config lists no data".into()));
        }
        let mut sources = Vec::new();
        for config in configs {
            let weight = config.weight();
            if !(weight > 0.0 && weight.is_finite()) {
                return Err(Error::Input(format!(
                    "data weight {weight} must be positive"
                )));
            }
            let source = match config {
                SourceConfig::Passkey {
                    min_length,
                    max_length,
                    haystack,
                    digits,
                    needles,
                    min_depth,
                    max_depth,
                    loss_on_all_tokens,
                    segments,
                    ..
                } => {
                    if min_length > max_length || *digits == 0 || *digits > 18 || *segments == 0 {
                        return Err(Error::Input(format!(
                            "passkey data: need min_length <= max_length, 1..=18 digits and at least one segment, got {min_length}, {max_length}, {digits}, {segments}"
                        )));
                    }
                    let depths_ok =
                        0.0 <= *min_depth && min_depth <= max_depth && *max_depth <= 1.0;
                    if !depths_ok || !(1..=40).contains(needles) {
                        return Err(Error::Input(format!(
                            "passkey data: need 0 <= min_depth <= max_depth <= 1 and 1..=40 needles, got {min_depth}, {max_depth}, {needles}"
                        )));
                    }
                    let filler = match haystack {
                        Some(path) => Filler::corpus(path)?,
                        None => Filler::Repeated(DEFAULT_FILLER.into()),
                    };
                    Source::Passkey {
                        filler,
                        min: *min_length,
                        max: *max_length,
                        digits: *digits,
                        needles: *needles,
                        depths: (*min_depth, *max_depth),
                        all_tokens: *loss_on_all_tokens,
                        segments: *segments,
                    }
                }
                SourceConfig::Copy {
                    min_length,
                    max_length,
                    ..
                } => {
                    if *min_length == 0 || min_length > max_length {
                        return Err(Error::Input(format!(
                            "copy data: need 0 < min_length <= max_length, got {min_length}, {max_length}"
                        )));
                    }
                    Source::Copy(*min_length, *max_length)
                }
                SourceConfig::Text { path, length, .. } => {
                    Source::Text(TextCorpus::open(path)?, *length)
                }
                SourceConfig::Jsonl {
                    path, max_length, ..
                } => Source::Jsonl(JsonlData::open(path)?, *max_length),
            };
            sources.push((source, weight));
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

    /// Sample number `index`.
    pub fn sample(&self, index: u64) -> Result<Sequence> {
        let seed = mix_seed(&[self.seed, index]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let total: f64 = self.sources.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random::<f64>() * total;
        let source = self
            .sources
            .iter()
            .find(|(_, w)| {
                pick -= w;
                pick < 0.0
            })
            .unwrap_or(self.sources.last().expect("at least one source"));
        match &source.0 {
            Source::Passkey {
                filler,
                min,
                max,
                digits,
                needles,
                depths,
                all_tokens,
                segments,
            } => {
                let mut gen = Passkey::new(&self.tokenizer, filler.clone());
                gen.digits = *digits;
                gen.needles = *needles;
                let mut whole = Sequence::default();
                for _ in 0..*segments {
                    let length = rng.random_range(*min..=*max);
                    let depth = depths.0 + (depths.1 - depths.0) * rng.random::<f64>();
                    let sample = gen.sample(length, depth, rng.random())?;
                    let part = if *all_tokens {
                        Sequence::language_model(sample.ids)
                    } else {
                        sample.sequence()
                    };
                    whole.tokens.extend(part.tokens);
                    whole.targets.extend(part.targets);
                }
                Ok(whole)
            }
            Source::Copy(min, max) => {
                let length = rng.random_range(*min..=*max);
                copy_sample(&self.tokenizer, length, rng.random())
            }
            Source::Text(corpus, length) => corpus.sample(&self.tokenizer, *length, rng.random()),
            Source::Jsonl(data, max_length) => {
                // Epoch-wise permutation i -> (a i + b) mod n with a coprime to n.
                let n = data.len() as u64;
                let epoch = index / n;
                let mut erng = rand::rngs::StdRng::seed_from_u64(mix_seed(&[self.seed, epoch, n]));
                let a = loop {
                    let a = erng.random_range(1..=n.max(2));
                    if gcd(a, n) == 1 {
                        break a;
                    }
                };
                let b = erng.random_range(0..n);
                let record = ((a as u128 * (index % n) as u128 + b as u128) % n as u128) as usize;
                data.record(record)?.sequence(&self.tokenizer, *max_length)
            }
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
