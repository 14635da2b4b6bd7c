//! The whole Chatterbox model from one snapshot directory (reference: `tts.py`, `ChatterboxTTS.from_local`
//! and `generate`), and vox's [`SpeechSynthesizer`] over it.
//!
//! A snapshot holds what the reference's `from_local` reads: `t3_cfg.safetensors`, `s3gen.safetensors`,
//! `tokenizer.json` and `conds.pt` (the built-in voice). `ve.safetensors` serves voice cloning only and is not
//! read. The shipped checkpoints come without configs; a directory may add `t3_config.json` /
//! `s3gen_config.json` (vox's own files) to describe a shrunken test model.
//!
//! One call speaks one chunk of text: `punc_norm` → tokenizer → T3 (CFG sampling) → S3Gen → 24 kHz samples.
//! Long text is split into sentence chunks by vox-engine ([`vox_engine::synthesize_long`]), which also fades
//! and joins the chunks' audio and streams each chunk as soon as it is spoken. Every random draw comes from
//! [`UniformSource`] (T3) and [`S3GenNoise`] (S3Gen), seeded from the request's `seed`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device};
use vox_engine::{
    AudioSink, EngineError, SpeechSynthesizer, SynthesisParams, SynthesisRequest, SynthesizerInfo,
    VoiceInfo,
};

use crate::ChatterboxError;
use crate::s3gen::{S3GEN_SR, S3Gen, S3GenConfig, S3GenNoise, S3GenRef, SeededNoise};
use crate::t3::{
    SamplingParams, SeededUniforms, T3, T3Cond, T3Config, UniformSource, load_t3_cond,
};
use crate::text::EnTokenizer;

/// The id of the voice stored in `conds.pt`.
pub const BUILTIN_VOICE: &str = "default";
/// `generate()` hard-codes `max_new_tokens=1000` (40 s of audio per call).
pub const MAX_NEW_TOKENS: usize = 1000;
/// The reference's S3 tokenizer specials: T3's speech BOS/EOS (`drop_invalid_tokens`).
const SPEECH_SOS: u32 = 6561;
const SPEECH_EOS: u32 = 6562;
/// Chunks longer than this drift and garble (maintainers recommend ≤ ~30 s; community chunkers use 240–300
/// characters), so the runtime splits text into sentence chunks of at most this many characters.
const MAX_CHUNK_CHARS: usize = 300;

/// Everything `ChatterboxTTS.generate` takes besides the text, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    /// Emotion exaggeration (`emotion_adv`), 0.25–2; 0.5 is neutral.
    pub exaggeration: f32,
    /// Sampling and guidance (temperature, min-p, top-p, repetition penalty, cfg weight).
    pub sampling: SamplingParams,
    /// Most speech tokens (25 per second of audio).
    pub max_new_tokens: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            exaggeration: 0.5,
            sampling: SamplingParams::default(),
            max_new_tokens: MAX_NEW_TOKENS,
        }
    }
}

impl GenerateOptions {
    /// The request's parameters over the defaults, checked against the ranges the reference's demo offers
    /// (outside them the model produces noise or nothing, so a typo should be an error, not bad audio).
    pub fn from_params(p: &SynthesisParams) -> Result<Self, ChatterboxError> {
        let mut o = Self::default();
        let s = &mut o.sampling;
        let set = |name: &str, v: Option<f32>, lo: f32, hi: f32, lo_open: bool, dst: &mut f32| {
            let Some(v) = v else { return Ok(()) };
            let below = if lo_open { v <= lo } else { v < lo };
            if !v.is_finite() || below || v > hi {
                let open = if lo_open { "(" } else { "[" };
                return Err(ChatterboxError::BadInput(format!(
                    "{name} {v} is out of range {open}{lo}, {hi}]"
                )));
            }
            *dst = v;
            Ok(())
        };
        set(
            "exaggeration",
            p.exaggeration,
            0.25,
            2.0,
            false,
            &mut o.exaggeration,
        )?;
        set(
            "cfg_weight",
            p.cfg_weight,
            0.0,
            1.0,
            false,
            &mut s.cfg_weight,
        )?;
        set(
            "temperature",
            p.temperature,
            0.0,
            5.0,
            true,
            &mut s.temperature,
        )?;
        set("min_p", p.min_p, 0.0, 1.0, false, &mut s.min_p)?;
        set("top_p", p.top_p, 0.0, 1.0, true, &mut s.top_p)?;
        set(
            "repetition_penalty",
            p.repetition_penalty,
            1.0,
            2.0,
            false,
            &mut s.repetition_penalty,
        )?;
        Ok(o)
    }
}

/// Chatterbox (English) with its built-in voice.
pub struct ChatterboxEngine {
    t3: T3,
    s3gen: S3Gen,
    tokenizer: EnTokenizer,
    t3_cond: T3Cond,
    gen_ref: S3GenRef,
    max_chunk_chars: usize,
    /// Chunks spoken so far (warm-up included): for logs and for tests of the streaming order.
    chunks: AtomicU64,
}

impl ChatterboxEngine {
    /// Loads a snapshot directory on the default device (CUDA when built with `cuda` and a GPU is present,
    /// else the CPU), computing in f32.
    pub fn load(dir: &Path) -> Result<Self, ChatterboxError> {
        Self::load_on(dir, &default_device(), DType::F32)
    }

    /// Loads a snapshot directory on `device` in `dtype` (HiFT always runs in f32).
    pub fn load_on(dir: &Path, device: &Device, dtype: DType) -> Result<Self, ChatterboxError> {
        let file = |name: &str| -> Result<std::path::PathBuf, ChatterboxError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ChatterboxError::Model(format!(
                    "{} has no {name} (a Chatterbox snapshot holds t3_cfg.safetensors, s3gen.safetensors, \
                     tokenizer.json and conds.pt)",
                    dir.display()
                )))
            }
        };
        let (t3_path, s3_path, tok_path, conds_path) = (
            file("t3_cfg.safetensors")?,
            file("s3gen.safetensors")?,
            file("tokenizer.json")?,
            file("conds.pt")?,
        );
        let t3_cfg: T3Config =
            read_config(dir, "t3_config.json")?.unwrap_or_else(T3Config::english);
        let s3_cfg: S3GenConfig = read_config(dir, "s3gen_config.json")?.unwrap_or_default();
        let started = std::time::Instant::now();
        let t3 = T3::from_safetensors(&t3_path, &t3_cfg, dtype, device)?;
        let s3gen = S3Gen::from_safetensors_with(&s3_path, &s3_cfg, device, dtype)?;
        let tokenizer = EnTokenizer::from_file(&tok_path)?;
        let t3_cond = load_t3_cond(&conds_path)?;
        let gen_ref = S3GenRef::from_conds_pt(&conds_path, device)?;
        // The text position table bounds a chunk: every character is at most one token after `punc_norm`
        // (which may turn one character into two, hence the half).
        let max_chunk_chars = MAX_CHUNK_CHARS.min(t3.max_text_tokens() / 2).max(1);
        tracing::info!(
            dir = %dir.display(),
            secs = started.elapsed().as_secs_f32(),
            hidden = t3_cfg.llama.hidden_size,
            layers = t3_cfg.llama.num_hidden_layers,
            "chatterbox loaded"
        );
        Ok(Self {
            t3,
            s3gen,
            tokenizer,
            t3_cond,
            gen_ref,
            max_chunk_chars,
            chunks: AtomicU64::new(0),
        })
    }

    /// How many chunks this engine has spoken (each [`ChatterboxEngine::generate`] call is one).
    pub fn chunks_spoken(&self) -> u64 {
        self.chunks.load(Ordering::Relaxed)
    }

    /// `ChatterboxTTS.generate` with the built-in voice, minus the watermark: 24 kHz samples of `text`.
    /// `uniforms` drives T3's token draws and `noise` every S3Gen draw; `stop` is polled between steps.
    /// Text that yields no speech token (the model stopped at once) gives no samples.
    pub fn generate(
        &self,
        text: &str,
        opts: &GenerateOptions,
        uniforms: &mut dyn UniformSource,
        noise: &mut dyn S3GenNoise,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<f32>, ChatterboxError> {
        if text.trim().is_empty() {
            return Err(ChatterboxError::BadInput("the text is empty".into()));
        }
        self.chunks.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let ids = self.tokenizer.text_to_tokens(text)?;
        let cond = T3Cond {
            emotion_adv: opts.exaggeration,
            ..self.t3_cond.clone()
        };
        let max_new = opts.max_new_tokens.min(self.t3.max_new_tokens_cap());
        let raw =
            self.t3
                .generate_until(&cond, &ids, &opts.sampling, max_new, uniforms, None, stop)?;
        let tokens = speech_tokens(&raw);
        let t3_secs = started.elapsed().as_secs_f32();
        if stop() {
            return Err(ChatterboxError::Cancelled);
        }
        if tokens.is_empty() {
            tracing::warn!(
                text_tokens = ids.len(),
                "chatterbox: T3 produced no speech tokens"
            );
            return Ok(Vec::new());
        }
        let wav = self.s3gen.inference(&tokens, &self.gen_ref, noise)?;
        tracing::info!(
            text_tokens = ids.len(),
            speech_tokens = tokens.len(),
            t3_secs,
            s3gen_secs = started.elapsed().as_secs_f32() - t3_secs,
            "chatterbox chunk"
        );
        Ok(wav)
    }
}

/// The speech tokens `generate()` hands to S3Gen: T3's output between its first BOS and first EOS, then only
/// real speech tokens (`drop_invalid_tokens` and `speech_tokens < 6561`).
pub fn speech_tokens(raw: &[u32]) -> Vec<u32> {
    let start = raw
        .iter()
        .position(|&t| t == SPEECH_SOS)
        .map_or(0, |i| i + 1);
    let end = raw
        .iter()
        .position(|&t| t == SPEECH_EOS)
        .unwrap_or(raw.len());
    raw.get(start..end.max(start))
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|&t| t < SPEECH_SOS)
        .collect()
}

fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

fn read_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Option<T>, ChatterboxError> {
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ChatterboxError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ChatterboxError::Model(format!("{}: {e}", path.display())))
}

/// The seeds of a request: T3's and S3Gen's streams are independent draws from the one seed.
fn seeds(seed: Option<u64>) -> (u64, u64) {
    let seed = seed.unwrap_or_else(rand::random);
    (seed, seed ^ 0x5EED_5EED_5EED_5EED)
}

impl From<ChatterboxError> for EngineError {
    fn from(e: ChatterboxError) -> Self {
        match e {
            ChatterboxError::BadInput(m) => EngineError::InvalidRequest(m),
            ChatterboxError::Cancelled => EngineError::Cancelled,
            other => EngineError::Failed(other.to_string()),
        }
    }
}

impl SpeechSynthesizer for ChatterboxEngine {
    fn info(&self) -> SynthesizerInfo {
        SynthesizerInfo {
            kind: "chatterbox".into(),
            sample_rate: S3GEN_SR as u32,
            voices: vec![VoiceInfo {
                id: BUILTIN_VOICE.into(),
                language: Some("en".into()),
                description: Some("Chatterbox built-in voice (conds.pt)".into()),
            }],
            max_chunk_chars: self.max_chunk_chars,
        }
    }

    fn warm_up(&self) -> Result<(), EngineError> {
        // A few tokens run every kernel of both models; a whole sentence would hold readiness for minutes
        // on a CPU.
        let opts = GenerateOptions {
            max_new_tokens: 4,
            ..GenerateOptions::default()
        };
        let (a, b) = seeds(Some(0));
        self.generate(
            "Hello.",
            &opts,
            &mut SeededUniforms::new(a),
            &mut SeededNoise::new(b),
            &|| false,
        )?;
        Ok(())
    }

    fn synthesize(
        &self,
        req: &SynthesisRequest,
        out: &mut dyn AudioSink,
    ) -> Result<(), EngineError> {
        if let Some(v) = req.voice.as_deref().filter(|v| *v != BUILTIN_VOICE) {
            return Err(EngineError::InvalidRequest(format!(
                "unknown voice {v:?}; this Chatterbox engine speaks {BUILTIN_VOICE:?} (voice cloning is not \
                 supported)"
            )));
        }
        if req.speed != 1.0 {
            // Ignoring it would hand back audio at a rate the caller did not ask for.
            return Err(EngineError::Unsupported(format!(
                "speed {}: Chatterbox has no speaking-rate control (exaggeration makes speech livelier \
                 and faster)",
                req.speed
            )));
        }
        if req.text.trim().is_empty() {
            return Err(EngineError::InvalidRequest("the text is empty".into()));
        }
        let opts = GenerateOptions::from_params(&req.params)?;
        let (t3_seed, s3_seed) = seeds(req.seed);
        let wav = self.generate(
            &req.text,
            &opts,
            &mut SeededUniforms::new(t3_seed),
            &mut SeededNoise::new(s3_seed),
            &|| out.is_cancelled(),
        )?;
        out.write(&wav)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_outside_their_ranges_are_refused_by_name() {
        let ok = GenerateOptions::from_params(&SynthesisParams {
            exaggeration: Some(2.0),
            cfg_weight: Some(0.0),
            temperature: Some(0.1),
            min_p: Some(0.0),
            top_p: Some(1.0),
            repetition_penalty: Some(1.0),
            ..SynthesisParams::default()
        })
        .unwrap();
        assert_eq!(ok.exaggeration, 2.0);
        assert_eq!(ok.sampling.cfg_weight, 0.0);
        assert_eq!(ok.sampling.temperature, 0.1);
        assert_eq!(
            GenerateOptions::from_params(&SynthesisParams::default()).unwrap(),
            GenerateOptions::default()
        );
        for (name, p) in [
            (
                "exaggeration",
                SynthesisParams {
                    exaggeration: Some(3.0),
                    ..Default::default()
                },
            ),
            (
                "cfg_weight",
                SynthesisParams {
                    cfg_weight: Some(-0.1),
                    ..Default::default()
                },
            ),
            (
                "temperature",
                SynthesisParams {
                    temperature: Some(0.0),
                    ..Default::default()
                },
            ),
            (
                "temperature",
                SynthesisParams {
                    temperature: Some(f32::NAN),
                    ..Default::default()
                },
            ),
            (
                "min_p",
                SynthesisParams {
                    min_p: Some(1.5),
                    ..Default::default()
                },
            ),
            (
                "top_p",
                SynthesisParams {
                    top_p: Some(0.0),
                    ..Default::default()
                },
            ),
            (
                "repetition_penalty",
                SynthesisParams {
                    repetition_penalty: Some(0.5),
                    ..Default::default()
                },
            ),
        ] {
            let e = GenerateOptions::from_params(&p).unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
        }
    }

    #[test]
    fn speech_tokens_are_cut_at_the_specials_like_the_reference() {
        assert_eq!(speech_tokens(&[5, 7, 6562]), vec![5, 7]);
        assert_eq!(speech_tokens(&[5, 6561, 7, 8000, 9, 6562, 4]), vec![7, 9]);
        assert_eq!(speech_tokens(&[6562, 1]), Vec::<u32>::new());
        assert_eq!(speech_tokens(&[1, 2, 3]), vec![1, 2, 3]);
    }

    #[test]
    fn seeds_are_reproducible_and_distinct_per_model() {
        assert_eq!(seeds(Some(7)), seeds(Some(7)));
        let (a, b) = seeds(Some(7));
        assert_ne!(a, b);
    }
}
