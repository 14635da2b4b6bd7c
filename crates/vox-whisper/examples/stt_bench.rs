//! STT benchmark, vox side (bench/stt/run.sh runs it beside bench/stt/run_faster_whisper.py, same files,
//! same method): load the model once (timed), one warm-up call, then REPEATS passes over the files with
//! faster-whisper's defaults (beam 5, temperature fallback, timestamps, no VAD). Prints JSON: load time, per-file
//! and total wall time (median over passes), RTF, peak RSS, and the text of each file.
//!
//!   cargo run --release -p vox-whisper --example stt_bench -- MODEL_DIR REPEATS BEAM FILE.wav...

use std::time::Instant;

use candle_core::{DType, Device};
use vox_whisper::{TranscribeOptions, WhisperPipeline};

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, repeats, beam) = (
        std::path::Path::new(&args[1]),
        args[2].parse::<usize>().unwrap(),
        args[3].parse::<usize>().unwrap(),
    );
    let files = &args[4..];
    let audio: Vec<(String, Vec<f32>)> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            let name = std::path::Path::new(f)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string();
            (
                name,
                vox_audio::load_for_whisper(&bytes, Some("wav"), &vox_audio::Limits::default())
                    .unwrap(),
            )
        })
        .collect();
    vox_whisper::cpu_ops::keep_freed_memory();
    // VOX_COMPUTE=int8: int8 weights for the decoder's per-token products (activations stay f32, except in the
    // output projection: rowmat::i8i8);
    // f16: half-precision weights and activations (for CUDA). VOX_DEVICE=cuda: the first GPU (a
    // `--features cuda` build).
    let compute = std::env::var("VOX_COMPUTE").unwrap_or_default();
    let int8 = compute == "int8";
    let dtype = if compute == "f16" {
        DType::F16
    } else {
        DType::F32
    };
    let dev = match std::env::var("VOX_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).unwrap(),
        _ => Device::Cpu,
    };
    let t0 = Instant::now();
    let p = if int8 {
        WhisperPipeline::load_with(dir, &dev, vox_whisper::Compute::Int8).unwrap()
    } else {
        WhisperPipeline::load(dir, &dev, dtype).unwrap()
    };
    let load_s = t0.elapsed().as_secs_f64();
    let opts = TranscribeOptions {
        beam_size: beam,
        language: Some("en".into()),
        ..Default::default()
    };
    let t1 = Instant::now();
    p.transcribe(&audio[0].1, &opts).unwrap();
    let first_call_s = t1.elapsed().as_secs_f64();
    let mut per_file: Vec<Vec<f64>> = vec![Vec::new(); audio.len()];
    let mut totals = Vec::new();
    let mut texts = vec![String::new(); audio.len()];
    let mut spans: Vec<Vec<(f64, f64)>> = vec![Vec::new(); audio.len()];
    for _ in 0..repeats {
        let mut total = 0.0;
        for (i, (_, a)) in audio.iter().enumerate() {
            let t = Instant::now();
            let r = p.transcribe(a, &opts).unwrap();
            let s = t.elapsed().as_secs_f64();
            per_file[i].push(s);
            total += s;
            texts[i] = r.text();
            spans[i] = r.segments.iter().map(|s| (s.start, s.end)).collect();
        }
        totals.push(total);
    }
    let duration: f64 = audio.iter().map(|(_, a)| a.len() as f64 / 16000.0).sum();
    let total = median(totals);
    let out = serde_json::json!({
        "engine": "vox",
        "model": dir,
        "compute": if int8 { "int8" } else if dtype == DType::F16 { "f16" } else { "f32" },
        "device": if dev.is_cuda() { "cuda" } else { "cpu" },
        "beam_size": beam,
        "load_s": load_s,
        "first_call_s": first_call_s,
        "audio_s": duration,
        "total_wall_s_median": total,
        "rtf": total / duration,
        "peak_rss_mb": peak_rss_mb(),
        "files": audio.iter().zip(per_file).zip(texts).zip(spans).map(|((((n, a), w), text), spans)| serde_json::json!({
            "name": n, "duration": a.len() as f64 / 16000.0, "wall_s_median": median(w), "text": text,
            "segments": spans,
        })).collect::<Vec<_>>(),
    });
    println!("{out}");
}
