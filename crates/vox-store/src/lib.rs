//! `vox-store` provisions model weights onto a persistent volume, in exactly the cache layout of Python's
//! `huggingface_hub` (so either can read what the other wrote, offline).
//!
//! What it does: read a [`Manifest`] of models; resolve each to a commit and a file listing (from the Hugging Face
//! Hub over HTTP, an S3-compatible [`Mirror`], or a local/pip [`import`]); download only what is missing, in
//! parallel HTTP Range chunks, resumable across restarts, each blob verified against its content address before it
//! becomes visible; check presence by `stat` alone; verify deeply and repair; list; prune.
//!
//! What it does not do: load models (engines do), or know about the server. It is usable on its own.
//!
//! ```no_run
//! # async fn f() -> vox_store::Result<()> {
//! use std::sync::Arc;
//! let store = vox_store::ModelStore::new(vox_store::StoreConfig::new("/data/models/huggingface/hub"))?;
//! let manifest = vox_store::Manifest::load("production")?;
//! let report = store.pull(&manifest, Arc::new(vox_store::NoProgress)).await?;
//! for s in report.snapshots { println!("{} at {}", s.model, s.dir.display()); }
//! # Ok(()) }
//! ```

pub mod config;
pub mod disk;
pub mod error;
mod fetch;
pub mod hash;
pub mod hub;
pub mod import;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod mirror;
pub mod progress;
pub mod retry;
mod store;

pub use config::{MirrorSettings, StoreConfig};
pub use error::{Result, StoreError};
pub use hash::Etag;
pub use import::{Imported, import, import_repo_id};
pub use layout::{HubCache, Listing, RepoCache, RepoEntry};
pub use manifest::{Manifest, ModelSpec, PipSource};
pub use mirror::Mirror;
pub use progress::{NoProgress, ProgressEvent, ProgressSink};
pub use retry::RetryPolicy;
pub use store::{ModelStatus, ModelStore, Problem, PruneReport, PullReport, Snapshot};
