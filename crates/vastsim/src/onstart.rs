//! Running an instance's `onstart` on this machine, the simulator's stand-in for a container.
//!
//! When an instance reaches `running` the simulator runs its `onstart` with `sh -c` in a fresh process group,
//! in a per-instance directory that plays the container disk (kept across stop/start, removed at destroy).
//! There is no network namespace, so the port mapping is emulated: the process gets the variables Vast sets
//! in a container (`VAST_TCP_PORT_<inner>` = the published host port, `PUBLIC_IPADDR`, `CONTAINER_ID`,
//! `CONTAINER_API_KEY`, `DATA_DIRECTORY`) plus the instance's create `env`, and a `VOX_BIND` of
//! `0.0.0.0:<inner>` in that env is rewritten to `127.0.0.1:<published host port>`: `vox serve` listens
//! directly on the port the API reports, so clients reach it through `public_ipaddr:HostPort` as on Vast.
//! `PATH` starts with the directory of the configured `vox` binary (linked as `vox`). A stop sends SIGTERM
//! to the process group at once (as `docker stop` does) and SIGKILL after a grace period; destroy too.

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::{Instance, Phase};

/// Enables running `onstart` (off by default: the simulator then only stores it).
#[derive(Debug, Clone)]
pub struct OnstartConfig {
    /// The `vox` binary put first on the `PATH` of `onstart`.
    pub vox_bin: Option<PathBuf>,
    /// Parent of the per-instance directories (`<workdir>/instance-<id>`).
    pub workdir: PathBuf,
    /// SIGTERM → SIGKILL grace at stop and destroy.
    pub stop_grace: Duration,
}

impl OnstartConfig {
    pub fn new(workdir: impl Into<PathBuf>) -> OnstartConfig {
        OnstartConfig {
            vox_bin: None,
            workdir: workdir.into(),
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// The onstart processes, by instance id.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    running: HashMap<u64, Child>,
}

impl Procs {
    /// Starts `onstart` for instances that run and have none; ends the processes of instances that stop,
    /// stopped, or are gone.
    pub fn reconcile<'a>(
        &mut self,
        cfg: &OnstartConfig,
        instances: impl Iterator<Item = &'a Instance>,
    ) {
        let mut alive = Vec::new();
        for inst in instances {
            let should_run = matches!(inst.phase, Phase::Running { .. }) && !inst.stopping;
            if should_run {
                alive.push(inst.id);
                if !self.running.contains_key(&inst.id) && inst.onstart.is_some() {
                    match spawn(cfg, inst) {
                        Ok(c) => {
                            self.running.insert(inst.id, c);
                        }
                        Err(e) => {
                            tracing::error!(id = inst.id, "vastsim: onstart failed to spawn: {e}")
                        }
                    }
                }
            }
        }
        let ended: Vec<u64> = self
            .running
            .keys()
            .copied()
            .filter(|id| !alive.contains(id))
            .collect();
        for id in ended {
            if let Some(c) = self.running.remove(&id) {
                terminate(c, cfg.stop_grace);
            }
        }
    }

    /// Ends every process (simulator shutdown).
    pub fn kill_all(&mut self) {
        for (_, c) in self.running.drain() {
            terminate(c, Duration::ZERO);
        }
    }
}

/// The instance's directory (its "disk").
pub(crate) fn instance_dir(cfg: &OnstartConfig, id: u64) -> PathBuf {
    cfg.workdir.join(format!("instance-{id}"))
}

fn spawn(cfg: &OnstartConfig, inst: &Instance) -> std::io::Result<Child> {
    let dir = instance_dir(cfg, inst.id);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(inst.onstart.as_deref().unwrap_or(""))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .process_group(0);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("onstart.log"))?;
    cmd.stdout(log.try_clone()?).stderr(log);
    if let Some(bin) = &cfg.vox_bin {
        let bindir = dir.join(".bin");
        std::fs::create_dir_all(&bindir)?;
        let link = bindir.join("vox");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(bin, &link)?;
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", bindir.display()));
    }
    for (k, v) in &inst.env {
        if k.starts_with('-') {
            continue;
        }
        cmd.env(k, v);
    }
    for (inner, host) in &inst.port_map {
        cmd.env(format!("VAST_TCP_PORT_{inner}"), host.to_string());
    }
    if let Some((_, bind)) = inst.env.iter().find(|(k, _)| k == "VOX_BIND") {
        let inner = bind.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        if let Some(host) = inner.and_then(|p| inst.port_map.get(&p)) {
            cmd.env("VOX_BIND", format!("127.0.0.1:{host}"));
        }
    }
    cmd.env("PUBLIC_IPADDR", crate::PUBLIC_IP.trim())
        .env("CONTAINER_ID", inst.id.to_string())
        .env("CONTAINER_API_KEY", crate::api::instance_key(inst.id))
        .env("DATA_DIRECTORY", &dir);
    if !inst.env.iter().any(|(k, _)| k == "MODELS_DIR") {
        cmd.env("MODELS_DIR", dir.join("models"));
    }
    let child = cmd.spawn()?;
    tracing::info!(id = inst.id, pid = child.id(), "vastsim: onstart running");
    Ok(child)
}

/// SIGTERM to the process group, SIGKILL after `grace`; reaped on a helper thread so callers never block.
fn terminate(mut child: Child, grace: Duration) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: signalling a process group we created (process_group(0) made the child its leader).
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    std::thread::spawn(move || {
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                // The leader exited; make sure nothing it started lingers.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    });
}
