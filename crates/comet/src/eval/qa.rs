//! Long-document QA over JSONL records: greedy answers through CoMeT memory, SCROLLS metrics.

use burn::prelude::*;
use serde::Serialize;

use super::metrics::QaScores;
use crate::comet::CometModel;
use crate::data::JsonlData;
use crate::generate::{generate, stop_tokens, CometDecoder, GenerationConfig, SamplingConfig};
use crate::tokenizer::Tokenizer;
use crate::Result;

/// How answers are generated.
#[derive(Debug, Clone)]
pub struct QaOptions {
    /// Largest answer length in tokens.
    pub max_new_tokens: usize,
    /// Records to score (all when `None`).
    pub limit: Option<usize>,
    /// Cut the answer at its first newline (models trained without a stop token ramble on).
    pub first_line: bool,
}

/// One scored answer.
#[derive(Debug, Clone, Serialize)]
pub struct QaPrediction {
    /// Record index (0-based line).
    pub index: usize,
    /// The generated answer.
    pub prediction: String,
    /// The reference answers.
    pub references: Vec<String>,
    /// Prompt tokens read.
    pub prompt_tokens: usize,
}

/// Answers every record greedily and scores it; `on_record(prompt_tokens)` after each.
pub fn evaluate_qa<B: Backend>(
    model: &CometModel<B>,
    tokenizer: &Tokenizer,
    data: &JsonlData,
    options: &QaOptions,
    mut on_record: impl FnMut(usize),
) -> Result<(QaScores, Vec<QaPrediction>)> {
    let count = options.limit.map_or(data.len(), |l| l.min(data.len()));
    let config = GenerationConfig {
        max_new_tokens: options.max_new_tokens,
        stop_tokens: stop_tokens(model.llm.config().eos_token_ids.clone(), tokenizer),
        sampling: SamplingConfig::default(),
    };
    let mut scores = QaScores::default();
    let mut predictions = Vec::with_capacity(count);
    for index in 0..count {
        let (record, references) = data.record_with_references(index)?;
        let (prompt, _) = record.encode(tokenizer)?;
        let mut decoder = CometDecoder::new(model, model.empty_state(1));
        let (ids, _) = generate(&mut decoder, &prompt, &config, |_| Ok(()))?;
        let mut prediction = tokenizer.decode(&ids)?;
        if options.first_line {
            prediction = prediction
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
        }
        let prediction = prediction.trim().to_string();
        scores.add(&prediction, &references);
        on_record(prompt.len());
        predictions.push(QaPrediction {
            index,
            prediction,
            references,
            prompt_tokens: prompt.len(),
        });
    }
    Ok((scores.mean(), predictions))
}
