//! Times Piper synthesis of one sentence in Rust (bench/piper/run.sh runs it next to the Python peer).
//!
//!     piper_bench <voice dir> <text> <runs> <ids.json out>
//!
//! Prints the medians of: load, end-to-end `synthesize` (phonemes + inference + normalisation) and
//! inference alone, with 1 intra-op thread and scales [0, 1, 0] (deterministic, so both sides do the same
//! work); writes the sentence's ids so the Python side runs the identical input.

use std::time::Instant;

use vox_piper::{PiperParams, PiperVoice};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, text, runs, ids_out] = &args[..] else {
        eprintln!("usage: piper_bench <voice dir> <text> <runs> <ids.json out>");
        std::process::exit(2);
    };
    let runs: usize = runs.parse().expect("runs");
    let t = Instant::now();
    let voice = PiperVoice::load(std::path::Path::new(dir)).expect("load");
    let load = t.elapsed().as_secs_f64();
    let params = PiperParams {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        sentence_silence: 0.0,
        ..PiperParams::default()
    };
    let sentences = voice.phonemize(text).expect("phonemize");
    assert_eq!(sentences.len(), 1, "give one sentence");
    let ids = voice.phoneme_ids(&sentences[0]);
    std::fs::write(ids_out, serde_json::to_string(&ids).unwrap()).expect("write ids");
    let scales = voice.scales(&params).unwrap();
    let mut e2e = Vec::new();
    let mut infer = Vec::new();
    let mut samples = 0;
    voice.synthesize(text, &params).expect("warm-up");
    for _ in 0..runs {
        let t = Instant::now();
        samples = voice.synthesize(text, &params).expect("synthesize").len();
        e2e.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        voice.infer(&ids, scales, None).expect("infer");
        infer.push(t.elapsed().as_secs_f64());
    }
    let audio = samples as f64 / voice.sample_rate() as f64;
    let (e, i) = (median(e2e), median(infer));
    println!(
        "rust  load {load:.3} s | audio {audio:.3} s | synthesize median {e:.4} s (RTF {:.4}) | inference median {i:.4} s (RTF {:.4}) | {runs} runs, {} ids",
        e / audio,
        i / audio,
        ids.len()
    );
}
