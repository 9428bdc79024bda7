//! Mixed precision as the reference trains: f32 master weights and optimizer state, bf16
//! forward and backward passes.
//!
//! Storing the weights themselves in bf16 would lose every update smaller than half a
//! bf16 step of the weight (8 significant bits: a weight of 0.02 moves only by steps of
//! ~8e-5, more than AdamW's per-step change at a learning rate of 5e-5).

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::DType;

use super::Precision;
use crate::comet::CometModel;
use crate::{Error, Result};

/// Casts every float parameter, keeping its id.
struct CastParams(DType);

impl<B: Backend> ModuleMapper<B> for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

impl Precision {
    /// The float type the forward and backward passes compute in.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// Refuses a precision the backend cannot compute in on `device`.
    pub fn check<B: Backend>(self, device: &B::Device) -> Result<()> {
        if B::supports_dtype(device, self.dtype()) {
            Ok(())
        } else {
            Err(Error::Training(format!(
                "precision `{self:?}` is not available on this backend or device"
            )))
        }
    }
}

/// The model the passes run on: `master` itself in f32; in bf16, a view whose parameters
/// are casts of the master's (same ids), so the gradients arrive at the f32 master tensors
/// and the optimizer updates f32 weights with f32 moments.
pub fn compute_model<B: AutodiffBackend>(
    master: &CometModel<B>,
    precision: Precision,
) -> CometModel<B> {
    match precision {
        Precision::F32 => master.clone(),
        Precision::Bf16 => master.clone().map(&mut CastParams(DType::BF16)),
    }
}
