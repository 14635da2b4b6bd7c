//! T3 decode speed at the full-size English config with random weights (bench/chatterbox/t3).
//!
//!     t3_bench [STEPS=32] [REPEATS=3] [TEXT_TOKENS=40] [DTYPE=f32]
//!
//! Decode steps/s = (STEPS − 1) / (T(STEPS) − T(1)), where T(n) is the wall time of one
//! `generate` call producing n tokens (prefill + n CFG steps, batch 2), medians over REPEATS.
//! With σ 0.02 random weights the distribution is near uniform, so the stop token (1 in 8194)
//! practically never ends a call early; the seed is fixed and an early stop aborts the run.
//! Prints one JSON line.

use std::time::Instant;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use vox_chatterbox::t3::{SamplingParams, SeededUniforms, T3, T3Cond, T3Config};

/// Gaussian weights (σ 0.02, norms at 1) for every tensor the model asks for.
struct RandomWeights;

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        if name.ends_with("norm.weight") || name.ends_with("layernorm.weight") {
            return Tensor::ones(s, dtype, dev);
        }
        Tensor::randn(0f32, 0.02, s, dev)?.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (steps, repeats, text_len) = (arg(1, 32), arg(2, 3), arg(3, 40));
    let dtype = match args.get(4).map(String::as_str) {
        Some("f16") => DType::F16,
        Some("bf16") => DType::BF16,
        _ => DType::F32,
    };
    // VOX_DEVICE=cuda: the first GPU (a `--features cuda` build).
    let dev = match std::env::var("VOX_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let cfg = T3Config::english();
    let t0 = Instant::now();
    let vb = VarBuilder::from_backend(Box::new(RandomWeights), dtype, dev.clone());
    let t3 = T3::load(vb, &cfg)?;
    let load_s = t0.elapsed().as_secs_f64();

    let cond = T3Cond {
        speaker_emb: Tensor::randn(0f32, 1.0, (1, cfg.speaker_embed_size), &dev)?,
        cond_prompt_speech_tokens: Some(Tensor::from_vec(
            (0..cfg.speech_cond_prompt_len as u32)
                .map(|i| (i * 37) % 6561)
                .collect::<Vec<_>>(),
            (1, cfg.speech_cond_prompt_len),
            &dev,
        )?),
        emotion_adv: 0.5,
    };
    let text: Vec<u32> = (0..text_len as u32).map(|i| 3 + (i * 7) % 250).collect();
    let params = SamplingParams::default();
    let run = |n: usize| -> f64 {
        let t = Instant::now();
        let out = t3
            .generate(&cond, &text, &params, n, &mut SeededUniforms::new(7), None)
            .expect("generate");
        assert_eq!(out.len(), n, "stopped early; rerun with another seed");
        t.elapsed().as_secs_f64()
    };
    run(2); // warm-up
    let mut rates = Vec::new();
    let mut prefill = Vec::new();
    for _ in 0..repeats {
        let t1 = run(1);
        let tn = run(steps);
        prefill.push(t1);
        rates.push((steps - 1) as f64 / (tn - t1));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{{\"impl\": \"vox\", \"device\": \"{}\", \"dtype\": \"{dtype:?}\", \"steps\": {steps}, \"repeats\": {repeats}, \"text_tokens\": {text_len}, \"load_s\": {load_s:.2}, \"prefill_s\": {:.3}, \"decode_steps_per_s\": {:.3}, \"all_rates\": {rates:?}, \"peak_rss_mb\": {:.0}}}",
        if dev.is_cuda() { "cuda" } else { "cpu" },
        median(&mut prefill),
        median(&mut rates.clone()),
        peak_rss_mb()
    );
    Ok(())
}
