//! `CausalConditionalCFM` (reference `flow_matching.py`): Euler integration of the estimator's
//! velocity field from noise (t = 0) to mel (t = 1) on a cosine time schedule, with
//! classifier-free guidance against an unconditional row (mu, spks and cond zeroed).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{CfmConfig, DecoderConfig};
use super::decoder::ConditionalDecoder;

#[derive(Debug, Clone)]
pub struct CausalConditionalCfm {
    pub estimator: ConditionalDecoder,
    n_timesteps: usize,
    cfg_rate: f64,
}

/// `1 − cos(linspace(0, 1, n + 1) · π/2)` in f32, as the reference computes it.
pub fn cosine_t_span(n: usize) -> Vec<f32> {
    let steps = n + 1;
    (0..steps)
        .map(|i| {
            // torch.linspace fills the first half from the start and the second half from the end.
            let step = 1f32 / n as f32;
            let lin = if i < steps / 2 {
                i as f32 * step
            } else {
                1f32 - (n - i) as f32 * step
            };
            1f32 - (lin * (0.5 * std::f64::consts::PI) as f32).cos()
        })
        .collect()
}

impl CausalConditionalCfm {
    pub fn load(cfm: &CfmConfig, decoder: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            estimator: ConditionalDecoder::load(decoder, vb.pp("estimator"))?,
            n_timesteps: cfm.n_timesteps,
            cfg_rate: cfm.inference_cfg_rate,
        })
    }

    /// z: the initial noise (1, 80, T) (`torch.randn_like(mu)` in the reference); mu, cond:
    /// (1, 80, T); spks: (1, 80). Returns the mel (1, 80, T) after `n_timesteps` Euler steps.
    pub fn forward(&self, z: &Tensor, mu: &Tensor, spks: &Tensor, cond: &Tensor) -> Result<Tensor> {
        self.solve_euler(z, &cosine_t_span(self.n_timesteps), mu, spks, cond)
    }

    /// Euler steps between consecutive entries of `t_span`, CFG-batched (row 0 conditional,
    /// row 1 unconditional): `v = (1 + r)·v_cond − r·v_uncond`, `x += (t_{k+1} − t_k)·v`.
    pub fn solve_euler(
        &self,
        z: &Tensor,
        t_span: &[f32],
        mu: &Tensor,
        spks: &Tensor,
        cond: &Tensor,
    ) -> Result<Tensor> {
        let dtype = self.estimator.dtype();
        let mu_in = Tensor::cat(&[mu, &mu.zeros_like()?], 0)?.to_dtype(dtype)?;
        let spks_in = Tensor::cat(&[spks, &spks.zeros_like()?], 0)?.to_dtype(dtype)?;
        let cond_in = Tensor::cat(&[cond, &cond.zeros_like()?], 0)?.to_dtype(dtype)?;
        let mut x = z.to_dtype(dtype)?;
        for w in t_span.windows(2) {
            let (t, r) = (w[0], w[1]);
            let x_in = Tensor::cat(&[&x, &x], 0)?;
            let t_in = Tensor::new(&[t, t], z.device())?;
            let v = self
                .estimator
                .forward(&x_in, &mu_in, &t_in, &spks_in, &cond_in)?;
            let v_cond = v.narrow(0, 0, 1)?;
            let v_uncond = v.narrow(0, 1, 1)?;
            let v = ((v_cond * (1.0 + self.cfg_rate))? - (v_uncond * self.cfg_rate)?)?;
            x = (x + (v * f64::from(r - t))?)?;
        }
        x.to_dtype(z.dtype())
    }
}
