//! CPU kernels on plain `f32` slices with explicit strides, independent of any tensor
//! library: Burn's flex backend reaches them through `comet::kernels`, and they could serve
//! any other CPU backend as they are.
//!
//! - [`attention`]: softmax attention for grouped-query heads (keys and values indexed by
//!   their shared head, never copied), threaded over (batch, head, query block), skipping key
//!   tiles a causal query cannot see, with causal masks aligned bottom-right when keys
//!   outnumber queries (a cache) or an explicit boolean mask.
//! - [`matmul`]: linear layers threaded at every shape (decoding's one-row products too).
//! - [`elementwise`]: RMSNorm, rotary embedding and SwiGLU, threaded over rows.
//! - [`exp`]: a branch-free `exp` that the compiler vectorises, for the softmax.
//! - [`loss`]: next-token cross-entropy and its gradient, threaded over rows.
//! - [`optim`]: AdamW's update in one threaded pass, the gradients' sum of squares.

pub mod attention;
pub mod element;
pub mod elementwise;
pub mod exp;
pub mod loss;
pub mod matmul;
pub mod optim;

pub use attention::{attention, attention_backward, attention_lse, Mask, Strided};
pub use element::Element;
pub use elementwise::{rms_norm, rms_norm_backward, rope, swiglu, swiglu_backward};
pub use half::f16;
pub use loss::{cross_entropy, cross_entropy_backward, CrossEntropy};
pub use matmul::{matmul, matmul_many, Matrix};

/// An output buffer shared by threads that each write their own disjoint part of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the users (attention rows, matmul column blocks) write disjoint elements.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// Whether the CPU runs the AVX2 + FMA (+ F16C, which every such CPU has) builds of the
/// inner loops (detected once by std).
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// A dot product with eight partial sums, so that it vectorises (inlined into callers
/// compiled for AVX2 + FMA).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}
