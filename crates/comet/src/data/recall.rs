//! Cued recall over a haystack (`kind: "recall"`): a window of text, then a marker, the
//! first few tokens of a passage from earlier in the window (the cue), and the rest of that
//! passage, scored. Reading a passkey through memory is this task with a five-digit
//! passage; here every sample scores tens of tokens that only memory can bring (when the
//! passage lies in an earlier chunk), not five, so the entries learn to keep exact tokens
//! from far denser supervision.

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::filler::Filler;
use super::source::{one, DataSource, SourceSpec};
use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// What comes between the window and the cue.
pub const RECALL_MARKER: &str = "\n\nQuoted from the text above:";

/// Cued recall samples of `min_length..=max_length` tokens over a haystack file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallData {
    /// Shortest sample, tokens.
    pub min_length: usize,
    /// Longest sample, tokens.
    pub max_length: usize,
    /// Haystack text file.
    pub haystack: PathBuf,
    /// Tokens of the repeated passage, cue included.
    #[serde(default = "default_span")]
    pub span: usize,
    /// Fewest cue tokens (given, not scored).
    #[serde(default = "default_min_cue")]
    pub min_cue: usize,
    /// Most cue tokens.
    #[serde(default = "default_max_cue")]
    pub max_cue: usize,
    /// The passage starts at a sentence whose depth in the window is uniform in
    /// `min_depth..=max_depth`.
    #[serde(default)]
    pub min_depth: f64,
    /// See `min_depth`.
    #[serde(default = "one")]
    pub max_depth: f64,
    /// Share of the samples drawn from this source (relative).
    #[serde(default = "one")]
    pub weight: f64,
}

fn default_span() -> usize {
    32
}

fn default_min_cue() -> usize {
    4
}

fn default_max_cue() -> usize {
    12
}

impl RecallData {
    fn check(&self) -> Result<()> {
        let (min, max, span) = (self.min_length, self.max_length, self.span);
        let (cue_lo, cue_hi) = (self.min_cue, self.max_cue);
        if !(1 <= cue_lo && cue_lo <= cue_hi && cue_hi < span && 4 * span <= min && min <= max) {
            return Err(Error::Input(format!(
                "recall data: need 1 <= min_cue <= max_cue < span, 4 * span <= min_length <= max_length, got cue {cue_lo}..={cue_hi}, span {span}, lengths {min}, {max}"
            )));
        }
        let (lo, hi) = (self.min_depth, self.max_depth);
        if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
            return Err(Error::Input(format!(
                "recall data: need 0 <= min_depth <= max_depth <= 1, got {lo}, {hi}"
            )));
        }
        Ok(())
    }
}

impl SourceSpec for RecallData {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.haystack]
    }

    fn open(&self) -> Result<Box<dyn DataSource>> {
        self.check()?;
        Ok(Box::new((self.clone(), Filler::corpus(&self.haystack)?)))
    }
}

impl DataSource for (RecallData, Filler) {
    fn sample(&self, tokenizer: &Tokenizer, _: u64, _: u64, rng: &mut StdRng) -> Result<Sequence> {
        let (config, filler) = self;
        let length = rng.random_range(config.min_length..=config.max_length);
        let marker = tokenizer.encode(RECALL_MARKER, false)?;
        let window = length.saturating_sub(config.span + marker.len());
        let sentences = filler.sentences(tokenizer, window + config.span, rng)?.0;
        // Sentence starts in the window where a whole passage fits before its end.
        let mut starts = Vec::new();
        let mut at = 0;
        for s in &sentences {
            if at + config.span <= window {
                starts.push(at);
            }
            at += s.len();
        }
        let mut text = sentences.concat();
        text.truncate(window);
        let depth = config.min_depth + (config.max_depth - config.min_depth) * rng.random::<f64>();
        let start = starts
            .get(((starts.len() as f64 * depth) as usize).min(starts.len().saturating_sub(1)))
            .copied()
            .ok_or_else(|| Error::Input(format!("{}: no sentence", config.haystack.display())))?;
        let passage = text[start..start + config.span].to_vec();
        let cue = rng.random_range(config.min_cue..=config.max_cue);
        text.extend(marker);
        let answer = text.len() + cue..text.len() + config.span;
        text.extend(passage);
        Ok(Sequence::answers_only(text, &[answer]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_scored_tail_repeats_a_passage_of_the_window() {
        let dir = std::env::temp_dir().join(format!("comet-recall-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let haystack = dir.join("hay.txt");
        let text: String = (0..400)
            .map(|i| format!("Sentence number {i} says something different. "))
            .collect();
        std::fs::write(&haystack, text).unwrap();
        let config = RecallData {
            min_length: 200,
            max_length: 300,
            haystack,
            span: 20,
            min_cue: 4,
            max_cue: 8,
            min_depth: 0.0,
            max_depth: 1.0,
            weight: 1.0,
        };
        let source = config.open().unwrap();
        let tok = crate::tokenizer::byte_level().unwrap();
        for seed in 0..8 {
            let mut rng = StdRng::seed_from_u64(seed);
            let seq = source.sample(&tok, 0, 0, &mut rng).unwrap();
            let n = seq.tokens.len();
            assert!((200..=300).contains(&n), "{n}");
            let passage = &seq.tokens[n - 20..];
            let window = &seq.tokens[..n - 20];
            assert!(window.windows(20).any(|w| w == passage), "seed {seed}");
            let scored: Vec<usize> = (0..n).filter(|&i| seq.targets[i].is_some()).collect();
            // Position i predicts token i + 1: the passage after its cue is scored.
            assert!((12..=16).contains(&scored.len()), "{}", scored.len());
            assert_eq!(*scored.last().unwrap(), n - 2);
            assert!(scored.windows(2).all(|w| w[1] == w[0] + 1));
        }
        let bad = RecallData {
            span: 100,
            ..config
        };
        assert!(bad.open().is_err());
    }
}
