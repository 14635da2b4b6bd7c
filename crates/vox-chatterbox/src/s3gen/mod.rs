//! S3Gen: speech tokens → 24 kHz waveform (reference: `chatterbox/models/s3gen`, class
//! `S3Token2Wav`).
//!
//! [`flow::CausalMaskedDiffWithXvec`] turns prompt + new speech tokens (25 Hz) into a log-mel
//! (50 Hz) by conditional flow matching, and [`hifigan::HiftGenerator`] vocodes it. The module
//! tree and every weight name follow `s3gen.safetensors` (`flow.*`, `mel2wav.*`); the
//! checkpoint's `tokenizer.*` (S3Tokenizer) and `speaker_encoder.*` (CAMPPlus) serve voice cloning
//! only and are not loaded here. All randomness comes through [`noise::S3GenNoise`].

pub mod config;
pub mod decoder;
pub mod f0_predictor;
pub mod flow;
pub mod flow_matching;
pub mod hifigan;
pub mod matcha;
pub mod nn;
pub mod noise;
pub mod stft;
pub mod transformer;
pub mod voice;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use config::S3GenConfig;
pub use noise::{FixedNoise, S3GenNoise, SeededNoise};
pub use voice::S3GenRef;

use crate::ChatterboxError;

/// Output sample rate.
pub const S3GEN_SR: usize = 24000;

/// Tokens → waveform, the default-voice / prompt-conditioned path of `S3Token2Wav.inference`.
#[derive(Debug, Clone)]
pub struct S3Gen {
    pub flow: flow::CausalMaskedDiffWithXvec,
    pub mel2wav: hifigan::HiftGenerator,
    cfg: S3GenConfig,
    device: Device,
}

impl S3Gen {
    /// Builds from a `VarBuilder` rooted at the checkpoint's top level. The flow runs in
    /// `vb.dtype()`; HiFT always runs in f32 (its `exp` magnitudes and phase sums need it).
    pub fn load(cfg: &S3GenConfig, vb: VarBuilder) -> Result<Self, ChatterboxError> {
        let device = vb.device().clone();
        let flow = flow::CausalMaskedDiffWithXvec::load(cfg, vb.pp("flow"))?;
        let mel2wav = hifigan::HiftGenerator::load(
            &cfg.hift,
            vb.clone().set_dtype(DType::F32).pp("mel2wav"),
        )?;
        Ok(Self {
            flow,
            mel2wav,
            cfg: cfg.clone(),
            device,
        })
    }

    /// Loads the shipped model from `s3gen.safetensors` (memory-mapped).
    pub fn from_safetensors(
        path: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, ChatterboxError> {
        Self::from_safetensors_with(path, &S3GenConfig::default(), device, dtype)
    }

    /// [`S3Gen::from_safetensors`] for another (e.g. shrunken test) configuration.
    pub fn from_safetensors_with(
        path: &Path,
        cfg: &S3GenConfig,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, ChatterboxError> {
        if !path.is_file() {
            return Err(ChatterboxError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        // SAFETY: the snapshot's files are not modified while they are mapped (vox-store writes
        // blobs once and renames them into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device)? };
        Self::load(cfg, vb)
    }

    pub fn config(&self) -> &S3GenConfig {
        &self.cfg
    }

    /// Token → mel: `tokens` are speech tokens < 6561 (the caller drops T3's specials).
    /// Returns the new frames only, (1, 80, 2·tokens.len()) f32.
    pub fn flow_inference(
        &self,
        tokens: &[u32],
        voice: &S3GenRef,
        noise: &mut dyn S3GenNoise,
    ) -> Result<Tensor, ChatterboxError> {
        if tokens.is_empty() {
            return Err(ChatterboxError::BadInput(
                "S3Gen needs at least one speech token".into(),
            ));
        }
        let tokens_t = Tensor::from_slice(tokens, (1, tokens.len()), &self.device)?;
        let prompt = voice.prompt_token.to_device(&self.device)?;
        let frames = self.cfg.encoder.upsample_stride * (prompt.dim(1)? + tokens.len());
        let bins = self.cfg.output_size;
        let z = Tensor::from_vec(
            noise.flow_noise(bins, frames)?,
            (1, bins, frames),
            &self.device,
        )?;
        let mel = self.flow.inference(
            &tokens_t,
            &prompt,
            &voice.prompt_feat.to_device(&self.device)?,
            &voice.embedding.to_device(&self.device)?,
            &z,
        )?;
        Ok(mel.to_dtype(DType::F32)?)
    }

    /// Mel → (waveform (1, 480T), excitation (1, 1, 480T)) without the fade-in.
    pub fn hift_inference(
        &self,
        mel: &Tensor,
        noise: &mut dyn S3GenNoise,
    ) -> Result<(Tensor, Tensor), ChatterboxError> {
        Ok(self.mel2wav.inference(&mel.to_dtype(DType::F32)?, noise)?)
    }

    /// Speech tokens → 24 kHz mono samples, with the reference's 20 ms silence + 20 ms
    /// raised-cosine fade-in over the first 960 samples.
    pub fn inference(
        &self,
        tokens: &[u32],
        voice: &S3GenRef,
        noise: &mut dyn S3GenNoise,
    ) -> Result<Vec<f32>, ChatterboxError> {
        let mel = self.flow_inference(tokens, voice, noise)?;
        let (wav, _) = self.hift_inference(&mel, noise)?;
        let mut wav: Vec<f32> = wav.flatten_all()?.to_vec1()?;
        apply_trim_fade(&mut wav);
        Ok(wav)
    }
}

/// `S3Token2Wav.trim_fade`: 480 zeros, then `(cos(linspace(π, 0, 480)) + 1) / 2`.
pub fn trim_fade() -> Vec<f32> {
    let n = S3GEN_SR / 50;
    let pi = std::f32::consts::PI;
    let step = -pi / (n - 1) as f32;
    let mut fade = vec![0f32; 2 * n];
    for i in 0..n {
        // torch.linspace fills the first half from the start and the second half from the end.
        let x = if i < n / 2 {
            pi + i as f32 * step
        } else {
            (n - 1 - i) as f32 * -step
        };
        fade[n + i] = (x.cos() + 1.0) / 2.0;
    }
    fade
}

/// Multiplies the start of `wav` by [`trim_fade`].
pub fn apply_trim_fade(wav: &mut [f32]) {
    for (s, f) in wav.iter_mut().zip(trim_fade()) {
        *s *= f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_fade_silences_then_rises_to_one() {
        let f = trim_fade();
        assert_eq!(f.len(), 960);
        assert!(f[..480].iter().all(|&v| v == 0.0));
        assert!(f[480].abs() < 1e-6 && (f[959] - 1.0).abs() < 1e-6);
        assert!(f[480..].windows(2).all(|w| w[1] >= w[0]));
        // Raised cosine: symmetric about its midpoint.
        assert!((f[480 + 100] + f[959 - 100] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn seeded_noise_is_reproducible_and_standard_normal() {
        let a = SeededNoise::new(3).flow_noise(80, 500).unwrap();
        let b = SeededNoise::new(3).flow_noise(80, 500).unwrap();
        assert_eq!(a, b);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "mean {mean} var {var}"
        );
        let phase = SeededNoise::new(3).sine_phase(9).unwrap();
        assert!(phase.iter().all(|p| p.abs() <= std::f32::consts::PI));
    }
}
