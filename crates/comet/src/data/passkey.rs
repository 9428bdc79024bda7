//! Passkey retrieval samples: a key hidden at a chosen depth of a haystack, asked for at
//! the end. Seeded: the same (seed, length, depth) always gives the same sample.

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::filler::Filler;
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

const TASK: &str = "There is an important info hidden inside a lot of irrelevant text. \
Find it and memorize them. I will quiz you about the important information there.";

/// Builds passkey samples for one tokenizer and haystack.
pub struct Passkey<'a> {
    tokenizer: &'a Tokenizer,
    filler: Filler,
    /// Digits of the key.
    pub digits: u32,
    /// Needles per sample (more than one: named keys, one of them asked for).
    pub needles: usize,
    /// With several needles, ask for every key in turn (the one at the sample's depth
    /// last), each answer scored: more key digits read through memory per token.
    pub ask_all: bool,
    /// Chunk size: place the (single) needle across a chunk boundary, at a token
    /// position rather than a sentence start, so no chunk holds it whole (the case
    /// a per-chunk memory write finds hardest).
    pub straddle: Option<usize>,
}

/// One passkey sample.
#[derive(Debug, Clone, PartialEq)]
pub struct PasskeySample {
    /// Prompt then answer, `length` tokens in all.
    pub ids: Vec<u32>,
    /// Every scored answer, in order; the asked-for key's is the last.
    pub answers: Vec<Range<usize>>,
    /// The key, as text.
    pub key: String,
    /// Token position of the (asked-for) needle's first token.
    pub needle_position: usize,
    /// Token position just past that needle.
    pub needle_end: usize,
    /// The needle's actual depth in the haystack, 0..1.
    pub depth: f64,
}

impl PasskeySample {
    /// Where the answer to the last question (the asked-for key) starts.
    pub fn answer_start(&self) -> usize {
        self.answers.last().map_or(self.ids.len(), |a| a.start)
    }

    /// The training sample: loss on the answer tokens only.
    pub fn sequence(&self) -> Sequence {
        Sequence::answers_only(self.ids.clone(), &self.answers)
    }
}

/// A seed for one cell/trial, mixed so neighbouring inputs give unrelated streams.
pub fn mix_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |h, &p| {
        let x = (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 31)
    })
}

/// Names that label the keys of multi-needle samples.
const NAMES: [&str; 40] = [
    "apple", "river", "tiger", "violin", "harbor", "candle", "falcon", "garden", "marble",
    "orchid", "pepper", "rocket", "saddle", "tunnel", "wizard", "anchor", "bishop", "cactus",
    "dragon", "engine", "forest", "glacier", "hammer", "island", "jacket", "kettle", "lemon",
    "magnet", "needle", "oyster", "parrot", "quartz", "rabbit", "salmon", "temple", "umbrella",
    "valley", "walnut", "yogurt", "zebra",
];

impl<'a> Passkey<'a> {
    /// A generator over `filler` with 5-digit keys and one needle.
    pub fn new(tokenizer: &'a Tokenizer, filler: Filler) -> Self {
        Self {
            tokenizer,
            filler,
            digits: 5,
            needles: 1,
            ask_all: false,
            straddle: None,
        }
    }

    /// A sample of exactly `length` tokens with the needle at `depth` (0 = start of the
    /// haystack, 1 = end), both drawn from `seed`. With several needles, each key is named
    /// ("the pass key of the falcon"), the others sit at random depths, and the question
    /// asks for the one at `depth`.
    pub fn sample(&self, length: usize, depth: f64, seed: u64) -> Result<PasskeySample> {
        if !(0.0..=1.0).contains(&depth) {
            return Err(Error::Input(format!("depth {depth} is outside 0..1")));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let parts = self.parts(depth, &mut rng)?;
        let needed = parts.task.len()
            + parts.needles.iter().map(Vec::len).sum::<usize>()
            + parts
                .questions
                .iter()
                .map(|(q, a)| q.len() + a.len())
                .sum::<usize>();
        let haystack = length.checked_sub(needed).ok_or_else(|| {
            Error::Input(format!(
                "a passkey sample needs more than {needed} tokens, {length} asked"
            ))
        })?;
        let sentences = self.filler.sentences(self.tokenizer, haystack, &mut rng)?.0;
        let mut at: Vec<usize> = parts
            .depths
            .iter()
            .map(|d| insertion_point(&sentences, haystack, *d))
            .collect();
        if let (Some(chunk), [needle]) = (self.straddle, &parts.needles[..]) {
            let start = parts.task.len();
            at[0] = straddle_point(start + at[0], needle.len(), chunk, &mut rng)
                .map_or(at[0], |p| p.saturating_sub(start).min(haystack));
        }
        let mut filler: Vec<u32> = sentences.concat();
        filler.truncate(haystack);
        // Needles in haystack order; ties keep needle order.
        let mut order: Vec<usize> = (0..at.len()).collect();
        order.sort_by_key(|&i| (at[i], i));
        let mut ids = parts.task;
        let (mut done, mut needle_position) = (0, 0);
        for i in order {
            ids.extend_from_slice(&filler[done..at[i]]);
            done = at[i];
            if i == 0 {
                needle_position = ids.len();
            }
            ids.extend_from_slice(&parts.needles[i]);
        }
        ids.extend_from_slice(&filler[done..]);
        let mut answers = Vec::with_capacity(parts.questions.len());
        for (query, answer) in &parts.questions {
            ids.extend_from_slice(query);
            answers.push(ids.len()..ids.len() + answer.len());
            ids.extend_from_slice(answer);
        }
        debug_assert_eq!(ids.len(), length);
        Ok(PasskeySample {
            ids,
            answers,
            key: parts.key,
            needle_position,
            needle_end: needle_position + parts.needles[0].len(),
            depth: if haystack == 0 {
                0.0
            } else {
                at[0] as f64 / haystack as f64
            },
        })
    }

    /// Keys, names and depths drawn from `rng`, and the encoded texts around the haystack.
    fn parts(&self, depth: f64, rng: &mut rand::rngs::StdRng) -> Result<Parts> {
        let low = 10u64.pow(self.digits - 1);
        let n = self.needles.clamp(1, NAMES.len());
        let mut names = NAMES.to_vec();
        if n > 1 {
            names.shuffle(rng);
        }
        // Needle 0 is the one asked for.
        let keys: Vec<String> = (0..n)
            .map(|_| rng.random_range(low..low * 10).to_string())
            .collect();
        let mut depths = vec![depth];
        depths.extend((1..n).map(|_| rng.random::<f64>()));
        let enc = |text: &str| self.tokenizer.encode(text, false);
        let label = |i: usize| {
            if n == 1 {
                String::new()
            } else {
                format!(" of the {}", names[i])
            }
        };
        let needles = (0..n)
            .map(|i| {
                let (key, of) = (&keys[i], label(i));
                enc(&format!(
                    " The pass key{of} is {key}. Remember it. {key} is the pass key{of}."
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // The asked-for needle (0) last; with `ask_all` the others first, shuffled.
        let mut asked: Vec<usize> = if self.ask_all {
            (1..n).collect()
        } else {
            vec![]
        };
        asked.shuffle(rng);
        asked.push(0);
        let questions = asked
            .iter()
            .map(|&i| {
                let of = label(i);
                let query = enc(&format!("\nWhat is the pass key{of}? The pass key{of} is"))?;
                Ok((query, enc(&format!(" {}", keys[i]))?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Parts {
            task: enc(TASK)?,
            questions,
            key: keys[0].clone(),
            needles,
            depths,
        })
    }
}

/// The texts of one sample around its haystack, encoded.
struct Parts {
    task: Vec<u32>,
    needles: Vec<Vec<u32>>,
    /// (question, answer) pairs in the order asked; the asked-for key's last.
    questions: Vec<(Vec<u32>, Vec<u32>)>,
    /// The asked-for key.
    key: String,
    /// Depth of each needle (the asked-for one first).
    depths: Vec<f64>,
}

/// A needle start near `position` that puts the boundary after `position`'s chunk inside
/// a `len`-token needle (None when a needle of one token cannot straddle).
fn straddle_point(position: usize, len: usize, chunk: usize, rng: &mut impl Rng) -> Option<usize> {
    let boundary = (position / chunk.max(1) + 1) * chunk.max(1);
    (len > 1).then(|| boundary - rng.random_range(1..len).min(boundary))
}

/// The sentence start closest to `depth` of a `haystack`-token filler (its end counts).
fn insertion_point(sentences: &[Vec<u32>], haystack: usize, depth: f64) -> usize {
    let target = depth * haystack as f64;
    let starts = sentences.iter().scan(0usize, |at, s| {
        let start = *at;
        *at += s.len();
        Some(start)
    });
    starts
        .take_while(|&start| start < haystack)
        .chain([haystack])
        .min_by(|a, b| {
            (*a as f64 - target)
                .abs()
                .total_cmp(&(*b as f64 - target).abs())
        })
        .expect("the haystack end is a candidate")
}
