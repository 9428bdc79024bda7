//! Text <-> token ids through the `tokenizers` crate, plus chat templates.

mod byte_level;
mod chat;
mod gguf_vocab;

use std::path::Path;
use std::str::FromStr;

pub use byte_level::byte_level;
pub use chat::{ChatTemplate, Message};
pub use gguf_vocab::tokenizer_from_gguf;

use crate::weights::GgufFile;
use crate::{Error, Result};

/// A tokenizer with the model's chat template.
#[derive(Clone)]
pub struct Tokenizer {
    /// The underlying Hugging Face tokenizer.
    pub inner: tokenizers::Tokenizer,
    /// The chat template, if the model ships one.
    pub chat_template: Option<ChatTemplate>,
}

/// Reads `tokenizer_config.json`'s token fields, which are either strings or `{"content": ...}`.
fn token_field(config: &serde_json::Value, key: &str) -> String {
    match config.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(obj) => obj
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        None => String::new(),
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` (and `tokenizer_config.json` if present) from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::Missing(format!(
                "{}: tokenizer.json is missing",
                dir.display()
            )));
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        let config_path = dir.join("tokenizer_config.json");
        let chat_template = if config_path.exists() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            let config: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::corrupt(&config_path, format!("not valid JSON: {e}")))?;
            let template = match config.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                _ => {
                    // Newer exports keep the template in its own file.
                    std::fs::read_to_string(dir.join("chat_template.jinja")).ok()
                }
            };
            template.map(|t| {
                ChatTemplate::new(
                    t,
                    token_field(&config, "bos_token"),
                    token_field(&config, "eos_token"),
                )
            })
        } else {
            None
        };
        Ok(Self {
            inner,
            chat_template,
        })
    }

    /// Builds the tokenizer stored in a GGUF file's metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let file_name = file.path.display().to_string();
        let inner = tokenizer_from_gguf(file).map_err(|e| match e {
            Error::Tokenizer(m) if !m.contains(&file_name) => {
                Error::Tokenizer(format!("{file_name}: {m}"))
            }
            other => other,
        })?;
        let token = |key: &str| {
            file.num(key)
                .and_then(|id| inner.id_to_token(id as u32))
                .unwrap_or_default()
        };
        let chat_template = file.str("tokenizer.chat_template").map(|t| {
            ChatTemplate::new(
                t.to_string(),
                token("tokenizer.ggml.bos_token_id"),
                token("tokenizer.ggml.eos_token_id"),
            )
        });
        Ok(Self {
            inner,
            chat_template,
        })
    }

    /// Token ids of `text`; `add_special` adds what the tokenizer's post-processor adds (BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, add_special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Text of token ids, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// This tokenizer with special tokens `(id, text)` added at exactly those ids (present
    /// ones are checked), so they decode to their text and survive saving.
    pub fn with_special_tokens(self, tokens: &[(u32, String)]) -> Result<Self> {
        let mut missing = Vec::new();
        for (id, text) in tokens {
            match (self.inner.token_to_id(text), self.inner.id_to_token(*id)) {
                (Some(found), _) if found == *id => {}
                (Some(found), _) => {
                    return Err(Error::Tokenizer(format!(
                        "the tokenizer has {text} at id {found}, the model expects {id}"
                    )))
                }
                (None, Some(other)) => {
                    return Err(Error::Tokenizer(format!(
                        "id {id} is {other:?} in the tokenizer, the model needs it for {text}"
                    )))
                }
                (None, None) => missing.push((id, text)),
            }
        }
        if missing.is_empty() {
            return Ok(self);
        }
        // `added_tokens` entries carry explicit ids; `add_special_tokens` would number them
        // after the tokenizer's own vocabulary, which can be smaller than the model's.
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let added = value["added_tokens"]
            .as_array_mut()
            .ok_or_else(|| Error::Tokenizer("tokenizer.json has no added_tokens list".into()))?;
        for (id, text) in missing {
            added.push(serde_json::json!({
                "id": id, "content": text, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true,
            }));
        }
        let inner = tokenizers::Tokenizer::from_str(&value.to_string())
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self { inner, ..self })
    }

    /// Renders a conversation with the model's chat template; `extra` holds further
    /// template variables as a JSON object (`{}` for none).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Value,
    ) -> Result<String> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| Error::Input("this model has no chat template; drop --chat".into()))?
            .render(messages, add_generation_prompt, extra)
    }
}
