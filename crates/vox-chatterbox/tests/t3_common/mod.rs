//! Locating and reading T3 fixture directories made by `tools/chatterbox/make_t3_fixtures.py`.
//!
//! `VOX_T3_FIXTURES=/path/to/dir` points the tests at another generated directory (another seed
//! or tiny config); the default is the committed `tests/fixtures/t3/tiny`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

/// The device the parity tests run the model on: `VOX_DEVICE=cuda` picks the first GPU (a
/// `--features cuda` build); unset or `cpu`, the CPU. Expected values stay on the CPU.
pub fn test_device() -> Device {
    // One device for the whole binary: candle refuses to mix tensors of two `new_cuda(0)` handles.
    static DEV: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEV.get_or_init(|| match std::env::var("VOX_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0).expect("VOX_DEVICE=cuda: no CUDA device"),
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => panic!("VOX_DEVICE={other:?}: use cpu or cuda"),
    })
    .clone()
}

pub fn fixture_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VOX_T3_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/t3/tiny")
        });
    if dir.join("cases.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "T3 fixtures missing at {} (run tools/chatterbox/make_t3_fixtures.py)",
        dir.display()
    );
    eprintln!("skipping: no T3 fixtures at {}", dir.display());
    None
}

#[derive(Debug, Deserialize)]
pub struct Params {
    pub repetition_penalty: f64,
    pub min_p: f64,
    pub top_p: f64,
    pub exaggeration: f64,
    pub cfg_weight: f64,
    pub temperature: f64,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub text: String,
    pub normalized: String,
    pub params: Params,
    pub max_new_tokens: usize,
    pub tokens: Vec<u32>,
    pub stopped: bool,
    pub hidden_steps: usize,
    pub logit_steps: usize,
    pub conds_source: String,
}

#[derive(Debug, Deserialize)]
pub struct TextCase {
    pub raw: String,
    pub normalized: String,
    pub ids: Vec<u32>,
}

pub fn read_json<T: serde::de::DeserializeOwned>(dir: &std::path::Path, name: &str) -> T {
    let s = std::fs::read_to_string(dir.join(name)).expect(name);
    serde_json::from_str(&s).expect(name)
}

/// All tensors of `case_<name>.safetensors`, floats as f32.
pub fn case_tensors(dir: &std::path::Path, name: &str) -> HashMap<String, Tensor> {
    let path = dir.join(format!("case_{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("case tensors")
        .into_iter()
        .map(|(k, v)| {
            let v = if v.dtype().is_float() && v.dtype() != DType::F64 {
                v.to_dtype(DType::F32).unwrap()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

/// Largest absolute difference between two tensors of the same shape (as f32 on the CPU).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let b = b
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
