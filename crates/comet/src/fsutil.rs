//! File writing that never leaves a half-written file under the real name.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory, synced and
/// renamed into place: a failure (full disk, interruption) keeps the previous file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Input(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Write {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Writes a directory through `fill` into a temporary sibling, then swaps it in for
/// `dir`: a failure at any point leaves the previous `dir` whole. A crash between the two
/// renames leaves it as `<dir>.old`, which [`recover_dir`] puts back.
pub fn replace_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Input(format!("{} has no file name", dir.display())))?
        .to_string_lossy()
        .to_string();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!("{name}.tmp"));
    let old = parent.join(format!("{name}.old"));
    let write_err = |path: &Path, e| Error::Write {
        path: path.to_path_buf(),
        source: e,
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| write_err(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| write_err(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| write_err(&old, e))?;
    }
    Ok(())
}

/// Puts back `<dir>.old` when a crash in [`replace_dir`] left no `dir`.
pub fn recover_dir(dir: &Path) -> Result<()> {
    let Some(name) = dir.file_name() else {
        return Ok(());
    };
    let old = dir.with_file_name(format!("{}.old", name.to_string_lossy()));
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir).map_err(|e| Error::Write {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    Ok(())
}

/// A path's last component, for messages, titles and result files that must not carry
/// machine paths (the whole path when it has no last component).
pub fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// One f32 tensor to write: name, shape, values (row-major).
pub type F32Tensor = (String, Vec<usize>, Vec<f32>);

/// Writes f32 tensors (and optional string metadata) as a safetensors file, atomically:
/// the one writer of model exports, memory snapshots and logit dumps.
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &[F32Tensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::tensor(name, e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let file = safetensors::serialize(views, metadata)
        .map_err(|e| Error::corrupt(path, format!("serializing: {e}")))?;
    write_atomic(path, &file)
}
