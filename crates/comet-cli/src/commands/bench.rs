//! `comet bench`: prefill time, throughput and peak resident memory of CoMeT and of full
//! attention against input length, each run in a fresh process so peak memory is honest.
//! Writes `bench.json` and `bench.png` (log-log time and memory against length).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use comet::backend::{self, Backend};
use comet::comet::CometModel;
use comet::config::ModelConfig;
use comet::memory::CometConfig;
use serde::{Deserialize, Serialize};

use super::comet_args::CometArgs;
use crate::plot::{log_log_panels, Panel, Series};

/// Arguments of `comet bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Model to measure (default: SmolLM2-135M-Instruct).
    #[arg(long, conflicts_with = "random_config")]
    model: Option<PathBuf>,
    /// Measure a randomly initialised model of this Hugging Face `config.json` instead.
    #[arg(long)]
    random_config: Option<PathBuf>,
    /// Comma-separated input lengths in tokens.
    #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096,8192")]
    lengths: Vec<usize>,
    /// Which paths to measure.
    #[arg(long, value_delimiter = ',', default_value = "comet,full")]
    modes: Vec<Mode>,
    /// Text to tokenize (repeated to length); random token ids when absent.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Stop measuring a mode at longer lengths once one run takes longer than this.
    #[arg(long, default_value_t = 1800.0)]
    max_seconds: f64,
    /// Output directory for bench.json and bench.png.
    #[arg(long)]
    out: PathBuf,
    /// Only redraw `bench.png` in `--out` from its `bench.json` (nothing is measured).
    #[arg(long)]
    replot: bool,
    #[command(flatten)]
    comet: CometArgs,
}

/// What one child process measures.
#[derive(Serialize, Deserialize, Clone)]
pub struct Spec {
    model: Option<PathBuf>,
    random_config: Option<PathBuf>,
    text: Option<PathBuf>,
    comet: Option<CometConfig>,
    mode: Mode,
    length: usize,
}

/// What a benchmark reads its input with.
#[derive(clap::ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// CoMeT: chunk by chunk through memory (constant memory).
    Comet,
    /// The plain model attending to the whole input.
    Full,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Comet => "comet",
            Mode::Full => "full",
        })
    }
}

/// Prefill time and peak memory against input length, one line per mode, into `png`.
fn plot_runs(runs: &[Run], png: &std::path::Path) -> Result<()> {
    let mut modes: Vec<Mode> = Vec::new();
    for run in runs {
        if !modes.contains(&run.mode) {
            modes.push(run.mode);
        }
    }
    let series = |mode: Mode, value: fn(&Run) -> f64| Series {
        label: match mode {
            Mode::Comet => "CoMeT".into(),
            Mode::Full => "full attention".into(),
        },
        points: runs
            .iter()
            .filter(|r| r.mode == mode)
            .map(|r| (r.length as f64, value(r)))
            .collect(),
    };
    let panel = |title: &str, y_label: &str, value: fn(&Run) -> f64| Panel {
        title: title.into(),
        y_label: y_label.into(),
        series: modes.iter().map(|&m| series(m, value)).collect(),
    };
    let panels = [
        panel("prefill time", "seconds", |r| r.seconds),
        panel("peak resident memory", "MiB", |r| r.peak_rss_mib),
    ];
    log_log_panels(png, "input length (tokens)", &panels)
}

/// Redraws `bench.png` from the `bench.json` in `dir`.
fn replot(dir: &std::path::Path) -> Result<()> {
    let json = dir.join("bench.json");
    let report = super::read_json(&json)?;
    let runs: Vec<Run> = serde_json::from_value(report["runs"].clone())
        .with_context(|| format!("{}: `runs`", json.display()))?;
    let png = dir.join("bench.png");
    plot_runs(&runs, &png)?;
    eprintln!("wrote {}", png.display());
    Ok(())
}

/// One measurement.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Run {
    mode: Mode,
    length: usize,
    /// Prefill wall time.
    seconds: f64,
    tokens_per_s: f64,
    /// Peak resident set while reading (weights included, loading excluded), MiB.
    peak_rss_mib: f64,
    /// Resident set after loading the model, before reading, MiB.
    loaded_rss_mib: f64,
    /// CoMeT only: seconds of the first and the last full chunks, and their count.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunk_seconds: Option<(f64, f64, usize)>,
}

/// Arguments of the hidden `comet bench-run` (one measurement, run by `comet bench`).
#[derive(clap::Args)]
pub struct RunArgs {
    /// The measurement, as JSON.
    #[arg(long)]
    spec: String,
}

/// Resident-set figures of this process from `/proc/self/status`, MiB: (current, peak).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `length` input ids: the text tokenized and repeated, or seeded pseudo-random ids.
fn input_ids(
    spec: &Spec,
    tokenizer: Option<&comet::tokenizer::Tokenizer>,
    vocab: usize,
) -> Result<Vec<u32>> {
    let base = match (&spec.text, tokenizer) {
        (Some(path), Some(tok)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            tok.encode(&text, false)?
        }
        (Some(_), None) => bail!("--text needs a model with a tokenizer"),
        (None, _) => {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % vocab as u64) as u32
                })
                .collect()
        }
    };
    if base.is_empty() {
        bail!("the benchmark text has no tokens");
    }
    Ok(base.iter().copied().cycle().take(spec.length).collect())
}

/// Runs one measurement in this process and prints it as JSON.
pub fn run_one(args: RunArgs) -> Result<()> {
    let spec: Spec = serde_json::from_str(&args.spec).context("bad --spec")?;
    let device = backend::device()?;
    let (llm, tokenizer) = match (&spec.random_config, &spec.model) {
        (Some(config), _) => {
            let config = ModelConfig::from_hf_file(config)?;
            (
                comet::weights::random_llm::<Backend>(&config, 0, &device),
                None,
            )
        }
        (None, path) => {
            let loaded =
                comet::load_model::<Backend>(&super::model_path(path.as_deref())?, &device)?;
            (loaded.model, loaded.tokenizer)
        }
    };
    let ids = input_ids(&spec, tokenizer.as_ref(), llm.config().vocab_size)?;
    let model = CometModel::new(llm, spec.comet.clone().unwrap_or_default());
    // Restart the peak at the loaded model: dequantization buffers during loading would
    // otherwise set the peak of every run. (Linux: "5" resets VmHWM to the current RSS.)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (loaded_rss, _) = rss_mib();
    let start = Instant::now();
    let chunk_seconds = match spec.mode {
        Mode::Full => {
            let vocab = model.llm.config().vocab_size;
            let input = comet::generate::token_tensor::<Backend>(&ids, vocab, &device)?;
            let logits = model.llm.forward_last(input, None);
            anyhow::ensure!(logits.iter().all(|l| l.is_finite()), "non-finite logits");
            None
        }
        Mode::Comet => comet_prefill(&model, &ids)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let (_, peak) = rss_mib();
    let run = Run {
        mode: spec.mode,
        length: spec.length,
        seconds,
        tokens_per_s: spec.length as f64 / seconds,
        peak_rss_mib: peak,
        loaded_rss_mib: loaded_rss,
        chunk_seconds,
    };
    println!("{}", serde_json::to_string(&run)?);
    Ok(())
}

/// CoMeT prefill of `ids`; seconds of the first and the last full chunks, and their count.
fn comet_prefill(model: &CometModel<Backend>, ids: &[u32]) -> Result<Option<(f64, f64, usize)>> {
    let mut times = Vec::new();
    let mut last = Instant::now();
    let prefill = model.prefill(ids, model.empty_state(1), |_| {
        times.push(last.elapsed().as_secs_f64());
        last = Instant::now();
    })?;
    anyhow::ensure!(
        prefill.logits.iter().all(|l| l.is_finite()),
        "non-finite logits"
    );
    // Full chunks only: the final one is shorter and keeps no readouts.
    let full = &times[..times.len().saturating_sub(1)];
    Ok(match (full.first(), full.last()) {
        (Some(first), Some(last)) => Some((*first, *last, full.len())),
        _ => None,
    })
}

/// Runs `comet bench`.
pub fn run(args: Args) -> Result<()> {
    if args.replot {
        return replot(&args.out);
    }
    if args.comet.adapter.is_some() {
        bail!(
            "bench measures time and memory with fresh memory modules; --adapter is not used here"
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let exe = std::env::current_exe().context("locating the comet binary")?;
    let comet = args.comet.config();
    let mut runs: Vec<Run> = Vec::new();
    let mut failures = Vec::new();
    for mode in &args.modes {
        for &length in &args.lengths {
            let spec = Spec {
                model: args.model.clone(),
                random_config: args.random_config.clone(),
                text: args.text.clone(),
                comet: comet.clone(),
                mode: *mode,
                length,
            };
            eprint!("{mode:>5} {length:>8} tokens ... ");
            let out = Command::new(&exe)
                .args(["bench-run", "--spec", &serde_json::to_string(&spec)?])
                .output()
                .context("starting a benchmark process")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let run = stdout
                .lines()
                .last()
                .and_then(|l| serde_json::from_str::<Run>(l).ok());
            let Some(run) = run.filter(|_| out.status.success()) else {
                let why = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string();
                eprintln!("failed ({}): {why}", out.status);
                failures.push(serde_json::json!({"mode": mode, "length": length, "error": format!("{} {why}", out.status)}));
                break;
            };
            eprintln!(
                "{:.2}s, {:.0} tokens/s, peak {:.0} MiB",
                run.seconds, run.tokens_per_s, run.peak_rss_mib
            );
            let too_slow = run.seconds > args.max_seconds;
            runs.push(run);
            if too_slow {
                eprintln!("{mode}: over --max-seconds, longer lengths skipped");
                break;
            }
        }
    }
    write_results(&args, &runs, &failures, comet.unwrap_or_default())
}

fn write_results(
    args: &Args,
    runs: &[Run],
    failures: &[serde_json::Value],
    comet: CometConfig,
) -> Result<()> {
    let find =
        |mode: Mode, length: usize| runs.iter().find(|r| r.mode == mode && r.length == length);
    let ratios: Vec<serde_json::Value> = args
        .lengths
        .iter()
        .filter_map(|&l| {
            let (c, f) = (find(Mode::Comet, l)?, find(Mode::Full, l)?);
            Some(serde_json::json!({
                "length": l,
                "time_full_over_comet": f.seconds / c.seconds,
                "peak_memory_full_over_comet": f.peak_rss_mib / c.peak_rss_mib,
            }))
        })
        .collect();
    let model = match (&args.random_config, &args.model) {
        (Some(c), _) => format!("random weights, config {}", c.display()),
        (None, Some(m)) => m.display().to_string(),
        (None, None) => "SmolLM2-135M-Instruct (Q4_1 GGUF)".into(),
    };
    let report = serde_json::json!({
        "model": model,
        "backend": backend::NAME,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "comet": comet,
        "runs": runs,
        "ratios": ratios,
        "failures": failures,
    });
    let json = args.out.join("bench.json");
    comet::fsutil::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    let png = args.out.join("bench.png");
    plot_runs(runs, &png)?;
    eprintln!("wrote {} and {}", json.display(), png.display());
    for r in &ratios {
        eprintln!("{r}");
    }
    Ok(())
}
