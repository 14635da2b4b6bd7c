//! The opt-in watchdog of `vox serve` on a rented instance: if the server has been idle for a long deadline
//! (longer than the worker's idle timeout), it stops its own instance through the Vast.ai API with the
//! instance's scoped key, so a crashed or partitioned worker cannot leave a GPU billing. Vast.ai puts that key
//! and the instance id in the container's environment (`CONTAINER_API_KEY`, `CONTAINER_ID`).

use std::future::Future;
use std::time::Duration;

use crate::{VAST_BASE_URL, VastClient, VastError};

/// The server's idle signal at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleSignal {
    pub in_flight: u64,
    /// Seconds since the last request finished (0 while one is in flight).
    pub idle_seconds: f64,
}

/// Where and when the watchdog stops the instance.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// Vast.ai API base URL (`VAST_URL`, default the production API).
    pub vast_url: String,
    /// A key that may stop this instance (`CONTAINER_API_KEY`, or `VOX_WATCHDOG_VAST_KEY`).
    pub api_key: String,
    /// This instance (`CONTAINER_ID`).
    pub instance_id: u64,
    /// Idle time after which the instance stops itself (`VOX_WATCHDOG_IDLE_SECS`).
    pub idle_deadline: Duration,
    /// How often the idle signal is read.
    pub check_every: Duration,
}

/// Why the watchdog cannot be configured from the environment.
#[derive(Debug, thiserror::Error)]
#[error("watchdog: {0}")]
pub struct WatchdogConfigError(String);

impl WatchdogConfig {
    /// From the environment: `None` unless `VOX_WATCHDOG_IDLE_SECS` is set (the watchdog is opt-in). Needs
    /// `CONTAINER_ID` and `CONTAINER_API_KEY` (or `VOX_WATCHDOG_VAST_KEY`); `VAST_URL` overrides the API.
    pub fn from_env() -> Option<Result<WatchdogConfig, WatchdogConfigError>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`WatchdogConfig::from_env`], reading variables through `get`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Option<Result<WatchdogConfig, WatchdogConfigError>> {
        let secs = get("VOX_WATCHDOG_IDLE_SECS")?;
        Some((|| {
            let secs: f64 = secs
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| *s > 0.0)
                .ok_or_else(|| {
                    WatchdogConfigError(format!(
                        "VOX_WATCHDOG_IDLE_SECS={secs:?}: expected seconds > 0"
                    ))
                })?;
            let id = get("CONTAINER_ID").ok_or_else(|| {
                WatchdogConfigError(
                    "CONTAINER_ID is not set (Vast.ai sets it in the container)".into(),
                )
            })?;
            let instance_id = id.trim().parse().map_err(|_| {
                WatchdogConfigError(format!("CONTAINER_ID={id:?} is not an instance id"))
            })?;
            let api_key = get("VOX_WATCHDOG_VAST_KEY")
                .or_else(|| get("CONTAINER_API_KEY"))
                .ok_or_else(|| {
                    WatchdogConfigError(
                        "neither VOX_WATCHDOG_VAST_KEY nor CONTAINER_API_KEY is set".into(),
                    )
                })?;
            Ok(WatchdogConfig {
                vast_url: get("VAST_URL").unwrap_or_else(|| VAST_BASE_URL.to_owned()),
                api_key,
                instance_id,
                idle_deadline: Duration::from_secs_f64(secs),
                check_every: Duration::from_secs(30).min(Duration::from_secs_f64(secs / 4.0)),
            })
        })())
    }
}

/// How the watchdog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogOutcome {
    /// It stopped the instance.
    Stopped,
    /// `shutdown` completed first.
    ShutDown,
}

/// Watches `idle` every `check_every` until the server has had nothing in flight for `idle_deadline`, then
/// stops instance `instance_id`. A failed stop call is logged and tried again at the next check.
pub async fn run(
    cfg: WatchdogConfig,
    idle: impl Fn() -> IdleSignal + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<WatchdogOutcome, VastError> {
    let client = VastClient::new(&cfg.vast_url, cfg.api_key.clone())?;
    tracing::info!(
        instance = cfg.instance_id,
        idle_deadline_s = cfg.idle_deadline.as_secs_f64(),
        "idle watchdog armed"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(WatchdogOutcome::ShutDown),
            _ = tokio::time::sleep(cfg.check_every) => {}
        }
        let s = idle();
        if s.in_flight > 0 || s.idle_seconds < cfg.idle_deadline.as_secs_f64() {
            continue;
        }
        tracing::warn!(
            instance = cfg.instance_id,
            idle_s = s.idle_seconds,
            "idle past the watchdog deadline; stopping this instance"
        );
        match client.stop_instance(cfg.instance_id).await {
            Ok(()) => return Ok(WatchdogOutcome::Stopped),
            Err(e) => tracing::error!(instance = cfg.instance_id, "watchdog stop failed: {e}"),
        }
    }
}
