//! The flex kernels against Burn's generic ops, on random shapes: grouped-query ratios 1, 3
//! and 4, lengths up to 1,000, explicit masks, queries after a cache, strided inputs.

use burn::backend::Flex;
use burn::tensor::Distribution;

use super::*;

fn random<const D: usize>(shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// Both paths on the same inputs, within 1e-5 of the generic result's scale.
fn assert_paths_agree<const D: usize>(run: impl Fn() -> Tensor<Flex, D>, what: &str) {
    let fast: Vec<f32> = run().into_data().to_vec().unwrap();
    let generic: Vec<f32> = with_generic(&run).into_data().to_vec().unwrap();
    let scale = generic.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
    let worst = fast
        .iter()
        .zip(&generic)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-5 * scale,
        "{what}: max difference {worst} (scale {scale})"
    );
}

#[test]
fn attention_agrees_with_burn() {
    // (kv heads, groups, queries, keys)
    for (kvh, groups, queries, keys) in [
        (3, 1, 17, 17),
        (3, 3, 1, 900),
        (2, 3, 40, 1000),
        (1, 4, 200, 200),
        (2, 4, 7, 300),
    ] {
        let q = random([2, kvh * groups, queries, 32]);
        let (k, v) = (random([2, kvh, keys, 32]), random([2, kvh, keys, 32]));
        let what = format!("causal, {kvh} kv heads x {groups}, {queries} x {keys}");
        assert_paths_agree(
            || kernels::<Flex>().attention(q.clone(), k.clone(), v.clone(), &AttentionMask::Causal),
            &what,
        );
        // An explicit mask per sample, the same for every head.
        let hidden = random::<4>([2, 1, queries, keys]).greater_elem(0.5);
        let mask = AttentionMask::Explicit(hidden);
        assert_paths_agree(
            || kernels::<Flex>().attention(q.clone(), k.clone(), v.clone(), &mask),
            &what,
        );
    }
    // Queries read as a transposed view, as the model hands them over.
    let q = random::<4>([1, 20, 6, 16]).swap_dims(1, 2);
    let (k, v) = (random([1, 2, 20, 16]), random([1, 2, 20, 16]));
    assert_paths_agree(
        || kernels::<Flex>().attention(q.clone(), k.clone(), v.clone(), &AttentionMask::Causal),
        "strided",
    );
}

#[test]
fn linear_agrees_with_burn() {
    for (batch, seq, d_in, d_out) in [(1, 1, 576, 1536), (2, 7, 64, 96), (1, 300, 40, 33)] {
        let x = random([batch, seq, d_in]);
        let (w, b) = (random([d_in, d_out]), random([d_out]));
        let what = format!("{batch}x{seq}x{d_in} -> {d_out}");
        assert_paths_agree(
            || kernels::<Flex>().linear(x.clone(), w.clone(), Some(b.clone())),
            &what,
        );
        // Several layers of one input together (a decoding step's q/k/v), bias on one.
        let (w2, w3) = (random([d_in, 7]), random([d_in, d_out]));
        for i in 0..3 {
            assert_paths_agree(
                || {
                    let layers = vec![
                        (w.clone(), None),
                        (w2.clone(), Some(random([7]).mul_scalar(0.0) + 1.0)),
                        (w3.clone(), None),
                    ];
                    kernels::<Flex>().linears(x.clone(), layers).swap_remove(i)
                },
                &format!("{what}: layer {i} of three"),
            );
        }
        // A tied output head: the embeddings read transposed.
        let e = random([d_out, d_in]);
        assert_paths_agree(
            || kernels::<Flex>().linear(x.clone(), e.clone().transpose(), None),
            &what,
        );
    }
}

#[test]
fn position_writes_agree_with_burn() {
    let data = random::<4>([2, 3, 50, 8]).into_data();
    let values = random::<4>([2, 5, 3, 8]).swap_dims(1, 2);
    // A buffer held once (written in place) and one shared with a clone (copied first).
    let fresh = || Tensor::<Flex, 4>::from_data(data.clone(), &Default::default());
    assert_paths_agree(
        || kernels::<Flex>().write_positions(fresh(), 20, values.clone()),
        "in place",
    );
    let shared = fresh();
    assert_paths_agree(
        || kernels::<Flex>().write_positions(shared.clone(), 45, values.clone()),
        "shared",
    );
    let untouched: Vec<f32> = shared.into_data().to_vec().unwrap();
    assert_eq!(untouched, data.to_vec::<f32>().unwrap());
}

#[test]
fn a_half_precision_cache_agrees_with_burn() {
    use crate::model::KvCache;
    use burn::tensor::FloatDType;
    // A cache of f16 filled by a prompt, then one decoding step and a few queries over it.
    for queries in [1, 5] {
        let (k0, v0) = (random([1, 3, 700, 32]), random([1, 3, 700, 32]));
        let (k1, v1) = (random([1, 3, queries, 32]), random([1, 3, queries, 32]));
        let q = random([1, 9, queries, 32]);
        let run = || {
            let mut cache = KvCache::<Flex>::with_dtype(1, FloatDType::F16);
            cache.append(0, k0.clone(), v0.clone());
            let all = cache.append(0, k1.clone(), v1.clone());
            assert_eq!(all.keys.dtype(), burn::tensor::DType::F16);
            kernels::<Flex>().attention(q.clone(), all.keys, all.values, &AttentionMask::Causal)
        };
        assert_paths_agree(run, &format!("f16 cache, {queries} queries"));
    }
}

#[test]
fn row_operations_agree_with_burn() {
    let device = Default::default();
    let x = random([2, 33, 48]);
    let norm = burn::nn::RmsNormConfig::new(48)
        .with_epsilon(1e-5)
        .init::<Flex>(&device);
    let norm = RmsNorm {
        gamma: burn::module::Param::from_tensor(random([48])),
        ..norm
    };
    assert_paths_agree(|| kernels::<Flex>().rms_norm(x.clone(), &norm), "rms norm");
    let (gate, up) = (random([2, 33, 96]), random([2, 33, 96]));
    assert_paths_agree(
        || kernels::<Flex>().swiglu(gate.clone(), up.clone()),
        "swiglu",
    );
    // RoPE at arbitrary positions, on queries read as a transposed view.
    let config = crate::config::ModelConfig {
        architecture: crate::config::Architecture::Llama,
        vocab_size: 11,
        hidden_size: 80,
        intermediate_size: 12,
        num_layers: 1,
        num_heads: 5,
        num_kv_heads: 5,
        head_dim: 16,
        rope_theta: 10000.0,
        rope_scaling: None,
        rms_norm_eps: 1e-5,
        tie_word_embeddings: true,
        attention_bias: false,
        qk_norm: false,
        max_position_embeddings: 512,
        eos_token_ids: vec![],
        bos_token_id: None,
    };
    let positions = Tensor::<Flex, 2, Int>::from_data(
        TensorData::new(
            (0..2 * 33)
                .map(|p| (p * 37 % 500) as i64)
                .collect::<Vec<_>>(),
            [2, 33],
        ),
        &device,
    );
    let tables = crate::model::Rope::new(&config).tables(positions);
    let q = random::<4>([2, 33, 5, 16]).swap_dims(1, 2);
    assert_paths_agree(|| kernels::<Flex>().rope(q.clone(), &tables), "rope");
}

#[test]
fn cross_entropy_agrees_with_burn() {
    let logits = random([9, 1031]) * 10.0;
    let targets: Vec<usize> = vec![0, 1030, 5, 5, 512, 77, 1, 1029, 300];
    assert_paths_agree(|| kernels::<Flex>().nll(logits.clone(), &targets), "nll");
}
