//! `Fleet` against vastsim running a real `vox serve` behind each instance's published port: one start for
//! many concurrent acquires, idle stop, two workers sharing an instance, faults, fall-back and costs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use vastsim::Fault;
use vox_fleet::{
    Fleet, FleetError, InstancePhase, LeaseStore, MemoryLedger, Provider, ProviderError,
};

#[tokio::test]
async fn concurrent_acquires_start_a_stopped_instance_once() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let p = w.provider(vec![]);
    let id = p.create(&[]).await.unwrap();
    p.stop(id).await.unwrap();
    p.status(id).await.unwrap();
    assert_eq!(w.status(id), "exited");
    let puts_before = w.puts(id);

    let fleet = Fleet::new(p, Arc::new(MemoryLedger::new()), w.config("worker-a"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let f = fleet.clone();
            tokio::spawn(async move { f.acquire().await })
        })
        .collect();
    let mut guards = Vec::new();
    for t in tasks {
        guards.push(t.await.unwrap().unwrap());
    }
    assert_eq!(w.puts(id) - puts_before, 1, "one start call");
    let base = guards[0].base_url().to_owned();
    assert!(guards.iter().all(|g| g.base_url() == base && g.id() == id));
    assert_eq!(guards[0].instance(), format!("vast/{id}"));
    // Reached through the published port the API reports.
    let row = w.sim.instance_json(id).unwrap();
    assert_eq!(
        base,
        format!(
            "http://127.0.0.1:{}",
            row["ports"]["8000/tcp"][0]["HostPort"].as_str().unwrap()
        )
    );
    assert!(ready(&base).await);
    // The server key is the instance's own VOX_API_KEY: /idle (authenticated) answers with it, not without.
    let key = guards[0]
        .api_key()
        .expect("the instance has a server key")
        .to_owned();
    let http = reqwest::Client::new();
    let idle = |k: Option<String>| {
        let mut r = http.get(format!("{base}/idle"));
        if let Some(k) = k {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    assert_eq!(idle(Some(key)).await.unwrap().status(), 200);
    assert_eq!(idle(None).await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_idle_instance_is_stopped_after_the_timeout_and_started_again() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let fleet = Fleet::new(
        w.provider(vec![]),
        Arc::new(MemoryLedger::new()),
        w.config("a"),
    );
    let g = fleet.acquire().await.unwrap();
    let (id, base) = (g.id(), g.base_url().to_owned());
    w.sim.advance(Duration::from_secs(1000));
    fleet.check_idle().await;
    assert_eq!(w.status(id), "running", "in use: never stopped");
    drop(g);

    w.sim.advance(Duration::from_secs(299));
    fleet.check_idle().await;
    assert_eq!(w.status(id), "running", "not idle long enough");
    w.sim.advance(Duration::from_secs(1));
    fleet.check_idle().await;
    assert_eq!(w.status(id), "exited");
    eventually(async || !ready(&base).await).await;

    let g = fleet.acquire().await.unwrap();
    assert_eq!(g.id(), id, "the same instance, started again");
    assert!(ready(g.base_url()).await);
}

#[tokio::test]
async fn two_workers_never_stop_an_instance_the_other_uses() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let ledger = Arc::new(MemoryLedger::new());
    let a = Fleet::new(w.provider(vec![]), ledger.clone(), w.config("worker-a"));
    let ga = a.acquire().await.unwrap();
    let id = ga.id();
    let b = Fleet::new(w.provider(vec![]), ledger.clone(), w.config("worker-b"));
    let gb = b.acquire().await.unwrap();
    assert_eq!(
        gb.id(),
        id,
        "b uses a's instance instead of renting another"
    );
    assert_eq!(w.sim.instance_ids(), [id]);
    drop(gb);

    w.sim.advance(Duration::from_secs(400));
    b.check_idle().await;
    assert_eq!(w.status(id), "running", "b is idle but a holds it");
    let holders: Vec<String> = ledger
        .leases(&format!("vast/{id}"))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.holder)
        .collect();
    assert_eq!(holders, ["worker-a"], "b let go of its lease");

    drop(ga);
    w.sim.advance(Duration::from_secs(400));
    a.check_idle().await;
    assert_eq!(w.status(id), "exited", "nobody uses it now");
}

#[tokio::test]
async fn rate_limit_storms_and_server_errors_are_retried() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let fleet = Fleet::new(
        w.provider(vec![]),
        Arc::new(MemoryLedger::new()),
        w.config("a"),
    );
    w.sim.inject(Fault::rate_limited(6, Some("0")));
    w.sim.inject(Fault {
        status: 500,
        body: r#"{"success": false, "error": "server_error", "msg": "boom"}"#.to_owned(),
        retry_after: None,
        times: 5,
    });
    let g = fleet.acquire().await.unwrap();
    assert!(ready(g.base_url()).await);
    let statuses: Vec<u16> = w.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 6);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 5);
}

#[tokio::test]
async fn persistent_server_errors_fail_with_a_clear_reason_after_bounded_retries() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let fleet = Fleet::new(
        w.provider(vec![]),
        Arc::new(MemoryLedger::new()),
        w.config("a"),
    );
    w.sim.inject(Fault {
        status: 503,
        body: "upstream down".to_owned(),
        retry_after: None,
        times: 10_000,
    });
    let err = fleet.acquire().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("HTTP 503"), "{msg}");
    let calls = w.sim.requests().len();
    assert!(calls < 100, "bounded: {calls} calls");
}

#[tokio::test]
async fn a_start_stuck_in_scheduling_is_cancelled_and_the_fleet_falls_back() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let p = w.provider(vec![]);
    let stuck = p.create(&[]).await.unwrap();
    p.stop(stuck).await.unwrap();
    p.status(stuck).await.unwrap();
    w.sim.set_start_blocked(stuck, true);

    let fleet = Fleet::new(p, Arc::new(MemoryLedger::new()), w.config("a"));
    let f = fleet.clone();
    let task = tokio::spawn(async move { f.acquire().await });
    let sim = w.sim.clone();
    eventually(async || {
        sim.instance_json(stuck).unwrap()["status_msg"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable"))
    })
    .await;
    w.sim.advance(Duration::from_secs(61));
    let g = task.await.unwrap().unwrap();
    assert_ne!(g.id(), stuck, "a new instance from an offer");
    assert!(ready(g.base_url()).await);
    let old = w.sim.instance_json(stuck).unwrap();
    assert_eq!(
        old["intended_status"], "stopped",
        "the queued start was cancelled"
    );
    // The new instance is on another machine than the one whose GPU was taken.
    let new = w.sim.instance_json(g.id()).unwrap();
    assert_ne!(new["machine_id"], old["machine_id"]);
}

#[tokio::test]
async fn an_instance_destroyed_under_us_is_replaced_or_reported() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let fleet = Fleet::new(
        w.provider(vec![]),
        Arc::new(MemoryLedger::new()),
        w.config("a"),
    );
    let g = fleet.acquire().await.unwrap();
    let (id, base) = (g.id(), g.base_url().to_owned());
    drop(g);
    assert!(w.sim.destroy(id));
    eventually(async || !ready(&base).await).await;

    // The worker notices when its request fails and tells the fleet.
    let g = fleet.acquire().await.unwrap();
    assert!(!ready(g.base_url()).await);
    g.mark_broken();
    drop(g);
    let g = fleet.acquire().await.unwrap();
    assert_ne!(g.id(), id, "re-created");
    assert!(ready(g.base_url()).await);
    let new = g.id();
    drop(g);

    // Without permission to create, the error names the cause.
    let mut cfg = w.config("b");
    cfg.create_when_exhausted = false;
    let strict = Fleet::new(w.provider(vec![new]), Arc::new(MemoryLedger::new()), cfg);
    assert!(w.sim.destroy(new));
    let err = strict.acquire().await.unwrap_err();
    assert!(matches!(err, FleetError::NoInstance { .. }), "{err}");
    let err = w.provider(vec![]).status(new).await.unwrap_err();
    assert!(matches!(err, ProviderError::Gone { .. }));
}

#[tokio::test]
async fn recorded_cost_intervals_match_the_simulators_billing() {
    let Some(vox) = vox_bin() else { return };
    let w = world(&vox).await;
    let ledger = Arc::new(MemoryLedger::new());
    let fleet = Fleet::new(w.provider(vec![]), ledger.clone(), w.config("a"));
    let g = fleet.acquire().await.unwrap();
    let id = g.id();
    w.sim.advance(Duration::from_secs(100));
    drop(g);
    w.sim.advance(Duration::from_secs(300));
    fleet.check_idle().await;
    assert_eq!(w.status(id), "exited");
    w.sim.advance(Duration::from_secs(50));
    let g = fleet.acquire().await.unwrap();
    w.sim.advance(Duration::from_secs(20));
    drop(g);
    fleet.flush_costs().await.unwrap();

    let bill = w.sim.billing(id).unwrap();
    let intervals = ledger.intervals();
    let running: f64 = intervals
        .iter()
        .filter(|i| i.phase == InstancePhase::Running)
        .map(|i| i.seconds())
        .sum();
    let total: f64 = intervals.iter().map(|i| i.seconds()).sum();
    let usd: f64 = intervals.iter().map(|i| i.dollars()).sum();
    // Millisecond rounding of the recorded bounds is the only difference.
    assert!(
        (running - bill.gpu_seconds).abs() < 0.01,
        "{running} vs {}",
        bill.gpu_seconds
    );
    assert!(
        (total - bill.storage_seconds).abs() < 0.01,
        "{total} vs {}",
        bill.storage_seconds
    );
    assert!((usd - bill.usd).abs() < 1e-6, "{usd} vs {}", bill.usd);
    // Running 0 → 400 s (100 s in use, 300 s idle), stopped 50 s, running 20 s more.
    assert!(
        (bill.gpu_seconds - 420.0).abs() < 0.01,
        "{}",
        bill.gpu_seconds
    );
    assert!(
        intervals
            .iter()
            .any(|i| i.phase == InstancePhase::Stopped && i.seconds() >= 50.0)
    );
}
