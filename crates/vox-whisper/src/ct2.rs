//! Reader (and writer) for CTranslate2 `model.bin` files, the weights format of faster-whisper models.
//!
//! The layout, as written by CTranslate2's `ModelSpec._serialize` (`python/ctranslate2/specs/model_spec.py`)
//! and read by `models::Model::load` (`src/models/model.cc`), all little-endian:
//!
//! ```text
//! u32 binary version (1..=6)
//! [version >= 2] string spec name, u32 spec revision
//! u32 variable count, then per variable (sorted by name):
//!     string name, u8 rank, rank x u32 dims,
//!     [version >= 4] u8 dtype id (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), u32 byte size
//!     [version <  4] u8 item size (4 f32, 2 i16, 1 i8), u32 element count
//!     bytes
//! [version >= 3] u32 alias count, then (alias, target) string pairs
//! string = u16 length including a trailing NUL, the UTF-8 bytes, NUL
//! ```
//!
//! Quantized weights (variables whose name ends in `weight`) come with a `<name>_scale`: int8 weights have a
//! float scale per output row (`value = int8 / scale[row]`), int16 weights a scalar scale (int16 weights
//! without one use CTranslate2's global scale, 1000). An alias `a -> t` also aliases `a_scale -> t_scale`.
//!
//! [`Ct2Model::open`] memory-maps the file and parses the index only; tensors are converted on request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;

mod convert;
mod parse;
mod writer;

pub(crate) use convert::raw_to_tensor;
pub use writer::{Ct2Writer, quantize_int8};

#[cfg(target_endian = "big")]
compile_error!(
    "vox-whisper reads little-endian weight files by reinterpreting bytes; big-endian targets are unsupported"
);

/// The newest binary version CTranslate2 writes (and the one [`Ct2Writer`] writes).
pub const CURRENT_BINARY_VERSION: u32 = 6;

/// CTranslate2's scale for int16 weights saved without one (`ops::Quantize::global_int16_scale`).
pub const GLOBAL_INT16_SCALE: f32 = 1000.0;

/// Element type of a variable, numbered as CTranslate2's `DataType` enum (`_dtype_to_type_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2Dtype {
    /// The dtype with CTranslate2 type id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// CTranslate2's type id of this dtype.
    pub fn id(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 3,
            Self::F16 => 4,
            Self::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

/// One stored variable: its shape and dtype, and where its bytes lie in the file.
#[derive(Debug, Clone)]
pub struct Ct2Var {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Ct2Dtype,
    offset: usize,
    len: usize,
}

impl Ct2Var {
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        self.len
    }
}

/// Errors reading or converting a CTranslate2 model; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a CTranslate2 model (version {version})", path.display())]
    NotCt2 { path: PathBuf, version: u32 },
    #[error("{}: truncated at {at}", path.display())]
    Truncated { path: PathBuf, at: String },
    #[error("{}: unknown dtype {id} for {name}", path.display())]
    UnknownDtype { path: PathBuf, id: u8, name: String },
    #[error("{}: variable {name} has {got} bytes, but shape {shape:?} of {dtype:?} needs {expected}", path.display())]
    BadSize {
        path: PathBuf,
        name: String,
        shape: Vec<usize>,
        dtype: Ct2Dtype,
        expected: usize,
        got: usize,
    },
    #[error("{}: missing variable {name}", path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: malformed {what}", path.display())]
    Malformed { path: PathBuf, what: String },
    #[error("{}: cannot load {name}: {source}", path.display())]
    Tensor {
        path: PathBuf,
        name: String,
        source: Box<candle_core::Error>,
    },
    #[error("{}: no model.bin, model.safetensors or model.safetensors.index.json", path.display())]
    NoModel { path: PathBuf },
}

/// A memory-mapped CTranslate2 `model.bin` and its variable index.
pub struct Ct2Model {
    path: PathBuf,
    mmap: Mmap,
    binary_version: u32,
    spec: String,
    revision: u32,
    /// Variables in file order.
    vars: Vec<(String, Ct2Var)>,
    index: HashMap<String, usize>,
    /// Aliases in file order, resolved to a variable index.
    aliases: Vec<(String, usize)>,
    alias_index: HashMap<String, usize>,
    /// f32 copies of float `_scale` variables that are not aligned f32 data in the map.
    scale_copies: HashMap<usize, Vec<f32>>,
}

impl std::fmt::Debug for Ct2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2Model")
            .field("path", &self.path)
            .field("binary_version", &self.binary_version)
            .field("spec", &self.spec)
            .field("revision", &self.revision)
            .field("variables", &self.vars.len())
            .field("aliases", &self.aliases.len())
            .finish()
    }
}

impl Ct2Model {
    /// Memory-maps `path` and parses its header and variable index (no tensor data is read).
    pub fn open(path: &Path) -> Result<Self, Ct2Error> {
        let p = || path.to_path_buf();
        let file =
            std::fs::File::open(path).map_err(|source| Ct2Error::Io { path: p(), source })?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not being truncated
        // or rewritten while it is open.
        let mmap =
            unsafe { Mmap::map(&file) }.map_err(|source| Ct2Error::Io { path: p(), source })?;
        Self::parse(path.to_path_buf(), mmap)
    }

    /// The file this model was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Spec name, e.g. `"WhisperSpec"` (empty for version-1 files).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Spec revision (WhisperSpec is at 3).
    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// Binary format version of the file (1..=6).
    pub fn binary_version(&self) -> u32 {
        self.binary_version
    }

    /// Names of all variables (file order), then of all aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.aliases.iter().map(|(n, _)| n.as_str()))
    }

    /// Index of the variable `name` refers to, resolving aliases (including the implicit `alias_scale ->
    /// target_scale` and `alias_zero -> target_zero` aliases CTranslate2 registers).
    fn resolve(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name).or_else(|| self.alias_index.get(name)) {
            return Some(i);
        }
        for suffix in ["_scale", "_zero"] {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&t) = self.alias_index.get(base)
            {
                return self
                    .index
                    .get(&format!("{}{suffix}", self.vars[t].0))
                    .copied();
            }
        }
        None
    }

    /// A variable by name (aliases resolved).
    pub fn var(&self, name: &str) -> Option<&Ct2Var> {
        self.resolve(name).map(|i| &self.vars[i].1)
    }

    /// The name of the stored variable `name` resolves to (itself unless it is an alias).
    pub fn target_name(&self, name: &str) -> Option<&str> {
        self.resolve(name).map(|i| self.vars[i].0.as_str())
    }

    /// Raw little-endian bytes of a variable (aliases resolved).
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.var(name).map(|v| self.data(v))
    }

    fn data(&self, v: &Ct2Var) -> &[u8] {
        &self.mmap[v.offset..v.offset + v.len]
    }

    /// The value of a one-element integer variable (e.g. `decoder/num_heads`, `decoder/activation`).
    pub fn scalar_i64(&self, name: &str) -> Option<i64> {
        let v = self.var(name)?;
        if v.numel() != 1 || v.dtype.is_float() {
            return None;
        }
        convert::ints_to_i64(self.data(v), v.dtype).first().copied()
    }

    /// The value of a one-element variable of any type, as f32.
    pub fn scalar_f32(&self, name: &str) -> Option<f32> {
        let v = self.var(name)?;
        if v.numel() != 1 {
            return None;
        }
        if v.dtype.is_float() {
            convert::floats_to_f32(self.data(v), v.dtype)
                .first()
                .copied()
        } else {
            convert::ints_to_i64(self.data(v), v.dtype)
                .first()
                .map(|&x| x as f32)
        }
    }

    /// The f32 data of the float `_scale` variable at index `i`.
    fn scale_f32(&self, i: usize) -> Option<&[f32]> {
        if let Some(copy) = self.scale_copies.get(&i) {
            return Some(copy);
        }
        let v = &self.vars[i].1;
        (v.dtype == Ct2Dtype::F32)
            .then(|| bytemuck::try_cast_slice(self.data(v)).ok())
            .flatten()
    }

    /// For an int8 weight: its int8 data, its per-row f32 scales (`value = int8 / scale[row]`) and its shape.
    /// `None` if `name` is missing, not int8, or has no scale.
    pub fn int8_weight(&self, name: &str) -> Option<(&[i8], &[f32], Vec<usize>)> {
        let v = self.var(name)?;
        if v.dtype != Ct2Dtype::I8 {
            return None;
        }
        let scale = self.scale_f32(self.resolve(&format!("{name}_scale"))?)?;
        Some((bytemuck::cast_slice(self.data(v)), scale, v.shape.clone()))
    }

    /// A variable as a candle tensor of `dtype` on `device`.
    ///
    /// Float variables are converted (f16/bf16 to f32 with `half`'s vectorised slice conversion). Quantized
    /// weights are dequantized to `dtype` the way CTranslate2's `Dequantize` op does (`int * (1 / scale)`):
    /// int8 with its per-row `_scale`, int16 with its scalar `_scale` (or 1000 when absent). Other integer
    /// variables (flags, counts, strings) are cast numerically.
    pub fn tensor(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor, Ct2Error> {
        let i = self.resolve(name).ok_or_else(|| self.missing(name))?;
        let v = &self.vars[i].1;
        let data = self.data(v);
        let err = |source| Ct2Error::Tensor {
            path: self.path.clone(),
            name: name.to_string(),
            source: Box::new(source),
        };
        let quantized = matches!(v.dtype, Ct2Dtype::I8 | Ct2Dtype::I16)
            && !v.shape.is_empty()
            && (name.ends_with("weight") || self.resolve(&format!("{name}_scale")).is_some());
        if !quantized {
            return raw_to_tensor(data, v.dtype, &v.shape, dtype, device).map_err(err);
        }
        let scale_name = format!("{name}_scale");
        let scales: Cow<[f32]> = match self.resolve(&scale_name) {
            Some(s) => match self.scale_f32(s) {
                Some(f) => Cow::Borrowed(f),
                None => {
                    let sv = &self.vars[s].1;
                    if sv.dtype.is_float() {
                        convert::floats_to_f32(self.data(sv), sv.dtype)
                    } else {
                        Cow::Owned(
                            convert::ints_to_i64(self.data(sv), sv.dtype)
                                .iter()
                                .map(|&x| x as f32)
                                .collect(),
                        )
                    }
                }
            },
            None if v.dtype == Ct2Dtype::I16 => Cow::Owned(vec![GLOBAL_INT16_SCALE]),
            None => return Err(self.missing(&scale_name)),
        };
        let values =
            convert::dequantize(data, v.dtype, &scales).ok_or_else(|| Ct2Error::Malformed {
                path: self.path.clone(),
                what: format!(
                    "{scale_name}: {} scales for {name} of shape {:?}",
                    scales.len(),
                    v.shape
                ),
            })?;
        convert::f32_to_tensor(values, &v.shape, dtype, device).map_err(err)
    }

    /// A float `[rows, cols]` variable quantized to int8 rows ([`RowMatrix::quantize_int8`]) block by block
    /// from the mapped file, without converting the whole matrix to f32 first. `None` for other dtypes/ranks.
    pub fn quantize_rows_int8(&self, name: &str) -> Option<crate::rowmat::RowMatrix> {
        let v = &self.vars[self.resolve(name)?].1;
        if !matches!(v.dtype, Ct2Dtype::F16 | Ct2Dtype::BF16 | Ct2Dtype::F32) || v.shape.len() != 2
        {
            return None;
        }
        let (rows, cols, size) = (v.shape[0], v.shape[1], v.dtype.size());
        let data = self.data(v);
        Some(crate::rowmat::RowMatrix::quantize_int8_blocks(
            rows,
            cols,
            |r0, r1| convert::floats_to_f32(&data[r0 * cols * size..r1 * cols * size], v.dtype),
        ))
    }

    fn missing(&self, name: &str) -> Ct2Error {
        Ct2Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        }
    }
}
