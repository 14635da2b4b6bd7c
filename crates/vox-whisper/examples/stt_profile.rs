//! Where the time goes: load phases, encoder, decoder memory, one transcription (wall times, best of N).
//!
//!   cargo run --release -p vox-whisper --example stt_profile -- MODEL_DIR FILE.wav [N]

use std::time::Instant;

use candle_core::{Device, Tensor};
use vox_whisper::{TranscribeOptions, Whisper, WhisperPipeline, WhisperTokenizer};

fn best<R>(n: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let mut b = f64::MAX;
    let mut r = None;
    for _ in 0..n {
        let t = Instant::now();
        r = Some(f());
        b = b.min(t.elapsed().as_secs_f64());
    }
    (b, r.expect("n > 0"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let n = args.get(3).map_or(3, |v| v.parse().unwrap());
    vox_whisper::cpu_ops::keep_freed_memory();
    let dev = Device::Cpu;
    if let Ok(what) = std::env::var("VOX_LOOP") {
        for _ in 0..n {
            match what.as_str() {
                "tok" => drop(WhisperTokenizer::from_file(&dir.join("tokenizer.json"), 0).unwrap()),
                "pipeline" => {
                    let t = Instant::now();
                    drop(
                        WhisperPipeline::load_with(dir, &dev, vox_whisper::Compute::Int8).unwrap(),
                    );
                    println!("pipeline {:.3}", t.elapsed().as_secs_f64());
                }
                _ => {
                    let w = vox_whisper::weights::open_weights(dir).unwrap();
                    drop(Whisper::load_int8_decoder(w.as_ref(), &dev).unwrap())
                }
            }
        }
        return;
    }
    let (t, w) = best(n, || vox_whisper::weights::open_weights(dir).unwrap());
    println!("open_weights {t:.3}");
    let (t, _) = best(n, || {
        WhisperTokenizer::from_file(&dir.join("tokenizer.json"), 0).unwrap()
    });
    println!("tokenizer    {t:.3}");
    let (t, _) = best(n, || {
        Whisper::load(w.as_ref(), candle_core::DType::F32, &dev).unwrap()
    });
    println!("model f32    {t:.3}");
    let (t, model) = best(n, || Whisper::load_int8_decoder(w.as_ref(), &dev).unwrap());
    println!("model int8   {t:.3}");
    let (t, _) = best(n, || {
        WhisperPipeline::load_with(dir, &dev, vox_whisper::Compute::Int8).unwrap()
    });
    println!("pipeline int8 {t:.3}");
    let bytes = std::fs::read(&args[2]).unwrap();
    let audio =
        vox_audio::load_for_whisper(&bytes, Some("wav"), &vox_audio::Limits::default()).unwrap();
    let (t, (mel, frames)) = best(n, || vox_audio::log_mel_spectrogram(&audio, 80, 160));
    println!("log-mel      {t:.3}");
    let mel = Tensor::from_vec(mel, (1, 80, frames), &dev).unwrap();
    let mel = mel.narrow(2, 0, 3000.min(frames)).unwrap();
    let mel = mel
        .pad_with_zeros(2, 0, 3000 - mel.dim(2).unwrap())
        .unwrap();
    let (t, enc) = best(n, || model.encoder.forward(&mel).unwrap());
    println!("encoder      {t:.3}");
    if std::env::var("VOX_ENC_ONLY").is_ok() {
        return;
    }
    let (t, _) = best(n, || model.decoder.start(&enc).unwrap());
    println!("cross memory {t:.3}");
    let p = WhisperPipeline::load_with(dir, &dev, vox_whisper::Compute::Int8).unwrap();
    let opts = TranscribeOptions {
        beam_size: 5,
        language: Some("en".into()),
        ..Default::default()
    };
    let (t, r) = best(n, || p.transcribe(&audio, &opts).unwrap());
    println!("transcribe   {t:.3}  {}", r.text());
}
