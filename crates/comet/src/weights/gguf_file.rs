//! A bounds-checked reader of the GGUF v2/v3 container: metadata and tensor directory.
//!
//! Written here rather than taken from a crate because the readers on crates.io either
//! pull in a whole tensor framework or panic on a truncated file; a truncated or corrupt
//! file must give an error naming the file.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::{Error, Result};

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any unsigned integer type.
    UInt(u64),
    /// Any signed integer type.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values.
    Array(Vec<MetaValue>),
}

/// Where one tensor's data lies and how it is encoded.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Dimensions, fastest-varying first (GGUF order: `[in, out]` for a linear weight).
    pub dims: Vec<usize>,
    /// ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 12 Q4_K, 14 Q6_K, 30 BF16, ...).
    pub ggml_type: u32,
    /// Byte offset of the data from the start of the file.
    pub start: usize,
}

/// Where tensor `name`'s data starts, checking that its type is supported, its dims are
/// whole blocks and its bytes lie inside a file of `file_len` bytes.
fn locate(
    path: &Path,
    file_len: usize,
    name: &str,
    dims: &[usize],
    ggml_type: u32,
    data_start: usize,
    offset: usize,
) -> Result<usize> {
    let file = path.display();
    let n = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let Some(size) = n.and_then(|n| super::quant::byte_size(ggml_type, n)) else {
        let reason = if super::quant::block_layout(ggml_type).is_none() {
            format!("has ggml type {ggml_type}, which is not supported, in {file}")
        } else {
            let ty = super::quant::type_name(ggml_type);
            format!("has dims {dims:?}: not a whole number of {ty} blocks, in {file}")
        };
        return Err(Error::tensor(name, reason));
    };
    let start = data_start.checked_add(offset);
    let end = start.and_then(|s| s.checked_add(size));
    match (start, end) {
        (Some(start), Some(end)) if end <= file_len => Ok(start),
        _ => Err(Error::corrupt(
            path,
            format!(
                "truncated: tensor `{name}` needs {size} bytes from offset {offset} but the file has {file_len}"
            ),
        )),
    }
}

/// A memory-mapped GGUF file.
pub struct GgufFile {
    /// The file's path, for error messages.
    pub path: PathBuf,
    mmap: Mmap,
    /// All metadata key/values.
    pub metadata: HashMap<String, MetaValue>,
    /// The tensor directory by GGUF name.
    pub tensors: HashMap<String, TensorInfo>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            Error::corrupt(
                self.path,
                format!(
                    "truncated GGUF header (needs {n} bytes at offset {})",
                    self.pos
                ),
            )
        })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn count(&mut self, what: &str) -> Result<usize> {
        let n = self.u64()?;
        // Every counted item takes at least one byte, so a larger count is corruption.
        let left = self.bytes.len() - self.pos;
        if n > left as u64 {
            return Err(Error::corrupt(
                self.path,
                format!("truncated or corrupt: {what} count {n} exceeds the {left} bytes left"),
            ));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.count("string length")?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::corrupt(
                self.path,
                format!("non-UTF-8 string at offset {}", self.pos - n),
            )
        })
    }
    /// Magic and version; the tensor and metadata counts.
    fn header(&mut self) -> Result<(usize, usize)> {
        if self.take(4).ok() != Some(b"GGUF".as_slice()) {
            return Err(Error::corrupt(self.path, "not a GGUF file (bad magic)"));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::corrupt(
                self.path,
                format!("GGUF version {version} is not supported (2 and 3 are)"),
            ));
        }
        Ok((self.count("tensor")?, self.count("metadata")?))
    }

    /// One entry of the tensor directory: name, dims, ggml type, offset in the data.
    fn tensor_info(&mut self) -> Result<(String, Vec<usize>, u32, usize)> {
        let name = self.string()?;
        let n_dims = self.u32()? as usize;
        if n_dims > 8 {
            return Err(Error::corrupt(
                self.path,
                format!("tensor `{name}` has {n_dims} dimensions"),
            ));
        }
        let dims = (0..n_dims)
            .map(|_| self.u64().map(|d| d as usize))
            .collect::<Result<Vec<_>>>()?;
        let ggml_type = self.u32()?;
        let offset = self.u64()? as usize;
        Ok((name, dims, ggml_type, offset))
    }

    /// One metadata value; `depth` counts enclosing arrays (nesting is bounded, so a
    /// corrupt file cannot recurse until the stack overflows).
    fn value(&mut self, ty: u32, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::UInt(self.take(1)?[0] as u64),
            1 => MetaValue::Int(self.take(1)?[0] as i8 as i64),
            2 => MetaValue::UInt(u16::from_le_bytes(self.take(2)?.try_into().expect("2")) as u64),
            3 => MetaValue::Int(i16::from_le_bytes(self.take(2)?.try_into().expect("2")) as i64),
            4 => MetaValue::UInt(self.u32()? as u64),
            5 => MetaValue::Int(self.u32()? as i32 as i64),
            6 => MetaValue::Float(f32::from_bits(self.u32()?) as f64),
            7 => MetaValue::Bool(self.take(1)?[0] != 0),
            8 => MetaValue::Str(self.string()?),
            9 => {
                if depth >= 4 {
                    return Err(Error::corrupt(self.path, "metadata arrays nested too deep"));
                }
                let item_ty = self.u32()?;
                let n = self.count("array length")?;
                // Grown as items are read, never sized by the (untrusted) count.
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(item_ty, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::UInt(self.u64()?),
            11 => MetaValue::Int(self.u64()? as i64),
            12 => MetaValue::Float(f64::from_bits(self.u64()?)),
            other => {
                return Err(Error::corrupt(
                    self.path,
                    format!("unknown metadata value type {other}"),
                ))
            }
        })
    }
}

impl GgufFile {
    /// Maps and parses a GGUF file, checking that every tensor lies inside it.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map of a file we do not modify.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut c = Cursor {
            bytes: &mmap,
            pos: 0,
            path,
        };
        let (n_tensors, n_kv) = c.header()?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            metadata.insert(key, c.value(ty, 0)?);
        }
        let mut infos = Vec::new();
        for _ in 0..n_tensors {
            infos.push(c.tensor_info()?);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(MetaValue::UInt(a)) if *a > 0 => *a as usize,
            _ => 32,
        };
        let data_start = c
            .pos
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| Error::corrupt(path, format!("alignment {alignment}")))?;
        let mut tensors = HashMap::new();
        for (name, dims, ggml_type, offset) in infos {
            let start = locate(
                path,
                mmap.len(),
                &name,
                &dims,
                ggml_type,
                data_start,
                offset,
            )?;
            let info = TensorInfo {
                dims,
                ggml_type,
                start,
            };
            tensors.insert(name, info);
        }
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            metadata,
            tensors,
        })
    }

    /// The raw bytes of a tensor's data.
    pub fn data(&self, info: &TensorInfo) -> &[u8] {
        let n: usize = info.dims.iter().product();
        let size = super::quant::byte_size(info.ggml_type, n).expect("checked at open");
        &self.mmap[info.start..info.start + size]
    }

    /// A string metadata value.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key)? {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A numeric metadata value as f64.
    pub fn num(&self, key: &str) -> Option<f64> {
        match self.metadata.get(key)? {
            MetaValue::UInt(n) => Some(*n as f64),
            MetaValue::Int(n) => Some(*n as f64),
            MetaValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// An array metadata value.
    pub fn array(&self, key: &str) -> Option<&[MetaValue]> {
        match self.metadata.get(key)? {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}
