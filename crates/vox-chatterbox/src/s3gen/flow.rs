//! `CausalMaskedDiffWithXvec` (reference `flow.py`): prompt + speech tokens → Conformer
//! encoder → `mu` at 2 mel frames per token → conditional flow matching, with the prompt mel as
//! in-context condition and the projected x-vector as speaker input. Returns the new frames only.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, linear};

use super::config::S3GenConfig;
use super::flow_matching::CausalConditionalCfm;
use super::transformer::UpsampleConformerEncoder;

#[derive(Debug, Clone)]
pub struct CausalMaskedDiffWithXvec {
    input_embedding: Embedding,
    spk_embed_affine_layer: Linear,
    pub encoder: UpsampleConformerEncoder,
    encoder_proj: Linear,
    pub decoder: CausalConditionalCfm,
    vocab_size: usize,
    output_size: usize,
}

impl CausalMaskedDiffWithXvec {
    pub fn load(cfg: &S3GenConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            input_embedding: embedding(cfg.vocab_size, cfg.input_size, vb.pp("input_embedding"))?,
            spk_embed_affine_layer: linear(
                cfg.spk_embed_dim,
                cfg.output_size,
                vb.pp("spk_embed_affine_layer"),
            )?,
            encoder: UpsampleConformerEncoder::load(
                cfg.input_size,
                &cfg.encoder,
                vb.pp("encoder"),
            )?,
            encoder_proj: linear(
                cfg.encoder.output_size,
                cfg.output_size,
                vb.pp("encoder_proj"),
            )?,
            decoder: CausalConditionalCfm::load(&cfg.cfm, &cfg.decoder, vb.pp("decoder"))?,
            vocab_size: cfg.vocab_size,
            output_size: cfg.output_size,
        })
    }

    /// Speaker input of the estimator: Linear(L2-normalised x-vector). embedding: (1, 192) → (1, 80).
    pub fn speaker_projection(&self, embedding: &Tensor) -> Result<Tensor> {
        let norm = embedding
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .maximum(1e-12)?;
        self.spk_embed_affine_layer
            .forward(&embedding.broadcast_div(&norm)?)
    }

    /// `mu` for a token sequence: tokens (1, T) u32 → (1, 80, 2T).
    pub fn encode(&self, tokens: &Tensor) -> Result<Tensor> {
        let h = self
            .encoder
            .forward(&self.input_embedding.forward(tokens)?)?;
        self.encoder_proj.forward(&h)?.transpose(1, 2)?.contiguous()
    }

    /// The reference's `inference(..., finalize=True)` for batch 1.
    ///
    /// tokens (1, N) and prompt_token (1, P) u32; prompt_feat (1, 2P, 80); embedding (1, 192);
    /// z: initial flow noise (1, 80, 2(P + N)). Returns the generated mel (1, 80, 2N).
    pub fn inference(
        &self,
        tokens: &Tensor,
        prompt_token: &Tensor,
        prompt_feat: &Tensor,
        embedding: &Tensor,
        z: &Tensor,
    ) -> Result<Tensor> {
        let spks = self.speaker_projection(embedding)?;
        let all = Tensor::cat(&[prompt_token, tokens], 1)?;
        if let Some(&bad) = all
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .find(|&&t| t as usize >= self.vocab_size)
        {
            candle_core::bail!(
                "speech token {bad} is outside the flow vocabulary ({})",
                self.vocab_size
            )
        }
        let mu = self.encode(&all)?;
        let frames = mu.dim(D::Minus1)?;
        let mel_len1 = prompt_feat.dim(1)?;
        if mel_len1 > frames {
            candle_core::bail!(
                "prompt mel ({mel_len1} frames) is longer than its tokens allow ({frames})"
            )
        }
        // Prompt mel in the first mel_len1 frames, zeros after.
        let cond = prompt_feat
            .transpose(1, 2)?
            .to_dtype(mu.dtype())?
            .pad_with_zeros(D::Minus1, 0, frames - mel_len1)?;
        let feat = self.decoder.forward(z, &mu, &spks, &cond)?;
        debug_assert_eq!(feat.dim(1)?, self.output_size);
        feat.narrow(D::Minus1, mel_len1, frames - mel_len1)
    }
}
