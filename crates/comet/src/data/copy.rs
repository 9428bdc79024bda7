//! Copying drills: random strings of letters and digits, each followed by a separator and
//! the same string again, with loss on the copies, packed into one sample of a given length.
//! Every copied token is a retrieval target, so a model trained from scratch learns to look
//! things up (induction) far sooner than from passkey answers alone; 62 symbols make most
//! tokens unique within a string, the easy case for matching what came before.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::source::{one, DataSource, SourceSpec};
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Copying drills packed into samples of `min_length..=max_length` tokens (`kind: "copy"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyData {
    /// Shortest sample, tokens.
    pub min_length: usize,
    /// Longest sample, tokens.
    pub max_length: usize,
    /// Share of the samples (relative).
    #[serde(default = "one")]
    pub weight: f64,
}

impl SourceSpec for CopyData {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn open(&self) -> Result<Box<dyn DataSource>> {
        let (min, max) = (self.min_length, self.max_length);
        if min == 0 || min > max {
            return Err(Error::Input(format!(
                "copy data: need 0 < min_length <= max_length, got {min}, {max}"
            )));
        }
        Ok(Box::new(self.clone()))
    }
}

impl DataSource for CopyData {
    fn sample(&self, tokenizer: &Tokenizer, _: u64, _: u64, rng: &mut StdRng) -> Result<Sequence> {
        let length = rng.random_range(self.min_length..=self.max_length);
        copy_sample(tokenizer, length, rng.random())
    }
}

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Characters of one drill's string.
const DRILL: std::ops::RangeInclusive<usize> = 8..=64;

/// Drills packed into exactly `length` tokens, seeded; loss on the copied strings.
pub fn copy_sample(tokenizer: &Tokenizer, length: usize, seed: u64) -> Result<Sequence> {
    if length == 0 {
        return Err(Error::Input(
            "a copy sample needs at least one token".into(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tokens = Vec::with_capacity(length + 2 * DRILL.end());
    let mut targets = Vec::with_capacity(tokens.capacity());
    while tokens.len() < length {
        let characters = rng.random_range(DRILL);
        let text: String = (0..characters)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        let question = tokenizer.encode(&format!("{text} = "), false)?;
        let copy = tokenizer.encode(&format!("{text}\n"), false)?;
        // Targets are the next token: the separator's last token predicts the copy's first.
        targets.extend(std::iter::repeat_n(None, question.len() - 1));
        targets.extend(copy.iter().map(|&t| Some(t)));
        targets.push(None);
        tokens.extend(question);
        tokens.extend(copy);
    }
    tokens.truncate(length);
    targets.truncate(length);
    // The last kept token's target lies beyond the sample.
    if let Some(last) = targets.last_mut() {
        *last = None;
    }
    Ok(Sequence { tokens, targets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drills_repeat_their_string_and_only_copies_are_scored() {
        let tok = crate::tokenizer::byte_level().unwrap();
        let seq = copy_sample(&tok, 300, 3).unwrap();
        assert_eq!((seq.tokens.len(), seq.targets.len()), (300, 300));
        let text = tok.decode(&seq.tokens).unwrap();
        let complete: Vec<&str> = text.lines().collect();
        for line in &complete[..complete.len() - 1] {
            let (a, b) = line.split_once(" = ").unwrap();
            assert_eq!(a, b);
        }
        // Scored: every copied character and each copy's newline, each predicted from the
        // token before it.
        for (i, t) in seq.targets.iter().enumerate() {
            if let Some(t) = t {
                assert_eq!(*t, seq.tokens[i + 1]);
                assert!(text[..=i].contains(" = "));
            }
        }
        let scored = seq.targets.iter().filter(|t| t.is_some()).count();
        assert!(scored > 100, "{scored}");
        assert_eq!(seq, copy_sample(&tok, 300, 3).unwrap());
        assert_ne!(seq, copy_sample(&tok, 300, 4).unwrap());
    }
}
