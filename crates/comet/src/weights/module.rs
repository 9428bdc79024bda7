//! A built (e.g. trained) model read back as a [`WeightSource`] in Hugging Face naming, so
//! [`super::export_hf_dir`] can save it.

use std::collections::HashMap;

use burn::prelude::*;
use burn::store::ModuleSnapshot;

use super::source::{check_shape, WeightSource};
use crate::model::Llm;
use crate::{Error, Result};

/// The tensors of an [`Llm`], keyed by their Burn paths (`layers.0.self_attn.q_proj.weight`).
pub struct ModuleWeights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
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
        Ok(Self { tensors })
    }

    /// Burn's path of a Hugging Face tensor name, and whether it is a linear weight
    /// (stored transposed by Burn).
    fn burn_path(name: &str) -> (String, bool) {
        let path = name.strip_prefix("model.").unwrap_or(name);
        if let Some(norm) = path.strip_suffix("norm.weight") {
            return (format!("{norm}norm.gamma"), false);
        }
        let linear = path.ends_with("_proj.weight") || path == "lm_head.weight";
        (path.to_string(), linear)
    }
}

impl WeightSource for ModuleWeights {
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(&Self::burn_path(name).0)
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (path, linear) = Self::burn_path(name);
        let (stored, values) = self
            .tensors
            .get(&path)
            .ok_or_else(|| Error::tensor(name, "not in the model"))?;
        if !linear {
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
