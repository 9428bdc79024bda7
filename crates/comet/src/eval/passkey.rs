//! The passkey grid: input lengths x needle depths, N seeded trials per cell, exact match.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::comet::{check_batch, CometModel};
use crate::data::{mix_seed, Passkey};
use crate::layout::Sequence;
use crate::Result;

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
}

/// How much of one sample's target greedy decoding reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetMatch {
    /// Target tokens that are the arg-max given the true tokens before them.
    pub correct: usize,
    /// Target tokens.
    pub total: usize,
}

impl TargetMatch {
    /// Whether greedy decoding reproduces the whole target.
    pub fn exact(&self) -> bool {
        self.correct == self.total
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
    let mut state = model.empty_state(batch.len());
    let builder = model.layout_builder();
    for layout in builder.iter(batch, CometModel::<B>::memory_shape(&state), false) {
        let out = model.read_chunk(&layout, &state, None);
        if layout.targets.iter().any(|&t| t >= 0) {
            let n = layout.text_positions.len();
            let predicted = model.text_logits(&layout, out.hidden).argmax(2).into_data();
            let predicted = predicted.iter::<i64>();
            for (i, (&target, p)) in layout.targets.iter().zip(predicted).enumerate() {
                if target >= 0 {
                    let m = &mut matches[i / n];
                    m.total += 1;
                    m.correct += usize::from(target == p);
                }
            }
        }
        state = out.state;
    }
    Ok(matches)
}

/// Runs the grid; `on_batch(trials_done, tokens_read)` after every batch.
pub fn evaluate_passkey<B: Backend>(
    model: &CometModel<B>,
    passkey: &Passkey,
    grid: &PasskeyGrid,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<PasskeyCell>> {
    let mut cells = Vec::new();
    for &length in &grid.lengths {
        for &depth in &grid.depths {
            let (mut correct, mut keys) = (0, TargetMatch::default());
            let trials: Vec<u64> = (0..grid.trials as u64).collect();
            for chunk in trials.chunks(grid.batch_size.max(1)) {
                let batch = chunk
                    .iter()
                    .map(|&t| {
                        let seed = mix_seed(&[grid.seed, length as u64, depth.to_bits(), t]);
                        Ok(passkey.sample(length, depth, seed)?.sequence())
                    })
                    .collect::<Result<Vec<_>>>()?;
                for m in greedy_matches(model, &batch)? {
                    correct += usize::from(m.exact());
                    keys.correct += m.correct;
                    keys.total += m.total;
                }
                on_batch(chunk.len(), chunk.len() * length);
            }
            cells.push(PasskeyCell {
                length,
                depth,
                trials: grid.trials,
                correct,
                accuracy: correct as f64 / grid.trials.max(1) as f64,
                token_accuracy: keys.correct as f64 / keys.total.max(1) as f64,
            });
        }
    }
    Ok(cells)
}
