//! `ConformerEncoderLayer` as S3Gen configures it (reference `transformer/encoder_layer.py`):
//! pre-LayerNorm (eps 1e-12) relative-position self-attention and a SiLU feed-forward; no
//! macaron feed-forward and no convolution module.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};

use super::attention::RelPositionMultiHeadedAttention;
use crate::s3gen::nn::layer_norm;

/// `PositionwiseFeedForward`: w_2(silu(w_1(x))).
#[derive(Debug, Clone)]
pub struct PositionwiseFeedForward {
    w_1: Linear,
    w_2: Linear,
}

impl PositionwiseFeedForward {
    pub fn load(idim: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            w_1: linear(idim, hidden, vb.pp("w_1"))?,
            w_2: linear(hidden, idim, vb.pp("w_2"))?,
        })
    }
}

impl Module for PositionwiseFeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w_2.forward(&self.w_1.forward(x)?.silu()?)
    }
}

#[derive(Debug, Clone)]
pub struct ConformerEncoderLayer {
    self_attn: RelPositionMultiHeadedAttention,
    feed_forward: PositionwiseFeedForward,
    norm_mha: LayerNorm,
    norm_ff: LayerNorm,
}

impl ConformerEncoderLayer {
    pub fn load(size: usize, heads: usize, linear_units: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: RelPositionMultiHeadedAttention::load(heads, size, vb.pp("self_attn"))?,
            feed_forward: PositionwiseFeedForward::load(size, linear_units, vb.pp("feed_forward"))?,
            norm_mha: layer_norm(size, 1e-12, vb.pp("norm_mha"))?,
            norm_ff: layer_norm(size, 1e-12, vb.pp("norm_ff"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, pos_emb: &Tensor) -> Result<Tensor> {
        let x = (x + self
            .self_attn
            .forward(&self.norm_mha.forward(x)?, pos_emb)?)?;
        &x + self.feed_forward.forward(&self.norm_ff.forward(&x)?)?
    }
}
