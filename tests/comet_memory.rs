//! The CoMeT recurrence on a tiny random model: inference agrees with the training forward,
//! padding is invisible, gradients cross chunks, ablation switches run.

mod common;

use burn::backend::Autodiff;
use burn::prelude::*;
use comet::comet::CometModel;
use comet::generate::{CometDecoder, Decoder};
use comet::layout::Sequence;
use comet::memory::CometConfig;
use comet::weights::random_llm;
use common::{
    assert_decoding_follows_the_training_forward, assert_padding_is_invisible, max_abs_diff,
    tiny_comet, tiny_config, tiny_model, tokens, training_logits,
};

/// The backend cargo features select (flex here; cuda in `scripts/gpu_check.sh`).
type B = comet::backend::Backend;

fn model(comet: CometConfig, tied: bool) -> CometModel<B> {
    tiny_model(comet, tied)
}

#[test]
fn inference_logits_equal_the_training_forward() {
    let model = model(tiny_comet(), true);
    assert_decoding_follows_the_training_forward(&model, 20, 1e-4);
}

/// Chunks that are not a multiple of the stride end in a partial block, which gets its own
/// compression token when the chunk is absorbed: decoding still follows training.
#[test]
fn decoding_follows_training_when_chunks_end_in_a_partial_block() {
    let comet = CometConfig {
        chunk_size: 10,
        ..tiny_comet()
    };
    assert_decoding_follows_the_training_forward(&model(comet, false), 20, 1e-4);
}

/// A prompt that ends on a chunk boundary (42 tokens, 3 chunks of 14) goes wholly into
/// memory at prefill, in the same pass: decoding then starts a new chunk, as training does.
#[test]
fn decoding_follows_training_when_the_prompt_fills_its_last_chunk() {
    let comet = CometConfig {
        chunk_size: 14,
        ..tiny_comet()
    };
    assert_decoding_follows_the_training_forward(&model(comet, true), 20, 1e-4);
}

#[test]
fn padded_samples_compute_what_they_compute_alone() {
    assert_padding_is_invisible(&model(tiny_comet(), false));
}

#[test]
fn loss_is_the_mean_token_nll_over_all_chunks() {
    let model = model(tiny_comet(), true);
    let seq = Sequence::language_model(tokens(30, 6, 0, 64));
    let loss: f32 = model
        .loss(std::slice::from_ref(&seq))
        .unwrap()
        .into_scalar();
    let chunks = training_logits(&model, std::slice::from_ref(&seq));
    let logits: Vec<f32> = chunks.concat();
    let mut nll = 0.0f64;
    for (i, row) in logits.chunks(64).enumerate() {
        let Some(target) = seq.targets[i] else {
            continue;
        };
        let max = row.iter().cloned().fold(f32::MIN, f32::max);
        let logsum = row
            .iter()
            .map(|&l| ((l - max) as f64).exp())
            .sum::<f64>()
            .ln()
            + max as f64;
        nll += logsum - row[target as usize] as f64;
    }
    let expected = nll / 29.0;
    assert!(
        (loss as f64 - expected).abs() < 1e-4,
        "{loss} vs {expected}"
    );
}

#[test]
fn last_chunk_loss_reaches_every_layer_memory_and_the_first_chunk() {
    type A = Autodiff<B>;
    let device = Default::default();
    let model = CometModel::new(
        random_llm::<A>(&tiny_config(false), 3, &device),
        tiny_comet(),
    );
    // Token 7 appears only in the first chunk; only the last chunk carries loss.
    let mut ids = tokens(36, 7, 8, 64);
    ids[2] = 7;
    let mut seq = Sequence::language_model(ids);
    for t in seq.targets.iter_mut().take(24) {
        *t = None;
    }
    let loss = model.loss(&[seq]).unwrap();
    let grads = loss.backward();
    let nonzero = |t: Tensor<B, 2>| t.abs().sum().into_scalar() > 0.0;
    for (l, memory) in model.memory.iter().enumerate() {
        let g =
            |p: &burn::module::Param<Tensor<A, 2>>| p.grad(&grads).map(nonzero).unwrap_or(false);
        assert!(g(&memory.global.gate.weight), "layer {l} gate");
        assert!(
            g(&memory.global.adapter.down.weight) && g(&memory.global.adapter.up.weight),
            "layer {l} global adapter"
        );
        assert!(
            g(&memory.temporary.adapter.down.weight) && g(&memory.temporary.adapter.up.weight),
            "layer {l} temporary adapter"
        );
    }
    let embed = model.llm.embed_tokens.weight.grad(&grads).unwrap();
    let row7: f32 = embed.clone().slice([7..8, 0..32]).abs().sum().into_scalar();
    assert!(row7 > 0.0, "no gradient reached the first chunk's token");
    let row0: f32 = embed.slice([0..1, 0..32]).abs().sum().into_scalar();
    assert_eq!(row0, 0.0, "a token that never appears got a gradient");
}

/// Each ablation switch, flipped on the same weights, runs (training loss, prefill, a
/// decoding step) and changes what the model computes.
#[test]
fn ablation_switches_run_and_change_the_output() {
    let ids = tokens(40, 8, 0, 64);
    let full = model(tiny_comet(), true);
    let prefill = |model: &CometModel<B>| {
        let mut decoder = CometDecoder::new(model, model.empty_state(1));
        let logits = decoder.prefill(&ids).unwrap();
        decoder.step(3).unwrap();
        logits
    };
    let reference = prefill(&full);
    for (gate, temp, global) in [
        (false, true, true),
        (true, false, true),
        (true, true, false),
        (true, false, false),
    ] {
        let mut model = full.clone();
        model.comet.use_gate = gate;
        model.comet.use_temp = temp;
        model.comet.use_global = global;
        let loss: f32 = model
            .loss(&[Sequence::language_model(ids.clone())])
            .unwrap()
            .into_scalar();
        assert!(loss.is_finite());
        let logits = prefill(&model);
        assert!(logits.iter().all(|l| l.is_finite()));
        let change = logits
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let what = format!("gate {gate}, temporary {temp}, global {global}");
        assert!(change > 1e-4, "{what}: logits unchanged ({change})");
    }
}

#[test]
fn memory_stays_the_same_size_however_long_the_input() {
    let model = model(tiny_comet(), true);
    let sizes = |n: usize| {
        let state = model
            .absorb(&tokens(n, 9, 0, 64), model.empty_state(1), |_| {})
            .unwrap();
        state
            .layers
            .iter()
            .map(|l| {
                (
                    l.global.as_ref().unwrap().dims(),
                    l.queue.as_ref().unwrap().dims(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(60), sizes(600));
    assert_eq!(sizes(60)[0], ([1, 3, 32], [1, 5, 32]));
}

#[test]
fn a_document_read_in_pieces_and_saved_answers_as_if_read_at_once() {
    assert_snapshots_answer_as_if_read_at_once(tiny_comet());
}

/// A shared span's salience travels in the snapshot too.
#[test]
fn a_shared_span_memory_saved_answers_as_if_read_at_once() {
    use comet::memory::{GlobalSource, TempSource};
    assert_snapshots_answer_as_if_read_at_once(CometConfig {
        temp_source: TempSource::TextInput,
        global_source: GlobalSource::SharedSpan,
        ..tiny_comet()
    });
}

/// So does the tail a span may start in.
#[test]
fn a_cross_chunk_span_memory_saved_answers_as_if_read_at_once() {
    use comet::memory::{GlobalSource, TempSource};
    assert_snapshots_answer_as_if_read_at_once(CometConfig {
        temp_source: TempSource::TextInput,
        global_source: GlobalSource::SharedSpan,
        cross_chunk_span: true,
        ..tiny_comet()
    });
}

fn assert_snapshots_answer_as_if_read_at_once(comet: CometConfig) {
    use comet::comet::{load_snapshot, save_snapshot, Snapshot};
    let model = model(comet, true);
    let document = tokens(50, 10, 0, 64);
    let question = tokens(7, 11, 0, 64);
    let empty = || Snapshot {
        state: model.empty_state(1),
        pending: Vec::new(),
    };
    // Chunks of 12: the first piece leaves 8 ids pending, the whole document 2.
    let first = model.ingest(&document[..20], empty(), |_| {}).unwrap();
    assert_eq!(first.pending, document[12..20]);
    let snapshot = model.ingest(&document[20..], first, |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("doc.cmem");
    save_snapshot(&model, &snapshot, &path).unwrap();
    let loaded = load_snapshot(&model, &path).unwrap();
    assert_eq!(loaded.state.tokens_read, vec![48]);
    assert_eq!(loaded.pending, document[48..]);
    assert_eq!(loaded.state.queue_lengths, snapshot.state.queue_lengths);

    let answer = |state, ids: &[u32]| {
        let mut decoder = CometDecoder::new(&model, state);
        let mut logits = decoder.prefill(ids).unwrap();
        logits.extend(decoder.step(5).unwrap());
        logits
    };
    let at_once = answer(
        model.empty_state(1),
        &[document.clone(), question.clone()].concat(),
    );
    let restored = answer(loaded.state, &[loaded.pending, question].concat());
    assert!(at_once
        .iter()
        .zip(&restored)
        .all(|(a, b)| a.to_bits() == b.to_bits()));

    // Snapshot size does not depend on the document's length.
    let long = model
        .ingest(&tokens(504, 12, 0, 64), empty(), |_| {})
        .unwrap();
    let long_path = tmp.path().join("long.cmem");
    save_snapshot(&model, &long, &long_path).unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&long_path).abs_diff(size(&path)) < 64);
    // A document of whole chunks leaves nothing pending, and loads back (found by fuzzing).
    let reloaded = load_snapshot(&model, &long_path).unwrap();
    assert!(reloaded.pending.is_empty());
    assert_eq!(reloaded.state.tokens_read, vec![504]);
}

#[test]
fn snapshot_of_another_model_is_refused() {
    use comet::comet::{load_snapshot, save_snapshot};
    let a = model(tiny_comet(), true);
    let b = model(
        CometConfig {
            use_gate: false,
            ..tiny_comet()
        },
        true,
    );
    let state = a
        .absorb(&tokens(30, 13, 0, 64), a.empty_state(1), |_| {})
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.cmem");
    let snapshot = comet::comet::Snapshot {
        state,
        pending: vec![],
    };
    save_snapshot(&a, &snapshot, &path).unwrap();
    let message = load_snapshot(&b, &path).unwrap_err().to_string();
    assert!(
        message.contains("a.cmem") && message.contains("another model"),
        "{message}"
    );
    std::fs::write(&path, b"garbage").unwrap();
    let message = load_snapshot(&a, &path).unwrap_err().to_string();
    assert!(message.contains("not a CoMeT memory snapshot"), "{message}");
}

#[test]
fn memory_weights_save_and_reload() {
    let device = Default::default();
    let mut trained = model(tiny_comet(), true);
    // Perturb a memory weight so "fresh" and "saved" differ.
    let gate = trained.memory[1].global.gate.weight.val() * 3.0;
    trained.memory[1].global.gate.weight = burn::module::Param::from_tensor(gate);
    let tmp = tempfile::tempdir().unwrap();
    trained.save_memory(tmp.path()).unwrap();
    let mut fresh = CometModel::new(
        random_llm::<B>(&tiny_config(true), 3, &device),
        tiny_comet(),
    );
    assert_ne!(fresh.fingerprint().unwrap(), trained.fingerprint().unwrap());
    fresh
        .load_memory(&tmp.path().join(comet::comet::MEMORY_FILE))
        .unwrap();
    assert_eq!(fresh.fingerprint().unwrap(), trained.fingerprint().unwrap());
    let saved = CometConfig::from_file(&tmp.path().join(comet::comet::CONFIG_FILE)).unwrap();
    assert_eq!(saved, tiny_comet());
}

#[test]
fn whole_model_saves_as_a_directory_every_command_loads() {
    let device = Default::default();
    let mut config = tiny_config(false);
    config.vocab_size = 256;
    let model = CometModel::new(random_llm::<B>(&config, 5, &device), tiny_comet());
    let tokenizer = comet::tokenizer::byte_level()
        .unwrap()
        .with_special_tokens(&model.special_tokens().added(tiny_comet().special_tokens()))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    model.save(tmp.path(), Some(&tokenizer)).unwrap();

    let loaded = comet::comet::load_comet::<B>(tmp.path(), None, &device).unwrap();
    assert!(loaded.trained_memory);
    let ids: Vec<u32> = "a text long enough for three chunks of twelve"
        .bytes()
        .map(u32::from)
        .collect();
    let logits = |m: &CometModel<B>| {
        let mut all = Vec::new();
        m.score(&ids, |l, _| {
            all.extend(l.into_data().to_vec::<f32>().unwrap())
        })
        .unwrap();
        all
    };
    assert!(max_abs_diff(&logits(&model), &logits(&loaded.model)) < 1e-6);
    let tok = loaded.tokenizer.unwrap();
    assert_eq!(tok.token_id("<|comet_slot|>"), Some(256));
    assert_eq!(tok.token_id("<|comet_compress|>"), Some(257));
    assert_eq!(tok.token_id("<|comet_readout_2|>"), Some(260));
    assert_eq!(tok.encode("pass key 42", false).unwrap().len(), 11);

    // A given config replaces the stored one where the weights allow (an ablation switch,
    // another chunk size), and is refused where they do not.
    let mut ablation = tiny_comet();
    ablation.use_gate = false;
    ablation.chunk_size += 4;
    let loaded = comet::comet::load_comet::<B>(tmp.path(), Some(ablation.clone()), &device);
    assert_eq!(loaded.unwrap().model.comet, ablation);
    let mut other = tiny_comet();
    other.memory_slots += 1;
    let err = comet::comet::load_comet::<B>(tmp.path(), Some(other), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("slots"), "{err}");
}

/// Puts fixed per-layer vectors in the first rows before every layer, as CoMeT's memory does.
struct FixedMemory(Vec<Tensor<B, 3>>);

impl comet::model::LayerHook<B> for FixedMemory {
    fn before_layer(&mut self, layer: usize, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d] = hidden.dims();
        let slots = self.0[layer].dims()[1];
        let text = hidden.slice([0..batch, slots..seq, 0..d]);
        Tensor::cat(vec![self.0[layer].clone(), text], 1)
    }
}

/// Memory slots only lend keys and values (their outputs are replaced before the next layer
/// and never read after the last): skipping their queries and MLP leaves every other row as
/// computing them does, under a causal mask and under a padding mask.
#[test]
fn memory_slots_lend_keys_and_values_and_change_no_other_row() {
    use comet::model::{AttentionMask, ForwardInput};
    let device = Default::default();
    let config = tiny_config(true);
    let llm = random_llm::<B>(&config, 5, &device);
    let (slots, seq, d) = (4, 11, config.hidden_size);
    let draw = |seed: u64, rows: usize| {
        let values: Vec<f32> = tokens(rows * d, seed, 0, 1000)
            .iter()
            .map(|&t| t as f32 / 500.0 - 1.0)
            .collect();
        Tensor::<B, 3>::from_data(TensorData::new(values, [1, rows, d]), &device)
    };
    let memory: Vec<_> = (0..config.num_layers)
        .map(|l| draw(l as u64, slots))
        .collect();
    // Key 6 hidden from every query (a padded position), causality kept.
    let padded: Vec<bool> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| j > i || (j == 6 && i != 6)))
        .collect();
    let masks = [
        AttentionMask::Causal,
        AttentionMask::Explicit(
            Tensor::<B, 2, Bool>::from_data(TensorData::new(padded, [seq, seq]), &device)
                .reshape([1, 1, seq, seq]),
        ),
    ];
    for mask in masks {
        let run = |skip: usize| {
            let input = ForwardInput {
                positions: Tensor::arange(0..seq as i64, &device).reshape([1, seq]),
                mask: mask.clone(),
                cache: None,
                memory: skip,
            };
            let out = llm.forward_hidden(draw(99, seq), input, &mut FixedMemory(memory.clone()));
            out.slice([0..1, slots..seq, 0..d])
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        };
        let (computed, skipped) = (run(0), run(slots));
        assert!(max_abs_diff(&computed, &skipped) < 1e-5);
        assert!(computed.iter().any(|v| v.abs() > 1e-3));
    }
}
