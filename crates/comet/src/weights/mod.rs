//! Weights I/O: Hugging Face safetensors (single or sharded) and GGUF, into the base model.

mod build;
mod export;
mod gguf;
mod gguf_file;
mod module;
mod quant;
mod safetensors;
mod source;

pub use build::{build_llm, random_llm, random_llm_from, tensor_specs, TensorSpec};
pub use export::export_hf_dir;
pub use gguf::GgufWeights;
pub use gguf_file::{GgufFile, MetaValue, TensorInfo};
pub use module::ModuleWeights;
pub use quant::dequantize;
pub use safetensors::SafetensorsWeights;
pub(crate) use source::check_finite;
pub use source::{RandomWeights, WeightSource};
