//! Where the audio goes: a local directory (the embedded default) or S3 configured for Cloudflare R2, through
//! `object_store`. Objects are content-addressed ([`object_key`]), so a retried or duplicate job finds its
//! audio already there and skips synthesis.
//!
//! Download links: S3 presigns with the bucket's credentials (they stay with the worker; the GPU host never
//! sees them). The local store has no URL of its own, so the worker serves `GET /objects/{key}?expires=…&sig=…`
//! and checks an HMAC-SHA256 of `key\nexpires` with a secret kept in its data dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as OPath;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ObjectStore, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::error::{JobsError, Result};

/// Objects at least this large go up in multipart; R2 wants every part but the last the same size, ≥ 5 MiB.
pub const MULTIPART_THRESHOLD: usize = 8 << 20;
pub const PART_SIZE: usize = 8 << 20;

/// S3 settings; for R2 give `account` (the endpoint becomes `https://<account>.r2.cloudflarestorage.com`,
/// region `auto`) or a full `endpoint`.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    pub account: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Key prefix inside the bucket (e.g. `tts/`).
    pub prefix: String,
}

impl S3Config {
    pub fn endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| {
            self.account
                .as_ref()
                .map(|a| format!("https://{a}.r2.cloudflarestorage.com"))
        })
    }
}

enum Backend {
    Local { secret: Vec<u8> },
    S3(Arc<AmazonS3>),
}

/// The object store the worker writes audio to and hands out links from.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    backend: Arc<Backend>,
    prefix: String,
    name: String,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("name", &self.name).finish()
    }
}

/// The content address of a job's audio: SHA-256 over everything that determines the bytes. `params` is
/// canonicalized (object keys sorted) so the same request always maps to the same object.
pub fn object_key(
    model_revision: &str,
    voice: Option<&str>,
    params: &serde_json::Value,
    text: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        model_revision,
        voice.unwrap_or(""),
        &canonical(params).to_string(),
        text,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let hex = hex::encode(h.finalize());
    format!("tts/{}/{hex}.wav", &hex[..2])
}

fn canonical(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&m[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl Objects {
    /// A directory store; `secret` signs its download links (see [`Objects::load_or_create_secret`]).
    pub fn local(dir: &Path, secret: Vec<u8>) -> Result<Objects> {
        std::fs::create_dir_all(dir).map_err(|e| {
            JobsError::Config(format!(
                "cannot create the object dir {}: {e}",
                dir.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| JobsError::Config(format!("object dir {}: {e}", dir.display())))?;
        Ok(Objects {
            store: Arc::new(store),
            backend: Arc::new(Backend::Local { secret }),
            prefix: String::new(),
            name: dir.display().to_string(),
        })
    }

    /// Reads the local link secret from `path`, creating a random one (mode 0600) the first time.
    pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(b) = hex::decode(s.trim())
            && b.len() >= 16
        {
            return Ok(b);
        }
        let b: [u8; 32] = rand::random();
        if let Some(p) = path.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        std::fs::write(path, hex::encode(b))
            .map_err(|e| JobsError::Config(format!("cannot write {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(b.to_vec())
    }

    pub fn s3(cfg: &S3Config) -> Result<Objects> {
        if cfg.bucket.is_empty() {
            return Err(JobsError::Config("S3: no bucket given".into()));
        }
        if cfg.access_key_id.is_empty() || cfg.secret_access_key.is_empty() {
            return Err(JobsError::Config(
                "S3: set the access key id and secret access key (R2: an API token's S3 credentials)".into(),
            ));
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(cfg.region.as_deref().unwrap_or("auto"))
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(&cfg.secret_access_key);
        let endpoint = cfg.endpoint();
        if let Some(ep) = &endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        let s3 = Arc::new(
            b.build()
                .map_err(|e| JobsError::Config(format!("S3 bucket {}: {e}", cfg.bucket)))?,
        );
        Ok(Objects {
            store: s3.clone(),
            backend: Arc::new(Backend::S3(s3)),
            prefix: cfg.prefix.trim_matches('/').to_string(),
            name: format!(
                "s3://{}@{}",
                cfg.bucket,
                endpoint.as_deref().unwrap_or("aws")
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_local(&self) -> bool {
        matches!(*self.backend, Backend::Local { .. })
    }

    fn path(&self, key: &str) -> OPath {
        if self.prefix.is_empty() {
            OPath::from(key)
        } else {
            OPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn err(&self, what: &'static str, e: object_store::Error) -> JobsError {
        let message = match &e {
            object_store::Error::Generic { source, .. } => {
                let s = source.to_string();
                if s.contains("403")
                    || s.contains("InvalidAccessKeyId")
                    || s.contains("SignatureDoesNotMatch")
                {
                    format!("access denied: check the access key id and secret ({s})")
                } else {
                    s
                }
            }
            other => other.to_string(),
        };
        JobsError::Storage {
            store: self.name.clone(),
            what,
            message,
        }
    }

    /// Does the object exist? (Any error but "not found" is an error: a bad credential must not look like a
    /// missing object and trigger synthesis.)
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("look up an object", e)),
        }
    }

    /// Checks the store answers with these credentials (a start-up probe).
    pub async fn check(&self) -> Result<()> {
        self.exists("vox-probe/does-not-exist").await.map(|_| ())
    }

    /// Writes an object whole (multipart above [`MULTIPART_THRESHOLD`], uniform [`PART_SIZE`] parts), with its
    /// content type and metadata on S3.
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
        metadata: &[(&str, String)],
    ) -> Result<()> {
        let path = self.path(key);
        let mut attributes = Attributes::new();
        if !self.is_local() {
            attributes.insert(Attribute::ContentType, content_type.to_string().into());
            for (k, v) in metadata {
                attributes.insert(Attribute::Metadata(k.to_string().into()), v.clone().into());
            }
        }
        if data.len() < MULTIPART_THRESHOLD {
            let opts = PutOptions {
                attributes,
                ..Default::default()
            };
            self.store
                .put_opts(&path, PutPayload::from(data), opts)
                .await
                .map_err(|e| self.err("upload an object", e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart_opts(
                &path,
                object_store::PutMultipartOptions {
                    attributes,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err("start a multipart upload", e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for piece in data.chunks(1 << 20) {
            w.wait_for_capacity(4)
                .await
                .map_err(|e| self.err("upload a part", e))?;
            w.write(piece);
        }
        w.finish()
            .await
            .map_err(|e| self.err("finish a multipart upload", e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| self.err("read an object", e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("read an object", e)),
        }
    }

    /// A GET link valid for `ttl`. For the local store, `worker_url` is where the worker serves `/objects/`.
    pub async fn presign(&self, key: &str, ttl: Duration, worker_url: &str) -> Result<String> {
        match &*self.backend {
            Backend::S3(s3) => {
                let url = s3
                    .signed_url(reqwest::Method::GET, &self.path(key), ttl)
                    .await
                    .map_err(|e| self.err("presign a link", e))?;
                Ok(url.to_string())
            }
            Backend::Local { secret } => {
                let expires = unix_now() + ttl.as_secs();
                let sig = local_sig(secret, key, expires);
                Ok(format!(
                    "{}/objects/{key}?expires={expires}&sig={sig}",
                    worker_url.trim_end_matches('/')
                ))
            }
        }
    }

    /// Checks a local link's signature and expiry (constant-time compare).
    pub fn verify_local(&self, key: &str, expires: u64, sig: &str) -> bool {
        let Backend::Local { secret } = &*self.backend else {
            return false;
        };
        if expires < unix_now() {
            return false;
        }
        let Ok(given) = hex::decode(sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(format!("{key}\n{expires}").as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn local_sig(secret: &[u8], key: &str, expires: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{key}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The default local object dir under a data dir.
pub fn default_object_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("objects")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_input_and_not_on_param_order() {
        let p1 = serde_json::json!({"a": 1, "b": {"y": 2, "x": 3}});
        let p2: serde_json::Value =
            serde_json::from_str(r#"{"b": {"x": 3, "y": 2}, "a": 1}"#).unwrap();
        let k = object_key("rev1", Some("joe"), &p1, "hello");
        assert_eq!(k, object_key("rev1", Some("joe"), &p2, "hello"));
        assert_ne!(k, object_key("rev2", Some("joe"), &p1, "hello"));
        assert_ne!(k, object_key("rev1", None, &p1, "hello"));
        assert_ne!(
            k,
            object_key("rev1", Some("joe"), &serde_json::json!({}), "hello")
        );
        assert_ne!(k, object_key("rev1", Some("joe"), &p1, "hello!"));
        // Length prefixes: moving a boundary changes the key.
        assert_ne!(
            object_key("ab", Some("c"), &p1, "x"),
            object_key("a", Some("bc"), &p1, "x")
        );
    }

    #[tokio::test]
    async fn local_links_verify_until_they_expire_or_are_tampered_with() {
        let dir = tempfile::tempdir().unwrap();
        let o = Objects::local(dir.path(), vec![7; 32]).unwrap();
        o.put(
            "tts/ab/x.wav",
            Bytes::from_static(b"RIFF"),
            "audio/wav",
            &[],
        )
        .await
        .unwrap();
        assert!(o.exists("tts/ab/x.wav").await.unwrap());
        assert!(!o.exists("tts/ab/y.wav").await.unwrap());
        let url = o
            .presign("tts/ab/x.wav", Duration::from_secs(60), "http://w")
            .await
            .unwrap();
        let q = url::Url::parse(&url).unwrap();
        let get = |k: &str| q.query_pairs().find(|(n, _)| n == k).unwrap().1.to_string();
        let (exp, sig) = (get("expires").parse::<u64>().unwrap(), get("sig"));
        assert!(o.verify_local("tts/ab/x.wav", exp, &sig));
        assert!(!o.verify_local("tts/ab/y.wav", exp, &sig));
        assert!(!o.verify_local("tts/ab/x.wav", exp + 1, &sig));
        assert!(!o.verify_local(
            "tts/ab/x.wav",
            unix_now() - 1,
            &local_sig(&[7; 32], "tts/ab/x.wav", unix_now() - 1)
        ));
        let other = Objects::local(dir.path(), vec![8; 32]).unwrap();
        assert!(!other.verify_local("tts/ab/x.wav", exp, &sig));
    }
}
