//! S3Gen speed at the shipped config with random weights (bench/chatterbox/s3gen).
//!
//!     s3gen_bench [PROMPT_TOKENS=75] [TOKENS=75] [REPEATS=3] [DTYPE=f32]
//!
//! Times `S3Gen::inference` (flow: encoder + 10 CFG Euler steps; HiFT; fade) for a random prompt
//! and TOKENS new tokens (TOKENS·0.04 s of audio), and the flow and HiFT halves alone; medians
//! over REPEATS after one warm-up. Prints one JSON line.

use std::time::Instant;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use vox_chatterbox::s3gen::{S3Gen, S3GenConfig, S3GenRef, SeededNoise};

/// Gaussian weights scaled by 1/√fan-in (norm weights at 1) for every tensor asked for.
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
        let dims = s.dims().to_vec();
        if dims.len() == 1 {
            let base = if name.ends_with("weight") || name.ends_with("alpha") {
                1.0
            } else {
                0.0
            };
            return (Tensor::randn(0f32, 0.02, s, dev)? + base)?.to_dtype(dtype);
        }
        let fan_in: usize = dims[1..].iter().product();
        Tensor::randn(0f32, 1.0 / (fan_in as f32).sqrt(), s, dev)?.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        // Serve the weight-norm pairs the way the checkpoint stores them.
        !name.ends_with("weight_g") && !name.ends_with("weight_v")
    }
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("number"));
    let (prompt, n, repeats) = (arg(0, 75), arg(1, 75), arg(2, 3));
    let dtype = match args.get(3).map(String::as_str) {
        Some("bf16") => DType::BF16,
        Some("f16") => DType::F16,
        _ => DType::F32,
    };
    // VOX_DEVICE=cuda: the first GPU (a `--features cuda` build).
    let dev = match std::env::var("VOX_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let t0 = Instant::now();
    let vb = VarBuilder::from_backend(Box::new(RandomWeights), dtype, dev.clone());
    let s3 = S3Gen::load(&S3GenConfig::default(), vb).expect("load");
    let load_s = t0.elapsed().as_secs_f64();
    let prompt_tokens: Vec<u32> = (0..prompt as u32).map(|i| (i * 37 + 11) % 6561).collect();
    let tokens: Vec<u32> = (0..n as u32).map(|i| (i * 53 + 7) % 6561).collect();
    let feat = ((Tensor::randn(0f32, 2.0, (1, 2 * prompt, 80), &dev)?) - 5.0)?;
    let voice = S3GenRef::new(
        &prompt_tokens,
        feat,
        Tensor::randn(0f32, 1.0, (1, 192), &dev)?,
        &dev,
    )
    .expect("voice");
    let audio_s = n as f64 * 0.04;
    let mut noise = SeededNoise::new(7);
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    s3.inference(&tokens, &voice, &mut noise).expect("warm-up");
    let (mut total, mut flow, mut hift) = (vec![], vec![], vec![]);
    for _ in 0..repeats {
        total.push(time(&mut || {
            s3.inference(&tokens, &voice, &mut noise)
                .expect("inference");
        }));
        let mut mel = None;
        flow.push(time(&mut || {
            mel = Some(
                s3.flow_inference(&tokens, &voice, &mut noise)
                    .expect("flow"),
            );
        }));
        let mel = mel.unwrap();
        hift.push(time(&mut || {
            s3.hift_inference(&mel, &mut noise).expect("hift");
        }));
    }
    let total = median(total);
    println!(
        "{{\"impl\": \"vox\", \"device\": \"{}\", \"dtype\": \"{dtype:?}\", \"threads\": {}, \"prompt_tokens\": {prompt}, \"tokens\": {n}, \"audio_s\": {audio_s}, \"repeats\": {repeats}, \"load_s\": {load_s:.2}, \"total_s\": {total:.3}, \"flow_s\": {:.3}, \"hift_s\": {:.3}, \"s_per_audio_s\": {:.3}, \"peak_rss_mb\": {:.0}}}",
        if dev.is_cuda() { "cuda" } else { "cpu" },
        candle_core::utils::get_num_threads(),
        median(flow),
        median(hift),
        total / audio_s,
        peak_rss_mb()
    );
    Ok(())
}
