//! transformers Whisper checkpoints (`model.safetensors` + `config.json`, e.g. `openai/whisper-*`) served
//! under CTranslate2 variable names.
//!
//! The mapping follows CTranslate2's `WhisperLoader` (`python/ctranslate2/converters/transformers.py`, via
//! `BartLoader` and `utils.fuse_linear`): self-attention `linear_0` is `q_proj|k_proj|v_proj` concatenated
//! along the output dimension (with a zero bias for `k_proj`, which has none), cross-attention `linear_0` is
//! `q_proj` and `linear_1` is `k_proj|v_proj`; the output projection is `proj_out` (tied to
//! `decoder.embed_tokens`, which CTranslate2 stores as an alias). Config scalars are synthesized with the
//! values the converter writes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::Deserialize;

use crate::ct2::{Ct2Dtype, Ct2Error, raw_to_tensor};
use crate::weights::WhisperWeights;

/// The parts of a transformers `WhisperConfig` the mapping needs.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    #[serde(default)]
    pub encoder_layers: Option<usize>,
    #[serde(default)]
    pub decoder_layers: Option<usize>,
    #[serde(default)]
    pub d_model: Option<usize>,
}

struct HfTensor {
    file: usize,
    dtype: Ct2Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A transformers Whisper checkpoint: memory-mapped safetensors file(s) and the config.
pub struct HfWhisper {
    files: Vec<(PathBuf, Mmap)>,
    tensors: HashMap<String, HfTensor>,
    /// `"model."` for `WhisperForConditionalGeneration` checkpoints, `""` for bare `WhisperModel` ones.
    prefix: &'static str,
    config: HfConfig,
}

/// Where a CTranslate2 variable comes from.
enum Source {
    /// One HF tensor.
    One(String),
    /// Linear modules (HF prefixes) whose `weight` or `bias` are concatenated along dim 0.
    Fused(Vec<String>, &'static str),
    /// A config scalar.
    Scalar(i64),
}

/// Scalars CTranslate2's WhisperSpec stores besides the heads (values from `TransformerDecoderSpec` as the
/// Whisper converter sets it up).
const DECODER_SCALARS: [(&str, i64); 7] = [
    ("activation", 3), // common_spec.Activation.GELU
    ("alibi", 0),
    ("alignment_heads", 1),
    ("alignment_layer", -1),
    ("pre_norm", 1),
    ("scale_embeddings", 0),
    ("start_from_zero_embedding", 0),
];

fn malformed(path: &Path, what: String) -> Ct2Error {
    Ct2Error::Malformed {
        path: path.to_path_buf(),
        what,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Ct2Error + '_ {
    move |source| Ct2Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl HfWhisper {
    /// Opens `model_dir/model.safetensors` (or the shards listed in `model.safetensors.index.json`) with
    /// `model_dir/config.json`.
    pub fn open(model_dir: &Path) -> Result<Self, Ct2Error> {
        let config = model_dir.join("config.json");
        let single = model_dir.join("model.safetensors");
        if single.is_file() {
            return Self::from_files(&[single], &config);
        }
        let index_path = model_dir.join("model.safetensors.index.json");
        let text = std::fs::read_to_string(&index_path).map_err(io_err(&index_path))?;
        #[derive(Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let index: Index =
            serde_json::from_str(&text).map_err(|e| malformed(&index_path, e.to_string()))?;
        let shards: BTreeSet<&String> = index.weight_map.values().collect();
        let shards: Vec<PathBuf> = shards.into_iter().map(|s| model_dir.join(s)).collect();
        Self::from_files(&shards, &config)
    }

    /// Opens the given safetensors files (one checkpoint, possibly sharded) with the config at `config`.
    pub fn from_files(safetensors: &[PathBuf], config: &Path) -> Result<Self, Ct2Error> {
        let text = std::fs::read_to_string(config).map_err(io_err(config))?;
        let config: HfConfig =
            serde_json::from_str(&text).map_err(|e| malformed(config, format!("config: {e}")))?;
        let mut files = Vec::new();
        let mut tensors = HashMap::new();
        for path in safetensors {
            let file = std::fs::File::open(path).map_err(io_err(path))?;
            // SAFETY: read-only map; the file must not change while open (as for every mmap loader).
            let mmap = unsafe { Mmap::map(&file) }.map_err(io_err(path))?;
            let (header, meta) = SafeTensors::read_metadata(&mmap)
                .map_err(|e| malformed(path, format!("safetensors header: {e}")))?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                let dtype = match info.dtype {
                    StDtype::F32 => Ct2Dtype::F32,
                    StDtype::F16 => Ct2Dtype::F16,
                    StDtype::BF16 => Ct2Dtype::BF16,
                    other => {
                        return Err(malformed(
                            path,
                            format!("unsupported dtype {other:?} for {name}"),
                        ));
                    }
                };
                let (start, end) = (base + info.data_offsets.0, base + info.data_offsets.1);
                if end > mmap.len()
                    || end - start != info.shape.iter().product::<usize>() * dtype.size()
                {
                    return Err(Ct2Error::Truncated {
                        path: path.clone(),
                        at: format!("variable {name}"),
                    });
                }
                let t = HfTensor {
                    file: files.len(),
                    dtype,
                    shape: info.shape.clone(),
                    start,
                    end,
                };
                tensors.insert(name, t);
            }
            files.push((path.clone(), mmap));
        }
        let prefix = if tensors.keys().any(|k| k.starts_with("model.encoder.")) {
            "model."
        } else {
            ""
        };
        Ok(Self {
            files,
            tensors,
            prefix,
            config,
        })
    }

    /// The parsed config.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// Names of the (HF) tensors in the checkpoint.
    pub fn hf_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Every CTranslate2 variable name this checkpoint provides, sorted (including
    /// `decoder/projection/weight`, which a CTranslate2 file holds as an alias).
    pub fn ct2_names(&self) -> Vec<String> {
        let mut names = vec![
            "encoder/num_heads".to_string(),
            "decoder/num_heads".to_string(),
        ];
        names.extend(DECODER_SCALARS.iter().map(|(n, _)| format!("decoder/{n}")));
        let mut candidates = vec![
            "decoder/embeddings/weight".to_string(),
            "decoder/projection/weight".to_string(),
        ];
        candidates.push("decoder/projection/bias".to_string());
        for conv in ["conv1", "conv2"] {
            candidates.extend(["weight", "bias"].map(|l| format!("encoder/{conv}/{l}")));
        }
        for side in ["encoder", "decoder"] {
            candidates.push(format!("{side}/position_encodings/encodings"));
            candidates.extend(["gamma", "beta"].map(|l| format!("{side}/layer_norm/{l}")));
            let blocks: &[(&str, &[&str])] = if side == "encoder" {
                &[
                    ("self_attention", &["linear_0", "linear_1"]),
                    ("ffn", &["linear_0", "linear_1"]),
                ]
            } else {
                &[
                    ("self_attention", &["linear_0", "linear_1"]),
                    ("attention", &["linear_0", "linear_1", "linear_2"]),
                    ("ffn", &["linear_0", "linear_1"]),
                ]
            };
            for i in 0..self.num_layers(side) {
                for (block, linears) in blocks {
                    let b = format!("{side}/layer_{i}/{block}");
                    candidates.extend(["gamma", "beta"].map(|l| format!("{b}/layer_norm/{l}")));
                    for lin in *linears {
                        candidates.extend(["weight", "bias"].map(|l| format!("{b}/{lin}/{l}")));
                    }
                }
            }
        }
        names.extend(candidates.into_iter().filter(|n| self.has(n)));
        names.sort();
        names
    }

    fn map(&self, ct2_name: &str) -> Option<Source> {
        let p = self.prefix;
        let parts: Vec<&str> = ct2_name.split('/').collect();
        let ln = |g: &str| match g {
            "gamma" => Some("weight"),
            "beta" => Some("bias"),
            _ => None,
        };
        let leaf = |l: &str| matches!(l, "weight" | "bias");
        let one = |s: String| Some(Source::One(s));
        match parts.as_slice() {
            ["encoder", "num_heads"] => {
                Some(Source::Scalar(self.config.encoder_attention_heads as i64))
            }
            ["decoder", "num_heads"] => {
                Some(Source::Scalar(self.config.decoder_attention_heads as i64))
            }
            ["decoder", s] => DECODER_SCALARS
                .iter()
                .find(|(n, _)| n == s)
                .map(|&(_, v)| Source::Scalar(v)),
            ["encoder", conv @ ("conv1" | "conv2"), l] if leaf(l) => {
                one(format!("{p}encoder.{conv}.{l}"))
            }
            [
                side @ ("encoder" | "decoder"),
                "position_encodings",
                "encodings",
            ] => one(format!("{p}{side}.embed_positions.weight")),
            [side @ ("encoder" | "decoder"), "layer_norm", g] => {
                one(format!("{p}{side}.layer_norm.{}", ln(g)?))
            }
            ["decoder", "embeddings", "weight"] => one(format!("{p}decoder.embed_tokens.weight")),
            ["decoder", "projection", "weight"] if self.tensors.contains_key("proj_out.weight") => {
                one("proj_out.weight".into())
            }
            ["decoder", "projection", "weight"] => one(format!("{p}decoder.embed_tokens.weight")),
            ["decoder", "projection", "bias"] => one("proj_out.bias".into()),
            [side @ ("encoder" | "decoder"), layer, block, rest @ ..] => {
                let i: usize = layer.strip_prefix("layer_")?.parse().ok()?;
                let l = format!("{p}{side}.layers.{i}");
                let fused = |mods: &[&str], lf: &str| {
                    let lf = if lf == "weight" { "weight" } else { "bias" };
                    Some(Source::Fused(
                        mods.iter().map(|m| format!("{l}.{m}")).collect(),
                        lf,
                    ))
                };
                match (*block, rest) {
                    ("self_attention", ["layer_norm", g]) => {
                        one(format!("{l}.self_attn_layer_norm.{}", ln(g)?))
                    }
                    ("self_attention", ["linear_0", lf]) if leaf(lf) => fused(
                        &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                        lf,
                    ),
                    ("self_attention", ["linear_1", lf]) if leaf(lf) => {
                        one(format!("{l}.self_attn.out_proj.{lf}"))
                    }
                    ("attention", ["layer_norm", g]) if *side == "decoder" => {
                        one(format!("{l}.encoder_attn_layer_norm.{}", ln(g)?))
                    }
                    ("attention", ["linear_0", lf]) if *side == "decoder" && leaf(lf) => {
                        fused(&["encoder_attn.q_proj"], lf)
                    }
                    ("attention", ["linear_1", lf]) if *side == "decoder" && leaf(lf) => {
                        fused(&["encoder_attn.k_proj", "encoder_attn.v_proj"], lf)
                    }
                    ("attention", ["linear_2", lf]) if *side == "decoder" && leaf(lf) => {
                        one(format!("{l}.encoder_attn.out_proj.{lf}"))
                    }
                    ("ffn", ["layer_norm", g]) => one(format!("{l}.final_layer_norm.{}", ln(g)?)),
                    ("ffn", ["linear_0", lf]) if leaf(lf) => one(format!("{l}.fc1.{lf}")),
                    ("ffn", ["linear_1", lf]) if leaf(lf) => one(format!("{l}.fc2.{lf}")),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn tensor_of(
        &self,
        hf_name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self
            .tensors
            .get(hf_name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing {hf_name}")))?;
        let data = &self.files[t.file].1[t.start..t.end];
        raw_to_tensor(data, t.dtype, &t.shape, dtype, device)
    }

    fn error(&self, name: &str, source: candle_core::Error) -> candle_core::Error {
        let path = self.files.first().map(|f| f.0.clone()).unwrap_or_default();
        candle_core::Error::wrap(Ct2Error::Tensor {
            path,
            name: name.to_string(),
            source: Box::new(source),
        })
    }
}

impl WhisperWeights for HfWhisper {
    fn get(&self, ct2_name: &str, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        if !self.has(ct2_name) {
            let path = self.files.first().map(|f| f.0.clone()).unwrap_or_default();
            return Err(candle_core::Error::wrap(Ct2Error::Missing {
                path,
                name: ct2_name.to_string(),
            }));
        }
        let result = match self.map(ct2_name) {
            Some(Source::One(n)) => self.tensor_of(&n, dtype, device),
            Some(Source::Scalar(v)) => Tensor::new(v, device).and_then(|t| t.to_dtype(dtype)),
            Some(Source::Fused(mods, lf)) => (|| {
                let mut parts = Vec::with_capacity(mods.len());
                for m in &mods {
                    let name = format!("{m}.{lf}");
                    if self.tensors.contains_key(&name) {
                        parts.push(self.tensor_of(&name, dtype, device)?);
                    } else {
                        // fuse_linear: a missing bias (k_proj) is zeros of the layer's output size.
                        let rows = self.tensors[&format!("{m}.weight")].shape[0];
                        parts.push(Tensor::zeros(rows, dtype, device)?);
                    }
                }
                if parts.len() == 1 {
                    Ok(parts.remove(0))
                } else {
                    Tensor::cat(&parts, 0)
                }
            })(),
            None => unreachable!("has() checked the mapping"),
        };
        result.map_err(|e| self.error(ct2_name, e))
    }

    fn has(&self, ct2_name: &str) -> bool {
        match self.map(ct2_name) {
            None => false,
            Some(Source::Scalar(_)) => true,
            Some(Source::One(n)) => self.tensors.contains_key(&n),
            Some(Source::Fused(mods, lf)) => {
                mods.iter()
                    .all(|m| self.tensors.contains_key(&format!("{m}.weight")))
                    && mods
                        .iter()
                        .any(|m| self.tensors.contains_key(&format!("{m}.{lf}")))
            }
        }
    }

    fn num_layers(&self, prefix: &str) -> usize {
        let configured = match prefix {
            "encoder" => self.config.encoder_layers,
            "decoder" => self.config.decoder_layers,
            _ => None,
        };
        configured.unwrap_or_else(|| {
            let layers = format!("{}{prefix}.layers.", self.prefix);
            let index = |k: &str| {
                k.strip_prefix(&layers)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            };
            self.tensors
                .keys()
                .filter_map(|k| index(k))
                .map(|i| i + 1)
                .max()
                .unwrap_or(0)
        })
    }
}
