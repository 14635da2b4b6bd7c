//! A loaded Piper voice: the VITS model in an ONNX Runtime session plus its config.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vox_onnx::ort::session::Session;
use vox_onnx::ort::value::Tensor;

use crate::config::VoiceConfig;
use crate::error::{PiperError, Result};
use crate::phonemize;

/// How to synthesize. `None` scales take the voice's defaults (its `.onnx.json` `inference` block).
///
/// Not seedable: the model samples with two ONNX `RandomNormalLike` nodes that take no seed input and whose
/// generator ONNX Runtime seeds by itself (only Python's `onnxruntime.set_seed` reaches it; the C API has no
/// such call). With `noise_scale = 0` and `noise_w = 0` the output is deterministic.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperParams {
    /// Speaking rate: 2.0 is twice as fast. Divides the voice's `length_scale` (piper's `--length-scale`).
    pub speed: f32,
    /// Overrides the voice's phoneme duration scale (before `speed` applies).
    pub length_scale: Option<f32>,
    /// Variation of the generated audio (piper's `noise_scale`).
    pub noise_scale: Option<f32>,
    /// Variation of phoneme durations (piper's `noise_w`).
    pub noise_w: Option<f32>,
    /// Silence after each sentence, in seconds (piper's `--sentence-silence`, default 0.2).
    pub sentence_silence: f32,
    /// Speaker of a multi-speaker voice (ignored by single-speaker voices).
    pub speaker_id: Option<i64>,
    /// Scale each sentence to full range, as piper does before converting to 16-bit.
    pub normalize: bool,
}

impl Default for PiperParams {
    fn default() -> Self {
        PiperParams {
            speed: 1.0,
            length_scale: None,
            noise_scale: None,
            noise_w: None,
            sentence_silence: 0.2,
            speaker_id: None,
            normalize: true,
        }
    }
}

/// A Piper voice ready to speak. `synthesize` may be called from several threads; inference runs one call at
/// a time per voice (ort's `run` takes the session mutably), phonemisation one call at a time per process.
pub struct PiperVoice {
    config: VoiceConfig,
    model: PathBuf,
    session: Mutex<Session>,
    has_speaker_input: bool,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("model", &self.model)
            .field("sample_rate", &self.config.audio.sample_rate)
            .field("espeak_voice", &self.config.espeak.voice)
            .finish()
    }
}

impl PiperVoice {
    /// Loads the voice in `dir` (a snapshot folder holding one `<name>.onnx` and its `<name>.onnx.json`) with
    /// one inference thread.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, &vox_onnx::SessionOptions::default())
    }

    pub fn load_with(dir: &Path, opts: &vox_onnx::SessionOptions) -> Result<Self> {
        let model = find_model(dir)?;
        let mut json = model.clone().into_os_string();
        json.push(".json");
        let json = PathBuf::from(json);
        if !json.is_file() {
            return Err(PiperError::MissingFile {
                dir: dir.to_path_buf(),
                what: format!("{} next to the model", json.display()),
            });
        }
        Self::load_files(&model, &json, opts)
    }

    /// Loads a model and config given by path.
    pub fn load_files(
        model: &Path,
        config: &Path,
        opts: &vox_onnx::SessionOptions,
    ) -> Result<Self> {
        let config = VoiceConfig::from_file(config)?;
        let session = vox_onnx::session(model, opts)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for want in ["input", "input_lengths", "scales"] {
            if !names.contains(&want) {
                return Err(PiperError::Inference(format!(
                    "{} is not a Piper VITS model: it has no input {want:?} (inputs: {names:?})",
                    model.display()
                )));
            }
        }
        let has_speaker_input = names.contains(&"sid");
        tracing::info!(model = %model.display(), sample_rate = config.audio.sample_rate, "Piper voice loaded");
        Ok(PiperVoice {
            config,
            model: model.to_path_buf(),
            session: Mutex::new(session),
            has_speaker_input,
        })
    }

    /// The voice's name: its model file's stem (`en_US-joe-medium`).
    pub fn name(&self) -> &str {
        self.model
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("piper")
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.audio.sample_rate
    }

    pub fn config(&self) -> &VoiceConfig {
        &self.config
    }

    /// The phonemes of each sentence of `text`.
    pub fn phonemize(&self, text: &str) -> Result<Vec<Vec<char>>> {
        phonemize::phonemize(&self.config.espeak.voice, text)
    }

    /// Model ids of one sentence's phonemes; unknown phonemes are skipped with a warning.
    pub fn phoneme_ids(&self, phonemes: &[char]) -> Vec<i64> {
        let (ids, missing) = phonemize::phoneme_ids(phonemes, &self.config.phoneme_id_map);
        if !missing.is_empty() {
            tracing::warn!(
                ?missing,
                "phonemes missing from the voice's id map were skipped"
            );
        }
        ids
    }

    /// The `[noise_scale, length_scale, noise_w]` input for `params`.
    pub fn scales(&self, params: &PiperParams) -> Result<[f32; 3]> {
        let d = self.config.inference;
        if !(params.speed.is_finite() && params.speed > 0.0) {
            return Err(PiperError::BadInput(format!(
                "speed must be positive, got {}",
                params.speed
            )));
        }
        let s = [
            params.noise_scale.unwrap_or(d.noise_scale),
            params.length_scale.unwrap_or(d.length_scale) / params.speed,
            params.noise_w.unwrap_or(d.noise_w),
        ];
        if s.iter().any(|v| !v.is_finite() || *v < 0.0) || s[1] == 0.0 {
            return Err(PiperError::BadInput(format!(
                "scales must be finite and non-negative, length_scale positive: {s:?}"
            )));
        }
        Ok(s)
    }

    /// Runs the model on one sentence's ids and returns its raw output (no normalisation), at
    /// [`Self::sample_rate`].
    pub fn infer(
        &self,
        ids: &[i64],
        scales: [f32; 3],
        speaker_id: Option<i64>,
    ) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(PiperError::BadInput("no phoneme ids".into()));
        }
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids.to_vec()))?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64]))?;
        let scales = Tensor::from_array(([3usize], scales.to_vec()))?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = if self.has_speaker_input {
            let sid = speaker_id.unwrap_or(0);
            let speakers = i64::from(self.config.num_speakers);
            if !(0..speakers.max(1)).contains(&sid) {
                return Err(PiperError::BadInput(format!(
                    "speaker {sid} is out of range (the voice has {speakers})"
                )));
            }
            let sid = Tensor::from_array(([1usize], vec![sid]))?;
            session.run(vox_onnx::ort::inputs![
                "input" => input, "input_lengths" => lengths, "scales" => scales, "sid" => sid
            ])?
        } else {
            session.run(vox_onnx::ort::inputs![
                "input" => input, "input_lengths" => lengths, "scales" => scales
            ])?
        };
        let (_, audio) = outputs[0].try_extract_tensor::<f32>()?;
        Ok(audio.to_vec())
    }

    /// Speaks `text`: each sentence synthesized on its own, optionally normalised, followed by
    /// `params.sentence_silence` of silence (as piper does, after the last sentence too).
    pub fn synthesize(&self, text: &str, params: &PiperParams) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.synthesize_sentences(text, params, |audio| {
            out.extend_from_slice(audio);
            Ok(())
        })?;
        Ok(out)
    }

    /// Like [`Self::synthesize`], handing each sentence's audio (silence included) to `sink` as soon as it is
    /// ready, so callers can stream. An error from `sink` stops synthesis and is returned.
    pub fn synthesize_sentences(
        &self,
        text: &str,
        params: &PiperParams,
        mut sink: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<usize> {
        let scales = self.scales(params)?;
        if !(params.sentence_silence.is_finite() && params.sentence_silence >= 0.0) {
            return Err(PiperError::BadInput(format!(
                "sentence_silence must be non-negative, got {}",
                params.sentence_silence
            )));
        }
        let sentences = self.phonemize(text)?;
        if sentences.is_empty() {
            return Err(PiperError::BadInput("the text has nothing to speak".into()));
        }
        let silence = (params.sentence_silence * self.sample_rate() as f32).round() as usize;
        for phonemes in &sentences {
            let ids = self.phoneme_ids(phonemes);
            let mut audio = self.infer(&ids, scales, params.speaker_id)?;
            if params.normalize {
                normalize(&mut audio);
            }
            audio.resize(audio.len() + silence, 0.0);
            sink(&audio)?;
        }
        Ok(sentences.len())
    }
}

/// Piper's peak scaling: divide by the peak (at least 0.01, so near-silence is not blown up) and clip.
fn normalize(audio: &mut [f32]) {
    let peak = audio.iter().fold(0.01f32, |m, x| m.max(x.abs()));
    for x in audio {
        *x = (*x / peak).clamp(-1.0, 1.0);
    }
}

/// The one `.onnx` file in `dir`.
fn find_model(dir: &Path) -> Result<PathBuf> {
    let missing = |what: &str| PiperError::MissingFile {
        dir: dir.to_path_buf(),
        what: what.into(),
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| missing(&format!("readable listing ({e})")))?;
    let mut models: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    models.sort();
    match models.len() {
        0 => Err(missing("*.onnx model")),
        1 => Ok(models.remove(0)),
        _ => Err(missing(&format!(
            "single *.onnx model (found {}; load one with PiperVoice::load_files)",
            models.len()
        ))),
    }
}
