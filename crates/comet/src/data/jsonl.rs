//! Question-answering JSONL (`{"input": ..., "output": ...}`, SCROLLS / LongBench style) and
//! chat JSONL (`{"messages": [{"role", "content"}, ...]}`), loss on the answer only.
//! Only line offsets are kept in memory; each sample is read from disk when asked for.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::passkey::mix_seed;
use super::source::{one, DataSource, SourceSpec};
use crate::layout::Sequence;
use crate::tokenizer::{Message, Tokenizer};
use crate::{Error, Result};

/// `input`/`output` or chat JSONL in a seeded order, epoch after epoch (`kind: "jsonl"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSource {
    /// The file.
    pub path: PathBuf,
    /// Samples are cut to this many tokens (the start of the prompt goes first).
    pub max_length: usize,
    /// Share of the samples (relative).
    #[serde(default = "one")]
    pub weight: f64,
}

impl SourceSpec for JsonlSource {
    fn weight(&self) -> f64 {
        self.weight
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.path]
    }

    fn open(&self) -> Result<Box<dyn DataSource>> {
        Ok(Box::new((JsonlData::open(&self.path)?, self.max_length)))
    }
}

impl DataSource for (JsonlData, usize) {
    /// Every record once per epoch: a seeded permutation i -> (a i + b) mod n, a coprime to n.
    fn sample(
        &self,
        tokenizer: &Tokenizer,
        index: u64,
        seed: u64,
        _: &mut StdRng,
    ) -> Result<Sequence> {
        let n = self.0.len() as u64;
        let epoch = index / n;
        let mut erng = StdRng::seed_from_u64(mix_seed(&[seed, epoch, n]));
        let a = loop {
            let a = erng.random_range(1..=n.max(2));
            if gcd(a, n) == 1 {
                break a;
            }
        };
        let b = erng.random_range(0..n);
        let record = ((a as u128 * (index % n) as u128 + b as u128) % n as u128) as usize;
        self.0.record(record)?.sequence(tokenizer, self.1)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One record of a JSONL file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The conversation up to the answer (for `input`/`output` records: one user turn).
    pub prompt: Vec<Message>,
    /// The reference answer.
    pub answer: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Qa { input: String, output: OneOrMany },
    Chat { messages: Vec<Message> },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A JSONL file indexed by line offsets.
pub struct JsonlData {
    path: PathBuf,
    offsets: Vec<u64>,
}

impl JsonlData {
    /// Indexes the non-empty lines of `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = BufReader::new(file);
        let (mut offsets, mut at, mut line) = (Vec::new(), 0u64, Vec::new());
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                offsets.push(at);
            }
            at += n as u64;
        }
        if offsets.is_empty() {
            return Err(Error::Input(format!("{}: no records", path.display())));
        }
        Ok(Self {
            path: path.to_path_buf(),
            offsets,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Always false: an empty file is refused by [`Self::open`].
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Record `index` (several reference answers: the first).
    pub fn record(&self, index: usize) -> Result<Record> {
        let (record, _) = self.record_with_references(index)?;
        Ok(record)
    }

    /// Record `index` and all its reference answers.
    pub fn record_with_references(&self, index: usize) -> Result<(Record, Vec<String>)> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.offsets[index]))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut text = String::new();
        BufReader::new(file)
            .read_line(&mut text)
            .map_err(|e| Error::io(&self.path, e))?;
        let bad =
            |reason: String| Error::corrupt(&self.path, format!("record {}: {reason}", index + 1));
        let line: Line = serde_json::from_str(&text)
            .map_err(|_| bad("expected {\"input\", \"output\"} or {\"messages\": [...]}".into()))?;
        match line {
            Line::Qa { input, output } => {
                let refs = match output {
                    OneOrMany::One(s) => vec![s],
                    OneOrMany::Many(v) if !v.is_empty() => v,
                    OneOrMany::Many(_) => return Err(bad("`output` is an empty list".into())),
                };
                let prompt = vec![Message {
                    role: "user".into(),
                    content: input,
                }];
                Ok((
                    Record {
                        prompt,
                        answer: refs[0].clone(),
                    },
                    refs,
                ))
            }
            Line::Chat { mut messages } => match messages.pop() {
                Some(last) if last.role == "assistant" && !messages.is_empty() => {
                    let refs = vec![last.content.clone()];
                    Ok((
                        Record {
                            prompt: messages,
                            answer: last.content,
                        },
                        refs,
                    ))
                }
                _ => Err(bad(
                    "a chat record must end with an assistant message".into()
                )),
            },
        }
    }
}

impl Record {
    /// Prompt ids (chat template applied when the tokenizer has one, else the user turns
    /// joined by newlines) and answer ids.
    pub fn encode(&self, tokenizer: &Tokenizer) -> Result<(Vec<u32>, Vec<u32>)> {
        if tokenizer.chat_template.is_some() {
            let empty = serde_json::json!({});
            let prompt = tokenizer.apply_chat_template(&self.prompt, true, &empty)?;
            let mut full = self.prompt.clone();
            full.push(Message {
                role: "assistant".into(),
                content: self.answer.clone(),
            });
            let whole = tokenizer.apply_chat_template(&full, false, &empty)?;
            let prompt_ids = tokenizer.encode(&prompt, false)?;
            // The answer is what the full rendering adds after the prompt.
            let answer = whole.strip_prefix(prompt.as_str()).ok_or_else(|| {
                Error::Input("the chat template does not extend the prompt with the answer".into())
            })?;
            Ok((prompt_ids, tokenizer.encode(answer, false)?))
        } else {
            let prompt: Vec<&str> = self.prompt.iter().map(|m| m.content.as_str()).collect();
            let prompt = format!("{}\n", prompt.join("\n"));
            Ok((
                tokenizer.encode(&prompt, false)?,
                tokenizer.encode(&self.answer, false)?,
            ))
        }
    }

    /// The training sample: prompt and answer, loss on the answer only, the prompt's start
    /// cut so the whole fits `max_len` tokens (the answer is kept whole).
    pub fn sequence(&self, tokenizer: &Tokenizer, max_len: usize) -> Result<Sequence> {
        let (mut prompt, answer) = self.encode(tokenizer)?;
        if answer.is_empty() {
            return Err(Error::Input("a record has an empty answer".into()));
        }
        let keep = max_len.saturating_sub(answer.len());
        if prompt.len() > keep {
            prompt.drain(..prompt.len() - keep);
        }
        let start = prompt.len();
        prompt.extend(answer);
        Ok(Sequence::answer_only(prompt, start))
    }
}
