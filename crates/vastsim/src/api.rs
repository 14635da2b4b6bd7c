//! HTTP routes of the simulated API. Shapes follow `notes/vast-api.md` §3–§4 and §9.3 (what the official
//! CLI needs): every answer is JSON with `Content-Type: application/json`, errors carry `msg`, paths are
//! accepted with and without a trailing slash.

// Helpers return the error *response* for a handler to pass on; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::model::{Instance, Phase};
use crate::{RequestRecord, Shared};

pub(crate) mod search;

type St = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route(
            "/api/v0/instances/{id}/",
            get(show).put(update).delete(destroy),
        )
        .route(
            "/api/v0/instances/{id}",
            get(show).put(update).delete(destroy),
        )
        .route("/api/v1/instances/", get(list_v1))
        .route("/api/v1/instances", get(list_v1))
        .route("/api/v0/instances/", get(list_v0))
        .route("/api/v0/instances", get(list_v0))
        .route("/api/v0/instances/filters/", get(filters))
        .route("/api/v0/bundles/", post(search::search))
        .route("/api/v0/bundles", post(search::search))
        .route("/api/v0/asks/{id}/", put(create))
        .route("/api/v0/asks/{id}", put(create))
        .route("/api/v0/users/current", get(user))
        .route("/api/v0/users/current/", get(user))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .layer(middleware::from_fn_with_state(shared.clone(), faults));
    Router::new()
        .route("/api/v0/gpu_names/unique/", get(gpu_names))
        .route("/api/v0/gpu_names/unique", get(gpu_names))
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "No such endpoint.") })
        .layer(middleware::from_fn_with_state(shared.clone(), log))
        .with_state(shared)
}

pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn error(status: StatusCode, code: &str, msg: &str) -> Response {
    reply(status, json!({"success": false, "error": code, "msg": msg}))
}

async fn log(State(s): St, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    s.reconcile_processes();
    s.log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(RequestRecord {
            method,
            path,
            status: resp.status().as_u16(),
        });
    resp
}

async fn faults(State(s): St, req: Request, next: Next) -> Response {
    let fault = {
        let mut q = s.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let f = q.front_mut().map(|f| {
            f.times = f.times.saturating_sub(1);
            f.clone()
        });
        if q.front().is_some_and(|f| f.times == 0) {
            q.pop_front();
        }
        f
    };
    let Some(f) = fault else {
        return next.run(req).await;
    };
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match serde_json::from_str::<Value>(&f.body) {
        Ok(v) => reply(status, v),
        Err(_) => (status, f.body).into_response(),
    };
    if let Some(ra) = f.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, ra);
    }
    resp
}

/// Accepts `Authorization: Bearer KEY` or the legacy `?api_key=KEY`.
async fn auth(State(s): St, req: Request, next: Next) -> Response {
    let key = &s.cfg.api_key;
    let bearer_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k.trim() == key);
    let query_ok = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("api_key=").is_some_and(|k| k == key))
    });
    // The per-instance key (`CONTAINER_API_KEY`) may show, start, stop and destroy its own instance only.
    let own_instance = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| {
            let path = req.uri().path().trim_end_matches('/');
            path.strip_prefix("/api/v0/instances/")
                .and_then(|id| id.parse::<u64>().ok())
                .is_some_and(|id| k.trim() == instance_key(id))
        });
    if bearer_ok || query_ok || own_instance {
        next.run(req).await
    } else {
        error(StatusCode::UNAUTHORIZED, "auth_error", "Invalid user key")
    }
}

/// The per-instance API key create returns (and the container gets as `CONTAINER_API_KEY`).
pub(crate) fn instance_key(id: u64) -> String {
    format!("inst-key-{id}")
}

fn parse_id(raw: &str) -> Result<u64, Response> {
    raw.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_args",
            "invalid instance_id",
        )
    })
}

fn no_such_instance(id: u64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no_such_instance",
        &format!("Instance {id} not found."),
    )
}

/// A JSON body; an empty one counts as `{}` (the CLI always sends one, other clients may not).
fn body_json(body: &Bytes) -> Result<Value, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_args", "Invalid json body"))
}

async fn show(State(s): St, Path(raw): Path<String>) -> Response {
    let id = match parse_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let (now, epoch, delays) = (s.clock.now(), s.epoch_now(), s.delays());
    let mut w = s.world();
    let row = w.instances.get_mut(&id).map(|i| {
        i.observe(now, &delays);
        i.to_json(epoch)
    });
    reply(StatusCode::OK, json!({ "instances": row }))
}

/// Observes and renders every instance that passes `keep`, in id order.
fn rows(s: &Shared, keep: impl Fn(&Instance) -> bool) -> Vec<Value> {
    let (now, epoch, delays) = (s.clock.now(), s.epoch_now(), s.delays());
    let mut w = s.world();
    w.instances
        .values_mut()
        .filter(|i| keep(i))
        .map(|i| {
            i.observe(now, &delays);
            i.to_json(epoch)
        })
        .collect()
}

/// `GET /api/v1/instances/`: cursor pagination (`limit` ≤ 25, `after_token` = the last id seen) and the
/// `eq` / `in` filters on `label` and `id` that a worker uses to find its own boxes.
async fn list_v1(State(s): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => 25,
        Some(Ok(l)) if l <= 0 => 5,
        Some(Ok(l)) => l.min(25) as usize,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid_request", "bad limit"),
    };
    let after = match q.get("after_token").map(|t| t.parse::<u64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid_token", "bad after_token"),
    };
    let filters: Value = match q.get("select_filters").map(|f| serde_json::from_str(f)) {
        None => json!({}),
        Some(Ok(v)) => v,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "invalid_request", "bad filter"),
    };
    let label_filter = filters.get("label").cloned();
    let all = rows(&s, |i| {
        let label = Value::from(i.label.clone().unwrap_or_default());
        label_filter
            .as_ref()
            .is_none_or(|f| search::matches(&label, f))
    });
    let mut label_counts: HashMap<String, u64> = HashMap::new();
    for r in &all {
        let l = r["label"].as_str().unwrap_or("").to_owned();
        *label_counts.entry(l).or_default() += 1;
    }
    let total = all.len();
    let page: Vec<Value> = all
        .into_iter()
        .filter(|r| after.is_none_or(|a| r["id"].as_u64().unwrap_or(0) > a))
        .take(limit + 1)
        .collect();
    let (page, next) = if page.len() > limit {
        let next = page[limit - 1]["id"].as_u64().map(|id| id.to_string());
        (page[..limit].to_vec(), next)
    } else {
        (page, None)
    };
    reply(
        StatusCode::OK,
        json!({"success": true, "instances_found": page.len(), "total_instances": total,
               "label_counts": label_counts, "next_token": next, "instances": page}),
    )
}

async fn list_v0(State(s): St) -> Response {
    let all = rows(&s, |_| true);
    reply(
        StatusCode::OK,
        json!({"instances_found": all.len(), "instances": all}),
    )
}

async fn filters() -> Response {
    reply(StatusCode::OK, json!({"filters": []}))
}

/// `PUT /api/v0/instances/{id}/`: `{"state": "running"|"stopped"}` or `{"label": ...}`.
async fn update(State(s): St, Path(raw): Path<String>, body: Bytes) -> Response {
    let id = match parse_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = s.clock.now();
    let mut w = s.world();
    let Some(inst) = w.instances.get_mut(&id) else {
        return no_such_instance(id);
    };
    inst.accrue(now);
    if let Some(label) = body.get("label") {
        let label = label.as_str().unwrap_or_default();
        if label.len() > 1024 {
            return error(StatusCode::BAD_REQUEST, "invalid_args", "label_too_long");
        }
        inst.label = Some(label.to_owned());
        return reply(StatusCode::OK, json!({"success": true}));
    }
    match body.get("state").and_then(Value::as_str) {
        Some("running") => start(inst, now),
        Some("stopped") => {
            inst.intended_running = false;
            inst.scheduling = false;
            if inst.phase != Phase::Exited && !inst.stopping {
                inst.stopping = true;
                inst.phase_since = now;
            }
            reply(StatusCode::OK, json!({"success": true}))
        }
        _ => reply(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "msg": "Invalid target state"}),
        ),
    }
}

fn start(inst: &mut Instance, now: std::time::Duration) -> Response {
    let running = inst.intended_running && !inst.scheduling;
    if running && !inst.stopping {
        return reply(StatusCode::OK, json!({"success": true}));
    }
    inst.intended_running = true;
    if inst.stopping {
        // The container never went down: cancelling the stop keeps it running.
        inst.stopping = false;
        return reply(StatusCode::OK, json!({"success": true}));
    }
    if inst.start_blocked {
        inst.scheduling = true;
        return reply(
            StatusCode::OK,
            json!({"success": false, "error": "resources_unavailable",
                   "msg": "Required resources are currently unavailable, state change queued."}),
        );
    }
    inst.scheduling = false;
    inst.phase_since = now;
    reply(StatusCode::OK, json!({"success": true}))
}

async fn destroy(State(s): St, Path(raw): Path<String>) -> Response {
    let id = match parse_id(&raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = s.clock.now();
    let mut w = s.world();
    match w.instances.remove(&id) {
        Some(mut inst) => {
            inst.accrue(now);
            w.destroyed.insert(id, inst.billing);
            drop(w);
            s.reconcile_processes();
            if let Some(cfg) = &s.cfg.onstart {
                let _ = std::fs::remove_dir_all(crate::onstart::instance_dir(cfg, id));
            }
            reply(StatusCode::OK, json!({"success": true}))
        }
        None => no_such_instance(id),
    }
}

/// `PUT /api/v0/asks/{offer}/`: rent an offer.
async fn create(State(s): St, Path(raw): Path<String>, body: Bytes) -> Response {
    let Ok(ask) = raw.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "invalid_args", "invalid ask id");
    };
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(image) = body.get("image").and_then(Value::as_str).map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "invalid_args", "image is required");
    };
    let (now, epoch) = (s.clock.now(), s.epoch_now());
    let mut w = s.world();
    let Some(offer) = w.offers.iter().find(|o| o.id == ask).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "no_such_ask",
            &format!("No ask by id {ask} is available."),
        );
    };
    let disk = body.get("disk").and_then(search::as_f64).unwrap_or(10.0);
    if disk > offer.disk_space {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_args",
            "disk exceeds the offer's disk_space",
        );
    }
    let available = !w.unavailable_offers.contains(&ask);
    let cancel_unavail = body
        .get("cancel_unavail")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !available && cancel_unavail {
        return error(
            StatusCode::GONE,
            "no_such_ask",
            &format!("Instance type {ask} is no longer available."),
        );
    }
    let want_running = body.get("target_state").and_then(Value::as_str) != Some("stopped");
    let env = parse_env(body.get("env"));
    let port_map = w.allocate_ports(&env);
    let id = w.next_id;
    w.next_id += 1;
    let running = available && want_running;
    w.instances.insert(
        id,
        Instance {
            id,
            offer,
            label: body.get("label").and_then(Value::as_str).map(str::to_owned),
            image,
            env,
            onstart: body
                .get("onstart")
                .and_then(Value::as_str)
                .map(str::to_owned),
            runtype: body
                .get("runtype")
                .and_then(Value::as_str)
                .unwrap_or("ssh")
                .to_owned(),
            disk_gb: disk,
            intended_running: running,
            phase: if running {
                Phase::Provisioning
            } else {
                Phase::Exited
            },
            phase_since: now,
            stopping: false,
            scheduling: false,
            start_blocked: false,
            created_epoch: epoch,
            billing: Default::default(),
            billed_until: now,
            port_map,
        },
    );
    reply(
        StatusCode::OK,
        json!({"success": available, "new_contract": id, "instance_api_key": instance_key(id)}),
    )
}

/// `env` as the CLI's object (`{"-p 8000:8000": "1", "K": "V"}`) or the older docker-flag string
/// (`"-p 8000:8000 -e K=V"`).
fn parse_env(env: Option<&Value>) -> Vec<(String, String)> {
    match env {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect(),
        Some(Value::String(s)) => {
            let mut out = Vec::new();
            let mut words = s.split_whitespace();
            while let Some(flag) = words.next() {
                match (flag, words.next()) {
                    ("-p", Some(p)) => out.push((format!("-p {p}"), "1".to_owned())),
                    ("-e", Some(kv)) => {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        out.push((k.to_owned(), v.to_owned()));
                    }
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

async fn gpu_names(State(s): St) -> Response {
    let mut names: Vec<String> = s
        .world()
        .offers
        .iter()
        .map(|o| o.gpu_name.clone())
        .collect();
    names.sort();
    names.dedup();
    reply(StatusCode::OK, json!({ "gpu_names": names }))
}

async fn user(State(s): St) -> Response {
    let now = s.clock.now();
    let mut w = s.world();
    w.accrue_all(now);
    let balance = w.credit - w.total_charges();
    reply(
        StatusCode::OK,
        json!({"id": 1, "username": "sim", "email": "sim@vastsim.invalid", "credit": balance,
               "balance": balance, "host_agreement_accepted": false}),
    )
}
