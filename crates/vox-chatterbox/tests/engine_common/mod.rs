//! The tiny Chatterbox snapshot the engine tests load, assembled from the committed T3 and S3Gen
//! fixtures (no weights are duplicated), and the counter-based random streams that
//! `tools/chatterbox/make_engine_fixtures.py` injects into the reference.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vox_chatterbox::s3gen::S3GenNoise;
use vox_chatterbox::t3::UniformSource;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies the tiny model into `dir` as a snapshot (what `ChatterboxTTS.from_local` reads, plus the configs
/// of the shrunken model) and returns `dir`.
pub fn tiny_snapshot(dir: &Path) -> PathBuf {
    let f = fixtures();
    std::fs::create_dir_all(dir).unwrap();
    for (src, dst) in [
        ("t3/tiny/t3_cfg.safetensors", "t3_cfg.safetensors"),
        ("t3/tiny/tokenizer.json", "tokenizer.json"),
        ("t3/tiny/conds.pt", "conds.pt"),
        ("t3/tiny/config.json", "t3_config.json"),
        ("s3gen/weights.safetensors", "s3gen.safetensors"),
        ("s3gen/config.json", "s3gen_config.json"),
    ] {
        std::fs::copy(f.join(src), dir.join(dst)).unwrap_or_else(|e| panic!("{src}: {e}"));
    }
    dir.to_path_buf()
}

/// splitmix64 of `seed + (i+1)·γ` → 53-bit uniform in [0, 1), for i = 0, 1, ...
pub struct SplitMix {
    seed: u64,
    i: u64,
}

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self { seed, i: 0 }
    }

    pub fn uniform(&mut self) -> f64 {
        self.i += 1;
        let mut z = self
            .seed
            .wrapping_add(self.i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Box–Muller, cosine branch: one normal per two uniforms.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        ((-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

impl UniformSource for SplitMix {
    fn next_uniform(&mut self) -> f64 {
        self.uniform()
    }
}

/// S3Gen's draws, one stream per kind (each is drawn once per utterance).
pub struct SplitMixNoise {
    pub z: u64,
    pub phase: u64,
    pub sine: u64,
}

impl S3GenNoise for SplitMixNoise {
    fn flow_noise(&mut self, mel_bins: usize, frames: usize) -> candle_core::Result<Vec<f32>> {
        let mut r = SplitMix::new(self.z);
        Ok((0..mel_bins * frames).map(|_| r.normal()).collect())
    }
    fn sine_phase(&mut self, harmonics: usize) -> candle_core::Result<Vec<f32>> {
        let mut r = SplitMix::new(self.phase);
        let pi = std::f32::consts::PI;
        Ok((0..harmonics)
            .map(|_| r.uniform() as f32 * (2.0 * pi) - pi)
            .collect())
    }
    fn sine_noise(&mut self, harmonics: usize, samples: usize) -> candle_core::Result<Vec<f32>> {
        let mut r = SplitMix::new(self.sine);
        Ok((0..harmonics * samples).map(|_| r.normal()).collect())
    }
}

/// Signal-to-noise ratio of `got` against `want`, in dB.
pub fn snr_db(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let sig: f64 = want.iter().map(|&w| f64::from(w).powi(2)).sum();
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).powi(2))
        .sum();
    10.0 * (sig / err.max(1e-30)).log10()
}
