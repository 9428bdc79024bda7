//! A byte-level tokenizer (one token per byte, 256 tokens) for models trained from scratch:
//! any UTF-8 text round-trips, and digits are single tokens.

use std::str::FromStr;

use super::Tokenizer;
use crate::{Error, Result};

/// GPT-2's printable stand-in for each byte, the alphabet of byte-level BPE vocabularies.
fn byte_char(b: u8) -> char {
    let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable {
        return char::from(b);
    }
    // Non-printable bytes map to U+0100.. in byte order.
    let rank = (0..b)
        .filter(|&x| !((b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || x >= 0xAE))
        .count() as u32;
    char::from_u32(0x100 + rank).expect("valid char")
}

/// The 256-token byte-level tokenizer (token id = byte value), no chat template.
pub fn byte_level() -> Result<Tokenizer> {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..=255u8)
        .map(|b| (byte_char(b).to_string(), b.into()))
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "model": {"type": "BPE", "vocab": vocab, "merges": [], "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false},
    });
    let inner = tokenizers::Tokenizer::from_str(&json.to_string())
        .map_err(|e| Error::Tokenizer(format!("byte-level tokenizer: {e}")))?;
    Ok(Tokenizer {
        inner,
        chat_template: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_token_per_byte_and_round_trip() {
        let tok = super::byte_level().unwrap();
        let text = "The pass key is 71432. Ünïcode ✓\n\ttabs";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, text.bytes().map(u32::from).collect::<Vec<_>>());
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert_eq!(tok.inner.get_vocab_size(false), 256);
    }
}
