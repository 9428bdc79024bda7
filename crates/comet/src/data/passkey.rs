//! Passkey retrieval samples: a key hidden at a chosen depth of a haystack, asked for at
//! the end. Seeded: the same (seed, length, depth) always gives the same sample.

use rand::{Rng, SeedableRng};

use super::filler::Filler;
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

const TASK: &str = "There is an important info hidden inside a lot of irrelevant text. \
Find it and memorize them. I will quiz you about the important information there.";
const QUERY: &str = "\nWhat is the pass key? The pass key is";

/// Builds passkey samples for one tokenizer and haystack.
pub struct Passkey<'a> {
    tokenizer: &'a Tokenizer,
    filler: Filler,
    /// Digits of the key.
    pub digits: u32,
}

/// One passkey sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeySample {
    /// Prompt then answer, `length` tokens in all.
    pub ids: Vec<u32>,
    /// Where the answer (the key after the query) starts.
    pub answer_start: usize,
    /// The key, as text.
    pub key: String,
    /// Token position of the needle's first token.
    pub needle_position: usize,
    /// The needle's actual depth in the haystack, 0..1.
    pub depth: f64,
}

impl PasskeySample {
    /// The training sample: loss on the answer tokens only.
    pub fn sequence(&self) -> Sequence {
        Sequence::answer_only(self.ids.clone(), self.answer_start)
    }
}

/// A seed for one cell/trial, mixed so neighbouring inputs give unrelated streams.
pub fn mix_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |h, &p| {
        let x = (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 31)
    })
}

impl<'a> Passkey<'a> {
    /// A generator over `filler` with 5-digit keys.
    pub fn new(tokenizer: &'a Tokenizer, filler: Filler) -> Self {
        Self {
            tokenizer,
            filler,
            digits: 5,
        }
    }

    /// A sample of exactly `length` tokens with the needle at `depth` (0 = start of the
    /// haystack, 1 = end), both drawn from `seed`.
    pub fn sample(&self, length: usize, depth: f64, seed: u64) -> Result<PasskeySample> {
        if !(0.0..=1.0).contains(&depth) {
            return Err(Error::Input(format!("depth {depth} is outside 0..1")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let low = 10u64.pow(self.digits - 1);
        let key = rng.random_range(low..low * 10).to_string();
        let enc = |text: &str| self.tokenizer.encode(text, false);
        let task = enc(TASK)?;
        let needle = enc(&format!(
            " The pass key is {key}. Remember it. {key} is the pass key."
        ))?;
        let query = enc(QUERY)?;
        let answer = enc(&format!(" {key}"))?;
        let fixed = task.len() + needle.len() + query.len() + answer.len();
        let haystack = length.checked_sub(fixed).ok_or_else(|| {
            Error::Input(format!(
                "a passkey sample needs more than {fixed} tokens, {length} asked"
            ))
        })?;
        let sentences = self.filler.sentences(self.tokenizer, haystack, &mut rng)?.0;
        // Insert at the sentence start closest to the requested depth (the haystack's end
        // counts as one).
        let target = depth * haystack as f64;
        let starts = sentences.iter().scan(0usize, |at, s| {
            let start = *at;
            *at += s.len();
            Some(start)
        });
        let at = starts
            .take_while(|&start| start < haystack)
            .chain([haystack])
            .min_by(|a, b| {
                (*a as f64 - target)
                    .abs()
                    .total_cmp(&(*b as f64 - target).abs())
            })
            .expect("the haystack end is a candidate");
        let mut filler: Vec<u32> = sentences.concat();
        filler.truncate(haystack);
        let mut ids = task;
        let needle_position = ids.len() + at;
        ids.extend_from_slice(&filler[..at]);
        ids.extend_from_slice(&needle);
        ids.extend_from_slice(&filler[at..]);
        ids.extend_from_slice(&query);
        let answer_start = ids.len();
        ids.extend_from_slice(&answer);
        debug_assert_eq!(ids.len(), length);
        Ok(PasskeySample {
            ids,
            answer_start,
            key,
            needle_position,
            depth: if haystack == 0 {
                0.0
            } else {
                at as f64 / haystack as f64
            },
        })
    }
}
