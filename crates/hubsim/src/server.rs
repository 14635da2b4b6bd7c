//! The two listeners (Hub and CDN), request dispatch, fault application, logging, and the file endpoints.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LOCATION, RETRY_AFTER,
};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::body::{BodyPlan, ByteRange, parse_range};
use crate::catalog::{Catalog, Snapshot};
use crate::faults::FaultRules;
use crate::{Origin, RequestRecord, api};

pub(crate) const X_REPO_COMMIT: &str = "x-repo-commit";
const X_LINKED_ETAG: &str = "x-linked-etag";
const X_LINKED_SIZE: &str = "x-linked-size";
const X_ERROR_CODE: &str = "x-error-code";
const X_ERROR_MESSAGE: &str = "x-error-message";

/// State shared by both listeners and every [`crate::HubSim`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub catalog: RwLock<Catalog>,
    pub faults: FaultRules,
    pub log: Mutex<Vec<RequestRecord>>,
    pub served: Mutex<Vec<ServedBody>>,
    pub bandwidth: Mutex<Option<u64>>,
    pub token: Option<String>,
    pub tree_page_size: usize,
    pub endpoint: String,
    pub cdn_endpoint: String,
}

/// One GET body: the names it counts under for `bytes_served`, and the bytes sent so far.
#[derive(Debug)]
pub(crate) struct ServedBody {
    pub labels: Vec<String>,
    pub sent: Arc<AtomicU64>,
}

/// The parts of a request that the handlers look at.
pub(crate) struct Req {
    pub method: Method,
    /// URL path as sent (percent-encoded).
    pub path: String,
    pub query: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    /// What fault rules match against.
    pub fault_keys: Vec<String>,
}

/// Binds a listener and returns it with its `http://addr` endpoint.
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, format!("http://{local}")))
}

/// Serves `origin` on `listener` until the task is aborted or the runtime ends.
pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>, origin: Origin) -> AbortHandle {
    let app = Router::new().fallback(move |req: Request| handle(shared.clone(), origin, req));
    let listener = listener.tap_io(|tcp| {
        // Small responses (HEAD, JSON) must not wait for delayed ACKs on keep-alive connections.
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(?origin, %err, "hubsim listener stopped");
        }
    })
    .abort_handle()
}

async fn handle(shared: Arc<Shared>, origin: Origin, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = parts.uri.path().to_owned();
    let req = Req {
        fault_keys: shared.fault_keys(origin, &path),
        method: parts.method.clone(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        range: header("range"),
        authorization: header("authorization"),
        path,
    };
    if let Some(delay) = shared.faults.take_delay(&req.fault_keys) {
        tokio::time::sleep(delay).await;
    }
    let response = match shared.faults.take_status(&req.fault_keys) {
        Some((status, retry_after)) => injected_status(status, retry_after),
        None => match origin {
            Origin::Hub => shared.hub_route(&req),
            Origin::Cdn => shared.cdn_route(&req),
        },
    };
    let record = RequestRecord {
        origin,
        method: req.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or(req.path.clone(), |pq| pq.to_string()),
        range: req.range,
        authorization: req.authorization,
        status: response.status().as_u16(),
    };
    tracing::debug!(?record.origin, %record.method, %record.path, record.status, "hubsim request");
    shared.log.lock().expect("request log lock").push(record);
    response
}

impl Shared {
    /// The URL path as sent and decoded, plus for a CDN blob the `org/name/path` of its files.
    fn fault_keys(&self, origin: Origin, path: &str) -> Vec<String> {
        let mut keys = vec![path.to_owned()];
        let decoded = percent_decode(path);
        if decoded != path {
            keys.push(decoded);
        }
        if origin == Origin::Cdn
            && let Some(blob) = path
                .strip_prefix("/cdn/")
                .and_then(|sha| self.catalog().blob(sha))
        {
            keys.extend(blob.labels);
        }
        keys
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().expect("catalog lock")
    }

    fn hub_route(&self, req: &Req) -> Response {
        let segments: Vec<String> = req
            .path
            .trim_start_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let get_or_head = req.method == Method::GET || req.method == Method::HEAD;
        match segments.as_slice() {
            _ if !get_or_head => {
                hub_error(StatusCode::METHOD_NOT_ALLOWED, None, "method not allowed")
            }
            [org, name, "resolve", rev, file @ ..] if !file.is_empty() => {
                self.resolve(req, &format!("{org}/{name}"), rev, &file.join("/"))
            }
            ["api", "models", org, name] => self.model_info(req, &format!("{org}/{name}"), "main"),
            ["api", "models", org, name, "revision", rev] => {
                self.model_info(req, &format!("{org}/{name}"), rev)
            }
            ["api", "models", org, name, "tree", rev, sub @ ..] => {
                let repo_id = format!("{org}/{name}");
                match self.access(&repo_id, rev, req) {
                    Ok(snapshot) => api::tree(
                        self,
                        req,
                        &repo_id,
                        rev,
                        &snapshot,
                        sub.join("/").trim_matches('/'),
                    ),
                    Err(denied) => denied.into_response(),
                }
            }
            _ => hub_error(StatusCode::NOT_FOUND, None, "no such endpoint"),
        }
    }

    fn model_info(&self, req: &Req, repo_id: &str, rev: &str) -> Response {
        match self.access(repo_id, rev, req) {
            Ok(snapshot) => {
                let private = self.catalog().repo(repo_id).is_some_and(|r| r.private);
                api::model_info(req, repo_id, private, &snapshot)
            }
            Err(denied) => denied.into_response(),
        }
    }

    /// The Hub's checks in its order: gated, repository, credentials, revision.
    fn access(&self, repo_id: &str, rev: &str, req: &Req) -> Result<Arc<Snapshot>, Denied> {
        if repo_id.starts_with("forbidden/") {
            let message =
                format!("Access to model {repo_id} is restricted. You must have access to it.");
            return Err(Denied {
                status: StatusCode::FORBIDDEN,
                code: "GatedRepo",
                message,
            });
        }
        let catalog = self.catalog();
        let not_found = |status| Denied {
            status,
            code: "RepoNotFound",
            message: format!("Repository Not Found for url: {repo_id}."),
        };
        let Some(repo) = catalog.repo(repo_id) else {
            return Err(not_found(StatusCode::NOT_FOUND));
        };
        if repo.private && !self.authorized(req.authorization.as_deref()) {
            // Like the Hub: a private repository looks absent to those who may not see it.
            return Err(not_found(StatusCode::UNAUTHORIZED));
        }
        repo.resolve(rev).ok_or_else(|| Denied {
            status: StatusCode::NOT_FOUND,
            code: "RevisionNotFound",
            message: format!("Invalid rev id: {rev}"),
        })
    }

    fn authorized(&self, authorization: Option<&str>) -> bool {
        let presented = authorization.and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        });
        matches!((presented, &self.token), (Some(p), Some(t)) if p.trim() == t)
    }

    /// `/{org}/{name}/resolve/{rev}/{path}`: regular files served here, LFS files redirected to the CDN.
    fn resolve(&self, req: &Req, repo_id: &str, rev: &str, path: &str) -> Response {
        let snapshot = match self.access(repo_id, rev, req) {
            Ok(s) => s,
            Err(denied) => return denied.into_response(),
        };
        let Some(file) = snapshot.files.get(path) else {
            let mut response = hub_error(
                StatusCode::NOT_FOUND,
                Some("EntryNotFound"),
                &format!("{path} does not exist"),
            );
            insert(&mut response, X_REPO_COMMIT, &snapshot.commit);
            return response;
        };
        let mut headers = vec![
            (X_REPO_COMMIT, snapshot.commit.clone()),
            (ETAG.as_str(), format!("\"{}\"", file.etag)),
        ];
        if file.lfs {
            headers.extend([
                (
                    LOCATION.as_str(),
                    format!("{}/cdn/{}", self.cdn_endpoint, file.etag),
                ),
                (X_LINKED_ETAG, format!("\"{}\"", file.etag)),
                (X_LINKED_SIZE, file.size().to_string()),
                (ACCEPT_RANGES.as_str(), "bytes".to_owned()),
            ]);
            let mut response = StatusCode::FOUND.into_response();
            for (name, value) in headers {
                insert(&mut response, name, &value);
            }
            return response;
        }
        let labels = vec![percent_decode(&req.path), format!("{repo_id}/{path}")];
        self.file_response(req, file.content.clone(), labels, &headers)
    }

    /// `/cdn/{sha256}`: LFS content, no authentication.
    fn cdn_route(&self, req: &Req) -> Response {
        if req.method != Method::GET && req.method != Method::HEAD {
            return hub_error(StatusCode::METHOD_NOT_ALLOWED, None, "method not allowed");
        }
        let blob = req
            .path
            .strip_prefix("/cdn/")
            .and_then(|sha| Some((sha, self.catalog().blob(sha)?)));
        let Some((sha, blob)) = blob else {
            return hub_error(StatusCode::NOT_FOUND, None, "no such blob");
        };
        let mut labels = vec![req.path.clone()];
        labels.extend(blob.labels);
        self.file_response(
            req,
            blob.content,
            labels,
            &[(ETAG.as_str(), format!("\"{sha}\""))],
        )
    }

    /// `200`/`206`/`416` for `content` with `Range` support; GET bodies get the body faults and throttling.
    fn file_response(
        &self,
        req: &Req,
        content: Bytes,
        labels: Vec<String>,
        headers: &[(&str, String)],
    ) -> Response {
        let size = content.len() as u64;
        let (status, start, end) = match parse_range(req.range.as_deref(), size) {
            ByteRange::Full => (StatusCode::OK, 0, size),
            ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
            ByteRange::Unsatisfiable => {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                insert(
                    &mut response,
                    CONTENT_RANGE.as_str(),
                    &format!("bytes */{size}"),
                );
                return response;
            }
        };
        let body = if req.method == Method::HEAD {
            Body::empty()
        } else {
            let sent = Arc::new(AtomicU64::new(0));
            self.served.lock().expect("served lock").push(ServedBody {
                labels,
                sent: sent.clone(),
            });
            let keys = &req.fault_keys;
            BodyPlan {
                cut_after: self.faults.take_cut(keys, end - start),
                corrupt_at: self.faults.take_corrupt(keys, start, end),
                bandwidth: *self.bandwidth.lock().expect("bandwidth lock"),
                content,
                start,
                end,
                sent,
            }
            .into_body()
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        for (name, value) in headers {
            insert(&mut response, name, value);
        }
        insert(&mut response, ACCEPT_RANGES.as_str(), "bytes");
        insert(
            &mut response,
            CONTENT_TYPE.as_str(),
            "application/octet-stream",
        );
        insert(
            &mut response,
            CONTENT_LENGTH.as_str(),
            &(end - start).to_string(),
        );
        if status == StatusCode::PARTIAL_CONTENT {
            insert(
                &mut response,
                CONTENT_RANGE.as_str(),
                &format!("bytes {start}-{}/{size}", end - 1),
            );
        }
        response
    }
}

/// A refusal by the access checks; answered as a [`hub_error`] with its `X-Error-Code`.
pub(crate) struct Denied {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        hub_error(self.status, Some(self.code), &self.message)
    }
}

/// A Hub-style error: `X-Error-Code` (when given), `X-Error-Message` and `{"error": message}`.
pub(crate) fn hub_error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if let Some(code) = code {
        insert(&mut response, X_ERROR_CODE, code);
    }
    insert(&mut response, X_ERROR_MESSAGE, message);
    response
}

fn injected_status(status: u16, retry_after_secs: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = hub_error(
        status,
        None,
        &format!("hubsim: injected status {}", status.as_u16()),
    );
    if let Some(secs) = retry_after_secs {
        insert(&mut response, RETRY_AFTER.as_str(), &secs.to_string());
    }
    response
}

/// Sets a header; values that are not valid header text (e.g. odd bytes from a URL) are dropped.
pub(crate) fn insert(response: &mut Response, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
        response.headers_mut().insert(name, value);
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are); bytes that are not UTF-8 become U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` when `keep_slash`).
pub(crate) fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_decode("refs%2Fpr%2F1"), "refs/pr/1");
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(percent_encode("dir/a b.txt", true), "dir/a%20b.txt");
    }
}
