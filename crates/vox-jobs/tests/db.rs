//! The job queue and the lease/cost ledger against real databases: SQLite in a temp file, and a real
//! PostgreSQL cluster (Debian's `postgresql`) started on 127.0.0.1. Every scenario runs on both.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use vox_fleet::{CostLedger, Hold, InstanceInterval, InstancePhase, JobCost, LeaseStore};
use vox_jobs::testing::PgServer;
use vox_jobs::{Db, Dialect, JobFilter, JobState, NewJob};

const TTL: Duration = Duration::from_secs(60);

fn job(text: &str) -> NewJob {
    NewJob {
        text: text.into(),
        ..Default::default()
    }
}

async fn a_worker_cannot_stop_an_instance_another_is_using(l: Db) {
    assert_eq!(l.hold("vast/1", "a", TTL).await.unwrap(), Hold::Held);
    assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Held);
    assert_eq!(l.leases("vast/1").await.unwrap().len(), 2);
    assert!(!l.claim_stop("vast/1", "a", TTL).await.unwrap());
    l.release("vast/1", "b").await.unwrap();
    assert!(l.claim_stop("vast/1", "a", TTL).await.unwrap());
    // The claimer's own lease went with the claim; nobody can take a new one while it stops…
    assert!(l.leases("vast/1").await.unwrap().is_empty());
    assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Stopping);
    assert!(!l.claim_stop("vast/1", "b", TTL).await.unwrap());
    // …but other instances are unaffected, and after the stop b can hold it again.
    assert_eq!(l.hold("vast/2", "b", TTL).await.unwrap(), Hold::Held);
    l.end_stop("vast/1", "a").await.unwrap();
    assert_eq!(l.hold("vast/1", "b", TTL).await.unwrap(), Hold::Held);
}

async fn lapsed_leases_and_claims_do_not_block(l: Db) {
    l.hold("local/1", "crashed", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(l.leases("local/1").await.unwrap().is_empty());
    assert!(
        l.claim_stop("local/1", "b", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    // b's stop claim lapsed (b crashed mid-stop): c may use the instance.
    assert_eq!(l.hold("local/1", "c", TTL).await.unwrap(), Hold::Held);
}

async fn racing_holds_and_stops_never_overlap(l: Db) {
    // Many workers hold and try to stop at once: whenever a stop claim is granted, no other live lease exists.
    let l = Arc::new(l);
    let mut tasks = Vec::new();
    for w in 0..6 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("w{w}");
            let mut granted = 0;
            for _ in 0..15 {
                if l.hold("vast/9", &me, TTL).await.unwrap() == Hold::Held {
                    l.release("vast/9", &me).await.unwrap();
                }
                if l.claim_stop("vast/9", &me, TTL).await.unwrap() {
                    granted += 1;
                    let others = l.leases("vast/9").await.unwrap();
                    assert!(
                        others.is_empty(),
                        "{me} holds the stop claim while {others:?} are live"
                    );
                    l.end_stop("vast/9", &me).await.unwrap();
                }
            }
            granted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert!(total > 0, "no stop claim was ever granted");
}

async fn duplicate_submissions_return_the_first_job(db: Db) {
    let mut j = job("hello");
    j.idempotency_key = Some("k1".into());
    let (a, new_a) = db.submit(&j, 3).await.unwrap();
    j.text = "something else".into();
    let (b, new_b) = db.submit(&j, 3).await.unwrap();
    assert!(new_a && !new_b);
    assert_eq!(a.id, b.id);
    assert_eq!(b.text, "hello");
    let (c, new_c) = db.submit(&job("no key"), 3).await.unwrap();
    let (d, _) = db.submit(&job("no key"), 3).await.unwrap();
    assert!(new_c);
    assert_ne!(c.id, d.id, "jobs without a key are never merged");
}

async fn claim_complete_and_list(db: Db) {
    let (a, _) = db.submit(&job("a"), 3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let (b, _) = db.submit(&job("b"), 3).await.unwrap();
    let got = db.claim("w1", TTL).await.unwrap().unwrap();
    assert_eq!(got.id, a.id, "oldest first");
    assert_eq!((got.state, got.attempts), (JobState::Running, 1));
    assert_eq!(got.lease_holder.as_deref(), Some("w1"));
    assert!(db.heartbeat(&a.id, "w1", TTL).await.unwrap());
    assert!(
        !db.heartbeat(&a.id, "w2", TTL).await.unwrap(),
        "only the holder renews"
    );
    assert!(
        !db.complete(&a.id, "w2", "k").await.unwrap(),
        "only the holder completes"
    );
    assert!(db.complete(&a.id, "w1", "tts/aa/x.wav").await.unwrap());
    assert!(
        !db.complete(&a.id, "w1", "tts/aa/x.wav").await.unwrap(),
        "done once"
    );
    let a2 = db.get(&a.id).await.unwrap();
    assert_eq!(a2.state, JobState::Done);
    assert_eq!(a2.object_key.as_deref(), Some("tts/aa/x.wav"));
    assert!(a2.finished_ms.is_some() && a2.lease_holder.is_none());
    let done = db
        .list(&JobFilter {
            state: Some(JobState::Done),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.iter().map(|j| &j.id).collect::<Vec<_>>(), vec![&a.id]);
    let all = db.list(&JobFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&b.id, &a.id],
        "newest first"
    );
    let page = db
        .list(&JobFilter {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].id, a.id);
    assert!(matches!(
        db.get("job_nope").await,
        Err(vox_jobs::JobsError::NotFound(_))
    ));
}

async fn an_expired_lease_makes_the_job_claimable_again(db: Db) {
    let (a, _) = db.submit(&job("a"), 3).await.unwrap();
    let first = db
        .claim("crashed", Duration::from_millis(400))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, a.id);
    assert!(
        db.claim("w2", TTL).await.unwrap().is_none(),
        "a live lease is not claimable"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let again = db.claim("w2", TTL).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (a.id.as_str(), 2));
    assert!(
        !db.complete(&a.id, "crashed", "k").await.unwrap(),
        "the old holder lost it"
    );
    assert!(db.complete(&a.id, "w2", "k").await.unwrap());
}

async fn retries_back_off_then_dead_letter(db: Db) {
    let (a, _) = db.submit(&job("a"), 2).await.unwrap();
    let j = db.claim("w", TTL).await.unwrap().unwrap();
    let after = db
        .fail(
            &j.id,
            "w",
            "instance gone",
            Some(Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, JobState::Queued);
    assert_eq!(after.error.as_deref(), Some("instance gone"));
    assert!(
        db.claim("w", TTL).await.unwrap().is_none(),
        "not before its retry time"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let j = db.claim("w", TTL).await.unwrap().unwrap();
    assert_eq!(j.attempts, 2);
    let dead = db
        .fail(&j.id, "w", "instance gone again", Some(Duration::ZERO))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.error.as_deref(),
        Some("gave up after 2 attempts: instance gone again")
    );
    assert!(db.claim("w", TTL).await.unwrap().is_none());
    // A worker that dies on the last attempt: its lapsed lease dead-letters the job.
    let (b, _) = db.submit(&job("b"), 1).await.unwrap();
    db.claim("crashed", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(db.claim("w", TTL).await.unwrap().is_none());
    let b = db.get(&b.id).await.unwrap();
    assert_eq!(b.state, JobState::Dead);
    assert!(b.error.unwrap().contains("lease expired"));
    let _ = a;
}

async fn bad_input_fails_at_once_and_cancel_stops_a_job(db: Db) {
    let (a, _) = db.submit(&job("a"), 5).await.unwrap();
    let j = db.claim("w", TTL).await.unwrap().unwrap();
    let f = db
        .fail(&j.id, "w", "unknown voice", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.state, f.attempts), (JobState::Failed, 1));
    assert_eq!(
        db.cancel(&a.id).await.unwrap().state,
        JobState::Failed,
        "a final job stays final"
    );
    let (b, _) = db.submit(&job("b"), 5).await.unwrap();
    db.claim("w", TTL).await.unwrap().unwrap();
    assert_eq!(db.cancel(&b.id).await.unwrap().state, JobState::Cancelled);
    assert!(
        !db.heartbeat(&b.id, "w", TTL).await.unwrap(),
        "the runner learns at its next beat"
    );
    assert!(!db.complete(&b.id, "w", "k").await.unwrap());
    let (c, _) = db.submit(&job("c"), 5).await.unwrap();
    assert_eq!(db.cancel(&c.id).await.unwrap().state, JobState::Cancelled);
    assert!(db.claim("w", TTL).await.unwrap().is_none());
    let counts = db.counts().await.unwrap();
    assert!(counts.contains(&(JobState::Cancelled, 2)) && counts.contains(&(JobState::Failed, 1)));
}

async fn concurrent_claimers_take_each_job_once(db: Db) {
    let n = 40;
    for i in 0..n {
        db.submit(&job(&format!("t{i}")), 3).await.unwrap();
    }
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = db.claim(&format!("w{w}"), TTL).await.unwrap() {
                assert!(db.complete(&j.id, &format!("w{w}"), "k").await.unwrap());
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id.clone()), "job {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), n);
}

async fn cost_report_adds_up(db: Db) {
    let iv = |phase, start_ms, end_ms| InstanceInterval {
        instance: "vast/7".into(),
        phase,
        start_ms,
        end_ms,
        gpu_dph: 0.36,
        storage_dph: 0.036,
    };
    db.record_interval(&iv(InstancePhase::Running, 0, 100_000))
        .await
        .unwrap();
    db.record_interval(&iv(InstancePhase::Stopped, 100_000, 3_700_000))
        .await
        .unwrap();
    db.record_job(&JobCost {
        job_id: "j1".into(),
        instance: "vast/7".into(),
        gpu_seconds: 2.5,
        dollars: 0.00025,
    })
    .await
    .unwrap();
    let r = db.cost_report().await.unwrap();
    assert_eq!(r.instances.len(), 1);
    let i = &r.instances[0];
    assert!((i.running_seconds - 100.0).abs() < 1e-9 && (i.stopped_seconds - 3600.0).abs() < 1e-9);
    assert!((i.gpu_dollars - 0.01).abs() < 1e-12);
    assert!((i.storage_dollars - 0.037).abs() < 1e-12);
    assert!((r.total_dollars - 0.047).abs() < 1e-12);
    assert_eq!(r.jobs.len(), 1);
    assert!((r.job_gpu_seconds - 2.5).abs() < 1e-12);
    assert_eq!(
        db.intervals().await.unwrap()[0],
        iv(InstancePhase::Running, 0, 100_000)
    );
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
                    let db = vox_jobs::Db::connect(&url).await.unwrap();
                    assert_eq!(db.dialect(), vox_jobs::Dialect::Sqlite);
                    super::$name(db).await;
                }
            )*
        }

        /// One cluster for all scenarios (each in its own database): starting PostgreSQL is the slow part.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_runs_every_scenario() {
            let Some(pg) = PgServer::start_or_skip() else { return };
            $(
                let url = pg.create_db(stringify!($name)).await;
                let db = Db::connect(&url).await.unwrap();
                assert_eq!(db.dialect(), Dialect::Postgres);
                $name(db).await;
            )*
        }
    };
}

scenarios!(
    a_worker_cannot_stop_an_instance_another_is_using,
    lapsed_leases_and_claims_do_not_block,
    racing_holds_and_stops_never_overlap,
    duplicate_submissions_return_the_first_job,
    claim_complete_and_list,
    an_expired_lease_makes_the_job_claimable_again,
    retries_back_off_then_dead_letter,
    bad_input_fails_at_once_and_cancel_stops_a_job,
    concurrent_claimers_take_each_job_once,
    cost_report_adds_up,
);

#[tokio::test]
async fn a_bad_database_url_says_what_to_use() {
    let e = Db::connect("mysql://x").await.unwrap_err().to_string();
    assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
    let e = Db::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("connect"), "{e}");
}
