//! The loader against the full-size checkpoint's names, shapes and dtypes: the manifest is the
//! reference's `S3Token2Wav()` state dict (what `s3gen.safetensors` holds), written by
//! `tools/chatterbox/make_s3gen_fixtures.py --manifest`. Builds the shipped-size S3Gen from
//! zero-stride placeholder tensors (no 1 GB allocation) and checks that every tensor it asks
//! for exists with that shape, and that it uses every `flow.*` / `mel2wav.*` tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use vox_chatterbox::s3gen::{S3Gen, S3GenConfig};

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
}

#[derive(serde::Deserialize)]
struct Manifest {
    tensors: BTreeMap<String, Entry>,
}

struct ManifestBackend {
    tensors: Arc<BTreeMap<String, Entry>>,
    requested: Arc<Mutex<BTreeSet<String>>>,
}

impl ManifestBackend {
    fn placeholder(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Some(e) = self.tensors.get(name) else {
            candle_core::bail!("{name} is not in s3gen.safetensors")
        };
        assert_eq!(e.dtype, "float32", "{name}");
        self.requested.lock().unwrap().insert(name.to_owned());
        // Small non-zero values so weight-norm folding (which divides by ‖v‖) stays finite.
        Tensor::full(0.5f32, (), dev)?
            .to_dtype(dtype)?
            .broadcast_as(e.shape.clone())
    }
}

impl SimpleBackend for ManifestBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let t = self.placeholder(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!("{name}: loader wants {s:?}, checkpoint has {:?}", t.shape())
        }
        Ok(t)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.placeholder(name, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[test]
fn loader_matches_full_size_checkpoint_names() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/s3gen/manifest_full.json"
    );
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let tensors = Arc::new(manifest.tensors);
    let requested = Arc::new(Mutex::new(BTreeSet::new()));
    let backend = Box::new(ManifestBackend {
        tensors: tensors.clone(),
        requested: requested.clone(),
    });
    let vb = VarBuilder::from_backend(backend, DType::F32, Device::Cpu);
    S3Gen::load(&S3GenConfig::default(), vb)
        .expect("full-size S3Gen loads from the checkpoint names");

    let requested = requested.lock().unwrap();
    let unused: Vec<&String> = tensors
        .keys()
        .filter(|k| k.starts_with("flow.") || k.starts_with("mel2wav."))
        .filter(|k| !requested.contains(*k))
        .collect();
    assert!(
        unused.is_empty(),
        "checkpoint tensors the port ignores: {unused:?}"
    );
    let n_used = requested.len();
    assert!(n_used > 1000, "only {n_used} tensors requested");
}
