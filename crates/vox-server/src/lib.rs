//! `vox-server`: the HTTP API of vox.
//!
//! What it does: binds at once and answers `/health`; brings the manifest's models up (provision through
//! `vox-store`, load through the loaders the binary registered in [`EngineKinds`], one warm-up inference each)
//! while `/ready` reports the phase; then serves text to speech (`POST /tts`, OpenAI's `POST /v1/audio/speech`,
//! whole or streamed) and speech to text (`POST /stt`, OpenAI's `/v1/audio/transcriptions` and
//! `/v1/audio/translations`), lists models and voices, documents itself at `/openapi.json`, exports Prometheus
//! `/metrics` and an idle signal (`/idle`, also in `/ready`). Cross-cutting concerns are tower layers: Bearer
//! keys, body-size limit, timeout, request ids, tracing, request metrics.
//!
//! What it does not: name a model family (engines come in through `vox-engine`'s traits), run inference on the
//! async runtime (engines run on their own threads, see `vox-engine`), or parse flags (the `vox` binary does).

mod audio_out;
mod auth;
mod config;
mod error;
mod kinds;
mod metrics;
mod ops;
mod server;
mod state;
mod stt;
mod transcript;
mod tts;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use config::{RequestLimits, ServerConfig};
pub use error::ApiError;
pub use kinds::{Engine, EngineKinds, LoadError};
pub use ops::ApiDoc;
pub use server::{Models, Server, ServerError};
pub use state::{AppState, IdleReport, Phase};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route with its layers. Layers run outside in: request id → trace → metrics → auth → timeout → body
/// limit → handler.
pub fn router(state: AppState) -> Router {
    let limits = state.config.limits.clone();
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/idle", get(ops::idle))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/tts", post(tts::tts))
        .route("/stt", post(stt::stt))
        .route("/v1/audio/speech", post(tts::speech))
        .route("/v1/audio/transcriptions", post(stt::transcriptions))
        .route("/v1/audio/translations", post(stt::translations))
        .route("/v1/models", get(ops::models))
        .route("/v1/audio/voices", get(ops::voices))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout.max(Duration::from_millis(1)),
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path, never the headers: they carry the API key.
                tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
