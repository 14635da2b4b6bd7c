//! Shared setup for the fleet tests: vastsim running each instance's `onstart` with the real `vox` binary,
//! which serves an empty manifest (ready at once, no model files or network needed).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vastsim::{OnstartConfig, SimConfig, VastSim};
use vox_fleet::{
    Clock, CreateInstance, FleetConfig, IdlePolicy, LifecyclePolicy, OfferQuery, Op, RetryPolicy,
    VastClient, VastProvider, VastRole,
};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The `vox` binary: `$VOX_BIN`, else the workspace's debug build (`cargo test --workspace` builds it; alone:
/// `cargo build -p vox-cli`). Missing: fails under CI, skips (prints why) elsewhere.
pub fn vox_bin() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = std::env::var_os("VOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("debug/vox"));
    if p.exists() {
        return Some(p);
    }
    assert!(
        !in_ci(),
        "the vox binary {} is required under CI (cargo build -p vox-cli)",
        p.display()
    );
    eprintln!(
        "SKIPPED: no vox binary at {}; run cargo build -p vox-cli or set VOX_BIN",
        p.display()
    );
    None
}

/// A manifest with no models: `vox serve` is ready as soon as it listens.
pub fn empty_manifest(dir: &Path) -> PathBuf {
    let p = dir.join("empty.toml");
    std::fs::write(&p, "models = []\n").unwrap();
    p
}

/// The fleet's clock is the simulator's (manual) clock, so deadlines, idle time and cost intervals follow
/// `sim.advance` exactly.
pub struct SimClock(pub VastSim);

impl Clock for SimClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

pub struct World {
    pub sim: VastSim,
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
}

/// vastsim on a manual clock with zero delays (every poll advances an instance one step), running onstart.
pub async fn world(vox: &Path) -> World {
    let dir = tempfile::tempdir().unwrap();
    let manifest = empty_manifest(dir.path());
    let sim = VastSim::start(SimConfig {
        onstart: Some(OnstartConfig {
            vox_bin: Some(vox.to_path_buf()),
            ..OnstartConfig::new(dir.path().join("hosts"))
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    World { sim, dir, manifest }
}

impl World {
    pub fn client(&self) -> VastClient {
        VastClient::new(self.sim.url(), self.sim.api_key())
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_secs(1),
            })
    }

    pub fn role(&self, instances: Vec<u64>) -> VastRole {
        let mut create = CreateInstance::new("ghcr.io/example/vox:latest");
        create.onstart = Some(format!(
            "exec vox serve --manifest {}",
            self.manifest.display()
        ));
        VastRole {
            label: "vox-test".to_owned(),
            instances,
            offers: OfferQuery::default()
                .filter("gpu_ram", Op::Gte, 24000)
                .filter("direct_port_count", Op::Gte, 2)
                .allocated_storage(40.0),
            create,
            server_port: 8000,
        }
    }

    pub fn provider(&self, instances: Vec<u64>) -> VastProvider {
        VastProvider::new(self.client(), self.role(instances))
    }

    pub fn config(&self, holder: &str) -> FleetConfig {
        FleetConfig {
            lease_ttl: Duration::from_secs(30),
            policy: LifecyclePolicy {
                queued_deadline: Duration::from_secs(60),
                boot_deadline: Duration::from_secs(600),
                idle_timeout: Duration::from_secs(300),
            },
            idle: IdlePolicy::Fixed(Duration::from_secs(300)),
            poll_interval: Duration::from_millis(20),
            idle_check: Duration::from_millis(20),
            clock: Arc::new(SimClock(self.sim.clone())),
            ..FleetConfig::new(holder)
        }
    }

    /// PUTs to instance `id` (start/stop calls) seen by the simulator.
    pub fn puts(&self, id: u64) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| {
                r.method == "PUT"
                    && r.path.trim_end_matches('/') == format!("/api/v0/instances/{id}")
            })
            .count()
    }

    pub fn status(&self, id: u64) -> String {
        self.sim.instance_json(id).unwrap()["actual_status"]
            .as_str()
            .unwrap_or("null")
            .to_owned()
    }
}

/// GET `{base}/ready`: whether a server answers 200.
pub async fn ready(base: &str) -> bool {
    reqwest::get(format!("{base}/ready"))
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Waits (polling) until `f` holds; the simulator or a child process acts asynchronously.
pub async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..1500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}
