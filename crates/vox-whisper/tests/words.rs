//! Word timestamps against faster-whisper 1.2.1 (`word_timestamps=True`, beam 5, defaults) on the golden set's
//! files s07, s16 and long45 (golden.json "words", made by tools/whisper/make_golden.py): the same words, each
//! start and end within one timestamp step (20 ms), probabilities within 1e-3.

#[path = "common/tiny_en.rs"]
mod tiny_en;

use tiny_en::{fixture, pipeline, samples};
use vox_whisper::TranscribeOptions;

#[test]
fn words_match_faster_whisper() {
    let Some(f) = fixture() else { return };
    let p = pipeline(f);
    let opts = TranscribeOptions {
        language: Some("en".into()),
        word_timestamps: true,
        ..Default::default()
    };
    let mut problems = Vec::new();
    let (mut n, mut max_dt, mut max_dp) = (0usize, 0f64, 0f64);
    for (name, gold) in f.golden["words"].as_object().unwrap() {
        let t = p.transcribe(&samples(f, name), &opts).unwrap();
        let ours: Vec<_> = t
            .segments
            .iter()
            .flat_map(|s| s.words.clone().expect("words asked for"))
            .collect();
        let theirs: Vec<&serde_json::Value> = gold["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["words"].as_array().unwrap())
            .collect();
        let a: Vec<&str> = ours.iter().map(|w| w.word.as_str()).collect();
        let b: Vec<&str> = theirs.iter().map(|w| w["word"].as_str().unwrap()).collect();
        if a != b {
            problems.push(format!(
                "{name}: words differ\n  ours {a:?}\n  faster-whisper {b:?}"
            ));
            continue;
        }
        for (w, g) in ours.iter().zip(&theirs) {
            n += 1;
            let ds = (w.start - g["start"].as_f64().unwrap()).abs();
            let de = (w.end - g["end"].as_f64().unwrap()).abs();
            let dp = (w.probability - g["probability"].as_f64().unwrap()).abs();
            max_dt = max_dt.max(ds).max(de);
            max_dp = max_dp.max(dp);
            if ds > 0.02 + 1e-9 || de > 0.02 + 1e-9 || dp > 1e-3 {
                problems.push(format!(
                    "{name} {:?}: ours {:.2}-{:.2} p {:.5}, faster-whisper {}-{} p {}",
                    w.word, w.start, w.end, w.probability, g["start"], g["end"], g["probability"]
                ));
            }
        }
        // Segment bounds follow the words.
        let gs = gold["segments"].as_array().unwrap();
        assert_eq!(t.segments.len(), gs.len(), "{name}: segment count");
        for (s, g) in t.segments.iter().zip(gs) {
            assert!(
                (s.start - g["start"].as_f64().unwrap()).abs() <= 0.02 + 1e-9,
                "{name} segment start"
            );
            assert!(
                (s.end - g["end"].as_f64().unwrap()).abs() <= 0.02 + 1e-9,
                "{name} segment end"
            );
        }
    }
    eprintln!("{n} words: max |Δt| {max_dt:.3} s, max |Δp| {max_dp:.2e}");
    assert!(n > 0);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
