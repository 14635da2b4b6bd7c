//! `conds.pt`: the built-in voice, a torch zip pickle of `{"t3": T3Cond.__dict__, "gen": {...}}`
//! (reference: `tts.py: Conditionals.save/load`). Only the `t3` half is read here.

use std::path::Path;

use candle_core::pickle::PthTensors;

use super::T3Cond;
use crate::ChatterboxError;

/// Reads the T3 conditioning from `conds.pt`. `emotion_adv` is the stored exaggeration
/// (the reference replaces it when a caller asks for another).
pub fn load_t3_cond(path: &Path) -> Result<T3Cond, ChatterboxError> {
    let err = |e: candle_core::Error| ChatterboxError::Model(format!("{}: {e}", path.display()));
    let pth = PthTensors::new(path, Some("t3")).map_err(err)?;
    let get = |name: &str| -> Result<Option<candle_core::Tensor>, ChatterboxError> {
        pth.get(name).map_err(err)
    };
    let speaker_emb = get("speaker_emb")?
        .ok_or_else(|| ChatterboxError::Model(format!("{}: no t3.speaker_emb", path.display())))?
        .to_dtype(candle_core::DType::F32)
        .map_err(err)?;
    let emotion_adv = match get("emotion_adv")? {
        Some(t) => t
            .flatten_all()
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)?
            .first()
            .copied()
            .unwrap_or(0.5),
        None => 0.5,
    };
    Ok(T3Cond {
        speaker_emb,
        cond_prompt_speech_tokens: get("cond_prompt_speech_tokens")?,
        emotion_adv,
    })
}
