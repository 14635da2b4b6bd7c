//! Progress reporting. The store emits events; the caller decides how to show them (a terminal bar, JSON lines
//! in logs, or a server's `/ready` counters).

/// One thing that happened during provisioning.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// A model's plan is known: how much is missing.
    ModelPlanned {
        model: String,
        files_total: usize,
        files_missing: usize,
        bytes_total: u64,
        bytes_missing: u64,
    },
    /// Bytes arrived (for a bar; may come often).
    Bytes {
        model: String,
        file: String,
        bytes: u64,
    },
    /// One file became visible in the snapshot.
    FileDone {
        model: String,
        file: String,
        size: u64,
        downloaded: bool,
    },
    /// A transient failure, about to be retried.
    Retry {
        model: String,
        file: String,
        attempt: u32,
        error: String,
    },
    /// A model is complete on the volume.
    ModelDone { model: String, commit: String },
}

/// Receives progress events; must be cheap (called on download paths).
pub trait ProgressSink: Send + Sync {
    fn event(&self, ev: &ProgressEvent);
}

/// Ignores everything.
pub struct NoProgress;
impl ProgressSink for NoProgress {
    fn event(&self, _: &ProgressEvent) {}
}
