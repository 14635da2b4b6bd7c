//! Shared setup for the CLI's end-to-end tests: run the real `vox` binary against real servers on 127.0.0.1.
#![allow(dead_code)]

pub mod jobs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// True when running under CI, where every prerequisite must be present (a missing one fails, not skips).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Skips a test whose prerequisite is missing on a developer machine; fails under CI.
pub fn require(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(
            !in_ci(),
            "{what} is required under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is not available here; run .ci/run to install it");
    }
    ok
}

/// A `vox` command with a clean environment pointing at `models_dir` and `endpoint`, tuned for fast tests.
pub fn vox(models_dir: &Path, endpoint: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vox"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_")
            || k.starts_with("VOX_")
            || k.starts_with("AWS_")
            || k == "MODELS_DIR"
            || k == "TRANSFORMERS_CACHE"
        {
            c.env_remove(k);
        }
    }
    c.env("MODELS_DIR", models_dir)
        .env("HF_ENDPOINT", endpoint)
        .env("VOX_RETRY_BASE_MS", "10")
        .env("VOX_RETRY_ATTEMPTS", "6")
        .env("VOX_CHUNK_MIB", "1")
        .env("VOX_FSYNC", "0")
        .env("VOX_LOG", "warn")
        .current_dir(models_dir.parent().unwrap_or(models_dir));
    c
}

pub fn hub_cache(models_dir: &Path) -> PathBuf {
    models_dir.join("huggingface/hub")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Every visible blob (no suffix) hashes to its name; returns the names.
pub fn verified_blobs(cache: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for repo in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if !repo.file_name().to_string_lossy().starts_with("models--") {
            continue;
        }
        for b in std::fs::read_dir(repo.path().join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = b.file_name().to_string_lossy().to_string();
            if name.contains('.') {
                continue;
            }
            let etag = vox_store_etag(&name);
            let got = hash(&b.path(), &etag);
            assert_eq!(
                got,
                name,
                "visible blob {} has wrong content",
                b.path().display()
            );
            names.push(name);
        }
    }
    names
}

fn vox_store_etag(name: &str) -> bool {
    name.len() == 64
}

fn hash(p: &Path, sha256: &bool) -> String {
    let data = std::fs::read(p).unwrap();
    if *sha256 {
        hubsim::sha256_hex(&data)
    } else {
        hubsim::git_blob_sha1(&data)
    }
}

/// Writes a manifest with one model and returns its path.
pub fn manifest(dir: &Path, repo: &str, revision: &str, files: &str) -> PathBuf {
    let p = dir.join("manifest.toml");
    std::fs::write(&p, format!("[[models]]\nname = \"m\"\nengine = \"test\"\nrepo = \"{repo}\"\nrevision = \"{revision}\"\nfiles = {files}\n")).unwrap();
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Finds a tool: an env override, the project's tool cache, or PATH.
pub fn find_tool(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let local = workspace_root().join(".cache/tools/bin").join(name);
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    })
}
