//! An S3-compatible bucket holding a mirror of the cache (Cloudflare R2 has no egress fees, so teams keep their
//! weights there). The bucket holds the cache's own files minus the symlinks:
//!
//! ```text
//! s3://bucket/prefix/models--org--name/refs/<revision>        the commit
//! s3://bucket/prefix/models--org--name/trees/<commit>.json    the listing
//! s3://bucket/prefix/models--org--name/blobs/<etag>           the content
//! ```
//!
//! `vox models mirror` fills it from a local cache; a pull with a mirror configured reads from it first.

use std::io::Read;
use std::sync::Arc;

use object_store::path::Path as OPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::error::{IoContext, Result, StoreError};
use crate::fetch::Origin;
use crate::layout::{HubCache, Listing, RepoEntry, is_commit, repo_folder_name};

/// A cache mirror in an object store.
#[derive(Clone)]
pub struct Mirror {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

/// Uniform multipart part size: R2 wants all parts but the last the same size, and ≥ 5 MiB.
const PART_SIZE: usize = 16 << 20;

impl Mirror {
    /// Opens `s3://bucket[/prefix]` with credentials from the standard `AWS_*` variables; `endpoint` (R2:
    /// `https://<account>.r2.cloudflarestorage.com`) and region (`auto` by default) as given.
    pub fn open(url: &str, endpoint: Option<&str>, region: Option<&str>) -> Result<Mirror> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Config(format!("mirror URL {url:?}: {e}")))?;
        if parsed.scheme() != "s3" || parsed.host_str().unwrap_or("").is_empty() {
            return Err(StoreError::Config(format!(
                "mirror URL {url:?} must look like s3://bucket/prefix"
            )));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_region(region.unwrap_or("auto"));
        if let Some(ep) = endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        let store = b.build().map_err(|e| StoreError::Mirror {
            url: url.to_string(),
            message: format!("cannot configure: {e}"),
        })?;
        Ok(Mirror::from_store(
            Arc::new(store),
            parsed.path().trim_matches('/'),
            url,
        ))
    }

    /// Wraps any object store (tests use this with a local directory or a local S3 server).
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Mirror {
        Mirror {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, repo: &str, tail: &str) -> OPath {
        let folder = repo_folder_name(repo);
        if self.prefix.is_empty() {
            OPath::from(format!("{folder}/{tail}"))
        } else {
            OPath::from(format!("{}/{folder}/{tail}", self.prefix))
        }
    }

    fn err(&self, what: &str, e: object_store::Error) -> StoreError {
        StoreError::Mirror {
            url: self.url.clone(),
            message: format!("{what}: {e}"),
        }
    }

    async fn get_small(&self, key: &OPath, what: &str) -> Result<Option<Vec<u8>>> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| self.err(what, e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(what, e)),
        }
    }

    /// The commit the mirror records for a revision (a commit is its own answer).
    pub async fn resolve(&self, repo: &str, revision: &str) -> Result<Option<String>> {
        if is_commit(revision) {
            return Ok(Some(revision.to_string()));
        }
        let got = self
            .get_small(&self.key(repo, &format!("refs/{revision}")), "read ref")
            .await?;
        Ok(got
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .filter(|c| is_commit(c)))
    }

    pub async fn listing(&self, repo: &str, commit: &str) -> Result<Option<Listing>> {
        let got = self
            .get_small(
                &self.key(repo, &format!("trees/{commit}.json")),
                "read listing",
            )
            .await?;
        Ok(got.and_then(|b| Listing::from_tree_json(&String::from_utf8_lossy(&b))))
    }

    /// Does the mirror hold this blob at the right size?
    pub async fn has_blob(&self, repo: &str, entry: &RepoEntry) -> Result<bool> {
        match self
            .store
            .head(&self.key(repo, &format!("blobs/{}", entry.etag)))
            .await
        {
            Ok(meta) => Ok(meta.size == entry.size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("head blob", e)),
        }
    }

    pub(crate) fn origin(&self, repo: &str, entry: &RepoEntry) -> Origin {
        Origin::Mirror {
            store: self.store.clone(),
            path: self.key(repo, &format!("blobs/{}", entry.etag)),
        }
    }

    /// Uploads a model's blobs (those not already there), its listing and its ref. Returns bytes uploaded.
    pub async fn push(
        &self,
        cache: &HubCache,
        repo: &str,
        revision: &str,
        commit: &str,
        listing: &Listing,
        wanted: &[RepoEntry],
    ) -> Result<u64> {
        let rc = cache.repo(repo);
        let mut uploaded = 0;
        for e in wanted {
            if self.has_blob(repo, e).await? {
                continue;
            }
            let src = rc.snapshot_path(commit, &e.path);
            let key = self.key(repo, &format!("blobs/{}", e.etag));
            let mut f = std::fs::File::open(&src).ctx("open", &src)?;
            let upload = self
                .store
                .put_multipart(&key)
                .await
                .map_err(|err| self.err("start upload", err))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).ctx("read", &src)?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(4)
                    .await
                    .map_err(|err| self.err("upload part", err))?;
                w.write(&buf[..n]);
            }
            w.finish()
                .await
                .map_err(|err| self.err("finish upload", err))?;
            uploaded += e.size;
        }
        let put = |k: OPath, v: Vec<u8>| async move {
            self.store
                .put(&k, PutPayload::from(v))
                .await
                .map_err(|e| self.err("write metadata", e))
        };
        put(
            self.key(repo, &format!("trees/{commit}.json")),
            listing.to_tree_json().into_bytes(),
        )
        .await?;
        if revision != commit {
            put(
                self.key(repo, &format!("refs/{revision}")),
                commit.as_bytes().to_vec(),
            )
            .await?;
        }
        Ok(uploaded)
    }
}
