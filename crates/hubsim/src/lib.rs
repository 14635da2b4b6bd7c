//! `hubsim`: a Hugging Face Hub-compatible HTTP server on loopback, with fault injection, for the tests
//! and benchmarks of the model downloader. Production code never uses it.
//!
//! It serves the subset of the Hub protocol that `huggingface_hub` (0.36 and 2.x) and vox's downloader
//! use (see `shared/notes/hf-hub-and-s3.md`, sections 1 and 3):
//!
//! - `HEAD|GET /{org}/{name}/resolve/{rev}/{path}` on the Hub origin: regular files directly (ETag = git
//!   blob sha1), LFS files as a `302` to a separate CDN origin (ETag = sha256), with `X-Repo-Commit`,
//!   `X-Linked-Etag`, `X-Linked-Size` and the Hub's `X-Error-Code`s;
//! - `GET /cdn/{sha256}` on the CDN origin (another port, so clients treat it as another host and must not
//!   send their token there);
//! - `GET /api/models/{org}/{name}/revision/{rev}` and `/tree/{rev}[/{path}]` (paginated);
//! - `Range` requests on both origins.
//!
//! Tests steer it through a [`HubSim`] handle: add repositories at run time, inject [`Fault`]s (cut
//! bodies, error statuses, corrupted bytes, delays), throttle bodies per response, and read back every
//! request served ([`HubSim::requests`]) and the body bytes sent per file ([`HubSim::bytes_served`]).
//! The `hubsim` binary serves directories or synthetic files the same way for benchmarks and for
//! checks with Python clients.
//!
//! It is not a Hub: one branch (`main`) per repository, models only (no datasets/spaces), no Xet, no
//! uploads, everything held in memory.

mod api;
mod body;
mod catalog;
mod faults;
mod repo;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::AbortHandle;

pub use crate::faults::Fault;
pub use crate::repo::{
    DEFAULT_LFS_THRESHOLD, Repo, RepoFile, git_blob_sha1, sha256_hex, synthetic_content,
};

use crate::catalog::{Catalog, PreparedRepo};
use crate::faults::FaultRules;
use crate::server::Shared;

/// Server settings fixed at start (bandwidth can be changed later with [`HubSim::set_bandwidth`]).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The token accepted for private repositories (`Authorization: Bearer <token>`). With `None`, private
    /// repositories are never readable.
    pub token: Option<String>,
    /// Bytes per second for each GET body, per response (like a CDN limiting each connection); `None` is
    /// unlimited.
    pub bandwidth_per_conn: Option<u64>,
    /// Entries per page of the tree API (the Hub uses 1000).
    pub tree_page_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: None,
            bandwidth_per_conn: None,
            tree_page_size: 1000,
        }
    }
}

/// Which listener served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Hub,
    Cdn,
}

/// One request as the server answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub origin: Origin,
    pub method: String,
    /// URL path and query as sent (percent-encoded).
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status answered (a body cut later still counts as its `200`/`206`).
    pub status: u16,
}

/// A running simulated Hub: a Hub listener and a CDN listener on loopback, plus the controls tests use.
///
/// Cheap to clone; all clones steer the same server. The listeners run until [`HubSim::shutdown`] or
/// until the tokio runtime that started them ends (for `#[tokio::test]`, the end of the test); dropping
/// the handles does not stop them.
#[derive(Debug, Clone)]
pub struct HubSim {
    shared: Arc<Shared>,
    listeners: Arc<[AbortHandle; 2]>,
}

impl HubSim {
    /// Starts a Hub on `127.0.0.1:0` and a CDN on another `127.0.0.1:0` port, serving `repos`.
    pub async fn start(repos: Vec<Repo>, cfg: SimConfig) -> anyhow::Result<HubSim> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_at(repos, cfg, loopback, loopback).await
    }

    /// Like [`HubSim::start`], on the given addresses (port 0 picks a free port).
    pub async fn start_at(
        repos: Vec<Repo>,
        cfg: SimConfig,
        hub: SocketAddr,
        cdn: SocketAddr,
    ) -> anyhow::Result<HubSim> {
        let (hub_listener, endpoint) = server::bind(hub).await?;
        let (cdn_listener, cdn_endpoint) = server::bind(cdn).await?;
        let mut catalog = Catalog::default();
        for repo in &repos {
            catalog.insert(PreparedRepo::new(repo));
        }
        let shared = Arc::new(Shared {
            catalog: RwLock::new(catalog),
            faults: FaultRules::default(),
            log: Mutex::default(),
            served: Mutex::default(),
            bandwidth: Mutex::new(cfg.bandwidth_per_conn),
            token: cfg.token,
            tree_page_size: cfg.tree_page_size,
            endpoint,
            cdn_endpoint,
        });
        let listeners = [
            server::spawn(hub_listener, shared.clone(), Origin::Hub),
            server::spawn(cdn_listener, shared.clone(), Origin::Cdn),
        ];
        Ok(HubSim {
            shared,
            listeners: Arc::new(listeners),
        })
    }

    /// `http://127.0.0.1:PORT` of the Hub origin (what `HF_ENDPOINT` should be).
    pub fn endpoint(&self) -> String {
        self.shared.endpoint.clone()
    }

    /// `http://127.0.0.1:PORT` of the CDN origin that LFS files redirect to.
    pub fn cdn_endpoint(&self) -> String {
        self.shared.cdn_endpoint.clone()
    }

    /// Adds a repository, or replaces the `main` commit of one with the same id. Earlier commits stay
    /// resolvable by their hash, and their LFS blobs stay on the CDN. Hashes the files before returning.
    pub fn add_repo(&self, repo: Repo) {
        let prepared = PreparedRepo::new(&repo);
        self.shared
            .catalog
            .write()
            .expect("catalog lock")
            .insert(prepared);
    }

    /// Adds a fault rule after the existing ones; see [`Fault`] for how rules match and are used up.
    pub fn set_fault(&self, f: Fault) {
        self.shared.faults.push(f);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Sets the per-response body bandwidth for responses that start from now on.
    pub fn set_bandwidth(&self, bps: Option<u64>) {
        *self.shared.bandwidth.lock().expect("bandwidth lock") = bps;
    }

    /// Every request answered so far on both origins, in the order their headers were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().expect("request log lock").clone()
    }

    /// Forgets the request log and the byte counts of [`HubSim::bytes_served`].
    pub fn reset_log(&self) {
        self.shared.log.lock().expect("request log lock").clear();
        self.shared.served.lock().expect("served lock").clear();
    }

    /// Body bytes sent so far for GETs of files whose path ends with `path_suffix`. A body counts under its
    /// URL path (decoded) and under `org/name/path` of the repository file — for a CDN blob, of every file
    /// with that content — so `"model.safetensors"` counts both Hub and CDN downloads of that file.
    pub fn bytes_served(&self, path_suffix: &str) -> u64 {
        let served = self.shared.served.lock().expect("served lock");
        (served.iter())
            .filter(|b| b.labels.iter().any(|l| l.ends_with(path_suffix)))
            .map(|b| b.sent.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops accepting connections on both origins (connections already open finish their requests).
    pub fn shutdown(&self) {
        for listener in self.listeners.iter() {
            listener.abort();
        }
    }
}
