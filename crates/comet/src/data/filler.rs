//! Haystack text for needle tasks: a repeated filler passage or seeded windows of a real
//! corpus, read from disk on demand (never the whole corpus in memory).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// The classic passkey filler.
pub const DEFAULT_FILLER: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/// Where haystack sentences come from.
#[derive(Debug, Clone)]
pub enum Filler {
    /// One passage repeated.
    Repeated(String),
    /// A UTF-8 text file, read in windows at seeded offsets.
    Corpus {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
    },
}

/// Tokenized sentences, each starting where a needle may be inserted.
pub struct Sentences(pub Vec<Vec<u32>>);

impl Filler {
    /// A corpus file, checked to exist and hold text.
    pub fn corpus(path: &Path) -> Result<Self> {
        let bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if bytes < 1024 {
            return Err(Error::Input(format!(
                "{}: a haystack needs at least 1 KiB of text",
                path.display()
            )));
        }
        Ok(Self::Corpus {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// At least `tokens` tokens of filler, as sentences.
    pub fn sentences(
        &self,
        tokenizer: &Tokenizer,
        tokens: usize,
        rng: &mut impl Rng,
    ) -> Result<Sentences> {
        let mut out = Vec::new();
        let mut count = 0;
        match self {
            Self::Repeated(text) => {
                let pieces = split_sentences(text)
                    .into_iter()
                    .map(|s| tokenizer.encode(&format!(" {s}"), false))
                    .collect::<Result<Vec<_>>>()?;
                if pieces.iter().all(|p| p.is_empty()) {
                    return Err(Error::Input("the filler text is empty".into()));
                }
                for piece in pieces.iter().cycle() {
                    if count >= tokens {
                        break;
                    }
                    count += piece.len();
                    out.push(piece.clone());
                }
            }
            Self::Corpus { path, bytes } => {
                // Enough bytes for `tokens` tokens at a pessimistic 2 bytes per token.
                let window = (tokens as u64 * 8 + 4096).min(*bytes);
                let mut offset = rng.random_range(0..=bytes - window);
                while count < tokens {
                    let text = read_window(path, offset, window)?;
                    // The first piece may be a sentence's tail: skip it.
                    for s in split_sentences(&text).into_iter().skip(1) {
                        if count >= tokens {
                            break;
                        }
                        let ids = tokenizer.encode(&format!(" {s}"), false)?;
                        count += ids.len();
                        out.push(ids);
                    }
                    offset = (offset + window) % (bytes - window + 1);
                }
            }
        }
        Ok(Sentences(out))
    }
}

/// Reads `len` bytes at `offset` as text (invalid UTF-8 at the window edges is dropped).
fn read_window(path: &Path, offset: u64, len: u64) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(String::from_utf8_lossy(&buf).replace('\u{FFFD}', ""))
}

/// Sentences of `text` (split after `.`, `!`, `?`), whitespace collapsed, empty ones dropped.
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        if word.ends_with(['.', '!', '?']) {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sentences_split_after_terminal_punctuation() {
        let s = super::split_sentences("One two.  Three?\nFour! five");
        assert_eq!(s, ["One two.", "Three?", "Four!", "five"]);
    }
}
