//! `vastsim`: a test server for the Vast.ai REST API, faithful to the contract in `notes/vast-api.md`
//! (the endpoints a GPU worker and the official `vastai` CLI use: show/list instances, start/stop/label,
//! destroy, search offers, create from an offer, users/current). It simulates instance lifecycles with
//! configurable delays, ports that appear one poll after `running`, starts that queue with
//! `resources_unavailable`, per-second billing, and injected faults (429 with or without `Retry-After`,
//! 5xx). It does not run containers; with [`SimConfig::onstart`] it runs each instance's `onstart` on this
//! machine while the instance runs (emulating the port mapping, see [`OnstartConfig`]), otherwise it only
//! stores it. It does not implement volumes, templates, logs or bulk calls, and is for tests only: production code never
//! names it, tests just point a client's base URL at [`VastSim::url`].

// The instance row is one large `json!` literal.
#![recursion_limit = "256"]

mod api;
mod model;
mod onstart;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::task::AbortHandle;

pub use model::{Billing, PUBLIC_IP};
pub use onstart::OnstartConfig;

/// One rentable offer (an "ask") in the simulated market.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferSpec {
    pub id: u64,
    pub machine_id: u64,
    pub gpu_name: String,
    pub num_gpus: u32,
    /// MB, as the API reports it.
    pub gpu_ram: u64,
    /// $/h for compute.
    pub dph_base: f64,
    /// $/GB/month.
    pub storage_cost: f64,
    /// GB of disk available on the host.
    pub disk_space: f64,
    pub reliability: f64,
    pub inet_down: f64,
    pub direct_port_count: i64,
    pub cuda_max_good: f64,
    pub geolocation: String,
    pub verified: bool,
    pub duration_days: f64,
}

impl OfferSpec {
    /// A small, fixed market: two 24 GB cards, one 80 GB card, one unverified cheap card.
    pub fn sample_catalog() -> Vec<OfferSpec> {
        let offer = |id, gpu: &str, ram, dph, verified, ports| OfferSpec {
            id,
            machine_id: id / 10,
            gpu_name: gpu.to_owned(),
            num_gpus: 1,
            gpu_ram: ram,
            dph_base: dph,
            storage_cost: 0.15,
            disk_space: 200.0,
            reliability: 0.99,
            inet_down: 800.0,
            direct_port_count: ports,
            cuda_max_good: 12.4,
            geolocation: "Oregon, US".to_owned(),
            verified,
            duration_days: 30.0,
        };
        vec![
            offer(5550, "RTX 4090", 24564, 0.40, true, 20),
            offer(5560, "RTX 3090", 24576, 0.22, true, 10),
            offer(5570, "H100 SXM", 81559, 2.10, true, 50),
            offer(5580, "RTX 3090", 24576, 0.12, false, 0),
        ]
    }
}

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub api_key: String,
    /// From create (or start of a stopped instance) until `loading`.
    pub provision_delay: Duration,
    /// From `loading` until `running`.
    pub loading_delay: Duration,
    /// From a stop request until `exited`.
    pub stop_delay: Duration,
    /// When true the clock only moves through [`VastSim::advance`] (deterministic tests).
    pub manual_clock: bool,
    pub offers: Vec<OfferSpec>,
    /// Run each instance's `onstart` on this machine while it runs (see [`OnstartConfig`]); `None`: stored
    /// only.
    pub onstart: Option<OnstartConfig>,
}

impl Default for SimConfig {
    /// Zero delays on a manual clock: every observation advances an instance one step.
    fn default() -> Self {
        SimConfig {
            api_key: "sim-key".to_owned(),
            provision_delay: Duration::ZERO,
            loading_delay: Duration::ZERO,
            stop_delay: Duration::ZERO,
            manual_clock: true,
            offers: OfferSpec::sample_catalog(),
            onstart: None,
        }
    }
}

/// An injected failure, answered instead of the next matching request(s).
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    /// Response body; sent as `application/json` when it parses as JSON, else as text.
    pub body: String,
    /// Value of a `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// How many requests get this answer.
    pub times: u32,
}

impl Fault {
    /// The Vast 429 in its JSON `detail` shape.
    pub fn rate_limited(times: u32, retry_after: Option<&str>) -> Fault {
        Fault {
            status: 429,
            body: r#"{"detail": "API requests too frequent endpoint threshold=1.0"}"#.to_owned(),
            retry_after: retry_after.map(str::to_owned),
            times,
        }
    }
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct Clock {
    started: Instant,
    manual: Option<Mutex<Duration>>,
    epoch_at_start: f64,
}

impl Clock {
    fn now(&self) -> Duration {
        match &self.manual {
            Some(t) => *t.lock().unwrap_or_else(PoisonError::into_inner),
            None => self.started.elapsed(),
        }
    }
}

pub(crate) struct Shared {
    cfg: SimConfig,
    clock: Clock,
    world: Mutex<model::World>,
    faults: Mutex<VecDeque<Fault>>,
    log: Mutex<Vec<RequestRecord>>,
    procs: Mutex<onstart::Procs>,
    url: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.procs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kill_all();
    }
}

impl Shared {
    fn world(&self) -> std::sync::MutexGuard<'_, model::World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn delays(&self) -> model::Delays {
        model::Delays {
            provision: self.cfg.provision_delay,
            loading: self.cfg.loading_delay,
            stop: self.cfg.stop_delay,
        }
    }

    /// Starts and ends `onstart` processes to match the instances' states.
    fn reconcile_processes(&self) {
        let Some(cfg) = &self.cfg.onstart else {
            return;
        };
        let w = self.world();
        self.procs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reconcile(cfg, w.instances.values());
    }

    /// Advances every instance whose delay has passed, as Vast does on its own (real-time clock only).
    fn tick(&self) {
        let (now, delays) = (self.clock.now(), self.delays());
        {
            let mut w = self.world();
            for i in w.instances.values_mut() {
                i.observe(now, &delays);
            }
        }
        self.reconcile_processes();
    }

    fn epoch_now(&self) -> f64 {
        self.clock.epoch_at_start + self.clock.now().as_secs_f64()
    }
}

/// A running simulator. Cloning shares it; the server stops when the last clone is dropped or at
/// [`VastSim::shutdown`].
#[derive(Clone)]
pub struct VastSim {
    shared: Arc<Shared>,
    server: Arc<AbortOnDrop>,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl VastSim {
    /// Starts on `127.0.0.1:0`.
    pub async fn start(cfg: SimConfig) -> std::io::Result<VastSim> {
        Self::start_at(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (port 0 picks a free port).
    pub async fn start_at(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<VastSim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let epoch_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let shared = Arc::new(Shared {
            clock: Clock {
                started: Instant::now(),
                manual: cfg.manual_clock.then(|| Mutex::new(Duration::ZERO)),
                epoch_at_start,
            },
            world: Mutex::new(model::World::new(cfg.offers.clone())),
            cfg,
            faults: Mutex::default(),
            log: Mutex::default(),
            procs: Mutex::default(),
            url,
        });
        // On a real-time clock instances also move on their own, so a stop completes (and its billing ends)
        // with nobody polling, as on Vast. A manual clock leaves every step to observations (tests that count
        // them).
        if !shared.cfg.manual_clock {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    match weak.upgrade() {
                        Some(s) => s.tick(),
                        None => return,
                    }
                }
            });
        }
        let app = api::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("vastsim server ended: {e}");
            }
        });
        Ok(VastSim {
            shared,
            server: Arc::new(AbortOnDrop(task.abort_handle())),
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL to give a client (the CLI's `--url` / `VAST_URL`).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    pub fn api_key(&self) -> &str {
        &self.shared.cfg.api_key
    }

    /// Moves a manual clock forward (no effect on a real-time clock).
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.shared.clock.manual {
            *t.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }

    /// Answers the next requests with `fault` (queued after earlier faults).
    pub fn inject(&self, fault: Fault) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(fault);
    }

    /// While `blocked`, starting instance `id` answers `resources_unavailable` and the start stays queued
    /// ("Scheduling") indefinitely; unblocking lets a queued start proceed.
    pub fn set_start_blocked(&self, id: u64, blocked: bool) -> bool {
        let mut w = self.shared.world();
        match w.instances.get_mut(&id) {
            Some(i) => {
                i.start_blocked = blocked;
                if !blocked && i.scheduling {
                    i.scheduling = false;
                    i.phase_since = self.shared.clock.now();
                }
                true
            }
            None => false,
        }
    }

    /// Marks an offer as rented by someone else (create then fails or creates a stopped instance).
    pub fn set_offer_available(&self, offer_id: u64, available: bool) {
        let mut w = self.shared.world();
        w.unavailable_offers.retain(|&o| o != offer_id);
        if !available {
            w.unavailable_offers.push(offer_id);
        }
    }

    /// Charges of instance `id` so far (also after destroy); `None` if it never existed.
    pub fn billing(&self, id: u64) -> Option<Billing> {
        let now = self.shared.clock.now();
        let mut w = self.shared.world();
        w.accrue_all(now);
        w.billing(id)
    }

    /// Ids of existing instances.
    pub fn instance_ids(&self) -> Vec<u64> {
        self.shared.world().instances.keys().copied().collect()
    }

    /// The `actual_status` an observation would show now, without advancing the lifecycle.
    pub fn instance_json(&self, id: u64) -> Option<serde_json::Value> {
        let epoch = self.shared.epoch_now();
        self.shared
            .world()
            .instances
            .get(&id)
            .map(|i| i.to_json(epoch))
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops serving (also happens when the last clone is dropped) and ends the onstart processes.
    pub fn shutdown(&self) {
        self.server.0.abort();
        self.shared
            .procs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kill_all();
    }

    /// The simulator clock as Unix time (follows [`VastSim::advance`] on a manual clock).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(self.shared.epoch_now())
    }

    /// Marks instance `id` destroyed as if by someone else (console, host failure); `false` if unknown.
    pub fn destroy(&self, id: u64) -> bool {
        let now = self.shared.clock.now();
        let mut w = self.shared.world();
        let Some(mut inst) = w.instances.remove(&id) else {
            return false;
        };
        inst.accrue(now);
        w.destroyed.insert(id, inst.billing);
        drop(w);
        self.shared.reconcile_processes();
        true
    }

    /// The directory playing instance `id`'s disk when onstart runs (see [`OnstartConfig`]).
    pub fn instance_dir(&self, id: u64) -> Option<std::path::PathBuf> {
        self.shared
            .cfg
            .onstart
            .as_ref()
            .map(|c| onstart::instance_dir(c, id))
    }
}
