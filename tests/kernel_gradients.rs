//! Training's kernels on flex (attention, RoPE, RMSNorm, SwiGLU: each one autodiff
//! operation with its own backward pass) against Burn's compositions of generic ops: the
//! same outputs and the same gradients for every input, on random shapes (attention:
//! grouped-query ratios 1/3/4, queries after a cache, explicit masks, lengths up to 1,000),
//! under both checkpointing strategies. Its own process: Burn's autodiff graph is global,
//! and concurrent backward passes would mix.

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use comet::kernels::{kernels, with_generic};
use comet::model::AttentionMask;

mod common;

/// Attention's output and gradients for q, k, v (`inputs`: q, k, v, and the weights of the
/// summed output). The output is read as the model reads it, heads swapped with positions,
/// so the gradient arrives through a transposed view.
fn attention<B: AutodiffBackend>(
    inputs: &[Tensor<Flex, 4>; 4],
    mask: Option<&Tensor<Flex, 4, Bool>>,
) -> Vec<Vec<f32>> {
    let mask = match mask {
        Some(m) => AttentionMask::Explicit(Tensor::from_data(m.to_data(), &Default::default())),
        None => AttentionMask::Causal,
    };
    let weights = inputs[3].clone().swap_dims(1, 2);
    grads_of(&inputs[..3], &weights, |t: &[Tensor<B, 4>]| {
        kernels::<B>()
            .attention(t[0].clone(), t[1].clone(), t[2].clone(), &mask)
            .swap_dims(1, 2)
    })
}

fn assert_agree(fast: &[Vec<f32>], generic: &[Vec<f32>], what: &str) {
    assert_eq!(fast.len(), generic.len(), "{what}");
    for (name, (a, b)) in ["output", "gradient 1", "gradient 2", "gradient 3"]
        .iter()
        .zip(fast.iter().zip(generic))
    {
        assert_eq!(a.len(), b.len(), "{what} {name}");
        let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-5 * scale,
            "{what} {name}: max difference {worst} (scale {scale})"
        );
    }
}

fn random<const D: usize>(shape: [usize; D]) -> Tensor<Flex, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// One backward pass at a time in this process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn attention_gradients_agree_with_burns_composition() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // (kv heads, groups, queries, keys, explicit mask)
    for (kvh, groups, queries, keys, explicit) in [
        (3, 1, 17, 17, false),
        (3, 3, 64, 64, false),
        (2, 4, 40, 300, false),
        (1, 3, 1000, 1000, false),
        (2, 3, 33, 200, true),
    ] {
        let inputs = [
            random([2, kvh * groups, queries, 16]),
            random([2, kvh, keys, 16]),
            random([2, kvh, keys, 16]),
            random([2, kvh * groups, queries, 16]),
        ];
        let mask = explicit.then(|| random([2, 1, queries, keys]).greater_elem(0.5));
        let what = format!("{kvh} kv heads x {groups}, {queries} x {keys}, explicit {explicit}");
        let fast = attention::<Autodiff<Flex>>(&inputs, mask.as_ref());
        let generic = with_generic(|| attention::<Autodiff<Flex>>(&inputs, mask.as_ref()));
        assert_agree(&fast, &generic, &what);
        if queries == keys && kvh == 3 {
            let balanced =
                attention::<Autodiff<Flex, BalancedCheckpointing>>(&inputs, mask.as_ref());
            assert_agree(
                &balanced,
                &generic,
                &format!("{what}, balanced checkpointing"),
            );
        }
    }
}

/// Output and gradients of `sum(f(inputs) * w)` for every input, on backend `B`.
fn grads_of<B: AutodiffBackend, const D: usize, const E: usize>(
    inputs: &[Tensor<Flex, D>],
    w: &Tensor<Flex, E>,
    f: impl Fn(&[Tensor<B, D>]) -> Tensor<B, E>,
) -> Vec<Vec<f32>> {
    let device = Default::default();
    let lifted: Vec<Tensor<B, D>> = inputs
        .iter()
        .map(|t| Tensor::from_data(t.to_data(), &device).require_grad())
        .collect();
    let out = f(&lifted);
    let grads = (out.clone() * Tensor::from_data(w.to_data(), &device))
        .sum()
        .backward();
    let mut all = vec![out.into_data().to_vec().unwrap()];
    for t in &lifted {
        all.push(
            t.grad(&grads)
                .expect("a gradient")
                .into_data()
                .to_vec()
                .unwrap(),
        );
    }
    all
}

#[test]
fn row_operation_gradients_agree_with_burns_compositions() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    type B = Autodiff<Flex>;
    let (gate, up) = (random([2, 33, 96]), random([2, 33, 96]));
    let w = random([2, 33, 96]);
    let swiglu = |t: &[Tensor<B, 3>]| kernels::<B>().swiglu(t[0].clone(), t[1].clone());
    let fast = grads_of(&[gate.clone(), up.clone()], &w, swiglu);
    let generic = with_generic(|| grads_of(&[gate, up], &w, swiglu));
    assert_agree(&fast, &generic, "swiglu");

    // RMSNorm: gradients for the input and the weight.
    let x = random([2, 33, 48]);
    let (gamma, w) = (random([48]), random([2, 33, 48]));
    let norm = |x: Tensor<B, 3>, gamma: Tensor<B, 1>| {
        let config = burn::nn::RmsNormConfig::new(48).with_epsilon(1e-5);
        let norm = burn::nn::RmsNorm {
            gamma: burn::module::Param::from_tensor(gamma),
            ..config.init::<B>(&Default::default())
        };
        kernels::<B>().rms_norm(x, &norm)
    };
    let device = Default::default();
    let run = || {
        let x = Tensor::<B, 3>::from_data(x.to_data(), &device).require_grad();
        let g = Tensor::<B, 1>::from_data(gamma.to_data(), &device).require_grad();
        let out = norm(x.clone(), g.clone());
        let grads = (out.clone() * Tensor::from_data(w.to_data(), &device))
            .sum()
            .backward();
        [
            out.into_data(),
            x.grad(&grads).unwrap().into_data(),
            g.grad(&grads).unwrap().into_data(),
        ]
        .map(|d| d.to_vec::<f32>().unwrap())
        .to_vec()
    };
    assert_agree(&run(), &with_generic(run), "rms norm");

    // RoPE at arbitrary positions, on queries read as a transposed view.
    let config = common::tiny_config(true);
    let positions: Vec<i64> = (0..2 * 33).map(|p| (p * 37 % 500) as i64).collect();
    let tables = comet::model::Rope::new(&config).tables(Tensor::<B, 2, Int>::from_data(
        TensorData::new(positions, [2, 33]),
        &device,
    ));
    let (x, w) = (random([2, 33, 4, 8]), random([2, 4, 33, 8]));
    let rope = |t: &[Tensor<B, 4>]| kernels::<B>().rope(t[0].clone().swap_dims(1, 2), &tables);
    let fast = grads_of(std::slice::from_ref(&x), &w, rope);
    let generic = with_generic(|| grads_of(&[x], &w, rope));
    assert_agree(&fast, &generic, "rope");
}

#[test]
fn cross_entropy_and_its_gradient_agree_with_burns_composition() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    type B = Autodiff<Flex>;
    // Logits at a real model's scale (tens), a vocabulary not a multiple of 8, repeated
    // targets, first and last ids.
    let (rows, vocab) = (37, 4099);
    let logits = random([rows, vocab]) * 8.0;
    let targets: Vec<usize> = (0..rows)
        .map(|r| (r * 977) % vocab)
        .chain([0, vocab - 1])
        .collect();
    let logits = Tensor::cat(vec![logits, random([2, vocab]) * 8.0], 0);
    let weight = Tensor::<Flex, 1>::from_floats([0.3], &Default::default());
    let nll = |t: &[Tensor<B, 2>]| kernels::<B>().nll(t[0].clone(), &targets);
    let fast = grads_of(std::slice::from_ref(&logits), &weight, nll);
    let generic = with_generic(|| grads_of(&[logits], &weight, nll));
    assert_agree(&fast, &generic, "cross-entropy");
}

#[test]
fn linear_gradients_agree_with_burns_linear() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    type B = Autodiff<Flex>;
    let device = Default::default();
    // With and without a bias; a weight read transposed (a tied output head), an input
    // read through a transposed view; a frozen weight (no gradient, no activation kept).
    for (rows, d_in, d_out, bias, transposed, frozen) in [
        (33, 48, 80, true, false, false),
        (1, 48, 80, false, false, false),
        (70, 40, 96, false, true, false),
        (20, 48, 64, true, true, true),
    ] {
        let x = random([2, rows, d_in]);
        let w = match transposed {
            true => random([d_out, d_in]),
            false => random([d_in, d_out]),
        };
        let b = random([d_out]);
        let upstream = random([2, rows, d_out]);
        let run = || {
            let lift = |t: &Tensor<Flex, 2>| Tensor::<B, 2>::from_data(t.to_data(), &device);
            let x = Tensor::<B, 3>::from_data(x.to_data(), &device).require_grad();
            let w = if frozen {
                lift(&w)
            } else {
                lift(&w).require_grad()
            };
            let b = Tensor::<B, 1>::from_data(b.to_data(), &device).require_grad();
            let weight = if transposed {
                w.clone().transpose()
            } else {
                w.clone()
            };
            let input = x.clone().swap_dims(0, 1).swap_dims(0, 1);
            let out = kernels::<B>().linear(input, weight, bias.then(|| b.clone()));
            let grads = (out.clone() * Tensor::from_data(upstream.to_data(), &device))
                .sum()
                .backward();
            let mut all = vec![out.into_data(), x.grad(&grads).unwrap().into_data()];
            if !frozen {
                all.push(w.grad(&grads).unwrap().into_data());
            }
            if bias {
                all.push(b.grad(&grads).unwrap().into_data());
            }
            all.into_iter()
                .map(|d| d.to_vec::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        let what = format!(
            "linear {rows}x{d_in}x{d_out} bias {bias} transposed {transposed} frozen {frozen}"
        );
        assert_agree(&run(), &with_generic(run), &what);
    }
}
