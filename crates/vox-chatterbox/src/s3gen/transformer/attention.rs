//! `RelPositionMultiHeadedAttention` (reference `transformer/attention.py`): Transformer-XL style
//! self-attention with learned content/position biases and ESPnet's relative-shift trick.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear, linear_no_bias};

#[derive(Debug, Clone)]
pub struct RelPositionMultiHeadedAttention {
    linear_q: Linear,
    linear_k: Linear,
    linear_v: Linear,
    linear_out: Linear,
    linear_pos: Linear,
    /// (heads, d_k), added to the query for the content term.
    pos_bias_u: Tensor,
    /// (heads, d_k), added to the query for the position term.
    pos_bias_v: Tensor,
    heads: usize,
    d_k: usize,
}

impl RelPositionMultiHeadedAttention {
    pub fn load(heads: usize, n_feat: usize, vb: VarBuilder) -> Result<Self> {
        let d_k = n_feat / heads;
        Ok(Self {
            linear_q: linear(n_feat, n_feat, vb.pp("linear_q"))?,
            linear_k: linear(n_feat, n_feat, vb.pp("linear_k"))?,
            linear_v: linear(n_feat, n_feat, vb.pp("linear_v"))?,
            linear_out: linear(n_feat, n_feat, vb.pp("linear_out"))?,
            linear_pos: linear_no_bias(n_feat, n_feat, vb.pp("linear_pos"))?,
            pos_bias_u: vb.get((heads, d_k), "pos_bias_u")?,
            pos_bias_v: vb.get((heads, d_k), "pos_bias_v")?,
            heads,
            d_k,
        })
    }

    /// x: (B, T, C); pos_emb: (1, 2T−1, C) from [`super::embedding::rel_pos_emb`]. Every key is
    /// visible to every query (S3Gen runs one unpadded utterance, so the padding mask is empty).
    pub fn forward(&self, x: &Tensor, pos_emb: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let split = |y: Tensor| y.reshape((b, t, self.heads, self.d_k));
        // q stays (B, T, H, d_k) until the biases are added, as in the reference.
        let q = split(self.linear_q.forward(x)?)?;
        let k = split(self.linear_k.forward(x)?)?
            .transpose(1, 2)?
            .contiguous()?;
        let v = split(self.linear_v.forward(x)?)?
            .transpose(1, 2)?
            .contiguous()?;
        let p = self
            .linear_pos
            .forward(pos_emb)?
            .reshape((1, 2 * t - 1, self.heads, self.d_k))?
            .transpose(1, 2)?
            .contiguous()?;
        let q_u = q
            .broadcast_add(&self.pos_bias_u)?
            .transpose(1, 2)?
            .contiguous()?;
        let q_v = q
            .broadcast_add(&self.pos_bias_v)?
            .transpose(1, 2)?
            .contiguous()?;
        let matrix_ac = q_u.matmul(&k.t()?)?;
        let matrix_bd = rel_shift(&q_v.broadcast_matmul(&p.t()?)?)?;
        let scores = ((matrix_ac + matrix_bd)? / (self.d_k as f64).sqrt())?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?;
        self.linear_out.forward(&out)
    }
}

/// ESPnet's relative shift: (B, H, T, 2T−1) → (B, H, T, T) with `out[i][j] = x[i][T−1−i+j]`,
/// done with the reference's pad / reshape / slice so the arithmetic is the same.
fn rel_shift(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, p) = x.dims4()?;
    let padded = x.pad_with_zeros(D::Minus1, 1, 0)?; // (B, H, T, 2T)
    padded
        .reshape((b, h, p + 1, t))?
        .narrow(2, 1, p)?
        .reshape((b, h, t, p))?
        .narrow(D::Minus1, 0, p / 2 + 1)
}
