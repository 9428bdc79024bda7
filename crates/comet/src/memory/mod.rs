//! The CoMeT memory: its config, the per-layer modules and the state carried between chunks.

mod config;
mod modules;
mod state;

pub use config::{CometConfig, GlobalSource, TempSource};
pub use modules::{
    padding_penalty, quote, span_weights, trace_span_start, Gate, GlobalMemory, LayerMemory,
    LowRankAdapter, MemoryModuleConfig, TemporaryMemory,
};
pub use state::{LayerState, MemoryState};
