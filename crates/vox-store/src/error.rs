//! The one error type of `vox-store`. Every variant says what failed and, where there is one, what to do.

use std::path::PathBuf;

/// What can go wrong while provisioning models.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },

    #[error(
        "unknown model {name:?}: the manifest has {known}; check the name or the --manifest flag"
    )]
    UnknownModel { name: String, known: String },

    #[error(
        "{repo}: repository not found on {endpoint} (404); check the repo id, or set HF_TOKEN if it is private"
    )]
    RepoNotFound { repo: String, endpoint: String },

    #[error(
        "{repo}: revision {revision:?} not found (404); use a branch, tag or full 40-hex commit that exists"
    )]
    RevisionNotFound { repo: String, revision: String },

    #[error("{repo}@{revision}: file {path:?} not found (404)")]
    EntryNotFound {
        repo: String,
        revision: String,
        path: String,
    },

    #[error(
        "{repo}: authentication failed ({status}); set HF_TOKEN to a token with read access{gated}"
    )]
    Unauthorized {
        repo: String,
        status: u16,
        gated: &'static str,
    },

    #[error(
        "{repo}: no file matches the patterns {patterns:?} at commit {commit}; fix the manifest's `files`"
    )]
    NothingMatched {
        repo: String,
        commit: String,
        patterns: Vec<String>,
    },

    #[error(
        "offline (HF_HUB_OFFLINE=1) and {what} is not on the volume; run `vox models pull` with network access first"
    )]
    OfflineMissing { what: String },

    #[error("{context}: HTTP {status} from {url}: {message}")]
    Http {
        context: String,
        status: u16,
        url: String,
        message: String,
    },

    #[error("{context}: cannot reach {url}: {source}; check HF_ENDPOINT and the network")]
    Connect {
        context: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("{context}: gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        context: String,
        attempts: u32,
        last: String,
    },

    #[error(
        "{path}: content does not match its address (expected {expected}, got {actual}); the partial file was discarded, run the pull again"
    )]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("{path}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "not enough disk space on {dir}: need {need} bytes more but only {free} are free (reserve {reserve}); free space or mount a bigger volume"
    )]
    DiskFull {
        dir: PathBuf,
        need: u64,
        free: u64,
        reserve: u64,
    },

    #[error("{path}: {op} failed: {source}{hint}")]
    Io {
        op: &'static str,
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("mirror {url}: {message}")]
    Mirror { url: String, message: String },

    #[error("import {path}: {message}")]
    Import { path: PathBuf, message: String },

    #[error("pip source {package}: {message}")]
    Pip { package: String, message: String },

    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Wraps an I/O error with the path and operation, adding a hint for the failures users can fix.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let hint = match source.raw_os_error() {
            Some(libc::EROFS) => {
                "; the volume is read-only: mount it read-write or point MODELS_DIR elsewhere"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                "; permission denied: fix the volume's ownership or point MODELS_DIR elsewhere"
            }
            Some(libc::ENOSPC) => "; the disk is full: free space or mount a bigger volume",
            Some(libc::ENOTDIR) => "; a path component is a file, not a directory",
            _ => "",
        };
        StoreError::Io {
            op,
            path: path.into(),
            hint,
            source,
        }
    }
}

/// Extension to attach path context to `std::io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| StoreError::io(op, path, e))
    }
}
