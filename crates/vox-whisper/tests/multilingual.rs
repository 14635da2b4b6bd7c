//! The multilingual paths against faster-whisper 1.2.1 on a tiny random-weight multilingual Whisper
//! (tests/multilingual, made by tools/whisper/make_multilingual.py with the real multilingual vocabulary):
//! language detection (same language, every probability within 1e-4), and greedy token ids of transcribe with
//! the detected language, translate, and transcribe with a forced language.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use vox_whisper::transcribe::detect_language;
use vox_whisper::{Task, TranscribeOptions, WhisperPipeline};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/multilingual")
}

/// The fixture model in a temp dir, with tokenizer.json unpacked.
fn load() -> (tempfile::TempDir, WhisperPipeline, Value) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.bin", "config.json"] {
        std::fs::copy(
            fixture_dir().join("model").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    let mut json = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture_dir().join("tokenizer.json.gz")).unwrap(),
    )
    .read_to_string(&mut json)
    .unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
    let p = WhisperPipeline::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    (dir, p, expected)
}

fn samples(clip: &Value) -> Vec<f32> {
    clip["samples_i16"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as f32 / 32768.0)
        .collect()
}

fn tokens(segments: &Value) -> Vec<Vec<u64>> {
    segments
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn language_detection_matches_faster_whisper() {
    let (_dir, p, expected) = load();
    assert!(p.tokenizer.multilingual);
    for (name, clip) in expected["clips"].as_object().unwrap() {
        // faster-whisper's detect_language(audio): features of the first 30 s (padding frame included),
        // padded to 3000 frames.
        let (mel, frames) = vox_audio::log_mel_spectrogram(&samples(clip), 80, 160);
        let keep = frames.min(3000);
        let mut buf = vec![0f32; 80 * 3000];
        for m in 0..80 {
            buf[m * 3000..m * 3000 + keep].copy_from_slice(&mel[m * frames..m * frames + keep]);
        }
        let enc = p
            .model
            .encoder
            .forward(&Tensor::from_vec(buf, (1, 80, 3000), &Device::Cpu).unwrap())
            .unwrap();
        let ours = detect_language(&p.model, &p.tokenizer, &enc).unwrap();
        let theirs = clip["language_probs"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: language count");
        assert_eq!(
            ours[0].0,
            clip["language"].as_str().unwrap(),
            "{name}: top language"
        );
        let mut max_diff = 0f64;
        for pair in theirs {
            let (code, prob) = (pair[0].as_str().unwrap(), pair[1].as_f64().unwrap());
            let mine = ours.iter().find(|(c, _)| c == code).unwrap().1 as f64;
            max_diff = max_diff.max((mine - prob).abs());
        }
        eprintln!(
            "{name}: {} p={:.6}, max |Δp| over 99 languages {max_diff:.2e}",
            ours[0].0, ours[0].1
        );
        assert!(
            max_diff < 1e-4,
            "{name}: probabilities differ by {max_diff}"
        );
    }
}

#[test]
fn greedy_tokens_match_faster_whisper() {
    let (_dir, p, expected) = load();
    for (name, clip) in expected["clips"].as_object().unwrap() {
        let audio = samples(clip);
        for (key, task, language) in [
            ("transcribe", Task::Transcribe, None),
            ("translate", Task::Translate, None),
            ("transcribe_de", Task::Transcribe, Some("de")),
        ] {
            let opts = TranscribeOptions {
                task,
                language: language.map(String::from),
                beam_size: 1,
                temperatures: vec![0.0],
                ..Default::default()
            };
            let t = p.transcribe(&audio, &opts).unwrap();
            let want = &clip[key];
            assert_eq!(
                t.language,
                want["language"].as_str().unwrap(),
                "{name} {key}"
            );
            let lp = want["language_probability"].as_f64().unwrap();
            assert!(
                (t.language_probability as f64 - lp).abs() < 1e-4,
                "{name} {key}: language probability {} vs {lp}",
                t.language_probability
            );
            let ours: Vec<Vec<u64>> = t
                .segments
                .iter()
                .map(|s| s.tokens.iter().map(|x| *x as u64).collect())
                .collect();
            assert_eq!(ours, tokens(&want["segments"]), "{name} {key}: tokens");
        }
    }
}
