//! [`LocalProvider`]: one "instance" that is a `vox serve` child process on this machine — the embedded
//! default for the demo and tests, with the same lifecycle as a rented GPU (start = spawn, stop = SIGTERM,
//! then SIGKILL after a grace period; the models directory is the persistent volume) and configurable
//! prices, so cost accounting works the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

use crate::provider::{InstanceInfo, Provider, SERVER_KEY_ENV, new_server_key};
use crate::types::{ActualStatus, Endpoint, StartOutcome};
use crate::{Observation, ProviderError};

/// The local instance's id.
pub const LOCAL_ID: u64 = 1;

/// How the local server runs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The `vox` binary.
    pub vox_bin: PathBuf,
    /// The model volume (`MODELS_DIR` of the child); kept across stops.
    pub models_dir: PathBuf,
    /// Extra arguments after `vox serve --bind 127.0.0.1:0` (e.g. `--manifest FILE`).
    pub args: Vec<String>,
    /// Extra environment for the child.
    pub env: Vec<(String, String)>,
    /// The server's API key; `None` makes a random one per provider.
    pub api_key: Option<String>,
    /// Prices for cost accounting (0 by default: this machine is already paid for).
    pub gpu_dph: f64,
    pub storage_dph: f64,
    /// After SIGTERM, how long the server may drain before SIGKILL.
    pub stop_grace: Duration,
    /// Where the child's stderr goes (`None`: inherited).
    pub log: Option<PathBuf>,
}

impl LocalConfig {
    /// `vox` next to the current executable, serving from `models_dir`.
    pub fn new(models_dir: impl Into<PathBuf>) -> LocalConfig {
        let vox_bin = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("vox")))
            .unwrap_or_else(|| PathBuf::from("vox"));
        LocalConfig {
            vox_bin,
            models_dir: models_dir.into(),
            args: Vec::new(),
            env: Vec::new(),
            api_key: None,
            gpu_dph: 0.0,
            storage_dph: 0.0,
            stop_grace: Duration::from_secs(40),
            log: None,
        }
    }
}

struct Running {
    child: Child,
    addr: Arc<Mutex<Option<SocketAddr>>>,
}

/// [`Provider`] running `vox serve` as a child process (one instance, id [`LOCAL_ID`]).
pub struct LocalProvider {
    cfg: LocalConfig,
    api_key: String,
    child: tokio::sync::Mutex<Option<Running>>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl LocalProvider {
    pub fn new(cfg: LocalConfig) -> LocalProvider {
        let api_key = cfg.api_key.clone().unwrap_or_else(new_server_key);
        LocalProvider {
            cfg,
            api_key,
            child: tokio::sync::Mutex::new(None),
        }
    }

    /// The child's process id while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(|r| r.child.id())
    }

    fn spawn(&self) -> Result<Running, ProviderError> {
        let fail = |reason: String| ProviderError::Local { reason };
        std::fs::create_dir_all(&self.cfg.models_dir).map_err(|e| {
            fail(format!(
                "cannot create the models dir {}: {e}",
                self.cfg.models_dir.display()
            ))
        })?;
        let mut cmd = Command::new(&self.cfg.vox_bin);
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .args(&self.cfg.args)
            .env("MODELS_DIR", &self.cfg.models_dir)
            .env(SERVER_KEY_ENV, &self.api_key)
            .envs(self.cfg.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match &self.cfg.log {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| fail(format!("cannot open the log {}: {e}", p.display())))?;
                cmd.stderr(f);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        // If this worker dies (even by SIGKILL), the kernel sends the server SIGTERM and it drains and exits:
        // the local analogue of the watchdog, so no "instance" outlives its worker. The signal follows the
        // thread that spawned the child; here that is a runtime worker thread, which lives as long as the
        // runtime.
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            fail(format!(
                "cannot run {} (set the vox binary path): {e}",
                self.cfg.vox_bin.display()
            ))
        })?;
        let addr = Arc::new(Mutex::new(None));
        let stdout = child.stdout.take().expect("stdout is piped");
        let seen = addr.clone();
        // `vox serve` prints one `{"event":"listening","addr":...}` line; keep draining so it never blocks.
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["event"] == "listening"
                    && let Some(a) = v["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    *seen.lock().unwrap() = Some(a);
                }
            }
        });
        tracing::info!(bin = %self.cfg.vox_bin.display(), pid = ?child.id(), "started local vox serve");
        Ok(Running { child, addr })
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling our own child by pid; it has not been reaped (id() is Some).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
        tracing::warn!(
            pid,
            "vox serve did not exit within {grace:?} of SIGTERM; killing it"
        );
    }
    let _ = child.kill().await;
}

impl Provider for LocalProvider {
    fn kind(&self) -> &str {
        "local"
    }

    async fn candidates(&self) -> Result<Vec<u64>, ProviderError> {
        Ok(vec![LOCAL_ID])
    }

    async fn create(&self, _avoid: &[u64]) -> Result<u64, ProviderError> {
        Err(ProviderError::Local {
            reason: "the local provider has one instance and cannot create another".to_owned(),
        })
    }

    async fn start(&self, id: u64) -> Result<StartOutcome, ProviderError> {
        check(id)?;
        let mut g = self.child.lock().await;
        if let Some(r) = g.as_mut()
            && r.child.try_wait().ok().flatten().is_none()
        {
            return Ok(StartOutcome::Accepted);
        }
        *g = Some(self.spawn()?);
        Ok(StartOutcome::Accepted)
    }

    async fn stop(&self, id: u64) -> Result<(), ProviderError> {
        check(id)?;
        let mut g = self.child.lock().await;
        if let Some(mut r) = g.take() {
            terminate(&mut r.child, self.cfg.stop_grace).await;
            tracing::info!("stopped local vox serve");
        }
        Ok(())
    }

    async fn status(&self, id: u64) -> Result<Observation, ProviderError> {
        check(id)?;
        let mut g = self.child.lock().await;
        let Some(r) = g.as_mut() else {
            return Ok(Observation {
                actual: ActualStatus::Exited,
                intends_running: false,
                endpoint: None,
                failed: false,
            });
        };
        match r.child.try_wait() {
            Ok(None) => {
                let addr = *r.addr.lock().unwrap();
                Ok(Observation {
                    actual: if addr.is_some() {
                        ActualStatus::Running
                    } else {
                        ActualStatus::Loading
                    },
                    intends_running: true,
                    endpoint: addr.map(|a| Endpoint {
                        host: a.ip().to_string(),
                        port: a.port(),
                    }),
                    failed: false,
                })
            }
            // Exited on its own (crash, bad config): a failure while we wanted it running.
            Ok(Some(status)) => {
                tracing::warn!(%status, "local vox serve exited");
                Ok(Observation {
                    actual: ActualStatus::Exited,
                    intends_running: true,
                    endpoint: None,
                    failed: !status.success(),
                })
            }
            Err(e) => Err(ProviderError::Local {
                reason: format!("cannot check the vox serve process: {e}"),
            }),
        }
    }

    async fn endpoint(&self, id: u64) -> Result<Option<Endpoint>, ProviderError> {
        Ok(self.status(id).await?.endpoint)
    }

    async fn info(&self, id: u64) -> Result<InstanceInfo, ProviderError> {
        check(id)?;
        Ok(InstanceInfo {
            api_key: Some(self.api_key.clone()),
            gpu_dph: self.cfg.gpu_dph,
            storage_dph: self.cfg.storage_dph,
        })
    }
}

fn check(id: u64) -> Result<(), ProviderError> {
    if id == LOCAL_ID {
        Ok(())
    } else {
        Err(ProviderError::Gone { id })
    }
}
