//! Rotary position embeddings in Hugging Face's half-split layout.
//!
//! Burn's own `RotaryEncoding` rotates interleaved pairs and takes positions as a range;
//! CoMeT needs arbitrary per-token position ids (they restart in every chunk), so the
//! tables are computed from a position tensor on each call.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

use crate::config::{ModelConfig, RopeScaling};

/// Inverse frequencies of one head, `[head_dim / 2]`, with any `rope_scaling` applied.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

/// cos/sin tables for one forward pass, each `[batch, 1, seq, head_dim]`, in f32 whatever
/// the device's default float type: bf16 holds integers exactly only up to 256 (positions
/// near 1,000 would be rounded to multiples of 4), so angles are formed in f32 as Hugging
/// Face does, and only the finished tables are cast to the activations' type.
/// The halves (`[batch, 1, seq, head_dim / 2]`, each table is one half repeated) are kept
/// too, for kernels that rotate pairs directly.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
    cos_half: Tensor<B, 4>,
    sin_half: Tensor<B, 4>,
}

impl Rope {
    /// Frequencies as Hugging Face computes them: `theta^(-2i/head_dim)` in f32.
    pub fn new(config: &ModelConfig) -> Self {
        let dim = config.head_dim;
        let base = config.rope_theta as f32;
        let mut inv_freq: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
            .collect();
        match &config.rope_scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                inv_freq.iter_mut().for_each(|f| *f /= *factor as f32);
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                for f in inv_freq.iter_mut() {
                    let freq = *f as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / freq;
                    let scaled = if wavelen < high_wavelen {
                        freq
                    } else if wavelen > low_wavelen {
                        freq / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    };
                    *f = scaled as f32;
                }
            }
        }
        Self { inv_freq }
    }

    /// Tables for the given position ids `[batch, seq]`.
    pub fn tables<B: Backend>(&self, positions: Tensor<B, 2, Int>) -> RopeTables<B> {
        let device = positions.device();
        let [batch, seq] = positions.dims();
        let half = self.inv_freq.len();
        let inv_freq = Tensor::<B, 1>::from_data(
            TensorData::new(self.inv_freq.clone(), [half]),
            (&device, DType::F32),
        )
        .reshape([1, 1, half]);
        // [batch, seq, half]
        let freqs = positions.cast(FloatDType::F32).reshape([batch, seq, 1]) * inv_freq;
        let half = freqs.unsqueeze_dim::<4>(1);
        let (cos_half, sin_half) = (half.clone().cos(), half.sin());
        RopeTables {
            cos: Tensor::cat(vec![cos_half.clone(), cos_half.clone()], 3),
            sin: Tensor::cat(vec![sin_half.clone(), sin_half.clone()], 3),
            cos_half,
            sin_half,
        }
    }
}

impl<B: Backend> RopeTables<B> {
    /// The tables in the activations' type `dtype` (a no-op for f32).
    pub fn cast(self, dtype: DType) -> Self {
        Self {
            cos: self.cos.cast(dtype),
            sin: self.sin.cast(dtype),
            cos_half: self.cos_half.cast(dtype),
            sin_half: self.sin_half.cast(dtype),
        }
    }

    /// The tables of positions `range` (dimension 2) only.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Self {
        let part = |t: &Tensor<B, 4>| {
            let [b, h, _, d] = t.dims();
            t.clone().slice([0..b, 0..h, range.clone(), 0..d])
        };
        Self {
            cos: part(&self.cos),
            sin: part(&self.sin),
            cos_half: part(&self.cos_half),
            sin_half: part(&self.sin_half),
        }
    }

    /// Cosines and sines of the pairs' angles, `[batch, 1, seq, head_dim / 2]` each.
    pub fn halves(&self) -> (&Tensor<B, 4>, &Tensor<B, 4>) {
        (&self.cos_half, &self.sin_half)
    }

    /// Rotates `x` `[batch, heads, seq, head_dim]` by the tables' angles.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, s, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..s, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..s, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}
