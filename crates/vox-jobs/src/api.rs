//! The jobs HTTP API (axum): `POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/cancel`,
//! `GET /metrics`, `GET /health`, and `GET /objects/{key}` serving the local store's signed links.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::db::{Db, Job, JobFilter, JobState, NewJob};
use crate::error::JobsError;
use crate::metrics::Metrics;
use crate::runner::SubmitRules;
use crate::store::Objects;

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub objects: Objects,
    pub metrics: Metrics,
    pub rules: Arc<SubmitRules>,
    pub max_attempts: u32,
    /// How long download links stay valid.
    pub link_ttl: Duration,
    /// The worker's own URL as clients reach it (local-store links point here).
    pub public_url: String,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/jobs", post(submit).get(list))
        .route("/jobs/{id}", get(status))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/metrics", get(metrics))
        .route("/objects/{*key}", get(object))
        .with_state(state)
}

/// A JSON error: `{"error": "…"}` with a status that says whose fault it is.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<JobsError> for ApiError {
    fn from(e: JobsError) -> Self {
        let status = match &e {
            JobsError::BadInput(_) => StatusCode::BAD_REQUEST,
            JobsError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

/// What `GET /jobs/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub state: JobState,
    pub voice: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub object_key: Option<String>,
    /// A presigned download link, once done.
    pub url: Option<String>,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}

impl ApiState {
    async fn view(&self, j: Job) -> Result<JobView, JobsError> {
        let url = match (&j.object_key, j.state) {
            (Some(k), JobState::Done) => Some(
                self.objects
                    .presign(k, self.link_ttl, &self.public_url)
                    .await?,
            ),
            _ => None,
        };
        Ok(JobView {
            id: j.id,
            state: j.state,
            voice: j.voice,
            attempts: j.attempts,
            error: j.error,
            object_key: j.object_key,
            url,
            created_ms: j.created_ms,
            finished_ms: j.finished_ms,
        })
    }
}

async fn submit(
    State(s): State<ApiState>,
    body: Result<Json<NewJob>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(job) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    s.rules.check(&job)?;
    let (j, created) = s.db.submit(&job, s.max_attempts).await?;
    if created {
        s.metrics.submitted.inc();
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(serde_json::json!({"id": j.id, "state": j.state, "created": created})),
    )
        .into_response())
}

async fn status(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let j = s.db.get(&id).await?;
    Ok(Json(s.view(j).await?))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn list(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = JobFilter {
        state: q.state.as_deref().map(str::parse).transpose()?,
        limit: q.limit,
        offset: q.offset,
    };
    let mut out = Vec::new();
    for j in s.db.list(&filter).await? {
        out.push(s.view(j).await?);
    }
    Ok(Json(serde_json::json!({"jobs": out})))
}

async fn cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let j = s.db.cancel(&id).await?;
    Ok(Json(s.view(j).await?))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    expires: Option<u64>,
    sig: Option<String>,
}

async fn object(
    State(s): State<ApiState>,
    Path(key): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, ApiError> {
    let (Some(expires), Some(sig)) = (q.expires, q.sig) else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "a signed link needs expires and sig".into(),
        ));
    };
    if !s.objects.verify_local(&key, expires, &sig) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "the link is invalid or expired".into(),
        ));
    }
    match s.objects.get(&key).await? {
        Some(b) => Ok(([(header::CONTENT_TYPE, content_type(&key))], b).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no object {key}"))),
    }
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("ogg" | "opus") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    use prometheus::{Encoder, GaugeVec, IntGaugeVec, Opts, TextEncoder};
    // Database-wide numbers (all workers), gathered fresh per scrape.
    let reg = prometheus::Registry::new();
    let jobs = IntGaugeVec::new(
        Opts::new("vox_jobs", "Jobs in the database by state"),
        &["state"],
    )
    .unwrap();
    for st in JobState::ALL {
        jobs.with_label_values(&[st.as_str()]).set(0);
    }
    for (st, n) in s.db.counts().await? {
        jobs.with_label_values(&[st.as_str()]).set(n);
    }
    let report =
        s.db.cost_report()
            .await
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let cost = GaugeVec::new(
        Opts::new(
            "vox_cost_dollars",
            "Recorded dollars in the database, by kind",
        ),
        &["kind"],
    )
    .unwrap();
    cost.with_label_values(&["gpu"]).set(report.gpu_dollars);
    cost.with_label_values(&["storage"])
        .set(report.storage_dollars);
    cost.with_label_values(&["total"]).set(report.total_dollars);
    cost.with_label_values(&["jobs"]).set(report.job_dollars);
    reg.register(Box::new(jobs)).unwrap();
    reg.register(Box::new(cost)).unwrap();
    let mut families = s.metrics.registry.gather();
    families.extend(reg.gather());
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut buf)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf).into_response())
}
