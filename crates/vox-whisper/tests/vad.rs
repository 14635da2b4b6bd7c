//! Silero VAD against faster-whisper 1.2.1 (tests/vad/reference.json, made by
//! tools/whisper/make_vad_reference.py) on the golden espeak-ng audio: every window's speech probability within
//! 1e-4, the same speech timestamps for three option sets, and greedy `vad_filter=True` transcription with the
//! same tokens and times as faster-whisper.
//!
//! Needs `silero_vad_v6.onnx` from the pinned faster-whisper wheel (tools/test-wheels.txt) and ONNX Runtime
//! (tools/setup/onnxruntime.sh), besides the golden fixture.

#[path = "common/silero.rs"]
mod silero;
#[path = "common/tiny_en.rs"]
mod tiny_en;

use serde_json::Value;
use silero::vad;
use tiny_en::{fixture, pipeline, root, samples};
use vox_whisper::TranscribeOptions;
use vox_whisper::vad::{VadOptions, transcribe_with_vad};

fn reference() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("crates/vox-whisper/tests/vad/reference.json"))
            .unwrap(),
    )
    .unwrap()
}

fn options(v: &Value) -> VadOptions {
    let mut o = VadOptions::default();
    if let Some(x) = v.get("threshold") {
        o.threshold = x.as_f64().unwrap() as f32;
    }
    if let Some(x) = v.get("min_speech_duration_ms") {
        o.min_speech_duration_ms = x.as_u64().unwrap() as u32;
    }
    if let Some(x) = v.get("max_speech_duration_s") {
        o.max_speech_duration_s = x.as_f64().unwrap() as f32;
    }
    if let Some(x) = v.get("min_silence_duration_ms") {
        o.min_silence_duration_ms = x.as_u64().unwrap() as u32;
    }
    if let Some(x) = v.get("speech_pad_ms") {
        o.speech_pad_ms = x.as_u64().unwrap() as u32;
    }
    o
}

#[test]
fn probabilities_and_timestamps_match_faster_whisper() {
    let (Some(f), Some(vad)) = (fixture(), vad()) else {
        return;
    };
    let r = reference();
    for (name, want) in r["files"].as_object().unwrap() {
        let audio = samples(f, name);
        let probs = vad.speech_probs(&audio).unwrap();
        let theirs = want["probs"].as_array().unwrap();
        assert_eq!(probs.len(), theirs.len(), "{name}: window count");
        let max_diff = probs
            .iter()
            .zip(theirs)
            .map(|(a, b)| (*a as f64 - b.as_f64().unwrap()).abs())
            .fold(0f64, f64::max);
        eprintln!("{name}: {} windows, max |Δp| {max_diff:.2e}", probs.len());
        assert!(
            max_diff < 1e-4,
            "{name}: probabilities differ by {max_diff}"
        );
        for (key, opts) in r["option_sets"].as_object().unwrap() {
            let ts = vad.speech_timestamps(&audio, &options(opts)).unwrap();
            let ours: Vec<[u64; 2]> = ts.iter().map(|c| [c.start as u64, c.end as u64]).collect();
            let want: Vec<[u64; 2]> = want["timestamps"][key]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| [p[0].as_u64().unwrap(), p[1].as_u64().unwrap()])
                .collect();
            assert_eq!(ours, want, "{name} {key}");
        }
    }
}

#[test]
fn vad_filtered_greedy_transcription_matches_faster_whisper() {
    let (Some(f), Some(vad)) = (fixture(), vad()) else {
        return;
    };
    let r = reference();
    let p = pipeline(f);
    let opts = TranscribeOptions {
        language: Some("en".into()),
        beam_size: 1,
        temperatures: vec![0.0],
        ..Default::default()
    };
    let vad_opts = options(&r["option_sets"]["short_silences"]);
    for (name, want) in r["files"].as_object().unwrap() {
        let Some(segs) = want.get("vad_greedy") else {
            continue;
        };
        let t = transcribe_with_vad(p, vad, &samples(f, name), &opts, &vad_opts).unwrap();
        let segs = segs.as_array().unwrap();
        assert_eq!(t.segments.len(), segs.len(), "{name}: {:?}", t.text());
        for (s, g) in t.segments.iter().zip(segs) {
            let tokens: Vec<u64> = s.tokens.iter().map(|x| *x as u64).collect();
            let gt: Vec<u64> = g["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(tokens, gt, "{name}: {:?}", s.text);
            assert!(
                (s.start - g["start"].as_f64().unwrap()).abs() < 1e-6,
                "{name} start {} vs {}",
                s.start,
                g["start"]
            );
            assert!(
                (s.end - g["end"].as_f64().unwrap()).abs() < 1e-6,
                "{name} end {} vs {}",
                s.end,
                g["end"]
            );
        }
    }
}
