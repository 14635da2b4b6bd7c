//! S3Gen's speaker reference (the reference's `ref_dict`): prompt speech tokens, the prompt's
//! 24 kHz log-mel and the CAMPPlus x-vector. The built-in voice ships as the `gen` part of
//! `conds.pt` (a torch zip pickle: `{"t3": {...}, "gen": {prompt_token, prompt_token_len,
//! prompt_feat, prompt_feat_len: None, embedding}}`).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::ChatterboxError;

/// Conditioning for S3Gen. Cloning a voice from audio (S3Tokenizer, CAMPPlus, mel) is not here.
#[derive(Debug, Clone)]
pub struct S3GenRef {
    /// (1, P) u32 speech tokens of the prompt audio.
    pub prompt_token: Tensor,
    /// (1, 2P, 80) f32 log-mel of the prompt audio (50 frames/s).
    pub prompt_feat: Tensor,
    /// (1, 192) f32 speaker x-vector (not yet normalised).
    pub embedding: Tensor,
}

impl S3GenRef {
    /// Checks shapes and moves the parts onto `device`.
    pub fn new(
        prompt_token: &[u32],
        prompt_feat: Tensor,
        embedding: Tensor,
        device: &Device,
    ) -> Result<Self, ChatterboxError> {
        let p = prompt_token.len();
        let prompt_feat = prompt_feat.to_dtype(DType::F32)?.to_device(device)?;
        let embedding = embedding.to_dtype(DType::F32)?.to_device(device)?;
        let feat_dims = prompt_feat.dims().to_vec();
        if feat_dims.len() != 3 || feat_dims[0] != 1 || feat_dims[2] != 80 || feat_dims[1] > 2 * p {
            return Err(ChatterboxError::BadInput(format!(
                "S3Gen prompt mel must be (1, ≤2·{p}, 80), got {feat_dims:?}"
            )));
        }
        if embedding.dims() != [1, 192] {
            return Err(ChatterboxError::BadInput(format!(
                "S3Gen x-vector must be (1, 192), got {:?}",
                embedding.dims()
            )));
        }
        Ok(Self {
            prompt_token: Tensor::from_slice(prompt_token, (1, p), device)?,
            prompt_feat,
            embedding,
        })
    }

    /// Reads the built-in voice from `conds.pt`.
    pub fn from_conds_pt(path: &Path, device: &Device) -> Result<Self, ChatterboxError> {
        let bad = |what: String| ChatterboxError::Model(format!("{}: {what}", path.display()));
        if !path.is_file() {
            return Err(ChatterboxError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let pth = candle_core::pickle::PthTensors::new(path, Some("gen"))
            .map_err(|e| bad(format!("not a torch conditionals file ({e})")))?;
        let get = |name: &str| -> Result<Tensor, ChatterboxError> {
            pth.get(name)?
                .ok_or_else(|| bad(format!("gen.{name} is missing")))
        };
        let tokens: Vec<u32> = get("prompt_token")?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1::<i64>()?
            .into_iter()
            .map(|t| u32::try_from(t).map_err(|_| bad(format!("prompt token {t} out of range"))))
            .collect::<Result<_, _>>()?;
        Self::new(&tokens, get("prompt_feat")?, get("embedding")?, device)
    }
}
