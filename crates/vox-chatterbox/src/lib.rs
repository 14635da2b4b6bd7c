//! `vox-chatterbox`: Resemble AI's Chatterbox TTS (English) on candle, ported from the reference
//! (`chatterbox-tts` 0.1.7 = resemble-ai/chatterbox 59bc590). The module tree mirrors the reference's
//! `chatterbox/models/{t3, s3gen}` so every checkpoint name maps one to one onto a `VarBuilder` path.
//!
//! - [`t3`]: text → speech tokens (Llama backbone, conditioning encoder, CFG sampling).
//! - [`s3gen`]: speech tokens → 24 kHz waveform (Conformer encoder, flow matching, HiFT vocoder).
//! - [`engine`]: the whole model from a snapshot directory (`ChatterboxTTS.from_local` +
//!   `generate`), behind vox-engine's `SpeechSynthesizer`, with the built-in voice of `conds.pt`.
//!
//! It does not download anything (vox-store provisions the snapshot), knows nothing of HTTP, does not clone
//! voices from audio (S3Tokenizer, CAMPPlus and the voice encoder are not ported) and does not apply the
//! reference's Perth watermark.

pub mod engine;
pub mod s3gen;
pub mod t3;
pub mod text;

pub use engine::{ChatterboxEngine, GenerateOptions};

/// What can go wrong loading or running Chatterbox.
#[derive(Debug, thiserror::Error)]
pub enum ChatterboxError {
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    BadInput(String),
    /// The caller gave up; the work stopped between steps.
    #[error("cancelled")]
    Cancelled,
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
