//! Training's attention on flex (one autodiff operation with its own backward pass) against
//! Burn's composition of generic ops: the same output and the same gradients for queries,
//! keys and values, on random shapes (grouped-query ratios 1/3/4, queries after a cache,
//! explicit masks, lengths up to 1,000), under both checkpointing strategies. Its own
//! process: Burn's autodiff graph is global, and concurrent backward passes would mix.

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Distribution;
use comet::kernels::{kernels, with_generic};
use comet::model::AttentionMask;

/// Output and the gradients of `sum(out * w)` for q, k, v.
fn run<B: AutodiffBackend>(
    inputs: &[Tensor<Flex, 4>; 4],
    mask: Option<&Tensor<Flex, 4, Bool>>,
) -> Vec<Vec<f32>> {
    let device = Default::default();
    let lift = |t: &Tensor<Flex, 4>| Tensor::<B, 4>::from_data(t.to_data(), &device).require_grad();
    let [q, k, v] = [&inputs[0], &inputs[1], &inputs[2]].map(lift);
    let w = Tensor::<B, 4>::from_data(inputs[3].to_data(), &device);
    let mask = match mask {
        Some(m) => AttentionMask::Explicit(Tensor::from_data(m.to_data(), &device)),
        None => AttentionMask::Causal,
    };
    let out = kernels::<B>().attention(q.clone(), k.clone(), v.clone(), &mask);
    let grads = (out.clone() * w).sum().backward();
    let mut all = vec![out.into_data().to_vec().unwrap()];
    for t in [q, k, v] {
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

fn assert_agree(fast: &[Vec<f32>], generic: &[Vec<f32>], what: &str) {
    for (name, (a, b)) in ["out", "dq", "dk", "dv"]
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

fn random(shape: [usize; 4]) -> Tensor<Flex, 4> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

#[test]
fn attention_gradients_agree_with_burns_composition() {
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
        let fast = run::<Autodiff<Flex>>(&inputs, mask.as_ref());
        let generic = with_generic(|| run::<Autodiff<Flex>>(&inputs, mask.as_ref()));
        assert_agree(&fast, &generic, &what);
        if queries == keys && kvh == 3 {
            let balanced = run::<Autodiff<Flex, BalancedCheckpointing>>(&inputs, mask.as_ref());
            assert_agree(
                &balanced,
                &generic,
                &format!("{what}, balanced checkpointing"),
            );
        }
    }
}
