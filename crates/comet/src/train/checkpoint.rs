//! Training checkpoints: the model and optimizer records (Burn's recorder, which keeps the
//! parameter ids the optimizer state is keyed by) and the step, swapped in atomically.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::adamw::FusedAdamW;
use super::{TrainConfig, TrainMode};
use crate::comet::{CometModel, ADAPTER_PARAMS};
use crate::data::mix_seed;
use crate::fsutil::{recover_dir, replace_dir, write_atomic};
use crate::{Error, Result};

/// The AdamW optimizer over a whole CoMeT model (one per parameter group); its records are
/// Burn's `AdamW`'s.
pub type Adam<B> = OptimizerAdaptor<FusedAdamW, CometModel<B>, B>;
type AdamRecord<B> = <Adam<B> as Optimizer<CometModel<B>, B>>::Record;

const STATE_FILE: &str = "trainer.json";
const TRAINABLE_FILE: &str = "trainable.safetensors";
const MODEL_RECORD: &str = "model";
const OPTIMIZER_RECORD: &str = "optimizer";
const FORMAT: u32 = 1;

/// What a checkpoint records besides the tensors.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Checkpoint format version.
    pub format: u32,
    /// Optimizer steps done.
    pub step: usize,
    /// The config the run started with.
    pub config: TrainConfig,
    /// The same as written in its file (paths unresolved), when it came from one.
    #[serde(default)]
    pub written: Option<serde_json::Value>,
}

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::new()
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::corrupt(path, e.to_string())
}

/// The checkpoint directory of a run.
pub fn checkpoint_dir(config: &TrainConfig) -> PathBuf {
    config.out.join("checkpoint")
}

/// Saves model, optimizers and step into `dir`, replacing the previous checkpoint only
/// once the new one is completely written.
pub fn save<B: AutodiffBackend>(
    dir: &Path,
    model: &CometModel<B>,
    optimizers: [&Adam<B>; 2],
    state: &TrainerState,
) -> Result<()> {
    replace_dir(dir, |tmp| {
        if state.config.mode.freezes_base() {
            // The frozen base is the file the run started from: keep only what trains.
            write_atomic(
                &tmp.join(TRAINABLE_FILE),
                &model.params_bytes(ADAPTER_PARAMS)?,
            )?;
        } else {
            model
                .clone()
                .save_file(tmp.join(MODEL_RECORD), &recorder())
                .map_err(|e| record_err(tmp, e))?;
        }
        let records = (optimizers[0].to_record(), optimizers[1].to_record());
        Recorder::<B>::record(&recorder(), records, tmp.join(OPTIMIZER_RECORD))
            .map_err(|e| record_err(tmp, e))?;
        let json = serde_json::to_vec_pretty(state).expect("serializable state");
        write_atomic(&tmp.join(STATE_FILE), &json)
    })
}

/// The state of the checkpoint in `dir`, if there is one.
pub fn read_state(dir: &Path) -> Result<Option<TrainerState>> {
    recover_dir(dir)?;
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|e| Error::corrupt(&path, e.to_string()))?;
    if state.format != FORMAT {
        return Err(Error::corrupt(
            &path,
            format!(
                "checkpoint format {} (this build reads {FORMAT})",
                state.format
            ),
        ));
    }
    Ok(Some(state))
}

/// Loads the model and optimizer records of the checkpoint in `dir` into `model` (built
/// with the same config, ids from [`stable_ids`]) and fresh optimizers.
pub fn load<B: AutodiffBackend>(
    dir: &Path,
    mut model: CometModel<B>,
    optimizers: [Adam<B>; 2],
    mode: TrainMode,
    device: &B::Device,
) -> Result<(CometModel<B>, [Adam<B>; 2])> {
    let model = if mode.freezes_base() {
        model.load_params(
            &dir.join(TRAINABLE_FILE),
            ADAPTER_PARAMS,
            "(a checkpoint of another model?)",
        )?;
        model
    } else {
        model
            .load_file(dir.join(MODEL_RECORD), &recorder(), device)
            .map_err(|e| record_err(dir, e))?
    };
    let (a, b): (AdamRecord<B>, AdamRecord<B>) =
        Recorder::<B>::load(&recorder(), dir.join(OPTIMIZER_RECORD), device)
            .map_err(|e| record_err(dir, e))?;
    let [oa, ob] = optimizers;
    Ok((model, [oa.load_record(a), ob.load_record(b)]))
}

/// Gives every parameter an id derived from its path (`memory.3.global.gate.weight`), so
/// the optimizer state of a checkpoint, keyed by id, finds its parameters in a model
/// rebuilt by another process (fresh modules get random ids).
pub fn stable_ids<B: AutodiffBackend>(model: CometModel<B>) -> CometModel<B> {
    struct Ids(Vec<String>);
    impl<B: Backend> ModuleMapper<B> for Ids {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            let id = mix_seed(&[0x1D5, fnv(&self.0.join("."))]);
            Param::from_mapped_value(ParamId::from(id), tensor, mapper)
        }
    }
    model.map(&mut Ids(Vec::new()))
}

/// FNV-1a of a string.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A checkpoint continues only under the config it was made with (the number of steps and
/// the logging/checkpoint intervals may change). Configs read from files compare as
/// written, so the same file resumes from another machine or cache directory.
pub(super) fn check_resumable(saved: &TrainerState, current: &TrainConfig) -> Result<()> {
    let (mut a, mut b) = match (&saved.written, &current.written) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => (
            serde_json::to_value(&saved.config).expect("serializable"),
            serde_json::to_value(current).expect("serializable"),
        ),
    };
    for key in ["steps", "checkpoint_every", "log_every"] {
        a[key] = serde_json::Value::Null;
        b[key] = serde_json::Value::Null;
    }
    let (a, b) = (
        a.as_object().expect("object"),
        b.as_object().expect("object"),
    );
    let mut differ: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    differ.sort_unstable();
    differ.dedup();
    if differ.is_empty() {
        Ok(())
    } else {
        Err(Error::Training(format!(
            "the checkpoint was made with a different config ({} differ); resume with the original config or choose another `out`",
            differ.join(", ")
        )))
    }
}
