//! Chunk layout: from token ids to what the model reads per chunk.
//!
//! ```text
//! [ G slots (m) | T slots (queue) | x1..xs <c> xs+1..x2s <c> ... | R1..Rm ]
//! ```
//! Geometry (where slots, text, compression and readout tokens sit) is shared by the
//! batch; per-sample differences (shorter texts, shorter queues) are padding, masked as
//! keys and skipped by the position ids, so a padded sample computes what it would alone.

mod tokens;

pub use tokens::SpecialTokens;

use crate::memory::{CometConfig, TempSource};
use crate::{Error, Result};

/// Rejects an empty input or an id outside a vocabulary of `vocab` tokens.
pub fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::Input("the input has no tokens".into()));
    }
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::Input(format!(
            "token id {bad} is outside the vocabulary (size {vocab})"
        )));
    }
    Ok(())
}

/// One training or inference sample: text tokens and, per token, the token it must predict.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sequence {
    /// Text token ids.
    pub tokens: Vec<u32>,
    /// `targets[i]`: the token predicted at position i (`None`: no loss there).
    pub targets: Vec<Option<u32>>,
}

impl Sequence {
    /// Language modelling: every token predicts the next one, on the raw text stream.
    pub fn language_model(tokens: Vec<u32>) -> Self {
        let targets = tokens
            .iter()
            .skip(1)
            .map(|&t| Some(t))
            .chain([None])
            .collect();
        Self { tokens, targets }
    }

    /// Only the tokens from `answer_start` on are predicted (loss on the answer only).
    pub fn answer_only(tokens: Vec<u32>, answer_start: usize) -> Self {
        let answer = answer_start..tokens.len();
        Self::answers_only(tokens, std::slice::from_ref(&answer))
    }

    /// Only the tokens inside `answers` (ranges of token positions) are predicted.
    pub fn answers_only(tokens: Vec<u32>, answers: &[std::ops::Range<usize>]) -> Self {
        let mut seq = Self::language_model(tokens);
        for (i, t) in seq.targets.iter_mut().enumerate() {
            // Position i predicts token i + 1.
            if !answers.iter().any(|a| a.contains(&(i + 1))) {
                *t = None;
            }
        }
        seq
    }
}

/// Which slots a chunk carries, given the memory it starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryShape {
    /// Whether a global state exists (false before the first chunk).
    pub has_global: bool,
    /// Real temporary entries per sample.
    pub queue_lengths: Vec<usize>,
}

/// One chunk of a batch, laid out for the model. Vectors over the batch are sample-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkLayout {
    /// Samples.
    pub batch: usize,
    /// Length of the laid-out chunk.
    pub len: usize,
    /// Global slots at `0..global_slots` (0 on the first chunk).
    pub global_slots: usize,
    /// Temporary slots at `global_slots..global_slots + temp_slots`.
    pub temp_slots: usize,
    /// Input ids `[batch * len]` (slots hold the placeholder; they are overwritten anyway).
    pub input_ids: Vec<u32>,
    /// Layout positions of the text tokens, in order (`[text]`).
    pub text_positions: Vec<usize>,
    /// Layout positions whose hidden state becomes a temporary-memory entry (`[k]`): the
    /// compression tokens, or with [`TempSource::TextInput`] the text tokens closing each
    /// stride (no compression token is laid out then).
    pub entry_positions: Vec<usize>,
    /// First readout position; readouts fill `readout_start..readout_start + m`.
    pub readout_start: Option<usize>,
    /// Whether each position holds something real (`[batch * len]`); padding is never a key.
    pub real: Vec<bool>,
    /// Chunk-local RoPE positions `[batch * len]`, counting real tokens only.
    pub position_ids: Vec<i64>,
    /// Target per text position `[batch * text]`, -1 where no loss.
    pub targets: Vec<i64>,
    /// Real compression tokens per sample (the queue grows by this much).
    pub compression_counts: Vec<usize>,
    /// Samples with text in this chunk (others keep their memory unchanged).
    pub active: Vec<bool>,
    /// Text tokens of each sample in this chunk.
    pub text_counts: Vec<usize>,
}

impl ChunkLayout {
    /// Memory positions at the front of the chunk (global, then temporary slots): they only
    /// lend keys and values to the layers.
    pub fn memory_slots(&self) -> usize {
        self.global_slots + self.temp_slots
    }

    /// Whether any position is padding (else plain causal attention applies).
    pub fn has_padding(&self) -> bool {
        self.real.iter().any(|r| !r)
    }

    /// The attention mask `[batch * len * len]`, true = hidden: causal, padding keys hidden,
    /// each position always sees itself (so no row is fully masked).
    pub fn mask(&self) -> Vec<bool> {
        let n = self.len;
        let mut mask = vec![true; self.batch * n * n];
        for b in 0..self.batch {
            for q in 0..n {
                for k in 0..=q {
                    mask[(b * n + q) * n + k] = !(self.real[b * n + k] || k == q);
                }
            }
        }
        mask
    }

    /// Real temporary-memory entries per sample after this chunk, from those before it.
    pub fn queue_lengths_after(&self, before: &[usize], budget: usize) -> Vec<usize> {
        before
            .iter()
            .zip(&self.compression_counts)
            .map(|(q, k)| (q + k).min(budget))
            .collect()
    }

    /// Queue positions to keep after this chunk: for each sample, the newest `budget` of
    /// `[old queue (temp_slots) ; new entries (k)]`, as indices into that concatenation,
    /// padded with 0 to the longest new queue. Returns `(indices [batch * slots], slots)`.
    pub fn queue_update(&self, budget: usize, queue_lengths: &[usize]) -> (Vec<i64>, usize) {
        let kept: Vec<Vec<i64>> = (0..self.batch)
            .map(|b| {
                let all: Vec<i64> = (0..queue_lengths[b] as i64)
                    .chain(
                        (0..self.compression_counts[b] as i64).map(|j| self.temp_slots as i64 + j),
                    )
                    .collect();
                all[all.len().saturating_sub(budget)..].to_vec()
            })
            .collect();
        let slots = kept.iter().map(Vec::len).max().unwrap_or(0);
        let indices = kept
            .into_iter()
            .flat_map(|mut v| {
                v.resize(slots, 0);
                v
            })
            .collect();
        (indices, slots)
    }
}

/// Splits a batch of sequences into chunk layouts.
#[derive(Debug, Clone)]
pub struct LayoutBuilder {
    /// Memory sizes and switches.
    pub config: CometConfig,
    /// Ids of the added special tokens.
    pub special: SpecialTokens,
}

impl LayoutBuilder {
    /// A builder for `config` with the given special-token ids.
    pub fn new(config: CometConfig, special: SpecialTokens) -> Self {
        Self { config, special }
    }

    /// Lays out every chunk of `batch`, starting from memory of shape `start`.
    /// `readouts_on_last`: whether the final chunk carries readouts (to absorb it into
    /// memory) or not (training's last chunk, inference's final chunk before decoding).
    pub fn chunks(
        &self,
        batch: &[Sequence],
        start: MemoryShape,
        readouts_on_last: bool,
    ) -> Vec<ChunkLayout> {
        self.iter(batch, start, readouts_on_last).collect()
    }

    /// Like [`Self::chunks`], one chunk at a time: host memory stays constant however long
    /// the input.
    pub fn iter<'a>(
        &'a self,
        batch: &'a [Sequence],
        start: MemoryShape,
        readouts_on_last: bool,
    ) -> impl ExactSizeIterator<Item = ChunkLayout> + 'a {
        let c = &self.config;
        let longest = batch.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
        let n_chunks = longest.div_ceil(c.chunk_size);
        let mut shape = start;
        (0..n_chunks).map(move |t| {
            let last = t + 1 == n_chunks;
            let layout = self.chunk(batch, t * c.chunk_size, &shape, !last || readouts_on_last);
            shape = MemoryShape {
                has_global: shape.has_global || layout.readout_start.is_some(),
                queue_lengths: layout.queue_lengths_after(&shape.queue_lengths, c.temp_budget),
            };
            layout
        })
    }

    /// The layout of the chunk whose text starts at token `offset` of every sample.
    /// `updates_memory`: whether the memory this chunk writes will be read (it then carries
    /// readouts, and a partial last block gets a compression token too, as in the
    /// reference, so every text token reaches the temporary memory). Otherwise neither is
    /// laid out: both would come after the text and no text token could see them.
    pub fn chunk(
        &self,
        batch: &[Sequence],
        offset: usize,
        shape: &MemoryShape,
        updates_memory: bool,
    ) -> ChunkLayout {
        let c = &self.config;
        let text_counts: Vec<usize> = batch
            .iter()
            .map(|s| s.tokens.len().saturating_sub(offset).min(c.chunk_size))
            .collect();
        let g = self.geometry(&text_counts, shape, updates_memory);
        let (b_n, len) = (batch.len(), g.kinds.len());
        let positions = |want: fn(&Kind) -> bool| -> Vec<usize> {
            let kinds = g.kinds.iter().enumerate();
            kinds.filter(|(_, k)| want(k)).map(|(p, _)| p).collect()
        };
        let mut layout = ChunkLayout {
            batch: b_n,
            len,
            global_slots: g.global_slots,
            temp_slots: g.temp_slots,
            input_ids: Vec::with_capacity(b_n * len),
            text_positions: positions(|k| matches!(k, Kind::Text(_))),
            entry_positions: g.entries.clone(),
            readout_start: g.readout_start,
            real: Vec::with_capacity(b_n * len),
            position_ids: Vec::with_capacity(b_n * len),
            targets: Vec::with_capacity(b_n * g.n_text),
            compression_counts: Vec::with_capacity(b_n),
            active: text_counts.iter().map(|&n| n > 0).collect(),
            text_counts: text_counts.clone(),
        };
        for (b, seq) in batch.iter().enumerate() {
            let queue = if c.use_temp {
                shape.queue_lengths[b]
            } else {
                0
            };
            self.fill_sample(&mut layout, &g, seq, offset, text_counts[b], queue);
        }
        layout
    }

    /// What every sample of a chunk shares: the kind of each position.
    fn geometry(
        &self,
        text_counts: &[usize],
        shape: &MemoryShape,
        updates_memory: bool,
    ) -> Geometry {
        let c = &self.config;
        let n_text = text_counts.iter().copied().max().unwrap_or(0);
        let stride = if c.use_temp {
            c.compression_stride
        } else {
            usize::MAX
        };
        let global_slots = if c.use_global && shape.has_global {
            c.memory_slots
        } else {
            0
        };
        let temp_slots = if c.use_temp {
            shape.queue_lengths.iter().copied().max().unwrap_or(0)
        } else {
            0
        };
        let readouts = updates_memory && c.use_global;
        let tail_compression = updates_memory && c.use_temp;
        let mut kinds = Vec::new();
        kinds.extend((0..global_slots).map(|_| Kind::Global));
        kinds.extend((0..temp_slots).map(Kind::Temp));
        let mut entries = Vec::new();
        for i in 0..n_text {
            kinds.push(Kind::Text(i));
            if (i + 1) % stride == 0 || (tail_compression && i + 1 == n_text) {
                if c.temp_source == TempSource::CompressionOutput {
                    kinds.push(Kind::Compress(entries.len()));
                }
                entries.push(kinds.len() - 1);
            }
        }
        let readout_start = readouts.then_some(kinds.len());
        if readouts {
            kinds.extend((0..c.memory_slots).map(Kind::Readout));
        }
        Geometry {
            kinds,
            global_slots,
            temp_slots,
            readout_start,
            n_text,
            tail_compression,
            entries,
        }
    }

    /// Appends one sample's ids, real flags, positions and targets: `n` text tokens from
    /// `offset`, a queue of `queue` real entries; the rest of the shared geometry is padding.
    fn fill_sample(
        &self,
        layout: &mut ChunkLayout,
        g: &Geometry,
        seq: &Sequence,
        offset: usize,
        n: usize,
        queue: usize,
    ) {
        let c = &self.config;
        let k_real = match (c.use_temp, g.tail_compression) {
            (false, _) => 0,
            (true, false) => n / c.compression_stride,
            (true, true) => n.div_ceil(c.compression_stride),
        };
        layout.compression_counts.push(k_real);
        let mut next_position = 0i64;
        for kind in &g.kinds {
            let (id, real) = match *kind {
                Kind::Global => (self.special.slot, true),
                Kind::Temp(i) => (self.special.slot, i < queue),
                Kind::Text(i) => (seq.tokens.get(offset + i).copied().unwrap_or(0), i < n),
                Kind::Compress(j) => (self.special.compression, j < k_real),
                Kind::Readout(r) => (self.special.readout(r), true),
            };
            layout.input_ids.push(if real { id } else { 0 });
            layout.real.push(real);
            layout.position_ids.push(next_position);
            next_position += i64::from(real);
        }
        for i in 0..g.n_text {
            let target = (i < n).then(|| seq.targets.get(offset + i).copied().flatten());
            layout.targets.push(target.flatten().map_or(-1, i64::from));
        }
    }
}

/// What one position of a chunk holds (the index counts within its kind).
#[derive(Clone, Copy)]
enum Kind {
    Global,
    Temp(usize),
    Text(usize),
    Compress(usize),
    Readout(usize),
}

/// The positions every sample of a chunk shares.
struct Geometry {
    kinds: Vec<Kind>,
    global_slots: usize,
    temp_slots: usize,
    readout_start: Option<usize>,
    /// Text tokens of the longest sample.
    n_text: usize,
    /// Whether a partial last block gets a compression token.
    tail_compression: bool,
    /// Positions whose hidden state becomes a temporary-memory entry.
    entries: Vec<usize>,
}

#[cfg(test)]
mod tests;
