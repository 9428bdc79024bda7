//! Where weights come from: anything that can hand out named f32 tensors.

use std::collections::HashSet;

use crate::{Error, Result};

/// A store of named tensors in Hugging Face naming (`model.layers.0.self_attn.q_proj.weight`),
/// returned as f32 in row-major order with PyTorch's shapes (`[out, in]` for linear weights).
pub trait WeightSource {
    /// Whether a tensor of this name exists.
    fn contains(&self, name: &str) -> bool;

    /// Loads tensor `name`, which must have exactly `shape`.
    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;

    /// Refuses stored tensors a model that read `used` (Hugging Face names) left unread:
    /// a checkpoint of another shape or family must not load with weights silently dropped,
    /// as nanoGPT asserts its key counts. Generated sources hold nothing else.
    fn check_all_used(&self, _used: &HashSet<String>) -> Result<()> {
        Ok(())
    }
}

/// Stored tensors a model may leave unread: RoPE tables some exports keep, and the output
/// head of tied checkpoints that still ship a copy (the config decides).
pub fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
        || ["lm_head.weight", "output.weight", "rope_freqs.weight"].contains(&name)
}

/// The error for unread tensors `unused` of `origin`, if any.
pub fn refuse_unused(unused: Vec<&str>, origin: &str) -> Result<()> {
    match unused.first() {
        None => Ok(()),
        Some(first) => Err(Error::Input(format!(
            "{origin}: {} stored tensors are not part of the model its config describes, e.g. `{first}`",
            unused.len()
        ))),
    }
}

/// Checks a stored shape against the expected one, naming the tensor and file on mismatch.
pub fn check_shape(name: &str, found: &[usize], expected: &[usize], file: &str) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::tensor(
            name,
            format!("has shape {found:?} in {file}, the config requires {expected:?}"),
        ))
    }
}

/// Refuses a tensor holding NaN or infinite values (`how`: "after Q4_K decoding", "as BF16"):
/// a model that loads them answers garbage without a word.
pub fn check_finite(name: &str, data: &[f32], how: &str, file: &str) -> Result<()> {
    if data.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Error::tensor(
            name,
            format!("holds NaN or infinite values {how} in {file}"),
        ))
    }
}

/// Deterministic random weights for training from scratch: normal(0, 0.02) matrices,
/// unit norms, zero biases (the usual Llama initialisation).
pub struct RandomWeights {
    rng: rand::rngs::StdRng,
    fan_in_scaled: bool,
}

impl RandomWeights {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            fan_in_scaled: false,
        }
    }

    /// Like [`Self::new`] but projections drawn with std `1/sqrt(fan_in)`: in a small model
    /// (hidden 128) std 0.02 leaves attention scores near zero and their gradients tiny,
    /// and training from scratch sits on a long plateau before attention learns to look up.
    pub fn for_training(seed: u64) -> Self {
        Self {
            fan_in_scaled: true,
            ..Self::new(seed)
        }
    }
}

impl WeightSource for RandomWeights {
    fn contains(&self, _name: &str) -> bool {
        true
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        use rand::Rng;
        let projection = shape.len() == 2 && !name.contains("embed_tokens");
        let std = if self.fan_in_scaled && projection {
            (shape[1] as f32).powf(-0.5)
        } else {
            0.02
        };
        let normal = rand_distr::Normal::new(0.0f32, std).expect("valid std");
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| self.rng.sample(normal)).collect()
        })
    }
}
