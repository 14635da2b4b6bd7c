//! The flow-matching estimator `ConditionalDecoder` (reference `decoder.py` with the causal
//! blocks of `matcha/decoder.py`): a one-level 1-D U-Net of causal ResNet blocks and
//! Transformer blocks, conditioned on the flow time through a sinusoidal embedding + MLP.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};

use super::config::DecoderConfig;
use super::matcha::transformer::BasicTransformerBlock;
use super::nn::{Conv1d, ConvSpec, layer_norm, mish};

/// `SinusoidalPosEmb(dim)` at the reference's scale 1000: t (B,) → (B, dim) = sin ‖ cos.
pub fn sinusoidal_pos_emb(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let step = 10000f64.ln() / (half - 1) as f64;
    // The reference computes the frequencies in f32: exp(arange · −step).
    let freqs: Vec<f32> = (0..half)
        .map(|i| (i as f32 * -(step as f32)).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let arg =
        (t.to_dtype(candle_core::DType::F32)?.unsqueeze(1)? * 1000.0)?.broadcast_mul(&freqs)?;
    Tensor::cat(&[arg.sin()?, arg.cos()?], D::Minus1)
}

/// `CausalBlock1D`: CausalConv1d k3 → LayerNorm over channels → Mish.
#[derive(Debug, Clone)]
struct CausalBlock1D {
    conv: Conv1d,
    norm: LayerNorm,
}

impl CausalBlock1D {
    fn load(dim: usize, dim_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv1d::load(ConvSpec::causal(dim, dim_out, 3), vb.pp("block.0"))?,
            norm: layer_norm(dim_out, 1e-5, vb.pp("block.2"))?,
        })
    }

    /// x: (B, C, T). The reference multiplies by the (all-ones) mask before and after.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?.transpose(1, 2)?;
        let y = self.norm.forward(&y.contiguous()?)?.transpose(1, 2)?;
        mish(&y)
    }
}

/// `CausalResnetBlock1D`: two causal blocks with the time embedding added in between, plus a
/// 1×1 residual projection.
#[derive(Debug, Clone)]
struct CausalResnetBlock1D {
    mlp: Linear,
    block1: CausalBlock1D,
    block2: CausalBlock1D,
    res_conv: Conv1d,
}

impl CausalResnetBlock1D {
    fn load(dim: usize, dim_out: usize, time_emb_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp: linear(time_emb_dim, dim_out, vb.pp("mlp.1"))?,
            block1: CausalBlock1D::load(dim, dim_out, vb.pp("block1"))?,
            block2: CausalBlock1D::load(dim_out, dim_out, vb.pp("block2"))?,
            res_conv: Conv1d::load(ConvSpec::new(dim, dim_out, 1, 0), vb.pp("res_conv"))?,
        })
    }

    /// x: (B, C, T); t: (B, time_emb_dim).
    fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let h = self.block1.forward(x)?;
        let h = h.broadcast_add(&self.mlp.forward(&mish(t)?)?.unsqueeze(D::Minus1)?)?;
        let h = self.block2.forward(&h)?;
        h + self.res_conv.forward(x)?
    }
}

/// One U-Net stage: ResNet block, Transformer blocks, then (down/up stages) a causal conv.
#[derive(Debug, Clone)]
struct Stage {
    resnet: CausalResnetBlock1D,
    transformers: Vec<BasicTransformerBlock>,
    conv: Option<Conv1d>,
}

impl Stage {
    fn load(
        dim: usize,
        dim_out: usize,
        cfg: &DecoderConfig,
        time_emb_dim: usize,
        with_conv: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let transformers = (0..cfg.n_blocks)
            .map(|j| {
                BasicTransformerBlock::load(
                    dim_out,
                    cfg.num_heads,
                    cfg.attention_head_dim,
                    vb.pp("1").pp(j),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let conv = if with_conv {
            Some(Conv1d::load(
                ConvSpec::causal(dim_out, dim_out, 3),
                vb.pp("2"),
            )?)
        } else {
            None
        };
        Ok(Self {
            resnet: CausalResnetBlock1D::load(dim, dim_out, time_emb_dim, vb.pp("0"))?,
            transformers,
            conv,
        })
    }

    fn forward(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.resnet.forward(x, t)?;
        let mut h = x.transpose(1, 2)?.contiguous()?;
        for block in &self.transformers {
            h = block.forward(&h)?;
        }
        let h = h.transpose(1, 2)?.contiguous()?;
        let out = match &self.conv {
            Some(conv) => conv.forward(&h)?,
            None => h.clone(),
        };
        Ok((h, out))
    }
}

#[derive(Debug, Clone)]
pub struct ConditionalDecoder {
    dtype: candle_core::DType,
    in_channels: usize,
    time_linear_1: Linear,
    time_linear_2: Linear,
    down: Stage,
    mid: Vec<Stage>,
    up: Stage,
    final_block: CausalBlock1D,
    final_proj: Conv1d,
}

impl ConditionalDecoder {
    pub fn load(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let [ch] = cfg.channels[..] else {
            candle_core::bail!(
                "S3Gen estimator: only one U-Net level is implemented (Chatterbox's), got {:?}",
                cfg.channels
            )
        };
        let time_emb_dim = 4 * ch;
        let mid = (0..cfg.num_mid_blocks)
            .map(|i| Stage::load(ch, ch, cfg, time_emb_dim, false, vb.pp("mid_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dtype: vb.dtype(),
            in_channels: cfg.in_channels,
            time_linear_1: linear(cfg.in_channels, time_emb_dim, vb.pp("time_mlp.linear_1"))?,
            time_linear_2: linear(time_emb_dim, time_emb_dim, vb.pp("time_mlp.linear_2"))?,
            down: Stage::load(
                cfg.in_channels,
                ch,
                cfg,
                time_emb_dim,
                true,
                vb.pp("down_blocks.0"),
            )?,
            mid,
            up: Stage::load(2 * ch, ch, cfg, time_emb_dim, true, vb.pp("up_blocks.0"))?,
            final_block: CausalBlock1D::load(ch, ch, vb.pp("final_block"))?,
            final_proj: Conv1d::load(
                ConvSpec::new(ch, cfg.out_channels, 1, 0),
                vb.pp("final_proj"),
            )?,
        })
    }

    /// The dtype the weights were loaded in.
    pub fn dtype(&self) -> candle_core::DType {
        self.dtype
    }

    /// The velocity field: x, mu, cond (B, 80, T); t (B,); spks (B, 80) → (B, 80, T).
    pub fn forward(
        &self,
        x: &Tensor,
        mu: &Tensor,
        t: &Tensor,
        spks: &Tensor,
        cond: &Tensor,
    ) -> Result<Tensor> {
        let t = sinusoidal_pos_emb(t, self.in_channels)?.to_dtype(x.dtype())?;
        let t = self
            .time_linear_2
            .forward(&self.time_linear_1.forward(&t)?.silu()?)?;
        let frames = x.dim(D::Minus1)?;
        let spks = spks
            .unsqueeze(D::Minus1)?
            .broadcast_as((spks.dim(0)?, spks.dim(1)?, frames))?;
        let x = Tensor::cat(&[x, mu, &spks, cond], 1)?;
        let (skip, x) = self.down.forward(&x, &t)?;
        let mut x = x;
        for stage in &self.mid {
            x = stage.forward(&x, &t)?.1;
        }
        let x = Tensor::cat(&[&x, &skip], 1)?;
        let (_, x) = self.up.forward(&x, &t)?;
        let x = self.final_block.forward(&x)?;
        self.final_proj.forward(&x)
    }
}
