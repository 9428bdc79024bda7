//! The base LLM, written once over any Burn backend.

mod attention;
mod block;
mod cache;
mod llm;
mod lora;
mod mlp;
mod rope;

pub use attention::{causal_after, Attention, AttentionMask};
pub use block::DecoderLayer;
pub use cache::{KvCache, LayerCache};
pub use llm::{ForwardInput, LayerHook, Llm, NoHook};
pub use lora::{project, Lora, LoraConfig, LoraTarget};
pub use mlp::Mlp;
pub use rope::{Rope, RopeTables};
