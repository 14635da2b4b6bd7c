//! The batched pipeline (faster-whisper's `BatchedInferencePipeline`) against faster-whisper 1.2.1 on the
//! golden espeak-ng audio (tests/batched/reference.json, made by tools/whisper/make_batched_reference.py):
//!
//! - greedy, float32: every file's VAD chunks, and every segment's tokens and times, equal faster-whisper's;
//! - beam 5: corpus WER over the sentence files within 0.5 points of faster-whisper's batched beam 5;
//! - the batch size does not change the result (batch 1 = batch 8, greedy and beam, on the 3-chunk file).
//!
//! Needs the golden fixture (tiny.en wheel, espeak-ng, sox), the faster-whisper wheel (Silero VAD) and ONNX
//! Runtime.

mod common;

#[path = "common/tiny_en.rs"]
mod tiny_en;

#[path = "common/silero.rs"]
mod silero;

use serde_json::Value;
use tiny_en::{fixture, pipeline, root, samples};
use vox_whisper::batched::{BatchedPipeline, batched_options, batched_vad_options, collect_chunks};
use vox_whisper::{TranscribeOptions, Transcription};

fn reference() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("crates/vox-whisper/tests/batched/reference.json"))
            .unwrap(),
    )
    .unwrap()
}

fn options(beam_size: usize) -> TranscribeOptions {
    TranscribeOptions {
        language: Some("en".into()),
        beam_size,
        ..batched_options()
    }
}

fn tokens(t: &Transcription) -> Vec<Vec<u32>> {
    t.segments.iter().map(|s| s.tokens.clone()).collect()
}

#[test]
fn greedy_matches_faster_whisper_batched() {
    let (Some(f), Some(vad)) = (fixture(), silero::vad()) else {
        return;
    };
    let r = reference();
    let p = BatchedPipeline::new(pipeline(f), Some(vad));
    for (name, want) in r["files"].as_object().unwrap() {
        let audio = samples(f, name);
        // The chunks: VAD spans packed to 30 s.
        let spans = vad
            .speech_timestamps(&audio, &batched_vad_options())
            .unwrap();
        let chunks = collect_chunks(&audio, &spans, 30.0);
        let theirs: Vec<(f64, f64)> = want["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()))
            .collect();
        let ours: Vec<(f64, f64)> = chunks.iter().map(|c| (c.offset, c.duration)).collect();
        assert_eq!(ours, theirs, "{name}: chunks");

        let t = p.transcribe(&audio, &options(1)).unwrap();
        let segs = want["greedy"].as_array().unwrap();
        let text: String = segs.iter().map(|s| s["text"].as_str().unwrap()).collect();
        assert_eq!(t.text(), text.trim(), "{name}: text");
        assert_eq!(t.segments.len(), segs.len(), "{name}: segments");
        for (s, g) in t.segments.iter().zip(segs) {
            let gt: Vec<u32> = g["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(s.tokens, gt, "{name}: {:?}", s.text);
            for (ours, key) in [(s.start, "start"), (s.end, "end")] {
                let theirs = g[key].as_f64().unwrap();
                // Segment bounds come from the VAD's speech spans; ONNX Runtime's threading can move a span edge
                // by a 10 ms step between runs, so hold them to the bound (20 ms), not to equality.
                assert!(
                    (ours - theirs).abs() <= 0.02 + 1e-9,
                    "{name} {key}: {ours} vs {theirs}"
                );
            }
            let lp = g["avg_logprob"].as_f64().unwrap();
            assert!(
                (s.avg_logprob as f64 - lp).abs() < 1e-3,
                "{name}: avg_logprob {} vs {lp}",
                s.avg_logprob
            );
        }
    }
}

#[test]
fn beam5_wer_is_within_half_a_point_of_faster_whisper_batched() {
    let (Some(f), Some(vad)) = (fixture(), silero::vad()) else {
        return;
    };
    let r = reference();
    let p = BatchedPipeline::new(pipeline(f), Some(vad));
    let (mut ours, mut theirs, mut words) = (0usize, 0usize, 0usize);
    for (name, want) in r["files"].as_object().unwrap() {
        if !name.starts_with('s') {
            continue;
        }
        let reference = f.golden["references"][name].as_str().unwrap();
        let t = p.transcribe(&samples(f, name), &options(5)).unwrap();
        let text: String = want["beam5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap())
            .collect();
        let (e, n) = common::wer::errors(reference, &t.text());
        let (g, _) = common::wer::errors(reference, text.trim());
        ours += e;
        theirs += g;
        words += n;
    }
    let (a, b) = (
        100.0 * ours as f64 / words as f64,
        100.0 * theirs as f64 / words as f64,
    );
    eprintln!("batched beam-5 WER: vox {a:.2} %, faster-whisper {b:.2} % over {words} words");
    assert!(a <= b + 0.5, "vox WER {a:.2} % vs faster-whisper {b:.2} %");
}

#[test]
fn the_batch_size_does_not_change_the_result() {
    let (Some(f), Some(vad)) = (fixture(), silero::vad()) else {
        return;
    };
    let audio = samples(f, "long70");
    let p8 = BatchedPipeline::new(pipeline(f), Some(vad));
    let p1 = BatchedPipeline::new(pipeline(f), Some(vad)).with_batch_size(1);
    for beam in [1, 5] {
        let a = p8.transcribe(&audio, &options(beam)).unwrap();
        let b = p1.transcribe(&audio, &options(beam)).unwrap();
        assert!(a.segments.len() >= 3, "long70 has 3 chunks");
        assert_eq!(tokens(&a), tokens(&b), "beam {beam}");
    }
}
