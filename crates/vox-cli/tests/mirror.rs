//! The S3 mirror source against a real S3-compatible server (s3s-fs) on 127.0.0.1: `vox models mirror` uploads a
//! volume's models, and a fresh volume pulls them from the bucket with the Hub unreachable.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hubsim::{HubSim, Repo, RepoFile, SimConfig};

struct S3Server {
    child: Child,
    endpoint: String,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3(bin: &std::path::Path) -> S3Server {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("models-bucket")).unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "AKTEST",
            "--secret-key",
            "SKTEST",
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "s3s-fs did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _root: root,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_mirrored_to_s3_is_pulled_from_it_without_the_hub() {
    let Some(bin) = find_tool("S3S_FS", "s3s-fs") else {
        require("s3s-fs (cargo install s3s-fs --features binary)", false);
        return;
    };
    let s3 = start_s3(&bin);
    let repo = Repo::new(
        "acme/mirrored",
        vec![
            RepoFile::regular("config.json", "{}"),
            RepoFile::synthetic("acme/mirrored", "model.bin", 21 << 20),
        ],
    );
    let sim = HubSim::start(vec![repo.clone()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "acme/mirrored", "main", r#"["*"]"#);
    let with_s3 = |c: &mut Command| {
        c.env("AWS_ACCESS_KEY_ID", "AKTEST")
            .env("AWS_SECRET_ACCESS_KEY", "SKTEST")
            .env("VOX_MIRROR_ENDPOINT", &s3.endpoint)
            .env("VOX_MIRROR_REGION", "us-east-1");
    };

    // Fill a volume from the Hub, then mirror it.
    let a = dir.path().join("a");
    let o = vox(&a, &sim.endpoint())
        .args(["models", "pull", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut c = vox(&a, &sim.endpoint());
    with_s3(&mut c);
    let o = c
        .args(["models", "mirror", "--to", "s3://models-bucket/cache", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Mirroring again uploads nothing.
    let mut c = vox(&a, &sim.endpoint());
    with_s3(&mut c);
    let o = c
        .args(["models", "mirror", "--to", "s3://models-bucket/cache", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0.0 MiB uploaded"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // A fresh volume with the Hub unreachable pulls everything from the bucket.
    let b = dir.path().join("b");
    let mut c = vox(&b, "http://127.0.0.1:1");
    with_s3(&mut c);
    let o = c
        .env("VOX_MIRROR", "s3://models-bucket/cache")
        .args(["models", "pull", "--json", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["report"]["snapshots"][0]["commit"], repo.commit());
    let snap = hub_cache(&b)
        .join("models--acme--mirrored/snapshots")
        .join(repo.commit());
    for f in &repo.files {
        assert_eq!(std::fs::read(snap.join(&f.path)).unwrap(), f.content);
    }
    assert_eq!(verified_blobs(&hub_cache(&b)).len(), 2);

    // Wrong credentials: a clear error, nothing visible.
    let c2 = dir.path().join("c");
    let o = vox(&c2, "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "AKTEST")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("VOX_MIRROR_ENDPOINT", &s3.endpoint)
        .env("VOX_MIRROR", "s3://models-bucket/cache")
        .args(["models", "pull", "-m"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("mirror s3://models-bucket/cache"),
        "{}",
        stderr(&o)
    );
    assert!(
        !hub_cache(&c2)
            .join("models--acme--mirrored/snapshots")
            .exists()
    );
}
