//! Memory snapshots (`.cmem`): the state after reading a document, saved so a later process
//! can answer from it without re-reading. Size depends on the model, not the document.
//!
//! Format: a safetensors file whose metadata holds `format = "comet-memory"`, `version`,
//! the model `fingerprint` (config + memory weights), `tokens_read` and `pending` (the
//! ids of a last partial chunk, as JSON); tensors `layers.{l}.global` `[m, hidden]` and
//! `layers.{l}.queue` `[entries, hidden]`, and for a shared-span global memory
//! `layers.{l}.salience` `[1, 1]` (and `layers.{l}.tail` `[m - 1, hidden]` when a span may
//! start in the previous chunk).
//!
//! Only whole chunks go into memory: the text after the last whole chunk stays pending and
//! is read again in front of whatever comes next (more text, or a question), so reading a
//! document in pieces lays it out exactly as reading it at once.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use super::model::CometModel;
use crate::fsutil::{write_f32_safetensors, F32Tensor};
use crate::memory::{GlobalSource, LayerState, MemoryState};
use crate::weights::check_finite;
use crate::{Error, Result};

/// Version written into and required of snapshot files.
pub const SNAPSHOT_VERSION: &str = "1";
const FORMAT: &str = "comet-memory";

impl<B: Backend> CometModel<B> {
    /// Identifies the model a snapshot belongs to: base config, CoMeT config, the memory
    /// weights and any low-rank adapters (a snapshot is meaningless under other weights).
    pub fn fingerprint(&self) -> Result<String> {
        let mut hash = Sha256::new();
        hash.update(serde_json::to_vec(self.llm.config()).expect("serializable"));
        hash.update(serde_json::to_vec(&self.comet).expect("serializable"));
        // Tensor names and data only: the file's metadata map is written in an arbitrary order.
        // Low-rank adapters count too (a model without them hashes its memory alone).
        let bytes = self.params_bytes(super::ADAPTER_PARAMS)?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::Input(e.to_string()))?;
        let mut tensors = st.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in tensors {
            hash.update(name.as_bytes());
            hash.update(view.data());
        }
        Ok(format!("{:x}", hash.finalize()))
    }
}

fn f32_tensor<B: Backend>(name: String, t: Tensor<B, 3>) -> F32Tensor {
    let [_, n, d] = t.dims();
    let values: Vec<f32> = t.into_data().convert::<f32>().to_vec().expect("f32 memory");
    (name, vec![n, d], values)
}

/// A reader's state between documents: the memory, and text not yet read into it.
#[derive(Debug)]
pub struct Snapshot<B: Backend> {
    /// Memory of the whole chunks read so far.
    pub state: MemoryState<B>,
    /// Text ids after the last whole chunk (fewer than a chunk), to be read first next time.
    pub pending: Vec<u32>,
}

impl<B: Backend> CometModel<B> {
    /// Reads `ids` after `snapshot`'s pending text: whole chunks into memory, the rest
    /// left pending.
    pub fn ingest(
        &self,
        ids: &[u32],
        snapshot: Snapshot<B>,
        on_chunk: impl FnMut(usize),
    ) -> Result<Snapshot<B>> {
        let mut all = snapshot.pending;
        all.extend_from_slice(ids);
        let whole = all.len() - all.len() % self.comet.chunk_size;
        let state = if whole > 0 {
            self.absorb(&all[..whole], snapshot.state, on_chunk)?
        } else {
            snapshot.state
        };
        Ok(Snapshot {
            state,
            pending: all[whole..].to_vec(),
        })
    }
}

/// Saves the memory (and pending text) of one sample to `path` (atomically).
pub fn save_snapshot<B: Backend>(
    model: &CometModel<B>,
    snapshot: &Snapshot<B>,
    path: &Path,
) -> Result<()> {
    let state = &snapshot.state;
    if state.batch() != 1 {
        return Err(Error::Input(
            "a snapshot holds the memory of one sample".into(),
        ));
    }
    let queue = state.queue_lengths[0];
    let mut tensors = Vec::new();
    for (l, layer) in state.layers.iter().enumerate() {
        if let Some(g) = &layer.global {
            tensors.push(f32_tensor(format!("layers.{l}.global"), g.clone()));
        }
        if let Some(q) = &layer.queue {
            let [b, _, d] = q.dims();
            let q = q.clone().slice([0..b, 0..queue, 0..d]);
            tensors.push(f32_tensor(format!("layers.{l}.queue"), q));
        }
        if let Some(s) = &layer.salience {
            tensors.push(f32_tensor(format!("layers.{l}.salience"), s.clone()));
        }
        if let Some(t) = &layer.tail {
            tensors.push(f32_tensor(format!("layers.{l}.tail"), t.clone()));
        }
    }
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), SNAPSHOT_VERSION.to_string()),
        ("fingerprint".to_string(), model.fingerprint()?),
        ("tokens_read".to_string(), state.tokens_read[0].to_string()),
        ("layers".to_string(), state.layers.len().to_string()),
        (
            "pending".to_string(),
            serde_json::to_string(&snapshot.pending).expect("serializable"),
        ),
    ]);
    write_f32_safetensors(path, &tensors, Some(metadata))
}

/// Loads a snapshot saved for `model`, refusing one made by another model or version.
pub fn load_snapshot<B: Backend>(model: &CometModel<B>, path: &Path) -> Result<Snapshot<B>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::corrupt(path, format!("not a CoMeT memory snapshot ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    check_header(model, &meta, path)?;
    let pending = pending_ids(model, &meta, path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::corrupt(path, e.to_string()))?;
    let mut state = model.empty_state(1);
    state.tokens_read[0] = meta
        .get("tokens_read")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    for (l, layer) in state.layers.iter_mut().enumerate() {
        *layer = layer_state(model, &st, l, path)?;
        if let Some(queue) = &layer.queue {
            state.queue_lengths[0] = queue.dims()[1];
        }
    }
    Ok(Snapshot { state, pending })
}

/// Refuses a file that is not a snapshot of this version made for `model`.
fn check_header<B: Backend>(
    model: &CometModel<B>,
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    let field = |k: &str| meta.get(k).map(String::as_str).unwrap_or("");
    if field("format") != FORMAT {
        return Err(Error::corrupt(
            path,
            "not a CoMeT memory snapshot (no `comet-memory` format tag)",
        ));
    }
    if field("version") != SNAPSHOT_VERSION {
        return Err(Error::corrupt(
            path,
            format!(
                "snapshot version {} is not supported (this build reads {SNAPSHOT_VERSION})",
                field("version")
            ),
        ));
    }
    if field("fingerprint") != model.fingerprint()? {
        return Err(Error::corrupt(
            path,
            "snapshot was made with another model, CoMeT config or memory weights",
        ));
    }
    Ok(())
}

/// The text read after the last whole chunk: fewer ids than a chunk, all in the vocabulary.
fn pending_ids<B: Backend>(
    model: &CometModel<B>,
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u32>> {
    let pending: Vec<u32> = match meta.get("pending") {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::corrupt(path, format!("metadata `pending`: {e}")))?,
        None => Vec::new(),
    };
    if pending.len() >= model.comet.chunk_size {
        return Err(Error::corrupt(
            path,
            format!("{} pending ids: more than a chunk", pending.len()),
        ));
    }
    let vocab = model.llm.config().vocab_size;
    if let Some(bad) = pending.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::corrupt(
            path,
            format!("pending token id {bad} is outside the vocabulary (size {vocab})"),
        ));
    }
    Ok(pending)
}

/// Memory tensor `name` as `[1, rows, width]` and its row count, if the file holds it.
/// Layer `l`'s memory in a snapshot, checked against the model's sizes.
fn layer_state<B: Backend>(
    model: &CometModel<B>,
    st: &SafeTensors,
    l: usize,
    path: &Path,
) -> Result<LayerState<B>> {
    let (slots, budget) = (model.comet.memory_slots, model.comet.temp_budget);
    let hidden = model.llm.config().hidden_size;
    let rows = |t: &Option<(Tensor<B, 3>, usize)>| t.as_ref().map_or(0, |(_, n)| *n);
    let read =
        |part: &str, width| memory_rows(model, st, &format!("layers.{l}.{part}"), width, path);
    let (global, queue) = (read("global", hidden)?, read("queue", hidden)?);
    let (salience, tail) = (read("salience", 1)?, read("tail", hidden)?);
    let salient = model.comet.global_source == GlobalSource::SharedSpan;
    if salient && global.is_some() && rows(&salience) != 1 {
        return Err(Error::corrupt(
            path,
            format!("layer {l}: a shared-span global memory without its `salience` [1, 1]"),
        ));
    }
    let span_tail = model.comet.span_tail();
    if span_tail > 0 && global.is_some() && rows(&tail) != span_tail {
        return Err(Error::corrupt(
            path,
            format!(
                "layer {l}: a cross-chunk span memory without its `tail` [{span_tail}, {hidden}]"
            ),
        ));
    }
    if global.is_some() && rows(&global) != slots || rows(&queue) > budget {
        return Err(Error::corrupt(
            path,
            format!("layer {l}: memory of other sizes than {slots} slots and a queue of at most {budget}"),
        ));
    }
    Ok(LayerState {
        global: global.map(|(t, _)| t),
        queue: queue.map(|(t, _)| t),
        salience: salience.map(|(t, _)| t),
        tail: tail.map(|(t, _)| t),
    })
}

fn memory_rows<B: Backend>(
    model: &CometModel<B>,
    st: &SafeTensors,
    name: &str,
    width: usize,
    path: &Path,
) -> Result<Option<(Tensor<B, 3>, usize)>> {
    let Ok(view) = st.tensor(name) else {
        return Ok(None);
    };
    let shape = view.shape().to_vec();
    if shape.len() != 2 || view.dtype() != Dtype::F32 || shape[1] != width {
        return Err(Error::corrupt(
            path,
            format!("tensor `{name}` is {shape:?}, not an f32 [rows, {width}] memory"),
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    check_finite(name, &values, "as f32", &path.display().to_string())?;
    let device = model.llm.embed_tokens.weight.device();
    let t = Tensor::<B, 2>::from_data(TensorData::new(values, [shape[0], shape[1]]), &device);
    Ok(Some((t.unsqueeze_dim(0), shape[0])))
}
