//! The Piper voice through vox-engine's `SpeechSynthesizer` trait.

mod common;

use vox_engine::{AudioSink, EngineError, SpeechSynthesizer, SynthesisRequest};

#[derive(Default)]
struct Collect {
    pieces: Vec<Vec<f32>>,
    cancel_after: Option<usize>,
}

impl AudioSink for Collect {
    fn write(&mut self, samples: &[f32]) -> Result<(), EngineError> {
        self.pieces.push(samples.to_vec());
        Ok(())
    }
    fn is_cancelled(&self) -> bool {
        self.cancel_after.is_some_and(|n| self.pieces.len() >= n)
    }
}

#[test]
fn piper_speaks_through_the_engine_trait() {
    let Some(voice) = common::voice() else { return };
    if !common::espeak_cli() {
        return;
    }
    let info = SpeechSynthesizer::info(voice);
    assert_eq!(info.kind, "piper");
    assert_eq!(info.sample_rate, 22050);
    assert_eq!(info.voices[0].id, "en_US-joe-medium");
    assert_eq!(info.voices[0].language.as_deref(), Some("en-US"));
    voice.warm_up().unwrap();

    // One piece per sentence, streamed as made.
    let mut req = SynthesisRequest::new("One sentence here. And another one.");
    req.params.noise_scale = Some(0.0);
    req.params.noise_w = Some(0.0);
    let mut sink = Collect::default();
    SpeechSynthesizer::synthesize(voice, &req, &mut sink).unwrap();
    assert_eq!(sink.pieces.len(), 2);

    // A caller that goes away after the first sentence stops the rest.
    let mut sink = Collect {
        cancel_after: Some(1),
        ..Collect::default()
    };
    let e = SpeechSynthesizer::synthesize(voice, &req, &mut sink).unwrap_err();
    assert!(matches!(e, EngineError::Cancelled), "{e:?}");
    assert_eq!(sink.pieces.len(), 1);

    let mut bad = req.clone();
    bad.voice = Some("someone-else".into());
    let e = SpeechSynthesizer::synthesize(voice, &bad, &mut Collect::default()).unwrap_err();
    assert!(matches!(e, EngineError::InvalidRequest(_)), "{e:?}");

    let mut seeded = req.clone();
    seeded.seed = Some(7);
    let e = SpeechSynthesizer::synthesize(voice, &seeded, &mut Collect::default()).unwrap_err();
    assert!(matches!(e, EngineError::Unsupported(_)), "{e:?}");

    let mut fast = req.clone();
    fast.speed = -1.0;
    let e = SpeechSynthesizer::synthesize(voice, &fast, &mut Collect::default()).unwrap_err();
    assert!(matches!(e, EngineError::InvalidRequest(_)), "{e:?}");
}
