//! A built (e.g. trained) model read back as a [`WeightSource`] in Hugging Face naming, so
//! [`super::export_hf_dir`] can save it. Names come from [`tensor_specs`], the builder's own.

use std::collections::HashMap;

use burn::prelude::*;
use burn::store::ModuleSnapshot;

use super::build::{tensor_specs, TensorSpec};
use super::source::{check_shape, WeightSource};
use crate::model::Llm;
use crate::{Error, Result};

/// A tensor on the host: shape and values.
type HostTensor = (Vec<usize>, Vec<f32>);

/// The tensors of an [`Llm`], keyed by their Burn paths (`layers.0.self_attn.q_proj.weight`).
pub struct ModuleWeights {
    tensors: HashMap<String, HostTensor>,
    /// Hugging Face name -> where the builder put it.
    specs: HashMap<String, TensorSpec>,
}

impl ModuleWeights {
    /// Copies every tensor of `llm` to the host.
    pub fn new<B: Backend>(llm: &Llm<B>) -> Result<Self> {
        let mut tensors = HashMap::new();
        for snapshot in llm.collect(None, None, false) {
            let path = snapshot.full_path();
            let data = snapshot
                .to_data()
                .map_err(|e| Error::tensor(&path, format!("{e:?}")))?;
            let shape = data.shape.to_vec();
            let values = data
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| Error::tensor(&path, format!("{e:?}")))?;
            tensors.insert(path, (shape, values));
        }
        let specs = tensor_specs(&llm.config)
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        Ok(Self { tensors, specs })
    }

    fn stored(&self, name: &str) -> Option<(&TensorSpec, &HostTensor)> {
        let spec = self.specs.get(name)?;
        Some((spec, self.tensors.get(&spec.burn_path)?))
    }
}

impl WeightSource for ModuleWeights {
    fn contains(&self, name: &str) -> bool {
        self.stored(name).is_some()
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (spec, (stored, values)) = self
            .stored(name)
            .ok_or_else(|| Error::tensor(name, "not in the model"))?;
        if !spec.transposed {
            check_shape(name, stored, shape, "the model")?;
            return Ok(values.clone());
        }
        // Burn keeps `[in, out]`; Hugging Face wants `[out, in]`.
        let &[d_in, d_out] = stored.as_slice() else {
            return Err(Error::tensor(name, "a linear weight must be 2-D"));
        };
        check_shape(name, &[d_out, d_in], shape, "the model")?;
        let mut out = vec![0f32; values.len()];
        for (i, row) in values.chunks_exact(d_out).enumerate() {
            for (o, &w) in row.iter().enumerate() {
                out[o * d_in + i] = w;
            }
        }
        Ok(out)
    }
}
