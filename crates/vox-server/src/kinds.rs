//! [`EngineKinds`]: how the server turns a manifest entry into a running engine without naming model families.
//! The binary registers one loader per engine kind (`whisper`, `piper`, `chatterbox`); the server calls the
//! loader of each manifest model's `engine` with the model's snapshot folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use vox_engine::{SpeechSynthesizer, Transcriber};

/// A loader's failure, shown to the operator as the reason start-up failed.
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// A loaded engine of either kind.
pub enum Engine {
    Synthesizer(Arc<dyn SpeechSynthesizer>),
    Transcriber(Arc<dyn Transcriber>),
}

type Loader = Box<dyn Fn(&Path) -> Result<Engine, LoadError> + Send + Sync>;

/// Engine kind → loader.
#[derive(Default)]
pub struct EngineKinds {
    loaders: BTreeMap<String, Loader>,
}

impl EngineKinds {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the loader of `kind`. Loaders block (they read weights): the server calls them
    /// off the async runtime.
    pub fn register(
        &mut self,
        kind: &str,
        loader: impl Fn(&Path) -> Result<Engine, LoadError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.loaders.insert(kind.to_string(), Box::new(loader));
        self
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.loaders.keys().map(String::as_str).collect()
    }

    /// Loads `dir` with the loader of `kind`.
    pub fn load(&self, kind: &str, dir: &Path) -> Result<Engine, LoadError> {
        let loader = self.loaders.get(kind).ok_or_else(|| {
            format!(
                "no engine is registered for kind {kind:?} (this build knows: {})",
                self.kinds().join(", ")
            )
        })?;
        loader(dir)
    }
}
