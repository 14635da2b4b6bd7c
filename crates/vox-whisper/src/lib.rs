//! `vox-whisper`: Whisper speech-to-text on candle. Loads faster-whisper's CTranslate2 `model.bin` (and
//! transformers safetensors) without Python; decodes with faster-whisper's defaults and options.
//!
//! Modules: [`ct2`] reads CTranslate2 model files; [`weights`] is the one interface the model loads from (CT2 or
//! transformers names, both mapped to CT2's); `model` is the encoder/decoder; `decode` the search; `transcribe`
//! the long-audio loop; `batched` faster-whisper's `BatchedInferencePipeline` (VAD chunks decoded together).

pub mod align;
mod attention;
pub mod batched;
pub mod cpu_ops;
pub mod ct2;
pub mod decode;
pub mod decode_batch;
pub mod engine;
pub mod format;
pub mod hf;
pub mod model;
pub mod pipeline;
pub mod rowmat;
pub mod tokenizer;
mod tokenizer_json;
pub mod transcribe;
pub mod vad;
pub mod weights;
pub mod words;

pub use batched::BatchedPipeline;
pub use decode::{GenerateOptions, Generation};
pub use model::{Config, Whisper};
pub use pipeline::{Compute, WhisperPipeline};
pub use tokenizer::WhisperTokenizer;
pub use transcribe::{Segment, Task, TranscribeOptions, Transcription};
pub use words::Word;

/// What can go wrong in speech-to-text.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error("model: {0}")]
    Model(String),
    #[error("{0}")]
    BadInput(String),
    #[error("model file: {0}")]
    Ct2(#[from] ct2::Ct2Error),
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("audio: {0}")]
    Audio(String),
    #[error("cancelled")]
    Cancelled,
}

/// Whisper's language codes, in token order (`<|en|>` = 50259 on multilingual vocabularies).
pub const LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];
