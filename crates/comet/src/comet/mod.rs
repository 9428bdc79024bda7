//! The CoMeT recurrence: a base model plus memory, reading chunk by chunk.

mod forward;
mod hook;
mod io;
mod model;
mod snapshot;

pub use forward::{check_batch, Prefill};
pub use hook::{ChunkHook, ChunkIndices};
pub use io::{load_comet, stored_config, LoadedComet, CONFIG_FILE, MEMORY_FILE};
pub use model::{ChunkOutput, CometModel};
pub use snapshot::{load_snapshot, save_snapshot, SNAPSHOT_VERSION};
