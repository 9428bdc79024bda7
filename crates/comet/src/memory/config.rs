//! `CometConfig`: the sizes and switches of the CoMeT memory, saved as `comet.json`.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Sizes of the chunked layout and the memory, plus ablation switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CometConfig {
    /// Text tokens per chunk.
    pub chunk_size: usize,
    /// Global memory slots m (= number of readout tokens).
    pub memory_slots: usize,
    /// One compression token after every `compression_stride` text tokens.
    pub compression_stride: usize,
    /// Largest number of temporary-memory entries (FIFO).
    pub temp_budget: usize,
    /// Rank of the residual low-rank adapters.
    pub adapter_rank: usize,
    /// Gate the global memory update (off: the newest readout replaces the state).
    #[serde(default = "yes")]
    pub use_gate: bool,
    /// Keep a global memory (off: no global slots and no readout tokens).
    #[serde(default = "yes")]
    pub use_global: bool,
    /// Keep a temporary memory (off: no temporary slots and no compression tokens).
    #[serde(default = "yes")]
    pub use_temp: bool,
    /// Which hidden state becomes a temporary-memory entry.
    #[serde(default)]
    pub temp_source: TempSource,
    /// What the global memory's candidates are made of.
    #[serde(default)]
    pub global_source: GlobalSource,
    /// A shared span may start in the previous chunk's last `memory_slots - 1` text tokens
    /// (their layer inputs are carried in the state), so a passage that a chunk boundary
    /// cuts is still quoted whole. `shared_span` only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cross_chunk_span: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// What a layer's global-memory candidates are made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalSource {
    /// The readout tokens' outputs of the layer (the paper).
    #[default]
    Readout,
    /// The chunk's text-token inputs of the layer, pooled by attention: each readout output
    /// scores the text tokens, so a slot holds a mixture of hidden states the base's heads
    /// already read (one state, once the scores are sharp).
    TextPool,
    /// A span of `memory_slots` consecutive text-token inputs of the layer, its start
    /// chosen softly by the readouts, one gate for the whole span: the slots read as a
    /// quoted passage of an earlier chunk.
    TextSpan,
    /// As `TextSpan`, but one span start for every layer (the sum of the layers' scores, so
    /// every layer keeps the same tokens, as a KV cache would), and a salience gate: a kept
    /// span carries the score it was chosen with, and a new span replaces it only when it
    /// scores higher (g = sigmoid(kept - new)). Needs chunk-major reading.
    SharedSpan,
}

impl std::str::FromStr for GlobalSource {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "readout" => Ok(Self::Readout),
            "text_pool" => Ok(Self::TextPool),
            "text_span" => Ok(Self::TextSpan),
            "shared_span" => Ok(Self::SharedSpan),
            other => Err(format!(
                "unknown global-memory source `{other}` (readout, text_pool, text_span or shared_span)"
            )),
        }
    }
}

/// Where a layer's temporary-memory entries come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TempSource {
    /// The compression token's output of the layer (the paper and its reference code).
    #[default]
    CompressionOutput,
    /// The layer's input at the text token each compression token closes: the hidden state
    /// the layer's own keys and values are projected from, so a frozen base's heads can
    /// match an entry as they would the token itself (at stride 1, a cache of the earlier
    /// tokens' layer inputs).
    TextInput,
}

impl std::str::FromStr for TempSource {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "compression_output" => Ok(Self::CompressionOutput),
            "text_input" => Ok(Self::TextInput),
            other => Err(format!(
                "unknown temporary-memory source `{other}` (compression_output or text_input)"
            )),
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for CometConfig {
    /// Defaults scaled to a ~100M-parameter model (the reference uses 2048/512/8/2048/8 at 4B).
    fn default() -> Self {
        Self {
            chunk_size: 512,
            memory_slots: 64,
            compression_stride: 8,
            temp_budget: 256,
            adapter_rank: 8,
            use_gate: true,
            use_global: true,
            use_temp: true,
            temp_source: TempSource::default(),
            global_source: GlobalSource::default(),
            cross_chunk_span: false,
        }
    }
}

impl CometConfig {
    /// Checks that the sizes are usable.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("chunk_size", self.chunk_size),
            ("memory_slots", self.memory_slots),
            ("compression_stride", self.compression_stride),
            ("temp_budget", self.temp_budget),
            ("adapter_rank", self.adapter_rank),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Input(format!(
                    "comet config: `{name}` must be positive"
                )));
            }
        }
        if self.cross_chunk_span && self.global_source != GlobalSource::SharedSpan {
            return Err(Error::Input(
                "comet config: `cross_chunk_span` needs `global_source: shared_span`".into(),
            ));
        }
        Ok(())
    }

    /// Text tokens a chunk carries to the next for [`Self::cross_chunk_span`] (0 without).
    pub fn span_tail(&self) -> usize {
        if self.cross_chunk_span && self.use_global {
            self.memory_slots - 1
        } else {
            0
        }
    }

    /// Global slots (and readouts) per chunk, 0 when the global memory is off.
    pub fn global_slots(&self) -> usize {
        if self.use_global {
            self.memory_slots
        } else {
            0
        }
    }

    /// Number of special tokens CoMeT adds to the vocabulary: slot placeholder,
    /// compression token and the readout tokens.
    pub fn special_tokens(&self) -> usize {
        2 + self.memory_slots
    }

    /// Reads `comet.json`.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }
}
