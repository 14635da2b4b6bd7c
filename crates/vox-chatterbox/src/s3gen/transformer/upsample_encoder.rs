//! `UpsampleConformerEncoder` (reference `transformer/upsample_encoder.py`): token embeddings at
//! 25 Hz → Conformer → nearest ×2 upsampling → Conformer → 50 Hz hidden states (one per mel frame).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use super::embedding::LinearNoSubsampling;
use super::encoder_layer::ConformerEncoderLayer;
use crate::s3gen::config::EncoderConfig;
use crate::s3gen::nn::{Conv1d, ConvSpec, layer_norm, leaky_relu};

/// Right-looking residual convolutions: pad `len` zeros on the right, Conv1d k=len+1, leaky ReLU,
/// pad 2 on the left, Conv1d k3.
#[derive(Debug, Clone)]
pub struct PreLookaheadLayer {
    conv1: Conv1d,
    conv2: Conv1d,
}

impl PreLookaheadLayer {
    pub fn load(channels: usize, len: usize, vb: VarBuilder) -> Result<Self> {
        let mut spec1 = ConvSpec::new(channels, channels, len + 1, 0);
        spec1.padding = (0, len);
        Ok(Self {
            conv1: Conv1d::load(spec1, vb.pp("conv1"))?,
            conv2: Conv1d::load(ConvSpec::causal(channels, channels, 3), vb.pp("conv2"))?,
        })
    }

    /// x: (B, T, C) → (B, T, C).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.transpose(1, 2)?.contiguous()?;
        let y = leaky_relu(&self.conv1.forward(&y)?, 0.01)?;
        let y = self.conv2.forward(&y)?.transpose(1, 2)?;
        y + x
    }
}

/// Nearest-neighbour ×stride, `2·stride` zeros on the left, Conv1d k=2·stride+1.
#[derive(Debug, Clone)]
pub struct Upsample1D {
    conv: Conv1d,
    stride: usize,
}

impl Upsample1D {
    pub fn load(channels: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let mut spec = ConvSpec::new(channels, channels, 2 * stride + 1, 0);
        spec.padding = (2 * stride, 0);
        Ok(Self {
            conv: Conv1d::load(spec, vb.pp("conv"))?,
            stride,
        })
    }

    /// x: (B, C, T) → (B, C, stride·T).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let up = x
            .unsqueeze(D::Minus1)?
            .broadcast_as((b, c, t, self.stride))?
            .reshape((b, c, t * self.stride))?;
        self.conv.forward(&up)
    }
}

#[derive(Debug, Clone)]
pub struct UpsampleConformerEncoder {
    embed: LinearNoSubsampling,
    pre_lookahead_layer: PreLookaheadLayer,
    encoders: Vec<ConformerEncoderLayer>,
    up_layer: Upsample1D,
    up_embed: LinearNoSubsampling,
    up_encoders: Vec<ConformerEncoderLayer>,
    after_norm: LayerNorm,
}

impl UpsampleConformerEncoder {
    pub fn load(input_size: usize, cfg: &EncoderConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.output_size;
        let layers = |n: usize, vb: VarBuilder| {
            (0..n)
                .map(|i| {
                    ConformerEncoderLayer::load(d, cfg.attention_heads, cfg.linear_units, vb.pp(i))
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(Self {
            embed: LinearNoSubsampling::load(input_size, d, vb.pp("embed"))?,
            pre_lookahead_layer: PreLookaheadLayer::load(
                d,
                cfg.pre_lookahead_len,
                vb.pp("pre_lookahead_layer"),
            )?,
            encoders: layers(cfg.num_blocks, vb.pp("encoders"))?,
            up_layer: Upsample1D::load(d, cfg.upsample_stride, vb.pp("up_layer"))?,
            up_embed: LinearNoSubsampling::load(d, d, vb.pp("up_embed"))?,
            up_encoders: layers(cfg.num_up_blocks, vb.pp("up_encoders"))?,
            after_norm: layer_norm(d, 1e-5, vb.pp("after_norm"))?,
        })
    }

    /// xs: (B, T, input_size) token embeddings → (B, stride·T, output_size).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (xs, pos) = self.embed.forward(xs)?;
        let mut xs = self.pre_lookahead_layer.forward(&xs)?;
        for layer in &self.encoders {
            xs = layer.forward(&xs, &pos)?;
        }
        let xs = self
            .up_layer
            .forward(&xs.transpose(1, 2)?.contiguous()?)?
            .transpose(1, 2)?
            .contiguous()?;
        let (mut xs, pos) = self.up_embed.forward(&xs)?;
        for layer in &self.up_encoders {
            xs = layer.forward(&xs, &pos)?;
        }
        self.after_norm.forward(&xs)
    }
}
