//! The `vox serve` watchdog stops its own instance through vastsim with the instance's scoped key, only once
//! the idle signal passes the deadline with nothing in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vastsim::{SimConfig, VastSim};
use vox_fleet::watchdog::{self, IdleSignal, WatchdogConfig, WatchdogOutcome};
use vox_fleet::{CreateInstance, VastClient};

#[tokio::test]
async fn the_watchdog_stops_its_own_instance_after_the_idle_deadline() {
    let sim = VastSim::start(SimConfig::default()).await.unwrap();
    let owner = VastClient::new(sim.url(), sim.api_key()).unwrap();
    let created = owner
        .create_instance(5560, &CreateInstance::new("img"))
        .await
        .unwrap();
    let scoped = created
        .instance_api_key
        .expect("create returns the instance key");
    // Env as Vast sets it in the container.
    let env = [
        ("VOX_WATCHDOG_IDLE_SECS", "3600".to_owned()),
        ("CONTAINER_ID", created.id.to_string()),
        ("CONTAINER_API_KEY", scoped),
        ("VAST_URL", sim.url().to_owned()),
    ];
    let cfg =
        WatchdogConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap()
            .unwrap();
    assert_eq!(cfg.idle_deadline, Duration::from_secs(3600));
    let cfg = WatchdogConfig {
        check_every: Duration::from_millis(5),
        ..cfg
    };

    // The signal the test controls: busy, then idle but not long enough, then past the deadline.
    let signal = Arc::new(Mutex::new(IdleSignal {
        in_flight: 1,
        idle_seconds: 0.0,
    }));
    let reads = Arc::new(Mutex::new(Vec::new()));
    let (s, r) = (signal.clone(), reads.clone());
    let dog = tokio::spawn(watchdog::run(
        cfg,
        move || {
            let v = *s.lock().unwrap();
            r.lock().unwrap().push(v);
            v
        },
        std::future::pending(),
    ));
    let wait_reads = |n: usize| {
        let reads = reads.clone();
        async move {
            while reads.lock().unwrap().len() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_reads(3).await;
    *signal.lock().unwrap() = IdleSignal {
        in_flight: 1,
        idle_seconds: 7200.0,
    };
    let n = reads.lock().unwrap().len();
    wait_reads(n + 3).await;
    *signal.lock().unwrap() = IdleSignal {
        in_flight: 0,
        idle_seconds: 3599.0,
    };
    let n = reads.lock().unwrap().len();
    wait_reads(n + 3).await;
    let row = owner.show_instance(created.id).await.unwrap().unwrap();
    assert!(
        row.intends_running(),
        "not stopped before the deadline or while busy"
    );

    *signal.lock().unwrap() = IdleSignal {
        in_flight: 0,
        idle_seconds: 3600.0,
    };
    assert_eq!(dog.await.unwrap().unwrap(), WatchdogOutcome::Stopped);
    let row = owner.show_instance(created.id).await.unwrap().unwrap();
    assert!(!row.intends_running());
    // It used the scoped key on its own instance only.
    let puts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/instances/"))
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].status, 200);
}

#[test]
fn the_watchdog_is_opt_in_and_explains_missing_variables() {
    assert!(WatchdogConfig::from_lookup(|_| None).is_none());
    let err =
        WatchdogConfig::from_lookup(|k| (k == "VOX_WATCHDOG_IDLE_SECS").then(|| "600".to_owned()))
            .unwrap()
            .unwrap_err();
    assert!(err.to_string().contains("CONTAINER_ID"), "{err}");
}
