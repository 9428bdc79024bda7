//! The passkey grid: input lengths x needle depths, N seeded trials per cell, exact match.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::comet::{check_batch, CometModel};
use crate::data::{mix_seed, Passkey};
use crate::layout::Sequence;
use crate::model::Llm;
use crate::{Error, Result};

/// Which cells and how many trials.
#[derive(Debug, Clone)]
pub struct PasskeyGrid {
    /// Input lengths in tokens.
    pub lengths: Vec<usize>,
    /// Needle depths, 0 (start) .. 1 (end).
    pub depths: Vec<f64>,
    /// Trials per cell.
    pub trials: usize,
    /// Seed of the samples (trial t of a cell is the same for every model).
    pub seed: u64,
    /// Trials read together in one batch.
    pub batch_size: usize,
}

/// Accuracy of one (length, depth) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyCell {
    /// Input length in tokens.
    pub length: usize,
    /// Requested needle depth.
    pub depth: f64,
    /// Trials run.
    pub trials: usize,
    /// Trials whose whole key was reproduced.
    pub correct: usize,
    /// correct / trials.
    pub accuracy: f64,
    /// Share of the key's tokens that are the arg-max given the true tokens before them
    /// (partial credit: shows retrieval forming before whole keys come out right).
    #[serde(default)]
    pub token_accuracy: f64,
    /// Trials whose needle (some of it) sits in the question's own chunk: answerable
    /// without memory, so counted apart below.
    #[serde(default)]
    pub in_question_chunk: usize,
    /// Trials whose needle only memory can bring to the question.
    #[serde(default)]
    pub memory_trials: usize,
    /// Of those, the ones answered exactly.
    #[serde(default)]
    pub memory_correct: usize,
    /// Per key token (the answer's leading space first), the share of trials that got it
    /// right: shows where keys break (finding the key, or copying its later digits).
    #[serde(default)]
    pub position_accuracy: Vec<f64>,
    /// Seconds the cell took to read.
    #[serde(default)]
    pub seconds: f64,
    /// The trials whose key came out wrong, to see where failures come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub misses: Vec<PasskeyMiss>,
}

/// One trial whose key came out wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyMiss {
    /// Trial index in its cell (with the grid's seed, regenerates the sample).
    pub trial: u64,
    /// Token position of the needle's first token.
    pub needle_position: usize,
    /// Token position just past the needle.
    pub needle_end: usize,
    /// Whether the needle ends in the question's own chunk.
    pub in_question_chunk: bool,
    /// Key tokens right, in order ('1' right, '0' wrong; the leading space first).
    pub tokens_right: String,
}

/// What reads the samples: CoMeT (chunk by chunk, through memory) or the plain base
/// model attending to the whole input at once (the full-attention reference).
pub enum Reader<'a, B: Backend> {
    /// The memory model.
    Memory(&'a CometModel<B>),
    /// Full attention over the whole input (no chunks, no memory).
    FullAttention(&'a Llm<B>),
}

impl<B: Backend> Reader<'_, B> {
    /// Text tokens per chunk; the whole input is one chunk under full attention.
    fn chunk_size(&self) -> usize {
        match self {
            Self::Memory(model) => model.comet.chunk_size,
            Self::FullAttention(_) => usize::MAX,
        }
    }

    fn matches(&self, batch: &[Sequence]) -> Result<Vec<TargetMatch>> {
        match self {
            Self::Memory(model) => greedy_matches(model, batch),
            Self::FullAttention(llm) => full_attention_matches(llm, batch),
        }
    }
}

/// How much of one sample's target greedy decoding reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetMatch {
    /// Target tokens that are the arg-max given the true tokens before them.
    pub correct: usize,
    /// Target tokens.
    pub total: usize,
    /// Bit `i` set when target token `i` (of the first 64) is right.
    pub hits: u64,
}

impl TargetMatch {
    /// Whether greedy decoding reproduces the whole target.
    pub fn exact(&self) -> bool {
        self.correct == self.total
    }

    /// Counts one target token, the `total`-th.
    fn record(&mut self, right: bool) {
        if right && self.total < 64 {
            self.hits |= 1 << self.total;
        }
        self.total += 1;
        self.correct += usize::from(right);
    }
}

/// For each sample, how many of its target tokens greedy decoding reproduces.
///
/// Greedy decoding emits the target exactly when every target token is the arg-max given
/// the targets before it, so the teacher-forced training forward decides it without a
/// decoding loop and for a whole batch at once (same layout as decoding, see `generate`).
pub fn greedy_matches<B: Backend>(
    model: &CometModel<B>,
    batch: &[Sequence],
) -> Result<Vec<TargetMatch>> {
    check_batch(batch)?;
    let mut matches = vec![TargetMatch::default(); batch.len()];
    let builder = model.layout_builder();
    for chunk in model.reader(batch, &builder, model.empty_state(batch.len()), false) {
        let layout = &chunk.layout;
        if layout.targets.iter().any(|&t| t >= 0) {
            let n = layout.text_positions.len();
            let predicted = model
                .text_logits(layout, chunk.hidden)
                .argmax(2)
                .into_data();
            let predicted = predicted.iter::<i64>();
            for (i, (&target, p)) in layout.targets.iter().zip(predicted).enumerate() {
                if target >= 0 {
                    matches[i / n].record(target == p);
                }
            }
        }
    }
    Ok(matches)
}

/// [`greedy_matches`] for the plain base model reading each sample whole (equal lengths).
pub fn full_attention_matches<B: Backend>(
    llm: &Llm<B>,
    batch: &[Sequence],
) -> Result<Vec<TargetMatch>> {
    check_batch(batch)?;
    let len = batch[0].tokens.len();
    if batch.iter().any(|s| s.tokens.len() != len) {
        return Err(Error::Input(
            "full-attention scoring needs samples of one length".into(),
        ));
    }
    let device = llm.embed_tokens.weight.device();
    let ids: Vec<i64> = batch
        .iter()
        .flat_map(|s| s.tokens.iter().map(|&t| t as i64))
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch.len(), len]), &device);
    // Only positions with a target need the output head (a 49k vocabulary).
    let first = batch
        .iter()
        .filter_map(|s| s.targets.iter().position(Option::is_some))
        .min()
        .unwrap_or(len - 1);
    let hidden = llm.forward_normed(ids, None);
    let d = hidden.dims()[2];
    let predicted = llm
        .logits(hidden.slice([0..batch.len(), first..len, 0..d]))
        .argmax(2)
        .into_data();
    let predicted: Vec<i64> = predicted.iter::<i64>().collect();
    let span = len - first;
    Ok(batch
        .iter()
        .enumerate()
        .map(|(b, s)| {
            let mut m = TargetMatch::default();
            for (i, target) in s.targets.iter().enumerate().skip(first) {
                if let Some(t) = target {
                    m.record(*t as i64 == predicted[b * span + i - first]);
                }
            }
            m
        })
        .collect())
}

/// Runs the grid; `on_batch(trials_done, tokens_read)` after every batch.
pub fn evaluate_passkey<B: Backend>(
    reader: &Reader<'_, B>,
    passkey: &Passkey,
    grid: &PasskeyGrid,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<PasskeyCell>> {
    let chunk = reader.chunk_size();
    let mut cells = Vec::new();
    for &length in &grid.lengths {
        for &depth in &grid.depths {
            let mut cell = PasskeyCell {
                length,
                depth,
                trials: grid.trials,
                correct: 0,
                accuracy: 0.0,
                token_accuracy: 0.0,
                in_question_chunk: 0,
                memory_trials: 0,
                memory_correct: 0,
                position_accuracy: Vec::new(),
                misses: Vec::new(),
                seconds: 0.0,
            };
            let start = std::time::Instant::now();
            let mut position_hits = Vec::<usize>::new();
            let mut keys = TargetMatch::default();
            let trials: Vec<u64> = (0..grid.trials as u64).collect();
            for group in trials.chunks(grid.batch_size.max(1)) {
                let samples = group
                    .iter()
                    .map(|&t| {
                        let seed = mix_seed(&[grid.seed, length as u64, depth.to_bits(), t]);
                        passkey.sample(length, depth, seed)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let batch: Vec<Sequence> = samples.iter().map(|s| s.sequence()).collect();
                let matches = reader.matches(&batch)?;
                for ((sample, m), &trial) in samples.iter().zip(matches).zip(group) {
                    // The question ends at the token before the answer; a needle ending in
                    // that token's chunk is visible to it without memory.
                    let in_context =
                        (sample.needle_end - 1) / chunk >= (sample.answer_start() - 1) / chunk;
                    cell.correct += usize::from(m.exact());
                    cell.in_question_chunk += usize::from(in_context);
                    if !in_context {
                        cell.memory_trials += 1;
                        cell.memory_correct += usize::from(m.exact());
                    }
                    if !m.exact() {
                        cell.misses.push(PasskeyMiss {
                            trial,
                            needle_position: sample.needle_position,
                            needle_end: sample.needle_end,
                            in_question_chunk: in_context,
                            tokens_right: (0..m.total.min(64))
                                .map(|i| if m.hits >> i & 1 == 1 { '1' } else { '0' })
                                .collect(),
                        });
                    }
                    keys.correct += m.correct;
                    keys.total += m.total;
                    position_hits.resize(position_hits.len().max(m.total.min(64)), 0);
                    for (i, hits) in position_hits.iter_mut().enumerate() {
                        *hits += usize::from(m.hits >> i & 1 == 1);
                    }
                }
                on_batch(group.len(), group.len() * length);
            }
            cell.seconds = start.elapsed().as_secs_f64();
            cell.accuracy = cell.correct as f64 / grid.trials.max(1) as f64;
            cell.token_accuracy = keys.correct as f64 / keys.total.max(1) as f64;
            cell.position_accuracy = position_hits
                .iter()
                .map(|&h| h as f64 / grid.trials.max(1) as f64)
                .collect();
            cells.push(cell);
        }
    }
    Ok(cells)
}
