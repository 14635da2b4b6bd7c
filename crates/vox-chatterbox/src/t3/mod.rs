//! T3: text tokens → speech tokens (reference: `chatterbox/models/t3`).
//!
//! A 30-layer Llama backbone reads a prefix of `[conditioning | text | BOS BOS]` embeddings and
//! samples S3 speech tokens (25 per second of audio) until the stop token, with classifier-free
//! guidance as a batch of two. Every checkpoint tensor is reached by the reference's own path
//! (`tfmr.layers.3.mlp.up_proj.weight`, `cond_enc.perceiver.attn.to_q.bias`, ...).
//!
//! Chunking long text is the caller's job: [`T3::max_new_tokens_cap`] says how many tokens one
//! call can produce (the learned speech position table's size), and nothing below it is capped.

mod cond_enc;
mod conds;
mod config;
mod inference;
mod linear;
mod llama;
pub mod sampling;
pub mod weights;

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

pub use cond_enc::{T3Cond, T3CondEnc};
pub use conds::load_t3_cond;
pub use config::{Llama3RopeScaling, LlamaConfig, PerceiverConfig, T3Config};
pub use inference::{T3Trace, TextTooLong};
pub use llama::{Llama, LlamaCache, llama3_inv_freq};
pub use sampling::{FedUniforms, SamplingParams, SeededUniforms, UniformSource};

use crate::ChatterboxError;

/// The T3 model.
#[derive(Debug, Clone)]
pub struct T3 {
    cfg: T3Config,
    tfmr: Llama,
    cond_enc: T3CondEnc,
    text_emb: Embedding,
    speech_emb: Embedding,
    /// `text_pos_emb.emb.weight` (`LearnedPositionEmbeddings`).
    text_pos_emb: Tensor,
    /// `speech_pos_emb.emb.weight`.
    speech_pos_emb: Tensor,
    /// Loaded because the checkpoint has it; T3 inference never reads text logits.
    #[allow(dead_code)]
    text_head: Linear,
    speech_head: linear::FastLinear,
    dtype: DType,
    device: Device,
}

impl T3 {
    /// Builds T3 from a `VarBuilder` rooted at the checkpoint's top level.
    pub fn load(vb: VarBuilder, cfg: &T3Config) -> candle_core::Result<Self> {
        let h = cfg.llama.hidden_size;
        Ok(Self {
            tfmr: Llama::load(vb.pp("tfmr"), &cfg.llama)?,
            cond_enc: T3CondEnc::load(vb.pp("cond_enc"), cfg)?,
            text_emb: candle_nn::embedding(cfg.text_tokens_dict_size, h, vb.pp("text_emb"))?,
            speech_emb: candle_nn::embedding(cfg.speech_tokens_dict_size, h, vb.pp("speech_emb"))?,
            text_pos_emb: vb
                .pp("text_pos_emb")
                .pp("emb")
                .get((cfg.text_pos_len(), h), "weight")?,
            speech_pos_emb: vb
                .pp("speech_pos_emb")
                .pp("emb")
                .get((cfg.speech_pos_len(), h), "weight")?,
            text_head: candle_nn::linear_no_bias(h, cfg.text_tokens_dict_size, vb.pp("text_head"))?,
            speech_head: linear::FastLinear::new(
                vb.pp("speech_head")
                    .get((cfg.speech_tokens_dict_size, h), "weight")?,
            ),
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads `t3_cfg.safetensors`, computing in `dtype` on `device`. Like the reference's strict
    /// `load_state_dict`, a tensor the model does not use is an error.
    pub fn from_safetensors(
        path: &Path,
        cfg: &T3Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self, ChatterboxError> {
        let (backend, requested) = weights::RecordingSafetensors::open(path)
            .map_err(|e| ChatterboxError::Model(format!("{}: {e}", path.display())))?;
        let names = backend.names();
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let t3 = Self::load(vb, cfg)
            .map_err(|e| ChatterboxError::Model(format!("{}: {e}", path.display())))?;
        let used = requested.lock().expect("poisoned");
        let unused: BTreeSet<&String> = names.iter().filter(|n| !used.contains_key(*n)).collect();
        if !unused.is_empty() {
            return Err(ChatterboxError::Model(format!(
                "{}: {} unexpected tensors, e.g. {:?}",
                path.display(),
                unused.len(),
                unused.iter().take(3).collect::<Vec<_>>()
            )));
        }
        Ok(t3)
    }

    pub fn config(&self) -> &T3Config {
        &self.cfg
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The most speech tokens one [`T3::generate`] call may be asked for: token `i` is fed back
    /// at learned speech position `i + 1`, and the table has `max_speech_tokens + 4` rows.
    pub fn max_new_tokens_cap(&self) -> usize {
        self.cfg.speech_pos_len() - 1
    }

    /// The most text tokens (before the start/stop tokens are added) one call accepts.
    pub fn max_text_tokens(&self) -> usize {
        self.cfg.text_pos_len() - 2
    }

    /// `T3.prepare_conditioning` + `T3CondEnc`: (1, len_cond, H) in the compute dtype.
    pub fn prepare_conditioning(
        &self,
        cond: &T3Cond,
        trace: Option<&mut T3Trace>,
    ) -> candle_core::Result<Tensor> {
        let prompt_emb = match &cond.cond_prompt_speech_tokens {
            Some(tokens) => {
                let tokens = tokens.to_dtype(DType::U32)?.to_device(&self.device)?;
                let p = tokens.dim(1)?;
                let pos = self.speech_pos_emb.i(0..p)?;
                Some(self.speech_emb.forward(&tokens)?.broadcast_add(&pos)?)
            }
            None => None,
        };
        let speaker = cond
            .speaker_emb
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let emotion = Tensor::new(&[cond.emotion_adv], &self.device)?.to_dtype(self.dtype)?;
        let out = self
            .cond_enc
            .forward(&speaker, prompt_emb.as_ref(), &emotion)?;
        if let Some(t) = trace {
            t.cond_prompt_speech_emb = prompt_emb.clone();
            if let Some(p) = &prompt_emb {
                t.perceiver_out = Some(self.cond_enc.perceiver.forward(p)?);
            }
            t.cond_emb = Some(out.clone());
        }
        Ok(out)
    }
}
