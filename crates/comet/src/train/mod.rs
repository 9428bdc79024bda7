//! Training CoMeT through every chunk: config, gradients (plain back-propagation through
//! all chunks or chunk-level recomputation), parameter groups, checkpoints, the loop.

mod adamw;
pub mod checkpoint;
mod config;
pub mod grads;
mod graph;
mod log;
mod precision;
mod recompute;
mod start;
mod trainer;

pub use adamw::FusedAdamW;
pub use config::{ModelSource, Precision, TrainConfig, TrainMode, VariableChunks};
pub use graph::join_parameter_graphs;
pub use log::{Observer, Silent, StepLog};
pub use precision::compute_model;
pub use recompute::recomputed_gradients;
pub use trainer::{Summary, Trainer};
