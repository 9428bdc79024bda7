//! One module per subcommand, plus what they share.

pub mod convert;
pub mod fetch;
pub mod generate;
pub mod score;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use comet::backend::{self, Backend};
use comet::LoadedModel;

/// Loads the model at `path`, or the default SmolLM2 model (fetched on first use) if none.
pub fn load(path: Option<&Path>) -> Result<LoadedModel<Backend>> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => fetch::ensure_smollm2()?,
    };
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

/// Writes `bytes` to `path` through a temporary file and a rename, so an interrupted or
/// failed write (full disk) never leaves a truncated file in place of a good one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}
