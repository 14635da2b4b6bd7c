//! The T3 decoding loop (reference: `T3.prepare_input_embeds` + `T3.inference`, as called by
//! `ChatterboxTTS.generate`).

use candle_core::{D, DType, IndexOp, Module, Result, Tensor};

type Fallible<T> = std::result::Result<T, ChatterboxError>;

use super::sampling::{self, SamplingParams, UniformSource};
use super::{T3, T3Cond};
use crate::ChatterboxError;

/// Intermediate values of one [`T3::generate`] call, for parity tests and debugging. Set the
/// step counts before the call; the rest is filled in.
#[derive(Debug, Default)]
pub struct T3Trace {
    /// Backbone calls (0 = prefill) whose per-layer outputs are recorded.
    pub hidden_steps: usize,
    /// Backbone calls whose last-position speech logits (B, V) are recorded.
    pub logit_steps: usize,
    pub cond_prompt_speech_emb: Option<Tensor>,
    pub perceiver_out: Option<Tensor>,
    pub cond_emb: Option<Tensor>,
    /// The prefill input (B, L, H), including the second BOS.
    pub prefix: Option<Tensor>,
    /// Per recorded call: every layer's output, then the final-normed output.
    pub hidden: Vec<Vec<Tensor>>,
    pub logits: Vec<Tensor>,
    /// Per step (up to `logit_steps`): the distribution the token was drawn from.
    pub probs: Vec<Vec<f32>>,
}

/// Text longer than the learned text position table.
#[derive(Debug, thiserror::Error)]
#[error("{len} text tokens; this model takes at most {max} per call (chunk the text)")]
pub struct TextTooLong {
    pub len: usize,
    pub max: usize,
}

impl T3 {
    /// `[cond | text_emb + text_pos | BOS + speech_pos(0)]` for each CFG row, then the second BOS
    /// that `T3.inference` appends: (B, len_cond + N + 2 + 2, H). `text` includes the start and
    /// stop tokens. With `guided`, row 1 zeroes the text token embeddings but keeps their
    /// positions (the unconditional row).
    pub fn prefix(&self, cond_emb: &Tensor, text: &[u32], guided: bool) -> Result<Tensor> {
        let n = text.len();
        let ids = Tensor::new(text, &self.device)?.unsqueeze(0)?;
        let temb = self.text_emb.forward(&ids)?; // (1, N, H)
        let tpos = self.text_pos_emb.i(0..n)?;
        let cond_row = temb.broadcast_add(&tpos)?;
        let bos = self.speech_bos()?; // (1, 1, H)
        let row = |t: &Tensor| Tensor::cat(&[cond_emb, t, &bos, &bos], 1);
        if guided {
            let uncond_row = tpos.unsqueeze(0)?; // zeros + positions
            Tensor::cat(&[row(&cond_row)?, row(&uncond_row)?], 0)
        } else {
            row(&cond_row)
        }
    }

    /// `speech_emb(6561) + speech_pos_emb(0)`, (1, 1, H).
    fn speech_bos(&self) -> Result<Tensor> {
        self.speech_token_embed(self.cfg.start_speech_token, 0)
    }

    fn speech_token_embed(&self, token: u32, pos: usize) -> Result<Tensor> {
        let ids = Tensor::new(&[token], &self.device)?.unsqueeze(0)?;
        self.speech_emb
            .forward(&ids)?
            .broadcast_add(&self.speech_pos_emb.i(pos..pos + 1)?)
    }

    /// Samples speech tokens for `text` (token ids without start/stop; they are added here)
    /// until the stop token or `max_new_tokens`. The returned tokens include the stop token when
    /// it was drawn, as the reference's do.
    pub fn generate(
        &self,
        cond: &T3Cond,
        text: &[u32],
        params: &SamplingParams,
        max_new_tokens: usize,
        uniforms: &mut dyn UniformSource,
        trace: Option<&mut T3Trace>,
    ) -> Fallible<Vec<u32>> {
        self.generate_until(cond, text, params, max_new_tokens, uniforms, trace, &|| {
            false
        })
    }

    /// [`T3::generate`] that gives up with [`ChatterboxError::Cancelled`] as soon as `stop()` turns
    /// true (checked before every backbone call: a long utterance is hundreds of calls).
    #[allow(clippy::too_many_arguments)]
    pub fn generate_until(
        &self,
        cond: &T3Cond,
        text: &[u32],
        params: &SamplingParams,
        max_new_tokens: usize,
        uniforms: &mut dyn UniformSource,
        mut trace: Option<&mut T3Trace>,
        stop: &dyn Fn() -> bool,
    ) -> Fallible<Vec<u32>> {
        if text.len() > self.max_text_tokens() {
            return Err(ChatterboxError::BadInput(
                TextTooLong {
                    len: text.len(),
                    max: self.max_text_tokens(),
                }
                .to_string(),
            ));
        }
        if max_new_tokens > self.max_new_tokens_cap() {
            return Err(ChatterboxError::BadInput(format!(
                "max_new_tokens {max_new_tokens} exceeds this model's {} (chunk the text)",
                self.max_new_tokens_cap()
            )));
        }
        let mut padded = Vec::with_capacity(text.len() + 2);
        padded.push(self.cfg.start_text_token);
        padded.extend_from_slice(text);
        padded.push(self.cfg.stop_text_token);

        // The reference builds its T3 inputs with cfg_weight > 0 only; at 0 (where its batch
        // arithmetic breaks) this runs the conditional row alone, which is the same distribution.
        let guided = params.cfg_weight > 0.0;
        let cond_emb = self.prepare_conditioning(cond, trace.as_deref_mut())?;
        let prefix = self.prefix(&cond_emb, &padded, guided)?;
        if let Some(t) = trace.as_deref_mut() {
            t.prefix = Some(prefix.clone());
        }
        let batch = prefix.dim(0)?;
        let mut cache = self
            .tfmr
            .new_cache(prefix.dim(1)? + max_new_tokens.min(1024) + 1);

        let mut history = vec![self.cfg.start_speech_token];
        let mut out = Vec::new();
        let mut input = prefix;
        for step in 0..max_new_tokens {
            if stop() {
                return Err(ChatterboxError::Cancelled);
            }
            let logits = self.step(&input, &mut cache, step, trace.as_deref_mut())?;
            let cond_logits = logits.i(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let mut scores = if guided {
                let uncond = logits.i(1)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                sampling::cfg_combine(&cond_logits, &uncond, params.cfg_weight)
            } else {
                cond_logits
            };
            sampling::process_logits(&mut scores, &history, params);
            let probs = sampling::softmax(&scores);
            let token = sampling::draw(&probs, uniforms.next_uniform());
            if let Some(t) = trace.as_deref_mut()
                && step < t.logit_steps
            {
                t.probs.push(probs);
            }
            out.push(token);
            history.push(token);
            if token == self.cfg.stop_speech_token {
                break;
            }
            let e = self.speech_token_embed(token, step + 1)?;
            input = if batch == 2 {
                Tensor::cat(&[&e, &e], 0)?
            } else {
                e
            };
        }
        tracing::debug!(tokens = out.len(), "t3 generate");
        Ok(out)
    }

    /// One backbone call; returns the last position's speech logits (B, V).
    fn step(
        &self,
        input: &Tensor,
        cache: &mut crate::t3::LlamaCache,
        step: usize,
        trace: Option<&mut T3Trace>,
    ) -> Result<Tensor> {
        let mut layers = Vec::new();
        let record_hidden = trace.as_ref().is_some_and(|t| step < t.hidden_steps);
        let hidden = self.tfmr.forward(
            input,
            cache,
            if record_hidden {
                Some(&mut layers)
            } else {
                None
            },
        )?;
        let last = hidden
            .narrow(D::Minus2, hidden.dim(1)? - 1, 1)?
            .squeeze(1)?;
        let logits = self.speech_head.forward(&last)?;
        if let Some(t) = trace {
            if record_hidden {
                t.hidden.push(layers);
            }
            if step < t.logit_steps {
                t.logits.push(logits.clone());
            }
        }
        Ok(logits)
    }
}
