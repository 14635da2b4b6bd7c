//! `vox-chatterbox`: Resemble AI's Chatterbox TTS (English) on candle, ported from the reference
//! (`chatterbox-tts` 0.1.7 = resemble-ai/chatterbox 59bc590). The module tree mirrors the reference's
//! `chatterbox/models/{t3, s3gen}` so every checkpoint name maps one to one onto a `VarBuilder` path.
//!
//! - [`t3`]: text → speech tokens (Llama backbone, conditioning encoder, CFG sampling).
//! - [`s3gen`]: speech tokens → 24 kHz waveform (Conformer encoder, flow matching, HiFT vocoder).
//!
//! It does not download anything (vox-store provisions the snapshot) and knows nothing of HTTP.

pub mod s3gen;
pub mod t3;
pub mod text;

/// What can go wrong loading or running Chatterbox.
#[derive(Debug, thiserror::Error)]
pub enum ChatterboxError {
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    BadInput(String),
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
