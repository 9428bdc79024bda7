//! The base model's hyper-parameters, read from a Hugging Face `config.json`
//! (or built from GGUF metadata by the weights loader).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The model families this crate implements; they differ only in a few switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3, SmolLM, Mistral-style blocks: no biases, no Q/K norm.
    Llama,
    /// Qwen2 / Qwen2.5: bias on the Q, K and V projections.
    Qwen2,
    /// Qwen3: per-head RMSNorm on queries and keys, no biases.
    Qwen3,
}

/// What distinguishes one family, in one place: adding a family is one row here.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The family.
    pub architecture: Architecture,
    /// Hugging Face `model_type` and GGUF `general.architecture`.
    pub name: &'static str,
    /// Hugging Face `architectures[0]`.
    pub hf_class: &'static str,
    /// Biases on the Q, K and V projections, whatever the config says.
    pub qkv_bias: bool,
    /// Per-head RMSNorm on queries and keys.
    pub qk_norm: bool,
    /// llama.cpp's converter permutes Q/K rows for interleaved RoPE.
    pub gguf_permutes_qk: bool,
}

/// Every family this crate implements.
pub const FAMILIES: [Family; 3] = [
    Family {
        architecture: Architecture::Llama,
        name: "llama",
        hf_class: "LlamaForCausalLM",
        qkv_bias: false,
        qk_norm: false,
        gguf_permutes_qk: true,
    },
    Family {
        architecture: Architecture::Qwen2,
        name: "qwen2",
        hf_class: "Qwen2ForCausalLM",
        qkv_bias: true,
        qk_norm: false,
        gguf_permutes_qk: false,
    },
    Family {
        architecture: Architecture::Qwen3,
        name: "qwen3",
        hf_class: "Qwen3ForCausalLM",
        qkv_bias: false,
        qk_norm: true,
        gguf_permutes_qk: false,
    },
];

/// The families' names, for messages (`llama, qwen2, qwen3`).
pub fn family_names() -> String {
    FAMILIES.map(|f| f.name).join(", ")
}

impl Architecture {
    /// Parses a Hugging Face `model_type` or GGUF `general.architecture` value.
    pub fn parse(name: &str) -> Result<Self> {
        FAMILIES
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.architecture)
            .ok_or_else(|| Error::UnknownArchitecture(name.to_string()))
    }

    /// This family's row of [`FAMILIES`].
    pub fn family(self) -> &'static Family {
        FAMILIES
            .iter()
            .find(|f| f.architecture == self)
            .expect("every architecture has a row")
    }
}

/// The fields of a Hugging Face `config.json` this crate reads (null = absent; the rest
/// of the file is ignored), converted to a [`ModelConfig`] with transformers' defaults.
#[derive(Deserialize)]
struct HfConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    /// transformers v5 moved `rope_theta` and `rope_scaling` here.
    rope_parameters: Option<Value>,
    rms_norm_eps: Option<f64>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    max_position_embeddings: Option<usize>,
    eos_token_id: Option<TokenIds>,
    bos_token_id: Option<TokenIds>,
}

/// A token id or a list of them (`eos_token_id` is either).
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    fn into_vec(ids: Option<Self>) -> Vec<u32> {
        match ids {
            None => Vec::new(),
            Some(Self::One(id)) => vec![id],
            Some(Self::Many(ids)) => ids,
        }
    }
}

impl TryFrom<HfConfig> for ModelConfig {
    type Error = Error;

    fn try_from(hf: HfConfig) -> Result<Self> {
        let architecture = Architecture::parse(&hf.model_type)?;
        let num_heads = hf.num_attention_heads;
        let rope = hf.rope_parameters.filter(Value::is_object);
        let rope_theta = rope
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(hf.rope_theta)
            .unwrap_or(10000.0);
        let rope_scaling = match hf.rope_scaling.filter(|s| !s.is_null()).or(rope) {
            None => None,
            Some(s) => parse_rope_scaling(&s)?,
        };
        let config = Self {
            architecture,
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads,
            num_kv_heads: hf.num_key_value_heads.unwrap_or(num_heads),
            head_dim: hf.head_dim.unwrap_or(hf.hidden_size / num_heads.max(1)),
            rope_theta,
            rope_scaling,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            // Qwen2 always has Q/K/V biases; the others say so in the config.
            attention_bias: architecture.family().qkv_bias || hf.attention_bias.unwrap_or(false),
            qk_norm: architecture.family().qk_norm,
            max_position_embeddings: hf.max_position_embeddings.unwrap_or(4096),
            eos_token_ids: TokenIds::into_vec(hf.eos_token_id),
            bos_token_id: TokenIds::into_vec(hf.bos_token_id).first().copied(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// How RoPE frequencies are rescaled for long contexts (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear {
        /// Division factor.
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent rescaling.
    Llama3 {
        /// Scale of the low frequencies.
        factor: f64,
        /// Wavelength bound (in units of the original context) of the low frequencies.
        low_freq_factor: f64,
        /// Wavelength bound of the high frequencies.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
}

/// Hyper-parameters of a decoder-only Llama/Qwen model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which family's switches apply.
    pub architecture: Architecture,
    /// Number of token embeddings.
    pub vocab_size: usize,
    /// Width of the residual stream `d`.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of query heads.
    pub num_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head (not always `hidden_size / num_heads`).
    pub head_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Optional RoPE rescaling.
    pub rope_scaling: Option<RopeScaling>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Whether the output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on the Q/K/V projections (Qwen2).
    pub attention_bias: bool,
    /// Per-head RMSNorm on queries and keys (Qwen3).
    pub qk_norm: bool,
    /// Longest context the base model was trained for.
    pub max_position_embeddings: usize,
    /// Token ids that end generation.
    pub eos_token_ids: Vec<u32>,
    /// Token id that starts a sequence, if the model uses one.
    pub bos_token_id: Option<u32>,
}

/// The most decoder layers a config may declare (llama.cpp's limit).
pub const MAX_LAYERS: usize = 512;

impl ModelConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(path, format!("not valid JSON: {e}")))?;
        Self::from_hf_json(&value).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: match e {
                Error::Missing(reason) => reason,
                other => other.to_string(),
            },
        })
    }

    /// Interprets the JSON object of a Hugging Face `config.json`.
    pub fn from_hf_json(v: &Value) -> Result<Self> {
        // The family first: another family's config is named as such, whatever it lacks.
        if let Some(model_type) = v.get("model_type").and_then(Value::as_str) {
            Architecture::parse(model_type)?;
        }
        let hf = HfConfig::deserialize(v).map_err(|e| Error::Missing(e.to_string()))?;
        Self::try_from(hf)
    }

    /// Checks the relations between fields that the model relies on.
    pub fn validate(&self) -> Result<()> {
        // llama.cpp's LLAMA_MAX_LAYERS; a corrupt count must not size anything first.
        if !(1..=MAX_LAYERS).contains(&self.num_layers) {
            return Err(Error::Missing(format!(
                "num_hidden_layers ({}) must be between 1 and {MAX_LAYERS}",
                self.num_layers
            )));
        }
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Missing(format!("{name} is 0")));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(Error::Missing(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::Missing(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            )));
        }
        Ok(())
    }

    /// The config as a Hugging Face `config.json` object.
    pub fn to_hf_json(&self) -> Value {
        let family = self.architecture.family();
        let (model_type, architectures) = (family.name, family.hf_class);
        let mut v = serde_json::json!({
            "architectures": [architectures],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "eos_token_id": self.eos_token_ids,
            "bos_token_id": self.bos_token_id,
        });
        v["rope_scaling"] = match &self.rope_scaling {
            None => Value::Null,
            Some(s) => serde_json::to_value(s).expect("serializable"),
        };
        v
    }

    /// Number of query heads sharing one key/value head.
    pub fn gqa_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
}

/// Parses a `rope_scaling` / `rope_parameters` object; `None` for the default (unscaled) RoPE.
fn parse_rope_scaling(s: &Value) -> Result<Option<RopeScaling>> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |name: &str| {
        s.get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::Missing(format!("rope scaling field `{name}` is missing")))
    };
    Ok(Some(match kind {
        "default" => return Ok(None),
        "linear" => RopeScaling::Linear {
            factor: f("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: f("factor")?,
            low_freq_factor: f("low_freq_factor")?,
            high_freq_factor: f("high_freq_factor")?,
            original_max_position_embeddings: f("original_max_position_embeddings")? as usize,
        },
        other => {
            return Err(Error::Missing(format!(
                "rope scaling type `{other}` is not supported (supported: default, linear, llama3)"
            )))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2
        })
    }

    #[test]
    fn rope_theta_is_read_from_v4_and_v5_layouts() {
        let mut v4 = base();
        v4["rope_theta"] = 5e5.into();
        assert_eq!(ModelConfig::from_hf_json(&v4).unwrap().rope_theta, 5e5);
        let mut v5 = base();
        v5["rope_parameters"] = serde_json::json!({"rope_theta": 1e5, "rope_type": "default"});
        let c = ModelConfig::from_hf_json(&v5).unwrap();
        assert_eq!((c.rope_theta, c.rope_scaling), (1e5, None));
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = ModelConfig::from_hf_json(&base()).unwrap();
        assert_eq!((c.num_kv_heads, c.head_dim, c.rope_theta), (2, 4, 10000.0));
    }

    #[test]
    fn unknown_rope_type_is_named() {
        let mut v = base();
        v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
        assert!(ModelConfig::from_hf_json(&v)
            .unwrap_err()
            .to_string()
            .contains("yarn"));
    }
}
