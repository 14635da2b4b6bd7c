//! What workers must agree on about instances: who is using which one ([`LeaseStore`]) and what each one
//! cost ([`CostLedger`]).
//!
//! vox-fleet defines the contracts; `vox-jobs` keeps them in its database (SQLite or PostgreSQL) so workers on
//! several machines agree. [`MemoryLedger`] keeps them in one process (unit tests, a single worker).
//!
//! Leases are *shared*: any number of workers may use one instance at once, each holding its own lease
//! with an expiry it renews while it works. Stopping takes the instance's one *stop claim*, granted only while
//! no other worker holds a live lease; while a stop claim is live nobody can take a new lease. That is the
//! whole safety rule: a worker never stops an instance another worker is using. Expiries make it survive
//! crashes: a killed worker's leases and claims lapse on their own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What went wrong with the shared store (a database, usually). Messages say what to check.
#[derive(Debug, thiserror::Error)]
#[error("the lease/cost store failed to {what}: {reason}")]
pub struct LedgerError {
    pub what: String,
    pub reason: String,
}

/// Outcome of [`LeaseStore::hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The caller's lease is recorded (new or extended).
    Held,
    /// Another worker is stopping the instance: use another one, or wait and start it again.
    Stopping,
}

/// One worker's live use of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Instance key, `"<provider>/<id>"` (e.g. `"vast/4242"`, `"local/1"`).
    pub instance: String,
    /// The worker (a unique id per worker process).
    pub holder: String,
    pub expires_at: SystemTime,
}

/// Shared leases on instances; see the module docs for the rule. All calls are atomic in the store.
pub trait LeaseStore: Send + Sync {
    /// Records or extends `holder`'s lease on `instance` until now + `ttl`, unless another holder has a live
    /// stop claim.
    fn hold(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Hold, LedgerError>> + Send;

    /// Ends `holder`'s lease (no-op if it has none).
    fn release(
        &self,
        instance: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// Takes the stop claim on `instance` for `ttl` if no *other* holder has a live lease and no other live
    /// stop claim exists; also drops `holder`'s own lease. `true` if the claim is now the caller's.
    fn claim_stop(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;

    /// Drops `holder`'s stop claim (the stop finished or failed).
    fn end_stop(
        &self,
        instance: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    /// The live leases on `instance` (diagnostics, tests).
    fn leases(
        &self,
        instance: &str,
    ) -> impl Future<Output = Result<Vec<Lease>, LedgerError>> + Send;
}

/// Whether an instance was running (GPU billed) or stopped (only its disk billed) over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstancePhase {
    Running,
    Stopped,
}

/// One observed interval of one instance, with the prices in force. Dollars follow from these:
/// `seconds × (gpu_dph if running) / 3600 + seconds × storage_dph / 3600`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceInterval {
    pub instance: String,
    pub phase: InstancePhase,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
    /// GPU (compute) price per hour while running.
    pub gpu_dph: f64,
    /// Storage price per hour, billed running or stopped.
    pub storage_dph: f64,
}

impl InstanceInterval {
    pub fn seconds(&self) -> f64 {
        (self.end_ms - self.start_ms).max(0) as f64 / 1000.0
    }

    pub fn dollars(&self) -> f64 {
        let gpu = match self.phase {
            InstancePhase::Running => self.gpu_dph,
            InstancePhase::Stopped => 0.0,
        };
        self.seconds() * (gpu + self.storage_dph) / 3600.0
    }
}

/// What one job cost: the GPU time it occupied on one instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobCost {
    pub job_id: String,
    pub instance: String,
    pub gpu_seconds: f64,
    pub dollars: f64,
}

/// Where cost records go. Writers record; reports read them back.
pub trait CostLedger: Send + Sync {
    fn record_interval(
        &self,
        interval: &InstanceInterval,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;

    fn record_job(&self, cost: &JobCost) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// [`LeaseStore`] and [`CostLedger`] in memory, for one process.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    /// instance → holder → expiry
    leases: HashMap<String, HashMap<String, SystemTime>>,
    /// instance → (holder, expiry)
    stops: HashMap<String, (String, SystemTime)>,
    intervals: Vec<InstanceInterval>,
    jobs: Vec<JobCost>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn intervals(&self) -> Vec<InstanceInterval> {
        self.inner.lock().unwrap().intervals.clone()
    }

    pub fn job_costs(&self) -> Vec<JobCost> {
        self.inner.lock().unwrap().jobs.clone()
    }
}

impl MemoryInner {
    fn live_stop(&self, instance: &str, now: SystemTime) -> Option<&str> {
        self.stops
            .get(instance)
            .filter(|(_, exp)| *exp > now)
            .map(|(h, _)| h.as_str())
    }
}

impl LeaseStore for MemoryLedger {
    async fn hold(&self, instance: &str, holder: &str, ttl: Duration) -> Result<Hold, LedgerError> {
        let now = SystemTime::now();
        let mut g = self.inner.lock().unwrap();
        if g.live_stop(instance, now).is_some_and(|h| h != holder) {
            return Ok(Hold::Stopping);
        }
        g.leases
            .entry(instance.to_string())
            .or_default()
            .insert(holder.to_string(), now + ttl);
        Ok(Hold::Held)
    }

    async fn release(&self, instance: &str, holder: &str) -> Result<(), LedgerError> {
        let mut g = self.inner.lock().unwrap();
        if let Some(m) = g.leases.get_mut(instance) {
            m.remove(holder);
        }
        Ok(())
    }

    async fn claim_stop(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LedgerError> {
        let now = SystemTime::now();
        let mut g = self.inner.lock().unwrap();
        if g.live_stop(instance, now).is_some_and(|h| h != holder) {
            return Ok(false);
        }
        let others = g
            .leases
            .get(instance)
            .is_some_and(|m| m.iter().any(|(h, exp)| h != holder && *exp > now));
        if others {
            return Ok(false);
        }
        if let Some(m) = g.leases.get_mut(instance) {
            m.remove(holder);
        }
        g.stops
            .insert(instance.to_string(), (holder.to_string(), now + ttl));
        Ok(true)
    }

    async fn end_stop(&self, instance: &str, holder: &str) -> Result<(), LedgerError> {
        let mut g = self.inner.lock().unwrap();
        if g.stops.get(instance).is_some_and(|(h, _)| h == holder) {
            g.stops.remove(instance);
        }
        Ok(())
    }

    async fn leases(&self, instance: &str) -> Result<Vec<Lease>, LedgerError> {
        let now = SystemTime::now();
        let g = self.inner.lock().unwrap();
        Ok(g.leases
            .get(instance)
            .map(|m| {
                m.iter()
                    .filter(|(_, exp)| **exp > now)
                    .map(|(h, exp)| Lease {
                        instance: instance.to_string(),
                        holder: h.clone(),
                        expires_at: *exp,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl CostLedger for MemoryLedger {
    async fn record_interval(&self, interval: &InstanceInterval) -> Result<(), LedgerError> {
        self.inner.lock().unwrap().intervals.push(interval.clone());
        Ok(())
    }

    async fn record_job(&self, cost: &JobCost) -> Result<(), LedgerError> {
        self.inner.lock().unwrap().jobs.push(cost.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_worker_cannot_stop_an_instance_another_is_using() {
        let l = MemoryLedger::new();
        assert_eq!(l.hold("vast/1", "a", TTL).await.unwrap(), Hold::Held);
        assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Held);
        assert!(!l.claim_stop("vast/1", "a", TTL).await.unwrap());
        l.release("vast/1", "b").await.unwrap();
        assert!(l.claim_stop("vast/1", "a", TTL).await.unwrap());
        // While a stops it, b can't take a new lease…
        assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Stopping);
        // …until the stop is over.
        l.end_stop("vast/1", "a").await.unwrap();
        assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Held);
    }

    #[tokio::test]
    async fn lapsed_leases_do_not_block_a_stop() {
        let l = MemoryLedger::new();
        l.hold("local/1", "crashed", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(l.leases("local/1").await.unwrap().is_empty());
        assert!(l.claim_stop("local/1", "b", TTL).await.unwrap());
    }

    #[test]
    fn interval_dollars_bill_the_gpu_only_while_running() {
        let mut i = InstanceInterval {
            instance: "vast/1".into(),
            phase: InstancePhase::Running,
            start_ms: 0,
            end_ms: 3_600_000,
            gpu_dph: 0.40,
            storage_dph: 0.02,
        };
        assert!((i.dollars() - 0.42).abs() < 1e-12);
        i.phase = InstancePhase::Stopped;
        assert!((i.dollars() - 0.02).abs() < 1e-12);
    }
}
