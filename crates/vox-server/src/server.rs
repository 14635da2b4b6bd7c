//! [`Server`]: bind at once, then provision → load → warm up while `/health` and `/ready` already answer; serve
//! until the shutdown signal, then drain in-flight requests within a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use vox_engine::{Synthesis, Transcription};
use vox_store::{Manifest, ModelStore};

use crate::config::ServerConfig;
use crate::kinds::{Engine, EngineKinds};
use crate::state::{AppState, Engines, LoadedModel, Phase, ReadinessProgress, Served};

/// Why the server stopped without serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("provisioning the models failed: {0}")]
    Provision(#[from] vox_store::StoreError),
    #[error("loading model {model:?} failed: {reason}")]
    Load { model: String, reason: String },
    #[error("the warm-up of model {model:?} failed: {reason}")]
    WarmUp { model: String, reason: String },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// What start-up brings up: the manifest's models from the store, each loaded by its kind's loader.
pub struct Models {
    pub store: Arc<ModelStore>,
    pub manifest: Manifest,
    pub kinds: Arc<EngineKinds>,
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Checks the configuration (no open server on a reachable address) and binds the port.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        config.check().map_err(ServerError::Config)?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.bind,
                    source,
                })?;
        Ok(Server {
            listener,
            state: AppState::new(config),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves now (probes answer at once), brings the models up, and runs until `shutdown` resolves; then
    /// stops accepting and gives in-flight requests `drain_timeout` to finish. A failure to provision, load
    /// or warm up stops the server and is returned: there is no half-ready server.
    pub async fn run(
        self,
        models: Models,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = self.state.clone();
        let drain = state.config.drain_timeout;
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let app = crate::router(state.clone());
        let mut graceful = stop_rx.clone();
        let serve = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|s| *s).await;
        });
        let mut serve = tokio::spawn(async move { serve.await });
        tracing::info!(addr = %state.config.bind, "listening");

        let startup = tokio::spawn(start_up(state.clone(), models));
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });

        let startup_result = tokio::select! {
            r = startup => r.unwrap_or_else(|e| Err(ServerError::Load { model: "?".into(), reason: e.to_string() })),
            _ = stop_rx.wait_for(|s| *s) => Ok(()),
        };
        if let Err(e) = startup_result {
            state.set_phase(Phase::Failed {
                reason: e.to_string(),
            });
            signal.abort();
            // Stop serving; the caller exits non-zero with the reason.
            serve.abort();
            return Err(e);
        }
        // Serve until the signal, then drain.
        let mut stop_rx2 = stop_rx.clone();
        tokio::select! {
            r = &mut serve => return r.map_err(|e| ServerError::Serve(std::io::Error::other(e)))?.map_err(ServerError::Serve),
            _ = stop_rx2.wait_for(|s| *s) => {}
        }
        state.set_phase(Phase::ShuttingDown);
        tracing::info!(
            in_flight = state.idle.in_flight(),
            drain_s = drain.as_secs_f64(),
            "shutting down: draining"
        );
        match tokio::time::timeout(drain, &mut serve).await {
            Ok(r) => r
                .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
                .map_err(ServerError::Serve),
            Err(_) => {
                tracing::warn!(
                    in_flight = state.idle.in_flight(),
                    "drain deadline passed; closing the remaining requests"
                );
                serve.abort();
                Ok(())
            }
        }
    }
}

/// Provision → load → warm up, publishing each phase.
async fn start_up(state: AppState, models: Models) -> Result<(), ServerError> {
    *state.manifest_models.lock().expect("models") = models
        .manifest
        .models
        .iter()
        .map(|m| (m.name.clone(), m.engine.clone()))
        .collect();
    // Fail before downloading gigabytes when a model has no engine in this build.
    let known = models.kinds.kinds();
    if let Some(m) = models
        .manifest
        .models
        .iter()
        .find(|m| !known.contains(&m.engine.as_str()))
    {
        return Err(ServerError::Load {
            model: m.name.clone(),
            reason: format!(
                "no engine is registered for kind {:?} (this build knows: {})",
                m.engine,
                known.join(", ")
            ),
        });
    }
    state.set_phase(Phase::Provisioning);
    let sink = Arc::new(ReadinessProgress(state.clone()));
    let (store, manifest) = (models.store.clone(), models.manifest.clone());
    // The store's pip import blocks: keep it off the runtime's workers.
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(store.pull(&manifest, sink))
    })
    .await
    .map_err(|e| ServerError::Load {
        model: "?".into(),
        reason: e.to_string(),
    })??;
    tracing::info!(
        bytes = report.bytes_downloaded,
        files = report.files_downloaded,
        network = report.used_network,
        "models present"
    );

    let mut engines = Engines::default();
    for snap in report.snapshots {
        let t0 = Instant::now();
        state.set_phase(Phase::Loading {
            model: snap.model.clone(),
        });
        let kinds = models.kinds.clone();
        let (kind, dir) = (snap.engine.clone(), snap.dir.clone());
        let engine = tokio::task::spawn_blocking(move || kinds.load(&kind, &dir))
            .await
            .map_err(|e| ServerError::Load {
                model: snap.model.clone(),
                reason: e.to_string(),
            })?
            .map_err(|e| ServerError::Load {
                model: snap.model.clone(),
                reason: e.to_string(),
            })?;
        state.set_phase(Phase::WarmingUp {
            model: snap.model.clone(),
        });
        let cfg = state.config.queue.clone();
        let served = match engine {
            Engine::Synthesizer(s) => {
                let s = Synthesis::new(&snap.model, s, cfg);
                s.warm_up().await.map_err(|e| ServerError::WarmUp {
                    model: snap.model.clone(),
                    reason: e.to_string(),
                })?;
                Served::Synthesizer(s)
            }
            Engine::Transcriber(t) => {
                let t = Transcription::new(&snap.model, t, cfg);
                t.warm_up().await.map_err(|e| ServerError::WarmUp {
                    model: snap.model.clone(),
                    reason: e.to_string(),
                })?;
                Served::Transcriber(t)
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        state
            .metrics
            .model_load
            .with_label_values(&[&snap.model])
            .set(secs);
        state
            .readiness
            .write()
            .expect("readiness")
            .loaded
            .insert(snap.model.clone(), secs);
        tracing::info!(model = %snap.model, engine = %snap.engine, seconds = secs, "model loaded and warmed up");
        engines.models.push(LoadedModel {
            name: snap.model,
            kind: snap.engine,
            served,
        });
    }
    let _ = state.engines.set(engines);
    state.set_phase(Phase::Ready);
    Ok(())
}
