//! What the handlers share: the loaded engines (empty until start-up finishes), the start-up phase for
//! `/ready`, the idle signal, limits and metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use vox_engine::{Synthesis, Transcription};
use vox_store::{ProgressEvent, ProgressSink};

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// A loaded model serving requests.
#[derive(Clone)]
pub enum Served {
    Synthesizer(Synthesis),
    Transcriber(Transcription),
}

/// One model of the manifest, once loaded.
#[derive(Clone)]
pub struct LoadedModel {
    /// The manifest's name for it.
    pub name: String,
    /// The engine kind (`piper`, `whisper`).
    pub kind: String,
    pub served: Served,
}

/// Every model, in manifest order. The first synthesizer and the first transcriber are the defaults.
#[derive(Clone, Default)]
pub struct Engines {
    pub models: Vec<LoadedModel>,
}

impl Engines {
    pub fn synthesizers(&self) -> impl Iterator<Item = (&LoadedModel, &Synthesis)> {
        self.models.iter().filter_map(|m| match &m.served {
            Served::Synthesizer(s) => Some((m, s)),
            _ => None,
        })
    }

    pub fn transcribers(&self) -> impl Iterator<Item = (&LoadedModel, &Transcription)> {
        self.models.iter().filter_map(|m| match &m.served {
            Served::Transcriber(t) => Some((m, t)),
            _ => None,
        })
    }
}

/// Where start-up is.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Provisioning,
    Loading { model: String },
    WarmingUp { model: String },
    Ready,
    Failed { reason: String },
    ShuttingDown,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Provisioning => "provisioning",
            Phase::Loading { .. } => "loading",
            Phase::WarmingUp { .. } => "warming_up",
            Phase::Ready => "ready",
            Phase::Failed { .. } => "failed",
            Phase::ShuttingDown => "shutting_down",
        }
    }
}

/// Bytes of one model on the volume while provisioning.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ModelBytes {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub done: bool,
    /// A package import: its size is learnt file by file once it is in.
    #[serde(skip)]
    pub imported: bool,
}

/// Start-up progress, for `/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    #[serde(flatten)]
    pub phase: Phase,
    pub provisioning: BTreeMap<String, ModelBytes>,
    /// Model name → seconds its load (and warm-up) took.
    pub loaded: BTreeMap<String, f64>,
}

/// Requests in flight and when the last one finished: the worker's idle-stop policy reads it.
pub struct Idle {
    in_flight: AtomicUsize,
    /// Milliseconds since `started` when the last counted request finished.
    last_done_ms: AtomicU64,
    started: Instant,
}

/// The idle signal, as JSON.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdleReport {
    /// Requests being served now (streams count until their last byte).
    pub in_flight: usize,
    /// Seconds since the last request finished (since start when none has); 0 while any is in flight.
    pub idle_seconds: f64,
    /// Unix time of the last request's end (or of the start).
    pub last_activity_unix: f64,
}

impl Idle {
    fn new() -> Self {
        Idle {
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn begin(self: &Arc<Self>) -> IdleGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        IdleGuard(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn report(&self) -> IdleReport {
        let in_flight = self.in_flight();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self.last_done_ms.load(Ordering::Acquire);
        let idle_ms = if in_flight > 0 {
            0
        } else {
            now_ms.saturating_sub(last)
        };
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        IdleReport {
            in_flight,
            idle_seconds: idle_ms as f64 / 1000.0,
            last_activity_unix: unix_now - (now_ms.saturating_sub(last)) as f64 / 1000.0,
        }
    }
}

/// Counts one request in flight until dropped (a streamed body drops it after its last byte).
pub struct IdleGuard(Arc<Idle>);

impl Drop for IdleGuard {
    fn drop(&mut self) {
        let ms = self.0.started.elapsed().as_millis() as u64;
        self.0.last_done_ms.fetch_max(ms, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The state behind every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

pub struct Shared {
    pub config: ServerConfig,
    pub engines: OnceLock<Engines>,
    pub readiness: RwLock<Readiness>,
    pub idle: Arc<Idle>,
    pub metrics: Metrics,
    /// Names of the manifest's models, for `/ready` before they load.
    pub manifest_models: Mutex<Vec<(String, String)>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(config: ServerConfig) -> Self {
        AppState(Arc::new(Shared {
            config,
            engines: OnceLock::new(),
            readiness: RwLock::new(Readiness {
                phase: Phase::Starting,
                provisioning: BTreeMap::new(),
                loaded: BTreeMap::new(),
            }),
            idle: Arc::new(Idle::new()),
            metrics: Metrics::new(),
            manifest_models: Mutex::new(Vec::new()),
        }))
    }

    /// The engines, or 503 naming the phase while start-up runs.
    pub fn engines(&self) -> Result<&Engines, ApiError> {
        self.engines
            .get()
            .ok_or_else(|| ApiError::not_ready(self.phase().name()))
    }

    pub fn phase(&self) -> Phase {
        self.readiness.read().expect("readiness").phase.clone()
    }

    pub fn set_phase(&self, phase: Phase) {
        tracing::info!(phase = phase.name(), detail = ?phase, "start-up phase");
        self.metrics.ready.set(i64::from(phase == Phase::Ready));
        self.readiness.write().expect("readiness").phase = phase;
    }

    pub fn readiness(&self) -> Readiness {
        self.readiness.read().expect("readiness").clone()
    }
}

/// Feeds provisioning progress into `/ready` and the metrics.
pub struct ReadinessProgress(pub AppState);

impl ProgressSink for ReadinessProgress {
    fn event(&self, ev: &ProgressEvent) {
        let mut r = self.0.readiness.write().expect("readiness");
        match ev {
            ProgressEvent::ModelPlanned {
                model,
                files_total,
                bytes_total,
                bytes_missing,
                ..
            } => {
                let done = bytes_total - bytes_missing;
                r.provisioning.insert(
                    model.clone(),
                    ModelBytes {
                        bytes_done: done,
                        bytes_total: *bytes_total,
                        done: false,
                        imported: *files_total == 0,
                    },
                );
            }
            ProgressEvent::Bytes { model, bytes, .. } => {
                if let Some(m) = r.provisioning.get_mut(model) {
                    m.bytes_done += bytes;
                }
                self.0.metrics.provision_bytes.inc_by(*bytes);
            }
            ProgressEvent::FileDone {
                model,
                size,
                downloaded,
                ..
            } => {
                // Package imports (pip wheels) plan no bytes up front: they report each file once it is in.
                if let Some(m) = r.provisioning.get_mut(model)
                    && *downloaded
                    && m.imported
                {
                    m.bytes_total += size;
                    m.bytes_done += size;
                    self.0.metrics.provision_bytes.inc_by(*size);
                }
            }
            ProgressEvent::ModelDone { model, .. } => {
                if let Some(m) = r.provisioning.get_mut(model) {
                    m.done = true;
                    m.bytes_done = m.bytes_total;
                }
            }
            ProgressEvent::Retry { .. } => {}
        }
    }
}
