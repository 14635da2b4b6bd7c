//! transformers Whisper safetensors served under CTranslate2 names, fused as the CTranslate2 converter fuses.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use vox_whisper::ct2::{Ct2Dtype, Ct2Model, Ct2Writer};
use vox_whisper::hf::HfWhisper;
use vox_whisper::weights::{WhisperWeights, open_weights};

const D: usize = 8;
const FFN: usize = 16;
const LAYERS: usize = 2;

struct Rng(u64);
impl Rng {
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// A 2-layer, d_model 8 Whisper in transformers naming (`WhisperForConditionalGeneration`, tied `proj_out`).
fn synthetic(dir: &Path, dtype: DType) -> HashMap<String, Tensor> {
    let mut rng = Rng(42);
    let mut t = HashMap::new();
    let mut put = |name: String, shape: &[usize]| {
        t.insert(name, rng.tensor(shape).to_dtype(dtype).unwrap());
    };
    put("model.encoder.conv1.weight".into(), &[D, 4, 3]);
    put("model.encoder.conv1.bias".into(), &[D]);
    put("model.encoder.conv2.weight".into(), &[D, D, 3]);
    put("model.encoder.conv2.bias".into(), &[D]);
    put("model.encoder.embed_positions.weight".into(), &[12, D]);
    put("model.decoder.embed_positions.weight".into(), &[6, D]);
    put("model.decoder.embed_tokens.weight".into(), &[20, D]);
    for side in ["encoder", "decoder"] {
        put(format!("model.{side}.layer_norm.weight"), &[D]);
        put(format!("model.{side}.layer_norm.bias"), &[D]);
        for i in 0..LAYERS {
            let l = format!("model.{side}.layers.{i}");
            let attns: &[&str] = if side == "decoder" {
                &["self_attn", "encoder_attn"]
            } else {
                &["self_attn"]
            };
            for a in attns {
                for p in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                    put(format!("{l}.{a}.{p}.weight"), &[D, D]);
                    if p != "k_proj" {
                        put(format!("{l}.{a}.{p}.bias"), &[D]);
                    }
                }
                put(format!("{l}.{a}_layer_norm.weight"), &[D]);
                put(format!("{l}.{a}_layer_norm.bias"), &[D]);
            }
            put(format!("{l}.fc1.weight"), &[FFN, D]);
            put(format!("{l}.fc1.bias"), &[FFN]);
            put(format!("{l}.fc2.weight"), &[D, FFN]);
            put(format!("{l}.fc2.bias"), &[D]);
            put(format!("{l}.final_layer_norm.weight"), &[D]);
            put(format!("{l}.final_layer_norm.bias"), &[D]);
        }
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "architectures": ["WhisperForConditionalGeneration"],
        "d_model": D, "encoder_layers": LAYERS, "decoder_layers": LAYERS,
        "encoder_attention_heads": 2, "decoder_attention_heads": 2, "num_mel_bins": 4, "vocab_size": 20,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    t
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn cat(parts: &[&Tensor]) -> Vec<f32> {
    values(&Tensor::cat(parts, 0).unwrap())
}

#[test]
fn fuses_like_the_ctranslate2_converter() {
    let dir = tempfile::tempdir().unwrap();
    let src = synthetic(dir.path(), DType::F32);
    let hf = HfWhisper::open(dir.path()).unwrap();
    let cpu = Device::Cpu;
    let get = |n: &str| values(&hf.get(n, DType::F32, &cpu).unwrap());
    let s = |n: &str| &src[n];
    let zeros = Tensor::zeros(D, DType::F32, &cpu).unwrap();

    assert_eq!(
        (hf.num_layers("encoder"), hf.num_layers("decoder")),
        (LAYERS, LAYERS)
    );
    assert_eq!(hf.scalar_i64("encoder/num_heads"), Some(2));
    assert_eq!(hf.scalar_i64("decoder/num_heads"), Some(2));
    assert_eq!(hf.scalar_i64("decoder/activation"), Some(3));
    assert_eq!(hf.scalar_i64("decoder/alignment_layer"), Some(-1));
    assert_eq!(
        hf.get("decoder/num_heads", DType::F32, &cpu)
            .unwrap()
            .rank(),
        0
    );

    for i in 0..LAYERS {
        for side in ["encoder", "decoder"] {
            let l = format!("model.{side}.layers.{i}");
            let c = format!("{side}/layer_{i}");
            let sa = |p: &str| s(&format!("{l}.self_attn.{p}"));
            assert_eq!(
                get(&format!("{c}/self_attention/linear_0/weight")),
                cat(&[
                    sa("q_proj.weight"),
                    sa("k_proj.weight"),
                    sa("v_proj.weight")
                ])
            );
            assert_eq!(
                get(&format!("{c}/self_attention/linear_0/bias")),
                cat(&[sa("q_proj.bias"), &zeros, sa("v_proj.bias")])
            );
            assert_eq!(
                get(&format!("{c}/self_attention/linear_1/weight")),
                values(sa("out_proj.weight"))
            );
            assert_eq!(
                get(&format!("{c}/self_attention/linear_1/bias")),
                values(sa("out_proj.bias"))
            );
            assert_eq!(
                get(&format!("{c}/self_attention/layer_norm/gamma")),
                values(s(&format!("{l}.self_attn_layer_norm.weight")))
            );
            assert_eq!(
                get(&format!("{c}/ffn/linear_0/weight")),
                values(s(&format!("{l}.fc1.weight")))
            );
            assert_eq!(
                get(&format!("{c}/ffn/linear_1/bias")),
                values(s(&format!("{l}.fc2.bias")))
            );
            assert_eq!(
                get(&format!("{c}/ffn/layer_norm/beta")),
                values(s(&format!("{l}.final_layer_norm.bias")))
            );
        }
        let l = format!("model.decoder.layers.{i}");
        let c = format!("decoder/layer_{i}/attention");
        let ca = |p: &str| s(&format!("{l}.encoder_attn.{p}"));
        assert_eq!(
            get(&format!("{c}/linear_0/weight")),
            values(ca("q_proj.weight"))
        );
        assert_eq!(
            get(&format!("{c}/linear_0/bias")),
            values(ca("q_proj.bias"))
        );
        assert_eq!(
            get(&format!("{c}/linear_1/weight")),
            cat(&[ca("k_proj.weight"), ca("v_proj.weight")])
        );
        assert_eq!(
            get(&format!("{c}/linear_1/bias")),
            cat(&[&zeros, ca("v_proj.bias")])
        );
        assert_eq!(
            get(&format!("{c}/linear_2/weight")),
            values(ca("out_proj.weight"))
        );
        assert_eq!(
            get(&format!("{c}/layer_norm/gamma")),
            values(s(&format!("{l}.encoder_attn_layer_norm.weight")))
        );
        assert!(!hf.has(&format!("encoder/layer_{i}/attention/linear_0/weight")));
    }
    assert_eq!(
        get("encoder/conv1/weight"),
        values(s("model.encoder.conv1.weight"))
    );
    assert_eq!(
        hf.get("encoder/conv2/weight", DType::F32, &cpu)
            .unwrap()
            .dims(),
        &[D, D, 3]
    );
    assert_eq!(
        get("encoder/position_encodings/encodings"),
        values(s("model.encoder.embed_positions.weight"))
    );
    assert_eq!(
        get("decoder/position_encodings/encodings"),
        values(s("model.decoder.embed_positions.weight"))
    );
    assert_eq!(
        get("decoder/layer_norm/gamma"),
        values(s("model.decoder.layer_norm.weight"))
    );
    assert_eq!(
        get("decoder/embeddings/weight"),
        values(s("model.decoder.embed_tokens.weight"))
    );
    assert_eq!(
        get("decoder/projection/weight"),
        values(s("model.decoder.embed_tokens.weight"))
    );
    assert!(!hf.has("decoder/projection/bias") && !hf.has("decoder/layer_9/ffn/linear_0/weight"));
    let err = hf
        .get("decoder/nothing", DType::F32, &cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing variable decoder/nothing"), "{err}");

    // Everything the converter would write: 9 scalars, 2 + 2 conv, 2 x 3 per side, embeddings + projection,
    // 12 per encoder layer and 20 per decoder layer.
    let names = hf.ct2_names();
    assert_eq!(names.len(), 9 + 4 + 6 + 2 + 12 * LAYERS + 20 * LAYERS);
    for n in &names {
        hf.get(n, DType::F16, &cpu).unwrap();
    }

    // Dispatch by directory contents.
    let w = open_weights(dir.path()).unwrap();
    assert!(w.as_ct2().is_none() && w.has("encoder/layer_1/self_attention/linear_0/bias"));
}

/// The same weights written as a CTranslate2 file (as the converter would, with the projection aliased) read
/// back identically through both sources, in f16 too.
#[test]
fn hf_and_ct2_sources_agree() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path(), DType::F16);
    let hf = HfWhisper::open(dir.path()).unwrap();
    let mut w = Ct2Writer::new("WhisperSpec", 3);
    for n in hf.ct2_names() {
        if n == "decoder/projection/weight" {
            w.add_alias(&n, "decoder/embeddings/weight");
            continue;
        }
        let t = hf.get(&n, DType::F16, &Device::Cpu).unwrap();
        if t.rank() == 0 {
            let v = hf.scalar_i64(&n).unwrap() as i16;
            w.add(&n, &[], Ct2Dtype::I16, bytemuck::cast_slice(&[v]));
        } else {
            let v = t.flatten_all().unwrap().to_vec1::<half::f16>().unwrap();
            w.add(&n, t.dims(), Ct2Dtype::F16, bytemuck::cast_slice(&v));
        }
    }
    let bin = dir.path().join("model.bin");
    w.write(&bin).unwrap();
    let ct2 = Ct2Model::open(&bin).unwrap();
    for n in hf.ct2_names() {
        assert!(WhisperWeights::has(&ct2, &n), "{n}");
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let a = hf.get(&n, dtype, &Device::Cpu).unwrap();
            let b = ct2.get(&n, dtype, &Device::Cpu).unwrap();
            assert_eq!((a.dims(), a.dtype()), (b.dims(), b.dtype()), "{n}");
            assert_eq!(values(&a), values(&b), "{n}");
        }
    }
    assert_eq!(ct2.num_layers("decoder"), hf.num_layers("decoder"));
}

#[test]
fn separate_proj_out_and_bare_model_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(1);
    let mut t = HashMap::new();
    t.insert(
        "encoder.layers.0.fc1.weight".to_string(),
        rng.tensor(&[FFN, D]),
    );
    t.insert(
        "decoder.embed_tokens.weight".to_string(),
        rng.tensor(&[20, D]),
    );
    t.insert(
        "decoder.layers.2.fc1.weight".to_string(),
        rng.tensor(&[FFN, D]),
    );
    t.insert("proj_out.weight".to_string(), rng.tensor(&[20, D]));
    let st = dir.path().join("weights.safetensors");
    candle_core::safetensors::save(&t, &st).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"encoder_attention_heads": 3, "decoder_attention_heads": 4}"#,
    )
    .unwrap();
    let w = open_weights(&st).unwrap();
    assert_eq!((w.num_layers("encoder"), w.num_layers("decoder")), (1, 3));
    assert_eq!(w.scalar_i64("decoder/num_heads"), Some(4));
    let get = |n: &str| values(&w.get(n, DType::F32, &Device::Cpu).unwrap());
    assert_eq!(
        get("decoder/projection/weight"),
        values(&t["proj_out.weight"])
    );
    assert_eq!(
        get("decoder/embeddings/weight"),
        values(&t["decoder.embed_tokens.weight"])
    );
    assert_eq!(
        get("encoder/layer_0/ffn/linear_0/weight"),
        values(&t["encoder.layers.0.fc1.weight"])
    );
}
