//! Training on a tiny model from scratch: the loss falls, a killed run resumes exactly,
//! a NaN stops the run, recomputation gives back-propagation's gradients, and the data
//! generators are deterministic.

mod common;

use burn::backend::Autodiff;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::DType;
// The backend cargo features select (flex here; cuda in scripts/gpu_check.sh).
use comet::backend::Backend as Selected;
use comet::comet::CometModel;
use comet::data::{Filler, Passkey, SourceConfig, TrainData, DEFAULT_FILLER};
use comet::layout::Sequence;
use comet::memory::{CometConfig, GlobalSource, TempSource};
use comet::train::{
    grads, join_parameter_graphs, recomputed_gradients, Silent, StepLog, TrainConfig, Trainer,
};
use comet::weights::random_llm;
use common::{autodiff_lock, byte_level_model_json, tiny_comet, tiny_config, tokens};

type TB = Autodiff<Selected>;

/// A scratch config (tiny model, byte-level vocabulary) training on `data` in `dir`.
fn config(dir: &std::path::Path, data: serde_json::Value, extra: serde_json::Value) -> TrainConfig {
    let model_json = byte_level_model_json(dir);
    let mut value = serde_json::json!({
        "model": {"scratch": {"config": model_json, "seed": 1}},
        "comet": {"chunk_size": 48, "memory_slots": 4, "compression_stride": 8,
                  "temp_budget": 12, "adapter_rank": 2},
        "data": data,
        "steps": 6, "batch_size": 2, "lr": 3e-3, "warmup_steps": 1,
        "grad_clip": 1.0, "checkpoint_every": 3, "seed": 5, "out": dir.join("run"),
    });
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

fn corpus(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("corpus.txt");
    std::fs::write(&path, format!("{DEFAULT_FILLER} ").repeat(60)).unwrap();
    path
}

fn text_data(dir: &std::path::Path) -> serde_json::Value {
    serde_json::json!([{"kind": "text", "path": corpus(dir), "length": 120}])
}

fn log(config: &TrainConfig) -> Vec<StepLog> {
    std::fs::read_to_string(config.out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_few_steps_lower_the_loss() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(
        tmp.path(),
        text_data(tmp.path()),
        serde_json::json!({"steps": 24}),
    );
    let mut trainer = Trainer::<TB>::new(config.clone(), false, &Default::default()).unwrap();
    trainer.run(&mut Silent).unwrap();
    let losses: Vec<f64> = log(&config).iter().map(|l| l.loss).collect();
    assert_eq!(losses.len(), 24);
    let (first, last) = (
        losses[..3].iter().sum::<f64>(),
        losses[21..].iter().sum::<f64>(),
    );
    assert!(last < 0.8 * first, "losses {losses:?}");
    // The exported model loads and reads.
    let loaded =
        comet::comet::load_comet::<Selected>(&config.out.join("model"), None, &Default::default())
            .unwrap();
    assert!(loaded.trained_memory);
    assert_eq!(loaded.model.comet.chunk_size, 48);
}

#[test]
fn a_killed_run_resumes_exactly() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let data = serde_json::json!([
        {"kind": "text", "path": corpus(tmp.path()), "length": 100},
        {"kind": "passkey", "min_length": 260, "max_length": 300},
    ]);
    let whole = config(
        tmp.path(),
        data.clone(),
        serde_json::json!({"out": tmp.path().join("a")}),
    );
    Trainer::<TB>::new(whole.clone(), false, &Default::default())
        .unwrap()
        .run(&mut Silent)
        .unwrap();

    let split = config(
        tmp.path(),
        data,
        serde_json::json!({"out": tmp.path().join("b")}),
    );
    let mut killed = Trainer::<TB>::new(split.clone(), false, &Default::default()).unwrap();
    for _ in 0..5 {
        killed.train_step().unwrap();
        if killed.step_count() == 3 {
            killed.save_checkpoint().unwrap();
        }
    }
    drop(killed); // Killed at step 5: steps 4 and 5 are lost.
    let refused = Trainer::<TB>::new(split.clone(), false, &Default::default());
    assert!(refused.err().unwrap().to_string().contains("--resume"));
    let mut resumed = Trainer::<TB>::new(split.clone(), true, &Default::default()).unwrap();
    assert_eq!(resumed.step_count(), 3);
    resumed.run(&mut Silent).unwrap();

    let strip = |logs: Vec<StepLog>| -> Vec<(usize, f64, f64, usize)> {
        logs.into_iter()
            .map(|l| (l.step, l.loss, l.grad_norm, l.tokens))
            .collect()
    };
    assert_eq!(strip(log(&whole)), strip(log(&split)));
}

#[test]
fn a_nan_loss_stops_training_and_keeps_the_last_checkpoint() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(
        tmp.path(),
        text_data(tmp.path()),
        serde_json::json!({"lr": 1e30, "grad_clip": null, "warmup_steps": 0, "checkpoint_every": 1}),
    );
    let mut trainer = Trainer::<TB>::new(config.clone(), false, &Default::default()).unwrap();
    let message = trainer.run(&mut Silent).unwrap_err().to_string();
    assert!(
        message.contains("NaN") || message.contains("inf"),
        "{message}"
    );
    assert!(message.contains("last good checkpoint (step"), "{message}");
    // The kept checkpoint resumes.
    let resumed = Trainer::<TB>::new(config, true, &Default::default()).unwrap();
    assert!(resumed.step_count() >= 1);
}

#[test]
fn a_config_change_refuses_to_resume() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let first = config(
        tmp.path(),
        text_data(tmp.path()),
        serde_json::json!({"steps": 1}),
    );
    Trainer::<TB>::new(first, false, &Default::default())
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    let changed = config(
        tmp.path(),
        text_data(tmp.path()),
        serde_json::json!({"lr": 1e-2}),
    );
    let message = Trainer::<TB>::new(changed, true, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("lr"), "{message}");
}

/// Largest change of the first layer's gate and of its global-memory adapter after one
/// optimizer step with `gate_lr_multiplier` = `multiplier`.
fn first_step_moves(dir: &std::path::Path, multiplier: f64) -> (f32, f32) {
    let config = config(
        dir,
        text_data(dir),
        serde_json::json!({"steps": 1, "gate_lr_multiplier": multiplier, "grad_clip": null, "warmup_steps": 0}),
    );
    let mut trainer = Trainer::<TB>::new(config, false, &Default::default()).unwrap();
    let weights = |t: &Trainer<TB>| {
        let global = &t.model().memory[0].global;
        (global.gate.weight.val(), global.adapter.down.weight.val())
    };
    let (gate, adapter) = weights(&trainer);
    trainer.train_step().unwrap();
    let (gate_after, adapter_after) = weights(&trainer);
    let moved = |a: Tensor<TB, 2>, b: Tensor<TB, 2>| (a - b).abs().max().into_scalar().elem();
    (moved(gate, gate_after), moved(adapter, adapter_after))
}

#[test]
fn the_gates_train_at_their_own_rate() {
    let _serial = autodiff_lock();
    let (one, ten) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (gate_1, adapter_1) = first_step_moves(one.path(), 1.0);
    let (gate_10, adapter_10) = first_step_moves(ten.path(), 10.0);
    // Adam's first step moves a weight by about its rate, whatever its gradient.
    assert!(gate_1 > 0.0 && adapter_1 > 0.0, "{gate_1} {adapter_1}");
    assert!(
        (gate_10 / gate_1 - 10.0).abs() < 0.5,
        "{gate_1} -> {gate_10}"
    );
    assert_eq!(adapter_1, adapter_10);
}

/// Also for a shared span whose start may lie in the previous chunk: its salience and tail
/// carry gradients from chunk to chunk.
#[test]
fn recomputation_gives_the_gradients_of_back_propagation() {
    let _serial = autodiff_lock();
    let device = Default::default();
    let cross_chunk = CometConfig {
        temp_source: TempSource::TextInput,
        global_source: GlobalSource::SharedSpan,
        cross_chunk_span: true,
        ..tiny_comet()
    };
    for comet in [tiny_comet(), cross_chunk] {
        let model = CometModel::new(random_llm::<TB>(&tiny_config(false), 9, &device), comet);
        let batch = [
            Sequence::language_model(tokens(50, 1, 0, 64)),
            Sequence::answer_only(tokens(37, 2, 0, 64), 30),
        ];
        let loss = model.loss(&batch).unwrap();
        let value = loss.clone().into_scalar().elem::<f64>();
        let mut plain = GradientsParams::from_grads(loss.backward(), &model);
        let (recomputed_loss, recomputed) =
            recomputed_gradients(&model, &model, &batch, &model.layout_builder(), 1.0).unwrap();
        assert!(
            (value - recomputed_loss).abs() < 1e-5,
            "{value} vs {recomputed_loss}"
        );
        let diff = grads::max_relative_difference(&model, &mut plain, &recomputed);
        assert!(diff < 1e-4, "largest relative gradient difference {diff}");
        assert!(plain.len() > 20, "{} parameters got gradients", plain.len());
    }
}

#[test]
fn joining_parameter_graphs_changes_no_gradient() {
    let _serial = autodiff_lock();
    let device = Default::default();
    // Two copies of one model, each with fresh parameters (a graph of their own each).
    let model = || {
        comet::train::checkpoint::stable_ids(CometModel::new(
            random_llm::<TB>(&tiny_config(false), 9, &device),
            tiny_comet(),
        ))
    };
    let batch = [Sequence::answer_only(tokens(90, 3, 0, 64), 70)];
    let (plain, joined) = (model(), model());
    let mut expected = GradientsParams::from_grads(plain.loss(&batch).unwrap().backward(), &plain);
    join_parameter_graphs(&joined);
    let grads = GradientsParams::from_grads(joined.loss(&batch).unwrap().backward(), &joined);
    assert!(grads.len() > 20, "{} parameters got gradients", grads.len());
    assert_eq!(expected.len(), grads.len());
    let diff = grads::max_relative_difference(&plain, &mut expected, &grads);
    assert!(diff < 1e-6, "largest relative gradient difference {diff}");
}

#[test]
fn passkey_samples_are_seeded_and_put_the_needle_at_the_depth() {
    let tokenizer = comet::tokenizer::byte_level().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for filler in [
        Filler::Repeated(DEFAULT_FILLER.into()),
        Filler::corpus(&corpus(tmp.path())).unwrap(),
    ] {
        let gen = Passkey::new(&tokenizer, filler);
        for depth in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let a = gen.sample(2000, depth, 7).unwrap();
            assert_eq!(a, gen.sample(2000, depth, 7).unwrap());
            assert_eq!(a.ids.len(), 2000);
            assert!(
                (a.depth - depth).abs() < 0.02,
                "asked {depth}, got {}",
                a.depth
            );
            let needle = tokenizer
                .decode(&a.ids[a.needle_position..a.needle_position + 22])
                .unwrap();
            assert_eq!(needle, format!(" The pass key is {}", a.key));
            let answer = tokenizer.decode(&a.ids[a.answer_start()..]).unwrap();
            assert_eq!(answer, format!(" {}", a.key));
            let seq = a.sequence();
            let predicted = seq.targets.iter().filter(|t| t.is_some()).count();
            assert_eq!(predicted, a.ids.len() - a.answer_start());
        }
        assert_ne!(
            gen.sample(2000, 0.5, 7).unwrap().key,
            gen.sample(2000, 0.5, 8).unwrap().key
        );
    }
    assert!(
        Passkey::new(&tokenizer, Filler::Repeated(DEFAULT_FILLER.into()))
            .sample(100, 0.5, 1)
            .is_err()
    );
}

#[test]
fn straddling_needles_cross_a_chunk_boundary_and_stay_whole() {
    let tokenizer = comet::tokenizer::byte_level().unwrap();
    let mut gen = Passkey::new(&tokenizer, Filler::Repeated(DEFAULT_FILLER.into()));
    gen.straddle = Some(128);
    let mut offsets = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let a = gen.sample(1500, 0.1 + 0.02 * seed as f64, seed).unwrap();
        assert_eq!(a.ids.len(), 1500);
        let (start, end) = (a.needle_position, a.needle_end);
        assert_ne!(start / 128, (end - 1) / 128, "seed {seed}: {start}..{end}");
        let needle = tokenizer.decode(&a.ids[start..end]).unwrap();
        assert!(needle.starts_with(&format!(" The pass key is {}.", a.key)));
        assert!(needle.ends_with(&format!("{} is the pass key.", a.key)));
        offsets.insert(start % 128);
    }
    // The boundary falls at many places inside the needle, not one.
    assert!(offsets.len() > 10, "{offsets:?}");
}

#[test]
fn training_data_is_a_pure_function_of_seed_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("qa.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            "{\"input\": \"Where is the cat?\", \"output\": \"In the hat.\"}\n",
            "\n",
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}\n"
        ),
    )
    .unwrap();
    let sources: Vec<SourceConfig> = serde_json::from_value(serde_json::json!([
        {"kind": "text", "path": corpus(tmp.path()), "length": 64},
        {"kind": "passkey", "min_length": 260, "max_length": 300},
        {"kind": "jsonl", "path": jsonl, "max_length": 64},
    ]))
    .unwrap();
    let tok = comet::tokenizer::byte_level().unwrap();
    let a = TrainData::open(&sources, tok.clone(), 3).unwrap();
    let b = TrainData::open(&sources, tok.clone(), 3).unwrap();
    let samples: Vec<Sequence> = (0..40).map(|i| a.sample(i).unwrap()).collect();
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s, &b.sample(i as u64).unwrap());
    }
    assert_ne!(samples[0], samples[1]);
    // Every source appears; JSONL answers are the only predicted tokens.
    let answers: Vec<String> = samples
        .iter()
        .filter(|s| s.tokens.len() < 64 && s.targets.iter().filter(|t| t.is_some()).count() < 20)
        .map(|s| {
            let start = s.targets.iter().position(|t| t.is_some()).unwrap() + 1;
            tok.decode(&s.tokens[start..]).unwrap()
        })
        .collect();
    assert!(answers.iter().any(|a| a == "In the hat."), "{answers:?}");
    assert!(answers.iter().any(|a| a == "Hello!"), "{answers:?}");
    assert!(samples.iter().any(|s| s.tokens.len() >= 260));
    assert!(samples.iter().any(|s| s.tokens.len() == 64));
}

#[test]
fn passkey_segments_pack_samples_each_asking_for_its_own_key() {
    let sources: Vec<SourceConfig> = serde_json::from_value(serde_json::json!([
        {"kind": "passkey", "min_length": 260, "max_length": 300, "digits": 2, "segments": 3},
    ]))
    .unwrap();
    let tok = comet::tokenizer::byte_level().unwrap();
    let data = TrainData::open(&sources, tok.clone(), 5).unwrap();
    for i in 0..4 {
        let s = data.sample(i).unwrap();
        assert!((780..=900).contains(&s.tokens.len()), "{}", s.tokens.len());
        let text = tok.decode(&s.tokens).unwrap();
        // Scored: " " and the 2 digits after each of the 3 questions, nothing else.
        let scored: Vec<usize> = (0..s.targets.len())
            .filter(|&j| s.targets[j].is_some())
            .collect();
        assert_eq!(scored.len(), 9, "{text}");
        let asked: Vec<&str> = text.split("The pass key is").collect();
        assert_eq!(asked.len(), 7, "3 needles and 3 questions: {text}");
        for (needle, answer) in [(1, 2), (3, 4), (5, 6)] {
            let key = &asked[needle][1..3];
            assert!(asked[answer].starts_with(&format!(" {key}")), "{text}");
        }
    }
    let bad: Vec<SourceConfig> = serde_json::from_value(serde_json::json!([
        {"kind": "passkey", "min_length": 260, "max_length": 300, "segments": 0},
    ]))
    .unwrap();
    let err = TrainData::open(&bad, tok, 5).err().unwrap().to_string();
    assert!(err.contains("segment"), "{err}");
}

/// The analytic gradient of the query/key projections (the attention pattern) matches the
/// loss change of a small step along it: the chunked forward's attention is trainable.
#[test]
fn attention_gradients_match_finite_differences() {
    let _serial = autodiff_lock();
    use burn::module::{list_param_ids, ParamId};
    use burn::optim::{Optimizer, SgdConfig};
    use std::collections::HashSet;

    let device = Default::default();
    let model = CometModel::new(
        random_llm::<TB>(&tiny_config(false), 4, &device),
        tiny_comet(),
    );
    let batch = [Sequence::language_model(tokens(30, 8, 0, 64))];
    let loss = model.loss(&batch).unwrap();
    let before = loss.clone().into_scalar().elem::<f64>();
    let mut all = GradientsParams::from_grads(loss.backward(), &model);
    let ids: HashSet<ParamId> = model
        .llm
        .layers
        .iter()
        .flat_map(|l| {
            list_param_ids(&l.self_attn.q_proj)
                .into_iter()
                .chain(list_param_ids(&l.self_attn.k_proj))
        })
        .collect();
    let mut qk = grads::take(&model, &mut all, &ids);
    let norm = grads::global_norm(&model, &mut qk);
    assert!(
        norm > 1e-6,
        "query/key projections get no gradient ({norm})"
    );
    // A step of size eps along -g lowers the loss by about eps * |g|^2.
    let eps = 1e-3 * before / (norm * norm);
    let stepped = SgdConfig::new()
        .init::<TB, CometModel<TB>>()
        .step(eps, model, qk);
    let after = stepped.loss(&batch).unwrap().into_scalar().elem::<f64>();
    let predicted = eps * norm * norm;
    let ratio = (before - after) / predicted;
    assert!(
        (ratio - 1.0).abs() < 0.1,
        "loss fell {} for a predicted {predicted}",
        before - after
    );
}

#[test]
fn a_run_moved_to_another_directory_resumes() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let (first, moved) = (tmp.path().join("first"), tmp.path().join("moved"));
    std::fs::create_dir_all(&first).unwrap();
    let mut model = tiny_config(true);
    model.vocab_size = 256;
    std::fs::write(
        first.join("model.json"),
        serde_json::to_vec(&model.to_hf_json()).unwrap(),
    )
    .unwrap();
    corpus(&first);
    // Paths through a variable, as the recipes write them with ${COMET_CACHE}.
    let file = first.join("train.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "model": {"scratch": {"config": "${COMET_TEST_MOVED_RUN}/model.json"}},
            "comet": {"chunk_size": 48, "memory_slots": 4, "compression_stride": 8,
                      "temp_budget": 12, "adapter_rank": 2},
            "data": [{"kind": "text", "path": "${COMET_TEST_MOVED_RUN}/corpus.txt", "length": 100}],
            "steps": 4, "batch_size": 2, "lr": 3e-3, "checkpoint_every": 2,
            "out": "${COMET_TEST_MOVED_RUN}/run",
        })
        .to_string(),
    )
    .unwrap();
    std::env::set_var("COMET_TEST_MOVED_RUN", &first);
    let config = TrainConfig::from_file(&file).unwrap();
    let mut trainer = Trainer::<TB>::new(config, false, &Default::default()).unwrap();
    trainer.train_step().unwrap();
    trainer.train_step().unwrap();
    trainer.save_checkpoint().unwrap();
    drop(trainer);

    // The whole folder moves (another machine, another cache directory).
    std::fs::rename(&first, &moved).unwrap();
    std::env::set_var("COMET_TEST_MOVED_RUN", &moved);
    let config = TrainConfig::from_file(&moved.join("train.json")).unwrap();
    let mut resumed = Trainer::<TB>::new(config.clone(), true, &Default::default()).unwrap();
    assert_eq!(resumed.step_count(), 2);
    resumed.run(&mut Silent).unwrap();
    assert_eq!(log(&config).len(), 4);
}

/// bf16 training computes in bf16 (its losses differ from f32's by rounding, no more) over
/// f32 master weights: an update far below one bf16 step of the weights still moves them.
#[test]
fn bf16_training_computes_in_bf16_and_keeps_f32_master_weights() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let q_proj = |trainer: &Trainer<TB>| -> (burn::tensor::DType, Vec<f32>) {
        let w = trainer.model().llm.layers[0].self_attn.q_proj.weight.val();
        (w.dtype(), w.into_data().to_vec().unwrap())
    };
    let run = |precision: &str, lr: f64, recompute: bool| {
        let mut config = config(
            tmp.path(),
            text_data(tmp.path()),
            serde_json::json!({"steps": 2, "precision": precision, "lr": lr, "warmup_steps": 0,
                               "recompute": recompute}),
        );
        config.out = tmp.path().join(format!("{precision}-{lr}-{recompute}"));
        let mut trainer = Trainer::<TB>::new(config.clone(), false, &Default::default()).unwrap();
        let before = q_proj(&trainer);
        trainer.run(&mut Silent).unwrap();
        (log(&config)[0].loss, before, q_proj(&trainer))
    };
    let (f32_loss, ..) = run("f32", 3e-3, false);
    let (bf16_loss, before, after) = run("bf16", 3e-3, false);
    let gap = (f32_loss - bf16_loss).abs();
    assert!(
        gap > 1e-6 && gap < 0.02 * f32_loss,
        "f32 {f32_loss}, bf16 {bf16_loss}"
    );
    assert_eq!((before.0, after.0), (DType::F32, DType::F32));
    // Weights of ~0.02 have bf16 steps of ~1e-4; AdamW moves each by ~1e-6 per step here.
    // Chunk-level recomputation in bf16 computes the same loss.
    let (recomputed, ..) = run("bf16", 3e-3, true);
    assert!(
        (recomputed - bf16_loss).abs() < 1e-3 * bf16_loss,
        "{recomputed} vs {bf16_loss}"
    );
    let (_, before, after) = run("bf16", 1e-6, false);
    let moved = before
        .1
        .iter()
        .zip(&after.1)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        moved * 10 > before.1.len() * 9,
        "{moved} of {} moved",
        before.1.len()
    );
}

/// Training context-parallel on 2 and 4 virtual ranks follows single-device training step
/// for step (the same losses; weights equal within float tolerance).
#[test]
fn context_parallel_training_follows_one_device() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let device = comet::backend::Device::default();
    let run = |ranks: usize| {
        let mut config = config(
            tmp.path(),
            text_data(tmp.path()),
            serde_json::json!({"steps": 3}),
        );
        config.out = tmp.path().join(format!("ranks-{ranks}"));
        let trainer = Trainer::<TB>::new(config.clone(), false, &device).unwrap();
        let mut trainer = trainer.with_ranks(vec![device; ranks]).unwrap();
        trainer.run(&mut Silent).unwrap();
        let w = trainer.model().memory[1].global.gate.weight.val();
        let losses: Vec<f64> = log(&config).iter().map(|l| l.loss).collect();
        (losses, w.into_data().to_vec::<f32>().unwrap())
    };
    let (losses, weights) = run(1);
    for ranks in [2, 4] {
        let (l, w) = run(ranks);
        for (a, b) in l.iter().zip(&losses) {
            assert!(
                (a - b).abs() < 1e-5 * b,
                "{ranks} ranks: losses {l:?} vs {losses:?}"
            );
        }
        assert!(
            common::max_abs_diff(&w, &weights) < 1e-5,
            "{ranks} ranks: weights differ"
        );
    }
}

/// Every committed training recipe still reads: data sources, CoMeT sizes, schedule.
#[test]
fn every_committed_recipe_parses() {
    let recipes = common::root().join("assets/recipes");
    let mut read = 0;
    for family in std::fs::read_dir(&recipes).unwrap() {
        for file in std::fs::read_dir(family.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            // model.json files are model configs that recipes point to.
            if path.file_name().is_some_and(|n| n == "model.json") {
                continue;
            }
            let config =
                TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!config.data.is_empty(), "{}", path.display());
            read += 1;
        }
    }
    assert!(read >= 10, "{read} recipes");
}
