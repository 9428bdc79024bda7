//! `comet plot-ratios`: draws the ratio bars of a benchmark report (e.g.
//! `results/perf/cpu.json`, written by `scripts/perf_vs_peers.sh`) next to it as PNG.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::plot::{ratio_bars, Ratio};

/// Arguments of `comet plot-ratios`.
#[derive(clap::Args)]
pub struct Args {
    /// A JSON report with `title` and `ratios: [{label, value}]`.
    json: PathBuf,
}

/// Reads the report and writes `<json>.png`.
pub fn run(args: Args) -> Result<()> {
    let path = &args.json;
    let report = super::read_json(path)?;
    let title = report["title"]
        .as_str()
        .unwrap_or("speed against the reference");
    let ratios = report["ratios"]
        .as_array()
        .with_context(|| format!("{}: no `ratios` list", path.display()))?
        .iter()
        .map(|r| {
            Some(Ratio {
                label: r["label"].as_str()?.to_string(),
                value: r["value"].as_f64().filter(|v| v.is_finite() && *v >= 0.0)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{}: a ratio needs `label` and a value >= 0", path.display()))?;
    let png = path.with_extension("png");
    ratio_bars(&png, title, &ratios)?;
    eprintln!("wrote {}", png.display());
    Ok(())
}
