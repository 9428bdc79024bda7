//! GGUF models: config from metadata, tensors renamed to Hugging Face names and dequantized.

use std::collections::HashSet;
use std::path::Path;

use super::gguf_file::GgufFile;
use super::quant::{dequantize, type_name};
use super::source::{check_finite, check_shape, ignorable, refuse_unused, WeightSource};
use crate::config::{Architecture, ModelConfig};
use crate::{Error, Result};

/// A GGUF file seen as a [`WeightSource`] in Hugging Face naming.
pub struct GgufWeights {
    /// The parsed file (metadata stays available for the tokenizer).
    pub file: GgufFile,
    architecture: Architecture,
    num_heads: usize,
    num_kv_heads: usize,
}

/// Hugging Face tensor name -> GGUF tensor name.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Undoes llama.cpp's interleaved-RoPE row order of a Q or K projection: rows viewed as
/// `[heads, head_dim/2, 2]` become `[heads, 2, head_dim/2]` (Hugging Face's half-split).
fn unpermute_rows(data: &[f32], heads: usize, row_len: usize) -> Vec<f32> {
    let rows = data.len() / row_len;
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for part in 0..2 {
                let src = h * head_dim + i * 2 + part;
                let dst = h * head_dim + part * half + i;
                out[dst * row_len..(dst + 1) * row_len]
                    .copy_from_slice(&data[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    out
}

impl GgufWeights {
    /// Opens a GGUF file and reads its architecture.
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let arch = file
            .str("general.architecture")
            .ok_or_else(|| Error::corrupt(path, "metadata `general.architecture` is missing"))?;
        let architecture =
            Architecture::parse(arch).map_err(|e| Error::corrupt(path, e.to_string()))?;
        let num = |key: &str| {
            file.num(&format!("{arch}.{key}"))
                .map(|n| n as usize)
                .ok_or_else(|| Error::corrupt(path, format!("metadata `{arch}.{key}` is missing")))
        };
        let num_heads = num("attention.head_count")?;
        let num_kv_heads = num("attention.head_count_kv").unwrap_or(num_heads);
        Ok(Self {
            file,
            architecture,
            num_heads,
            num_kv_heads,
        })
    }

    /// The model config described by the metadata.
    pub fn config(&self) -> Result<ModelConfig> {
        let f = &self.file;
        let arch = f.str("general.architecture").unwrap_or_default();
        let meta = |key: &str| f.num(&format!("{arch}.{key}"));
        let need = |key: &str| {
            meta(key).map(|n| n as usize).ok_or_else(|| {
                Error::corrupt(&f.path, format!("metadata `{arch}.{key}` is missing"))
            })
        };
        let hidden_size = need("embedding_length")?;
        let embed = f.tensors.get("token_embd.weight").ok_or_else(|| {
            Error::tensor(
                "token_embd.weight",
                format!("missing from {}", f.path.display()),
            )
        })?;
        let vocab_size = *embed.dims.get(1).unwrap_or(&0);
        let id = |key: &str| f.num(key).map(|n| n as u32);
        let config = ModelConfig {
            architecture: self.architecture,
            vocab_size,
            hidden_size,
            intermediate_size: need("feed_forward_length")?,
            num_layers: need("block_count")?,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: meta("attention.key_length")
                .map_or(hidden_size / self.num_heads, |n| n as usize),
            rope_theta: meta("rope.freq_base").unwrap_or(10000.0),
            rope_scaling: match (
                f.str(&format!("{arch}.rope.scaling.type")),
                meta("rope.scaling.factor"),
            ) {
                (Some("linear"), Some(factor)) => {
                    Some(crate::config::RopeScaling::Linear { factor })
                }
                _ => None,
            },
            rms_norm_eps: meta("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            tie_word_embeddings: !f.tensors.contains_key("output.weight"),
            attention_bias: f.tensors.contains_key("blk.0.attn_q.bias"),
            qk_norm: f.tensors.contains_key("blk.0.attn_q_norm.weight"),
            max_position_embeddings: meta("context_length").map_or(4096, |n| n as usize),
            eos_token_ids: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
        };
        config
            .validate()
            .map_err(|e| Error::corrupt(&f.path, e.to_string()))?;
        Ok(config)
    }
}

impl WeightSource for GgufWeights {
    fn contains(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|g| self.file.tensors.contains_key(&g))
    }

    fn check_all_used(&self, used: &HashSet<String>) -> Result<()> {
        let read: HashSet<String> = used.iter().filter_map(|n| gguf_name(n)).collect();
        let mut unused: Vec<&str> = self
            .file
            .tensors
            .keys()
            .map(String::as_str)
            .filter(|n| !read.contains(*n) && !ignorable(n))
            .collect();
        unused.sort();
        refuse_unused(unused, &self.file.path.display().to_string())
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let file = self.file.path.display().to_string();
        let gname =
            gguf_name(name).ok_or_else(|| Error::tensor(name, "has no GGUF counterpart"))?;
        let info = self
            .file
            .tensors
            .get(&gname)
            .ok_or_else(|| Error::tensor(&gname, format!("missing from {file}")))?;
        let hf_shape: Vec<usize> = info.dims.iter().rev().copied().collect();
        check_shape(&gname, &hf_shape, shape, &file)?;
        let mut data = dequantize(info.ggml_type, self.file.data(info));
        let how = format!("after {} decoding", type_name(info.ggml_type));
        check_finite(&gname, &data, &how, &file)?;
        // llama.cpp permutes Q/K rows only for the Llama family; Qwen stores them as-is.
        if self.architecture.family().gguf_permutes_qk {
            let row_len = *shape.last().unwrap_or(&1);
            if gname.ends_with("attn_q.weight") || gname.ends_with("attn_q.bias") {
                data = unpermute_rows(&data, self.num_heads, row_len);
            } else if gname.ends_with("attn_k.weight") || gname.ends_with("attn_k.bias") {
                data = unpermute_rows(&data, self.num_kv_heads, row_len);
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways_of_a_layer() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.k_proj.bias").unwrap(),
            "blk.3.attn_k.bias"
        );
        assert_eq!(
            gguf_name("model.layers.0.mlp.down_proj.weight").unwrap(),
            "blk.0.ffn_down.weight"
        );
        assert_eq!(gguf_name("lm_head.weight").unwrap(), "output.weight");
        assert!(gguf_name("model.layers.0.unknown.weight").is_none());
    }

    #[test]
    fn unpermute_restores_half_split_rows() {
        // One head, head_dim 4, row length 1: GGUF order [x0, x2, x1, x3] -> [x0, x1, x2, x3].
        let gguf = [0.0, 2.0, 1.0, 3.0];
        assert_eq!(unpermute_rows(&gguf, 1, 1), vec![0.0, 1.0, 2.0, 3.0]);
    }
}
