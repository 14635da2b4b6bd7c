//! The server in-process on 127.0.0.1:0 with a gated test voice: readiness phases, auth, limits, queueing (429,
//! 503), cancellation on disconnect, streaming, metrics, the idle signal, OpenAPI, graceful shutdown.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

fn tts(text: &str) -> Value {
    json!({"text": text, "format": "pcm"})
}

#[tokio::test]
async fn ready_reports_loading_then_200_and_health_answers_throughout() {
    let load_gate = Arc::new(Gate::default());
    let s = start(config(), Some(load_gate.clone())).await;
    let c = reqwest::Client::new();
    assert_eq!(c.get(s.url("/health")).send().await.unwrap().status(), 200);
    // The loader is held: /ready names the phase and the model.
    let v: Value = loop {
        let r = c.get(s.url("/ready")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let v: Value = r.json().await.unwrap();
        if v["phase"] == "loading" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(v["model"], "gated");
    assert_eq!(v["models"][0]["state"], "loading");
    assert_eq!(v["provisioning"]["models"]["gated"]["done"], true);
    // Engine routes answer 503 until ready.
    let r = client()
        .post(s.url("/tts"))
        .json(&tts("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    load_gate.release(1);
    s.ready().await;
    let v: Value = c
        .get(s.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["models"][0]["state"], "ready");
    assert!(v["models"][0]["load_seconds"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn a_failed_load_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = volume(dir.path());
    let mut kinds = vox_server::EngineKinds::new();
    kinds.register("gated", |_| Err("weights are corrupt".into()));
    let server = vox_server::Server::bind(config()).await.unwrap();
    let addr = server.local_addr();
    let models = vox_server::Models {
        store,
        manifest,
        kinds: Arc::new(kinds),
    };
    let e = server
        .run(models, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("weights are corrupt") && e.to_string().contains("gated"),
        "{e}"
    );
    // No half-ready server is left listening.
    assert!(reqwest::get(format!("http://{addr}/health")).await.is_err());

    // A model whose kind this build does not know fails before any download.
    let (store, manifest) = volume(&dir.path().join("2"));
    let server = vox_server::Server::bind(config()).await.unwrap();
    let models = vox_server::Models {
        store,
        manifest,
        kinds: Arc::new(vox_server::EngineKinds::new()),
    };
    let e = server
        .run(models, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no engine is registered for kind \"gated\""),
        "{e}"
    );
}

#[tokio::test]
async fn keys_guard_everything_but_the_probes() {
    let s = start(config(), None).await;
    s.ready().await;
    let anon = reqwest::Client::new();
    assert_eq!(
        anon.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        anon.get(s.url("/ready")).send().await.unwrap().status(),
        200
    );
    for path in [
        "/v1/models",
        "/metrics",
        "/idle",
        "/openapi.json",
        "/v1/audio/voices",
    ] {
        let r = anon.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = anon
            .get(s.url(path))
            .bearer_auth("test-key-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            client().get(s.url(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let r = anon
        .post(s.url("/tts"))
        .json(&tts("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(!v.to_string().contains(KEY));
}

#[tokio::test]
async fn an_open_server_on_a_reachable_address_is_refused() {
    let mut c = vox_server::ServerConfig::new("0.0.0.0:0".parse().unwrap());
    let e = vox_server::Server::bind(c.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("VOX_API_KEY") && e.to_string().contains("--insecure"),
        "{e}"
    );
    c.insecure = true;
    assert!(vox_server::Server::bind(c.clone()).await.is_ok());
    c.insecure = false;
    c.api_keys = vec![KEY.into()];
    assert!(vox_server::Server::bind(c).await.is_ok());
}

#[tokio::test]
async fn over_capacity_is_429_with_retry_after_and_queued_work_completes() {
    let s = start(config(), None).await;
    s.ready().await;
    let c = client();
    let a = tokio::spawn(c.post(s.url("/tts")).json(&tts("first")).send());
    s.gate.until(|g| g.started.len() == 1).await;
    let b = tokio::spawn(c.post(s.url("/tts")).json(&tts("second")).send());
    // Wait until the second request sits in the queue (queue depth 1 on /metrics).
    loop {
        let m = c
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains("vox_queue_depth{model=\"gated\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = c
        .post(s.url("/tts"))
        .json(&tts("third"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1);
    s.gate.release(2);
    let a = a.await.unwrap().unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(a.bytes().await.unwrap().len(), 1600 * 2);
    assert_eq!(b.await.unwrap().unwrap().status(), 200);
    let m = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("vox_queue_rejected_total{model=\"gated\",reason=\"full\"} 1"),
        "{m}"
    );
    assert!(m.contains("route=\"/tts\",status=\"429\""), "{m}");
}

#[tokio::test]
async fn a_request_still_queued_at_its_deadline_is_503_and_never_runs() {
    let mut cfg = config();
    cfg.queue.queue_timeout = Duration::from_millis(200);
    let s = start(cfg, None).await;
    s.ready().await;
    let c = client();
    let a = tokio::spawn(c.post(s.url("/tts")).json(&tts("first")).send());
    s.gate.until(|g| g.started.len() == 1).await;
    let r = c
        .post(s.url("/tts"))
        .json(&tts("late"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("queue"),
        "{v}"
    );
    s.gate.release(1);
    assert_eq!(a.await.unwrap().unwrap().status(), 200);
    // The next request runs; the abandoned one never started.
    s.gate.release(1);
    assert_eq!(
        c.post(s.url("/tts"))
            .json(&tts("next"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.gate.snapshot(|g| g.started.clone()),
        vec!["first", "next"]
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_queued_and_running_work() {
    let s = start(config(), None).await;
    s.ready().await;
    let c = client();
    // Running work: two sentences; the client hangs up after the first one's audio.
    let running = tokio::spawn(
        c.post(s.url("/tts"))
            .json(&json!({"text": "One. Two.", "format": "pcm", "stream": true}))
            .send(),
    );
    s.gate.until(|g| g.started.len() == 1).await;
    // Queued work whose client gives up.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let queued = quick
        .post(s.url("/tts"))
        .bearer_auth(KEY)
        .json(&tts("queued"))
        .send()
        .await;
    assert!(queued.is_err(), "the client timed out");
    s.gate.release(1);
    let resp = running.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    assert!(!body.next().await.unwrap().unwrap().is_empty());
    drop(body);
    // The engine, waiting to speak the second sentence, sees the cancellation.
    s.gate.until(|g| g.cancelled.len() == 1).await;
    // The queued request never ran; the next one does.
    s.gate.release(1);
    assert_eq!(
        c.post(s.url("/tts"))
            .json(&tts("after"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (started, cancelled) = s
        .gate
        .snapshot(|g| (g.started.clone(), g.cancelled.clone()));
    assert_eq!(started, vec!["One.", "Two.", "after"]);
    assert_eq!(cancelled, vec!["Two."]);
}

#[tokio::test]
async fn streamed_audio_arrives_before_the_synthesis_ends() {
    let s = start(config(), None).await;
    s.ready().await;
    let c = client();
    s.gate.release(2);
    let resp = c
        .post(s.url("/v1/audio/speech"))
        .json(&json!({"model": "tts-1", "input": "Hello there. Second sentence.", "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    // Permits for the first sentence only: its audio must arrive while the engine waits for the rest.
    while got.len() < 44 + 2 * 3200 {
        got.extend_from_slice(&body.next().await.unwrap().unwrap());
    }
    assert_eq!(&got[..4], b"RIFF");
    assert_eq!(
        s.gate.snapshot(|g| g.finished.clone()),
        vec!["Hello there."]
    );
    s.gate.release(2);
    while let Some(b) = body.next().await {
        got.extend_from_slice(&b.unwrap());
    }
    // 4 words of 1600 samples, one 120 ms pause (16 kHz), 16-bit.
    assert_eq!(got.len(), 44 + 2 * (4 * 1600 + 1920));

    // SSE: base64 deltas then done.
    s.gate.release(2);
    let text = c
        .post(s.url("/v1/audio/speech"))
        .json(&json!({"model": "gated", "input": "Two words.", "voice": "gate", "response_format": "pcm", "stream_format": "sse"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.last().unwrap()["type"], "speech.audio.done");
    assert!(events.iter().any(|e| e["type"] == "speech.audio.delta"));
}

#[tokio::test]
async fn bad_requests_are_answered_with_their_reason() {
    let mut cfg = config();
    cfg.limits.max_text_chars = 50;
    cfg.limits.max_body_bytes = 4096;
    let s = start(cfg, None).await;
    s.ready().await;
    let c = client();
    let post = |body: Value, path: &'static str| c.post(s.url(path)).json(&body).send();
    let r = post(json!({"text": "x".repeat(51)}), "/tts").await.unwrap();
    assert_eq!(r.status(), 413);
    let r = post(
        json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "aac"}),
        "/v1/audio/speech",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("mp3"),
        "{v}"
    );
    let r = post(json!({"text": "hi", "voice": "nobody"}), "/tts")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("gate"));
    let r = post(json!({"text": "hi", "speed": 9.0}), "/tts")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![0u8; 8192]).file_name("a.wav"),
    );
    let r = c
        .post(s.url("/v1/audio/transcriptions"))
        .multipart(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn metrics_and_idle_follow_the_requests() {
    let s = start(config(), None).await;
    s.ready().await;
    let c = client();
    let a = tokio::spawn(c.post(s.url("/tts")).json(&tts("busy")).send());
    s.gate.until(|g| g.started.len() == 1).await;
    let idle: Value = c
        .get(s.url("/idle"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(idle["in_flight"], 1);
    assert_eq!(idle["idle_seconds"], 0.0);
    s.gate.release(1);
    a.await.unwrap().unwrap().bytes().await.unwrap();
    let idle: Value = loop {
        let v: Value = c
            .get(s.url("/idle"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["in_flight"] == 0 {
            break v;
        }
    };
    assert!(idle["last_activity_unix"].as_f64().unwrap() > 1.7e9);
    let ready: Value = c
        .get(s.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["idle"]["in_flight"], 0);
    let m = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "vox_http_requests_total{method=\"POST\",route=\"/tts\",status=\"200\"} 1",
        "vox_http_request_duration_seconds_bucket{route=\"/tts\"",
        "vox_queue_depth{model=\"gated\"} 0",
        "vox_engine_in_flight{model=\"gated\"} 0",
        "vox_audio_seconds_produced_total{model=\"gated\"} 0.1",
        "vox_real_time_factor_count{model=\"gated\"} 1",
        "vox_model_load_seconds{model=\"gated\"}",
        "vox_provision_bytes_total",
        "vox_ready 1",
        "vox_http_in_flight",
        "vox_idle_seconds",
    ] {
        assert!(m.contains(needle), "missing {needle}:\n{m}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_its_references_resolve() {
    let s = start(config(), None).await;
    s.ready().await;
    let doc: Value = client()
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/tts", "post"),
        ("/stt", "post"),
        ("/v1/audio/speech", "post"),
        ("/v1/audio/transcriptions", "post"),
        ("/v1/audio/translations", "post"),
        ("/v1/models", "get"),
        ("/v1/audio/voices", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/idle", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Flattened engine parameters make the schema an allOf; `input` is in one of its parts.
    let speech = &doc["components"]["schemas"]["SpeechRequest"];
    let parts: Vec<&Value> = std::iter::once(speech)
        .chain(speech["allOf"].as_array().into_iter().flatten())
        .collect();
    assert!(
        parts.iter().any(|p| p["properties"]["input"].is_object()),
        "{speech}"
    );
    // Every $ref points at a component that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling {r}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_in_flight_work_finish() {
    let mut s = start(config(), None).await;
    s.ready().await;
    let c = client();
    let a = tokio::spawn(c.post(s.url("/tts")).json(&tts("in flight")).send());
    s.gate.until(|g| g.started.len() == 1).await;
    s.stop.take().unwrap().send(()).unwrap();
    // New connections are refused once the listener closes.
    loop {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if fresh.get(s.url("/health")).send().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.gate.release(2);
    let r = a.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 2 * 1600 * 2);
    s.done.await.unwrap().unwrap();
}
