//! Hugging Face safetensors weights: one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, stored as f32, f16 or bf16.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::source::{check_finite, check_shape, ignorable, refuse_unused, WeightSource};
use crate::{Error, Result};

/// The safetensors files of one model, memory-mapped.
pub struct SafetensorsWeights {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name -> index into `files`.
    index: HashMap<String, usize>,
}

impl SafetensorsWeights {
    /// Opens the weights of a Hugging Face model directory.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let shards = if index.exists() {
            shard_names(&index)?
                .into_iter()
                .map(|name| dir.join(name))
                .collect()
        } else if single.exists() {
            vec![single]
        } else {
            return Err(Error::Missing(format!(
                "{}: no model.safetensors or model.safetensors.index.json",
                dir.display()
            )));
        };
        Self::open_files(&shards)
    }

    /// Opens a list of safetensors files as one store.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the map is read-only; a file truncated underneath us is the user's
            // concurrent modification, as with any memory-mapped loader.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let st = SafeTensors::deserialize(&mmap)
                .map_err(|e| Error::corrupt(path, format!("not a valid safetensors file ({e})")))?;
            for name in st.names() {
                index.insert(name.to_string(), i);
            }
            files.push((path.clone(), mmap));
        }
        Ok(Self { files, index })
    }

    /// The file, or the shards' folder, for error messages.
    fn describe(&self) -> String {
        match self.files.as_slice() {
            [(path, _)] => path.display().to_string(),
            files => {
                let dir = files.first().and_then(|(p, _)| p.parent());
                let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
                format!("the {} safetensors shards in {dir}", files.len())
            }
        }
    }

    /// Names of all tensors in the store.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }
}

fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::corrupt(index, format!("not valid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::corrupt(index, "no `weight_map` object"))?;
    let mut names = Vec::new();
    for value in map.values() {
        // A shard is a file beside the index: no paths elsewhere on the machine.
        match value.as_str() {
            Some(name)
                if !name.is_empty() && Path::new(name).file_name() == Some(name.as_ref()) =>
            {
                names.push(name.to_string())
            }
            _ => {
                return Err(Error::corrupt(
                    index,
                    format!("`weight_map` names {value}, not a file beside the index"),
                ))
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

impl WeightSource for SafetensorsWeights {
    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn check_all_used(&self, used: &HashSet<String>) -> Result<()> {
        let mut unused: Vec<&str> = self
            .names()
            .filter(|n| !used.contains(*n) && !ignorable(n))
            .collect();
        unused.sort();
        refuse_unused(unused, &self.describe())
    }

    fn load(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let &i = self
            .index
            .get(name)
            .ok_or_else(|| Error::tensor(name, format!("missing from {}", self.describe())))?;
        let (path, mmap) = &self.files[i];
        let file = path.display().to_string();
        let st = SafeTensors::deserialize(mmap).map_err(|e| Error::corrupt(path, e.to_string()))?;
        let view = st
            .tensor(name)
            .map_err(|e| Error::tensor(name, e.to_string()))?;
        check_shape(name, view.shape(), shape, &file)?;
        let data = to_f32(name, view.dtype(), view.data(), &file)?;
        check_finite(name, &data, &format!("as {:?}", view.dtype()), &file)?;
        Ok(data)
    }
}

/// Converts little-endian tensor bytes of a float dtype to f32.
fn to_f32(name: &str, dtype: Dtype, bytes: &[u8], file: &str) -> Result<Vec<f32>> {
    let pairs = || {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => pairs().map(|b| half::f16::from_bits(b).to_f32()).collect(),
        Dtype::BF16 => pairs().map(|b| half::bf16::from_bits(b).to_f32()).collect(),
        other => {
            return Err(Error::tensor(
                name,
                format!("has dtype {other:?} in {file} (f32, f16, bf16 are supported)"),
            ))
        }
    })
}
