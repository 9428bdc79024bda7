//! Dequantization of ggml block formats to f32, following llama.cpp's reference kernels.

use half::f16;

/// `(elements per block, bytes per block)` of a ggml type, if supported.
pub(crate) fn block_layout(ggml_type: u32) -> Option<(usize, usize)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        30 => (1, 2),     // BF16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        _ => return None,
    })
}

/// Name of a ggml type id, for messages.
pub fn type_name(ggml_type: u32) -> String {
    match ggml_type {
        0 => "F32".into(),
        1 => "F16".into(),
        30 => "BF16".into(),
        2 => "Q4_0".into(),
        3 => "Q4_1".into(),
        6 => "Q5_0".into(),
        7 => "Q5_1".into(),
        8 => "Q8_0".into(),
        12 => "Q4_K".into(),
        13 => "Q5_K".into(),
        14 => "Q6_K".into(),
        other => format!("ggml type {other}"),
    }
}

/// Bytes taken by `n` elements of `ggml_type`; `None` if unsupported or not whole blocks.
pub fn byte_size(ggml_type: u32, n: usize) -> Option<usize> {
    let (per_block, bytes) = block_layout(ggml_type)?;
    if n.is_multiple_of(per_block) {
        (n / per_block).checked_mul(bytes)
    } else {
        None
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes `data` (whole blocks of `ggml_type`) to f32.
pub fn dequantize(ggml_type: u32, data: &[u8]) -> Vec<f32> {
    let (per_block, bytes) = block_layout(ggml_type).expect("checked by byte_size");
    let mut out = vec![0f32; data.len() / bytes * per_block];
    for (block, y) in data
        .chunks_exact(bytes)
        .zip(out.chunks_exact_mut(per_block))
    {
        match ggml_type {
            0 => y[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
            1 => y[0] = f16_at(block, 0),
            30 => y[0] = half::bf16::from_le_bytes([block[0], block[1]]).to_f32(),
            2 => q4_0(block, y),
            3 => q4_1(block, y),
            6 => q5_0(block, y),
            7 => q5_1(block, y),
            8 => q8_0(block, y),
            12 => q4_k(block, y),
            13 => q5_k(block, y),
            14 => q6_k(block, y),
            _ => unreachable!("block_layout covers the same types"),
        }
    }
    out
}

fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        y[j] = ((b[2 + j] & 15) as f32 - 8.0) * d;
        y[j + 16] = ((b[2 + j] >> 4) as f32 - 8.0) * d;
    }
}

fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        y[j] = (b[4 + j] & 15) as f32 * d + m;
        y[j + 16] = (b[4 + j] >> 4) as f32 * d + m;
    }
}

/// The fifth bits of Q5_0/Q5_1: bit j of `qh` belongs to element j.
fn q5_values(qh: u32, qs: &[u8], j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs[j] & 15) | h0, (qs[j] >> 4) | h1)
}

fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let (x0, x1) = q5_values(qh, &b[6..], j);
        y[j] = (x0 as f32 - 16.0) * d;
        y[j + 16] = (x1 as f32 - 16.0) * d;
    }
}

fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let (x0, x1) = q5_values(qh, &b[8..], j);
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = b[2 + j] as i8 as f32 * d;
    }
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K super-block.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (sc as f32, m as f32)
}

fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (i, chunk) in y.chunks_exact_mut(64).enumerate() {
        let q = &qs[32 * i..32 * i + 32];
        let (sc1, m1) = scale_min_k4(2 * i, scales);
        let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
        for l in 0..32 {
            chunk[l] = d * sc1 * (q[l] & 0xF) as f32 - dmin * m1;
            chunk[l + 32] = d * sc2 * (q[l] >> 4) as f32 - dmin * m2;
        }
    }
}

fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (i, chunk) in y.chunks_exact_mut(64).enumerate() {
        let q = &qs[32 * i..32 * i + 32];
        let (u1, u2) = (1u8 << (2 * i), 2u8 << (2 * i));
        let (sc1, m1) = scale_min_k4(2 * i, scales);
        let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
        for l in 0..32 {
            let hi1 = if qh[l] & u1 != 0 { 16.0 } else { 0.0 };
            let hi2 = if qh[l] & u2 != 0 { 16.0 } else { 0.0 };
            chunk[l] = d * sc1 * ((q[l] & 0xF) as f32 + hi1) - dmin * m1;
            chunk[l + 32] = d * sc2 * ((q[l] >> 4) as f32 + hi2) - dmin * m2;
        }
    }
}

fn q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for (n, chunk) in y.chunks_exact_mut(128).enumerate() {
        let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * (sc[is + k] as i8) as f32;
            chunk[l] = s(0) * q1 as f32;
            chunk[l + 32] = s(2) * q2 as f32;
            chunk[l + 64] = s(4) * q3 as f32;
            chunk[l + 96] = s(6) * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_block_scales_signed_bytes() {
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(8, &block);
        assert_eq!(y[0], -8.0);
        assert_eq!(y[31], 7.5);
    }

    #[test]
    fn q4_1_block_matches_the_documented_layout() {
        // ASSETS.md: w[j] = d*(qs[j] & 15) + m and w[j+16] = d*(qs[j] >> 4) + m.
        let mut block = f16::from_f32(2.0).to_le_bytes().to_vec();
        block.extend(f16::from_f32(-1.0).to_le_bytes());
        block.extend((0..16).map(|j| (j as u8) | ((15 - j as u8) << 4)));
        let y = dequantize(3, &block);
        for j in 0..16 {
            assert_eq!(y[j], 2.0 * j as f32 - 1.0);
            assert_eq!(y[j + 16], 2.0 * (15 - j) as f32 - 1.0);
        }
    }

    #[test]
    fn partial_blocks_are_rejected() {
        assert_eq!(byte_size(3, 33), None);
        assert_eq!(byte_size(3, 64), Some(40));
        assert_eq!(byte_size(99, 64), None);
    }
}
