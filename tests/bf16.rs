//! bf16 computation far into a sequence. In its own test binary: a device's default float
//! type is set once per process, before its first tensor.

mod common;

// The backend cargo features select (flex here; cuda in scripts/gpu_check.sh).
use burn::prelude::*;
use burn::tensor::DType;
use comet::backend::Backend as Selected;
use comet::model::{AttentionMask, ForwardInput, NoHook};
use comet::weights::random_llm;
use common::{ids_tensor, max_abs_diff, tiny_config, tokens};

/// Logits `[seq * vocab]` of `ids` whose position ids start at `start`.
fn logits_from(llm: &comet::model::Llm<Selected>, ids: &[u32], start: i64) -> Vec<f32> {
    let device = Default::default();
    let n = ids.len();
    let input = ForwardInput {
        positions: Tensor::arange(start..start + n as i64, &device).reshape([1, n]),
        mask: AttentionMask::Causal,
        cache: None,
        memory: 0,
    };
    let hidden = llm.forward_hidden(llm.embed(ids_tensor(ids, &device)), input, &mut NoHook);
    llm.logits(hidden)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

/// The backend's integer type (kept when the float default becomes bf16).
fn int_dtype<B: Backend>() -> DType {
    <B::IntElem as burn::tensor::Element>::dtype()
}

/// RoPE makes attention depend on position differences only, so the same tokens at
/// positions 1,500.. and 0.. give the same logits, up to bf16 rounding. With RoPE angles
/// formed in bf16 (which holds integers near 1,500 only to multiples of 8), the fastest
/// rotations would be off by radians and the logits would differ.
#[test]
fn bf16_logits_at_positions_past_1000_match_those_at_the_start() {
    let device = Default::default();
    let int = int_dtype::<Selected>();
    burn::tensor::set_default_dtypes::<Selected>(&device, DType::BF16, int).unwrap();
    let llm = random_llm::<Selected>(&tiny_config(true), 5, &device);
    assert_eq!(llm.embed_tokens.weight.val().dtype(), DType::BF16);
    let ids = tokens(48, 9, 0, 64);
    let near = logits_from(&llm, &ids, 0);
    let scale = near.iter().fold(0.0f32, |m, l| m.max(l.abs()));
    for start in [1_001, 1_500, 4_093] {
        let far = logits_from(&llm, &ids, start);
        let diff = max_abs_diff(&near, &far);
        eprintln!("start {start}: max |difference| {diff} (largest logit {scale})");
        assert!(diff < 0.05 * scale, "start {start}: {diff} of {scale}");
    }
}
