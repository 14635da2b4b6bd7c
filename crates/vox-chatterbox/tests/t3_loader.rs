//! The T3 loader against the real checkpoint's layout: the committed manifest
//! (`fixtures/t3/manifest_full.json`) lists every tensor name, shape and dtype of the reference's
//! default `T3()` state dict, i.e. of `t3_cfg.safetensors`.

mod t3_common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use vox_chatterbox::t3::weights::LayoutProbe;
use vox_chatterbox::t3::{T3, T3Config};

#[derive(Deserialize)]
struct Manifest {
    tensors: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
}

#[test]
fn full_size_model_asks_for_exactly_the_checkpoint_tensors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/t3/manifest_full.json"
    );
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(manifest.tensors.iter().all(|e| e.dtype == "float32"));
    let want: BTreeMap<String, Vec<usize>> = manifest
        .tensors
        .into_iter()
        .map(|e| (e.name, e.shape))
        .collect();
    assert_eq!(want.len(), 292);
    let params: usize = want.values().map(|s| s.iter().product::<usize>()).sum();
    assert_eq!(params, 532_405_248);

    let (probe, requested) = LayoutProbe::new();
    let vb = VarBuilder::from_backend(Box::new(probe), DType::F32, Device::Cpu);
    T3::load(vb, &T3Config::english()).unwrap();
    let got = requested.lock().unwrap().clone();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(got, want);
}

/// Strict like `load_state_dict`: an unexpected tensor or a missing one is an error.
#[test]
fn loading_is_strict() {
    let Some(dir) = t3_common::fixture_dir() else {
        return;
    };
    let cfg: T3Config = t3_common::read_json(&dir, "config.json");
    let weights = dir.join("t3_cfg.safetensors");
    T3::from_safetensors(&weights, &cfg, DType::F32, &Device::Cpu).unwrap();

    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let mut extra = tensors.clone();
    extra.insert(
        "patched_model.model.norm.weight".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    let p = tmp.path().join("extra.safetensors");
    candle_core::safetensors::save(&extra, &p).unwrap();
    let e = T3::from_safetensors(&p, &cfg, DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("unexpected"), "{e}");

    let mut missing = tensors.clone();
    missing.remove("tfmr.norm.weight");
    let p = tmp.path().join("missing.safetensors");
    candle_core::safetensors::save(&missing, &p).unwrap();
    let e = T3::from_safetensors(&p, &cfg, DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("tfmr.norm.weight"), "{e}");

    let mut wrong = tensors;
    wrong.insert(
        "speech_head.weight".into(),
        Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let p = tmp.path().join("wrong.safetensors");
    candle_core::safetensors::save(&wrong, &p).unwrap();
    assert!(T3::from_safetensors(&p, &cfg, DType::F32, &Device::Cpu).is_err());
}
