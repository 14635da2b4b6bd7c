//! The jobs HTTP API on 127.0.0.1 over SQLite and the local store: submit-time validation (clear 400s),
//! idempotent submission, status, list filters, cancel, signed local download links and metrics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use vox_jobs::api::{ApiState, router};
use vox_jobs::{Db, Metrics, Objects, SubmitRules};

struct Api {
    base: String,
    db: Db,
    objects: Objects,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(voices: Option<Vec<String>>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!(
        "sqlite://{}",
        dir.path().join("jobs.db").display()
    ))
    .await
    .unwrap();
    let objects = Objects::local(&dir.path().join("objects"), vec![1; 32]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = ApiState {
        db: db.clone(),
        objects: objects.clone(),
        metrics: Metrics::new(),
        rules: Arc::new(SubmitRules::new(50, voices)),
        max_attempts: 3,
        link_ttl: Duration::from_secs(60),
        public_url: base.clone(),
    };
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    Api {
        base,
        db,
        objects,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_get_a_clear_400_and_store_nothing() {
    let api = start(Some(vec!["joe".into(), "amy".into()])).await;
    for (body, says) in [
        (json!({"text": "   "}), "the text is empty"),
        (
            json!({"text": "x".repeat(51)}),
            "51 characters, over the limit of 50",
        ),
        (
            json!({"text": "hi", "voice": "bob"}),
            "unknown voice \"bob\"; voices: joe, amy",
        ),
        (
            json!({"text": "hi", "params": {"stream": true}}),
            "unknown parameter \"stream\"",
        ),
        (
            json!({"text": "hi", "params": [1]}),
            "params must be a JSON object",
        ),
        (json!({"voice": "joe"}), "text"),
    ] {
        let (status, v) = api.post("/jobs", body.clone()).await;
        assert_eq!(status, 400, "{body} → {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{body}: {msg:?} should say {says:?}");
    }
    assert!(api.db.list(&Default::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_status_list_cancel() {
    let api = start(None).await;
    let (s, a) = api
        .post(
            "/jobs",
            json!({"text": "hello", "voice": "joe", "params": {"seed": 7}, "idempotency_key": "k"}),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_string();
    let (s2, again) = api
        .post("/jobs", json!({"text": "hello", "idempotency_key": "k"}))
        .await;
    assert_eq!(
        (s2, again["id"].as_str().unwrap()),
        (200, id.as_str()),
        "a duplicate returns the first job"
    );
    let (_, b) = api.post("/jobs", json!({"text": "second"})).await;

    let (s, st) = api.get(&format!("/jobs/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        (st["state"].as_str(), st["voice"].as_str()),
        (Some("queued"), Some("joe"))
    );
    assert!(st["url"].is_null());
    assert_eq!(api.get("/jobs/job_missing").await.0, 404);

    let (_, c) = api
        .post(
            &format!("/jobs/{}/cancel", b["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(c["state"], "cancelled");
    let (_, l) = api.get("/jobs?state=cancelled").await;
    let ids: Vec<_> = l["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].clone())
        .collect();
    assert_eq!(ids, vec![b["id"].clone()]);
    let (_, l) = api.get("/jobs").await;
    assert_eq!(l["jobs"].as_array().unwrap().len(), 2);
    let (s, e) = api.get("/jobs?state=weird").await;
    assert_eq!(s, 400, "{e}");

    let m = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("vox_jobs_submitted_total 2"), "{m}");
    assert!(m.contains("vox_jobs{state=\"queued\"} 1"), "{m}");
    assert!(m.contains("vox_jobs{state=\"cancelled\"} 1"), "{m}");
    assert!(m.contains("vox_cost_dollars{kind=\"total\"} 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_job_links_to_its_audio_and_the_link_is_checked() {
    let api = start(None).await;
    let (_, a) = api.post("/jobs", json!({"text": "hello"})).await;
    let id = a["id"].as_str().unwrap();
    let job = api
        .db
        .claim("w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    api.objects
        .put(
            "tts/aa/hello.wav",
            Bytes::from_static(b"RIFFdata"),
            "audio/wav",
            &[],
        )
        .await
        .unwrap();
    assert!(
        api.db
            .complete(&job.id, "w", "tts/aa/hello.wav")
            .await
            .unwrap()
    );
    let (_, st) = api.get(&format!("/jobs/{id}")).await;
    assert_eq!(st["state"], "done");
    let url = st["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/objects/tts/aa/hello.wav?expires=", api.base)),
        "{url}"
    );
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(&r.bytes().await.unwrap()[..], b"RIFFdata");
    for bad in [
        url.replace("sig=", "sig=00"),
        url.split('?').next().unwrap().to_string(),
        url.replace("hello.wav", "other.wav"),
    ] {
        assert_eq!(reqwest::get(&bad).await.unwrap().status(), 403, "{bad}");
    }
}
