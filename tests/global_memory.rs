//! The global memory's candidate sources on hand-made inputs: a text span is a passage of
//! the chunk in its own order, and one gate keeps or replaces a span whole.

use burn::module::Param;
use burn::prelude::*;
use comet::memory::{GlobalMemory, MemoryModuleConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

type B = comet::backend::Backend;

const HIDDEN: usize = 8;

/// A global memory whose down projection reads only dimension 0, strongly: the readouts
/// (all along dimension 0) then score a text token by its dimension-0 share alone.
fn memory() -> GlobalMemory<B> {
    let device = Default::default();
    let mut memory =
        MemoryModuleConfig::new(HIDDEN, 2).init_global::<B>(&mut StdRng::seed_from_u64(1), &device);
    let mut down = vec![0f32; HIDDEN * 2];
    down[0] = 100.0;
    memory.adapter.down.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(down, [HIDDEN, 2]),
        &device,
    ));
    memory
}

/// `[1, rows.len(), HIDDEN]` from one-hot rows (the dimension each row points along).
fn one_hot(rows: &[usize]) -> Tensor<B, 3> {
    let mut data = vec![0f32; rows.len() * HIDDEN];
    for (i, &d) in rows.iter().enumerate() {
        data[i * HIDDEN + d] = 1.0 + i as f32;
    }
    Tensor::from_data(
        TensorData::new(data, [1, rows.len(), HIDDEN]),
        &Default::default(),
    )
}

fn values(t: Tensor<B, 3>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().expect("f32")
}

#[test]
fn a_span_holds_consecutive_tokens_from_where_the_readouts_point() {
    let memory = memory();
    // Eight text tokens; only token 5 points along dimension 0, so the span starts there.
    let text = one_hot(&[1, 2, 3, 4, 5, 0, 6, 7]);
    let readouts = one_hot(&[0, 0, 0, 0]);
    let real = Tensor::<B, 3>::ones([1, 1, 8], &Default::default());
    let span = values(memory.span(readouts.clone(), text.clone(), real));
    let text_rows = values(text.clone());
    let row = |v: &[f32], i: usize| v[i * HIDDEN..(i + 1) * HIDDEN].to_vec();
    for j in 0..3 {
        let (got, want) = (row(&span, j), row(&text_rows, 5 + j));
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-4,
            "slot {j}: {got:?} vs token {}: {want:?}",
            5 + j
        );
    }
    // Slot 3 would be token 8: past the chunk's end, nothing.
    assert!(row(&span, 3).iter().all(|v| v.abs() < 1e-6));
    // Token 7 as padding: slot 2 is empty and the start stays at 5.
    let mut mask = vec![1f32; 8];
    mask[7] = 0.0;
    let real = Tensor::from_data(TensorData::new(mask, [1, 1, 8]), &Default::default());
    let span = values(memory.span(readouts, text, real));
    assert!(row(&span, 2).iter().all(|v| v.abs() < 1e-6));
    assert!((row(&span, 0)[0] - 6.0).abs() < 1e-4);
}

#[test]
fn one_gate_blends_every_slot_alike() {
    let memory = memory();
    let state = one_hot(&[1, 2, 3]);
    let candidates = one_hot(&[4, 5, 6]);
    let new = values(memory.update(candidates.clone(), Some(state.clone()), true, true));
    let old = values(state);
    // Each slot keeps share g of its own dimension; with one gate g is the same for all.
    let kept: Vec<f32> = (0..3)
        .map(|i| new[i * HIDDEN + 1 + i] / old[i * HIDDEN + 1 + i])
        .collect();
    assert!(kept.iter().all(|g| (g - kept[0]).abs() < 1e-5), "{kept:?}");
    assert!(kept[0] > 0.0 && kept[0] < 1.0);
    let per_slot = values(memory.update(candidates, Some(one_hot(&[1, 2, 3])), true, false));
    let kept_each: Vec<f32> = (0..3)
        .map(|i| per_slot[i * HIDDEN + 1 + i] / old[i * HIDDEN + 1 + i])
        .collect();
    assert!(
        kept_each.iter().any(|g| (g - kept_each[0]).abs() > 1e-4),
        "{kept_each:?}"
    );
}
