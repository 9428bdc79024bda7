//! The CoMeT recurrence: a base model plus memory, reading chunk by chunk.

pub mod adapter;
mod forward;
mod hook;
mod indices;
mod io;
mod model;
mod parallel;
mod reader;
mod snapshot;

pub use adapter::{base_fingerprint, AdapterInfo, ADAPTER_FILE, ADAPTER_PARAMS, LORA_FILE};
pub use forward::{check_batch, Prefill};
pub use hook::{ChunkHook, ChunkMemory};
pub use indices::ChunkIndices;
pub use io::{
    load_comet, load_comet_adapter, stored_config, LoadedComet, CONFIG_FILE, MEMORY_FILE,
};
pub use model::{ChunkInputs, ChunkOutput, CometModel};
pub use parallel::{chunk_ranges, ContextParallel};
pub use reader::{ChunkReader, ReadChunk};
pub use snapshot::{load_snapshot, save_snapshot, Snapshot, SNAPSHOT_VERSION};
