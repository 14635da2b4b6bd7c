//! The HTTP server with the Chatterbox engine kind on the tiny snapshot, imported into a model volume the way
//! `vox models import` does: POST /tts answers a 24 kHz wav, the same seed gives the same bytes, and the
//! engine's refusals arrive as 400s.

mod engine_common;

use std::sync::Arc;
use std::time::Duration;

use engine_common::tiny_snapshot;
use serde_json::{Value, json};
use vox_server::{Engine, EngineKinds, Models, Server, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_tts_answers_a_wav_from_the_chatterbox_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snap = tiny_snapshot(&dir.path().join("src"));
    let mut cfg = vox_store::StoreConfig::new(dir.path().join("hub"));
    cfg.offline = true;
    cfg.scratch_dir = dir.path().join("scratch");
    let store = vox_store::ModelStore::new(cfg).unwrap();
    vox_store::import(
        store.cache(),
        &snap,
        "",
        "vox-local/chatterbox-tiny",
        "main",
        None,
    )
    .unwrap();
    let manifest = vox_store::Manifest::parse(
        "[[models]]\nname = \"chatterbox-tiny\"\nengine = \"chatterbox\"\nrepo = \"vox-local/chatterbox-tiny\"\nrevision = \"main\"\nfiles = [\"*\"]\n",
        "test",
    )
    .unwrap();
    let mut kinds = EngineKinds::new();
    kinds.register("chatterbox", |dir| {
        Ok(Engine::Synthesizer(Arc::new(
            vox_chatterbox::ChatterboxEngine::load(dir)?,
        )))
    });
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.queue.workers = 1;
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let models = Models {
        store: Arc::new(store),
        manifest,
        kinds: Arc::new(kinds),
    };
    let done = tokio::spawn(server.run(models, async move {
        let _ = stop_rx.await;
    }));

    let c = reqwest::Client::new();
    loop {
        let r = c.get(format!("{base}/ready")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        let v: Value = r.json().await.unwrap();
        assert_ne!(v["phase"], "failed", "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = json!({"text": "Hello there. This is the tiny model.", "format": "wav", "seed": 7,
                      "exaggeration": 0.7, "cfg_weight": 0.4});
    let post = |b: Value| c.post(format!("{base}/tts")).json(&b).send();
    let r = post(body.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let wav = r.bytes().await.unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    assert!(wav.len() > 44 + 2 * 2880, "{} bytes", wav.len());
    let again = post(body).await.unwrap().bytes().await.unwrap();
    assert_eq!(wav, again);

    let r = post(json!({"text": "Hello.", "temperature": 9.0}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("temperature"));
    let r = post(json!({"text": "Hello.", "voice": "nobody"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    stop.send(()).unwrap();
    done.await.unwrap().unwrap();
}
