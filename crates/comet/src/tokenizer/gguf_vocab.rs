//! Rebuilds a Hugging Face tokenizer from the vocabulary stored in GGUF metadata.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::weights::{GgufFile, MetaValue};
use crate::{Error, Result};

/// llama.cpp's pre-tokenizer regex for Llama 3 style BPE (`llama-bpe`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The same with single digits, as Qwen2/Qwen3 split them (`qwen2`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    let items = file.array(key).ok_or_else(|| {
        Error::Tokenizer(format!(
            "{}: metadata `{key}` is missing",
            file.path.display()
        ))
    })?;
    items
        .iter()
        .map(|v| match v {
            MetaValue::Str(s) => Ok(s.as_str()),
            _ => Err(Error::Tokenizer(format!(
                "{}: `{key}` holds a non-string",
                file.path.display()
            ))),
        })
        .collect()
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let split = |regex: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(regex.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])
        .into())
    };
    Ok(match pre {
        "llama-bpe" | "llama3" | "dbrx" | "smaug-bpe" => split(LLAMA3_REGEX)?,
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_REGEX)?,
        // StarCoder-family vocabularies (SmolLM among them) split every digit first.
        "smollm" | "starcoder" | "refact" | "codeshell" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, false, true).into(),
        ])
        .into(),
        _ => ByteLevel::new(false, false, true).into(),
    })
}

/// Builds a byte-level BPE tokenizer from `tokenizer.ggml.*` metadata.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.str("tokenizer.ggml.model").unwrap_or("missing");
    if model != "gpt2" {
        return Err(Error::Tokenizer(format!(
            "{}: tokenizer model `{model}` is not supported (byte-level BPE `gpt2` is); put a tokenizer.json beside the file",
            file.path.display()
        )));
    }
    let tokens = strings(file, "tokenizer.ggml.tokens")?;
    let merges = strings(file, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| Error::Tokenizer(format!("malformed merge `{m}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(
        file.str("tokenizer.ggml.pre").unwrap_or("default"),
    )?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // Control (3) and user-defined (4) tokens are matched whole, before BPE.
    let types = file.array("tokenizer.ggml.token_type").unwrap_or(&[]);
    let special: Vec<AddedToken> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t, MetaValue::Int(3 | 4) | MetaValue::UInt(3 | 4)))
        .filter_map(|(i, _)| tokens.get(i))
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&special);

    if file.metadata.get("tokenizer.ggml.add_bos_token") == Some(&MetaValue::Bool(true)) {
        if let Some(bos) = file.num("tokenizer.ggml.bos_token_id").map(|n| n as usize) {
            let bos_text = tokens.get(bos).copied().unwrap_or_default().to_string();
            let post = TemplateProcessing::builder()
                .try_single(format!("{bos_text} $A"))
                .and_then(|b| b.try_pair(format!("{bos_text} $A $B")))
                .map_err(|e| Error::Tokenizer(e.to_string()))?
                .special_tokens(vec![(bos_text, bos as u32)])
                .build()
                .map_err(|e| Error::Tokenizer(e.to_string()))?;
            tokenizer.with_post_processor(Some(post));
        }
    }
    Ok(tokenizer)
}
