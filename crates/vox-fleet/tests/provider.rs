//! `VastProvider` driven by the lifecycle state machine against `vastsim`: acquire by label, start to a
//! published endpoint, idle stop, and a queued start that is cancelled at its deadline.

use std::time::{Duration, Instant};

use vastsim::{SimConfig, VastSim};
use vox_fleet::lifecycle::step;
use vox_fleet::{
    Action, CreateInstance, LifecycleEvent, LifecyclePolicy, LifecycleState, OfferQuery, Op,
    Provider, VastClient, VastProvider, VastRole,
};

async fn provider() -> (VastSim, VastProvider) {
    let sim = VastSim::start(SimConfig::default()).await.unwrap();
    let client = VastClient::new(sim.url(), sim.api_key()).unwrap();
    let role = VastRole {
        label: "vox-tts-1".to_owned(),
        instances: Vec::new(),
        offers: OfferQuery::default()
            .filter("gpu_ram", Op::Gte, 24000)
            .filter("direct_port_count", Op::Gte, 2)
            .allocated_storage(40.0),
        create: CreateInstance::new("ghcr.io/example/vox:latest"),
        server_port: 8000,
    };
    (sim, VastProvider::new(client, role))
}

/// Performs one action against the provider and returns the event it produced.
async fn perform(p: &VastProvider, id: u64, action: &Action) -> Option<LifecycleEvent> {
    match action {
        Action::Start => Some(LifecycleEvent::StartAnswered(p.start(id).await.unwrap())),
        Action::Stop => {
            p.stop(id).await.unwrap();
            Some(LifecycleEvent::Observed(p.status(id).await.unwrap()))
        }
        Action::Poll => Some(LifecycleEvent::Observed(p.status(id).await.unwrap())),
        // No speech server runs behind the simulator: the endpoint being published stands for health.
        Action::CheckHealth(ep) => Some(LifecycleEvent::Health {
            endpoint: ep.clone(),
            ok: true,
        }),
        Action::Serve(_) | Action::FallBack(_) => None,
    }
}

/// Feeds `event` and the events its actions produce until the machine waits; returns all actions.
async fn run(
    p: &VastProvider,
    id: u64,
    state: &mut LifecycleState,
    event: LifecycleEvent,
    now: Instant,
    policy: &LifecyclePolicy,
) -> Vec<Action> {
    let mut pending = vec![event];
    let mut done = Vec::new();
    for _ in 0..20 {
        let Some(event) = pending.pop() else { break };
        let t = step(state, &event, now, policy);
        *state = t.state;
        for action in t.actions {
            if let Some(e) = perform(p, id, &action).await {
                pending.push(e);
            }
            done.push(action);
        }
    }
    done
}

#[tokio::test]
async fn acquire_reuses_the_labelled_instance() {
    let (sim, p) = provider().await;
    let id = p.acquire().await.unwrap();
    assert_eq!(p.acquire().await.unwrap(), id);
    assert_eq!(sim.instance_ids(), [id]);
    let row = sim.instance_json(id).unwrap();
    assert_eq!(row["label"], "vox-tts-1");
    // The cheapest offer with ≥ 24 GB and direct ports.
    assert_eq!(row["bundle_id"], 5560);
}

#[tokio::test]
async fn lifecycle_runs_to_ready_then_idles_to_stopped() {
    let (sim, p) = provider().await;
    let id = p.acquire().await.unwrap();
    p.stop(id).await.unwrap();
    p.status(id).await.unwrap();
    let policy = LifecyclePolicy::default();
    let t0 = Instant::now();
    let mut state = LifecycleState::Stopped;

    let actions = run(&p, id, &mut state, LifecycleEvent::Wanted, t0, &policy).await;
    let LifecycleState::Idle { endpoint, .. } = &state else {
        panic!("not ready: {state:?} after {actions:?}");
    };
    assert_eq!(actions.last(), Some(&Action::Serve(endpoint.clone())));
    assert_eq!(endpoint.host, "127.0.0.1");
    let row = sim.instance_json(id).unwrap();
    let published = row["ports"]["8000/tcp"][0]["HostPort"].as_str().unwrap();
    assert_eq!(endpoint.port.to_string(), published);

    let later = t0 + policy.idle_timeout;
    let actions = run(&p, id, &mut state, LifecycleEvent::Tick, later, &policy).await;
    assert_eq!(actions[0], Action::Stop);
    assert_eq!(state, LifecycleState::Stopped);
    assert_eq!(sim.instance_json(id).unwrap()["actual_status"], "exited");
}

#[tokio::test]
async fn queued_start_is_cancelled_at_the_deadline_and_falls_back() {
    let (sim, p) = provider().await;
    let id = p.acquire().await.unwrap();
    p.stop(id).await.unwrap();
    p.status(id).await.unwrap();
    sim.set_start_blocked(id, true);
    let policy = LifecyclePolicy {
        queued_deadline: Duration::from_secs(45),
        ..LifecyclePolicy::default()
    };
    let t0 = Instant::now();
    let mut state = LifecycleState::Stopped;

    run(&p, id, &mut state, LifecycleEvent::Wanted, t0, &policy).await;
    assert!(matches!(state, LifecycleState::Queued { .. }), "{state:?}");
    assert_eq!(sim.instance_json(id).unwrap()["intended_status"], "running");

    let soon = t0 + Duration::from_secs(10);
    assert!(
        run(&p, id, &mut state, LifecycleEvent::Tick, soon, &policy)
            .await
            .is_empty()
    );

    let late = t0 + Duration::from_secs(46);
    let actions = run(&p, id, &mut state, LifecycleEvent::Tick, late, &policy).await;
    assert_eq!(actions[0], Action::Stop);
    assert!(matches!(&actions[1], Action::FallBack(_)), "{actions:?}");
    assert_eq!(state, LifecycleState::Stopped);
    assert_eq!(sim.instance_json(id).unwrap()["intended_status"], "stopped");
}
