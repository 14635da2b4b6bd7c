//! Operational routes: liveness, readiness, the idle signal, metrics, model and voice lists, the OpenAPI
//! document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::state::{AppState, IdleReport, Phase, Served};

#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, description = "The process is up")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `/ready`: 200 once every model is loaded and warmed up; 503 with the phase until then.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, description = "Every model is loaded and has run a warm-up inference"),
              (status = 503, description = "Starting: the phase (provisioning with bytes, loading which model)")))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let r = state.readiness();
    let ready = r.phase == Phase::Ready;
    let (done, total) = r
        .provisioning
        .values()
        .fold((0, 0), |(d, t), m| (d + m.bytes_done, t + m.bytes_total));
    let models: Vec<_> = state
        .manifest_models
        .lock()
        .expect("models")
        .iter()
        .map(|(name, engine)| {
            let state = if r.loaded.contains_key(name) {
                "ready"
            } else {
                match &r.phase {
                    Phase::Loading { model } if model == name => "loading",
                    Phase::WarmingUp { model } if model == name => "warming_up",
                    _ => "pending",
                }
            };
            json!({"name": name, "engine": engine, "state": state, "load_seconds": r.loaded.get(name)})
        })
        .collect();
    let mut body = serde_json::to_value(&r.phase).expect("phase");
    body["status"] = json!(if ready { "ready" } else { r.phase.name() });
    body["provisioning"] =
        json!({"bytes_done": done, "bytes_total": total, "models": r.provisioning});
    body["models"] = json!(models);
    body["idle"] = json!(state.idle.report());
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/idle", tag = "ops",
    responses((status = 200, description = "Requests in flight and seconds since the last one finished", body = IdleReport)),
    security(("bearer" = [])))]
pub async fn idle(State(state): State<AppState>) -> Json<IdleReport> {
    Json(state.idle.report())
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")),
    security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "The loaded models")), security(("bearer" = [])))]
pub async fn models(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engines = state.engines()?;
    let data: Vec<_> = engines
        .models
        .iter()
        .map(|m| {
            let task = match m.served {
                Served::Synthesizer(_) => "text-to-speech",
                Served::Transcriber(_) => "automatic-speech-recognition",
            };
            json!({"id": m.name, "object": "model", "created": 0, "owned_by": "vox", "engine": m.kind, "task": task})
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

#[utoipa::path(get, path = "/v1/audio/voices", tag = "openai",
    responses((status = 200, description = "Every voice of every TTS model")), security(("bearer" = [])))]
pub async fn voices(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engines = state.engines()?;
    let voices: Vec<_> = engines
        .synthesizers()
        .flat_map(|(m, s)| {
            s.info().voices.iter().map(|v| {
                json!({"id": v.id, "name": v.id, "model": m.name, "language": v.language, "description": v.description})
            }).collect::<Vec<_>>()
        })
        .collect();
    Ok(Json(json!({"voices": voices})))
}

/// The API description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "vox", description = "Speech server: text to speech and speech to text, native and OpenAI-compatible routes."),
    paths(health, ready, idle, metrics, models, voices, openapi,
          crate::tts::tts, crate::tts::speech,
          crate::stt::stt, crate::stt::transcriptions, crate::stt::translations),
    components(schemas(crate::tts::TtsRequest, crate::tts::SpeechRequest, crate::tts::EngineParams,
                       crate::stt::TranscriptionForm, IdleReport)),
    modifiers(&BearerScheme),
    tags((name = "speech", description = "Native routes"), (name = "openai", description = "OpenAI-compatible routes"),
         (name = "ops", description = "Probes, metrics, lists")),
)]
pub struct ApiDoc;

struct BearerScheme;
impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This document")), security(("bearer" = [])))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
