//! Copying drills: a random digit string, a separator, the same string again, with loss on
//! the copy. Every copied token is a retrieval target, so a model trained from scratch
//! learns to look things up (induction) far sooner than from passkey answers alone.

use rand::{Rng, SeedableRng};

use crate::layout::Sequence;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// A copying sample of `characters` random digits (in groups of 5), seeded.
pub fn copy_sample(tokenizer: &Tokenizer, characters: usize, seed: u64) -> Result<Sequence> {
    if characters == 0 {
        return Err(Error::Input(
            "a copy sample needs at least one character".into(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let text: String = (0..characters)
        .map(|i| {
            if i % 6 == 5 {
                ' '
            } else {
                char::from(b'0' + rng.random_range(0..10u8))
            }
        })
        .collect();
    let first = tokenizer.encode(&format!("{text}\nAgain: "), false)?;
    let copy = tokenizer.encode(&text, false)?;
    let start = first.len();
    Ok(Sequence::answer_only([first, copy].concat(), start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_repeats_the_string_and_only_it_is_scored() {
        let tok = crate::tokenizer::byte_level().unwrap();
        let seq = copy_sample(&tok, 11, 3).unwrap();
        let text = tok.decode(&seq.tokens).unwrap();
        let (a, b) = text.split_once("\nAgain: ").unwrap();
        assert_eq!((a, a.len()), (b, 11));
        assert_eq!(a.as_bytes()[5], b' ');
        let scored = seq.targets.iter().filter(|t| t.is_some()).count();
        assert_eq!(scored, 11);
        assert_eq!(seq, copy_sample(&tok, 11, 3).unwrap());
        assert_ne!(seq, copy_sample(&tok, 11, 4).unwrap());
    }
}
