//! A loaded model ready to transcribe audio: weights, tokenizer and the feature extractor together.

use std::path::Path;

use candle_core::{DType, Device};

use crate::WhisperError;
use crate::model::Whisper;
use crate::tokenizer::WhisperTokenizer;
use crate::transcribe::{TranscribeOptions, Transcription, transcribe_features};
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
        let weights = open_weights(dir)?;
        let model = Whisper::load(weights.as_ref(), dtype, device)?;
        let tokenizer =
            WhisperTokenizer::from_file(&dir.join("tokenizer.json"), model.config.vocab_size)?;
        Ok(WhisperPipeline { model, tokenizer })
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcription, WhisperError> {
        if samples.is_empty() {
            return Err(WhisperError::BadInput("the audio is empty".into()));
        }
        let (mel, frames) =
            vox_audio::log_mel_spectrogram(samples, self.model.config.n_mels, FEATURE_PADDING);
        transcribe_features(&self.model, &self.tokenizer, &mel, frames, opts)
    }
}
