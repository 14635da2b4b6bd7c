//! `ConvRNNF0Predictor` (reference `f0_predictor.py`): five weight-normalised k3 convolutions with
//! ELU, then Linear → |·|: mel (B, 80, T) → F0 in Hz (B, T).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::nn::{Conv1d, ConvSpec};

#[derive(Debug, Clone)]
pub struct ConvRnnF0Predictor {
    condnet: Vec<Conv1d>,
    classifier: Linear,
}

impl ConvRnnF0Predictor {
    pub fn load(in_channels: usize, cond_channels: usize, vb: VarBuilder) -> Result<Self> {
        let condnet = (0..5)
            .map(|i| {
                let cin = if i == 0 { in_channels } else { cond_channels };
                // Sequential indices 0, 2, 4, 6, 8 (the ELUs sit in between).
                Conv1d::load(
                    ConvSpec::new(cin, cond_channels, 3, 1),
                    vb.pp("condnet").pp(2 * i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            condnet,
            classifier: linear(cond_channels, 1, vb.pp("classifier"))?,
        })
    }
}

impl Module for ConvRnnF0Predictor {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        for conv in &self.condnet {
            x = conv.forward(&x)?.elu(1.0)?;
        }
        self.classifier
            .forward(&x.transpose(1, 2)?)?
            .squeeze(candle_core::D::Minus1)?
            .abs()
    }
}
