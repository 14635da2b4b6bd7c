//! HTTP client for the Vast.ai REST API (`notes/vast-api.md`): Bearer auth, JSON bodies, bounded retries
//! with backoff on 429 / 5xx / network errors that honour `Retry-After`.

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::VastError;
use crate::types::{Account, CreateInstance, Created, Instance, Offer, OfferQuery, StartOutcome};

/// The production API.
pub const VAST_BASE_URL: &str = "https://console.vast.ai";

/// How failed calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts per call, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry when the server gives no `Retry-After`; doubles each retry.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A longer `Retry-After` is not waited out: the call fails with [`VastError::RateLimited`].
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A Vast.ai account seen through its API key.
#[derive(Debug, Clone)]
pub struct VastClient {
    http: reqwest::Client,
    base: Url,
    api_key: String,
    retry: RetryPolicy,
}

/// Whether a call may be repeated after an ambiguous failure (timeout, 502/504): a create might have
/// succeeded, so it is retried only on answers that prove it was not processed (429, 503).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

impl VastClient {
    /// A client for `base_url` (e.g. [`VAST_BASE_URL`], or a simulator's URL in tests).
    pub fn new(base_url: &str, api_key: impl Into<String>) -> Result<VastClient, VastError> {
        let bad = |reason: String| VastError::BadBaseUrl {
            url: base_url.to_owned(),
            reason,
        };
        let base = Url::parse(base_url).map_err(|e| bad(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(bad("not a base URL".to_owned()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("vox-fleet/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(VastClient {
            http,
            base,
            api_key: api_key.into(),
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// One instance, or `None` if it does not exist (destroyed, never existed, or not this account's).
    pub async fn show_instance(&self, id: u64) -> Result<Option<Instance>, VastError> {
        #[derive(Deserialize)]
        struct Shown {
            instances: Option<Instance>,
        }
        let what = format!("show instance {id}");
        let req = |c: &Self| {
            c.request(
                Method::GET,
                &format!("/api/v0/instances/{id}/"),
                &[("owner", "me")],
            )
        };
        let shown: Shown = self.call(&what, Idempotent::Yes, req).await?;
        Ok(shown.instances)
    }

    /// All instances of the account (v1 list, following `next_token`).
    pub async fn list_instances(&self) -> Result<Vec<Instance>, VastError> {
        #[derive(Deserialize)]
        struct Page {
            instances: Vec<Instance>,
            #[serde(default)]
            next_token: Option<Value>,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("select_filters", "{}".to_owned()),
                ("order_by", r#"[{"col":"id","dir":"asc"}]"#.to_owned()),
                ("limit", "25".to_owned()),
            ];
            if let Some(t) = &token {
                query.push(("after_token", t.clone()));
            }
            let req = |c: &Self| {
                let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                c.request(Method::GET, "/api/v1/instances/", &q)
            };
            let page: Page = self.call("list instances", Idempotent::Yes, req).await?;
            out.extend(page.instances);
            token = match page.next_token {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The account behind the key (`GET /api/v0/users/current`): a cheap check that the key works, made
    /// before a worker takes jobs so a wrong key is a start-up error rather than a failed job.
    pub async fn current_user(&self) -> Result<Account, VastError> {
        let req = |c: &Self| c.request(Method::GET, "/api/v0/users/current", &[]);
        self.call("show the current user", Idempotent::Yes, req)
            .await
    }

    /// Asks for the instance to run. [`StartOutcome::Queued`] means its GPU is taken and the start
    /// waits ("Scheduling"); a later [`VastClient::stop_instance`] cancels it.
    pub async fn start_instance(&self, id: u64) -> Result<StartOutcome, VastError> {
        let what = format!("start instance {id}");
        let v = self.set_state(id, "running", &what).await?;
        match api_status(&v) {
            ApiStatus::Ok => Ok(StartOutcome::Accepted),
            ApiStatus::Failed { code, .. } if code == "resources_unavailable" => {
                Ok(StartOutcome::Queued)
            }
            ApiStatus::Failed { code, msg } => Err(VastError::Api {
                what,
                status: StatusCode::OK,
                code,
                msg,
            }),
        }
    }

    /// Asks for the instance to stop (GPU released, disk kept, storage still billed).
    pub async fn stop_instance(&self, id: u64) -> Result<(), VastError> {
        let what = format!("stop instance {id}");
        let v = self.set_state(id, "stopped", &what).await?;
        expect_success(v, what)
    }

    async fn set_state(&self, id: u64, state: &str, what: &str) -> Result<Value, VastError> {
        let body = json!({ "state": state });
        let req = |c: &Self| {
            c.request(Method::PUT, &format!("/api/v0/instances/{id}/"), &[])
                .json(&body)
        };
        self.call(what, Idempotent::Yes, req).await
    }

    /// Destroys the instance and its disk (irreversible; ends all billing for it).
    pub async fn destroy_instance(&self, id: u64) -> Result<(), VastError> {
        let what = format!("destroy instance {id}");
        let req = |c: &Self| {
            c.request(Method::DELETE, &format!("/api/v0/instances/{id}/"), &[])
                .json(&json!({}))
        };
        let v: Value = self.call(&what, Idempotent::Yes, req).await?;
        expect_success(v, what)
    }

    /// Offers matching `query`, in its order.
    pub async fn search_offers(&self, query: &OfferQuery) -> Result<Vec<Offer>, VastError> {
        #[derive(Deserialize)]
        struct Offers {
            offers: Vec<Offer>,
        }
        let body = query.to_body();
        let req = |c: &Self| c.request(Method::POST, "/api/v0/bundles/", &[]).json(&body);
        let found: Offers = self.call("search offers", Idempotent::Yes, req).await?;
        Ok(found.offers)
    }

    /// Rents offer `offer_id`. Never retried after an ambiguous failure: the instance may exist, so the
    /// caller should list instances by label before trying again.
    pub async fn create_instance(
        &self,
        offer_id: u64,
        spec: &CreateInstance,
    ) -> Result<Created, VastError> {
        let what = format!("create instance from offer {offer_id}");
        let mut body = serde_json::to_value(spec).map_err(|e| VastError::Decode {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        body["client_id"] = json!("me");
        let req = |c: &Self| {
            c.request(Method::PUT, &format!("/api/v0/asks/{offer_id}/"), &[])
                .json(&body)
        };
        let v: Value = self
            .call(&what, Idempotent::No, req)
            .await
            .map_err(|e| match e {
                VastError::NotFound { msg, .. } => VastError::OfferGone {
                    offer: offer_id,
                    msg,
                },
                VastError::Api { status, msg, .. } if status == StatusCode::GONE => {
                    VastError::OfferGone {
                        offer: offer_id,
                        msg,
                    }
                }
                e => e,
            })?;
        // `success: false` with a `new_contract` = created, but stopped for lack of capacity.
        let Some(id) = v.get("new_contract").and_then(Value::as_u64) else {
            let ApiStatus::Failed { code, msg } = api_status(&v) else {
                return Err(VastError::Decode {
                    what,
                    reason: "no new_contract in the answer".to_owned(),
                });
            };
            return Err(VastError::Api {
                what,
                status: StatusCode::OK,
                code,
                msg,
            });
        };
        Ok(Created {
            id,
            started: matches!(api_status(&v), ApiStatus::Ok),
            instance_api_key: v
                .get("instance_api_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    fn request(&self, method: Method, path: &str, query: &[(&str, &str)]) -> RequestBuilder {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}{path}"));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http
            .request(method, url)
            .bearer_auth(&self.api_key)
            .header(header::ACCEPT, "application/json")
    }

    /// Sends the request `build` makes, retrying per the policy, and decodes a 2xx JSON body.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        idempotent: Idempotent,
        build: impl Fn(&Self) -> RequestBuilder,
    ) -> Result<T, VastError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts;
            let resp = match build(self).send().await {
                Ok(r) => r,
                Err(source) => {
                    let err = VastError::Transport {
                        what: what.to_owned(),
                        source,
                    };
                    if last || idempotent == Idempotent::No {
                        return Err(err);
                    }
                    let delay = self.backoff(attempt);
                    tracing::warn!(%what, attempt, ?delay, "Vast.ai unreachable, retrying: {err}");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            let status = resp.status();
            let retryable = match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => true,
                s if s.is_server_error() => idempotent == Idempotent::Yes,
                _ => false,
            };
            if !retryable {
                return decode(what, resp).await;
            }
            let retry_after = retry_after(&resp);
            let too_long = retry_after.is_some_and(|d| d > self.retry.max_retry_after);
            if last || too_long {
                return Err(if status == StatusCode::TOO_MANY_REQUESTS {
                    VastError::RateLimited {
                        what: what.to_owned(),
                        attempts: attempt,
                        retry_after: retry_after.map(|d| d.as_secs()),
                    }
                } else {
                    let msg = error_message(&resp.text().await.unwrap_or_default());
                    VastError::Server {
                        what: what.to_owned(),
                        status,
                        msg,
                    }
                });
            }
            let delay = retry_after.unwrap_or_else(|| self.backoff(attempt));
            tracing::debug!(%what, attempt, %status, ?delay, "Vast.ai asked to retry");
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with jitter (50–100 % of the nominal delay) so parallel workers spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let nominal = self
            .retry
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.retry.max_delay);
        nominal.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

enum ApiStatus {
    Ok,
    Failed { code: String, msg: String },
}

/// Reads `success` / `error` / `msg` of a 200 answer (absent `success` counts as success).
fn api_status(v: &Value) -> ApiStatus {
    if v.get("success").and_then(Value::as_bool) == Some(false) {
        ApiStatus::Failed {
            code: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            msg: v
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        }
    } else {
        ApiStatus::Ok
    }
}

fn expect_success(v: Value, what: String) -> Result<(), VastError> {
    match api_status(&v) {
        ApiStatus::Ok => Ok(()),
        ApiStatus::Failed { code, msg } => Err(VastError::Api {
            what,
            status: StatusCode::OK,
            code,
            msg,
        }),
    }
}

/// The human message of an error body: `msg`, else `detail`, else the text itself.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => ["msg", "detail", "error"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map_or_else(|| body.trim().to_owned(), str::to_owned),
        Err(_) => body.trim().chars().take(200).collect(),
    }
}

async fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    resp: Response,
) -> Result<T, VastError> {
    let status = resp.status();
    let body = resp.text().await.map_err(|source| VastError::Transport {
        what: what.to_owned(),
        source,
    })?;
    if status.is_success() {
        return serde_json::from_str(&body).map_err(|e| VastError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        });
    }
    let msg = error_message(&body);
    let what = what.to_owned();
    Err(match status {
        StatusCode::UNAUTHORIZED => VastError::Unauthorized { msg },
        StatusCode::FORBIDDEN => VastError::Forbidden { what, msg },
        StatusCode::NOT_FOUND => VastError::NotFound { what, msg },
        s if s.is_server_error() => VastError::Server { what, status, msg },
        _ => {
            let code = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            VastError::Api {
                what,
                status,
                code,
                msg,
            }
        }
    })
}
