use std::path::PathBuf;

/// Errors of this crate. `Clone` because espeak-ng's load outcome is kept for the life of the process.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PiperError {
    #[error("the Piper voice folder {dir} has no {what}")]
    MissingFile { dir: PathBuf, what: String },
    #[error("bad Piper voice config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Onnx(#[from] vox_onnx::OnnxError),
    #[error("espeak-ng: {0}")]
    Espeak(String),
    #[error("bad synthesis input: {0}")]
    BadInput(String),
    #[error("Piper inference failed: {0}")]
    Inference(String),
}

impl From<vox_onnx::ort::Error> for PiperError {
    fn from(e: vox_onnx::ort::Error) -> Self {
        PiperError::Inference(e.to_string())
    }
}

pub type Result<T, E = PiperError> = std::result::Result<T, E>;
