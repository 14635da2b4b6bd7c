//! Log-mel features against faster-whisper's FeatureExtractor (fixtures written by
//! tools/audio/make_mel_fixture.py).

use std::path::PathBuf;
use std::time::Instant;

use vox_audio::{HOP_LENGTH, MelExtractor, log_mel_spectrogram};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn matches_faster_whisper() {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("mel_fixture.json")).unwrap()).unwrap();
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let input = read_f32(case["input"].as_str().unwrap());
        let expected = read_f32(case["expected"].as_str().unwrap());
        let n_mels = case["n_mels"].as_u64().unwrap() as usize;
        let padding = case["padding"].as_u64().unwrap() as usize;
        let frames = case["frames"].as_u64().unwrap() as usize;
        assert_eq!(input.len(), case["samples"].as_u64().unwrap() as usize);

        let (mel, got_frames) = log_mel_spectrogram(&input, n_mels, padding);
        assert_eq!(got_frames, frames);
        assert_eq!(mel.len(), n_mels * frames);
        let max_err = mel
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!(
            "{}: {n_mels} x {frames}, max abs error {max_err:e}",
            case["expected"]
        );
        assert!(
            max_err < 1e-4,
            "{}: max abs error {max_err}",
            case["expected"]
        );
    }
}

#[test]
fn shapes_and_edges() {
    assert_eq!(log_mel_spectrogram(&[], 80, 0), (vec![], 0));
    assert_eq!(log_mel_spectrogram(&[0.0; 100], 80, 0).1, 0);
    // Silence: every value is log10(1e-10) = -10, so (x + 4) / 4 = -1.5.
    let (mel, frames) = log_mel_spectrogram(&[0.0; 1600], 80, 160);
    assert_eq!(frames, 11);
    assert!(mel.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    // Any band count works; 1 sample is reflected onto itself.
    assert_eq!(log_mel_spectrogram(&[0.5], 40, 159).1, 1);
    assert_eq!(MelExtractor::new(128).n_mels(), 128);
}

#[test]
fn thirty_seconds_is_fast() {
    let samples: Vec<f32> = (0..30 * 16_000)
        .map(|i| (i as f32 * 0.05).sin() * 0.3)
        .collect();
    let extractor = MelExtractor::new(128);
    extractor.compute(&samples, 160); // warm up
    let start = Instant::now();
    let (_, frames) = extractor.compute(&samples, 160);
    let elapsed = start.elapsed();
    assert_eq!(frames, (30 * 16_000 + 160) / HOP_LENGTH);
    println!("30 s of audio, 128 mels: {elapsed:?}");
}
