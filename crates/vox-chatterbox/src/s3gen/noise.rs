//! Every random draw of S3Gen inference, behind one trait so tests (and callers who want
//! reproducible audio) can feed their own numbers. The reference's draws, in call order:
//! the flow's initial noise `z = randn_like(mu)`, SineGen's initial harmonic phases
//! `Uniform(−π, π)` (harmonic 0 then zeroed) and SineGen's additive noise `randn_like(sines)`.
//! (`SourceModuleHnNSF` draws one more noise tensor that it discards; it is not modelled.)

use candle_core::Result;
use rand::{Rng, SeedableRng, rngs::StdRng};

/// A source of S3Gen's random numbers.
pub trait S3GenNoise {
    /// Standard normal, `mel_bins × frames` row-major: the flow's initial noise (1, 80, frames).
    fn flow_noise(&mut self, mel_bins: usize, frames: usize) -> Result<Vec<f32>>;
    /// Uniform in [−π, π), one per harmonic (entry 0 is overwritten with 0).
    fn sine_phase(&mut self, harmonics: usize) -> Result<Vec<f32>>;
    /// Standard normal, `harmonics × samples` row-major.
    fn sine_noise(&mut self, harmonics: usize, samples: usize) -> Result<Vec<f32>>;
}

/// Draws from a seeded PRNG (not torch's stream: same seed, same audio, but not the
/// reference's audio).
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: StdRng,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn normals(&mut self, n: usize) -> Vec<f32> {
        // Box–Muller, two normals per pair of uniforms.
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let a = 2.0 * std::f64::consts::PI * u2;
            out.push((r * a.cos()) as f32);
            out.push((r * a.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

impl S3GenNoise for SeededNoise {
    fn flow_noise(&mut self, mel_bins: usize, frames: usize) -> Result<Vec<f32>> {
        Ok(self.normals(mel_bins * frames))
    }
    fn sine_phase(&mut self, harmonics: usize) -> Result<Vec<f32>> {
        let pi = std::f32::consts::PI;
        Ok((0..harmonics)
            .map(|_| self.rng.random::<f32>() * 2.0 * pi - pi)
            .collect())
    }
    fn sine_noise(&mut self, harmonics: usize, samples: usize) -> Result<Vec<f32>> {
        Ok(self.normals(harmonics * samples))
    }
}

/// Pre-drawn numbers (e.g. the reference's, saved by a fixture generator). Each call checks
/// that the size asked for is the size given.
#[derive(Debug, Clone, Default)]
pub struct FixedNoise {
    pub flow: Vec<f32>,
    pub phase: Vec<f32>,
    pub sine: Vec<f32>,
}

fn take(what: &str, v: &[f32], n: usize) -> Result<Vec<f32>> {
    if v.len() != n {
        candle_core::bail!(
            "fixed S3Gen noise: {what} has {} values, inference needs {n}",
            v.len()
        )
    }
    Ok(v.to_vec())
}

impl S3GenNoise for FixedNoise {
    fn flow_noise(&mut self, mel_bins: usize, frames: usize) -> Result<Vec<f32>> {
        take("flow noise", &self.flow, mel_bins * frames)
    }
    fn sine_phase(&mut self, harmonics: usize) -> Result<Vec<f32>> {
        take("sine phase", &self.phase, harmonics)
    }
    fn sine_noise(&mut self, harmonics: usize, samples: usize) -> Result<Vec<f32>> {
        take("sine noise", &self.sine, harmonics * samples)
    }
}
