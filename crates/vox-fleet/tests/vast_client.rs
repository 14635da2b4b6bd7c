//! The Vast.ai client against the `vastsim` simulator on loopback: every call, the lifecycle as a poller
//! sees it, queued starts, rate limits, server errors and error mapping.

use std::time::Duration;

use vastsim::{Fault, SimConfig, VastSim};
use vox_fleet::{
    ActualStatus, CreateInstance, OfferQuery, Op, RetryPolicy, StartOutcome, VastClient, VastError,
};

async fn sim() -> (VastSim, VastClient) {
    let sim = VastSim::start(SimConfig::default()).await.unwrap();
    let client = VastClient::new(sim.url(), sim.api_key())
        .unwrap()
        .with_retry(fast_retry(3));
    (sim, client)
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(60),
    }
}

fn tts(label: &str) -> CreateInstance {
    let mut spec = CreateInstance::new("ghcr.io/example/vox:latest").publish_port(8000);
    spec.label = Some(label.to_owned());
    spec.disk = 40.0;
    spec.onstart = Some("vox serve --port 8000".to_owned());
    spec.env
        .insert("VOX_MODELS".to_owned(), "/data/models".to_owned());
    spec
}

/// Creates an instance on the cheapest verified 4090 and polls it until its port 8000 is published.
async fn running_instance(client: &VastClient, label: &str) -> u64 {
    let offers = client
        .search_offers(&OfferQuery::default().filter("gpu_name", Op::Eq, "RTX_4090"))
        .await
        .unwrap();
    let created = client
        .create_instance(offers[0].id, &tts(label))
        .await
        .unwrap();
    assert!(created.started);
    for _ in 0..10 {
        let i = client.show_instance(created.id).await.unwrap().unwrap();
        if i.endpoint(8000).is_some() {
            return created.id;
        }
    }
    panic!("port 8000 never published");
}

#[tokio::test]
async fn create_then_poll_sees_each_phase_and_ports_one_poll_after_running() {
    let (_sim, client) = sim().await;
    let created = client.create_instance(5550, &tts("tts-a")).await.unwrap();
    assert!(created.started);
    assert!(created.instance_api_key.is_some());

    let mut seen = Vec::new();
    for _ in 0..4 {
        let i = client.show_instance(created.id).await.unwrap().unwrap();
        seen.push((i.actual_status.clone(), i.endpoint(8000)));
    }
    let statuses: Vec<_> = seen.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        statuses,
        [
            ActualStatus::Loading,
            ActualStatus::Running,
            ActualStatus::Running,
            ActualStatus::Running
        ]
    );
    assert_eq!(seen[1].1, None, "ports must lag one poll behind running");
    let ep = seen[2].1.clone().expect("ports published");
    assert_eq!(ep.host, "127.0.0.1", "public_ipaddr is trimmed");
    assert_eq!(seen[3].1, Some(ep));

    let i = client.show_instance(created.id).await.unwrap().unwrap();
    assert_eq!(i.label.as_deref(), Some("tts-a"));
    assert_eq!(i.image_uuid.as_deref(), Some("ghcr.io/example/vox:latest"));
    assert_eq!(i.disk_space, Some(40.0));
    assert!(i.intends_running());
    assert!(i.host_port(22).is_some());
    assert_ne!(i.host_port(22), i.host_port(8000));
}

#[tokio::test]
async fn search_filters_orders_and_limits() {
    let (_sim, client) = sim().await;
    let q = OfferQuery::default()
        .filter("gpu_ram", Op::Gte, 24000)
        .filter("direct_port_count", Op::Gte, 2)
        .allocated_storage(40.0);
    let offers = client.search_offers(&q).await.unwrap();
    let ids: Vec<u64> = offers.iter().map(|o| o.id).collect();
    // Cheapest first; the unverified 3090 (5580) is filtered out by the default `verified` filter.
    assert_eq!(ids, [5560, 5550, 5570]);
    let totals: Vec<f64> = offers.iter().map(|o| o.dph_total.unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    // dph_total prices in the allocated disk.
    let o = &offers[0];
    let storage_per_h = o.storage_cost.unwrap() * 40.0 / 720.0;
    assert!((o.dph_total.unwrap() - o.dph_base.unwrap() - storage_per_h).abs() < 1e-9);

    let one = client.search_offers(&q.clone().limit(1)).await.unwrap();
    assert_eq!(one.len(), 1);
    let h100 = client
        .search_offers(&OfferQuery::default().filter("gpu_name", Op::In, vec!["H100_SXM"]))
        .await
        .unwrap();
    assert_eq!(h100.iter().map(|o| o.id).collect::<Vec<_>>(), [5570]);
}

#[tokio::test]
async fn list_finds_instances_across_pages() {
    let (_sim, client) = sim().await;
    let mut ids = Vec::new();
    for n in 0..27 {
        ids.push(
            client
                .create_instance(5560, &tts(&format!("w{n}")))
                .await
                .unwrap()
                .id,
        );
    }
    let listed = client.list_instances().await.unwrap();
    assert_eq!(listed.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
    assert_eq!(listed[26].label.as_deref(), Some("w26"));
}

#[tokio::test]
async fn stop_start_and_destroy() {
    let (sim, client) = sim().await;
    let id = running_instance(&client, "tts-b").await;

    client.stop_instance(id).await.unwrap();
    let i = client.show_instance(id).await.unwrap().unwrap();
    assert_eq!(i.actual_status, ActualStatus::Exited);
    assert_eq!(i.intended_status.as_deref(), Some("stopped"));
    assert_eq!(i.endpoint(8000), None, "no ports while stopped");
    // Stopping a stopped instance is accepted.
    client.stop_instance(id).await.unwrap();

    assert_eq!(
        client.start_instance(id).await.unwrap(),
        StartOutcome::Accepted
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            client
                .show_instance(id)
                .await
                .unwrap()
                .unwrap()
                .actual_status,
        );
    }
    assert_eq!(
        statuses,
        [
            ActualStatus::Loading,
            ActualStatus::Running,
            ActualStatus::Running
        ]
    );
    // Starting a running instance is a no-op success.
    assert_eq!(
        client.start_instance(id).await.unwrap(),
        StartOutcome::Accepted
    );

    client.destroy_instance(id).await.unwrap();
    assert!(client.show_instance(id).await.unwrap().is_none());
    assert!(sim.instance_ids().is_empty());
    let again = client.destroy_instance(id).await.unwrap_err();
    assert!(matches!(again, VastError::NotFound { .. }), "{again}");
}

#[tokio::test]
async fn start_without_gpu_is_queued_until_cancelled_or_freed() {
    let (sim, client) = sim().await;
    let id = running_instance(&client, "tts-c").await;
    client.stop_instance(id).await.unwrap();
    client.show_instance(id).await.unwrap();
    assert!(sim.set_start_blocked(id, true));

    assert_eq!(
        client.start_instance(id).await.unwrap(),
        StartOutcome::Queued
    );
    for _ in 0..5 {
        let i = client.show_instance(id).await.unwrap().unwrap();
        assert_eq!(
            i.actual_status,
            ActualStatus::Exited,
            "a queued start stays scheduling"
        );
        assert!(i.intends_running());
    }
    // Stop cancels the queued start.
    client.stop_instance(id).await.unwrap();
    let i = client.show_instance(id).await.unwrap().unwrap();
    assert!(!i.intends_running());

    // Queued again, then the GPU frees: the start proceeds by itself.
    assert_eq!(
        client.start_instance(id).await.unwrap(),
        StartOutcome::Queued
    );
    sim.set_start_blocked(id, false);
    let mut status = ActualStatus::Exited;
    for _ in 0..3 {
        status = client
            .show_instance(id)
            .await
            .unwrap()
            .unwrap()
            .actual_status;
    }
    assert_eq!(status, ActualStatus::Running);
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let (sim, client) = sim().await;
    let id = client
        .create_instance(5550, &tts("tts-d"))
        .await
        .unwrap()
        .id;
    sim.inject(Fault::rate_limited(2, Some("1")));
    let shown = client.show_instance(id).await.unwrap();
    assert_eq!(shown.map(|i| i.id), Some(id));
    let statuses: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 429, 200]);
}

#[tokio::test]
async fn rate_limit_gives_up_after_the_attempt_budget_or_a_long_retry_after() {
    let (sim, client) = sim().await;
    sim.inject(Fault::rate_limited(10, None));
    let err = client.list_instances().await.unwrap_err();
    assert!(
        matches!(
            err,
            VastError::RateLimited {
                attempts: 3,
                retry_after: None,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(sim.requests().len(), 3);

    let (sim, client) = self::sim().await;
    sim.inject(Fault::rate_limited(1, Some("3600")));
    let err = client.list_instances().await.unwrap_err();
    assert!(
        matches!(
            err,
            VastError::RateLimited {
                attempts: 1,
                retry_after: Some(3600),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn server_errors_are_retried_but_create_is_not_after_a_502() {
    let (sim, client) = sim().await;
    let bad_gateway = |times| Fault {
        status: 502,
        body: "<html>bad gateway</html>".to_owned(),
        retry_after: None,
        times,
    };
    sim.inject(bad_gateway(2));
    assert!(client.list_instances().await.unwrap().is_empty());

    sim.inject(bad_gateway(1));
    let err = client
        .create_instance(5550, &tts("tts-e"))
        .await
        .unwrap_err();
    assert!(matches!(err, VastError::Server { .. }), "{err}");
    assert!(sim.instance_ids().is_empty());
}

#[tokio::test]
async fn bad_key_is_unauthorized_with_advice() {
    let (sim, _) = sim().await;
    let client = VastClient::new(sim.url(), "wrong").unwrap();
    let err = client.list_instances().await.unwrap_err();
    assert!(matches!(err, VastError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("VAST_API_KEY"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn unknown_ids_map_to_not_found_or_gone_offers() {
    let (sim, client) = sim().await;
    assert!(client.show_instance(424242).await.unwrap().is_none());
    for err in [
        client.stop_instance(424242).await.unwrap_err(),
        client.start_instance(424242).await.unwrap_err(),
    ] {
        assert!(matches!(err, VastError::NotFound { .. }), "{err}");
    }
    let err = client.create_instance(1, &tts("x")).await.unwrap_err();
    assert!(
        matches!(err, VastError::OfferGone { offer: 1, .. }),
        "{err}"
    );

    sim.set_offer_available(5550, false);
    let err = client.create_instance(5550, &tts("x")).await.unwrap_err();
    assert!(
        matches!(err, VastError::OfferGone { offer: 5550, .. }),
        "{err}"
    );
    let mut keep = tts("y");
    keep.cancel_unavail = false;
    let created = client.create_instance(5550, &keep).await.unwrap();
    assert!(!created.started, "no capacity: created stopped");
    let i = client.show_instance(created.id).await.unwrap().unwrap();
    assert!(!i.intends_running());
}

#[tokio::test]
async fn billing_charges_gpu_while_running_and_storage_always() {
    let (sim, client) = sim().await;
    let id = running_instance(&client, "tts-f").await;
    let at_start = sim.billing(id).unwrap();
    assert_eq!(at_start.gpu_seconds, 0.0);

    sim.advance(Duration::from_secs(10));
    client.stop_instance(id).await.unwrap();
    client.show_instance(id).await.unwrap();
    sim.advance(Duration::from_secs(5));
    let b = sim.billing(id).unwrap();
    assert_eq!(b.gpu_seconds, 10.0);
    assert_eq!(b.storage_seconds, 15.0);
    let i = client.show_instance(id).await.unwrap().unwrap();
    let storage_per_s = i.storage_cost.unwrap() * 40.0 / (720.0 * 3600.0);
    let expected = 10.0 * i.dph_base.unwrap() / 3600.0 + 15.0 * storage_per_s;
    assert!((b.usd - expected).abs() < 1e-12, "{} vs {expected}", b.usd);

    client.destroy_instance(id).await.unwrap();
    sim.advance(Duration::from_secs(100));
    assert_eq!(
        sim.billing(id).unwrap().storage_seconds,
        15.0,
        "destroy ends billing"
    );
}
