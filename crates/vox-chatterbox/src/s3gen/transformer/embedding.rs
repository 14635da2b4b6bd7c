//! Input layers of the Conformer encoder (reference `transformer/subsampling.py`
//! `LinearNoSubsampling` and `transformer/embedding.py` `EspnetRelPositionalEncoding`).

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};

use crate::s3gen::nn::layer_norm;

/// Linear → LayerNorm (eps 1e-5) → ×√d, returning the relative position table alongside.
#[derive(Debug, Clone)]
pub struct LinearNoSubsampling {
    linear: Linear,
    norm: LayerNorm,
    d_model: usize,
}

impl LinearNoSubsampling {
    pub fn load(idim: usize, odim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: linear(idim, odim, vb.pp("out.0"))?,
            norm: layer_norm(odim, 1e-5, vb.pp("out.1"))?,
            d_model: odim,
        })
    }

    /// x: (B, T, idim) → ((B, T, odim) scaled by √odim, pos_emb (1, 2T−1, odim)).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.norm.forward(&self.linear.forward(x)?)?;
        let x = (x * (self.d_model as f64).sqrt())?;
        let pos = rel_pos_emb(x.dim(1)?, self.d_model, x.device())?.to_dtype(x.dtype())?;
        Ok((x, pos))
    }
}

/// ESPnet's relative position table for relative positions T−1, T−2, …, −(T−1): row r holds
/// `sin(p·w_i)` at even and `cos(p·w_i)` at odd columns, `w_i = 10000^(−2i/d)`, computed in f32
/// as the reference does (its 5000-row table sliced around the centre gives the same rows).
pub fn rel_pos_emb(t: usize, d_model: usize, device: &Device) -> Result<Tensor> {
    let ln = -(10000f64.ln() / d_model as f64);
    let div: Vec<f32> = (0..d_model / 2)
        .map(|i| ((2 * i) as f32 * ln as f32).exp())
        .collect();
    let mut data = Vec::with_capacity((2 * t - 1) * d_model);
    for r in 0..2 * t - 1 {
        // Positive part first (flipped), then the negative part.
        let p = t as i64 - 1 - r as i64;
        let pos = p.unsigned_abs() as f32;
        for &w in &div {
            let arg = pos * w;
            // The reference computes sin(−p·w) for the negative half: same |arg|, sign on sin.
            let s = if p < 0 { (-arg).sin() } else { arg.sin() };
            data.push(s);
            data.push(arg.cos());
        }
    }
    Tensor::from_vec(data, (1, 2 * t - 1, d_model), device)
}
