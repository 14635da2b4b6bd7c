//! Whisper as a [`vox_engine::Transcriber`]: the server's view of this crate.

use std::path::Path;

use candle_core::Device;
use vox_engine::{
    EngineError, Transcriber, TranscriberInfo, Transcript, TranscriptSegment, TranscriptWord,
    TranscriptionRequest,
};

use crate::transcribe::{Task, TranscribeOptions, Transcription};
use crate::{WhisperError, WhisperPipeline};

/// A loaded Whisper model serving transcription requests.
pub struct WhisperEngine {
    pipeline: WhisperPipeline,
}

impl WhisperEngine {
    /// Loads the model in `dir` (a snapshot folder) on the GPU when this build has CUDA and one is present
    /// (float16), else on the CPU (int8 decoder weights: see [`crate::Compute::Auto`]).
    pub fn load(dir: &Path) -> Result<Self, WhisperError> {
        // `cuda_if_available` is true whenever the feature is compiled in; fall back to the CPU when no GPU opens.
        let device = if cfg!(feature = "cuda") {
            Device::new_cuda(0).unwrap_or(Device::Cpu)
        } else {
            Device::Cpu
        };
        Ok(WhisperEngine {
            pipeline: WhisperPipeline::load_with(dir, &device, crate::Compute::Auto)?,
        })
    }

    pub fn from_pipeline(pipeline: WhisperPipeline) -> Self {
        WhisperEngine { pipeline }
    }

    fn options(&self, req: &TranscriptionRequest) -> Result<TranscribeOptions, EngineError> {
        let mut o = TranscribeOptions {
            language: req.language.clone(),
            task: match req.task {
                vox_engine::Task::Transcribe => Task::Transcribe,
                vox_engine::Task::Translate => Task::Translate,
            },
            initial_prompt: req.prompt.clone().filter(|p| !p.trim().is_empty()),
            word_timestamps: req.word_timestamps,
            ..TranscribeOptions::default()
        };
        if let Some(lang) = &o.language
            && !self.pipeline.tokenizer.multilingual
            && lang != "en"
        {
            return Err(EngineError::Unsupported(format!(
                "language {lang:?}: this model is English-only"
            )));
        }
        if req.task == vox_engine::Task::Translate && !self.pipeline.tokenizer.multilingual {
            return Err(EngineError::Unsupported(
                "translation: this model is English-only".into(),
            ));
        }
        if let Some(t) = req.temperature {
            if !(0.0..=1.0).contains(&t) {
                return Err(EngineError::InvalidRequest(format!(
                    "temperature {t} is outside 0..=1"
                )));
            }
            o.temperatures = vec![t];
        }
        if let Some(b) = req.beam_size {
            o.beam_size = b.clamp(1, 16);
        }
        if let Some(s) = req.seed {
            o.seed = s;
        }
        Ok(o)
    }
}

impl Transcriber for WhisperEngine {
    fn info(&self) -> TranscriberInfo {
        let multilingual = self.pipeline.tokenizer.multilingual;
        TranscriberInfo {
            kind: "whisper".into(),
            sample_rate: vox_audio::WHISPER_SAMPLE_RATE,
            multilingual,
            translates: multilingual,
        }
    }

    /// Transcribes one second of a tone: the encoder and the decoder each run once for real.
    fn warm_up(&self) -> Result<(), EngineError> {
        let rate = vox_audio::WHISPER_SAMPLE_RATE as f32;
        let samples: Vec<f32> = (0..vox_audio::WHISPER_SAMPLE_RATE)
            .map(|i| 0.1 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate).sin())
            .collect();
        let opts = TranscribeOptions {
            beam_size: 1,
            temperatures: vec![0.0],
            ..TranscribeOptions::default()
        };
        self.pipeline
            .transcribe(&samples, &opts)
            .map(|_| ())
            .map_err(failed)
    }

    fn transcribe(
        &self,
        req: &TranscriptionRequest,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Transcript, EngineError> {
        if cancelled() {
            return Err(EngineError::Cancelled);
        }
        let opts = self.options(req)?;
        let t = self
            .pipeline
            .transcribe_until(&req.samples, &opts, cancelled)
            .map_err(failed)?;
        Ok(to_transcript(t))
    }
}

fn failed(e: WhisperError) -> EngineError {
    match e {
        WhisperError::BadInput(m) => EngineError::InvalidRequest(m),
        WhisperError::Cancelled => EngineError::Cancelled,
        other => EngineError::Failed(other.to_string()),
    }
}

fn to_transcript(t: Transcription) -> Transcript {
    Transcript {
        language: t.language,
        language_probability: t.language_probability,
        duration: t.duration,
        segments: t
            .segments
            .into_iter()
            .map(|s| TranscriptSegment {
                id: s.id,
                seek: s.seek,
                start: s.start,
                end: s.end,
                text: s.text,
                tokens: s.tokens,
                temperature: s.temperature,
                avg_logprob: s.avg_logprob,
                compression_ratio: s.compression_ratio,
                no_speech_prob: s.no_speech_prob,
                words: s.words.map(|ws| {
                    ws.into_iter()
                        .map(|w| TranscriptWord {
                            word: w.word,
                            start: w.start,
                            end: w.end,
                            probability: w.probability,
                        })
                        .collect()
                }),
            })
            .collect(),
    }
}
