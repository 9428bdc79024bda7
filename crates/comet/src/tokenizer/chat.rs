//! Chat templates: the Jinja template shipped with a model, rendered with minijinja.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the message.
    pub content: String,
}

impl Message {
    /// A message with the given role.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template with the special-token strings it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Wraps a template's source; it is checked when first rendered.
    pub fn new(source: String, bos_token: String, eos_token: String) -> Self {
        Self {
            source,
            bos_token,
            eos_token,
        }
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the conversation, ending with the assistant's turn opener if asked.
    /// `extra` is a JSON object of further template variables (e.g. `enable_thinking`).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Value,
    ) -> Result<String> {
        let mut env = minijinja::Environment::new();
        // Hugging Face templates call Python string methods (`.strip()`, `.startswith()`...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template("chat", &self.source)
            .map_err(|e| Error::Tokenizer(format!("chat template does not compile: {e}")))?;
        let template = env.get_template("chat").expect("just added");
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                ..minijinja::Value::from_serialize(extra)
            })
            .map_err(|e| Error::Tokenizer(format!("chat template failed: {e}")))
    }
}
