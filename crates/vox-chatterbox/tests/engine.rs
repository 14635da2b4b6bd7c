//! The Chatterbox engine on the tiny random-weight snapshot: text → wav parity with the reference's
//! `ChatterboxTTS.generate` (fixtures of `tools/chatterbox/make_engine_fixtures.py`), seeds, errors,
//! long text in streamed sentence chunks, cancellation.

mod engine_common;

use std::collections::HashMap;
use std::sync::Arc;

use engine_common::*;
use serde::Deserialize;
use vox_chatterbox::t3::SamplingParams;
use vox_chatterbox::{ChatterboxEngine, GenerateOptions};
use vox_engine::{
    AudioSink, CancelToken, ChunkMode, EngineError, SpeechSynthesizer, SynthesisParams,
    SynthesisRequest, synthesize_long,
};

#[derive(Deserialize)]
struct Params {
    repetition_penalty: f32,
    min_p: f32,
    top_p: f32,
    exaggeration: f32,
    cfg_weight: f32,
    temperature: f32,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    params: Params,
    max_new_tokens: usize,
    seeds: HashMap<String, u64>,
    samples: usize,
}

fn engine() -> (ChatterboxEngine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let snap = tiny_snapshot(&dir.path().join("snap"));
    (ChatterboxEngine::load(&snap).unwrap(), dir)
}

/// Collects what the engine writes.
#[derive(Default)]
struct Collect {
    samples: Vec<f32>,
    writes: usize,
    cancelled: bool,
}

impl AudioSink for Collect {
    fn write(&mut self, s: &[f32]) -> Result<(), EngineError> {
        self.samples.extend_from_slice(s);
        self.writes += 1;
        Ok(())
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

fn speak(e: &ChatterboxEngine, req: &SynthesisRequest) -> Result<Vec<f32>, EngineError> {
    let mut out = Collect::default();
    e.synthesize(req, &mut out)?;
    Ok(out.samples)
}

#[test]
fn text_to_wav_matches_the_reference_generate() {
    let (e, _dir) = engine();
    let dir = fixtures().join("engine");
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(!cases.is_empty());
    for c in &cases {
        let p = &c.params;
        let opts = GenerateOptions {
            exaggeration: p.exaggeration,
            sampling: SamplingParams {
                temperature: p.temperature,
                repetition_penalty: p.repetition_penalty,
                min_p: p.min_p,
                top_p: p.top_p,
                cfg_weight: p.cfg_weight,
            },
            max_new_tokens: c.max_new_tokens,
        };
        let mut uniforms = SplitMix::new(c.seeds["t3"]);
        let mut noise = SplitMixNoise {
            z: c.seeds["z"],
            phase: c.seeds["phase"],
            sine: c.seeds["sine"],
        };
        let wav = e
            .generate(&c.text, &opts, &mut uniforms, &mut noise, &|| false)
            .unwrap();
        let want: Vec<f32> = expected[&format!("wav.{}", c.name)].to_vec1().unwrap();
        assert_eq!(wav.len(), c.samples, "{}: samples", c.name);
        let snr = snr_db(&wav, &want);
        eprintln!("{}: {} samples, SNR {snr:.1} dB", c.name, wav.len());
        assert!(snr >= 60.0, "{}: SNR {snr:.1} dB", c.name);
    }
}

fn req(text: &str, seed: u64) -> SynthesisRequest {
    SynthesisRequest {
        seed: Some(seed),
        ..SynthesisRequest::new(text)
    }
}

#[test]
fn the_same_seed_gives_the_same_audio_and_another_seed_other_audio() {
    let (e, _dir) = engine();
    let info = e.info();
    assert_eq!(info.kind, "chatterbox");
    assert_eq!(info.sample_rate, 24_000);
    assert_eq!(info.voices[0].id, "default");
    // The tiny model's text table (126 tokens) bounds a chunk.
    assert_eq!(info.max_chunk_chars, 63);
    e.warm_up().unwrap();

    let text = "The quick brown fox jumps over the lazy dog.";
    let a = speak(&e, &req(text, 5)).unwrap();
    let b = speak(&e, &req(text, 5)).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let others: Vec<Vec<f32>> = (6..9).map(|s| speak(&e, &req(text, s)).unwrap()).collect();
    assert!(others.iter().all(|o| *o != a));
    // Each parameter reaches the model: changing one changes the audio.
    let params = [
        SynthesisParams {
            exaggeration: Some(1.5),
            ..Default::default()
        },
        SynthesisParams {
            cfg_weight: Some(0.0),
            ..Default::default()
        },
        SynthesisParams {
            temperature: Some(0.3),
            ..Default::default()
        },
        SynthesisParams {
            min_p: Some(0.3),
            ..Default::default()
        },
        SynthesisParams {
            top_p: Some(0.3),
            ..Default::default()
        },
        SynthesisParams {
            repetition_penalty: Some(2.0),
            ..Default::default()
        },
    ];
    for p in params {
        let r = SynthesisRequest {
            params: p.clone(),
            ..req(text, 5)
        };
        let c = speak(&e, &r).unwrap();
        assert_ne!(c, a, "{p:?} changed nothing");
        assert_eq!(c, speak(&e, &r).unwrap(), "{p:?} is not reproducible");
    }
}

#[test]
fn bad_requests_and_incomplete_snapshots_are_refused_with_their_reason() {
    let (e, dir) = engine();
    let bad = |r: SynthesisRequest| speak(&e, &r).unwrap_err().to_string();
    assert!(bad(SynthesisRequest::new("  ")).contains("empty"));
    let e1 = bad(SynthesisRequest {
        voice: Some("alice".into()),
        ..SynthesisRequest::new("Hi.")
    });
    assert!(e1.contains("unknown voice \"alice\""), "{e1}");
    let e2 = bad(SynthesisRequest {
        params: SynthesisParams {
            temperature: Some(-1.0),
            ..Default::default()
        },
        ..SynthesisRequest::new("Hi.")
    });
    assert!(e2.contains("temperature -1"), "{e2}");
    let e3 = bad(SynthesisRequest {
        speed: 1.5,
        ..SynthesisRequest::new("Hi.")
    });
    assert!(e3.contains("speed"), "{e3}");
    // The default voice by name is fine.
    speak(
        &e,
        &SynthesisRequest {
            voice: Some("default".into()),
            ..req("Hi.", 1)
        },
    )
    .unwrap();
    // Over-long text (past the tiny model's 126-token text table) is the caller's mistake.
    let long = "word ".repeat(100);
    assert!(matches!(
        speak(&e, &req(&long, 1)),
        Err(EngineError::InvalidRequest(_))
    ));

    let snap = dir.path().join("snap");
    std::fs::remove_file(snap.join("conds.pt")).unwrap();
    let err = ChatterboxEngine::load(&snap).err().unwrap().to_string();
    assert!(err.contains("no conds.pt"), "{err}");
}

#[test]
fn long_text_streams_the_first_sentence_before_the_next_is_spoken() {
    let (e, _dir) = engine();
    let e = Arc::new(e);
    let text = "The quick brown fox jumps. A lazy dog sleeps. Birds sing at dawn.";
    let mut pieces: Vec<(usize, u64)> = Vec::new();
    let before = e.chunks_spoken();
    let cancel = CancelToken::new();
    synthesize_long(
        e.as_ref(),
        &req(text, 3),
        ChunkMode::PerSentence,
        &cancel,
        &mut |p| {
            pieces.push((p.len(), e.chunks_spoken() - before));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(e.chunks_spoken() - before, 3);
    // The first sentence's audio left while only one chunk had been spoken.
    let first_audio = pieces.iter().find(|(n, _)| *n > 0).unwrap();
    assert_eq!(first_audio.1, 1, "{pieces:?}");
    // Each sentence alone gives the same samples as inside the long text (joins only fade edges and add
    // pauses): the total is the three chunks plus two 120 ms gaps.
    let alone: usize = [
        "The quick brown fox jumps.",
        "A lazy dog sleeps.",
        "Birds sing at dawn.",
    ]
    .iter()
    .map(|s| speak(&e, &req(s, 3)).unwrap().len())
    .sum();
    let total: usize = pieces.iter().map(|p| p.0).sum();
    assert_eq!(total, alone + 2 * 2880);

    // A cancelled caller gets no audio and the engine stops.
    let cancel = CancelToken::new();
    cancel.cancel();
    let r = synthesize_long(
        e.as_ref(),
        &req(text, 3),
        ChunkMode::PerSentence,
        &cancel,
        &mut |_| Ok(()),
    );
    assert!(matches!(r, Err(EngineError::Cancelled)));
    let mut out = Collect {
        cancelled: true,
        ..Default::default()
    };
    assert!(matches!(
        e.synthesize(&req("Hello there.", 1), &mut out),
        Err(EngineError::Cancelled)
    ));
    assert_eq!(out.writes, 0);
}
