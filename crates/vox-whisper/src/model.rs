//! The Whisper network: a convolutional front end and a Transformer encoder over log-mel frames, and a
//! Transformer decoder over tokens with cross-attention to the encoder output.
//!
//! Structs follow CTranslate2's `WhisperSpec` (python/ctranslate2/specs/whisper_spec.py), so every weight is read
//! by the path it has in `model.bin`: `encoder/layer_0/self_attention/linear_0/weight` is
//! `Encoder.layers[0].self_attention.linear[0].weight`. Differences from the reference, all numerically neutral:
//! weights are stored transposed once at load for row-major matmuls; the self-attention of the decoder keeps a
//! KV cache; cross-attention keys and values are computed once per encoder output.

use candle_core::{D, DType, Device, Module, Result, Tensor};

use crate::weights::WhisperWeights;

/// Sizes read from the weights themselves (CTranslate2 stores no hyper-parameters besides head counts).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub n_mels: usize,
    pub d_model: usize,
    pub encoder_heads: usize,
    pub decoder_heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub vocab_size: usize,
    /// Decoder positions (448).
    pub max_target_positions: usize,
    /// Encoder positions (1500 = 30 s after the stride-2 convolution).
    pub max_source_positions: usize,
}

/// `y = x W^T + b`, with `W^T` materialized at load.
struct Linear {
    wt: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    fn load(w: &dyn WhisperWeights, prefix: &str, dtype: DType, dev: &Device) -> Result<Self> {
        let wt = w
            .get(&format!("{prefix}/weight"), dtype, dev)?
            .t()?
            .contiguous()?;
        let bname = format!("{prefix}/bias");
        let b = if w.has(&bname) {
            Some(w.get(&bname, dtype, dev)?)
        } else {
            None
        };
        Ok(Linear { wt, b })
    }

    /// Splits a fused projection (`[n*d, d]` in the checkpoint) into `n` projections of `d` outputs.
    fn split(self, n: usize) -> Result<Vec<Linear>> {
        let out = self.wt.dim(1)? / n;
        (0..n)
            .map(|i| {
                Ok(Linear {
                    wt: self.wt.narrow(1, i * out, out)?.contiguous()?,
                    b: match &self.b {
                        Some(b) => Some(b.narrow(0, i * out, out)?.contiguous()?),
                        None => None,
                    },
                })
            })
            .collect()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.wt)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `layer_norm/{gamma,beta}`, eps 1e-5 as in Whisper.
struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl LayerNorm {
    fn load(w: &dyn WhisperWeights, prefix: &str, dtype: DType, dev: &Device) -> Result<Self> {
        Ok(LayerNorm {
            gamma: w.get(&format!("{prefix}/gamma"), dtype, dev)?,
            beta: w.get(&format!("{prefix}/beta"), dtype, dev)?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, 1e-5)
    }
}

/// Scaled dot-product attention over `[b, h, t, d]` tensors; returns `[b, tq, h*d]` and, if asked, the weights.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    want_weights: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let dh = q.dim(D::Minus1)?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let w = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = w.matmul(v)?;
    let (b, h, t, d) = out.dims4()?;
    let out = out.transpose(1, 2)?.reshape((b, t, h * d))?;
    Ok((out, want_weights.then_some(w)))
}

/// `[b, t, h*d]` → `[b, h, t, d]`.
fn heads(x: &Tensor, n: usize) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    x.reshape((b, t, n, hd / n))?.transpose(1, 2)?.contiguous()
}

/// `self_attention`: pre-norm, fused q/k/v in `linear_0`, output in `linear_1`.
struct SelfAttention {
    layer_norm: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_heads: usize,
}

impl SelfAttention {
    fn load(
        w: &dyn WhisperWeights,
        prefix: &str,
        n_heads: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let mut qkv = Linear::load(w, &format!("{prefix}/linear_0"), dtype, dev)?
            .split(3)?
            .into_iter();
        let (q, k, v) = (
            qkv.next().expect("q"),
            qkv.next().expect("k"),
            qkv.next().expect("v"),
        );
        Ok(SelfAttention {
            layer_norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), dtype, dev)?,
            q,
            k,
            v,
            out: Linear::load(w, &format!("{prefix}/linear_1"), dtype, dev)?,
            n_heads,
        })
    }

    /// Without a cache (the encoder).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.layer_norm.forward(x)?;
        let q = heads(&self.q.forward(&h)?, self.n_heads)?;
        let k = heads(&self.k.forward(&h)?, self.n_heads)?;
        let v = heads(&self.v.forward(&h)?, self.n_heads)?;
        let (o, _) = attend(&q, &k, &v, None, false)?;
        x + self.out.forward(&o)?
    }

    /// With the decoder's cache: appends this step's keys and values.
    fn forward_cached(
        &self,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.layer_norm.forward(x)?;
        let q = heads(&self.q.forward(&h)?, self.n_heads)?;
        let mut k = heads(&self.k.forward(&h)?, self.n_heads)?;
        let mut v = heads(&self.v.forward(&h)?, self.n_heads)?;
        if let Some((pk, pv)) = cache.as_ref() {
            k = Tensor::cat(&[pk, &k], 2)?;
            v = Tensor::cat(&[pv, &v], 2)?;
        }
        *cache = Some((k.clone(), v.clone()));
        let (o, _) = attend(&q, &k, &v, mask, false)?;
        x + self.out.forward(&o)?
    }
}

/// The decoder's `attention` (cross-attention): `linear_0` queries, fused keys/values in `linear_1`, output in
/// `linear_2`.
struct CrossAttention {
    layer_norm: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    n_heads: usize,
}

impl CrossAttention {
    fn load(
        w: &dyn WhisperWeights,
        prefix: &str,
        n_heads: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let mut kv = Linear::load(w, &format!("{prefix}/linear_1"), dtype, dev)?
            .split(2)?
            .into_iter();
        Ok(CrossAttention {
            layer_norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), dtype, dev)?,
            q: Linear::load(w, &format!("{prefix}/linear_0"), dtype, dev)?,
            k: kv.next().expect("k"),
            v: kv.next().expect("v"),
            out: Linear::load(w, &format!("{prefix}/linear_2"), dtype, dev)?,
            n_heads,
        })
    }

    fn memory(&self, enc: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            heads(&self.k.forward(enc)?, self.n_heads)?,
            heads(&self.v.forward(enc)?, self.n_heads)?,
        ))
    }

    fn forward(
        &self,
        x: &Tensor,
        mem: &(Tensor, Tensor),
        want_weights: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let h = self.layer_norm.forward(x)?;
        let q = heads(&self.q.forward(&h)?, self.n_heads)?;
        let (o, w) = attend(&q, &mem.0, &mem.1, None, want_weights)?;
        Ok(((x + self.out.forward(&o)?)?, w))
    }
}

/// `ffn`: pre-norm, `linear_0` → GELU (erf) → `linear_1`.
struct FeedForward {
    layer_norm: LayerNorm,
    linear_0: Linear,
    linear_1: Linear,
}

impl FeedForward {
    fn load(w: &dyn WhisperWeights, prefix: &str, dtype: DType, dev: &Device) -> Result<Self> {
        Ok(FeedForward {
            layer_norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), dtype, dev)?,
            linear_0: Linear::load(w, &format!("{prefix}/linear_0"), dtype, dev)?,
            linear_1: Linear::load(w, &format!("{prefix}/linear_1"), dtype, dev)?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self
            .linear_0
            .forward(&self.layer_norm.forward(x)?)?
            .gelu_erf()?;
        x + self.linear_1.forward(&h)?
    }
}

struct EncoderLayer {
    self_attention: SelfAttention,
    ffn: FeedForward,
}

/// `encoder/…`
pub struct Encoder {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    position_encodings: Tensor,
    layers: Vec<EncoderLayer>,
    layer_norm: LayerNorm,
    dtype: DType,
}

impl Encoder {
    /// `mel`: `[batch, n_mels, 3000]` → `[batch, 1500, d_model]`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let mel = mel.to_dtype(self.dtype)?;
        let x = mel
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .broadcast_add(&self.conv1_b.unsqueeze(1)?)?
            .gelu_erf()?;
        let x = x
            .conv1d(&self.conv2_w, 1, 2, 1, 1)?
            .broadcast_add(&self.conv2_b.unsqueeze(1)?)?
            .gelu_erf()?;
        let x = x.transpose(1, 2)?;
        let t = x.dim(1)?;
        let mut x = x.broadcast_add(&self.position_encodings.narrow(0, 0, t)?)?;
        for l in &self.layers {
            x = l.self_attention.forward(&x)?;
            x = l.ffn.forward(&x)?;
        }
        self.layer_norm.forward(&x)
    }
}

struct DecoderLayer {
    self_attention: SelfAttention,
    attention: CrossAttention,
    ffn: FeedForward,
}

/// `decoder/…`
pub struct Decoder {
    embeddings: Tensor,
    /// `embeddings^T` for the output projection (`decoder/projection/weight` is an alias of the embeddings).
    projection_t: Tensor,
    position_encodings: Tensor,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
}

/// Per-sequence decoder state: the self-attention cache and the cross-attention memory, per layer.
#[derive(Clone)]
pub struct DecoderState {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    memory: Vec<(Tensor, Tensor)>,
    /// Positions already consumed.
    pub len: usize,
}

impl DecoderState {
    /// Keeps rows `idx` of every batched tensor (beam reordering and pruning).
    pub fn select(&self, idx: &Tensor) -> Result<DecoderState> {
        let sel = |t: &Tensor| t.index_select(idx, 0);
        Ok(DecoderState {
            self_kv: self
                .self_kv
                .iter()
                .map(|c| {
                    c.as_ref()
                        .map(|(k, v)| Ok::<_, candle_core::Error>((sel(k)?, sel(v)?)))
                        .transpose()
                })
                .collect::<Result<_>>()?,
            memory: self
                .memory
                .iter()
                .map(|(k, v)| Ok((sel(k)?, sel(v)?)))
                .collect::<Result<_>>()?,
            len: self.len,
        })
    }

    pub fn batch(&self) -> usize {
        self.memory
            .first()
            .and_then(|(k, _)| k.dim(0).ok())
            .unwrap_or(0)
    }
}

impl Decoder {
    /// A fresh state for an encoder output `[b, 1500, d]`.
    pub fn start(&self, enc: &Tensor) -> Result<DecoderState> {
        Ok(DecoderState {
            self_kv: vec![None; self.layers.len()],
            memory: self
                .layers
                .iter()
                .map(|l| l.attention.memory(enc))
                .collect::<Result<_>>()?,
            len: 0,
        })
    }

    /// Feeds `tokens` `[b, t]` at positions `state.len..`; returns the final hidden states `[b, t, d]` and, if
    /// `attn_layers` is non-empty, the cross-attention weights `[b, h, t, 1500]` of those layers.
    pub fn forward(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        want_cross: bool,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let (_, t) = tokens.dims2()?;
        let pos = self.position_encodings.narrow(0, state.len, t)?;
        let mut x = self
            .embeddings
            .embedding(&tokens.flatten_all()?)?
            .reshape((tokens.dim(0)?, t, ()))?
            .broadcast_add(&pos)?;
        let mask = if t > 1 {
            Some(causal_mask(t, state.len, x.dtype(), x.device())?)
        } else {
            None
        };
        let mut cross = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer
                .self_attention
                .forward_cached(&x, &mut state.self_kv[l], mask.as_ref())?;
            let (y, w) = layer.attention.forward(&x, &state.memory[l], want_cross)?;
            x = y;
            if let Some(w) = w {
                cross.push(w);
            }
            x = layer.ffn.forward(&x)?;
        }
        state.len += t;
        Ok((self.layer_norm.forward(&x)?, cross))
    }

    /// Logits `[.., vocab]` (f32) of hidden states `[.., d]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden
            .broadcast_matmul(&self.projection_t)?
            .to_dtype(DType::F32)
    }
}

/// `[t, past + t]` additive mask: position i sees past positions and itself.
fn causal_mask(t: usize, past: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let total = past + t;
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (t, total), dev)?.to_dtype(dtype)
}

/// The whole model.
pub struct Whisper {
    pub config: Config,
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub device: Device,
    pub dtype: DType,
}

impl Whisper {
    /// Builds the model from CTranslate2-named weights, in `dtype` on `device`.
    pub fn load(w: &dyn WhisperWeights, dtype: DType, device: &Device) -> Result<Self> {
        let dev = device;
        let enc_layers = w.num_layers("encoder");
        let dec_layers = w.num_layers("decoder");
        let enc_heads = w.scalar_i64("encoder/num_heads").unwrap_or(0) as usize;
        let dec_heads = w.scalar_i64("decoder/num_heads").unwrap_or(0) as usize;
        let conv1_w = w.get("encoder/conv1/weight", dtype, dev)?;
        let (d_model, n_mels, _) = conv1_w.dims3()?;
        let embeddings = w.get("decoder/embeddings/weight", dtype, dev)?;
        let projection_t = embeddings.t()?.contiguous()?;
        let dec_pos = w.get("decoder/position_encodings/encodings", dtype, dev)?;
        let enc_pos = w.get("encoder/position_encodings/encodings", dtype, dev)?;
        let config = Config {
            n_mels,
            d_model,
            encoder_heads: if enc_heads > 0 {
                enc_heads
            } else {
                d_model / 64
            },
            decoder_heads: if dec_heads > 0 {
                dec_heads
            } else {
                d_model / 64
            },
            encoder_layers: enc_layers,
            decoder_layers: dec_layers,
            vocab_size: embeddings.dim(0)?,
            max_target_positions: dec_pos.dim(0)?,
            max_source_positions: enc_pos.dim(0)?,
        };
        let encoder = Encoder {
            conv1_w,
            conv1_b: w.get("encoder/conv1/bias", dtype, dev)?,
            conv2_w: w.get("encoder/conv2/weight", dtype, dev)?,
            conv2_b: w.get("encoder/conv2/bias", dtype, dev)?,
            position_encodings: enc_pos,
            layers: (0..enc_layers)
                .map(|i| {
                    let p = format!("encoder/layer_{i}");
                    Ok(EncoderLayer {
                        self_attention: SelfAttention::load(
                            w,
                            &format!("{p}/self_attention"),
                            config.encoder_heads,
                            dtype,
                            dev,
                        )?,
                        ffn: FeedForward::load(w, &format!("{p}/ffn"), dtype, dev)?,
                    })
                })
                .collect::<Result<_>>()?,
            layer_norm: LayerNorm::load(w, "encoder/layer_norm", dtype, dev)?,
            dtype,
        };
        let decoder = Decoder {
            embeddings,
            projection_t,
            position_encodings: dec_pos,
            layers: (0..dec_layers)
                .map(|i| {
                    let p = format!("decoder/layer_{i}");
                    Ok(DecoderLayer {
                        self_attention: SelfAttention::load(
                            w,
                            &format!("{p}/self_attention"),
                            config.decoder_heads,
                            dtype,
                            dev,
                        )?,
                        attention: CrossAttention::load(
                            w,
                            &format!("{p}/attention"),
                            config.decoder_heads,
                            dtype,
                            dev,
                        )?,
                        ffn: FeedForward::load(w, &format!("{p}/ffn"), dtype, dev)?,
                    })
                })
                .collect::<Result<_>>()?,
            layer_norm: LayerNorm::load(w, "decoder/layer_norm", dtype, dev)?,
        };
        Ok(Whisper {
            config,
            encoder,
            decoder,
            device: device.clone(),
            dtype,
        })
    }
}
