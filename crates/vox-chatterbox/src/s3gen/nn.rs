//! Small layers S3Gen's modules share: weight-norm folding, causal and plain 1-D convolutions,
//! and the activations PyTorch has and candle lacks (Mish, Snake, leaky ReLU).

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// The weight of a (possibly weight-normalised) convolution of shape `shape`.
///
/// The checkpoint stores HiFT's convolutions as `torch.nn.utils.parametrizations.weight_norm`
/// pairs (`parametrizations.weight.original0` = g, shape (dim0, 1, 1); `original1` = v); older
/// exports use `weight_g` / `weight_v`. Both fold to `w = g · v / ‖v‖` with the norm taken over
/// every dimension but 0 (for a ConvTranspose1d dimension 0 is the input channel). A plain
/// `weight` is returned as is.
pub fn weight_norm_weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let param = vb.pp("parametrizations").pp("weight");
    let (g, v) = if param.contains_tensor("original0") {
        (
            param.get((shape.0, 1, 1), "original0")?,
            param.get(shape, "original1")?,
        )
    } else if vb.contains_tensor("weight_g") {
        (
            vb.get((shape.0, 1, 1), "weight_g")?,
            vb.get(shape, "weight_v")?,
        )
    } else {
        return vb.get(shape, "weight");
    };
    // Fold in f32 whatever the load dtype, so a half-precision load rounds once.
    let dtype = v.dtype();
    let (g, v) = (g.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
    let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
    v.broadcast_mul(&g.broadcast_div(&norm)?)?.to_dtype(dtype)
}

/// `nn.Conv1d` (optionally weight-normalised) with PyTorch's padding semantics. Padding is applied
/// explicitly so the convolution itself always runs candle's im2col path.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Option<Tensor>,
    /// (left, right) zero padding.
    padding: (usize, usize),
    stride: usize,
    dilation: usize,
}

/// How a [`Conv1d`] is shaped.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub padding: (usize, usize),
    pub bias: bool,
}

impl ConvSpec {
    /// A stride-1, dilation-1 convolution with symmetric padding `pad` and a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, pad: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            dilation: 1,
            padding: (pad, pad),
            bias: true,
        }
    }
    /// `CausalConv1d` of the reference: `kernel − 1` zeros on the left only.
    pub fn causal(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            padding: (kernel - 1, 0),
            ..Self::new(in_channels, out_channels, kernel, 0)
        }
    }
    pub fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }
    pub fn dilation(self, dilation: usize) -> Self {
        Self { dilation, ..self }
    }
}

impl Conv1d {
    pub fn load(spec: ConvSpec, vb: VarBuilder) -> Result<Self> {
        let weight = weight_norm_weight(&vb, (spec.out_channels, spec.in_channels, spec.kernel))?;
        let bias = if spec.bias {
            Some(vb.get(spec.out_channels, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            padding: spec.padding,
            stride: spec.stride,
            dilation: spec.dilation,
        })
    }
}

impl Module for Conv1d {
    /// x: (B, C_in, T) → (B, C_out, T').
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if self.padding != (0, 0) {
            x.pad_with_zeros(D::Minus1, self.padding.0, self.padding.1)?
        } else {
            x.clone()
        };
        let y = x.conv1d(&self.weight, 0, self.stride, self.dilation, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1))?),
            None => Ok(y),
        }
    }
}

/// `nn.ConvTranspose1d` (optionally weight-normalised). Run with zero padding and then cropped,
/// because candle's CPU backend only takes its fast (matmul + col2im) path without padding.
#[derive(Debug, Clone)]
pub struct ConvTranspose1d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvTranspose1d {
    pub fn load(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = weight_norm_weight(&vb, (in_channels, out_channels, kernel))?;
        let bias = vb.get(out_channels, "bias")?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }
}

impl Module for ConvTranspose1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?;
        let len = y.dim(D::Minus1)? - 2 * self.padding;
        y.narrow(D::Minus1, self.padding, len)?
            .broadcast_add(&self.bias.reshape((1, (), 1))?)
    }
}

/// `F.mish`: x · tanh(softplus(x)).
pub fn mish(x: &Tensor) -> Result<Tensor> {
    x * (x.exp()? + 1.0)?.log()?.tanh()?
}

/// `F.leaky_relu(x, slope)`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    // max(x, 0) + slope · min(x, 0)
    let zeros = x.zeros_like()?;
    x.maximum(&zeros)? + (x.minimum(&zeros)? * slope)?
}

/// PyTorch's `nn.LayerNorm` over the last dimension, with the reference's eps.
pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::LayerNorm> {
    candle_nn::layer_norm(
        size,
        candle_nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
        vb,
    )
}
