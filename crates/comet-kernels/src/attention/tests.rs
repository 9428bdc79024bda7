//! The kernel against a plain f64 reference on random shapes, strides and masks.

use rand::{Rng, SeedableRng};

use super::*;

/// Plain attention in f64: q `[b, h, sq, d]`, k/v `[b, kvh, sk, d]` contiguous; `hidden(b, h,
/// i, j)` says whether query `i` may not see key `j`.
fn reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    [b, h, sq, d]: [usize; 4],
    [kvh, sk]: [usize; 2],
    hidden: impl Fn(usize, usize, usize, usize) -> bool,
) -> Vec<f64> {
    let mut out = vec![0f64; b * h * sq * d];
    let scale = 1.0 / (d as f64).sqrt();
    for bi in 0..b {
        for hi in 0..h {
            let kv = hi / (h / kvh);
            for i in 0..sq {
                let qrow = &q[((bi * h + hi) * sq + i) * d..][..d];
                let scores: Vec<Option<f64>> = (0..sk)
                    .map(|j| {
                        let krow = &k[((bi * kvh + kv) * sk + j) * d..][..d];
                        let dot: f64 = qrow
                            .iter()
                            .zip(krow)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum();
                        (!hidden(bi, hi, i, j)).then_some(dot * scale)
                    })
                    .collect();
                let m = scores
                    .iter()
                    .flatten()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    continue;
                }
                let w: Vec<f64> = scores
                    .iter()
                    .map(|s| s.map_or(0.0, |s| (s - m).exp()))
                    .collect();
                let total: f64 = w.iter().sum();
                let o = &mut out[((bi * h + hi) * sq + i) * d..][..d];
                for (j, wj) in w.iter().enumerate() {
                    let vrow = &v[((bi * kvh + kv) * sk + j) * d..][..d];
                    for (od, &vd) in o.iter_mut().zip(vrow) {
                        *od += wj / total * vd as f64;
                    }
                }
            }
        }
    }
    out
}

fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-2.0..2.0)).collect()
}

fn contiguous(data: &[f32], shape: [usize; 4]) -> Strided<'_> {
    let strides = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    Strided {
        data,
        offset: 0,
        shape,
        strides,
    }
}

/// The kernels' token-major `[b, s, h, d]` result as `[b, h, s, d]`, as the references are.
fn head_major(x: &[f32], [b, h, s, d]: [usize; 4]) -> Vec<f32> {
    assert_eq!(x.len(), b * h * s * d, "length");
    let mut out = Vec::with_capacity(x.len());
    for bi in 0..b {
        for hi in 0..h {
            for si in 0..s {
                out.extend_from_slice(&x[((bi * s + si) * h + hi) * d..][..d]);
            }
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_close_above(got, want, 1e-3, what);
}

/// Within 1e-5 of the largest of `want` and `floor` (a gradient that should be 0 comes out
/// as float rounding of the inputs' size).
fn assert_close_above(got: &[f32], want: &[f64], floor: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(floor, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= 1e-5 * scale,
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn causal_grouped_query_attention_matches_the_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    // (kv heads, groups, queries, keys): GQA ratios 1, 3, 4; queries after a cache; a few
    // query rows over many keys (decoding: split over threads, read without GEMMs) and just
    // past the few-row limit.
    for &(kvh, groups, sq, sk) in &[
        (3, 3, 1, 3000),
        (2, 4, 2, 1500),
        (1, 3, 3, 40),
        (2, 1, 1, 1),
        (1, 3, 7, 7),
        (2, 4, 33, 33),
        (3, 3, 1, 300),
        (2, 3, 5, 77),
        (1, 4, 64, 64),
        (1, 1, 1000, 1000),
        (2, 3, 40, 1000),
    ] {
        let (b, h, d) = (2, kvh * groups, 16);
        let q = random(&mut rng, b * h * sq * d);
        let k = random(&mut rng, b * kvh * sk * d);
        let v = random(&mut rng, b * kvh * sk * d);
        let got = attention(
            contiguous(&q, [b, h, sq, d]),
            contiguous(&k, [b, kvh, sk, d]),
            contiguous(&v, [b, kvh, sk, d]),
            Mask::Causal,
            1.0 / (d as f32).sqrt(),
        );
        let got = head_major(&got, [b, h, sq, d]);
        let want = reference(&q, &k, &v, [b, h, sq, d], [kvh, sk], |_, _, i, j| {
            j > sk - sq + i
        });
        assert_close(&got, &want, &format!("kvh {kvh} groups {groups} {sq}x{sk}"));
    }
}

#[test]
fn explicit_masks_and_strided_inputs_match_the_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    // Blocks of many query rows (GEMMs) and of few (a decoding step's loops).
    for (groups, sq) in [(3, 45), (1, 4)] {
        explicit_mask_case(&mut rng, groups, sq);
    }
}

fn explicit_mask_case(rng: &mut rand::rngs::StdRng, groups: usize, sq: usize) {
    let (b, kvh, sk, d) = (2, 2, 130, 8);
    let h = kvh * groups;
    let q = random(rng, b * h * sq * d);
    // Keys stored [b, sk, kvh, d] and read as [b, kvh, sk, d] through strides, inside a
    // longer buffer (a preallocated cache of 200 positions).
    let cap = 200;
    let k = random(rng, b * cap * kvh * d);
    let v = random(rng, b * cap * kvh * d);
    let strided = |data| Strided {
        data,
        offset: 0,
        shape: [b, kvh, sk, d],
        strides: [cap * kvh * d, d, kvh * d, 1],
    };
    // One mask per batch, broadcast over heads; some rows hide every key.
    let mask: Vec<u8> = (0..b * sq * sk)
        .map(|i| u8::from(rng.random_bool(0.6) || (i / sk) % 11 == 3))
        .collect();
    let got = attention(
        contiguous(&q, [b, h, sq, d]),
        strided(&k),
        strided(&v),
        Mask::Explicit {
            data: &mask,
            offset: 0,
            strides: [sq * sk, 0, sk, 1],
        },
        1.0 / (d as f32).sqrt(),
    );
    let got = head_major(&got, [b, h, sq, d]);
    let pack = |x: &[f32]| -> Vec<f32> {
        let mut out = Vec::new();
        for bi in 0..b {
            for kv in 0..kvh {
                for j in 0..sk {
                    let at = bi * cap * kvh * d + j * kvh * d + kv * d;
                    out.extend_from_slice(&x[at..at + d]);
                }
            }
        }
        out
    };
    let want = reference(
        &q,
        &pack(&k),
        &pack(&v),
        [b, h, sq, d],
        [kvh, sk],
        |bi, _, i, j| mask[(bi * sq + i) * sk + j] != 0,
    );
    assert_close(&got, &want, "explicit mask");
    // A query whose every key is hidden reads nothing.
    let row = (0..b * sq).find(|r| r % sq % 11 == 3).unwrap();
    assert!(got[row * d..(row + 1) * d].iter().all(|&x| x == 0.0));
}

#[test]
fn half_precision_keys_and_values_match_the_reference_on_their_values() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    // Decoding (few rows, keys split over threads), a query block after a cache (GEMMs on
    // converted rows), and a fresh causal square.
    for &(kvh, groups, sq, sk) in &[(3, 3, 1, 3000), (2, 3, 40, 1000), (1, 4, 33, 33)] {
        let (b, h, d) = (1, kvh * groups, 16);
        let q = random(&mut rng, b * h * sq * d);
        let half =
            |x: Vec<f32>| -> Vec<crate::f16> { x.into_iter().map(crate::f16::from_f32).collect() };
        let (k, v) = (
            half(random(&mut rng, b * kvh * sk * d)),
            half(random(&mut rng, b * kvh * sk * d)),
        );
        let contiguous_half = |data| Strided {
            data,
            offset: 0,
            shape: [b, kvh, sk, d],
            strides: [kvh * sk * d, sk * d, d, 1],
        };
        let got = attention(
            contiguous(&q, [b, h, sq, d]),
            contiguous_half(&k),
            contiguous_half(&v),
            Mask::Causal,
            1.0 / (d as f32).sqrt(),
        );
        let got = head_major(&got, [b, h, sq, d]);
        let widen = |x: &[crate::f16]| -> Vec<f32> { x.iter().map(|x| x.to_f32()).collect() };
        let want = reference(
            &q,
            &widen(&k),
            &widen(&v),
            [b, h, sq, d],
            [kvh, sk],
            |_, _, i, j| j > sk - sq + i,
        );
        assert_close(
            &got,
            &want,
            &format!("f16: kvh {kvh} groups {groups} {sq}x{sk}"),
        );
    }
}

/// Gradients of plain attention in f64: `[dq, dk, dv]` for upstream gradient `go`.
#[allow(clippy::too_many_arguments)]
fn reference_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    go: &[f32],
    [b, h, sq, d]: [usize; 4],
    [kvh, sk]: [usize; 2],
    hidden: impl Fn(usize, usize, usize, usize) -> bool,
) -> [Vec<f64>; 3] {
    let scale = 1.0 / (d as f64).sqrt();
    let (mut dq, mut dk, mut dv) = (
        vec![0f64; q.len()],
        vec![0f64; k.len()],
        vec![0f64; v.len()],
    );
    for bi in 0..b {
        for hi in 0..h {
            let kv = hi / (h / kvh);
            for i in 0..sq {
                let qa = ((bi * h + hi) * sq + i) * d;
                let krow = |j: usize| ((bi * kvh + kv) * sk + j) * d;
                let s: Vec<Option<f64>> = (0..sk)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|x| q[qa + x] as f64 * k[krow(j) + x] as f64)
                            .sum();
                        (!hidden(bi, hi, i, j)).then_some(dot * scale)
                    })
                    .collect();
                let m = s
                    .iter()
                    .flatten()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    continue;
                }
                let e: Vec<f64> = s.iter().map(|s| s.map_or(0.0, |s| (s - m).exp())).collect();
                let total: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / total).collect();
                let dp: Vec<f64> = (0..sk)
                    .map(|j| {
                        (0..d)
                            .map(|x| go[qa + x] as f64 * v[krow(j) + x] as f64)
                            .sum()
                    })
                    .collect();
                let dsum: f64 = (0..sk).map(|j| p[j] * dp[j]).sum();
                for j in 0..sk {
                    let ds = p[j] * (dp[j] - dsum);
                    for x in 0..d {
                        dv[krow(j) + x] += p[j] * go[qa + x] as f64;
                        dq[qa + x] += scale * ds * k[krow(j) + x] as f64;
                        dk[krow(j) + x] += scale * ds * q[qa + x] as f64;
                    }
                }
            }
        }
    }
    [dq, dk, dv]
}

#[test]
fn gradients_match_the_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    // Causal squares, queries after a cache, GQA ratios 1/3/4, several key tiles; then an
    // explicit mask with rows that see nothing.
    for &(kvh, groups, sq, sk, explicit) in &[
        (1, 1, 1, 1, false),
        (2, 3, 40, 40, false),
        (1, 4, 70, 300, false),
        (3, 3, 1, 200, false),
        (2, 3, 45, 130, true),
    ] {
        let (b, h, d) = (2, kvh * groups, 8);
        let q = random(&mut rng, b * h * sq * d);
        let k = random(&mut rng, b * kvh * sk * d);
        let v = random(&mut rng, b * kvh * sk * d);
        let go = random(&mut rng, b * h * sq * d);
        let hide: Vec<u8> = (0..b * sq * sk)
            .map(|i| u8::from(rng.random_bool(0.5) || (i / sk) % 11 == 3))
            .collect();
        let mask = if explicit {
            Mask::Explicit {
                data: &hide,
                offset: 0,
                strides: [sq * sk, 0, sk, 1],
            }
        } else {
            Mask::Causal
        };
        let scale = 1.0 / (d as f32).sqrt();
        let (qs, ks, vs) = (
            contiguous(&q, [b, h, sq, d]),
            contiguous(&k, [b, kvh, sk, d]),
            contiguous(&v, [b, kvh, sk, d]),
        );
        let (out, lse) = attention_lse(qs, ks, vs, mask, scale);
        let got = attention_backward(
            qs,
            ks,
            vs,
            &out,
            contiguous(&go, [b, h, sq, d]),
            &lse,
            mask,
            scale,
        );
        let want = reference_backward(&q, &k, &v, &go, [b, h, sq, d], [kvh, sk], |bi, _, i, j| {
            if explicit {
                hide[(bi * sq + i) * sk + j] != 0
            } else {
                j > sk - sq + i
            }
        });
        let shapes = [[b, h, sq, d], [b, kvh, sk, d], [b, kvh, sk, d]];
        for ((name, shape), (g, w)) in ["dq", "dk", "dv"]
            .iter()
            .zip(shapes)
            .zip(got.iter().zip(&want))
        {
            let what = format!("{name}: kvh {kvh} groups {groups} {sq}x{sk}");
            assert_close_above(&head_major(g, shape), w, 1.0, &what);
        }
    }
}
