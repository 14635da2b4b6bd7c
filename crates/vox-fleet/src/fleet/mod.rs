//! [`Fleet`]: the async driver of the lifecycle state machine. It hands out instances to a worker's jobs
//! ([`Fleet::acquire`] → [`InstanceGuard`]), starting them when stopped, falling back to another instance (or a
//! new one) when a start stalls, and stops them when idle ([`Fleet::run_idle_loop`]), recording what each
//! instance cost. Workers in several processes share instances through a [`LeaseStore`]: a fleet holds a
//! lease on every instance it uses or keeps warm, and stops one only under the store's stop claim, so it
//! never stops an instance another worker holds.

mod drive;
mod idle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::idle_policy::{IdleInputs, IdlePolicy};
use crate::ledger::{CostLedger, InstancePhase, LeaseStore, LedgerError};
use crate::lifecycle::{LifecycleEvent, LifecyclePolicy, LifecycleState, step};
use crate::provider::{InstanceInfo, Provider};
use crate::{Endpoint, ProviderError};

/// Wall-clock time for a fleet. Tests substitute a simulator's clock so deadlines and cost intervals are
/// exact; production uses [`SystemClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// How a [`Fleet`] behaves.
#[derive(Clone)]
pub struct FleetConfig {
    /// This worker's unique id in the lease store (e.g. `"<hostname>-<pid>-<random>"`).
    pub holder: String,
    /// Lease lifetime; leases are renewed every third of it while the instance is in use or kept warm.
    pub lease_ttl: Duration,
    /// Start deadlines (queued, boot). Its `idle_timeout` is not used: `idle` decides.
    pub policy: LifecyclePolicy,
    pub idle: IdlePolicy,
    /// Pause between status polls while starting or stopping (Vast: 5 s or more).
    pub poll_interval: Duration,
    /// How often the idle loop looks at the instances.
    pub idle_check: Duration,
    /// Consecutive transient provider errors (429, 5xx, network) tolerated while starting or stopping.
    pub max_transient: u32,
    /// An instance that fell back (start stalled or failed) is not tried again for this long.
    pub fallback_cooldown: Duration,
    /// Create a new instance from an offer when no existing one can serve.
    pub create_when_exhausted: bool,
    /// At the end of [`Fleet::run_idle_loop`], stop the idle instances this worker holds (under the stop claim).
    pub stop_on_shutdown: bool,
    pub clock: Arc<dyn Clock>,
}

impl FleetConfig {
    /// Defaults for one worker: 60 s leases, 5 s polls, break-even idle policy.
    pub fn new(holder: impl Into<String>) -> FleetConfig {
        FleetConfig {
            holder: holder.into(),
            lease_ttl: Duration::from_secs(60),
            policy: LifecyclePolicy::default(),
            idle: IdlePolicy::default(),
            poll_interval: Duration::from_secs(5),
            idle_check: Duration::from_secs(5),
            max_transient: 5,
            fallback_cooldown: Duration::from_secs(600),
            create_when_exhausted: true,
            stop_on_shutdown: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("holder", &self.holder)
            .field("lease_ttl", &self.lease_ttl)
            .field("policy", &self.policy)
            .field("idle", &self.idle)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// Why an instance could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("instance {instance}: {source}")]
    Provider {
        instance: String,
        #[source]
        source: ProviderError,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("no instance could serve ({}); check the provider's configuration and capacity", reasons.join("; "))]
    NoInstance { reasons: Vec<String> },
}

/// One instance in use: send requests to [`InstanceGuard::base_url`] with the Bearer
/// [`InstanceGuard::api_key`]. Counts one request in flight until dropped; the fleet renews its lease meanwhile.
pub struct InstanceGuard {
    slot: Arc<Slot>,
    clock: Arc<dyn Clock>,
    activity: Arc<Mutex<Activity>>,
    base_url: String,
    api_key: Option<String>,
    info: InstanceInfo,
    since: SystemTime,
}

impl InstanceGuard {
    /// Instance key, `"<provider>/<id>"` (as in the ledger).
    pub fn instance(&self) -> &str {
        &self.slot.key
    }

    /// The provider's id of the instance.
    pub fn id(&self) -> u64 {
        self.slot.id
    }

    /// `http://host:port` of the instance's `vox serve`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's own API key (its `VOX_API_KEY`), if it has one.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// $/h for compute while running: what a job's GPU-seconds cost.
    pub fn gpu_dph(&self) -> f64 {
        self.info.gpu_dph
    }

    /// Seconds since the guard was handed out (the job's GPU time, for [`crate::JobCost`]).
    pub fn held_secs(&self) -> f64 {
        self.clock
            .now()
            .duration_since(self.since)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// The server did not answer as it should (connection refused, 5xx from a dead proxy): the next acquire
    /// checks the instance again instead of trusting it is ready.
    pub fn mark_broken(&self) {
        self.slot.lock().stale = true;
    }
}

impl std::fmt::Debug for InstanceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceGuard")
            .field("instance", &self.slot.key)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let now = self.clock.now();
        let mut s = self.slot.lock();
        let t = step(
            &s.life,
            &LifecycleEvent::RequestFinished,
            to_instant(now),
            &LifecyclePolicy::default(),
        );
        s.life = t.state;
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finished(now);
    }
}

/// Requests in flight across the fleet and the idle gaps between them (what the adaptive idle policy learns).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: u32,
    idle_since: Option<SystemTime>,
    /// Recent idle gaps in seconds, most recent last; at most 64.
    pub(crate) gaps: Vec<f64>,
}

impl Activity {
    fn started(&mut self, now: SystemTime) {
        if self.in_flight == 0
            && let Some(t) = self.idle_since.take()
        {
            self.gaps
                .push(now.duration_since(t).unwrap_or_default().as_secs_f64());
            let excess = self.gaps.len().saturating_sub(64);
            self.gaps.drain(..excess);
        }
        self.in_flight += 1;
    }

    fn finished(&mut self, now: SystemTime) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.idle_since = Some(now);
        }
    }
}

/// One instance this fleet knows.
pub(crate) struct Slot {
    pub(crate) key: String,
    pub(crate) id: u64,
    /// Serializes starting and stopping this instance within the process.
    pub(crate) busy: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

pub(crate) struct SlotState {
    pub(crate) life: LifecycleState,
    pub(crate) in_flight: u32,
    pub(crate) info: Option<InstanceInfo>,
    /// This fleet holds (and renews) a lease.
    pub(crate) held: bool,
    pub(crate) renewer: bool,
    /// The local view may be wrong (lease lapsed, server misbehaved): re-observe before use.
    pub(crate) stale: bool,
    /// The cost interval in progress: phase and start.
    pub(crate) phase: Option<(InstancePhase, SystemTime)>,
}

impl Slot {
    fn new(key: String, id: u64) -> Slot {
        Slot {
            key,
            id,
            busy: tokio::sync::Mutex::new(()),
            state: Mutex::new(SlotState {
                life: LifecycleState::Stopped,
                in_flight: 0,
                info: None,
                held: false,
                renewer: false,
                stale: true,
                phase: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `SystemTime` → `Instant` for the state machine: one fixed anchor per process, so a substituted clock's
/// time maps to instants consistently.
pub(crate) fn to_instant(t: SystemTime) -> Instant {
    static ANCHOR: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Instants far enough in the future that every SystemTime since 1970 maps without underflow is not
    // portable; anchor at process start minus nothing and map relative to the Unix epoch offset instead.
    let anchor = *ANCHOR.get_or_init(Instant::now);
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Relative to 2020-01-01, added to the anchor: monotone in `t`, never underflows for current dates.
    anchor + secs.saturating_sub(Duration::from_secs(1_577_836_800))
}

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) struct Inner<P, L> {
    pub(crate) provider: P,
    pub(crate) ledger: Arc<L>,
    pub(crate) cfg: FleetConfig,
    pub(crate) slots: Mutex<Vec<Arc<Slot>>>,
    /// Serializes the slow path of acquire: N concurrent acquires start one instance once.
    pub(crate) acquiring: tokio::sync::Mutex<()>,
    /// Instances that fell back recently: id → (when, why).
    pub(crate) failed: Mutex<HashMap<u64, (SystemTime, String)>>,
    /// Measured start-to-ready seconds, most recent last.
    pub(crate) restarts: Mutex<Vec<f64>>,
    pub(crate) activity: Arc<Mutex<Activity>>,
    pub(crate) http: reqwest::Client,
    pub(crate) me: Weak<Inner<P, L>>,
}

/// Drives instances of one provider for one worker. Cheap to clone (shared state).
pub struct Fleet<P, L> {
    inner: Arc<Inner<P, L>>,
}

impl<P, L> Clone for Fleet<P, L> {
    fn clone(&self) -> Self {
        Fleet {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Provider, L: LeaseStore + CostLedger + 'static> Fleet<P, L> {
    pub fn new(provider: P, ledger: Arc<L>, cfg: FleetConfig) -> Fleet<P, L> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with default TLS settings");
        Fleet {
            inner: Arc::new_cyclic(|me| Inner {
                provider,
                ledger,
                cfg,
                slots: Mutex::default(),
                acquiring: tokio::sync::Mutex::new(()),
                failed: Mutex::default(),
                restarts: Mutex::default(),
                activity: Arc::default(),
                http,
                me: me.clone(),
            }),
        }
    }

    pub fn provider(&self) -> &P {
        &self.inner.provider
    }

    pub fn config(&self) -> &FleetConfig {
        &self.inner.cfg
    }

    /// An instance whose server is ready, started (or created) if need be. Concurrent calls share one start.
    pub async fn acquire(&self) -> Result<InstanceGuard, FleetError> {
        if let Some(g) = self.inner.fast_path().await? {
            return Ok(g);
        }
        let _one = self.inner.acquiring.lock().await;
        if let Some(g) = self.inner.fast_path().await? {
            return Ok(g);
        }
        self.inner.slow_path().await
    }

    /// Stops idle instances past the idle timeout until `shutdown` completes; then records the open cost
    /// intervals and (with [`FleetConfig::stop_on_shutdown`]) stops the idle instances this worker holds.
    /// At its start it adopts running instances of the provider, so a restarted worker stops what a crashed
    /// one left running.
    pub async fn run_idle_loop(&self, shutdown: impl std::future::Future<Output = ()>) {
        self.inner.idle_loop(shutdown).await
    }

    /// One pass of the idle loop (tests, or callers with their own scheduling).
    pub async fn check_idle(&self) {
        self.inner.check_idle().await
    }

    /// Records every open cost interval up to now (e.g. before a cost report).
    pub async fn flush_costs(&self) -> Result<(), LedgerError> {
        self.inner.flush_costs().await
    }

    /// The idle timeout in force for an instance with these prices, and the inputs it came from.
    pub fn idle_timeout(&self, gpu_dph: f64, storage_dph: f64) -> (Duration, IdleInputs) {
        let inputs = IdleInputs {
            restart_secs: self.inner.median_restart(),
            gpu_dph,
            storage_dph,
            recent_gaps: self.inner.activity.lock().unwrap().gaps.clone(),
        };
        (self.inner.cfg.idle.timeout(&inputs), inputs)
    }

    /// Measured start-to-ready seconds, oldest first.
    pub fn restart_samples(&self) -> Vec<f64> {
        self.inner.restarts.lock().unwrap().clone()
    }
}

impl<P: Provider, L: LeaseStore + CostLedger + 'static> Inner<P, L> {
    pub(crate) fn now(&self) -> SystemTime {
        self.cfg.clock.now()
    }

    pub(crate) fn key(&self, id: u64) -> String {
        format!("{}/{id}", self.provider.kind())
    }

    pub(crate) fn slot(&self, id: u64) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap();
        if let Some(s) = slots.iter().find(|s| s.id == id) {
            return s.clone();
        }
        let s = Arc::new(Slot::new(self.key(id), id));
        slots.push(s.clone());
        s
    }

    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().unwrap().clone()
    }

    fn median_restart(&self) -> Option<f64> {
        let mut v = self.restarts.lock().unwrap().clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }

    /// The idle timeout for one instance.
    pub(crate) fn idle_timeout(&self, info: &InstanceInfo) -> Duration {
        self.cfg.idle.timeout(&IdleInputs {
            restart_secs: self.median_restart(),
            gpu_dph: info.gpu_dph,
            storage_dph: info.storage_dph,
            recent_gaps: self.activity.lock().unwrap().gaps.clone(),
        })
    }

    /// A guard on `slot`, counting one more request (the slot must be ready).
    pub(crate) fn guard(&self, slot: &Arc<Slot>) -> Option<InstanceGuard> {
        let now = self.now();
        let mut s = slot.lock();
        let endpoint: Endpoint = match &s.life {
            LifecycleState::Idle { endpoint, .. } | LifecycleState::Ready { endpoint, .. } => {
                endpoint.clone()
            }
            _ => return None,
        };
        if s.stale || !s.held {
            return None;
        }
        self.activity.lock().unwrap().started(now);
        let t = step(
            &s.life,
            &LifecycleEvent::RequestStarted,
            to_instant(now),
            &self.cfg.policy,
        );
        s.life = t.state;
        s.in_flight += 1;
        let info = s.info.clone().unwrap_or(InstanceInfo {
            api_key: None,
            gpu_dph: 0.0,
            storage_dph: 0.0,
        });
        Some(InstanceGuard {
            slot: slot.clone(),
            clock: self.cfg.clock.clone(),
            activity: self.activity.clone(),
            base_url: endpoint.base_url(),
            api_key: info.api_key.clone(),
            info,
            since: now,
        })
    }

    /// A ready instance this fleet already holds, without calling the provider.
    async fn fast_path(&self) -> Result<Option<InstanceGuard>, FleetError> {
        for slot in self.slots() {
            if let Some(g) = self.guard(&slot) {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Tries the known and listed instances in order, then a new one.
    async fn slow_path(&self) -> Result<InstanceGuard, FleetError> {
        let mut reasons = Vec::new();
        let all = format!("{}/*", self.provider.kind());
        let listed = self.retry(&all, || self.provider.candidates()).await?;
        let mut ids: Vec<u64> = self.slots().iter().map(|s| s.id).collect();
        for id in listed {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let now = self.now();
        let mut avoid = Vec::new();
        for id in ids {
            let cooling = self
                .failed
                .lock()
                .unwrap()
                .get(&id)
                .and_then(|(when, why)| {
                    (now.duration_since(*when).unwrap_or_default() < self.cfg.fallback_cooldown)
                        .then(|| why.clone())
                });
            if let Some(why) = cooling {
                reasons.push(format!("{}: {why} (cooling down)", self.key(id)));
                avoid.push(id);
                continue;
            }
            match self.bring_up(self.slot(id)).await {
                Ok(g) => return Ok(g),
                Err(e) => {
                    tracing::warn!(instance = %self.key(id), "falling back: {e}");
                    reasons.push(e.to_string());
                    avoid.push(id);
                }
            }
        }
        if self.cfg.create_when_exhausted {
            // One worker rents at a time, under a claim in the shared store (the stop-claim primitive on a key
            // of its own): two workers that find nothing at the same moment would otherwise rent a box each.
            // The others wait for the claim to go, then look again and find the new instance by its label.
            let claim = format!("{}/new", self.provider.kind());
            if !self
                .ledger
                .claim_stop(&claim, &self.cfg.holder, self.cfg.lease_ttl)
                .await?
            {
                tracing::info!("another worker is renting an instance; waiting for it");
                let deadline = self.now() + self.cfg.policy.boot_deadline;
                loop {
                    tokio::time::sleep(self.cfg.poll_interval).await;
                    if self
                        .ledger
                        .claim_stop(&claim, &self.cfg.holder, self.cfg.lease_ttl)
                        .await?
                    {
                        self.ledger.end_stop(&claim, &self.cfg.holder).await?;
                        break;
                    }
                    if self.now() > deadline {
                        reasons.push(format!(
                            "{claim}: another worker kept renting past the boot deadline"
                        ));
                        return Err(FleetError::NoInstance { reasons });
                    }
                }
                return Box::pin(self.slow_path()).await;
            }
            // Not retried here: a create that failed ambiguously may have rented a box (the client retries
            // only answers that prove it did not).
            let created = self.provider.create(&avoid).await;
            self.ledger.end_stop(&claim, &self.cfg.holder).await?;
            let id = created.map_err(|source| FleetError::Provider {
                instance: claim.clone(),
                source,
            })?;
            tracing::info!(instance = %self.key(id), "created a new instance");
            match self.bring_up(self.slot(id)).await {
                Ok(g) => return Ok(g),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        Err(FleetError::NoInstance { reasons })
    }

    /// Starts the lease renewer of `slot` unless one runs.
    pub(crate) fn ensure_renewer(&self, slot: &Arc<Slot>) {
        {
            let mut s = slot.lock();
            if s.renewer || !s.held {
                return;
            }
            s.renewer = true;
        }
        let (me, slot) = (self.me.clone(), slot.clone());
        let every = self.cfg.lease_ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = me.upgrade() else { return };
                if !slot.lock().held {
                    slot.lock().renewer = false;
                    return;
                }
                match inner
                    .ledger
                    .hold(&slot.key, &inner.cfg.holder, inner.cfg.lease_ttl)
                    .await
                {
                    Ok(crate::Hold::Held) => {}
                    Ok(crate::Hold::Stopping) => {
                        tracing::warn!(instance = %slot.key, "our lease lapsed and another worker is stopping the instance");
                        let mut s = slot.lock();
                        s.held = false;
                        s.stale = true;
                        s.renewer = false;
                        return;
                    }
                    Err(e) => tracing::warn!(instance = %slot.key, "lease renewal failed: {e}"),
                }
            }
        });
    }
}
