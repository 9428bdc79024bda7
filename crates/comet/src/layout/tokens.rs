//! The token ids CoMeT adds after the base vocabulary.

/// Ids of CoMeT's special tokens: `base_vocab + 0` is the slot placeholder, `+ 1` the
/// compression token, `+ 2 + r` readout token r.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Memory-slot placeholder.
    pub slot: u32,
    /// Compression token `<c>`.
    pub compression: u32,
    /// First readout token.
    pub first_readout: u32,
}

impl SpecialTokens {
    /// The ids following a base vocabulary of `base_vocab` tokens.
    pub fn after(base_vocab: usize) -> Self {
        let v = base_vocab as u32;
        Self {
            slot: v,
            compression: v + 1,
            first_readout: v + 2,
        }
    }

    /// Id of readout token `r`.
    pub fn readout(&self, r: usize) -> u32 {
        self.first_readout + r as u32
    }

    /// `(id, text)` of the first `count` special tokens, as added to the tokenizer.
    pub fn added(&self, count: usize) -> Vec<(u32, String)> {
        (0..count)
            .map(|i| (self.slot + i as u32, Self::text(i)))
            .collect()
    }

    /// Text form of special token `index` (0 slot, 1 compression, 2.. readouts), as added
    /// to the tokenizer.
    pub fn text(index: usize) -> String {
        match index {
            0 => "<|comet_slot|>".into(),
            1 => "<|comet_compress|>".into(),
            r => format!("<|comet_readout_{}|>", r - 2),
        }
    }
}
