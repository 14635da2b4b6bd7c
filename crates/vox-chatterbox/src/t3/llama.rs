//! The T3 backbone: `transformers.LlamaModel` driven by `inputs_embeds` (reference:
//! `LLAMA_520M_CONFIG_DICT`), with a KV cache and llama3-scaled RoPE.
//!
//! Weight paths mirror the checkpoint (`tfmr.layers.{i}.self_attn.q_proj.weight`, ...), one struct
//! field per tensor.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, kv_cache::KvCache};

use super::linear::FastLinear as Linear;

use super::config::LlamaConfig;

/// llama3 inverse frequencies, computed in f32 in the reference's order
/// (`transformers.modeling_rope_utils._compute_llama3_parameters`).
pub fn llama3_inv_freq(cfg: &LlamaConfig) -> Vec<f32> {
    let dim = cfg.head_dim;
    let rs = &cfg.rope_scaling;
    let base = cfg.rope_theta as f32;
    let factor = rs.factor as f32;
    let (low, high) = (rs.low_freq_factor as f32, rs.high_freq_factor as f32);
    let old_ctx = rs.original_max_position_embeddings as f32;
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    (0..dim)
        .step_by(2)
        .map(|i| {
            let inv = 1.0f32 / base.powf(i as f32 / dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / inv;
            let scaled = if wavelen > low_wavelen {
                inv / factor
            } else {
                inv
            };
            // Wavelengths are finite here, so `>=`/`<=` equal the reference's negated `<`/`>`.
            let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
            if medium {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                (1.0 - smooth) * scaled / factor + smooth * scaled
            } else {
                scaled
            }
        })
        .collect()
}

/// `LlamaRMSNorm`: normalise in f32, scale in the compute dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps: eps as f32,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let var = x32.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x32.broadcast_div(&(var + self.eps as f64)?.sqrt()?)?;
        normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

fn linear(vb: &VarBuilder, name: &str, out: usize, inp: usize) -> Result<Linear> {
    Ok(Linear::new(vb.pp(name).get((out, inp), "weight")?))
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    attn: Attention,
    mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

/// Per-sequence state of the backbone: one KV cache per layer.
#[derive(Debug, Clone)]
pub struct LlamaCache {
    kv: Vec<KvCache>,
}

impl LlamaCache {
    /// An empty cache; `capacity` positions are allocated up front and it grows past them.
    pub fn new(layers: usize, capacity: usize) -> Self {
        Self {
            kv: (0..layers)
                .map(|_| KvCache::new(2, capacity.max(1)))
                .collect(),
        }
    }

    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.kv.first().map_or(0, |c| c.current_seq_len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `LlamaModel` without its (unused) token embedding in the forward path.
#[derive(Debug, Clone)]
pub struct Llama {
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    inv_freq: Vec<f32>,
    cfg: LlamaConfig,
}

impl Llama {
    /// Loads `tfmr.*` (pass `vb.pp("tfmr")`).
    pub fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        // Present in the checkpoint, never used: inputs are always `inputs_embeds`.
        vb.pp("embed_tokens").get((cfg.vocab_size, h), "weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let vb = vb.pp("layers").pp(i);
            let sa = vb.pp("self_attn");
            let attn = Attention {
                q_proj: linear(&sa, "q_proj", nh * hd, h)?,
                k_proj: linear(&sa, "k_proj", nkv * hd, h)?,
                v_proj: linear(&sa, "v_proj", nkv * hd, h)?,
                o_proj: linear(&sa, "o_proj", h, nh * hd)?,
                heads: nh,
                kv_heads: nkv,
                head_dim: hd,
            };
            let m = vb.pp("mlp");
            let inter = cfg.intermediate_size;
            let mlp = Mlp {
                gate_proj: linear(&m, "gate_proj", inter, h)?,
                up_proj: linear(&m, "up_proj", inter, h)?,
                down_proj: linear(&m, "down_proj", h, inter)?,
            };
            layers.push(DecoderLayer {
                attn,
                mlp,
                input_layernorm: RmsNorm::load(vb.pp("input_layernorm"), h, cfg.rms_norm_eps)?,
                post_attention_layernorm: RmsNorm::load(
                    vb.pp("post_attention_layernorm"),
                    h,
                    cfg.rms_norm_eps,
                )?,
            });
        }
        Ok(Self {
            layers,
            norm: RmsNorm::load(vb.pp("norm"), h, cfg.rms_norm_eps)?,
            inv_freq: llama3_inv_freq(cfg),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// A cache sized for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> LlamaCache {
        LlamaCache::new(self.layers.len(), capacity)
    }

    /// Runs `x` (B, L, H) at positions `cache.len()..cache.len()+L` and returns the final-normed
    /// hidden states (B, L, H) (what the reference's `hidden_states[-1]` holds). With `trace`,
    /// every layer's output is pushed to it, then the normed output.
    pub fn forward(
        &self,
        x: &Tensor,
        cache: &mut LlamaCache,
        mut trace: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (_, l, _) = x.dims3()?;
        let offset = cache.len();
        let (cos, sin) = self.rope(offset, l, x.dtype(), x.device())?;
        let mask = if l > 1 {
            Some(causal_mask(l, offset, x.dtype(), x.device())?)
        } else {
            None
        };
        let mut h = x.clone();
        for (layer, kv) in self.layers.iter().zip(cache.kv.iter_mut()) {
            h = layer.forward(&h, &cos, &sin, mask.as_ref(), kv)?;
            if let Some(t) = trace.as_deref_mut() {
                t.push(h.clone());
            }
        }
        let out = self.norm.forward(&h)?;
        if let Some(t) = trace {
            t.push(out.clone());
        }
        Ok(out)
    }

    fn rope(
        &self,
        offset: usize,
        l: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(l * half);
        let mut sin = Vec::with_capacity(l * half);
        for p in offset..offset + l {
            for &f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (l, half), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (l, half), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

fn causal_mask(l: usize, offset: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let total = offset + l;
    let m: Vec<f32> = (0..l)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > i + offset {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(m, (l, total), dev)?.to_dtype(dtype)
}

impl DecoderLayer {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: &mut KvCache,
    ) -> Result<Tensor> {
        let a = self
            .attn
            .forward(&self.input_layernorm.forward(x)?, cos, sin, mask, kv)?;
        let x = (x + a)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        x + m
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let heads = |proj: &Linear, n: usize| -> Result<Tensor> {
            proj.forward(x)?
                .reshape((b, l, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = candle_nn::rotary_emb::rope(&heads(&self.q_proj, nh)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&heads(&self.k_proj, nkv)?, cos, sin)?;
        let v = heads(&self.v_proj, nkv)?;
        let (k, v) = kv.append(&k, &v)?;
        let (k, v) = if nkv != nh {
            let rep = nh / nkv;
            (repeat_kv(&k, rep)?, repeat_kv(&v, rep)?)
        } else {
            (k, v)
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, l, nh * hd))?;
        self.o_proj.forward(&out)
    }
}

fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    let (b, n, l, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, n, rep, l, d))?
        .reshape((b, n * rep, l, d))
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(x)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}
