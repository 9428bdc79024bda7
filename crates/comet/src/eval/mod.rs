//! Evaluations: passkey retrieval grids, SCROLLS-style QA metrics, per-chunk perplexity
//! with and without memory.

mod metrics;
mod passkey;
mod ppl;
mod qa;

pub use metrics::{exact_match, normalize_answer, rouge_l, rouge_n, token_f1, QaScores};
pub use passkey::{
    evaluate_passkey, full_attention_matches, greedy_matches, PasskeyCell, PasskeyGrid,
    PasskeyMiss, Reader, TargetMatch,
};
pub use ppl::{chunk_perplexity, ChunkPerplexity};
pub use qa::{evaluate_qa, QaOptions, QaPrediction};
