//! `vox-jobs`: durable text-to-speech jobs. It keeps the job queue, the shared instance leases and the cost
//! records in one SQL database (SQLite, the embedded default, or PostgreSQL for several workers; the same code
//! through sqlx), writes audio to object storage (a local directory or S3/R2) under content-addressed keys,
//! runs jobs on GPU instances that a [`Gpu`] hands out (in production, `vox_fleet::Fleet`), and serves the
//! jobs HTTP API. It does not start or stop instances itself (that is vox-fleet) and does not synthesize
//! (that is `vox serve` on the instance, reached over HTTP).
//!
//! Delivery is at-least-once: a runner leases a job, renews the lease while it works, and a lapsed lease makes
//! the job claimable again. Effects are exactly-once because the object key is a hash of everything that
//! determines the audio: a second attempt finds the object and only records completion.

pub mod api;
mod db;
mod error;
mod fleet_gpu;
mod ledger;
mod metrics;
mod runner;
mod store;
pub mod testing;

pub use db::{Db, Dialect, Job, JobFilter, JobState, NewJob};
pub use error::{JobsError, Result};
pub use ledger::{CostReport, InstanceCost};
pub use metrics::Metrics;
pub use runner::{
    FailureKind, Gpu, GpuInstance, Runner, RunnerConfig, StaticGpu, SubmitRules, TtsFailure,
};
pub use store::{
    MULTIPART_THRESHOLD, Objects, PART_SIZE, S3Config, default_object_dir, object_key,
};
