//! The per-layer memory modules: gated global memory and compressed temporary memory.

use burn::config::Config;
use burn::module::Param;
use burn::nn::{Linear, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};
use rand::rngs::StdRng;
use rand::Rng;

/// A bias-free linear layer `[d_in, d_out]` with N(0, 0.02) weights drawn from a host RNG,
/// so a seed gives the same memory modules on every backend and in every process.
fn linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    rng: &mut StdRng,
    device: &B::Device,
) -> Linear<B> {
    let normal = rand_distr::Normal::new(0.0f32, 0.02).expect("valid std");
    let values: Vec<f32> = (0..d_in * d_out).map(|_| rng.sample(normal)).collect();
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(values, [d_in, d_out]),
            device,
        )),
        bias: None,
    }
}

/// `x @ W` for `x` `[batch, n, d_in]` and a bias-free [`Linear`] `[d_in, d_out]`, as one 2-D
/// product with the weight itself: `Linear::forward` unsqueezes the weight first, an op on a
/// parameter alone, which under autodiff can start a graph that costs a merge
/// (see `train/graph.rs`).
fn project<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, n, d_in] = x.dims();
    let weight = linear.weight.val();
    let d_out = weight.dims()[1];
    x.reshape([batch * n, d_in])
        .matmul(weight)
        .reshape([batch, n, d_out])
}

/// RMSNorm through the backend's kernels, which take the weight as a direct input (Burn's
/// `RmsNorm::forward` unsqueezes it first, as [`project`] avoids).
fn norm<B: Backend>(norm: &RmsNorm<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    crate::kernels::kernels::<B>().rms_norm(x, norm)
}

/// Whether `COMET_TRACE_GLOBAL` is set: global-memory updates then print, per layer and
/// chunk, the first sample's mean gate and span start to stderr, to see what the memory keeps
/// (`scripts/smollm2_gate_trace.sh`). Each print reads a value back from the device.
fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("COMET_TRACE_GLOBAL").is_some())
}

/// The first sample's value of a `[batch, 1, 1]` tensor.
fn first<B: Backend>(x: Tensor<B, 3>) -> f32 {
    let [batch, _, _] = x.dims();
    x.slice([0..batch.min(1), 0..1, 0..1])
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_or(f32::NAN, |v| v[0])
}

/// How a global state is blended with its candidates: `g * state + (1 - g) * candidate`.
pub enum Gate<B: Backend> {
    /// No gate: the candidates replace the state.
    Off,
    /// One learned gate per slot from `[candidate; state]` (the paper).
    PerSlot,
    /// One learned gate for every slot (the mean of their logits): a span is kept or
    /// replaced whole.
    Shared,
    /// One gate of the given logits `[batch, 1, 1]` (the salience gate).
    Given(Tensor<B, 3>),
}

/// 0 for real text tokens and far below any score for padding, from `real` `[batch, 1, n]`.
pub fn padding_penalty<B: Backend>(real: Tensor<B, 3>) -> Tensor<B, 3> {
    (real - 1.0) * 1e4
}

/// Prints, when tracing, the first sample's most likely span start and its probability from
/// a soft start `[batch, 1, n]` (one line per layer that quotes it).
pub fn trace_span_start<B: Backend>(start: &Tensor<B, 3>) {
    if tracing() {
        let at = first(start.clone().argmax(2).float());
        eprintln!(
            "global span start {at} p {:.3}",
            first(start.clone().max_dim(2))
        );
    }
}

/// The weights `[batch, m, n]` that quote a span of `m` consecutive text tokens from a soft
/// start `start` `[batch, 1, n]`: row j is `start` shifted right by j, weighing token u by
/// P(start = u - j), so slot j holds token `start + j` (nothing past the chunk's end). Built
/// once per chunk; [`quote`] applies it to any layer's text.
pub fn span_weights<B: Backend>(start: Tensor<B, 3>, m: usize) -> Tensor<B, 3> {
    let [batch, _, n] = start.dims();
    let device = start.device();
    let rows: Vec<Tensor<B, 3>> = (0..m)
        .map(|j| match j {
            0 => start.clone(),
            j if j >= n => Tensor::zeros([batch, 1, n], &device),
            j => Tensor::cat(
                vec![
                    Tensor::zeros([batch, 1, j], &device),
                    start.clone().slice([0..batch, 0..1, 0..n - j]),
                ],
                2,
            ),
        })
        .collect();
    Tensor::cat(rows, 1)
}

/// The span `[batch, m, hidden]` that `weights` ([`span_weights`]) quote from `text`
/// `[batch, n, hidden]`; padding (`real` `[batch, 1, n]` 0) adds nothing.
pub fn quote<B: Backend>(
    weights: Tensor<B, 3>,
    text: Tensor<B, 3>,
    real: Tensor<B, 3>,
) -> Tensor<B, 3> {
    weights.matmul(text * real.swap_dims(1, 2))
}

/// `g * kept + (1 - g) * new`.
fn blend<B: Backend>(g: Tensor<B, 3>, kept: Tensor<B, 3>, new: Tensor<B, 3>) -> Tensor<B, 3> {
    g.clone() * kept + (g.neg() + 1.0) * new
}

/// Residual low-rank adapter: `x + up(down(x))`, starting close to the identity.
#[derive(Module, Debug)]
pub struct LowRankAdapter<B: Backend> {
    /// `[hidden, rank]`.
    pub down: Linear<B>,
    /// `[rank, hidden]`.
    pub up: Linear<B>,
}

/// Sizes of every memory module: the model width and the adapters' rank. Weights are drawn
/// from a host RNG (`init`'s `rng`), so one seed gives the same modules on every backend.
#[derive(Config, Debug)]
pub struct MemoryModuleConfig {
    /// Hidden size of the base model.
    pub hidden: usize,
    /// Rank of the low-rank adapters.
    pub rank: usize,
}

impl MemoryModuleConfig {
    /// A fresh adapter; small but non-zero both ways (a zero `up` would leave `down`
    /// without gradient).
    pub fn init_adapter<B: Backend>(
        &self,
        rng: &mut StdRng,
        device: &B::Device,
    ) -> LowRankAdapter<B> {
        LowRankAdapter {
            down: linear(self.hidden, self.rank, rng, device),
            up: linear(self.rank, self.hidden, rng, device),
        }
    }

    /// A fresh global memory.
    pub fn init_global<B: Backend>(&self, rng: &mut StdRng, device: &B::Device) -> GlobalMemory<B> {
        GlobalMemory {
            norm: RmsNormConfig::new(self.hidden).init(device),
            gate: linear(2 * self.hidden, 1, rng, device),
            adapter: self.init_adapter(rng, device),
        }
    }

    /// A fresh temporary memory (its norm's eps is 1e-12, as the reference's).
    pub fn init_temporary<B: Backend>(
        &self,
        rng: &mut StdRng,
        device: &B::Device,
    ) -> TemporaryMemory<B> {
        TemporaryMemory {
            norm: RmsNormConfig::new(self.hidden)
                .with_epsilon(1e-12)
                .init(device),
            adapter: self.init_adapter(rng, device),
        }
    }

    /// Both memories of one layer.
    pub fn init<B: Backend>(&self, rng: &mut StdRng, device: &B::Device) -> LayerMemory<B> {
        LayerMemory {
            global: self.init_global(rng, device),
            temporary: self.init_temporary(rng, device),
        }
    }
}

impl<B: Backend> LowRankAdapter<B> {
    /// `[batch, n, hidden] -> [batch, n, hidden]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x.clone() + project(&self.up, project(&self.down, x))
    }
}

/// Global memory of one layer: a gated state S updated from the readouts of each chunk.
#[derive(Module, Debug)]
pub struct GlobalMemory<B: Backend> {
    /// Normalises the readouts into candidates.
    pub norm: RmsNorm<B>,
    /// `[2 * hidden, 1]`: one gate per slot from `[candidate; state]`.
    pub gate: Linear<B>,
    /// Maps the state to the slot inputs of the next chunk.
    pub adapter: LowRankAdapter<B>,
}

impl<B: Backend> GlobalMemory<B> {
    /// New state from candidates `[batch, m, hidden]` and the previous state, if any,
    /// blended as `gate` says.
    pub fn update(
        &self,
        candidates: Tensor<B, 3>,
        state: Option<Tensor<B, 3>>,
        gate: Gate<B>,
    ) -> Tensor<B, 3> {
        let candidate = norm(&self.norm, candidates);
        let Some(state) = state else {
            return candidate;
        };
        // [batch, m, 1], or [batch, 1, 1] shared by the slots
        let logits = match gate {
            Gate::Off => return candidate,
            Gate::PerSlot => self.gate_logits(&candidate, &state),
            Gate::Shared => self.gate_logits(&candidate, &state).mean_dim(1),
            Gate::Given(logits) => logits,
        };
        let g = sigmoid(logits);
        if tracing() {
            eprintln!("global gate {:.3}", first(g.clone().mean_dim(1)));
        }
        blend(g, state, candidate)
    }

    /// The salience gate: new state and salience `[batch, 1, 1]` from candidates
    /// `[batch, m, hidden]` chosen with score `salience` and the kept state with its score,
    /// if any. `g = sigmoid(kept - new)` keeps the span that scored higher, whatever came
    /// later; the stored score blends alike.
    pub fn keep_salient(
        &self,
        candidates: Tensor<B, 3>,
        salience: Tensor<B, 3>,
        kept: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let Some((state, score)) = kept else {
            return (self.update(candidates, None, Gate::Off), salience);
        };
        if tracing() {
            let (new, old) = (first(salience.clone()), first(score.clone()));
            eprintln!("global salience {new:.3} kept {old:.3}");
        }
        let logits = score.clone() - salience.clone();
        let g = sigmoid(logits.clone());
        let state = self.update(candidates, Some(state), Gate::Given(logits));
        (state, blend(g, score, salience))
    }

    /// The learned gate's logits `[batch, m, 1]` from `[candidate; state]`.
    fn gate_logits(&self, candidate: &Tensor<B, 3>, state: &Tensor<B, 3>) -> Tensor<B, 3> {
        project(
            &self.gate,
            Tensor::cat(vec![candidate.clone(), state.clone()], 2),
        )
    }

    /// How much each readout output `[batch, m, hidden]` wants each text-token layer input
    /// `[batch, n, hidden]` (both normed, compared in the adapter's down projection, rank r):
    /// `[batch, m, n]`, padding (`real` `[batch, 1, n]` 0) far below any real token.
    fn text_scores(
        &self,
        readouts: Tensor<B, 3>,
        text: Tensor<B, 3>,
        real: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        self.raw_scores(readouts, text) + padding_penalty(real)
    }

    /// [`Self::text_scores`] without the padding penalty.
    fn raw_scores(&self, readouts: Tensor<B, 3>, text: Tensor<B, 3>) -> Tensor<B, 3> {
        let rank = self.adapter.down.weight.dims()[1];
        let queries = project(&self.adapter.down, norm(&self.norm, readouts));
        let keys = project(&self.adapter.down, norm(&self.norm, text));
        queries.matmul(keys.swap_dims(1, 2)) / (rank as f64).sqrt()
    }

    /// How much this layer wants a span to start at each text token `[batch, 1, n]`: the
    /// readouts' mean score, padding not excluded (see [`padding_penalty`]).
    pub fn start_scores(&self, readouts: Tensor<B, 3>, text: Tensor<B, 3>) -> Tensor<B, 3> {
        self.raw_scores(readouts, text).mean_dim(1)
    }

    /// Candidates `[batch, m, hidden]` pooled from a chunk's text-token layer inputs `text`
    /// `[batch, n, hidden]`: each readout output picks its own mixture of text tokens.
    pub fn pool(
        &self,
        readouts: Tensor<B, 3>,
        text: Tensor<B, 3>,
        real: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        softmax(self.text_scores(readouts, text.clone(), real), 2).matmul(text)
    }

    /// Candidates `[batch, m, hidden]`: a span of m consecutive text-token layer inputs,
    /// slot j holding token `start + j`, so the slots read as a passage of the chunk in its
    /// own order (slot positions are consecutive too). The start is soft: a softmax over the
    /// chunk of the readouts' mean scores.
    pub fn span(
        &self,
        readouts: Tensor<B, 3>,
        text: Tensor<B, 3>,
        real: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let m = readouts.dims()[1];
        let scores = self.start_scores(readouts, text.clone()) + padding_penalty(real.clone());
        let start = softmax(scores, 2);
        trace_span_start(&start);
        quote(span_weights(start, m), text, real)
    }

    /// Slot inputs G `[batch, m, hidden]` of a state.
    pub fn slots(&self, state: Tensor<B, 3>) -> Tensor<B, 3> {
        self.adapter.forward(state)
    }
}

/// Temporary memory of one layer: compression-token outputs, normalised and adapted.
#[derive(Module, Debug)]
pub struct TemporaryMemory<B: Backend> {
    /// Its own norm (eps 1e-12, as the reference).
    pub norm: RmsNorm<B>,
    /// Its own adapter.
    pub adapter: LowRankAdapter<B>,
}

impl<B: Backend> TemporaryMemory<B> {
    /// Queue entries `[batch, k, hidden]` from compression outputs `[batch, k, hidden]`.
    pub fn compress(&self, compressed: Tensor<B, 3>) -> Tensor<B, 3> {
        self.adapter.forward(norm(&self.norm, compressed))
    }
}

/// Both memories of one layer.
#[derive(Module, Debug)]
pub struct LayerMemory<B: Backend> {
    /// Gated global memory.
    pub global: GlobalMemory<B>,
    /// FIFO temporary memory.
    pub temporary: TemporaryMemory<B>,
}
