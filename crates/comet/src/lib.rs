//! CoMeT: pretrained decoder-only LLMs with an unbounded context through collaborative
//! memory (arXiv 2602.01766), written once over any Burn backend.
//!
//! Data flows one way: tokens -> chunk layout -> model + memory -> logits / loss.
//! - [`model`]: the base LLM; [`weights`]: safetensors/GGUF I/O; [`tokenizer`]: text <-> ids.
//! - [`layout`]: token ids -> per-chunk layout (slots, compression and readout tokens).
//! - [`memory`]: global and temporary memory modules and the state between chunks.
//! - [`comet`]: the recurrence (training loss, prefill, absorbing text into memory).
//! - [`generate`]: decoding, plain or over CoMeT memory.
//! - [`data`]: passkey, text and JSONL samples; [`train`]: the trainer; [`eval`]: passkey, QA, perplexity.
//!
//! On the CPU (flex), the kernels run on rayon's pool. Call the model from a thread of that
//! pool (`rayon::scope(|_| ...)` around the work, as the `comet` command does): each
//! parallel operation then forks inside the pool instead of waking it from outside, which
//! made a decoding step ~8% faster here.

#![warn(missing_docs)]

pub mod backend;
pub mod comet;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod fsutil;
pub mod generate;
pub mod kernels;
pub mod layout;
mod load;
pub mod memory;
pub mod model;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use error::{Error, Result};
pub use load::{load_model, LoadedModel};
