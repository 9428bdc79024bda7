//! Memory in the base model's own format: text-input temporary entries and global
//! candidates made of text-token layer inputs (pooled, or a span in its own order, under
//! one gate), on a tiny random model and on hand-made inputs.

mod common;

use burn::module::Param;
use burn::prelude::*;
use comet::comet::CometModel;
use comet::layout::Sequence;
use comet::memory::{
    CometConfig, Gate, GlobalMemory, GlobalSource, MemoryModuleConfig, TempSource,
};
use common::{
    assert_decoding_follows_the_training_forward, assert_padding_is_invisible, max_abs_diff,
    tiny_comet, tiny_model, tokens, training_logits,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The backend cargo features select.
type B = comet::backend::Backend;

fn model(comet: CometConfig, tied: bool) -> CometModel<B> {
    tiny_model(comet, tied)
}

fn text_input(stride: usize, budget: usize) -> CometConfig {
    CometConfig {
        compression_stride: stride,
        temp_budget: budget,
        temp_source: TempSource::TextInput,
        ..tiny_comet()
    }
}

/// Text-input entries lay out no compression token; decoding still follows training
/// across stride and chunk boundaries.
#[test]
fn decoding_follows_training_with_text_input_entries() {
    assert_decoding_follows_the_training_forward(&model(text_input(4, 5), true), 20, 1e-4);
}

/// With text-input entries at stride 1, a budget that holds every earlier token, no global
/// memory and identity memory modules, the temporary memory holds exactly the layer inputs
/// full attention would project its keys and values from, at the same positions: reading
/// chunk by chunk gives full attention's logits.
#[test]
fn text_input_memory_at_stride_one_reads_as_full_attention() {
    let comet = CometConfig {
        use_global: false,
        ..text_input(1, 64)
    };
    let mut model = model(comet, false);
    for memory in &mut model.memory {
        let up = &mut memory.temporary.adapter.up;
        up.weight = burn::module::Param::from_tensor(up.weight.val().zeros_like());
    }
    let ids = tokens(40, 6, 0, 64);
    let chunked: Vec<f32> =
        training_logits(&model, &[Sequence::language_model(ids.clone())]).concat();
    let device = Default::default();
    let full: Vec<f32> = model
        .llm
        .forward(common::ids_tensor::<B>(&ids, &device), None)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap();
    assert_eq!(chunked.len(), full.len());
    let diff = max_abs_diff(&chunked, &full);
    assert!(diff < 1e-3, "chunked vs full attention: {diff}");
    // A budget that drops the oldest tokens no longer matches.
    let mut short = model.clone();
    short.comet.temp_budget = 8;
    let chunked = training_logits(&short, &[Sequence::language_model(ids)]).concat();
    assert!(max_abs_diff(&chunked, &full) > 1e-3);
}

/// Global candidates from the chunk's text-token layer inputs (pooled, or a span, per
/// layer or shared):
/// decoding follows training, padding stays invisible, and each computes something else
/// than readout candidates on the same weights.
#[test]
fn text_sourced_global_memory_follows_training_and_ignores_padding() {
    for source in [
        GlobalSource::TextPool,
        GlobalSource::TextSpan,
        GlobalSource::SharedSpan,
    ] {
        let comet = CometConfig {
            global_source: source,
            ..text_input(4, 5)
        };
        let model = model(comet, true);
        assert_decoding_follows_the_training_forward(&model, 20, 1e-4);
        assert_padding_is_invisible(&model);
        let mut readout = model.clone();
        readout.comet.global_source = GlobalSource::Readout;
        let ids = [Sequence::language_model(tokens(40, 6, 0, 64))];
        let change = max_abs_diff(
            &training_logits(&model, &ids).concat(),
            &training_logits(&readout, &ids).concat(),
        );
        assert!(change > 1e-4, "{source:?} changed nothing ({change})");
    }
}

fn cross_chunk(slots: usize) -> CometConfig {
    CometConfig {
        global_source: GlobalSource::SharedSpan,
        cross_chunk_span: true,
        memory_slots: slots,
        ..text_input(4, 5)
    }
}

/// A shared span that may start in the previous chunk's last tokens: decoding follows
/// training, padding stays invisible, and it reads otherwise than a span kept within its
/// chunk. Other global sources refuse the switch.
#[test]
fn cross_chunk_spans_follow_training_and_ignore_padding() {
    let model = model(cross_chunk(3), true);
    assert_decoding_follows_the_training_forward(&model, 20, 1e-4);
    assert_padding_is_invisible(&model);
    let mut within = model.clone();
    within.comet.cross_chunk_span = false;
    let ids = [Sequence::language_model(tokens(40, 6, 0, 64))];
    let change = max_abs_diff(
        &training_logits(&model, &ids).concat(),
        &training_logits(&within, &ids).concat(),
    );
    assert!(change > 1e-4, "the tail changed nothing ({change})");
    let text_span = CometConfig {
        global_source: GlobalSource::TextSpan,
        ..cross_chunk(3)
    };
    assert!(text_span.validate().is_err());
}

/// The tail a chunk carries holds the layer inputs of the last m - 1 text tokens read (at
/// layer 0 their embeddings), each sample's own in a batch where one ends mid-chunk.
#[test]
fn the_span_tail_holds_the_last_tokens_read() {
    let model = model(cross_chunk(4), true);
    let (long, short) = (tokens(36, 7, 0, 64), tokens(29, 8, 0, 64));
    let batch = [
        Sequence::language_model(long.clone()),
        Sequence::language_model(short.clone()),
    ];
    let builder = model.layout_builder();
    let mut reader = model.reader(&batch, &builder, model.empty_state(2), true);
    while reader.next().is_some() {}
    let tail = reader.into_state().layers[0].tail.clone().unwrap();
    let [_, rows, d] = tail.dims();
    assert_eq!(rows, 3);
    let device = Default::default();
    for (b, ids) in [long, short].iter().enumerate() {
        let last = common::ids_tensor::<B>(&ids[ids.len() - rows..], &device);
        let expected = values(model.llm.embed(last));
        let got = values(tail.clone().slice([b..b + 1, 0..rows, 0..d]));
        assert!(max_abs_diff(&got, &expected) < 1e-6, "sample {b}");
    }
}

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
    let new = values(memory.update(candidates.clone(), Some(state.clone()), Gate::Shared));
    let old = values(state);
    // Each slot keeps share g of its own dimension; with one gate g is the same for all.
    let kept: Vec<f32> = (0..3)
        .map(|i| new[i * HIDDEN + 1 + i] / old[i * HIDDEN + 1 + i])
        .collect();
    assert!(kept.iter().all(|g| (g - kept[0]).abs() < 1e-5), "{kept:?}");
    assert!(kept[0] > 0.0 && kept[0] < 1.0);
    let per_slot = values(memory.update(candidates, Some(one_hot(&[1, 2, 3])), Gate::PerSlot));
    let kept_each: Vec<f32> = (0..3)
        .map(|i| per_slot[i * HIDDEN + 1 + i] / old[i * HIDDEN + 1 + i])
        .collect();
    assert!(
        kept_each.iter().any(|g| (g - kept_each[0]).abs() > 1e-4),
        "{kept_each:?}"
    );
}

/// `[1, 1, 1]` holding `v`.
fn scalar(v: f32) -> Tensor<B, 3> {
    Tensor::from_data(TensorData::new(vec![v], [1, 1, 1]), &Default::default())
}

#[test]
fn the_salience_gate_keeps_the_span_that_scored_higher() {
    let memory = memory();
    let kept = one_hot(&[1, 2, 3]);
    let candidates = one_hot(&[4, 5, 6]);
    let kept_value = values(kept.clone())[1];
    let share_kept = |state: &[f32]| state[1] / kept_value;
    // A later, duller span leaves the kept one (and its score) nearly as it was...
    let (state, score) = memory.keep_salient(
        candidates.clone(),
        scalar(-4.0),
        Some((kept.clone(), scalar(6.0))),
    );
    assert!(share_kept(&values(state)) > 0.9999);
    assert!((values(score)[0] - 6.0).abs() < 1e-3);
    // ...a more salient one replaces it, score and all...
    let (state, score) = memory.keep_salient(
        candidates.clone(),
        scalar(6.0),
        Some((kept.clone(), scalar(-4.0))),
    );
    assert!(share_kept(&values(state)) < 1e-4);
    assert!((values(score)[0] - 6.0).abs() < 1e-3);
    // ...and equal scores blend half and half.
    let (state, _) = memory.keep_salient(candidates, scalar(1.0), Some((kept, scalar(1.0))));
    assert!((share_kept(&values(state)) - 0.5).abs() < 1e-4);
}
