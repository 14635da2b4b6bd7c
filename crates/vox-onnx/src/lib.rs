//! `vox-onnx`: ONNX Runtime for vox's ONNX engines (Piper voices, Silero VAD), found and started once per
//! process.
//!
//! What it does:
//! - [`locate`] finds the `libonnxruntime` shared library, in this order: the environment variables
//!   `VOX_ORT_DYLIB` then `ORT_DYLIB_PATH` (a file path), then `libonnxruntime.so.1.32.0` next to the running
//!   executable or in `../lib` beside it (packaged installs), then `.cache/onnxruntime/1.32.0/` of the source
//!   tree this crate was built from (where `tools/setup/onnxruntime.sh` installs it for development and CI).
//! - [`runtime`] loads it with `ort::init_from`, so a missing, broken or too old library is an [`OnnxError`]
//!   (ort's implicit loading would panic), and creates the one ONNX Runtime environment of the process. The
//!   outcome, success or error, is kept: later calls return it without retrying.
//! - [`session`] opens a model with vox's CPU defaults (all graph optimisations, a given number of intra-op
//!   threads, sequential execution).
//!
//! What it does not: download anything (the setup step does), know any model, or run inference; engines use
//! the re-exported [`ort`] API on the sessions they get. GPU execution providers are not wired yet.
//!
//! The version is pinned: ort 2.0.0-rc.15 with the `api-31` feature refuses a library older than 1.31, and vox
//! tests against the `onnxruntime==1.32.0` PyPI wheel's library (`onnxruntime/capi/libonnxruntime.so.1.32.0`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use ort;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

/// The ONNX Runtime release vox is built and tested against (the PyPI wheel `onnxruntime==1.32.0`).
pub const ORT_VERSION: &str = "1.32.0";

/// The library's file name inside the wheel and wherever the setup step installs it.
pub const DYLIB_FILE: &str = "libonnxruntime.so.1.32.0";

/// Environment variables that name the library file, first match wins.
pub const DYLIB_ENV_VARS: [&str; 2] = ["VOX_ORT_DYLIB", "ORT_DYLIB_PATH"];

/// How to get the library, appended to "not found" errors.
const INSTALL_HINT: &str = "install it with `tools/setup/onnxruntime.sh` (pip-downloads the pinned onnxruntime==1.32.0 wheel \
     and extracts libonnxruntime.so.1.32.0), then set VOX_ORT_DYLIB to the file or put it next to the vox binary";

/// Errors of this crate. `Clone` because the outcome of [`runtime`] is kept for the life of the process.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    #[error("{var} is set to {path}, which is not a file; {INSTALL_HINT}")]
    EnvNotAFile { var: &'static str, path: PathBuf },
    #[error("ONNX Runtime {ORT_VERSION} was not found (looked at {looked}); {INSTALL_HINT}")]
    NotFound { looked: String },
    #[error("cannot load ONNX Runtime from {path}: {message}; {INSTALL_HINT}")]
    Load { path: PathBuf, message: String },
    #[error("ONNX Runtime failed to start: {0}")]
    Environment(String),
    #[error("cannot open the ONNX model {path}: {message}")]
    Model { path: PathBuf, message: String },
}

/// The loaded library and the process-wide ONNX Runtime environment.
pub struct Runtime {
    path: PathBuf,
    env: ort::environment::Environment,
}

impl Runtime {
    /// The library file that was loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment sessions are created in.
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }
}

/// Finds the library file (see the crate documentation for the order), reading the process environment.
pub fn locate() -> Result<PathBuf, OnnxError> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("../lib"));
        dirs.insert(0, exe_dir);
    }
    dirs.push(source_tree_install_dir());
    locate_with(|v| std::env::var_os(v), &dirs)
}

/// [`locate`] with the environment and the folders to search (in order) given, so the order can be tested.
pub fn locate_with(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    dirs: &[PathBuf],
) -> Result<PathBuf, OnnxError> {
    for var in DYLIB_ENV_VARS {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(v);
            // A variable that is set but wrong is an error, not a reason to fall through to another copy.
            return if path.is_file() {
                Ok(path)
            } else {
                Err(OnnxError::EnvNotAFile { var, path })
            };
        }
    }
    let candidates: Vec<PathBuf> = dirs.iter().map(|d| d.join(DYLIB_FILE)).collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let mut looked: Vec<String> = DYLIB_ENV_VARS.iter().map(|v| format!("${v}")).collect();
    looked.extend(candidates.iter().map(|p| p.display().to_string()));
    Err(OnnxError::NotFound {
        looked: looked.join(", "),
    })
}

/// Where `tools/setup/onnxruntime.sh` installs the library by default: `.cache/onnxruntime/<version>/` of the
/// source tree (a development and CI convenience; installed binaries use the other locations).
pub fn source_tree_install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/onnxruntime")
        .join(ORT_VERSION)
}

/// Loads ONNX Runtime and creates the process's environment on first use; returns the same outcome after.
pub fn runtime() -> Result<&'static Runtime, OnnxError> {
    static RUNTIME: OnceLock<Result<Runtime, OnnxError>> = OnceLock::new();
    RUNTIME.get_or_init(start).as_ref().map_err(Clone::clone)
}

fn start() -> Result<Runtime, OnnxError> {
    let path = locate()?;
    let builder = ort::init_from(&path).map_err(|e| OnnxError::Load {
        path: path.clone(),
        message: format!("{e}{}", dlopen_detail(&path)),
    })?;
    let env = builder
        .with_name("vox")
        .build()
        .map_err(|e| OnnxError::Environment(e.to_string()))?;
    tracing::info!(path = %path.display(), build = ort::info(), "ONNX Runtime loaded");
    Ok(Runtime { path, env })
}

/// The dynamic loader's own words (e.g. "invalid ELF header", a missing libstdc++), which ort's error leaves
/// out: it prints libloading's "dlopen failed" without its source.
fn dlopen_detail(path: &Path) -> String {
    // SAFETY: only reached after ort failed to load the same file; a library that loads here is dropped
    // (unloaded) at once without any of its functions being called.
    match unsafe { libloading::Library::new(path) } {
        Ok(_) => String::new(),
        Err(e) => match std::error::Error::source(&e) {
            Some(src) => format!(" ({src})"),
            None => String::new(),
        },
    }
}

/// How to run a model on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Intra-op threads. On a shared machine one thread per model is fastest (2 threads measured slower than
    /// 1 for Piper on a busy 2-core host); servers running one model can raise it.
    pub intra_threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { intra_threads: 1 }
    }
}

/// Opens `model` (an `.onnx` file) in the process's runtime, starting it if needed.
pub fn session(model: &Path, opts: &SessionOptions) -> Result<Session, OnnxError> {
    let rt = runtime()?;
    let merr = |e: ort::Error| OnnxError::Model {
        path: model.to_path_buf(),
        message: e.to_string(),
    };
    // `All` is Python's default ORT_ENABLE_ALL; ort's `Level3` means ORT_ENABLE_LAYOUT in rc.15.
    Session::builder(rt.environment())
        .map_err(merr)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| merr(e.into()))?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| merr(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| merr(e.into()))?
        .commit_from_file(model)
        .map_err(merr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn lookup_order_is_env_then_exe_dir_then_source_tree() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.so");
        let b = dir.path().join("b.so");
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"x").unwrap();
        let env = |pairs: Vec<(&'static str, PathBuf)>| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, p)| OsString::from(p))
            }
        };
        // VOX_ORT_DYLIB wins over ORT_DYLIB_PATH.
        let got = locate_with(
            env(vec![
                ("VOX_ORT_DYLIB", a.clone()),
                ("ORT_DYLIB_PATH", b.clone()),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(got, a);
        let got = locate_with(env(vec![("ORT_DYLIB_PATH", b.clone())]), &[]).unwrap();
        assert_eq!(got, b);
        // A variable naming a missing file is an error that names the variable, even if another copy exists.
        let exe = tempfile::tempdir().unwrap();
        std::fs::write(exe.path().join(DYLIB_FILE), b"x").unwrap();
        let dirs = [dir.path().join("empty"), exe.path().to_path_buf()];
        let e = locate_with(
            env(vec![("VOX_ORT_DYLIB", dir.path().join("nope.so"))]),
            &dirs,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("VOX_ORT_DYLIB") && e.contains("nope.so"), "{e}");
        // No variable: the first folder that has it.
        let got = locate_with(env(vec![]), &dirs).unwrap();
        assert_eq!(got, exe.path().join(DYLIB_FILE));
    }

    #[test]
    fn not_found_says_where_it_looked_and_how_to_install() {
        let exe = tempfile::tempdir().unwrap();
        let e = locate_with(|_| None, &[exe.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("$VOX_ORT_DYLIB"), "{e}");
        assert!(e.contains(&exe.path().display().to_string()), "{e}");
        assert!(e.contains("tools/setup/onnxruntime.sh"), "{e}");
    }
}
