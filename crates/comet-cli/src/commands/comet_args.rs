//! The `--comet` switch and CoMeT sizes shared by `generate`, `score`, `ingest` and `bench`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use comet::backend::{self, Backend};
use comet::comet::{load_comet_adapter, stored_config, LoadedComet};
use comet::memory::{CometConfig, GlobalSource, TempSource};

/// CoMeT options: sizes for fresh (untrained) memory modules, or changes to a trained
/// model's stored config (chunk size, budget, ablation switches).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CometArgs {
    /// Read the input chunk by chunk with CoMeT memory (else plain full attention).
    #[arg(long = "comet")]
    pub use_comet: bool,
    /// Adapter directory (trained memory, special embeddings, LoRA) made for this base
    /// model; implies --comet.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Text tokens per chunk [default: 512].
    #[arg(long)]
    pub chunk_size: Option<usize>,
    /// Global memory slots / readout tokens m [default: 64].
    #[arg(long)]
    pub memory_slots: Option<usize>,
    /// One compression token after every s text tokens [default: 8].
    #[arg(long)]
    pub compression_stride: Option<usize>,
    /// Temporary memory entries kept [default: 256].
    #[arg(long)]
    pub temp_budget: Option<usize>,
    /// Rank of the memory adapters [default: 8].
    #[arg(long)]
    pub adapter_rank: Option<usize>,
    /// Ablation: replace the global state instead of gating it.
    #[arg(long)]
    pub no_gate: bool,
    /// Ablation: no temporary memory (no compression tokens).
    #[arg(long)]
    pub no_temp: bool,
    /// Ablation: no global memory (no readout tokens).
    #[arg(long)]
    pub no_global: bool,
    /// Temporary-memory entries from `compression_output` (the paper) or `text_input` (the
    /// layer input of the text token each compression token closes).
    #[arg(long)]
    pub temp_source: Option<TempSource>,
    /// Global-memory candidates from `readout` outputs (the paper), `text_pool` (the
    /// layer's text-token inputs pooled by attention), `text_span` (a span of them) or
    /// `shared_span` (one span start for all layers, kept by salience).
    #[arg(long)]
    pub global_source: Option<GlobalSource>,
    /// With `shared_span`: a span may start in the previous chunk's last tokens, so a
    /// passage cut by a chunk boundary is quoted whole.
    #[arg(long)]
    pub cross_chunk_span: bool,
}

impl CometArgs {
    /// Whether to read with CoMeT memory (`--comet`, or an adapter given).
    pub fn enabled(&self) -> bool {
        self.use_comet || self.adapter.is_some()
    }

    /// The config the flags ask for, or `None` when no size or switch was given. Flags
    /// change `base` (a trained directory's stored config, else the defaults).
    pub fn config_over(&self, base: CometConfig) -> Option<CometConfig> {
        let any = self.chunk_size.is_some()
            || self.memory_slots.is_some()
            || self.compression_stride.is_some()
            || self.temp_budget.is_some()
            || self.adapter_rank.is_some()
            || self.no_gate
            || self.no_temp
            || self.no_global
            || self.temp_source.is_some()
            || self.global_source.is_some()
            || self.cross_chunk_span;
        any.then(|| CometConfig {
            chunk_size: self.chunk_size.unwrap_or(base.chunk_size),
            memory_slots: self.memory_slots.unwrap_or(base.memory_slots),
            compression_stride: self.compression_stride.unwrap_or(base.compression_stride),
            temp_budget: self.temp_budget.unwrap_or(base.temp_budget),
            adapter_rank: self.adapter_rank.unwrap_or(base.adapter_rank),
            use_gate: base.use_gate && !self.no_gate,
            use_global: base.use_global && !self.no_global,
            use_temp: base.use_temp && !self.no_temp,
            temp_source: self.temp_source.unwrap_or(base.temp_source),
            global_source: self.global_source.unwrap_or(base.global_source),
            cross_chunk_span: base.cross_chunk_span || self.cross_chunk_span,
        })
    }

    /// The config the flags ask for over the defaults (no model directory involved).
    pub fn config(&self) -> Option<CometConfig> {
        self.config_over(CometConfig::default())
    }

    /// Loads the model with CoMeT memory.
    pub fn load(&self, path: Option<&Path>) -> Result<LoadedComet<Backend>> {
        let path = super::model_path(path)?;
        let device = backend::device()?;
        let adapter = self.adapter.as_deref();
        let base = stored_config(adapter.unwrap_or(&path))?.unwrap_or_default();
        let loaded =
            load_comet_adapter::<Backend>(&path, adapter, self.config_over(base), &device)?;
        let c = &loaded.model.comet;
        eprintln!(
            "CoMeT: chunk {}, {} global slots{}, stride {}{}, budget {}, {} memory",
            c.chunk_size,
            c.memory_slots,
            match (c.use_global, c.use_gate) {
                (false, _) => " (off)",
                (true, false) => " (ungated)",
                (true, true) => "",
            },
            c.compression_stride,
            if c.use_temp {
                ""
            } else {
                " (temporary memory off)"
            },
            c.temp_budget,
            match (loaded.trained_memory, &loaded.model.llm.lora) {
                (true, Some(lora)) => format!("trained memory, LoRA rank {}", lora.rank),
                (true, None) => "trained".into(),
                (false, _) => "untrained (fresh)".into(),
            },
        );
        Ok(loaded)
    }
}
