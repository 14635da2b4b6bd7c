//! Pulls against a Hub-compatible server on 127.0.0.1 (hubsim) with the Hub's headers, redirects to a second
//! origin, Range, and injected faults.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hubsim::{Fault, HubSim, Origin, Repo, RepoFile, SimConfig};
use vox_store::{Manifest, ModelStore, NoProgress, RetryPolicy, StoreConfig, StoreError};

const BIG: usize = 3 * 1024 * 1024 + 12345;

fn repo() -> Repo {
    Repo::new(
        "acme/tiny-tts",
        vec![
            RepoFile::regular("config.json", r#"{"a": 1}"#),
            RepoFile::regular("tokenizer/vocab.txt", "a\nb\nc\n"),
            RepoFile::lfs(
                "model.safetensors",
                hubsim::synthetic_content("acme/tiny-tts", "model.safetensors", BIG as u64),
            ),
            RepoFile::regular("README.md", "# not wanted"),
        ],
    )
}

fn config(cache: &Path, sim: &HubSim) -> StoreConfig {
    let mut c = StoreConfig::new(cache);
    c.endpoint = sim.endpoint();
    c.chunk_size = 512 * 1024; // several chunks per large file
    c.retry = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
    };
    c.fsync = false;
    c
}

fn manifest(revision: &str, files: &str) -> Manifest {
    Manifest::parse(
        &format!("[[models]]\nname = \"tts\"\nengine = \"test\"\nrepo = \"acme/tiny-tts\"\nrevision = \"{revision}\"\nfiles = {files}\n"),
        "test.toml",
    )
    .unwrap()
}

const WANTED: &str = r#"["*.json", "*.safetensors", "tokenizer/*"]"#;

/// Every visible blob hashes to its name.
fn assert_blobs_verified(cache: &Path) {
    for repo in std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("models--"))
    {
        for b in std::fs::read_dir(repo.path().join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = b.file_name().to_string_lossy().to_string();
            if name.contains('.') {
                continue;
            }
            let etag = vox_store::Etag::parse(&name).unwrap();
            assert_eq!(
                vox_store::hash::hash_file(&b.path(), &etag).unwrap(),
                name,
                "blob {name} has wrong content"
            );
        }
    }
}

#[tokio::test]
async fn pull_lays_out_the_cache_and_a_pinned_repull_makes_no_request() {
    let r = repo();
    let commit = r.commit();
    let sim = HubSim::start(vec![r], SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();

    let rep = store
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(rep.snapshots[0].commit, commit);
    assert_eq!(rep.files_downloaded, 3);
    let snap = dir
        .path()
        .join("models--acme--tiny-tts/snapshots")
        .join(&commit);
    assert_eq!(
        std::fs::read_to_string(snap.join("config.json")).unwrap(),
        r#"{"a": 1}"#
    );
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap().len(),
        BIG
    );
    assert!(
        !snap.join("README.md").exists(),
        "unwanted file must not be fetched"
    );
    let link = std::fs::read_link(snap.join("tokenizer/vocab.txt")).unwrap();
    assert!(link.starts_with("../../../blobs/"), "{link:?}");
    assert_eq!(
        std::fs::read(dir.path().join("models--acme--tiny-tts/refs/main")).unwrap(),
        commit.as_bytes()
    );
    assert!(
        dir.path()
            .join("models--acme--tiny-tts/trees")
            .join(format!("{commit}.json"))
            .exists()
    );
    assert_blobs_verified(dir.path());
    // The LFS file came from the CDN origin in several ranged requests.
    let cdn_gets: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|q| q.origin == Origin::Cdn && q.method == "GET")
        .collect();
    assert!(
        cdn_gets.len() >= 6,
        "expected parallel chunks, got {}",
        cdn_gets.len()
    );
    assert!(cdn_gets.iter().all(|q| q.range.is_some()));

    // Pinned to the commit and complete: zero requests.
    sim.reset_log();
    let rep = store
        .pull(&manifest(&commit, WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(!rep.used_network);
    assert_eq!(rep.files_downloaded, 0);
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());

    // Offline with a branch: read from refs/, no requests.
    let mut c = config(dir.path(), &sim);
    c.offline = true;
    let rep = ModelStore::new(c)
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(rep.snapshots[0].commit, commit);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn the_token_goes_to_the_hub_and_never_to_the_cdn() {
    let mut r = repo();
    r.private = true;
    let sim = HubSim::start(
        vec![r],
        SimConfig {
            token: Some("hf_secret".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sim);
    c.token = Some("hf_secret".into());
    ModelStore::new(c)
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    let reqs = sim.requests();
    assert!(reqs.iter().any(|q| q.origin == Origin::Cdn));
    for q in &reqs {
        match q.origin {
            Origin::Hub => assert_eq!(
                q.authorization.as_deref(),
                Some("Bearer hf_secret"),
                "{q:?}"
            ),
            Origin::Cdn => assert_eq!(q.authorization, None, "token leaked to the CDN: {q:?}"),
        }
    }
    // Without the token: a clear 401.
    let dir2 = tempfile::tempdir().unwrap();
    let e = ModelStore::new(config(dir2.path(), &sim))
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("HF_TOKEN"), "{e}");
}

#[tokio::test]
async fn faults_are_survived_cut_bodies_5xx_429_and_wrong_bytes() {
    let sim = HubSim::start(vec![repo()], SimConfig::default())
        .await
        .unwrap();
    sim.set_fault(Fault::CutBody {
        path_contains: "/cdn/".into(),
        after_bytes: 300_000,
        times: 3,
    });
    sim.set_fault(Fault::Status {
        path_contains: "/cdn/".into(),
        status: 500,
        retry_after_secs: None,
        times: 2,
    });
    sim.set_fault(Fault::Status {
        path_contains: "config.json".into(),
        status: 429,
        retry_after_secs: Some(0),
        times: 2,
    });
    sim.set_fault(Fault::Status {
        path_contains: "/api/".into(),
        status: 503,
        retry_after_secs: None,
        times: 1,
    });
    sim.set_fault(Fault::Corrupt {
        path_contains: "/cdn/".into(),
        offset: 5,
        times: 1,
    });
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();
    let rep = store
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(rep.snapshots[0].files.len(), 3);
    assert_blobs_verified(dir.path());
    let snap = &rep.snapshots[0].dir;
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        hubsim::synthetic_content("acme/tiny-tts", "model.safetensors", BIG as u64)
    );
    // A cut body resumes from where it stopped, not from the chunk's start.
    let resumed = sim
        .requests()
        .iter()
        .filter(|q| q.origin == Origin::Cdn)
        .filter_map(|q| q.range.clone())
        .any(|r| {
            let start: u64 = r
                .trim_start_matches("bytes=")
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            !start.is_multiple_of(512 * 1024)
        });
    assert!(
        resumed,
        "expected a Range starting mid-chunk after a cut: {:?}",
        sim.requests()
            .iter()
            .filter(|q| q.origin == Origin::Cdn)
            .map(|q| (q.range.clone(), q.status))
            .collect::<Vec<_>>()
    );
    // No partial files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("models--acme--tiny-tts/blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn persistent_failures_end_in_a_clear_error_and_nothing_visible() {
    let sim = HubSim::start(vec![repo()], SimConfig::default())
        .await
        .unwrap();
    sim.set_fault(Fault::Status {
        path_contains: "/cdn/".into(),
        status: 500,
        retry_after_secs: None,
        times: 1000,
    });
    let dir = tempfile::tempdir().unwrap();
    let e = ModelStore::new(config(dir.path(), &sim))
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::RetriesExhausted { .. }), "{e}");
    assert!(e.to_string().contains("500"), "{e}");
    let snap = dir.path().join("models--acme--tiny-tts/snapshots");
    let visible: Vec<_> = walk(&snap)
        .into_iter()
        .filter(|p| p.ends_with("model.safetensors"))
        .collect();
    assert!(visible.is_empty(), "a failed file must not be visible");
    assert!(
        !dir.path().join("models--acme--tiny-tts/refs/main").exists(),
        "the ref is written only when complete"
    );
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn hub_errors_are_one_line_and_say_what_to_do() {
    let mut forbidden = repo();
    forbidden.id = "forbidden/gated".into();
    let sim = HubSim::start(vec![repo(), forbidden], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();
    let pull = |m: Manifest| {
        let store = &store;
        async move { store.pull(&m, Arc::new(NoProgress)).await.unwrap_err() }
    };
    let m = |repo: &str, rev: &str, files: &str| {
        Manifest::parse(
            &format!(
                "[[models]]\nname='x'\nengine='t'\nrepo='{repo}'\nrevision='{rev}'\nfiles={files}\n"
            ),
            "m.toml",
        )
        .unwrap()
    };
    let e = pull(m("acme/nope", "main", "['*']")).await;
    assert!(matches!(e, StoreError::RepoNotFound { .. }), "{e}");
    let e = pull(m("acme/tiny-tts", "v9", "['*']")).await;
    assert!(matches!(e, StoreError::RevisionNotFound { .. }), "{e}");
    let e = pull(m("acme/tiny-tts", &"0".repeat(40), "['*']")).await;
    assert!(
        matches!(
            e,
            StoreError::RevisionNotFound { .. } | StoreError::RepoNotFound { .. }
        ),
        "{e}"
    );
    let e = pull(m("forbidden/gated", "main", "['*']")).await;
    assert!(
        matches!(e, StoreError::Unauthorized { status: 403, .. }),
        "{e}"
    );
    let e = pull(m("acme/tiny-tts", "main", "['*.gguf']")).await;
    assert!(matches!(e, StoreError::NothingMatched { .. }), "{e}");
    assert!(!e.to_string().contains('\n'));
    // Offline and missing.
    let mut c = config(dir.path(), &sim);
    c.offline = true;
    let e = ModelStore::new(c)
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::OfflineMissing { .. }), "{e}");
    assert!(e.to_string().contains("HF_HUB_OFFLINE"));
}

#[tokio::test]
async fn disk_preflight_fails_before_any_download() {
    let sim = HubSim::start(vec![repo()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sim);
    c.reserve_bytes = u64::MAX / 2; // "keep more free than any disk has"
    let e = ModelStore::new(c)
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::DiskFull { .. }), "{e}");
    assert!(
        sim.requests()
            .iter()
            .all(|q| q.method != "GET" || q.path.starts_with("/api/")),
        "no file GET before the preflight"
    );
}

#[tokio::test]
async fn a_moved_branch_is_followed_and_tree_pagination_is_read() {
    let sim = HubSim::start(
        vec![repo()],
        SimConfig {
            tree_page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();
    let first = store
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(
        first.snapshots[0].files.len(),
        3,
        "all pages of the tree were read"
    );
    let mut r2 = repo();
    r2.files[0] = RepoFile::regular("config.json", r#"{"a": 2}"#);
    let c2 = r2.commit();
    sim.add_repo(r2);
    sim.reset_log();
    let second = store
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(second.snapshots[0].commit, c2);
    assert_eq!(
        second.files_downloaded, 1,
        "only the changed file is fetched; the rest is shared by blob"
    );
    assert_eq!(sim.bytes_served("model.safetensors"), 0);
    assert_eq!(
        std::fs::read_to_string(second.snapshots[0].dir.join("config.json")).unwrap(),
        r#"{"a": 2}"#
    );
}

#[tokio::test]
async fn verify_deep_finds_and_repairs_a_flipped_byte() {
    let sim = HubSim::start(vec![repo()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();
    let m = manifest("main", WANTED);
    let rep = store.pull(&m, Arc::new(NoProgress)).await.unwrap();
    let target = std::fs::canonicalize(rep.snapshots[0].dir.join("model.safetensors")).unwrap();
    let mut bytes = std::fs::read(&target).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&target, &bytes).unwrap();
    assert!(
        store
            .verify(&m, false, false, Arc::new(NoProgress))
            .await
            .unwrap()
            .is_empty(),
        "a size check cannot see a flipped byte"
    );
    let found = store
        .verify(&m, true, false, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].file, "model.safetensors");
    assert!(!found[0].repaired);
    let fixed = store
        .verify(&m, true, true, Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(fixed.iter().all(|p| p.repaired));
    assert!(
        store
            .verify(&m, true, false, Arc::new(NoProgress))
            .await
            .unwrap()
            .is_empty()
    );
    assert_blobs_verified(dir.path());
}

#[tokio::test]
async fn copies_instead_of_symlinks_when_disabled() {
    let sim = HubSim::start(vec![repo()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), &sim);
    c.symlinks = Some(false);
    let rep = ModelStore::new(c)
        .unwrap()
        .pull(&manifest("main", WANTED), Arc::new(NoProgress))
        .await
        .unwrap();
    let p = rep.snapshots[0].dir.join("model.safetensors");
    assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
    assert_eq!(std::fs::read(p).unwrap().len(), BIG);
}

#[tokio::test]
async fn prune_removes_only_what_no_manifest_references() {
    let other = Repo::new("acme/old", vec![RepoFile::regular("a.json", "{}")]);
    let sim = HubSim::start(vec![repo(), other], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(config(dir.path(), &sim)).unwrap();
    let keep = manifest("main", WANTED);
    store.pull(&keep, Arc::new(NoProgress)).await.unwrap();
    let old =
        Manifest::parse("[[models]]\nname='old'\nengine='t'\nrepo='acme/old'\n", "o").unwrap();
    store.pull(&old, Arc::new(NoProgress)).await.unwrap();
    let dry = store.prune(std::slice::from_ref(&keep), false).unwrap();
    assert_eq!(dry.paths.len(), 1, "{:?}", dry.paths);
    assert!(dry.paths[0].0.ends_with("models--acme--old"));
    assert!(
        dir.path().join("models--acme--old").exists(),
        "a dry run deletes nothing"
    );
    store.prune(std::slice::from_ref(&keep), true).unwrap();
    assert!(!dir.path().join("models--acme--old").exists());
    assert!(
        store.presence(&keep.models[0]).unwrap().is_some(),
        "the kept model is intact"
    );
}
