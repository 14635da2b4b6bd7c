//! A loaded model ready to transcribe audio: weights, tokenizer and the feature extractor together.

use std::path::Path;

use candle_core::{DType, Device};

use crate::WhisperError;
use crate::model::Whisper;
use crate::tokenizer::WhisperTokenizer;
use crate::transcribe::{TranscribeOptions, Transcription, transcribe_features_until};
use crate::weights::open_weights;

/// faster-whisper pads the waveform with this many zero samples before computing features.
const FEATURE_PADDING: usize = 160;

/// Whisper, loaded from a model directory (faster-whisper's layout: `model.bin`, `config.json`,
/// `tokenizer.json`, `vocabulary.*`; or a transformers checkpoint with `tokenizer.json`).
pub struct WhisperPipeline {
    pub model: Whisper,
    pub tokenizer: WhisperTokenizer,
}

impl WhisperPipeline {
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self, WhisperError> {
        Self::load_inner(dir, device, dtype, false)
    }

    /// Loads the weights and, on another thread meanwhile, the tokenizer (parsing tokenizer.json takes about
    /// as long as reading the weights of a small model).
    fn load_inner(
        dir: &Path,
        device: &Device,
        dtype: DType,
        int8: bool,
    ) -> Result<Self, WhisperError> {
        let (model, tokenizer) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| WhisperTokenizer::from_file(&dir.join("tokenizer.json"), 0));
            let model = open_weights(dir).map_err(WhisperError::from).and_then(|w| {
                Ok(if int8 {
                    Whisper::load_int8_decoder(w.as_ref(), device)?
                } else {
                    Whisper::load(w.as_ref(), dtype, device)?
                })
            });
            (
                model,
                tokenizer.join().expect("the tokenizer thread panicked"),
            )
        });
        let mut model = model?;
        let mut tokenizer = tokenizer?;
        tokenizer.set_vocab_size(model.config.vocab_size);
        if let Some(heads) = alignment_heads(dir) {
            model.alignment_heads = heads;
        }
        Ok(WhisperPipeline { model, tokenizer })
    }

    /// Stores the weights of the decoder's per-token products as int8 rows (CTranslate2's per-row scheme;
    /// activations stay f32), which on CPU cuts their memory traffic by 4 and the model's memory by a third.
    /// A no-op on GPUs and for non-f32 models.
    pub fn with_int8_decoder(mut self) -> Result<Self, WhisperError> {
        self.model.decoder.quantize_steps()?;
        Ok(self)
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcription, WhisperError> {
        self.transcribe_until(samples, opts, &|| false)
    }

    /// [`Self::transcribe`], stopping with [`WhisperError::Cancelled`] at the next window once `stop()` is true.
    pub fn transcribe_until(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Transcription, WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::BadInput("the audio is empty".into()));
        }
        let (mel, frames) =
            vox_audio::log_mel_spectrogram(samples, self.model.config.n_mels, FEATURE_PADDING);
        transcribe_features_until(&self.model, &self.tokenizer, &mel, frames, opts, stop)
    }
}

/// `alignment_heads` (`[[layer, head], ...]`) of the model directory's config.json (CTranslate2 writes it there;
/// transformers keeps it in generation_config.json). `None` when absent or malformed.
fn alignment_heads(dir: &Path) -> Option<Vec<(usize, usize)>> {
    let dir = if dir.is_file() { dir.parent()? } else { dir };
    ["config.json", "generation_config.json"]
        .iter()
        .find_map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v.get("alignment_heads")?
                .as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_u64()? as usize, p.get(1)?.as_u64()? as usize)))
                .collect::<Option<Vec<_>>>()
        })
        .filter(|h| !h.is_empty())
}

/// How the weights are held and computed: CTranslate2's `compute_type`, with the values that make sense for this
/// engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// int8 decoder weights on CPU (as fast as float32 there or faster, with a third less memory and the same
    /// WER on the golden set), float16 on CUDA.
    #[default]
    Auto,
    Float32,
    Float16,
    Bfloat16,
    /// f32 activations with int8 weights for the decoder's per-token products (CPU; on CUDA the same as float16).
    Int8,
}

impl std::str::FromStr for Compute {
    type Err = WhisperError;

    fn from_str(s: &str) -> Result<Self, WhisperError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" | "default" => Compute::Auto,
            "float32" | "f32" => Compute::Float32,
            "float16" | "f16" => Compute::Float16,
            "bfloat16" | "bf16" => Compute::Bfloat16,
            "int8" | "int8_float32" => Compute::Int8,
            other => {
                return Err(WhisperError::BadInput(format!(
                    "compute type {other:?}: use auto, float32, float16, bfloat16 or int8"
                )));
            }
        })
    }
}

impl WhisperPipeline {
    /// Loads on `device` with the weights held as `compute` says.
    pub fn load_with(dir: &Path, device: &Device, compute: Compute) -> Result<Self, WhisperError> {
        let int8 = matches!(compute, Compute::Auto | Compute::Int8) && device.is_cpu();
        let dtype = match compute {
            Compute::Float16 => DType::F16,
            Compute::Bfloat16 => DType::BF16,
            Compute::Auto | Compute::Int8 if device.is_cuda() => DType::F16,
            _ => DType::F32,
        };
        Self::load_inner(dir, device, dtype, int8)
    }
}
