//! What the store needs to know, already resolved (the CLI reads env, file and flags into this).

use std::path::PathBuf;

use crate::retry::RetryPolicy;

/// The Hub's public endpoint, used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Settings of a [`crate::ModelStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The huggingface_hub cache root (`HF_HUB_CACHE`, default `$HF_HOME/hub`).
    pub hub_cache: PathBuf,
    /// Scratch space for downloads that are not blobs (wheels), on the same volume.
    pub scratch_dir: PathBuf,
    pub endpoint: String,
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE=1`: never touch the network; a missing file is an error.
    pub offline: bool,
    /// `s3://bucket/prefix` of a cache mirror to read from first.
    pub mirror: Option<MirrorSettings>,
    /// HTTP connections open at once across all files of a pull.
    pub max_connections: usize,
    /// Files downloaded at once.
    pub max_parallel_files: usize,
    /// Size of one ranged request; large files are split into chunks of this size.
    pub chunk_size: u64,
    pub retry: RetryPolicy,
    /// Bytes to leave free on the volume after a pull.
    pub reserve_bytes: u64,
    /// `Some(false)` forces copies instead of symlinks (`HF_HUB_DISABLE_SYMLINKS=1`); `None` probes.
    pub symlinks: Option<bool>,
    /// fsync each blob before it becomes visible (durable across power loss).
    pub fsync: bool,
}

/// Where a cache mirror lives.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    pub url: String,
    /// S3 endpoint (R2: `https://<account>.r2.cloudflarestorage.com`); `None` = AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl StoreConfig {
    /// Defaults for a cache at `hub_cache` (everything else as the CLI's defaults).
    pub fn new(hub_cache: impl Into<PathBuf>) -> Self {
        let hub_cache = hub_cache.into();
        StoreConfig {
            scratch_dir: hub_cache.join(".vox-scratch"),
            hub_cache,
            endpoint: DEFAULT_ENDPOINT.into(),
            token: None,
            offline: false,
            mirror: None,
            max_connections: 8,
            max_parallel_files: 4,
            chunk_size: 16 << 20,
            retry: RetryPolicy::default(),
            reserve_bytes: 0,
            symlinks: None,
            fsync: true,
        }
    }
}
