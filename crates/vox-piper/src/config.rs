//! The voice's `<name>.onnx.json`, as piper writes it next to the model.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{PiperError, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    pub audio: AudioConfig,
    #[serde(default)]
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub inference: InferenceConfig,
    /// Only `espeak` is supported (piper's `text` type feeds code points unchanged; no voice of vox uses it).
    #[serde(default = "default_phoneme_type")]
    pub phoneme_type: String,
    /// Phoneme (one Unicode code point, after NFD) → model ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default = "one")]
    pub num_speakers: u32,
    #[serde(default)]
    pub speaker_id_map: HashMap<String, i64>,
    #[serde(default)]
    pub language: Option<LanguageConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LanguageConfig {
    /// e.g. `en_US`.
    pub code: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    pub sample_rate: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    pub voice: String,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        EspeakConfig {
            voice: "en-us".into(),
        }
    }
}

/// The voice's default sampling scales (piper's defaults when absent).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InferenceConfig {
    #[serde(default = "noise_scale")]
    pub noise_scale: f32,
    #[serde(default = "length_scale")]
    pub length_scale: f32,
    #[serde(default = "noise_w")]
    pub noise_w: f32,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            noise_scale: noise_scale(),
            length_scale: length_scale(),
            noise_w: noise_w(),
        }
    }
}

fn default_phoneme_type() -> String {
    "espeak".into()
}
fn one() -> u32 {
    1
}
fn noise_scale() -> f32 {
    0.667
}
fn length_scale() -> f32 {
    1.0
}
fn noise_w() -> f32 {
    0.8
}

impl VoiceConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let cerr = |message: String| PiperError::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| cerr(e.to_string()))?;
        let c: VoiceConfig = serde_json::from_str(&text).map_err(|e| cerr(e.to_string()))?;
        if c.phoneme_type != "espeak" {
            return Err(cerr(format!(
                "phoneme_type {:?} is not supported (only \"espeak\")",
                c.phoneme_type
            )));
        }
        for sym in ["^", "_", "$"] {
            if c.phoneme_id_map.get(sym).is_none_or(Vec::is_empty) {
                return Err(cerr(format!("phoneme_id_map lacks {sym:?}")));
            }
        }
        if c.audio.sample_rate == 0 {
            return Err(cerr("audio.sample_rate is 0".into()));
        }
        Ok(c)
    }
}
