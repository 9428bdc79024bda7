//! Training checkpoints: the model and optimizer records (Burn's recorder, which keeps the
//! parameter ids the optimizer state is keyed by) and the step, swapped in atomically.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, Optimizer};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::TrainConfig;
use crate::comet::CometModel;
use crate::fsutil::{recover_dir, replace_dir, write_atomic};
use crate::{Error, Result};

/// The AdamW optimizer over a whole CoMeT model (one per parameter group).
pub type Adam<B> = OptimizerAdaptor<AdamW, CometModel<B>, B>;
type AdamRecord<B> = <Adam<B> as Optimizer<CometModel<B>, B>>::Record;

const STATE_FILE: &str = "trainer.json";
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
        model
            .clone()
            .save_file(tmp.join(MODEL_RECORD), &recorder())
            .map_err(|e| record_err(tmp, e))?;
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
/// with the same config) and fresh optimizers.
pub fn load<B: AutodiffBackend>(
    dir: &Path,
    model: CometModel<B>,
    optimizers: [Adam<B>; 2],
    device: &B::Device,
) -> Result<(CometModel<B>, [Adam<B>; 2])> {
    let model = model
        .load_file(dir.join(MODEL_RECORD), &recorder(), device)
        .map_err(|e| record_err(dir, e))?;
    let (a, b): (AdamRecord<B>, AdamRecord<B>) =
        Recorder::<B>::load(&recorder(), dir.join(OPTIMIZER_RECORD), device)
            .map_err(|e| record_err(dir, e))?;
    let [oa, ob] = optimizers;
    Ok((model, [oa.load_record(a), ob.load_record(b)]))
}
