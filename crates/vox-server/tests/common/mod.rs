//! An in-process server on 127.0.0.1:0 with a test synthesizer whose every step waits for the test's go-ahead:
//! queueing, refusal, cancellation, streaming and draining are then observed without any timing assumption.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use vox_engine::{
    AudioSink, EngineError, SpeechSynthesizer, SynthesisRequest, SynthesizerInfo, VoiceInfo,
};
use vox_server::{Engine, EngineKinds, Models, Server, ServerConfig};

pub const KEY: &str = "test-key-0123456789";

/// Permits the test hands out; the engine takes one per piece of audio it writes.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
pub struct GateState {
    permits: usize,
    /// Texts whose synthesis started (warm-up excluded).
    pub started: Vec<String>,
    /// Texts whose synthesis saw its cancellation.
    pub cancelled: Vec<String>,
    /// Texts that ran to the end.
    pub finished: Vec<String>,
}

impl Gate {
    pub fn release(&self, n: usize) {
        self.state.lock().unwrap().permits += n;
        self.cv.notify_all();
    }

    pub fn snapshot<T>(&self, f: impl FnOnce(&GateState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }

    /// Waits (polling, no deadline) until `f` holds.
    pub async fn until(&self, f: impl Fn(&GateState) -> bool) {
        while !f(&self.state.lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn take(&self, sink: &dyn AudioSink) -> bool {
        let mut s = self.state.lock().unwrap();
        loop {
            if sink.is_cancelled() {
                return false;
            }
            if s.permits > 0 {
                s.permits -= 1;
                return true;
            }
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(10))
                .unwrap()
                .0;
        }
    }
}

/// Speaks each word as 100 samples at 1 kHz, one permit per word.
pub struct GatedVoice(pub Arc<Gate>);

impl SpeechSynthesizer for GatedVoice {
    fn info(&self) -> SynthesizerInfo {
        SynthesizerInfo {
            kind: "gated".into(),
            sample_rate: 16000,
            voices: vec![VoiceInfo {
                id: "gate".into(),
                language: Some("en".into()),
                description: None,
            }],
            max_chunk_chars: 200,
        }
    }
    fn warm_up(&self) -> Result<(), EngineError> {
        Ok(())
    }
    fn synthesize(
        &self,
        req: &SynthesisRequest,
        out: &mut dyn AudioSink,
    ) -> Result<(), EngineError> {
        self.0.state.lock().unwrap().started.push(req.text.clone());
        for _ in req.text.split_whitespace() {
            if !self.0.take(out) {
                self.0
                    .state
                    .lock()
                    .unwrap()
                    .cancelled
                    .push(req.text.clone());
                return Err(EngineError::Cancelled);
            }
            out.write(&[0.25; 1600])?;
        }
        self.0.state.lock().unwrap().finished.push(req.text.clone());
        Ok(())
    }
}

/// A model volume holding one tiny model `gated` (imported from a folder, so no network is needed).
pub fn volume(dir: &Path) -> (Arc<vox_store::ModelStore>, vox_store::Manifest) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("voice.txt"), "gated test voice").unwrap();
    let mut cfg = vox_store::StoreConfig::new(dir.join("hub"));
    cfg.offline = true;
    cfg.scratch_dir = dir.join("scratch");
    let store = vox_store::ModelStore::new(cfg).unwrap();
    vox_store::import(store.cache(), &src, "", "vox-local/gated", "main", None).unwrap();
    let manifest = vox_store::Manifest::parse(
        "[[models]]\nname = \"gated\"\nengine = \"gated\"\nrepo = \"vox-local/gated\"\nrevision = \"main\"\nfiles = [\"*\"]\n",
        "test",
    )
    .unwrap();
    (Arc::new(store), manifest)
}

pub struct Running {
    pub addr: SocketAddr,
    pub gate: Arc<Gate>,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<Result<(), vox_server::ServerError>>,
    pub _dir: tempfile::TempDir,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `/ready` until 200.
    pub async fn ready(&self) {
        let c = reqwest::Client::new();
        loop {
            let r = c.get(self.url("/ready")).send().await.unwrap();
            if r.status() == 200 {
                return;
            }
            assert_eq!(r.status(), 503);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Starts a server with the gated voice; `load_gate`, when given, holds the loader until released once.
pub async fn start(config: ServerConfig, load_gate: Option<Arc<Gate>>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = volume(dir.path());
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let mut kinds = EngineKinds::new();
    kinds.register("gated", move |_dir| {
        if let Some(lg) = &load_gate {
            let mut s = lg.state.lock().unwrap();
            while s.permits == 0 {
                s = lg.cv.wait(s).unwrap();
            }
            s.permits -= 1;
        }
        Ok(Engine::Synthesizer(Arc::new(GatedVoice(g.clone()))))
    });
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let models = Models {
        store,
        manifest,
        kinds: Arc::new(kinds),
    };
    let done = tokio::spawn(server.run(models, async move {
        let _ = stop_rx.await;
    }));
    Running {
        addr,
        gate,
        stop: Some(stop),
        done,
        _dir: dir,
    }
}

pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    c.api_keys = vec![KEY.into()];
    c.queue.workers = 1;
    c.queue.max_queued = 1;
    c.queue.queue_timeout = Duration::from_secs(120);
    c
}

pub fn client() -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {KEY}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}
