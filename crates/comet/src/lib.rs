//! CoMeT: pretrained decoder-only LLMs with an unbounded context through collaborative
//! memory (arXiv 2602.01766), written once over any Burn backend.
//!
//! Data flows one way: tokens -> chunk layout -> model + memory -> logits / loss.
//! This crate currently holds the base model ([`model`]), its weights I/O ([`weights`]),
//! tokenization ([`tokenizer`]) and generation ([`generate`]).

#![warn(missing_docs)]

pub mod backend;
pub mod config;
mod error;
pub mod generate;
mod load;
pub mod model;
pub mod tokenizer;
pub mod weights;

pub use error::{Error, Result};
pub use load::{load_model, LoadedModel};
