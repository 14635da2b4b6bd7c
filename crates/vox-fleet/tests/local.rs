//! `LocalProvider` under a `Fleet`: `vox serve` as a child process on 127.0.0.1 with its own key, stopped when
//! idle (SIGTERM) and started again, with the restart measured and costs at the configured prices.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use vox_fleet::{
    Fleet, FleetConfig, IdlePolicy, InstancePhase, LOCAL_ID, LocalConfig, LocalProvider,
    MemoryLedger, Provider,
};

#[tokio::test]
async fn the_local_provider_serves_stops_when_idle_and_restarts() {
    let Some(vox) = vox_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let manifest = empty_manifest(dir.path());
    let provider = LocalProvider::new(LocalConfig {
        vox_bin: vox,
        args: vec!["--manifest".into(), manifest.display().to_string()],
        gpu_dph: 0.36,
        storage_dph: 0.036,
        stop_grace: Duration::from_secs(30),
        log: Some(dir.path().join("serve.log")),
        ..LocalConfig::new(dir.path().join("models"))
    });
    let ledger = Arc::new(MemoryLedger::new());
    let fleet = Fleet::new(
        provider,
        ledger.clone(),
        FleetConfig {
            idle: IdlePolicy::Fixed(Duration::ZERO),
            poll_interval: Duration::from_millis(20),
            ..FleetConfig::new("local-test")
        },
    );
    let g = fleet.acquire().await.unwrap();
    assert_eq!(g.instance(), format!("local/{LOCAL_ID}"));
    assert!(
        g.base_url().starts_with("http://127.0.0.1:"),
        "{}",
        g.base_url()
    );
    let key = g.api_key().unwrap().to_owned();
    let http = reqwest::Client::new();
    let idle = http.get(format!("{}/idle", g.base_url()));
    assert_eq!(
        idle.try_clone().unwrap().send().await.unwrap().status(),
        401
    );
    assert_eq!(idle.bearer_auth(&key).send().await.unwrap().status(), 200);
    let pid = fleet.provider().pid().await.unwrap();
    let base = g.base_url().to_owned();

    fleet.check_idle().await;
    assert!(ready(&base).await, "in use: still serving");
    drop(g);
    fleet.check_idle().await;
    assert_eq!(fleet.provider().pid().await, None);
    // SIGTERM ended the process (it was reaped: signal 0 finds no such process).
    assert_ne!(unsafe { libc::kill(pid as i32, 0) }, 0);
    let o = fleet.provider().status(LOCAL_ID).await.unwrap();
    assert!(!o.intends_running);
    assert!(!ready(&base).await);

    let g = fleet.acquire().await.unwrap();
    assert!(ready(g.base_url()).await);
    assert_eq!(fleet.restart_samples().len(), 2, "two starts measured");
    drop(g);
    fleet.flush_costs().await.unwrap();
    let intervals = ledger.intervals();
    assert!(intervals.iter().any(|i| i.phase == InstancePhase::Running));
    assert!(
        intervals
            .iter()
            .all(|i| i.gpu_dph == 0.36 && i.storage_dph == 0.036)
    );
}
