//! Checkpoint access with the reference's strictness: `T3.load_state_dict` is strict, so a file
//! with missing, extra or mis-shaped tensors is an error here too.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

/// Names and shapes a model asked for while it was built.
pub type Requested = Arc<Mutex<BTreeMap<String, Vec<usize>>>>;

/// A safetensors backend that records every name it hands out.
pub struct RecordingSafetensors {
    inner: MmapedSafetensors,
    requested: Requested,
}

impl RecordingSafetensors {
    /// Memory-maps `path`.
    pub fn open(path: &Path) -> Result<(Self, Requested)> {
        // SAFETY: the file is only read; callers must not truncate it while the model is loading
        // (the snapshot is immutable in the model store).
        let inner = unsafe { MmapedSafetensors::new(path)? };
        let requested = Requested::default();
        Ok((
            Self {
                inner,
                requested: requested.clone(),
            },
            requested,
        ))
    }

    /// Every tensor name in the file.
    pub fn names(&self) -> Vec<String> {
        self.inner.tensors().into_iter().map(|(n, _)| n).collect()
    }
}

impl SimpleBackend for RecordingSafetensors {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.requested
            .lock()
            .expect("poisoned")
            .insert(name.to_string(), s.dims().to_vec());
        SimpleBackend::get(&self.inner, s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.requested
            .lock()
            .expect("poisoned")
            .insert(name.to_string(), vec![]);
        self.inner.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.get(name).is_ok()
    }
}

/// A backend without weights: it records what a model asks for and returns zero-stride views
/// of one zero, so a full-size model can be "built" in no memory to check its tensor layout.
#[derive(Default)]
pub struct LayoutProbe {
    requested: Requested,
}

impl LayoutProbe {
    pub fn new() -> (Self, Requested) {
        let requested = Requested::default();
        (
            Self {
                requested: requested.clone(),
            },
            requested,
        )
    }
}

impl SimpleBackend for LayoutProbe {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.requested
            .lock()
            .expect("poisoned")
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("LayoutProbe cannot serve {name} without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
