//! [`PiperVoice`] as a vox-engine [`SpeechSynthesizer`].

use vox_engine::{
    AudioSink, EngineError, SpeechSynthesizer, SynthesisRequest, SynthesizerInfo, VoiceInfo,
};

use crate::error::PiperError;
use crate::voice::{PiperParams, PiperVoice};

/// Text per call the runtime should give Piper. Piper synthesises one sentence per model run, and its
/// attention grows with the square of a sentence's phonemes, so chunks stay a few sentences long.
const MAX_CHUNK_CHARS: usize = 500;

impl From<PiperError> for EngineError {
    fn from(e: PiperError) -> Self {
        match e {
            PiperError::BadInput(m) => EngineError::InvalidRequest(m),
            other => EngineError::Failed(other.to_string()),
        }
    }
}

impl SpeechSynthesizer for PiperVoice {
    fn info(&self) -> SynthesizerInfo {
        SynthesizerInfo {
            kind: "piper".into(),
            sample_rate: self.sample_rate(),
            voices: vec![VoiceInfo {
                id: self.name().to_string(),
                language: self
                    .config()
                    .language
                    .as_ref()
                    .map(|l| l.code.replace('_', "-")),
                description: Some(format!(
                    "Piper VITS voice, espeak-ng voice {}",
                    self.config().espeak.voice
                )),
            }],
            max_chunk_chars: MAX_CHUNK_CHARS,
        }
    }

    fn warm_up(&self) -> Result<(), EngineError> {
        self.synthesize("Hello.", &PiperParams::default())?;
        Ok(())
    }

    fn synthesize(
        &self,
        req: &SynthesisRequest,
        out: &mut dyn AudioSink,
    ) -> Result<(), EngineError> {
        if let Some(v) = req.voice.as_deref().filter(|v| *v != self.name()) {
            return Err(EngineError::InvalidRequest(format!(
                "unknown voice {v:?}; this Piper engine speaks {:?}",
                self.name()
            )));
        }
        if req.seed.is_some() {
            // Ignoring it would break the promise that a seed reproduces the audio.
            return Err(EngineError::Unsupported(
                "seed: Piper's noise cannot be seeded; set noise_scale and noise_w to 0 for reproducible audio"
                    .into(),
            ));
        }
        let params = PiperParams {
            speed: req.speed,
            noise_scale: req.params.noise_scale,
            noise_w: req.params.noise_w,
            ..PiperParams::default()
        };
        // The sink's error (a cancelled caller) travels through PiperError; keep it to return it as is.
        let mut sink_error = None;
        let result = self.synthesize_sentences(&req.text, &params, |audio| {
            if out.is_cancelled() {
                sink_error = Some(EngineError::Cancelled);
            } else if let Err(e) = out.write(audio) {
                sink_error = Some(e);
            } else if out.is_cancelled() {
                // Checked again so a caller gone during this sentence does not pay for the next one.
                sink_error = Some(EngineError::Cancelled);
            }
            match sink_error {
                Some(_) => Err(PiperError::Inference("stopped by the caller".into())),
                None => Ok(()),
            }
        });
        match (result, sink_error) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
            (Ok(_), None) => Ok(()),
        }
    }
}
