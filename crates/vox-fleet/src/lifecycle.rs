//! The life of one rented instance as an explicit state machine:
//!
//! ```text
//! Stopped ─Wanted→ Starting ─queued→ Queued ─deadline→ Stopping(fall back) ─exited→ Stopped
//!                     │                 │
//!                     └──running────────┴→ Running (no healthy endpoint yet) ─health ok→ Idle
//! Idle ⇄ Ready (requests in flight) ; Idle ─idle timeout→ Stopping ─exited→ Stopped
//! ```
//!
//! [`step`] is pure: it takes the state, one event and the current time and returns the next state plus
//! the actions the caller must perform (call start/stop, poll, check health, fall back to another
//! instance). The caller owns all I/O and timing, which keeps every transition unit-testable.

use std::time::{Duration, Instant};

use crate::types::{ActualStatus, Endpoint, StartOutcome};

/// Deadlines and timeouts of the lifecycle.
#[derive(Debug, Clone)]
pub struct LifecyclePolicy {
    /// A start still queued ("Scheduling") this long is cancelled and the caller falls back to another
    /// instance (Vast's docs: > 30 s in scheduling means the GPU is likely taken).
    pub queued_deadline: Duration,
    /// From the start request until the server is healthy (image pull, weight download, model load).
    pub boot_deadline: Duration,
    /// Idle time (no request in flight) after which a ready instance is stopped.
    pub idle_timeout: Duration,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        LifecyclePolicy {
            queued_deadline: Duration::from_secs(60),
            boot_deadline: Duration::from_secs(20 * 60),
            idle_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// Why a stop was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Asked for, or idle: the instance rests stopped and can be started again.
    Rest,
    /// The start failed or stalled: the caller should use another instance.
    FallBack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleState {
    /// Not running; disk kept, storage billed.
    Stopped,
    /// Start requested; waiting for the container to run.
    Starting { since: Instant },
    /// Start answered `resources_unavailable`: waiting for the GPU to free up.
    Queued {
        since: Instant,
        start_since: Instant,
    },
    /// Container running; ports or the server's health not there yet.
    Running { start_since: Instant },
    /// Healthy, serving `in_flight` (≥ 1) requests.
    Ready { endpoint: Endpoint, in_flight: u32 },
    /// Healthy, nothing in flight since `since`.
    Idle { endpoint: Endpoint, since: Instant },
    /// Stop requested; waiting for the container to exit.
    Stopping { reason: StopReason },
}

/// What the instance looked like on one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub actual: ActualStatus,
    pub intends_running: bool,
    /// The server's public address, once ports are published.
    pub endpoint: Option<Endpoint>,
    /// `status_msg` reports a container failure.
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// Work is waiting: make the instance serve.
    Wanted,
    /// The answer to our start call.
    StartAnswered(StartOutcome),
    Observed(Observation),
    /// Result of a health check of `endpoint`.
    Health {
        endpoint: Endpoint,
        ok: bool,
    },
    RequestStarted,
    RequestFinished,
    /// Time passed; deadlines are checked.
    Tick,
    /// Stop now (shutdown, operator).
    StopWanted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Call start on the provider.
    Start,
    /// Call stop on the provider (also cancels a queued start).
    Stop,
    /// Poll the instance again later.
    Poll,
    CheckHealth(Endpoint),
    /// The server answers at this endpoint: send the waiting work.
    Serve(Endpoint),
    /// Give up on this instance for now and acquire another (e.g. create from a fresh offer).
    FallBack(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: LifecycleState,
    pub actions: Vec<Action>,
}

fn to(state: LifecycleState, actions: Vec<Action>) -> Transition {
    Transition { state, actions }
}

fn fall_back(reason: String) -> Transition {
    to(
        LifecycleState::Stopping {
            reason: StopReason::FallBack,
        },
        vec![Action::Stop, Action::FallBack(reason)],
    )
}

/// The next state and the actions to perform. Events that make no sense in a state leave it unchanged
/// with no actions.
pub fn step(
    state: &LifecycleState,
    event: &LifecycleEvent,
    now: Instant,
    policy: &LifecyclePolicy,
) -> Transition {
    use LifecycleEvent as E;
    use LifecycleState as S;
    let stay = || to(state.clone(), Vec::new());
    match (state, event) {
        (S::Stopped, E::Wanted) => to(S::Starting { since: now }, vec![Action::Start]),
        (S::Stopped | S::Stopping { .. }, E::StopWanted) => stay(),
        (_, E::StopWanted) => to(
            S::Stopping {
                reason: StopReason::Rest,
            },
            vec![Action::Stop],
        ),

        (S::Starting { since }, E::StartAnswered(StartOutcome::Queued)) => to(
            S::Queued {
                since: now,
                start_since: *since,
            },
            vec![Action::Poll],
        ),
        (S::Starting { .. }, E::StartAnswered(StartOutcome::Accepted)) => {
            to(state.clone(), vec![Action::Poll])
        }

        (
            S::Starting { since }
            | S::Queued {
                start_since: since, ..
            },
            E::Observed(o),
        ) => {
            if o.actual.is_host_lost() || o.failed {
                return fall_back(format!("instance failed while starting ({:?})", o.actual));
            }
            match (&o.actual, state) {
                (ActualStatus::Running, _) => running(*since, o.endpoint.clone()),
                // The GPU was granted: the queued start proceeds.
                (
                    ActualStatus::Loading | ActualStatus::Provisioning | ActualStatus::Created,
                    S::Queued { .. },
                ) => to(S::Starting { since: *since }, vec![Action::Poll]),
                // `exited` / `stopped` right after a start are normal until the deadline.
                _ => to(state.clone(), vec![Action::Poll]),
            }
        }
        (S::Running { start_since }, E::Observed(o)) => {
            if o.actual.is_host_lost() || o.failed || !matches!(o.actual, ActualStatus::Running) {
                return fall_back(format!("container stopped while booting ({:?})", o.actual));
            }
            running(*start_since, o.endpoint.clone())
        }
        (S::Running { .. }, E::Health { endpoint, ok: true }) => to(
            S::Idle {
                endpoint: endpoint.clone(),
                since: now,
            },
            vec![Action::Serve(endpoint.clone())],
        ),
        (S::Running { .. }, E::Health { ok: false, .. }) => to(state.clone(), vec![Action::Poll]),

        (S::Ready { .. } | S::Idle { .. }, E::Observed(o))
            if !matches!(o.actual, ActualStatus::Running) =>
        {
            // Stopped under us (credit, contract end, self-stop): start again on the next Wanted.
            to(S::Stopped, Vec::new())
        }
        (S::Idle { endpoint, .. }, E::RequestStarted) => to(
            S::Ready {
                endpoint: endpoint.clone(),
                in_flight: 1,
            },
            Vec::new(),
        ),
        (
            S::Ready {
                endpoint,
                in_flight,
            },
            E::RequestStarted,
        ) => to(
            S::Ready {
                endpoint: endpoint.clone(),
                in_flight: in_flight + 1,
            },
            Vec::new(),
        ),
        (
            S::Ready {
                endpoint,
                in_flight,
            },
            E::RequestFinished,
        ) => match in_flight.saturating_sub(1) {
            0 => to(
                S::Idle {
                    endpoint: endpoint.clone(),
                    since: now,
                },
                Vec::new(),
            ),
            n => to(
                S::Ready {
                    endpoint: endpoint.clone(),
                    in_flight: n,
                },
                Vec::new(),
            ),
        },
        (S::Idle { endpoint, .. }, E::Wanted) => {
            to(state.clone(), vec![Action::Serve(endpoint.clone())])
        }

        (S::Stopping { .. }, E::Observed(o)) => {
            if o.intends_running
                || matches!(o.actual, ActualStatus::Running | ActualStatus::Loading)
            {
                to(state.clone(), vec![Action::Poll])
            } else {
                to(S::Stopped, Vec::new())
            }
        }

        (S::Starting { since }, E::Tick)
            if now.saturating_duration_since(*since) >= policy.boot_deadline =>
        {
            fall_back(format!(
                "start did not finish within {:?}",
                policy.boot_deadline
            ))
        }
        (S::Queued { since, .. }, E::Tick)
            if now.saturating_duration_since(*since) >= policy.queued_deadline =>
        {
            fall_back(format!(
                "start still queued for a GPU after {:?}; cancelled",
                policy.queued_deadline
            ))
        }
        (S::Running { start_since }, E::Tick)
            if now.saturating_duration_since(*start_since) >= policy.boot_deadline =>
        {
            fall_back(format!(
                "server not healthy within {:?} of the start",
                policy.boot_deadline
            ))
        }
        (S::Idle { since, .. }, E::Tick)
            if now.saturating_duration_since(*since) >= policy.idle_timeout =>
        {
            to(
                S::Stopping {
                    reason: StopReason::Rest,
                },
                vec![Action::Stop],
            )
        }

        _ => stay(),
    }
}

fn running(start_since: Instant, endpoint: Option<Endpoint>) -> Transition {
    let action = match endpoint {
        Some(ep) => Action::CheckHealth(ep),
        None => Action::Poll,
    };
    to(LifecycleState::Running { start_since }, vec![action])
}

#[cfg(test)]
mod tests;
