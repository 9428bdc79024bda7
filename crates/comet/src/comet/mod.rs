//! The CoMeT recurrence: a base model plus memory, reading chunk by chunk.

mod forward;
mod hook;
mod model;

pub use forward::Prefill;
pub use hook::{ChunkHook, ChunkIndices};
pub use model::{ChunkOutput, CometModel};
