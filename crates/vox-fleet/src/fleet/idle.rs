//! The idle side: stopping instances nobody has used for the idle timeout (under the lease store's stop
//! claim), adopting instances a previous worker left running, and closing cost intervals.

use std::sync::Arc;

use super::{FleetError, Inner, Slot, to_instant};
use crate::ledger::{CostLedger, LeaseStore, LedgerError};
use crate::lifecycle::{LifecycleEvent, LifecycleState, StopReason, step};
use crate::provider::Provider;
use crate::types::ActualStatus;

impl<P: Provider, L: LeaseStore + CostLedger + 'static> Inner<P, L> {
    pub(crate) async fn idle_loop(&self, shutdown: impl std::future::Future<Output = ()>) {
        self.adopt().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.cfg.idle_check) => self.check_idle().await,
            }
        }
        if self.cfg.stop_on_shutdown {
            for slot in self.slots() {
                let idle = {
                    let s = slot.lock();
                    s.in_flight == 0 && s.held && matches!(s.life, LifecycleState::Idle { .. })
                };
                if idle && let Err(e) = self.stop_idle(&slot, true).await {
                    tracing::warn!(instance = %slot.key, "stop at shutdown failed: {e}");
                }
            }
        }
        if let Err(e) = self.flush_costs().await {
            tracing::warn!("recording cost intervals at shutdown failed: {e}");
        }
        for slot in self.slots() {
            if slot.lock().held {
                slot.lock().held = false;
                let _ = self.ledger.release(&slot.key, &self.cfg.holder).await;
            }
        }
    }

    /// Takes over running instances of the provider this fleet does not know yet: their idle time starts
    /// now, so one left running by a crashed worker is stopped after the idle timeout.
    async fn adopt(&self) {
        let ids = match self.provider.candidates().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!("listing instances to adopt failed: {e}");
                return;
            }
        };
        for id in ids {
            if self.slots().iter().any(|s| s.id == id) {
                continue;
            }
            let slot = self.slot(id);
            let _busy = slot.busy.lock().await;
            let Ok(o) = self.observe(&slot).await else {
                continue;
            };
            if !matches!(o.actual, ActualStatus::Running) {
                continue;
            }
            let Some(ep) = o.endpoint else { continue };
            if let Ok(crate::Hold::Held) = self
                .ledger
                .hold(&slot.key, &self.cfg.holder, self.cfg.lease_ttl)
                .await
            {
                let mut s = slot.lock();
                s.held = true;
                s.stale = true;
                s.life = LifecycleState::Idle {
                    endpoint: ep,
                    since: to_instant(self.now()),
                };
                drop(s);
                tracing::info!(instance = %slot.key, "adopted a running instance; it stops when idle");
                self.ensure_renewer(&slot);
            }
        }
    }

    /// Stops every held instance that has been idle for its timeout.
    pub(crate) async fn check_idle(&self) {
        for slot in self.slots() {
            let due = {
                let s = slot.lock();
                match (&s.life, &s.info) {
                    (LifecycleState::Idle { since, .. }, Some(info))
                        if s.in_flight == 0 && s.held =>
                    {
                        let idle = to_instant(self.now()).saturating_duration_since(*since);
                        idle >= self.idle_timeout(info)
                    }
                    _ => false,
                }
            };
            if due && let Err(e) = self.stop_idle(&slot, false).await {
                tracing::warn!(instance = %slot.key, "idle stop failed: {e}");
            }
        }
    }

    /// Releases this fleet's lease and, if no other worker holds one, stops the instance under the stop claim.
    pub(crate) async fn stop_idle(
        &self,
        slot: &Arc<Slot>,
        now_anyway: bool,
    ) -> Result<(), FleetError> {
        let _busy = slot.busy.lock().await;
        let (idle_for, info) = {
            let s = slot.lock();
            let LifecycleState::Idle { since, .. } = &s.life else {
                return Ok(());
            };
            if s.in_flight > 0 || !s.held {
                return Ok(());
            }
            (
                to_instant(self.now()).saturating_duration_since(*since),
                s.info.clone(),
            )
        };
        slot.lock().held = false;
        // A lease-length claim, renewed while the stop runs: a worker killed mid-stop blocks the instance's
        // next start for one lease at most (a claim as long as the boot deadline held it for minutes).
        let claim_ttl = self.cfg.lease_ttl;
        if !self
            .ledger
            .claim_stop(&slot.key, &self.cfg.holder, claim_ttl)
            .await?
        {
            // Another worker uses it: it stops it when it is done. Our view is no longer maintained.
            tracing::info!(instance = %slot.key, "idle here but in use by another worker; leaving it running");
            slot.lock().stale = true;
            self.ledger.release(&slot.key, &self.cfg.holder).await?;
            return Ok(());
        }
        let timeout = info.as_ref().map(|i| self.idle_timeout(i));
        tracing::info!(instance = %slot.key, idle_s = idle_for.as_secs_f64(), idle_timeout_s = ?timeout.map(|t| t.as_secs_f64()),
            at_shutdown = now_anyway, "stopping idle instance");
        let renew = async {
            loop {
                tokio::time::sleep(claim_ttl / 3).await;
                if let Err(e) = self
                    .ledger
                    .claim_stop(&slot.key, &self.cfg.holder, claim_ttl)
                    .await
                {
                    tracing::warn!(instance = %slot.key, "stop claim renewal failed: {e}");
                }
            }
        };
        let result = tokio::select! {
            r = self.stop_and_wait(slot) => r,
            () = renew => unreachable!("the renewal loop never ends"),
        };
        self.ledger.end_stop(&slot.key, &self.cfg.holder).await?;
        result
    }

    async fn stop_and_wait(&self, slot: &Slot) -> Result<(), FleetError> {
        let policy = self.cfg.policy.clone();
        let mut state = {
            let mut s = slot.lock();
            let t = step(
                &s.life,
                &LifecycleEvent::StopWanted,
                to_instant(self.now()),
                &policy,
            );
            s.life = t.state.clone();
            t.state
        };
        self.retry(&slot.key, || self.provider.stop(slot.id))
            .await?;
        let deadline = self.now() + policy.boot_deadline;
        while matches!(
            state,
            LifecycleState::Stopping {
                reason: StopReason::Rest
            }
        ) {
            let o = match self.observe(slot).await {
                Err(FleetError::Provider {
                    source: crate::ProviderError::Gone { .. },
                    ..
                }) => {
                    self.slots.lock().unwrap().retain(|s| s.id != slot.id);
                    return Ok(());
                }
                r => r?,
            };
            state = step(
                &state,
                &LifecycleEvent::Observed(o),
                to_instant(self.now()),
                &policy,
            )
            .state;
            slot.lock().life = state.clone();
            if state == LifecycleState::Stopped {
                break;
            }
            if self.now() > deadline {
                slot.lock().stale = true;
                return Err(FleetError::NoInstance {
                    reasons: vec![format!(
                        "{}: did not stop within {:?}",
                        slot.key, policy.boot_deadline
                    )],
                });
            }
            tokio::time::sleep(self.cfg.poll_interval).await;
        }
        Ok(())
    }

    /// Records each open cost interval up to now and reopens it.
    pub(crate) async fn flush_costs(&self) -> Result<(), LedgerError> {
        let now = self.now();
        for slot in self.slots() {
            let phase = slot.lock().phase.map(|(p, _)| p);
            if let Some(p) = phase {
                match self.note_phase_at(&slot, p, now, true).await {
                    Ok(()) => {}
                    Err(FleetError::Ledger(e)) => return Err(e),
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }
}
