//! The Hugging Face Hub over HTTP: resolve a revision to a commit, list a commit's files with sizes and content
//! addresses, locate a file (following the resolve redirect to the CDN), and read byte ranges.
//!
//! The token goes only to the Hub's own origin. Redirects are followed by hand: same-origin hops keep the token,
//! a hop to another origin (CDN, Xet bridge, S3) is taken without it.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Response, StatusCode, header};
use serde::Deserialize;
use url::Url;

use crate::error::{Result, StoreError};
use crate::hash::Etag;
use crate::layout::{Listing, RepoEntry};
use crate::retry::{RetryPolicy, is_transient, parse_retry_after};

/// Characters kept as-is in a file path of a resolve URL (huggingface_hub quotes with `safe="/"`).
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Revisions are quoted with no safe characters (`refs/pr/1` → `refs%2Fpr%2F1`).
const REV_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A client of one Hub endpoint.
#[derive(Clone)]
pub struct HubClient {
    endpoint: Url,
    token: Option<String>,
    /// No automatic redirects: we decide per hop whether the token may follow.
    http: reqwest::Client,
    retry: RetryPolicy,
}

/// Where a file's bytes can be read.
#[derive(Debug, Clone)]
pub struct FileLocation {
    pub url: String,
    /// Whether this URL is on the Hub's origin (and so may receive the token).
    pub send_token: bool,
}

#[derive(Deserialize)]
struct RevisionInfo {
    sha: String,
}

#[derive(Deserialize)]
struct TreeItem {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    oid: String,
    #[serde(default)]
    lfs: Option<TreeLfs>,
}

#[derive(Deserialize)]
struct TreeLfs {
    oid: String,
    size: u64,
}

impl HubClient {
    pub fn new(endpoint: &str, token: Option<String>, retry: RetryPolicy) -> Result<Self> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/')).map_err(|e| {
            StoreError::Config(format!("HF_ENDPOINT {endpoint:?} is not a URL: {e}"))
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .user_agent(concat!(
                "vox/",
                env!("CARGO_PKG_VERSION"),
                "; hf_hub-compatible"
            ))
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HubClient {
            endpoint,
            token,
            http,
            retry,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str().trim_end_matches('/')
    }

    fn api_url(&self, repo: &str, tail: &str) -> String {
        format!("{}/api/models/{}/{}", self.endpoint(), repo, tail)
    }

    fn resolve_url(&self, repo: &str, revision: &str, path: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint(),
            repo,
            utf8_percent_encode(revision, REV_KEEP),
            utf8_percent_encode(path, PATH_KEEP)
        )
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.endpoint.origin()
    }

    /// Sends a request, retrying connection errors and transient statuses with backoff. Any other status is
    /// returned to the caller to interpret.
    async fn send(
        &self,
        context: &str,
        method: Method,
        url: &str,
        send_token: bool,
        range: Option<(u64, u64)>,
    ) -> Result<Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(header::ACCEPT_ENCODING, "identity");
            if send_token && let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some((a, b)) = range {
                req = req.header(header::RANGE, format!("bytes={a}-{b}"));
            }
            let (last, retry_after) = match req.send().await {
                Ok(resp) if is_transient(resp.status().as_u16()) => {
                    let ra = resp
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    (format!("HTTP {} from {url}", resp.status()), ra)
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_builder() => {
                    return Err(StoreError::Config(format!(
                        "{context}: bad request URL {url}: {e}"
                    )));
                }
                Err(e) => (format!("{e}"), None),
            };
            if attempt >= self.retry.max_attempts {
                return Err(StoreError::RetriesExhausted {
                    context: context.to_string(),
                    attempts: attempt,
                    last,
                });
            }
            let wait = self.retry.delay(attempt, retry_after);
            tracing::warn!(context, attempt, wait_ms = wait.as_millis() as u64, error = %last, "transient failure, retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Resolves a branch or tag to its commit (`GET /api/models/{repo}/revision/{rev}`).
    pub async fn resolve_commit(&self, repo: &str, revision: &str) -> Result<String> {
        let url = self.api_url(
            repo,
            &format!("revision/{}", utf8_percent_encode(revision, REV_KEEP)),
        );
        let resp = self
            .send(
                &format!("{repo}@{revision}: resolve revision"),
                Method::GET,
                &url,
                true,
                None,
            )
            .await?;
        let resp = self.check(resp, repo, revision, None).await?;
        let info: RevisionInfo = resp.json().await.map_err(|e| StoreError::Http {
            context: format!("{repo}@{revision}: resolve revision"),
            status: 200,
            url: url.clone(),
            message: format!("unexpected body: {e}"),
        })?;
        if !crate::layout::is_commit(&info.sha) {
            return Err(StoreError::Http {
                context: format!("{repo}@{revision}"),
                status: 200,
                url,
                message: format!(
                    "server returned {:?} as the commit; is HF_ENDPOINT a Hugging Face Hub?",
                    info.sha
                ),
            });
        }
        Ok(info.sha.to_ascii_lowercase())
    }

    /// Lists every file at a commit, following the tree API's `Link: rel="next"` pagination.
    pub async fn list_tree(&self, repo: &str, commit: &str) -> Result<Listing> {
        let mut url = self.api_url(repo, &format!("tree/{commit}?recursive=true&expand=false"));
        let mut entries = Vec::new();
        for _page in 0..100_000 {
            let resp = self
                .send(
                    &format!("{repo}@{commit}: list files"),
                    Method::GET,
                    &url,
                    true,
                    None,
                )
                .await?;
            let resp = self.check(resp, repo, commit, None).await?;
            let next = next_link(resp.headers());
            let items: Vec<TreeItem> = resp.json().await.map_err(|e| StoreError::Http {
                context: format!("{repo}@{commit}: list files"),
                status: 200,
                url: url.clone(),
                message: format!("unexpected body: {e}"),
            })?;
            for it in items.into_iter().filter(|i| i.kind == "file") {
                let (etag, size) = match &it.lfs {
                    Some(l) => (Etag::parse(&l.oid), l.size),
                    None => (Etag::parse(&it.oid), it.size),
                };
                let etag = etag.ok_or_else(|| StoreError::Http {
                    context: format!("{repo}@{commit}: list files"),
                    status: 200,
                    url: url.clone(),
                    message: format!("file {:?} has no usable content address", it.path),
                })?;
                entries.push(RepoEntry {
                    path: it.path,
                    size,
                    etag,
                    blob_id: it.oid,
                });
            }
            match next {
                Some(n) => url = n,
                None => return Ok(Listing::from_entries(entries)),
            }
        }
        Err(StoreError::Http {
            context: format!("{repo}@{commit}: list files"),
            status: 200,
            url,
            message: "too many pages".into(),
        })
    }

    /// Finds where to read a file: `HEAD` on the resolve URL, following same-origin redirects; a cross-origin
    /// `Location` is returned as is (to be fetched without the token). Checks the served etag and size.
    pub async fn locate(
        &self,
        repo: &str,
        commit: &str,
        entry: &RepoEntry,
    ) -> Result<FileLocation> {
        let mut url = self.resolve_url(repo, commit, &entry.path);
        for _hop in 0..10 {
            let resp = self
                .send(
                    &format!("{repo}/{}: locate", entry.path),
                    Method::HEAD,
                    &url,
                    true,
                    None,
                )
                .await?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| Url::parse(&url).ok()?.join(l).ok())
                    .ok_or_else(|| StoreError::Http {
                        context: format!("{repo}/{}: locate", entry.path),
                        status: status.as_u16(),
                        url: url.clone(),
                        message: "redirect without a usable Location".into(),
                    })?;
                self.check_served_etag(resp.headers(), repo, entry, &url)?;
                if self.same_origin(&loc) {
                    url = loc.to_string();
                    continue;
                }
                return Ok(FileLocation {
                    url: loc.to_string(),
                    send_token: false,
                });
            }
            let resp = self.check(resp, repo, commit, Some(&entry.path)).await?;
            self.check_served_etag(resp.headers(), repo, entry, &url)?;
            return Ok(FileLocation {
                url,
                send_token: true,
            });
        }
        Err(StoreError::Http {
            context: format!("{repo}/{}: locate", entry.path),
            status: 310,
            url,
            message: "too many redirects".into(),
        })
    }

    fn check_served_etag(
        &self,
        h: &header::HeaderMap,
        repo: &str,
        entry: &RepoEntry,
        url: &str,
    ) -> Result<()> {
        let etag = h
            .get("x-linked-etag")
            .or_else(|| h.get(header::ETAG))
            .and_then(|v| v.to_str().ok())
            .and_then(Etag::parse);
        if let Some(e) = etag
            && e != entry.etag
        {
            return Err(StoreError::Http {
                context: format!("{repo}/{}", entry.path),
                status: 200,
                url: url.to_string(),
                message: format!(
                    "served etag {e} differs from the listing's {}; the repo changed under us, pull again",
                    entry.etag
                ),
            });
        }
        Ok(())
    }

    /// Starts reading bytes `start..=end` of a located file. The response body is the caller's to stream.
    pub async fn get_range(
        &self,
        loc: &FileLocation,
        start: u64,
        end: u64,
        what: &str,
    ) -> Result<Response> {
        let mut url = loc.url.clone();
        let mut send_token = loc.send_token;
        for _hop in 0..10 {
            let resp = self
                .send(what, Method::GET, &url, send_token, Some((start, end)))
                .await?;
            let status = resp.status();
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| Url::parse(&url).ok()?.join(l).ok());
                let Some(next) = next else { break };
                send_token = send_token && self.same_origin(&next);
                url = next.to_string();
                continue;
            }
            if status == StatusCode::PARTIAL_CONTENT || (status == StatusCode::OK && start == 0) {
                return Ok(resp);
            }
            if status == StatusCode::OK {
                return Err(StoreError::Http {
                    context: what.to_string(),
                    status: 200,
                    url,
                    message:
                        "server ignored the Range header; cannot resume or split this download"
                            .into(),
                });
            }
            return Err(StoreError::Http {
                context: what.to_string(),
                status: status.as_u16(),
                url,
                message: error_message(resp).await,
            });
        }
        Err(StoreError::Http {
            context: what.to_string(),
            status: 310,
            url,
            message: "too many redirects".into(),
        })
    }

    /// Maps error statuses to the store's errors; passes 2xx through.
    async fn check(
        &self,
        resp: Response,
        repo: &str,
        revision: &str,
        path: Option<&str>,
    ) -> Result<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let code = resp
            .headers()
            .get("x-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let url = resp.url().to_string();
        match (status.as_u16(), code.as_str()) {
            (401, _) => Err(StoreError::Unauthorized {
                repo: repo.into(),
                status: 401,
                gated: "",
            }),
            (403, _) => Err(StoreError::Unauthorized {
                repo: repo.into(),
                status: 403,
                gated: ", and accept the repo's terms on the Hub if it is gated",
            }),
            (404, "RevisionNotFound") => Err(StoreError::RevisionNotFound {
                repo: repo.into(),
                revision: revision.into(),
            }),
            (404, "EntryNotFound") => Err(StoreError::EntryNotFound {
                repo: repo.into(),
                revision: revision.into(),
                path: path.unwrap_or("").into(),
            }),
            (404, _) => Err(StoreError::RepoNotFound {
                repo: repo.into(),
                endpoint: self.endpoint().into(),
            }),
            (s, _) => Err(StoreError::Http {
                context: repo.into(),
                status: s,
                url,
                message: error_message(resp).await,
            }),
        }
    }
}

async fn error_message(resp: Response) -> String {
    let from_header = resp
        .headers()
        .get("x-error-message")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(m) = from_header {
        return m;
    }
    let body = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or(body);
    msg.chars().take(300).collect()
}

/// Extracts the `rel="next"` URL of a `Link` header.
fn next_link(h: &header::HeaderMap) -> Option<String> {
    let link = h.get(header::LINK)?.to_str().ok()?;
    link.split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| {
            let s = p.find('<')? + 1;
            let e = p.find('>')?;
            Some(p[s..e].to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_quoted_like_huggingface_hub() {
        let c = HubClient::new("http://h.example/", None, RetryPolicy::default()).unwrap();
        assert_eq!(
            c.resolve_url("a/b", "refs/pr/1", "dir/x y.bin"),
            "http://h.example/a/b/resolve/refs%2Fpr%2F1/dir/x%20y.bin"
        );
    }

    #[test]
    fn link_header_next() {
        let mut h = header::HeaderMap::new();
        h.insert(
            header::LINK,
            "<http://x/api/models/a/b/tree/c?cursor=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("http://x/api/models/a/b/tree/c?cursor=2")
        );
    }
}
