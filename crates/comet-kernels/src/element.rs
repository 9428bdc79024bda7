//! Element types a key/value cache may hold: `f32`, or `f16` (half the bytes a decoding
//! step reads, as llama.cpp's default cache); the kernels compute in `f32` either way.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// A key/value element readable as `f32`.
pub trait Element: Copy + Send + Sync + 'static {
    /// Whether the element is `f32` itself (read in place, never converted).
    const IS_F32: bool;

    /// `row` as `f32`: itself, or converted into `buf` (at least `row.len()` long).
    fn as_f32<'a>(row: &'a [Self], buf: &'a mut [f32]) -> &'a [f32];

    /// One element as `f32`.
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    const IS_F32: bool = true;

    fn as_f32<'a>(row: &'a [f32], _: &'a mut [f32]) -> &'a [f32] {
        row
    }

    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    const IS_F32: bool = false;

    #[inline(always)]
    fn as_f32<'a>(row: &'a [f16], buf: &'a mut [f32]) -> &'a [f32] {
        let out = &mut buf[..row.len()];
        #[cfg(target_arch = "x86_64")]
        if crate::avx2_fma() {
            // SAFETY: the CPU has F16C (checked with AVX2 and FMA); inlined into callers
            // compiled for it.
            unsafe { widen_f16c(row, out) };
            return out;
        }
        row.convert_to_f32_slice(out);
        out
    }

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// `dst = src` widened, eight at a time by F16C's `vcvtph2ps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
#[inline]
unsafe fn widen_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::{__m128i, _mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};
    let whole = src.len() / 8 * 8;
    for i in (0..whole).step_by(8) {
        let h = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
    }
    for i in whole..src.len() {
        dst[i] = src[i].to_f32();
    }
}
