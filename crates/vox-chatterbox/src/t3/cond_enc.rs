//! Conditioning encoder (reference: `models/t3/modules/cond_enc.py` and `perceiver.py`): speaker
//! embedding projection, the Perceiver resampler over the prompt speech embeddings, and the
//! emotion ("exaggeration") projection, concatenated into the head of the T3 prefix.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::config::T3Config;

/// `T3Cond`: what a voice contributes to T3. CLAP is not implemented in the reference either.
#[derive(Debug, Clone)]
pub struct T3Cond {
    /// Voice-encoder speaker embedding, (1, speaker_embed_size) f32.
    pub speaker_emb: Tensor,
    /// S3 speech tokens of the voice prompt, (1, P) integer (150 for a built-in voice).
    pub cond_prompt_speech_tokens: Option<Tensor>,
    /// The exaggeration scalar (`emotion_adv`, 0.5 by default).
    pub emotion_adv: f32,
}

/// `AttentionBlock2`: one LayerNorm applied to both inputs, multi-head SDPA, residual on `x1`.
#[derive(Debug, Clone)]
struct AttentionBlock2 {
    norm: LayerNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    proj_out: Linear,
    heads: usize,
}

impl AttentionBlock2 {
    fn load(vb: VarBuilder, channels: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            norm: candle_nn::layer_norm(channels, 1e-5, vb.pp("norm"))?,
            to_q: candle_nn::linear(channels, channels, vb.pp("to_q"))?,
            to_k: candle_nn::linear(channels, channels, vb.pp("to_k"))?,
            to_v: candle_nn::linear(channels, channels, vb.pp("to_v"))?,
            proj_out: candle_nn::linear(channels, channels, vb.pp("proj_out"))?,
            heads,
        })
    }

    fn forward(&self, x1: &Tensor, x2: &Tensor) -> Result<Tensor> {
        let x1n = self.norm.forward(x1)?;
        let x2n = self.norm.forward(x2)?;
        let split = |t: Tensor| -> Result<Tensor> {
            let (b, l, c) = t.dims3()?;
            t.reshape((b, l, self.heads, c / self.heads))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.to_q.forward(&x1n)?)?;
        let k = split(self.to_k.forward(&x2n)?)?;
        let v = split(self.to_v.forward(&x2n)?)?;
        let (b, h, l, d) = q.dims4()?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(candle_core::DType::F32)?)?
            .to_dtype(q.dtype())?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, l, h * d))?;
        x1 + self.proj_out.forward(&out)?
    }
}

/// The Perceiver resampler: learned queries cross-attend to the prompt, then self-attend, through
/// the same (weight-shared) attention block.
#[derive(Debug, Clone)]
pub struct Perceiver {
    pre_attention_query: Tensor,
    attn: AttentionBlock2,
}

impl Perceiver {
    fn load(vb: VarBuilder, cfg: &T3Config) -> Result<Self> {
        let p = &cfg.perceiver;
        Ok(Self {
            pre_attention_query: vb
                .get((1, p.query_tokens, p.query_size), "pre_attention_query")?,
            attn: AttentionBlock2::load(vb.pp("attn"), p.embedding_dim, p.num_heads)?,
        })
    }

    /// (B, P, H) prompt embeddings → (B, query_tokens, H).
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let b = h.dim(0)?;
        let (_, n, c) = self.pre_attention_query.dims3()?;
        let query = self.pre_attention_query.broadcast_as((b, n, c))?;
        let pre = self.attn.forward(&query, h)?;
        self.attn.forward(&pre, &pre)
    }
}

/// `T3CondEnc`.
#[derive(Debug, Clone)]
pub struct T3CondEnc {
    spkr_enc: Linear,
    emotion_adv_fc: Linear,
    pub perceiver: Perceiver,
    speaker_embed_size: usize,
}

impl T3CondEnc {
    /// Loads `cond_enc.*` (pass `vb.pp("cond_enc")`).
    pub fn load(vb: VarBuilder, cfg: &T3Config) -> Result<Self> {
        let h = cfg.llama.hidden_size;
        Ok(Self {
            spkr_enc: candle_nn::linear(cfg.speaker_embed_size, h, vb.pp("spkr_enc"))?,
            emotion_adv_fc: candle_nn::linear_no_bias(1, h, vb.pp("emotion_adv_fc"))?,
            perceiver: Perceiver::load(vb.pp("perceiver"), cfg)?,
            speaker_embed_size: cfg.speaker_embed_size,
        })
    }

    /// `[spkr(1) | perceiver(prompt) (32) | emotion(1)]`, (1, len_cond, H). `prompt_emb` is the
    /// prompt's speech embeddings plus positions (`T3.prepare_conditioning`), or `None` when the
    /// voice has no prompt tokens. `speaker_emb` and `emotion` must be in the compute dtype.
    pub fn forward(
        &self,
        speaker_emb: &Tensor,
        prompt_emb: Option<&Tensor>,
        emotion: &Tensor,
    ) -> Result<Tensor> {
        let spkr = self
            .spkr_enc
            .forward(&speaker_emb.reshape(((), self.speaker_embed_size))?)?
            .unsqueeze(1)?;
        let emo = self.emotion_adv_fc.forward(&emotion.reshape(((), 1, 1))?)?;
        let mut parts = vec![spkr];
        if let Some(p) = prompt_emb {
            parts.push(self.perceiver.forward(p)?);
        }
        parts.push(emo);
        Tensor::cat(&parts, D::Minus2)
    }
}
