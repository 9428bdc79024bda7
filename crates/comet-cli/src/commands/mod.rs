//! One module per subcommand, plus what they share.

pub mod bench;
pub mod comet_args;
pub mod convert;
pub mod eval;
pub mod fetch;
pub mod generate;
pub mod ingest;
pub mod plot_ratios;
pub mod score;
#[cfg(feature = "server")]
pub mod serve;
pub mod train;
pub mod train_progress;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use comet::backend::{self, Backend};
use comet::LoadedModel;

/// `path`, or the default SmolLM2 model (fetched on first use) if none.
pub fn model_path(path: Option<&Path>) -> Result<PathBuf> {
    Ok(match path {
        Some(p) => p.to_path_buf(),
        None => fetch::ensure_smollm2()?,
    })
}

/// Loads the model at `path`, or the default SmolLM2 model (fetched on first use) if none.
pub fn load(path: Option<&Path>) -> Result<LoadedModel<Backend>> {
    let path = model_path(path)?;
    let device = backend::device()?;
    let start = std::time::Instant::now();
    let loaded = comet::load_model::<Backend>(&path, &device)?;
    eprintln!(
        "loaded {} ({:?}, {} layers) on {} in {:.1}s",
        path.display(),
        loaded.model.config().architecture,
        loaded.model.config().num_layers,
        backend::NAME,
        start.elapsed().as_secs_f64()
    );
    Ok(loaded)
}

/// The prompt text from `--prompt` or `--prompt-file`, refusing empty or non-UTF-8 input.
pub fn read_prompt(text: Option<String>, file: Option<PathBuf>) -> Result<String> {
    let prompt = match (text, file) {
        (Some(t), None) => t,
        (None, Some(f)) => {
            let bytes = std::fs::read(&f)
                .with_context(|| format!("cannot read prompt file {}", f.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "prompt file {} is not valid UTF-8 (invalid byte at offset {})",
                    f.display(),
                    e.utf8_error().valid_up_to()
                )
            })?
        }
        _ => bail!("give exactly one of --prompt and --prompt-file"),
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    Ok(prompt)
}

/// A progress bar over `total` tokens, for long reads.
pub fn token_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} tokens {{per_sec}} {{elapsed}}"
        ))
        .expect("static template"),
    );
    bar
}

/// A JSON file (a report to redraw), with errors naming it.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Burn allocates and frees buffers at every operation. glibc serves the large ones with
/// fresh `mmap`s and returns freed memory to the system at once, so each step pays its page
/// faults again; keeping freed memory in the heap for reuse trained a small model ~30%
/// faster here (3,330 -> 4,380 tokens/s). One arena for all threads: the commands run on a
/// pool thread, whose own arena (64 MiB heaps) cannot keep large buffers, which doubled a
/// SmolLM2 training step's page faults. Every command but `bench` (which measures peak
/// memory with the default allocator) calls this before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
