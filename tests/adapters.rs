//! Cheap fine-tuning: LoRA starts as the base, trains only adapters, memory and special
//! embeddings, checkpoints only those (resuming exactly), and exports an adapter directory
//! that loads on its own base and is refused by any other.

mod common;

use burn::backend::Autodiff;
use burn::prelude::*;
use burn::store::ModuleSnapshot;
// The backend cargo features select (flex here; cuda in scripts/gpu_check.sh).
use comet::backend::Backend as Selected;
use comet::comet::{load_comet, load_comet_adapter, CometModel};
use comet::model::{LoraConfig, LoraTarget};
use comet::train::{Silent, StepLog, TrainConfig, Trainer};
use comet::weights::random_llm;
use common::{autodiff_lock, byte_level_model_json, tiny_comet, tiny_config, tokens};

type TB = Autodiff<Selected>;

/// A small byte-level model trained from scratch for one step and exported as a whole
/// model directory (`dir/base/model`): the "pretrained" base the adapters go on.
fn base_model(dir: &std::path::Path, seed: u64) -> std::path::PathBuf {
    let model_json = byte_level_model_json(dir);
    let out = dir.join(format!("base-{seed}"));
    let config: TrainConfig = serde_json::from_value(serde_json::json!({
        "model": {"scratch": {"config": model_json, "seed": seed}},
        "comet": {"chunk_size": 48, "memory_slots": 4, "compression_stride": 8,
                  "temp_budget": 12, "adapter_rank": 2},
        "data": [{"kind": "passkey", "min_length": 300, "max_length": 300}],
        "steps": 1, "batch_size": 1, "lr": 1e-3, "seed": seed, "out": out,
    }))
    .unwrap();
    Trainer::<TB>::new(config, false, &Default::default())
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    out.join("model")
}

fn lora_config(base: &std::path::Path, out: &std::path::Path) -> TrainConfig {
    serde_json::from_value(serde_json::json!({
        "model": {"pretrained": base},
        "data": [{"kind": "passkey", "min_length": 400, "max_length": 450, "digits": 2,
                  "needles": 2, "min_depth": 0.0, "max_depth": 0.3}],
        "mode": "lora",
        "lora": {"rank": 2, "alpha": 4, "targets": ["q", "v", "o", "down"]},
        "steps": 6, "batch_size": 2, "lr": 1e-2, "warmup_steps": 1, "grad_clip": 1.0,
        "checkpoint_every": 3, "seed": 3, "out": out,
    }))
    .unwrap()
}

fn log(config: &TrainConfig) -> Vec<(usize, f64, f64)> {
    std::fs::read_to_string(config.out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<StepLog>(l).unwrap())
        .map(|l| (l.step, l.loss, l.grad_norm))
        .collect()
}

/// `(path, values)` of every parameter whose path matches `keep`.
fn params<B: Backend>(
    model: &CometModel<B>,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = model
        .collect(None, None, false)
        .into_iter()
        .filter(|s| keep(&s.full_path()))
        .map(|s| {
            let values = s.to_data().unwrap().convert::<f32>().to_vec().unwrap();
            (s.full_path(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn logits<B: Backend>(model: &CometModel<B>, ids: &[u32]) -> Vec<f32> {
    let mut all = Vec::new();
    model
        .score(ids, |logits, _| {
            all.extend(logits.into_data().convert::<f32>().to_vec::<f32>().unwrap())
        })
        .unwrap();
    all
}

#[test]
fn fresh_adapters_leave_the_base_unchanged() {
    let device = Default::default();
    let llm = random_llm::<Selected>(&tiny_config(false), 9, &device);
    let ids = tokens(40, 1, 0, 64);
    let plain = CometModel::new(llm.clone(), tiny_comet());
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec![
            LoraTarget::Q,
            LoraTarget::K,
            LoraTarget::Up,
            LoraTarget::Gate,
        ],
    };
    let adapted = CometModel::new(llm.with_lora(&lora, 1), tiny_comet());
    assert_eq!(logits(&plain, &ids), logits(&adapted, &ids));
    // Every layer got its four adapters.
    let count = params(&adapted, |p| p.contains("_lora.")).len();
    assert_eq!(count, 2 * 4 * 2);
}

#[test]
fn lora_trains_only_adapters_and_resumes_exactly() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let base = base_model(tmp.path(), 1);
    let whole = lora_config(&base, &tmp.path().join("a"));
    let mut trainer = Trainer::<TB>::new(whole.clone(), false, &Default::default()).unwrap();
    // Ids follow from parameter paths (the optimizer state is keyed by them): all distinct.
    let ids = burn::module::list_param_ids(trainer.model());
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    let frozen = |p: &str| !p.contains("_lora.") && p.starts_with("llm.");
    let before = params(trainer.model(), frozen);
    let lora_before = params(trainer.model(), |p| p.contains("_lora."));
    trainer.run(&mut Silent).unwrap();
    assert_eq!(
        before,
        params(trainer.model(), frozen),
        "a frozen weight moved"
    );
    assert_ne!(
        lora_before,
        params(trainer.model(), |p| p.contains("_lora."))
    );

    // The checkpoint holds what trains, not the base.
    let checkpoint = whole.out.join("checkpoint");
    assert!(checkpoint.join("trainable.safetensors").exists());
    assert!(!checkpoint.join("model.bin").exists());

    // Killed after step 5 (checkpoint at 3): the resumed run repeats the same losses.
    let split = lora_config(&base, &tmp.path().join("b"));
    let mut killed = Trainer::<TB>::new(split.clone(), false, &Default::default()).unwrap();
    for _ in 0..5 {
        killed.train_step().unwrap();
        if killed.step_count() == 3 {
            killed.save_checkpoint().unwrap();
        }
    }
    drop(killed);
    let mut resumed = Trainer::<TB>::new(split.clone(), true, &Default::default()).unwrap();
    assert_eq!(resumed.step_count(), 3);
    resumed.run(&mut Silent).unwrap();
    assert_eq!(log(&whole), log(&split));
}

#[test]
fn an_adapter_loads_on_its_base_and_is_refused_by_another() {
    let _serial = autodiff_lock();
    let tmp = tempfile::tempdir().unwrap();
    let base = base_model(tmp.path(), 1);
    let config = lora_config(&base, &tmp.path().join("run"));
    let mut trainer = Trainer::<TB>::new(config.clone(), false, &Default::default()).unwrap();
    trainer.run(&mut Silent).unwrap();
    let adapter = trainer.model_dir();
    assert!(adapter.ends_with("adapter"));
    for file in [
        "adapter.json",
        "comet.json",
        "comet.safetensors",
        "lora.safetensors",
    ] {
        assert!(adapter.join(file).exists(), "{file} missing");
    }
    let device = Default::default();
    let loaded = load_comet_adapter::<Selected>(&base, Some(&adapter), None, &device).unwrap();
    assert!(loaded.trained_memory);
    let ids = tokens(120, 4, 0, 256);
    let trained = logits(trainer.model(), &ids);
    let reloaded = logits(&loaded.model, &ids);
    assert!(common::max_abs_diff(&trained, &reloaded) < 1e-5);
    // Without the adapter the base reads differently.
    let plain = load_comet::<Selected>(&base, None, &device).unwrap();
    assert!(common::max_abs_diff(&trained, &logits(&plain.model, &ids)) > 1e-3);

    // Another base (other weights) is refused with a message naming both.
    let other = base_model(tmp.path(), 2);
    let err = load_comet_adapter::<Selected>(&other, Some(&adapter), None, &device)
        .err()
        .expect("another base must be refused")
        .to_string();
    assert!(err.contains("other weights"), "{err}");
    assert!(err.contains("adapter"), "{err}");

    // Continuing from the adapter: training starts from its weights.
    let mut more = lora_config(&base, &tmp.path().join("more"));
    more.adapter = Some(adapter.clone());
    more.lora = None;
    let next = Trainer::<TB>::new(more, false, &Default::default()).unwrap();
    assert!(common::max_abs_diff(&trained, &logits(next.model(), &ids)) < 1e-5);

    // Growing it onto two more projections: the trained adapters stay, the new ones start
    // at zero, so training goes on from what the adapter computes.
    let mut grown = lora_config(&base, &tmp.path().join("grown"));
    grown.adapter = Some(adapter.clone());
    let lora = grown.lora.as_mut().unwrap();
    lora.targets.extend([LoraTarget::Gate, LoraTarget::Up]);
    let wider = Trainer::<TB>::new(grown.clone(), false, &Default::default()).unwrap();
    assert!(common::max_abs_diff(&trained, &logits(wider.model(), &ids)) < 1e-5);
    let adapters = |m: &CometModel<TB>| params(m, |p| p.contains("_lora."));
    let (old, new) = (adapters(trainer.model()), adapters(wider.model()));
    assert_eq!(new.len(), old.len() * 6 / 4);
    assert!(
        old.iter().all(|p| new.contains(p)),
        "a trained adapter changed"
    );
    // Another rank cannot continue it.
    grown.lora.as_mut().unwrap().rank = 4;
    let err = Trainer::<TB>::new(grown, false, &Default::default())
        .err()
        .expect("another rank must be refused")
        .to_string();
    assert!(err.contains("same rank"), "{err}");
}

#[test]
fn samples_with_several_needles_ask_for_one_named_key() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus.txt");
    std::fs::write(
        &corpus,
        "A sentence of plain text. Another one here! ".repeat(200),
    )
    .unwrap();
    let tokenizer = comet::tokenizer::byte_level().unwrap();
    let mut gen =
        comet::data::Passkey::new(&tokenizer, comet::data::Filler::corpus(&corpus).unwrap());
    gen.needles = 3;
    let sample = gen.sample(1500, 0.2, 7).unwrap();
    let text = tokenizer.decode(&sample.ids).unwrap();
    assert_eq!(text.matches("Remember it.").count(), 3);
    let answer = tokenizer
        .decode(&sample.ids[sample.answer_start()..])
        .unwrap();
    assert_eq!(answer.trim(), sample.key);
    let question = text.rsplit("What is the pass key of the ").next().unwrap();
    let name = question.split('?').next().unwrap();
    assert!(
        text.contains(&format!("The pass key of the {name} is {}.", sample.key)),
        "{text}"
    );
    let needle = tokenizer
        .decode(&sample.ids[sample.needle_position..sample.needle_end])
        .unwrap();
    assert!(
        needle.contains(&sample.key) && needle.contains(name),
        "{needle}"
    );
}

#[test]
fn ask_all_samples_score_every_named_key_and_nothing_else() {
    let sources: Vec<comet::data::SourceConfig> = serde_json::from_value(serde_json::json!([
        {"kind": "passkey", "min_length": 700, "max_length": 800, "digits": 3,
         "needles": 4, "ask_all": true},
    ]))
    .unwrap();
    let tok = comet::tokenizer::byte_level().unwrap();
    let data = comet::data::TrainData::open(&sources, tok.clone(), 3).unwrap();
    for i in 0..3 {
        let s = data.sample(i).unwrap();
        let text = tok.decode(&s.tokens).unwrap();
        // Byte-level: " " and 3 digits scored after each of the 4 questions.
        let scored: Vec<usize> = (0..s.targets.len())
            .filter(|&j| s.targets[j].is_some())
            .collect();
        assert_eq!(scored.len(), 16, "{text}");
        let questions: Vec<&str> = text.split("What is the pass key of the ").skip(1).collect();
        assert_eq!(questions.len(), 4, "{text}");
        let mut names = Vec::new();
        for q in questions {
            let name = q.split('?').next().unwrap();
            let answer = q.split(" is ").nth(1).unwrap();
            let key = &answer[..3];
            assert!(
                text.contains(&format!("The pass key of the {name} is {key}.")),
                "{name} {key}: {text}"
            );
            names.push(name.to_string());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 4, "every needle asked once: {text}");
        // Each scored position predicts a digit or the space before a key.
        for &j in &scored {
            let t = tok.decode(&[s.targets[j].unwrap()]).unwrap();
            assert!(t == " " || t.chars().all(|c| c.is_ascii_digit()), "{t:?}");
        }
    }
}
