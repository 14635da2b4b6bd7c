//! The Whisper network: a convolutional front end and a Transformer encoder over log-mel frames, and a
//! Transformer decoder over tokens with cross-attention to the encoder output.
//!
//! Structs follow CTranslate2's `WhisperSpec` (python/ctranslate2/specs/whisper_spec.py), so every weight is read
//! by the path it has in `model.bin`: `encoder/layer_0/self_attention/linear_0/weight` is
//! `Encoder.layers[0].self_attention.linear[0].weight`. Differences from the reference, all numerically neutral:
//! weights are stored transposed once at load for row-major matmuls; the self-attention of the decoder keeps a
//! KV cache; cross-attention keys and values are computed once per encoder output.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use rayon::prelude::*;

use crate::cpu_ops;
use crate::rowmat::{self, RowMatrix, RowsRef};
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

/// `y = x Wᵀ + b` with `W` kept `[out, in]` as in the checkpoint. Few-row products on CPU (the decoder's
/// per-token steps) go through [`rowmat`], which streams `W` once instead of packing it per call; larger ones
/// through candle's gemm on the transposed view. Int8 weights (decoder steps of an int8 model) are rows only.
struct Linear {
    w: LinearWeight,
    b: Option<Tensor>,
}

enum LinearWeight {
    Dense(Tensor),
    /// Row storage for [`rowmat`]: int8 (int8 models) or float16 (the f32 model's embeddings).
    Rows(RowMatrix),
}

/// Up to this many activation rows, a CPU f32 product takes the row kernel.
const FEW_ROWS: usize = 16;

impl Linear {
    fn load(w: &dyn WhisperWeights, prefix: &str, dtype: DType, dev: &Device) -> Result<Self> {
        let wt = w.get(&format!("{prefix}/weight"), dtype, dev)?;
        let bname = format!("{prefix}/bias");
        let b = if w.has(&bname) {
            Some(w.get(&bname, dtype, dev)?)
        } else {
            None
        };
        Ok(Linear {
            w: LinearWeight::Dense(wt),
            b,
        })
    }

    /// [`Self::load`], with the weight as int8 rows when `int8` (CPU f32 only): quantized straight from the
    /// file when the source can ([`WhisperWeights::rows_int8`]), else from the loaded f32 tensor.
    fn load_steps(
        w: &dyn WhisperWeights,
        prefix: &str,
        dtype: DType,
        dev: &Device,
        int8: bool,
    ) -> Result<Self> {
        if !(int8 && dev.is_cpu() && dtype == DType::F32) {
            return Linear::load(w, prefix, dtype, dev);
        }
        let Some(rows) = w.rows_int8(&format!("{prefix}/weight")) else {
            let mut l = Linear::load(w, prefix, dtype, dev)?;
            l.quantize()?;
            return Ok(l);
        };
        let bname = format!("{prefix}/bias");
        let b = if w.has(&bname) {
            Some(w.get(&bname, dtype, dev)?)
        } else {
            None
        };
        Ok(Linear {
            w: LinearWeight::Rows(rows),
            b,
        })
    }

    /// Splits a fused projection (`[n*d, d]` in the checkpoint) into `n` projections of `d` outputs.
    fn split(self, n: usize) -> Result<Vec<Linear>> {
        let (out, parts) = match self.w {
            LinearWeight::Dense(w) => {
                let out = w.dim(0)? / n;
                let parts = (0..n)
                    .map(|i| {
                        Ok(LinearWeight::Dense(
                            w.narrow(0, i * out, out)?.contiguous()?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                (out, parts)
            }
            LinearWeight::Rows(q) => (
                q.rows() / n,
                q.split_rows(n)
                    .into_iter()
                    .map(LinearWeight::Rows)
                    .collect(),
            ),
        };
        parts
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                Ok(Linear {
                    w,
                    b: match &self.b {
                        Some(b) => Some(b.narrow(0, i * out, out)?.contiguous()?),
                        None => None,
                    },
                })
            })
            .collect()
    }

    /// Replaces an f32 CPU weight by its int8 rows (CTranslate2's per-row scheme).
    fn quantize(&mut self) -> Result<()> {
        if let LinearWeight::Dense(w) = &self.w
            && w.device().is_cpu()
            && w.dtype() == DType::F32
        {
            let (n, k) = w.dims2()?;
            let data = w.flatten_all()?.to_vec1::<f32>()?;
            self.w = LinearWeight::Rows(RowMatrix::quantize_int8(n, k, &data));
        }
        Ok(())
    }
}

/// `x · Wᵀ (+ b)` through the row kernel, for a CPU f32 `x` `[.., k]` against rows `w` `[n, k]`.
fn rows_product(x: &Tensor, w: RowsRef<'_>, n: usize, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = *dims.last().expect("at least one dim");
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let m = xs.len() / k;
    let bias = b.map(|b| b.to_vec1::<f32>()).transpose()?;
    let y = rowmat::matmul(w, n, k, &xs, m, bias.as_deref());
    let mut out_dims = dims;
    *out_dims.last_mut().expect("at least one dim") = n;
    Tensor::from_vec(y, out_dims, x.device())
}

/// The f32 slice behind a contiguous CPU tensor.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if !t.is_contiguous() || t.dtype() != DType::F32 {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>().ok()?;
            let (start, end) = (
                layout.start_offset(),
                layout.start_offset() + t.elem_count(),
            );
            Some(f(&all[start..end]))
        }
        _ => None,
    }
}

/// Rows of activations in `x` (all dims but the last).
fn activation_rows(x: &Tensor) -> usize {
    x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1)
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.w {
            LinearWeight::Rows(q) => rows_product(x, q.as_rows(), q.rows(), self.b.as_ref()),
            LinearWeight::Dense(w) => {
                if x.device().is_cpu() && x.dtype() == DType::F32 && activation_rows(x) <= FEW_ROWS
                {
                    let n = w.dim(0)?;
                    if let Some(y) =
                        with_cpu_f32(w, |s| rows_product(x, RowsRef::F32(s), n, self.b.as_ref()))
                    {
                        return y;
                    }
                }
                let y = x.broadcast_matmul(&w.t()?)?;
                match &self.b {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
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
    // Scaling the queries rather than the scores: `t × d` multiplications instead of `t × s`, and for Whisper's
    // 64-wide heads the scale is 1/8, so the result is bit-identical.
    let scores = (q * (1.0 / (dh as f64).sqrt()))?.matmul(&k.t()?)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let w = cpu_ops::softmax_last_dim(scores)?;
    let out = w.matmul(v)?;
    let (b, h, t, d) = out.dims4()?;
    let out = out.transpose(1, 2)?.reshape((b, t, h * d))?;
    Ok((out, want_weights.then_some(w)))
}

/// Unmasked attention of `[b, t, h*d]` projections through [`crate::attention`] on CPU f32 (the same scaling
/// of the queries as [`attend`]); `None` elsewhere.
fn fused_attention(q: &Tensor, k: &Tensor, v: &Tensor, n_heads: usize) -> Result<Option<Tensor>> {
    if !(q.device().is_cpu() && q.dtype() == DType::F32) {
        return Ok(None);
    }
    let (b, t, hd) = q.dims3()?;
    let s = k.dim(1)?;
    let d = hd / n_heads;
    let q = (q * (1.0 / (d as f64).sqrt()))?;
    let (k, v) = (k.contiguous()?, v.contiguous()?);
    let y = with_cpu_f32(&q, |q| {
        with_cpu_f32(&k, |k| {
            with_cpu_f32(&v, |v| {
                crate::attention::attention(q, k, v, (b, n_heads, t, s, d))
            })
        })
    })
    .flatten()
    .flatten();
    y.map(|y| Tensor::from_vec(y, (b, t, hd), q.device()))
        .transpose()
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
        int8: bool,
    ) -> Result<Self> {
        let mut qkv = Linear::load_steps(w, &format!("{prefix}/linear_0"), dtype, dev, int8)?
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
            out: Linear::load_steps(w, &format!("{prefix}/linear_1"), dtype, dev, int8)?,
            n_heads,
        })
    }

    /// Without a cache (the encoder).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.layer_norm.forward(x)?;
        let (q, k, v) = (
            self.q.forward(&h)?,
            self.k.forward(&h)?,
            self.v.forward(&h)?,
        );
        let o = match fused_attention(&q, &k, &v, self.n_heads)? {
            Some(o) => o,
            None => {
                let n = self.n_heads;
                attend(&heads(&q, n)?, &heads(&k, n)?, &heads(&v, n)?, None, false)?.0
            }
        };
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
        int8: bool,
    ) -> Result<Self> {
        let mut kv = Linear::load(w, &format!("{prefix}/linear_1"), dtype, dev)?
            .split(2)?
            .into_iter();
        Ok(CrossAttention {
            layer_norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), dtype, dev)?,
            q: Linear::load_steps(w, &format!("{prefix}/linear_0"), dtype, dev, int8)?,
            k: kv.next().expect("k"),
            v: kv.next().expect("v"),
            out: Linear::load_steps(w, &format!("{prefix}/linear_2"), dtype, dev, int8)?,
            n_heads,
        })
    }

    /// Keys `[b, h, s, d]` and values stored transposed, `[b, h, d, s]`, so that both products of a decoding
    /// step are row products (see [`cross_attend_rows`]).
    fn memory(&self, enc: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            heads(&self.k.forward(enc)?, self.n_heads)?,
            heads(&self.v.forward(enc)?, self.n_heads)?
                .transpose(2, 3)?
                .contiguous()?,
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
        // The memory holds one entry per audio item, shared by that item's `g` beams (copying it per beam
        // on every reorder was a quarter of beam-search time). Fold the beams into the query length so each
        // item's beams attend in one matmul: `[bm*g, h, t, d]` → `[bm, h, g*t, d]`.
        if let Some((o, w)) = cross_attend_rows(&q, &mem.0, &mem.1, want_weights)? {
            return Ok(((x + self.out.forward(&o)?)?, w));
        }
        let v = mem.1.transpose(2, 3)?;
        let bm = mem.0.dim(0)?;
        let (bq, nh, t, dh) = q.dims4()?;
        let g = bq / bm;
        if g == 1 {
            let (o, w) = attend(&q, &mem.0, &v, None, want_weights)?;
            return Ok(((x + self.out.forward(&o)?)?, w));
        }
        let q = q
            .reshape((bm, g, nh, t, dh))?
            .transpose(1, 2)?
            .reshape((bm, nh, g * t, dh))?;
        let (o, w) = attend(&q, &mem.0, &v, None, want_weights)?;
        // `[bm, g*t, h*d]` is item-major then beam-major: exactly `[bm*g, t, h*d]`.
        let o = o.reshape((bq, t, nh * dh))?;
        let w = match w {
            Some(w) => {
                let s = w.dim(D::Minus1)?;
                Some(
                    w.reshape((bm, nh, g, t, s))?
                        .transpose(1, 2)?
                        .reshape((bq, nh, t, s))?,
                )
            }
            None => None,
        };
        Ok(((x + self.out.forward(&o)?)?, w))
    }
}

/// Cross-attention of a decoding step on CPU f32 through the row kernel: per item and head, the scores are
/// rows of `K` dotted with the queries of all the item's beams, and the output rows of `Vᵀ` dotted with the
/// probabilities; candle's batched gemm would pack `K` and `V` (1500 × 64 per head) on every token. `q` is
/// `[bm*g, h, t, d]`, `k` `[bm, h, s, d]`, `vt` `[bm, h, d, s]`. Returns `None` when not on CPU f32 or for long
/// queries (the prompt), which the gemm handles better.
fn cross_attend_rows(
    q: &Tensor,
    k: &Tensor,
    vt: &Tensor,
    want_weights: bool,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let (bq, nh, t, dh) = q.dims4()?;
    let (bm, _, s, _) = k.dims4()?;
    let g = bq / bm;
    if !q.device().is_cpu() || q.dtype() != DType::F32 || g * t > FEW_ROWS {
        return Ok(None);
    }
    let qv = q.flatten_all()?.to_vec1::<f32>()?;
    let scale = 1.0 / (dh as f32).sqrt();
    let n = g * t;
    // Per (item, head): outputs `[n, dh]` and probabilities `[n, s]`.
    let per_head = with_cpu_f32(k, |ks| {
        with_cpu_f32(vt, |vts| {
            (0..bm * nh)
                .into_par_iter()
                .map(|bh| {
                    let (b, h) = (bh / nh, bh % nh);
                    // The queries of this item's beams for head h, `[g*t, dh]`.
                    let mut x = Vec::with_capacity(n * dh);
                    for gi in 0..g {
                        let off = (((b * g + gi) * nh + h) * t) * dh;
                        x.extend_from_slice(&qv[off..off + t * dh]);
                    }
                    let kh = &ks[bh * s * dh..(bh + 1) * s * dh];
                    let mut p = rowmat::matmul_seq(RowsRef::F32(kh), s, dh, &x, n, None);
                    p.iter_mut().for_each(|v| *v *= scale);
                    cpu_ops::softmax_rows_slice(&mut p, s);
                    let vh = &vts[bh * dh * s..(bh + 1) * dh * s];
                    let o = rowmat::matmul_seq(RowsRef::F32(vh), dh, s, &p, n, None);
                    (o, p)
                })
                .collect::<Vec<_>>()
        })
    })
    .flatten();
    let Some(per_head) = per_head else {
        return Ok(None);
    };
    // Back to `[bq, t, h*dh]` (and weights `[bq, h, t, s]`).
    let mut out = vec![0f32; bq * t * nh * dh];
    let mut weights = want_weights.then(|| vec![0f32; bq * nh * t * s]);
    for (bh, (o, p)) in per_head.iter().enumerate() {
        let (b, h) = (bh / nh, bh % nh);
        for r in 0..n {
            let (gi, ti) = (r / t, r % t);
            let bqi = b * g + gi;
            let dst = ((bqi * t + ti) * nh + h) * dh;
            out[dst..dst + dh].copy_from_slice(&o[r * dh..(r + 1) * dh]);
            if let Some(w) = weights.as_mut() {
                let dst = ((bqi * nh + h) * t + ti) * s;
                w[dst..dst + s].copy_from_slice(&p[r * s..(r + 1) * s]);
            }
        }
    }
    let dev = q.device();
    let out = Tensor::from_vec(out, (bq, t, nh * dh), dev)?;
    let weights = weights
        .map(|w| Tensor::from_vec(w, (bq, nh, t, s), dev))
        .transpose()?;
    Ok(Some((out, weights)))
}

/// `ffn`: pre-norm, `linear_0` → GELU (erf) → `linear_1`.
struct FeedForward {
    layer_norm: LayerNorm,
    linear_0: Linear,
    linear_1: Linear,
}

impl FeedForward {
    fn load(
        w: &dyn WhisperWeights,
        prefix: &str,
        dtype: DType,
        dev: &Device,
        int8: bool,
    ) -> Result<Self> {
        Ok(FeedForward {
            layer_norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), dtype, dev)?,
            linear_0: Linear::load_steps(w, &format!("{prefix}/linear_0"), dtype, dev, int8)?,
            linear_1: Linear::load_steps(w, &format!("{prefix}/linear_1"), dtype, dev, int8)?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = cpu_ops::gelu_erf(self.linear_0.forward(&self.layer_norm.forward(x)?)?)?;
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
        let x = cpu_ops::gelu_erf(
            mel.conv1d(&self.conv1_w, 1, 1, 1, 1)?
                .broadcast_add(&self.conv1_b.unsqueeze(1)?)?,
        )?;
        let x = cpu_ops::gelu_erf(
            x.conv1d(&self.conv2_w, 1, 2, 1, 1)?
                .broadcast_add(&self.conv2_b.unsqueeze(1)?)?,
        )?;
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
    /// `[vocab, d]`: the token embeddings and, tied, the output projection (`decoder/projection/weight` is an
    /// alias of them in CTranslate2 files).
    embeddings: LinearWeight,
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
    /// Keeps rows `idx` of the self-attention cache: beam reordering within one audio item. The cross-attention
    /// memory is per item, not per beam, and stays as it is.
    pub fn select(&self, idx: &Tensor) -> Result<DecoderState> {
        self.select_items(idx, None)
    }

    /// Keeps rows `rows` of the self-attention cache and, when `items` is given, only those audio items'
    /// cross-attention memory: items whose search has ended leave a batched decoding. `rows` must list the
    /// kept items' rows, item by item, the same number for each.
    pub fn select_items(&self, rows: &Tensor, items: Option<&Tensor>) -> Result<DecoderState> {
        let sel = |t: &Tensor| t.index_select(rows, 0);
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
            // Beams of one item share its cross-attention memory (see `CrossAttention::forward`).
            memory: match items {
                None => self.memory.clone(),
                Some(items) => self
                    .memory
                    .iter()
                    .map(|(k, v)| Ok((k.index_select(items, 0)?, v.index_select(items, 0)?)))
                    .collect::<Result<_>>()?,
            },
            len: self.len,
        })
    }

    /// Sequences in flight (beams included).
    pub fn batch(&self) -> usize {
        self.self_kv
            .iter()
            .flatten()
            .next()
            .or(self.memory.first())
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
        let ids = tokens.flatten_all()?;
        let emb = match &self.embeddings {
            LinearWeight::Dense(e) => e.embedding(&ids)?,
            LinearWeight::Rows(q) => {
                let rows: Vec<f32> = ids
                    .to_vec1::<u32>()?
                    .into_iter()
                    .flat_map(|id| q.row(id as usize))
                    .collect();
                Tensor::from_vec(rows, (ids.elem_count(), q.cols()), pos.device())?
            }
        };
        let mut x = emb.reshape((tokens.dim(0)?, t, ()))?.broadcast_add(&pos)?;
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
        let proj = Linear {
            w: match &self.embeddings {
                LinearWeight::Dense(e) => LinearWeight::Dense(e.clone()),
                LinearWeight::Rows(_) => return self.logits_int8(hidden),
            },
            b: None,
        };
        proj.forward(hidden)?.to_dtype(DType::F32)
    }

    fn logits_int8(&self, hidden: &Tensor) -> Result<Tensor> {
        let LinearWeight::Rows(q) = &self.embeddings else {
            unreachable!("called for int8 embeddings")
        };
        let hidden = hidden.to_dtype(DType::F32)?;
        if !q.quantizes_activations() {
            return rows_product(&hidden, q.as_rows(), q.rows(), None);
        }
        // With int8 activations the product is about 3× faster, but their rounding moves every logit a
        // little, and that changed transcripts. The search only looks closely at the best tokens of each row
        // (its top 2 × beam, and the normalizer, which they dominate), so those are recomputed with f32
        // activations: the logits that decide are the weight-only ones, as without this kernel.
        let (n, k) = (q.rows(), q.cols());
        let xs = hidden.flatten_all()?.to_vec1::<f32>()?;
        let mut y = q.matmul(&xs, xs.len() / k, None);
        y.par_chunks_mut(n)
            .zip(xs.par_chunks(k))
            .for_each(|(row, x)| {
                for (i, _) in crate::decode::top_k(row, REFINED_LOGITS) {
                    row[i] = q.dot_row(i, x);
                }
            });
        let mut dims = hidden.dims().to_vec();
        *dims.last_mut().expect("hidden states have a last dim") = n;
        Tensor::from_vec(y, dims, hidden.device())
    }

    /// Replaces the weights used at every decoding step (self-attention, cross-attention queries and output,
    /// feed-forward, embeddings/projection) by int8 rows; the cross-attention keys and values, computed once
    /// per window over 1500 positions, stay f32 for the gemm. CPU f32 models only; a no-op otherwise.
    pub fn quantize_steps(&mut self) -> Result<()> {
        match &self.embeddings {
            LinearWeight::Dense(e) if e.device().is_cpu() && e.dtype() == DType::F32 => {
                let (n, k) = e.dims2()?;
                let data = e.flatten_all()?.to_vec1::<f32>()?;
                self.embeddings = LinearWeight::Rows(
                    RowMatrix::quantize_int8(n, k, &data).with_int8_activations(),
                );
            }
            LinearWeight::Dense(_) => return Ok(()),
            LinearWeight::Rows(q) if !q.is_int8() => {
                self.embeddings = LinearWeight::Rows(q.to_int8().with_int8_activations())
            }
            LinearWeight::Rows(_) => {}
        }
        for l in &mut self.layers {
            for lin in [
                &mut l.self_attention.q,
                &mut l.self_attention.k,
                &mut l.self_attention.v,
                &mut l.self_attention.out,
                &mut l.attention.q,
                &mut l.attention.out,
                &mut l.ffn.linear_0,
                &mut l.ffn.linear_1,
            ] {
                lin.quantize()?;
            }
        }
        Ok(())
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

/// Logits per row that [`Decoder::logits`] recomputes with f32 activations when the output projection
/// quantizes them: the beam's candidates (2 × beam) with a wide margin.
const REFINED_LOGITS: usize = 64;

/// The whole model.
pub struct Whisper {
    pub config: Config,
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub device: Device,
    pub dtype: DType,
    /// `[layer, head]` cross-attention heads whose weights follow the timing (word timestamps): config.json's
    /// `alignment_heads` when the loader finds one, else every head of the decoder's second half.
    pub alignment_heads: Vec<(usize, usize)>,
}

impl Whisper {
    /// Builds the model from CTranslate2-named weights, in `dtype` on `device`.
    pub fn load(w: &dyn WhisperWeights, dtype: DType, device: &Device) -> Result<Self> {
        Self::load_inner(w, dtype, device, false)
    }

    /// [`Self::load`] in f32 with the decoder's per-token weights as int8 rows (what
    /// [`Decoder::quantize_steps`] makes, with the same values), quantized while loading so that no f32 copy
    /// of them is ever held. On a GPU, the same as `load` in f32.
    pub fn load_int8_decoder(w: &dyn WhisperWeights, device: &Device) -> Result<Self> {
        Self::load_inner(w, DType::F32, device, device.is_cpu())
    }

    fn load_inner(
        w: &dyn WhisperWeights,
        dtype: DType,
        device: &Device,
        int8: bool,
    ) -> Result<Self> {
        let dev = device;
        let enc_layers = w.num_layers("encoder");
        let dec_layers = w.num_layers("decoder");
        let enc_heads = w.scalar_i64("encoder/num_heads").unwrap_or(0) as usize;
        let dec_heads = w.scalar_i64("decoder/num_heads").unwrap_or(0) as usize;
        let conv1_w = w.get("encoder/conv1/weight", dtype, dev)?;
        let (d_model, n_mels, _) = conv1_w.dims3()?;
        // The embeddings are also the output projection, the largest product of every decoding step. An f32 CPU
        // model keeps a float16 checkpoint's values as they are (exact in f32; half the memory and load time).
        let emb = "decoder/embeddings/weight";
        let rows = match (dev.is_cpu() && dtype == DType::F32, int8) {
            // Its activations are quantized too (RowMatrix::with_int8_activations).
            (true, true) => w.rows_int8(emb).map(RowMatrix::with_int8_activations),
            (true, false) => w.rows_f16(emb),
            _ => None,
        };
        let embeddings = match rows {
            Some(q) => LinearWeight::Rows(q),
            None => LinearWeight::Dense(w.get(emb, dtype, dev)?),
        };
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
            vocab_size: match &embeddings {
                LinearWeight::Dense(e) => e.dim(0)?,
                LinearWeight::Rows(q) => q.rows(),
            },
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
                            false,
                        )?,
                        ffn: FeedForward::load(w, &format!("{p}/ffn"), dtype, dev, false)?,
                    })
                })
                .collect::<Result<_>>()?,
            layer_norm: LayerNorm::load(w, "encoder/layer_norm", dtype, dev)?,
            dtype,
        };
        let mut decoder = Decoder {
            embeddings,
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
                            int8,
                        )?,
                        attention: CrossAttention::load(
                            w,
                            &format!("{p}/attention"),
                            config.decoder_heads,
                            dtype,
                            dev,
                            int8,
                        )?,
                        ffn: FeedForward::load(w, &format!("{p}/ffn"), dtype, dev, int8)?,
                    })
                })
                .collect::<Result<_>>()?,
            layer_norm: LayerNorm::load(w, "decoder/layer_norm", dtype, dev)?,
        };
        if int8 {
            // Whatever the source could not quantize directly.
            decoder.quantize_steps()?;
        }
        Ok(Whisper {
            alignment_heads: crate::align::default_alignment_heads(
                config.decoder_layers,
                config.decoder_heads,
            ),
            config,
            encoder,
            decoder,
            device: device.clone(),
            dtype,
        })
    }
}
