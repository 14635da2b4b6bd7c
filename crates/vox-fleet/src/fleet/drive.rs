//! Bringing one instance to ready: the state machine's actions performed against the provider, the lease
//! store and the server's `/ready`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::{FleetError, Inner, InstanceGuard, Slot, to_instant};
use crate::ledger::{CostLedger, Hold, InstanceInterval, InstancePhase, LeaseStore};
use crate::lifecycle::{Action, LifecycleEvent, LifecycleState, step};
use crate::provider::Provider;
use crate::types::ActualStatus;
use crate::{Endpoint, Observation, ProviderError};

impl<P: Provider, L: LeaseStore + CostLedger + 'static> Inner<P, L> {
    /// Calls `f` again after transient errors (429, 5xx, network), at most `max_transient` times in a row.
    pub(crate) async fn retry<T, F, Fut>(&self, key: &str, mut f: F) -> Result<T, FleetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut failures = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(ProviderError::Vast(e))
                    if e.is_transient() && failures < self.cfg.max_transient =>
                {
                    failures += 1;
                    tracing::warn!(instance = %key, failures, "transient provider error, retrying: {e}");
                    tokio::time::sleep(self.cfg.poll_interval).await;
                }
                Err(source) => {
                    return Err(FleetError::Provider {
                        instance: key.to_owned(),
                        source,
                    });
                }
            }
        }
    }

    /// Observes the instance and records the cost interval that ended if its phase changed.
    pub(crate) async fn observe(&self, slot: &Slot) -> Result<Observation, FleetError> {
        let o = self
            .retry(&slot.key, || self.provider.status(slot.id))
            .await?;
        if slot.lock().info.is_none() {
            let info = self
                .retry(&slot.key, || self.provider.info(slot.id))
                .await?;
            slot.lock().info = Some(info);
        }
        let phase = if matches!(o.actual, ActualStatus::Running) {
            InstancePhase::Running
        } else {
            InstancePhase::Stopped
        };
        self.note_phase(slot, phase).await?;
        Ok(o)
    }

    /// Closes the open cost interval when the phase changes (or `force`) and opens one in `phase`.
    pub(crate) async fn note_phase_at(
        &self,
        slot: &Slot,
        phase: InstancePhase,
        now: SystemTime,
        force: bool,
    ) -> Result<(), FleetError> {
        let done = {
            let mut s = slot.lock();
            let Some(info) = s.info.clone() else {
                return Ok(());
            };
            match s.phase {
                Some((p, _)) if p == phase && !force => None,
                Some((p, since)) => {
                    s.phase = Some((phase, now));
                    Some(InstanceInterval {
                        instance: slot.key.clone(),
                        phase: p,
                        start_ms: super::unix_ms(since),
                        end_ms: super::unix_ms(now),
                        gpu_dph: info.gpu_dph,
                        storage_dph: info.storage_dph,
                    })
                }
                None => {
                    s.phase = Some((phase, now));
                    None
                }
            }
        };
        if let Some(i) = done
            && i.end_ms > i.start_ms
        {
            self.ledger.record_interval(&i).await?;
        }
        Ok(())
    }

    async fn note_phase(&self, slot: &Slot, phase: InstancePhase) -> Result<(), FleetError> {
        self.note_phase_at(slot, phase, self.now(), false).await
    }

    /// Takes (or renews) this fleet's lease; waits while another worker is stopping the instance.
    async fn hold(&self, slot: &Slot) -> Result<(), FleetError> {
        let deadline = self.now() + self.cfg.policy.boot_deadline;
        loop {
            match self
                .ledger
                .hold(&slot.key, &self.cfg.holder, self.cfg.lease_ttl)
                .await?
            {
                Hold::Held => {
                    slot.lock().held = true;
                    return Ok(());
                }
                Hold::Stopping if self.now() < deadline => {
                    tracing::debug!(instance = %slot.key, "another worker is stopping it; waiting");
                    tokio::time::sleep(self.cfg.poll_interval).await;
                }
                Hold::Stopping => {
                    return Err(FleetError::NoInstance {
                        reasons: vec![format!(
                            "{}: another worker kept a stop claim past the boot deadline",
                            slot.key
                        )],
                    });
                }
            }
        }
    }

    async fn healthy(&self, ep: &Endpoint) -> bool {
        let url = format!("{}/ready", ep.base_url());
        matches!(self.http.get(&url).send().await, Ok(r) if r.status().is_success())
    }

    /// Holds a lease on `slot`, starts it if needed and waits until its server is ready.
    pub(crate) async fn bring_up(&self, slot: Arc<Slot>) -> Result<InstanceGuard, FleetError> {
        let _busy = slot.busy.lock().await;
        self.hold(&slot).await?;
        self.ensure_renewer(&slot);
        if let Some(g) = self.guard(&slot) {
            return Ok(g);
        }
        let result = self.drive(&slot).await;
        match result {
            Ok(()) => {
                slot.lock().stale = false;
                self.ensure_renewer(&slot);
                self.guard(&slot).ok_or_else(|| FleetError::NoInstance {
                    reasons: vec![format!("{}: not ready after start", slot.key)],
                })
            }
            Err(e) => {
                // We do not use it: let other workers stop it.
                slot.lock().held = false;
                self.ledger.release(&slot.key, &self.cfg.holder).await?;
                if let FleetError::Provider {
                    source: ProviderError::Gone { .. },
                    ..
                } = &e
                {
                    self.slots.lock().unwrap().retain(|s| s.id != slot.id);
                }
                self.failed
                    .lock()
                    .unwrap()
                    .insert(slot.id, (self.now(), e.to_string()));
                Err(e)
            }
        }
    }

    /// Runs the state machine from the instance's observed state to `Serve` (ready) or a fall-back.
    async fn drive(&self, slot: &Slot) -> Result<(), FleetError> {
        let policy = self.cfg.policy.clone();
        let o = self.observe(slot).await?;
        let now = to_instant(self.now());
        let mut state = match o.actual {
            ActualStatus::Running if o.intends_running => {
                LifecycleState::Running { start_since: now }
            }
            ActualStatus::Loading | ActualStatus::Provisioning | ActualStatus::Created
                if o.intends_running =>
            {
                LifecycleState::Starting { since: now }
            }
            _ => LifecycleState::Stopped,
        };
        let mut events = VecDeque::from([match state {
            LifecycleState::Stopped => LifecycleEvent::Wanted,
            _ => LifecycleEvent::Observed(o),
        }]);
        let mut started_at: Option<SystemTime> = None;
        let mut fell_back: Option<String> = None;
        while let Some(event) = events.pop_front() {
            let t = step(&state, &event, to_instant(self.now()), &policy);
            state = t.state;
            slot.lock().life = state.clone();
            if t.actions.is_empty() && fell_back.is_some() && state == LifecycleState::Stopped {
                break;
            }
            for action in t.actions {
                match action {
                    Action::Start => {
                        started_at = Some(self.now());
                        tracing::info!(instance = %slot.key, "starting");
                        let out = self
                            .retry(&slot.key, || self.provider.start(slot.id))
                            .await?;
                        events.push_back(LifecycleEvent::StartAnswered(out));
                    }
                    Action::Stop => {
                        tracing::info!(instance = %slot.key, "stopping (fall back)");
                        self.retry(&slot.key, || self.provider.stop(slot.id))
                            .await?;
                        events.push_back(LifecycleEvent::Observed(self.observe(slot).await?));
                    }
                    Action::Poll => {
                        tokio::time::sleep(self.cfg.poll_interval).await;
                        let tick = step(
                            &state,
                            &LifecycleEvent::Tick,
                            to_instant(self.now()),
                            &policy,
                        );
                        if tick.state != state || !tick.actions.is_empty() {
                            events.push_back(LifecycleEvent::Tick);
                        } else {
                            events.push_back(LifecycleEvent::Observed(self.observe(slot).await?));
                        }
                    }
                    Action::CheckHealth(ep) => {
                        let ok = self.healthy(&ep).await;
                        events.push_back(LifecycleEvent::Health { endpoint: ep, ok });
                    }
                    Action::Serve(_) => {
                        if let Some(t0) = started_at {
                            let secs = self
                                .now()
                                .duration_since(t0)
                                .unwrap_or_default()
                                .as_secs_f64();
                            let mut r = self.restarts.lock().unwrap();
                            r.push(secs);
                            let excess = r.len().saturating_sub(20);
                            r.drain(..excess);
                            drop(r);
                            let info = slot.lock().info.clone();
                            if let Some(info) = info {
                                let timeout = self.idle_timeout(&info);
                                tracing::info!(instance = %slot.key, start_to_ready_s = secs, gpu_dph = info.gpu_dph,
                                    storage_dph = info.storage_dph, idle_timeout_s = timeout.as_secs_f64(), policy = ?self.cfg.idle,
                                    "instance ready; idle timeout from the measured restart");
                            }
                        }
                        return Ok(());
                    }
                    Action::FallBack(reason) => {
                        tracing::warn!(instance = %slot.key, "{reason}");
                        fell_back = Some(reason);
                    }
                }
            }
            if fell_back.is_some() && state == LifecycleState::Stopped {
                break;
            }
        }
        Err(FleetError::NoInstance {
            reasons: vec![format!(
                "{}: {}",
                slot.key,
                fell_back.unwrap_or_else(|| "the lifecycle stalled".to_owned())
            )],
        })
    }
}
