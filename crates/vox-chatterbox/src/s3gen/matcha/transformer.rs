//! `BasicTransformerBlock` (reference `matcha/transformer.py`, diffusers `Attention`) as the
//! estimator configures it: self-attention only, no biases on q/k/v, exact-GELU feed-forward ×4.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear, linear_no_bias};

use crate::s3gen::nn::layer_norm;

#[derive(Debug, Clone)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn load(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Self {
            to_q: linear_no_bias(dim, inner, vb.pp("to_q"))?,
            to_k: linear_no_bias(dim, inner, vb.pp("to_k"))?,
            to_v: linear_no_bias(dim, inner, vb.pp("to_v"))?,
            to_out: linear(inner, dim, vb.pp("to_out.0"))?,
            heads,
            head_dim,
        })
    }

    /// x: (B, T, dim). The reference passes an additive −1e10 bias on padded keys; S3Gen's
    /// single utterance has none, so the bias is all zeros and is left out.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(self.to_q.forward(x)?)?;
        let k = heads(self.to_k.forward(x)?)?;
        let v = heads(self.to_v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (self.head_dim as f64).sqrt()))?;
        let attn = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.to_out.forward(&out)
    }
}

#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm3: LayerNorm,
    /// `ff.net.0.proj` (GELU's input projection) and `ff.net.2`.
    ff_in: Linear,
    ff_out: Linear,
}

impl BasicTransformerBlock {
    pub fn load(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            norm1: layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: Attention::load(dim, heads, head_dim, vb.pp("attn1"))?,
            norm3: layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff_in: linear(dim, inner, vb.pp("ff.net.0.proj"))?,
            ff_out: linear(inner, dim, vb.pp("ff.net.2"))?,
        })
    }

    /// x: (B, T, dim) → (B, T, dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn1.forward(&self.norm1.forward(x)?)?)?;
        let ff = self
            .ff_out
            .forward(&self.ff_in.forward(&self.norm3.forward(&x)?)?.gelu_erf()?)?;
        x + ff
    }
}
