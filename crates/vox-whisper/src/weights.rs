//! The one interface the Whisper model loads its weights from.
//!
//! Names are CTranslate2's (`encoder/layer_0/self_attention/linear_0/weight`, `decoder/num_heads`, ...), see
//! [`crate::ct2`]. A transformers checkpoint ([`crate::hf::HfWhisper`]) is mapped onto the same names, fused the
//! way the CTranslate2 converter fuses it, so either source gives the model identical tensors.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::ct2::{Ct2Error, Ct2Model};
use crate::hf::HfWhisper;
use crate::rowmat::RowMatrix;

/// A source of Whisper weights addressed by CTranslate2 variable names.
pub trait WhisperWeights {
    /// The variable `ct2_name` as a tensor of `dtype` on `device` (quantized weights dequantized; integer
    /// scalars such as `decoder/num_heads` as rank-0 tensors).
    fn get(&self, ct2_name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor>;

    /// Whether `ct2_name` exists (e.g. an optional bias).
    fn has(&self, ct2_name: &str) -> bool;

    /// Number of `layer_N` blocks under `prefix` (`"encoder"` or `"decoder"`).
    fn num_layers(&self, prefix: &str) -> usize;

    /// An integer scalar such as `decoder/num_heads` or `decoder/activation`.
    fn scalar_i64(&self, ct2_name: &str) -> Option<i64> {
        if !self.has(ct2_name) {
            return None;
        }
        let t = self.get(ct2_name, DType::I64, &Device::Cpu).ok()?;
        if t.elem_count() != 1 {
            return None;
        }
        t.flatten_all()
            .ok()?
            .to_vec1::<i64>()
            .ok()?
            .first()
            .copied()
    }

    /// The underlying CTranslate2 model, when there is one (for int8 weights: [`Ct2Model::int8_weight`]).
    fn as_ct2(&self) -> Option<&Ct2Model> {
        None
    }

    /// A float `[rows, cols]` weight quantized to int8 rows straight from the source (no f32 copy of it);
    /// `None` when the source cannot (then the caller quantizes the f32 tensor, with the same result).
    fn rows_int8(&self, _ct2_name: &str) -> Option<RowMatrix> {
        None
    }

    /// A float16 `[rows, cols]` weight as half-precision rows, as stored; `None` for other sources or dtypes.
    fn rows_f16(&self, _ct2_name: &str) -> Option<RowMatrix> {
        None
    }
}

/// Largest `N + 1` over names `{prefix}/layer_{N}/...` (0 if none).
pub(crate) fn count_layers<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> usize {
    names
        .filter_map(|n| {
            n.strip_prefix(prefix)?
                .strip_prefix("/layer_")?
                .split('/')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

impl WhisperWeights for Ct2Model {
    fn get(&self, ct2_name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        self.tensor(ct2_name, dtype, device)
            .map_err(candle_core::Error::wrap)
    }

    fn has(&self, ct2_name: &str) -> bool {
        self.var(ct2_name).is_some()
    }

    fn num_layers(&self, prefix: &str) -> usize {
        count_layers(self.names(), prefix)
    }

    fn scalar_i64(&self, ct2_name: &str) -> Option<i64> {
        Ct2Model::scalar_i64(self, ct2_name)
    }

    fn as_ct2(&self) -> Option<&Ct2Model> {
        Some(self)
    }

    fn rows_int8(&self, ct2_name: &str) -> Option<RowMatrix> {
        self.quantize_rows_int8(ct2_name)
    }

    fn rows_f16(&self, ct2_name: &str) -> Option<RowMatrix> {
        let v = self.var(ct2_name)?;
        if v.dtype != crate::ct2::Ct2Dtype::F16 || v.shape.len() != 2 {
            return None;
        }
        let data = bytemuck::pod_collect_to_vec::<u8, half::f16>(self.bytes(ct2_name)?);
        Some(RowMatrix::from_f16(v.shape[0], v.shape[1], data))
    }
}

/// Opens the weights of a model directory: `model.bin` (CTranslate2 / faster-whisper) if present, else
/// `model.safetensors` or `model.safetensors.index.json` (transformers) with its `config.json`. `model_dir`
/// may also be the weights file itself (`*.safetensors` is read as transformers, anything else as CTranslate2).
pub fn open_weights(model_dir: &Path) -> Result<Box<dyn WhisperWeights + Send + Sync>, Ct2Error> {
    if model_dir.is_file() {
        return Ok(
            if model_dir.extension().is_some_and(|e| e == "safetensors") {
                let config = model_dir.with_file_name("config.json");
                Box::new(HfWhisper::from_files(&[model_dir.to_path_buf()], &config)?)
            } else {
                Box::new(Ct2Model::open(model_dir)?)
            },
        );
    }
    let bin = model_dir.join("model.bin");
    if bin.is_file() {
        return Ok(Box::new(Ct2Model::open(&bin)?));
    }
    if model_dir.join("model.safetensors").is_file()
        || model_dir.join("model.safetensors.index.json").is_file()
    {
        return Ok(Box::new(HfWhisper::open(model_dir)?));
    }
    Err(Ct2Error::NoModel {
        path: model_dir.to_path_buf(),
    })
}
