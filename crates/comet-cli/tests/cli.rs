//! The `comet` binary: exit codes, one-line errors, and `score`'s JSON and logits dump.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/parity")
        .join(name)
}

fn comet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comet"))
        .args(args)
        .output()
        .expect("run comet")
}

/// Asserts a failure with the given exit code and a one-line error containing `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error_lines.len(), 1, "expected one error line: {stderr}");
    assert!(
        error_lines[0].contains(needle),
        "`{needle}` not in: {stderr}"
    );
}

#[test]
fn missing_model_is_named() {
    let out = comet(&["generate", "--model", "/no/such/dir", "--prompt", "hi"]);
    assert_fails(&out, 1, "/no/such/dir");
}

#[test]
fn empty_prompt_is_refused() {
    let model = fixture("qwen3-tiny");
    let out = comet(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "  ",
    ]);
    assert_fails(&out, 1, "prompt is empty");
}

#[test]
fn non_utf8_prompt_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("prompt.txt");
    std::fs::write(&file, b"caf\xe9 au lait").unwrap();
    let out = comet(&["generate", "--prompt-file", file.to_str().unwrap()]);
    assert_fails(&out, 1, "prompt.txt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));
}

#[test]
fn missing_prompt_file_is_named() {
    let out = comet(&["generate", "--prompt-file", "/no/such/prompt.txt"]);
    assert_fails(&out, 1, "/no/such/prompt.txt");
}

#[test]
fn bad_arguments_exit_with_usage_error() {
    let out = comet(&["generate", "--prompt", "x", "--top-p", "2"]);
    assert_fails(&out, 2, "top-p");
    let out = comet(&["score", "--ids", "1,x,3"]);
    assert_fails(&out, 2, "--ids");
    let out = comet(&["frobnicate"]);
    assert_fails(&out, 2, "frobnicate");
}

#[test]
fn unknown_architecture_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let out = comet(&[
        "score",
        "--model",
        tmp.path().to_str().unwrap(),
        "--ids",
        "1,2",
    ]);
    assert_fails(&out, 1, "mamba");
}

#[test]
fn token_id_outside_the_vocabulary_is_refused() {
    let model = fixture("qwen3-tiny");
    let out = comet(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,999999",
    ]);
    assert_fails(&out, 1, "999999");
}

#[test]
fn text_needs_a_tokenizer() {
    let model = fixture("qwen3-tiny");
    let out = comet(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "hello",
    ]);
    assert_fails(&out, 1, "tokenizer");
}

#[test]
fn score_reports_nll_and_dumps_the_logits_transformers_computed() {
    let dir = fixture("llama-tiny");
    let reference = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&reference).unwrap();
    let ids: Vec<String> = reference
        .tensor("input_ids")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()).to_string())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("logits.safetensors");
    let out = comet(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--ids",
        &ids.join(","),
        "--dump-logits",
        dump.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tokens"], ids.len());
    assert_eq!(report["nll"].as_array().unwrap().len(), ids.len() - 1);
    let mean = report["mean_nll"].as_f64().unwrap();
    assert!((report["perplexity"].as_f64().unwrap() - mean.exp()).abs() < 1e-9);

    let dumped = std::fs::read(&dump).unwrap();
    let dumped = safetensors::SafeTensors::deserialize(&dumped).unwrap();
    let got = dumped.tensor("logits").unwrap();
    let want = reference.tensor("logits").unwrap();
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.dtype(), safetensors::Dtype::F32);
    let as_f32 = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (got, want) = (as_f32(got.data()), as_f32(want.data()));
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "dumped logits differ from transformers by {diff}"
    );
}

fn smollm2() -> PathBuf {
    let cache = std::env::var_os("COMET_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/comet"));
    let path = cache.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "run `bash scripts/fetch_assets.sh` first");
    path
}

#[test]
fn comet_score_runs_with_every_ablation_switch() {
    let model = fixture("qwen3-tiny");
    let mut full: Option<Vec<f64>> = None;
    let ids = (1..40)
        .map(|i| (i * 7 % 200).to_string())
        .collect::<Vec<_>>()
        .join(",");
    for switch in [
        None,
        Some("--no-gate"),
        Some("--no-temp"),
        Some("--no-global"),
    ] {
        let mut args = vec![
            "score",
            "--model",
            model.to_str().unwrap(),
            "--ids",
            &ids,
            "--comet",
            "--chunk-size",
            "16",
            "--memory-slots",
            "4",
        ];
        args.extend(switch);
        let out = comet(&args);
        assert!(
            out.status.success(),
            "{switch:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["nll"].as_array().unwrap().len(), 38);
        assert!(report["perplexity"].as_f64().unwrap().is_finite());
        let nll: Vec<f64> = report["nll"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        match &full {
            None => full = Some(nll),
            // Each switch really changes what the model computes (16-token chunks: most
            // tokens are read after some memory).
            Some(full) => {
                let diff = full
                    .iter()
                    .zip(&nll)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(diff > 1e-4, "{switch:?} leaves the NLL unchanged ({diff})");
            }
        }
    }
}

#[test]
fn ingest_then_answer_from_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("doc.txt");
    std::fs::write(
        &doc,
        "The grass is green. The sky is blue. The pass key is 4711. ".repeat(12),
    )
    .unwrap();
    let mem = tmp.path().join("doc.cmem");
    let model = smollm2();
    // A budget the first read already fills, so appending cannot grow the queue.
    let sizes = [
        "--chunk-size",
        "64",
        "--memory-slots",
        "8",
        "--temp-budget",
        "16",
    ];
    let mut args = vec![
        "ingest",
        "--model",
        model.to_str().unwrap(),
        "--input",
        doc.to_str().unwrap(),
        "--save",
        mem.to_str().unwrap(),
    ];
    args.extend(sizes);
    let out = comet(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Appending keeps the snapshot's size.
    let size = std::fs::metadata(&mem).unwrap().len();
    let mut args = vec![
        "ingest",
        "--model",
        model.to_str().unwrap(),
        "--input",
        doc.to_str().unwrap(),
        "--resume",
        mem.to_str().unwrap(),
    ];
    args.extend(sizes);
    assert!(comet(&args).status.success());
    assert!(std::fs::metadata(&mem).unwrap().len().abs_diff(size) < 64);

    let mut args = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--memory",
        mem.to_str().unwrap(),
        "--prompt",
        "The pass key is",
        "--max-new-tokens",
        "3",
    ];
    args.extend(sizes);
    let out = comet(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens read"));

    // Other CoMeT sizes make another model: a clear error, not a wrong answer.
    let out = comet(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--memory",
        mem.to_str().unwrap(),
        "--prompt",
        "x",
        "--chunk-size",
        "32",
    ]);
    assert_fails(&out, 1, "another model");
}

/// A tiny from-scratch training config in `dir` (byte-level vocabulary).
fn tiny_train_config(dir: &std::path::Path, extra: serde_json::Value) -> PathBuf {
    let model = serde_json::json!({
        "model_type": "llama", "vocab_size": 256, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": true, "max_position_embeddings": 512
    });
    std::fs::write(dir.join("model.json"), model.to_string()).unwrap();
    let mut config = serde_json::json!({
        "model": {"scratch": {"config": "model.json"}},
        "comet": {"chunk_size": 64, "memory_slots": 4, "compression_stride": 8,
                  "temp_budget": 16, "adapter_rank": 2},
        "data": [{"kind": "passkey", "min_length": 260, "max_length": 300},
                 {"kind": "copy", "min_length": 100, "max_length": 200}],
        "steps": 3, "batch_size": 2, "lr": 1e-3, "out": "run"
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.join("train.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// Runs `comet eval passkey` on `model` with `args`, writing `json`; returns its cells.
fn eval_passkey(
    model: &std::path::Path,
    args: &[&str],
    json: &std::path::Path,
) -> Vec<serde_json::Value> {
    let mut all = vec!["eval", "passkey", "--model", model.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let out = comet(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    report["cells"].as_array().unwrap().clone()
}

/// Training learns: the demonstration model's shape, from scratch, on 1-digit passkeys in
/// one chunk, finds every key afterwards (chance: 1 in 10). With the same seed the loss
/// leaves its plateau (~1.1) at step ~47 and ends near 0.15.
#[test]
fn train_then_eval_passkey_learns_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/recipes/passkey-small/model.json");
    let config = tiny_train_config(
        tmp.path(),
        serde_json::json!({
            "model": {"scratch": {"config": shape, "seed": 1}},
            "comet": {"chunk_size": 1024, "memory_slots": 8, "compression_stride": 8,
                      "temp_budget": 16, "adapter_rank": 8,
                      "use_global": false, "use_temp": false},
            "data": [{"kind": "passkey", "min_length": 256, "max_length": 320, "digits": 1}],
            "steps": 80, "batch_size": 16, "lr": 0.003, "warmup_steps": 20,
            "min_lr_ratio": 0.1, "weight_decay": 0.01, "grad_clip": 1.0, "seed": 1
        }),
    );
    let out = comet(&["train", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tokens/s"), "{stderr}");
    // A second run without --resume refuses to overwrite the checkpoint.
    let again = comet(&["train", "--config", config.to_str().unwrap()]);
    assert_fails(&again, 1, "--resume");
    let model = tmp.path().join("run/model");
    let json = tmp.path().join("grid.json");
    let grid = [
        "--digits",
        "1",
        "--lengths",
        "270,300",
        "--depths",
        "0,1",
        "--trials",
        "5",
        "--seed",
        "4",
    ];
    let cells = eval_passkey(&model, &grid, &json);
    assert_eq!(cells.len(), 4);
    for cell in &cells {
        assert_eq!(cell["trials"], 5);
        let accuracy = cell["accuracy"].as_f64().unwrap();
        assert!(accuracy >= 0.8, "learned accuracy {accuracy} in {cell}");
    }
    let log = std::fs::read_to_string(tmp.path().join("run/train_log.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert!(last["loss"].as_f64().unwrap() < 0.5, "final loss: {last}");
    assert_eq!(
        (cells[1]["length"].as_u64(), cells[1]["depth"].as_f64()),
        (Some(270), Some(1.0))
    );
    let png = json.with_extension("png");
    let drawn = std::fs::read(&png).unwrap();
    assert!(drawn.len() > 1000);
    // The heatmap is a function of the JSON alone: redrawn from it, byte for byte.
    std::fs::remove_file(&png).unwrap();
    let out = comet(&["eval", "replot", json.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&png).unwrap(), drawn);
    resume_keeps_cells_and_reads_the_rest(&model, &grid, &json, &cells);
}

/// `eval passkey --resume` keeps the cells a report holds, reads only the missing ones
/// (which come out as in one whole run), and refuses a report of another grid.
fn resume_keeps_cells_and_reads_the_rest(
    model: &std::path::Path,
    grid: &[&str],
    json: &std::path::Path,
    whole: &[serde_json::Value],
) {
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    report["cells"].as_array_mut().unwrap().truncate(2);
    // A kept cell is not read again: its marker survives.
    report["cells"][0]["seconds"] = 1234.5.into();
    std::fs::write(json, report.to_string()).unwrap();
    let resumed = eval_passkey(model, &[grid, &["--resume"]].concat(), json);
    assert_eq!(resumed.len(), whole.len());
    assert_eq!(resumed[0]["seconds"], 1234.5);
    let without_time = |cell: &serde_json::Value| {
        let mut cell = cell.clone();
        cell.as_object_mut().unwrap().remove("seconds");
        cell
    };
    for (a, b) in resumed.iter().zip(whole) {
        assert_eq!(without_time(a), without_time(b));
    }
    let mut other = grid.to_vec();
    *other.last_mut().unwrap() = "5";
    other.extend(["--resume", "--json", json.to_str().unwrap()]);
    let out = comet(
        &[
            &["eval", "passkey", "--model", model.to_str().unwrap()],
            &other[..],
        ]
        .concat(),
    );
    assert_fails(&out, 1, "another `seed`");
}

#[test]
fn bf16_training_runs_on_the_cpu_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(
        tmp.path(),
        serde_json::json!({"precision": "bf16", "steps": 2}),
    );
    let out = comet(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(tmp.path().join("run/train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    for line in log.lines() {
        let step: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(step["loss"].as_f64().unwrap().is_finite(), "{line}");
    }
}

/// The committed demonstration model still finds the key far beyond its training length
/// (2,048 tokens), and the gate ablation can be switched on over its stored config.
#[test]
fn the_committed_passkey_model_finds_the_key_at_8x_its_training_length() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/models/passkey-small");
    let tmp = tempfile::tempdir().unwrap();
    let cells = eval_passkey(
        &model,
        &[
            "--digits",
            "1",
            "--lengths",
            "16384",
            "--depths",
            "0,0.5",
            "--trials",
            "2",
        ],
        &tmp.path().join("grid.json"),
    );
    for cell in &cells {
        assert_eq!(cell["accuracy"], 1.0, "{cells:?}");
    }
    let out = comet(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--comet",
        "--no-gate",
        "--prompt",
        "The pass",
        "--max-new-tokens",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("chunk 64, 8 global slots (ungated)") && stderr.contains("trained memory"),
        "{stderr}"
    );
}

/// Losses of a run's log by step (a step re-run after a kill keeps its last entry).
fn losses_by_step(out: &std::path::Path) -> std::collections::BTreeMap<u64, f64> {
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

/// SIGKILL at seeded random moments (while loading, mid-step, mid-checkpoint) never leaves
/// a checkpoint that `--resume` cannot read, and the run that finally completes logs the
/// losses of the uninterrupted run.
#[cfg(unix)]
#[test]
fn a_run_killed_at_random_moments_resumes_to_the_uninterrupted_losses() {
    use rand::{Rng, SeedableRng};
    use std::time::{Duration, Instant};
    let extra = serde_json::json!({"steps": 12, "checkpoint_every": 1, "log_every": 1});
    let reference = tempfile::tempdir().unwrap();
    let config = tiny_train_config(reference.path(), extra.clone());
    let start = Instant::now();
    let out = comet(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = start.elapsed();
    let expected = losses_by_step(&reference.path().join("run"));
    assert_eq!(expected.len(), 12);

    let killed = tempfile::tempdir().unwrap();
    let config = tiny_train_config(killed.path(), extra);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut kills, mut finished, mut steps_at_kills) = (0, false, Vec::new());
    for attempt in 0..60 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_comet"))
            .args(["train", "--config", config.to_str().unwrap(), "--resume"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Later attempts run longer, so a machine whose start-up takes most of a run
        // still finishes.
        let share = rng.random_range(0.03..0.4) * (1.0 + attempt as f64 / 8.0);
        let deadline = Instant::now() + whole.mul_f64(share);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no handler runs
            child.wait().unwrap();
            kills += 1;
            let state = killed.path().join("run/checkpoint/trainer.json");
            let step = std::fs::read_to_string(state)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()?["step"].as_u64());
            steps_at_kills.push(step);
            continue;
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        finished = true;
        break;
    }
    eprintln!("{kills} kills; checkpoint step after each: {steps_at_kills:?}");
    assert!(
        finished && kills >= 3,
        "finished {finished} after {kills} kills"
    );
    let got = losses_by_step(&killed.path().join("run"));
    assert_eq!(got.len(), expected.len());
    for (step, want) in &expected {
        let loss = got[step];
        assert!(
            (loss - want).abs() <= 1e-6 * want.abs(),
            "step {step}: {loss} vs {want}"
        );
    }
}

/// A write that fails while a checkpoint is saved (here the file-size limit, as a full disk
/// would) ends the run with an error and keeps the previous checkpoint, which resumes.
#[cfg(unix)]
#[test]
fn a_failed_checkpoint_write_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tiny_train_config(
        tmp.path(),
        serde_json::json!({"steps": 4, "checkpoint_every": 1}),
    );
    let config = config.to_str().unwrap();
    let out = comet(&["train", "--config", config, "--stop-at", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = tmp.path().join("run/checkpoint/trainer.json");
    let step = || -> u64 {
        let text = std::fs::read_to_string(&state).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["step"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(step(), 2);
    // Files may grow to 8 KiB at most; SIGXFSZ ignored, so writes fail with EFBIG.
    let limited = Command::new("sh")
        .args(["-c", "ulimit -f 16; trap '' XFSZ; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_comet"))
        .args(["train", "--config", config, "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert_eq!(limited.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(step(), 2, "the checkpoint changed: {stderr}");
    let out = comet(&["train", "--config", config, "--resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(step(), 4);
}

/// The benchmark flags: fixed prompt ids cut to N, a fixed number of new tokens past any
/// end-of-sequence, the figures as JSON; the same tokens given as text continue alike.
#[test]
fn generate_reads_prompt_ids_and_writes_its_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("ids.json");
    // "The capital of France is" and a tail the cut drops.
    std::fs::write(&ids, r#"{"ids": [504, 3575, 282, 4649, 314, 1, 2, 3]}"#).unwrap();
    let model = smollm2();
    // Six greedy tokens after `prompt`; the stdout and the stats JSON.
    let generate = |name: &str, prompt: &[&str]| {
        let stats = tmp.path().join(name);
        let mut args = vec!["generate", "--model", model.to_str().unwrap()];
        args.extend_from_slice(prompt);
        args.extend_from_slice(&["--max-new-tokens", "6", "--ignore-eos"]);
        args.extend_from_slice(&["--stats-json", stats.to_str().unwrap()]);
        let out = comet(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = std::fs::read_to_string(&stats).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            stdout,
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        )
    };
    let five = [
        "--prompt-ids",
        ids.to_str().unwrap(),
        "--prompt-tokens",
        "5",
    ];
    let (_, stats) = generate("stats.json", &five);
    assert_eq!(stats["prefill_tokens"], 5);
    assert_eq!(stats["decode_tokens"], 5);
    assert_eq!(stats["generated_ids"].as_array().unwrap().len(), 6);
    assert!(stats["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    // The same prompt as text: the same ids, so the same greedy continuation.
    let text = ["--prompt", "The capital of France is"];
    let (stdout, text_stats) = generate("text.json", &text);
    assert!(stdout.contains("Paris"), "{stdout}");
    assert_eq!(text_stats["generated_ids"], stats["generated_ids"]);
    // A half-precision cache: the same greedy continuation here; not with CoMeT memory.
    let (_, half_stats) = generate("half.json", &[&text[..], &["--kv-cache", "f16"]].concat());
    assert_eq!(half_stats["generated_ids"], stats["generated_ids"]);
    let comet_half = comet(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--comet",
        "--kv-cache",
        "f16",
    ]);
    assert_fails(&comet_half, 1, "--kv-cache applies to plain decoding");
    let cut = comet(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        ids.to_str().unwrap(),
        "--prompt-tokens",
        "9",
    ]);
    assert_fails(&cut, 1, "--prompt-tokens 9: the prompt has 8 tokens");
}
