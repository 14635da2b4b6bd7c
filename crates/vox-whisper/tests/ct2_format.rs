//! CTranslate2 `model.bin` format: round trips through `Ct2Writer` / `Ct2Model`, malformed files, `quantize_int8`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use vox_whisper::ct2::{Ct2Dtype, Ct2Error, Ct2Model, Ct2Writer, quantize_int8};
use vox_whisper::weights::open_weights;

fn bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn to_f32(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Deterministic pseudo-random floats in [-1, 1).
fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

const F32S: [f32; 6] = [0.5, -1.25, 3.0, 1e-8, -65504.0, 7.0];
const I8S: [i8; 12] = [1, -2, 3, 127, -127, 0, 5, 6, 7, -8, 9, 10];
const I8_SCALES: [f32; 3] = [127.0, 63.5, 0.1];
const I16S: [i16; 4] = [1024, -512, 3, 32767];

fn sample_writer() -> Ct2Writer {
    let mut w = Ct2Writer::new("TestSpec", 7);
    w.add("a/f32", &[2, 3], Ct2Dtype::F32, bytes(&F32S));
    let h: Vec<f16> = F32S.iter().map(|&x| f16::from_f32(x)).collect();
    w.add("a/f16", &[3, 2], Ct2Dtype::F16, bytes(&h));
    let b: Vec<bf16> = F32S[..4].iter().map(|&x| bf16::from_f32(x)).collect();
    w.add("a/bf16x", &[4], Ct2Dtype::BF16, bytes(&b));
    w.add("l/weight", &[3, 4], Ct2Dtype::I8, bytes(&I8S));
    w.add("l/weight_scale", &[3], Ct2Dtype::F32, bytes(&I8_SCALES));
    w.add("m/weight", &[2, 2], Ct2Dtype::I16, bytes(&I16S));
    w.add("m/weight_scale", &[], Ct2Dtype::F32, bytes(&[512.0f32]));
    w.add("n/weight", &[4], Ct2Dtype::I16, bytes(&I16S)); // no scale: CTranslate2's global 1000
    w.add("x/count", &[], Ct2Dtype::I32, bytes(&[-70000i32]));
    w.add("x/flag", &[], Ct2Dtype::I8, bytes(&[-1i8]));
    w.add("x/num_heads", &[], Ct2Dtype::I16, bytes(&[6i16]));
    w.add("x/ratio", &[], Ct2Dtype::F32, bytes(&[0.25f32]));
    w.add_alias("b/weight", "l/weight");
    w
}

fn write_sample(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("model.bin");
    sample_writer().write(&path).unwrap();
    path
}

#[test]
fn round_trips_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let m = Ct2Model::open(&write_sample(dir.path())).unwrap();
    let cpu = Device::Cpu;
    assert_eq!(
        (m.spec(), m.revision(), m.binary_version()),
        ("TestSpec", 7, 6)
    );

    let f = m.tensor("a/f32", DType::F32, &cpu).unwrap();
    assert_eq!(f.dims(), &[2, 3]);
    assert_eq!(to_f32(&f), F32S);
    let as_f16 = m.tensor("a/f32", DType::F16, &cpu).unwrap();
    assert_eq!(as_f16.dtype(), DType::F16);
    let want: Vec<f32> = F32S.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    assert_eq!(to_f32(&as_f16), want);
    assert_eq!(to_f32(&m.tensor("a/f16", DType::F32, &cpu).unwrap()), want);
    assert_eq!(m.tensor("a/f16", DType::F16, &cpu).unwrap().dims(), &[3, 2]);
    let bf = m.tensor("a/bf16x", DType::BF16, &cpu).unwrap();
    assert_eq!(bf.dtype(), DType::BF16);
    let want_bf: Vec<f32> = F32S[..4]
        .iter()
        .map(|&x| bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(to_f32(&bf), want_bf);
    assert_eq!(
        to_f32(&m.tensor("a/bf16x", DType::F32, &cpu).unwrap()),
        want_bf
    );

    // int8: value = int8 / scale[row] (computed as CTranslate2 does, int8 * (1 / scale): within an ulp).
    let q = to_f32(&m.tensor("l/weight", DType::F32, &cpu).unwrap());
    for (i, (&got, &qi)) in q.iter().zip(&I8S).enumerate() {
        let want = qi as f32 / I8_SCALES[i / 4];
        assert!(
            (got - want).abs() <= want.abs() * 1e-6,
            "{i}: {got} vs {want}"
        );
    }
    let (qd, sc, shape) = m.int8_weight("l/weight").unwrap();
    assert_eq!((qd, sc, shape), (&I8S[..], &I8_SCALES[..], vec![3, 4]));
    // int16 with a scalar scale, and without one.
    let q16 = to_f32(&m.tensor("m/weight", DType::F32, &cpu).unwrap());
    assert_eq!(q16, I16S.map(|v| v as f32 / 512.0));
    let n16 = to_f32(&m.tensor("n/weight", DType::F32, &cpu).unwrap());
    for (got, v) in n16.iter().zip(I16S) {
        assert!((got - v as f32 / 1000.0).abs() <= 1e-6 * got.abs().max(1.0));
    }
    assert!(m.int8_weight("m/weight").is_none());

    // Integer scalars.
    assert_eq!(m.scalar_i64("x/count"), Some(-70000));
    assert_eq!(m.scalar_i64("x/flag"), Some(-1));
    assert_eq!(m.scalar_i64("x/num_heads"), Some(6));
    assert_eq!(m.scalar_i64("x/ratio"), None);
    assert_eq!(m.scalar_f32("x/ratio"), Some(0.25));
    assert_eq!(m.scalar_f32("x/num_heads"), Some(6.0));
    let t = m.tensor("x/count", DType::I64, &cpu).unwrap();
    assert_eq!(t.rank(), 0);
    assert_eq!(t.to_scalar::<i64>().unwrap(), -70000);
    assert_eq!(
        m.tensor("x/num_heads", DType::F32, &cpu)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        6.0
    );

    // Aliases, including the implicit `_scale` alias.
    let names: Vec<&str> = m.names().collect();
    assert!(names.contains(&"b/weight") && names.contains(&"l/weight") && names.len() == 13);
    assert_eq!(m.var("b/weight").unwrap().shape, vec![3, 4]);
    assert_eq!(m.target_name("b/weight"), Some("l/weight"));
    assert_eq!(m.bytes("b/weight"), m.bytes("l/weight"));
    assert_eq!(m.var("b/weight_scale").unwrap().shape, vec![3]);
    assert_eq!(to_f32(&m.tensor("b/weight", DType::F32, &cpu).unwrap()), q);
    assert_eq!(m.int8_weight("b/weight").unwrap().1, &I8_SCALES);
    assert!(m.var("nope").is_none() && m.bytes("nope").is_none());
}

#[test]
fn whisper_weights_over_ct2() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Ct2Writer::new("WhisperSpec", 3);
    for name in [
        "encoder/layer_0/ffn/linear_0/bias",
        "encoder/layer_2/ffn/linear_0/bias",
        "decoder/layer_0/x",
    ] {
        w.add(name, &[1], Ct2Dtype::F32, bytes(&[1.0f32]));
    }
    w.add("decoder/num_heads", &[], Ct2Dtype::I16, bytes(&[6i16]));
    w.write(&dir.path().join("model.bin")).unwrap();
    let weights = open_weights(dir.path()).unwrap();
    assert_eq!(weights.num_layers("encoder"), 3);
    assert_eq!(weights.num_layers("decoder"), 1);
    assert!(weights.has("decoder/layer_0/x") && !weights.has("decoder/layer_1/x"));
    assert_eq!(weights.scalar_i64("decoder/num_heads"), Some(6));
    assert!(weights.as_ct2().is_some());
    let err = weights
        .get("decoder/missing", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing variable decoder/missing"), "{err}");
    // The file itself works too.
    assert!(
        open_weights(&dir.path().join("model.bin"))
            .unwrap()
            .has("decoder/num_heads")
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        open_weights(empty.path()),
        Err(Ct2Error::NoModel { .. })
    ));
}

fn open_err(data: &[u8]) -> (Ct2Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.bin");
    std::fs::write(&path, data).unwrap();
    let err = Ct2Model::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bad.bin"),
        "message should name the file: {msg}"
    );
    (err, msg)
}

#[test]
fn malformed_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(write_sample(dir.path())).unwrap();

    let mut wrong = good.clone();
    wrong[..4].copy_from_slice(&123u32.to_le_bytes());
    let (e, msg) = open_err(&wrong);
    assert!(matches!(e, Ct2Error::NotCt2 { version: 123, .. }));
    assert!(
        msg.ends_with("not a CTranslate2 model (version 123)"),
        "{msg}"
    );

    // Random bytes.
    let noise: Vec<u8> = lcg(7, 4096)
        .iter()
        .map(|x| (x * 127.0) as i8 as u8)
        .collect();
    assert!(matches!(
        open_err(&noise).0,
        Ct2Error::NotCt2 { .. } | Ct2Error::Truncated { .. }
    ));
    assert!(matches!(open_err(&[]).0, Ct2Error::Truncated { .. }));

    // Cut inside the data of the first variable (a/bf16x, sorted first): 4 + (2+8+1) + 4 + 4 header bytes,
    // then name (2+8), rank, dim, dtype, size = 10 + 1 + 4 + 1 + 4.
    let first_data = 4 + 11 + 4 + 4 + 20;
    let (e, msg) = open_err(&good[..first_data + 3]);
    assert!(matches!(e, Ct2Error::Truncated { .. }));
    assert!(msg.ends_with("truncated at variable a/bf16x"), "{msg}");
    // Every other cut is an error too (never a panic).
    for cut in 0..good.len() {
        open_err(&good[..cut]);
    }

    // Unknown dtype id: the byte before the first variable's u32 size.
    let mut dt = good.clone();
    dt[first_data - 5] = 9;
    let (e, msg) = open_err(&dt);
    assert!(matches!(e, Ct2Error::UnknownDtype { id: 9, .. }));
    assert!(msg.ends_with("unknown dtype 9 for a/bf16x"), "{msg}");

    // Size that does not match the shape.
    let mut sz = good.clone();
    sz[first_data - 4..first_data].copy_from_slice(&6u32.to_le_bytes());
    assert!(matches!(open_err(&sz).0, Ct2Error::BadSize { .. }));

    // Missing variables and scales.
    let m = Ct2Model::open(&dir.path().join("model.bin")).unwrap();
    let msg = m
        .tensor("does/not/exist", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with("missing variable does/not/exist") && msg.contains("model.bin"),
        "{msg}"
    );
    let mut w = Ct2Writer::new("S", 1);
    w.add("q/weight", &[1, 2], Ct2Dtype::I8, bytes(&[1i8, 2]));
    let p = dir.path().join("noscale.bin");
    w.write(&p).unwrap();
    let msg = Ct2Model::open(&p)
        .unwrap()
        .tensor("q/weight", DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.ends_with("missing variable q/weight_scale"), "{msg}");

    // The writer refuses inconsistent sizes.
    let mut w = Ct2Writer::new("S", 1);
    w.add("bad", &[3], Ct2Dtype::F32, &[0u8; 8]);
    assert_eq!(
        w.write(&dir.path().join("x.bin")).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn reads_pre_v4_files() {
    // Version 3: item size instead of dtype id, element count instead of byte size.
    let mut f = Vec::new();
    f.extend(3u32.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend(b"Old\0");
    f.extend(2u32.to_le_bytes()); // revision
    f.extend(1u32.to_le_bytes()); // one variable
    f.extend(4u16.to_le_bytes());
    f.extend(b"w/x\0");
    f.push(1);
    f.extend(2u32.to_le_bytes());
    f.push(4); // item size 4: f32
    f.extend(2u32.to_le_bytes()); // 2 elements
    f.extend(bytes(&[1.5f32, -2.0]));
    f.extend(1u32.to_le_bytes());
    for s in [b"y/x\0", b"w/x\0"] {
        f.extend(4u16.to_le_bytes());
        f.extend(s);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.bin");
    std::fs::write(&p, &f).unwrap();
    let m = Ct2Model::open(&p).unwrap();
    assert_eq!((m.binary_version(), m.spec(), m.revision()), (3, "Old", 2));
    assert_eq!(
        to_f32(&m.tensor("y/x", DType::F32, &Device::Cpu).unwrap()),
        [1.5, -2.0]
    );
}

#[test]
fn quantize_int8_follows_ctranslate2() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (5, 7);
    let lin = lcg(1, rows * cols);
    let conv = lcg(2, 4 * 3 * 2);
    let mut w = Ct2Writer::new("WhisperSpec", 3);
    let h: Vec<f16> = lin.iter().map(|&x| f16::from_f32(x)).collect();
    w.add(
        "enc/linear_0/weight",
        &[rows, cols],
        Ct2Dtype::F16,
        bytes(&h),
    );
    w.add("enc/conv1/weight", &[4, 3, 2], Ct2Dtype::F32, bytes(&conv));
    w.add("enc/zero/weight", &[2, 3], Ct2Dtype::F32, bytes(&[0f32; 6]));
    let g: Vec<f16> = [1.0f32, 2.0].iter().map(|&x| f16::from_f32(x)).collect();
    w.add("enc/layer_norm/gamma", &[2], Ct2Dtype::F16, bytes(&g));
    w.add("enc/num_heads", &[], Ct2Dtype::I16, bytes(&[6i16]));
    w.add("enc/q/weight", &[2, 2], Ct2Dtype::I16, bytes(&I16S));
    w.add("enc/q/weight_scale", &[], Ct2Dtype::F32, bytes(&[512.0f32]));
    w.add_alias("dec/projection/weight", "enc/linear_0/weight");
    let src = dir.path().join("f16.bin");
    let dst = dir.path().join("int8.bin");
    w.write(&src).unwrap();
    quantize_int8(&src, &dst).unwrap();

    let m = Ct2Model::open(&dst).unwrap();
    let (q, s, shape) = m.int8_weight("enc/linear_0/weight").unwrap();
    assert_eq!(shape, vec![rows, cols]);
    for r in 0..rows {
        let row: Vec<f32> = h[r * cols..(r + 1) * cols]
            .iter()
            .map(|x| x.to_f32())
            .collect();
        let amax = row.iter().fold(0f32, |a, b| a.max(b.abs()));
        assert_eq!(s[r], 127.0 / amax);
        for (c, &v) in row.iter().enumerate() {
            assert_eq!(q[r * cols + c], (v * s[r]).round_ties_even() as i8);
        }
    }
    // Conv weights: rows are the first dimension.
    let (q, s, shape) = m.int8_weight("enc/conv1/weight").unwrap();
    assert_eq!((shape, s.len(), q.len()), (vec![4, 3, 2], 4, 24));
    let amax0 = conv[..6].iter().fold(0f32, |a, b| a.max(b.abs()));
    assert_eq!(s[0], 127.0 / amax0);
    // All-zero rows: amax 127, scale 1.
    assert_eq!(m.int8_weight("enc/zero/weight").unwrap().1, &[1.0, 1.0]);
    // int16 re-quantized to int8.
    assert_eq!(m.var("enc/q/weight").unwrap().dtype, Ct2Dtype::I8);
    assert_eq!(m.var("enc/q/weight_scale").unwrap().shape, vec![2]);
    // Other floats become f32, scalars and aliases are kept.
    assert_eq!(m.var("enc/layer_norm/gamma").unwrap().dtype, Ct2Dtype::F32);
    assert_eq!(m.scalar_i64("enc/num_heads"), Some(6));
    assert_eq!(m.var("enc/num_heads").unwrap().dtype, Ct2Dtype::I16);
    assert_eq!(
        m.int8_weight("dec/projection/weight").unwrap().2,
        vec![rows, cols]
    );
    // Re-quantizing an int8 model keeps it as is.
    let again = dir.path().join("again.bin");
    quantize_int8(&dst, &again).unwrap();
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&dst).unwrap());
}
