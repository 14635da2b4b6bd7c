//! Writing `model.bin` files, and re-encoding a float model to int8 weights.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use super::convert::{floats_to_f32, quantize_int8_rows};
use super::{CURRENT_BINARY_VERSION, Ct2Dtype, Ct2Error, Ct2Model};

/// Builds a CTranslate2 `model.bin` (binary version 6) in memory and writes it.
///
/// Like CTranslate2's `ModelSpec._serialize`, variables and aliases are written sorted by name; adding a name
/// twice keeps the last value.
#[derive(Debug, Clone)]
pub struct Ct2Writer {
    spec: String,
    revision: u32,
    vars: BTreeMap<String, (Vec<usize>, Ct2Dtype, Vec<u8>)>,
    aliases: BTreeMap<String, String>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn u32_of(n: usize, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("{what} ({n}) does not fit the format's u32")))
}

fn write_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    let len = u16::try_from(s.len() + 1).map_err(|_| invalid(format!("name too long: {s}")))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(s.as_bytes())?;
    out.write_all(&[0])
}

impl Ct2Writer {
    /// An empty model of spec `spec` (e.g. `"WhisperSpec"`) at revision `revision`.
    pub fn new(spec: &str, revision: u32) -> Self {
        Self {
            spec: spec.to_string(),
            revision,
            vars: BTreeMap::new(),
            aliases: BTreeMap::new(),
        }
    }

    /// Adds a variable: `bytes` are its little-endian elements of `dtype` (`shape` empty for a scalar).
    /// A quantized weight `w` needs its scale added as `w_scale` (f32 `[rows]` for int8, f32 scalar for int16).
    pub fn add(&mut self, name: &str, shape: &[usize], dtype: Ct2Dtype, bytes: &[u8]) {
        self.vars
            .insert(name.to_string(), (shape.to_vec(), dtype, bytes.to_vec()));
    }

    /// Adds an alias: `alias` reads as variable `target`.
    pub fn add_alias(&mut self, alias: &str, target: &str) {
        self.aliases.insert(alias.to_string(), target.to_string());
    }

    /// Writes the model to `path`. Fails with `InvalidInput` if a variable's byte size does not match its
    /// shape and dtype, or a name or size does not fit the format.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(&CURRENT_BINARY_VERSION.to_le_bytes())?;
        write_string(&mut out, &self.spec)?;
        out.write_all(&self.revision.to_le_bytes())?;
        out.write_all(&u32_of(self.vars.len(), "variable count")?.to_le_bytes())?;
        for (name, (shape, dtype, bytes)) in &self.vars {
            let expected: usize = shape.iter().product::<usize>() * dtype.size();
            if expected != bytes.len() {
                return Err(invalid(format!(
                    "{name}: {} bytes, but shape {shape:?} of {dtype:?} needs {expected}",
                    bytes.len()
                )));
            }
            write_string(&mut out, name)?;
            let rank = u8::try_from(shape.len())
                .map_err(|_| invalid(format!("{name}: rank too large")))?;
            out.write_all(&[rank])?;
            for &d in shape {
                out.write_all(&u32_of(d, name)?.to_le_bytes())?;
            }
            out.write_all(&[dtype.id()])?;
            out.write_all(&u32_of(bytes.len(), name)?.to_le_bytes())?;
            out.write_all(bytes)?;
        }
        out.write_all(&u32_of(self.aliases.len(), "alias count")?.to_le_bytes())?;
        for (alias, target) in &self.aliases {
            write_string(&mut out, alias)?;
            write_string(&mut out, target)?;
        }
        out.flush()
    }
}

/// Whether CTranslate2 quantizes this variable: the `weight` of a Linear, Conv1D or Embeddings spec (the
/// specs with a `weight_scale`), never scalars.
fn is_quantizable(name: &str, shape: &[usize]) -> bool {
    name.ends_with("weight") && shape.len() >= 2
}

/// Re-encodes the model at `src` as CTranslate2's "int8_float32" conversion would (`LayerSpec._quantize`):
/// every quantizable weight (linear, conv1d and embedding `weight`s) becomes int8 with a per-row f32
/// `<name>_scale` (per-row `amax`, `scale = 127 / amax`, `rint`; conv weights use their first dimension as
/// rows); other non-scalar floats become f32; scalars, integer variables and aliases are kept. Weights that are
/// already int8 are kept, int16 weights are dequantized and re-quantized.
pub fn quantize_int8(src: &Path, dst: &Path) -> Result<(), Ct2Error> {
    let m = Ct2Model::open(src)?;
    let mut w = Ct2Writer::new(m.spec(), m.revision());
    for (name, v) in &m.vars {
        if let Some(base) = name.strip_suffix("_scale")
            && m.index
                .get(base)
                .is_some_and(|&b| is_quantizable(base, &m.vars[b].1.shape))
        {
            continue; // written with its weight
        }
        let data = m.data(v);
        let scale_name = format!("{name}_scale");
        if is_quantizable(name, &v.shape) && v.dtype != Ct2Dtype::I32 {
            let (q, scales) = match v.dtype {
                Ct2Dtype::I8 => {
                    let (q, s, _) = m.int8_weight(name).ok_or_else(|| m.missing(&scale_name))?;
                    (q.to_vec(), s.to_vec())
                }
                Ct2Dtype::I16 => {
                    let t = m.tensor(name, candle_core::DType::F32, &candle_core::Device::Cpu)?;
                    let f = t.flatten_all().and_then(|t| t.to_vec1::<f32>());
                    let f = f.map_err(|source| Ct2Error::Tensor {
                        path: m.path.clone(),
                        name: name.clone(),
                        source: Box::new(source),
                    })?;
                    quantize_int8_rows(&f, v.shape[0])
                }
                _ => quantize_int8_rows(&floats_to_f32(data, v.dtype), v.shape[0]),
            };
            w.add(name, &v.shape, Ct2Dtype::I8, bytemuck::cast_slice(&q));
            w.add(
                &scale_name,
                &[scales.len()],
                Ct2Dtype::F32,
                bytemuck::cast_slice(&scales),
            );
        } else if v.dtype.is_float() && !v.shape.is_empty() {
            w.add(
                name,
                &v.shape,
                Ct2Dtype::F32,
                bytemuck::cast_slice(&floats_to_f32(data, v.dtype)),
            );
        } else {
            w.add(name, &v.shape, v.dtype, data);
        }
    }
    for (alias, target) in &m.aliases {
        w.add_alias(alias, &m.vars[*target].0);
    }
    w.write(dst).map_err(|source| Ct2Error::Io {
        path: dst.to_path_buf(),
        source,
    })
}
