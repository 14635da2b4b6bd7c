//! `vox-piper`: Piper VITS text-to-speech (e.g. the `en_US-joe-medium` voice) on ONNX Runtime.
//!
//! What it does:
//! - [`PiperVoice::load`] opens a voice folder (`<name>.onnx` + `<name>.onnx.json`) in an ONNX Runtime session
//!   (through `vox-onnx`, which loads the pinned `libonnxruntime` at run time).
//! - [`phonemize`] turns text into phonemes exactly as piper does: espeak-ng IPA per clause (through
//!   `libespeak-ng`, loaded at run time and serialised behind a global lock), clause punctuation kept, and
//!   piper's `^ _ (p _)* $` id mapping.
//! - [`PiperVoice::synthesize`] speaks text sentence by sentence with the voice's scales and sentence silence,
//!   returning mono `f32` samples at [`PiperVoice::sample_rate`] (22050 Hz for medium voices).
//!
//! - Implements vox-engine's `SpeechSynthesizer` for [`PiperVoice`] (one voice per engine; sentences are
//!   written to the sink as they are made).
//!
//! What it does not: resample or encode audio (vox-audio does), split very long text (the engine layer
//! chunks), seed the model's noise (see [`PiperParams`]), or support piper's `text` phoneme type or
//! per-phoneme silences.

mod config;
mod engine;
mod error;
mod espeak;
pub mod phonemize;
mod voice;

pub use config::{AudioConfig, EspeakConfig, InferenceConfig, LanguageConfig, VoiceConfig};
pub use error::{PiperError, Result};
pub use voice::{PiperParams, PiperVoice};
