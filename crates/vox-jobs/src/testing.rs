//! Test fixtures shared by this crate's tests and vox-cli's: a throwaway PostgreSQL cluster (Debian's
//! `postgresql` package) and an `s3s-fs` S3 server, both on 127.0.0.1. Production code never uses this.
//!
//! Nothing is installed here: CI's `.ci/run` installs them. Under `CI=1` a missing one fails the test;
//! elsewhere the test is skipped with a message.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when running under CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `false` (and a message) when a prerequisite is missing on a developer machine; panics under CI.
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

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str, child: &mut Child) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited before listening: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Debian's PostgreSQL binaries: `$VOX_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
pub fn find_pg_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VOX_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, b)) = dirs.pop() {
        return Some(b);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
    })
}

/// A PostgreSQL cluster in a temp dir, listening on 127.0.0.1 (trust auth, user `postgres`, fsync off).
/// PostgreSQL refuses to run as root, so as root it runs as `nobody` (through `setpriv`) in a dir it owns.
pub struct PgServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts one, or returns `None` (skip) when PostgreSQL is not installed; panics under CI then.
    pub fn start_or_skip() -> Option<PgServer> {
        let bin = find_pg_bin();
        if !require(
            "PostgreSQL (Debian package postgresql: /usr/lib/postgresql/*/bin/initdb)",
            bin.is_some(),
        ) {
            return None;
        }
        Some(PgServer::start(&bin.unwrap()))
    }

    pub fn start(bin: &Path) -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = unsafe_is_root();
        if root {
            chown_nobody(dir.path());
        }
        let as_user = |prog: &str| -> Command {
            let exe = bin.join(prog);
            if root {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(exe);
                c
            } else {
                Command::new(exe)
            }
        };
        let out = as_user("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .env("LC_ALL", "C")
            .current_dir(dir.path())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut child = as_user("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=200"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("postgres.log")).unwrap())
            .spawn()
            .expect("start postgres");
        wait_port(port, "postgres", &mut child);
        PgServer {
            child,
            port,
            _dir: dir,
        }
    }

    /// The URL of database `db` (see [`PgServer::create_db`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database and returns its URL (retrying while the server finishes starting).
    pub async fn create_db(&self, name: &str) -> String {
        use sqlx::Connection;
        let t0 = Instant::now();
        loop {
            match sqlx::PgConnection::connect(&self.url("postgres")).await {
                Ok(mut c) => {
                    sqlx::Executor::execute(&mut c, format!("CREATE DATABASE {name}").as_str())
                        .await
                        .expect("create database");
                    let _ = c.close().await;
                    return self.url(name);
                }
                Err(e) if t0.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("postgres on {} does not accept connections: {e}", self.port),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (ends its backends, frees shared memory).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_nobody(p: &Path) {
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(p)
        .status()
        .expect("chown");
    assert!(st.success(), "chown {} to nobody failed", p.display());
}

/// `s3s-fs` (a real S3-compatible server) on 127.0.0.1 with credentials `AKTEST`/`SKTEST` and one bucket.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub root: tempfile::TempDir,
}

pub const S3_ACCESS_KEY: &str = "AKTEST";
pub const S3_SECRET_KEY: &str = "SKTEST";

impl S3Server {
    /// `$S3S_FS`, the project's tool cache (`.cache/tools/bin/s3s-fs`, installed by `.ci/run`), or `PATH`.
    pub fn find() -> Option<PathBuf> {
        if let Ok(p) = std::env::var("S3S_FS") {
            return Some(PathBuf::from(p));
        }
        let local = workspace_root().join(".cache/tools/bin/s3s-fs");
        if local.exists() {
            return Some(local);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("s3s-fs"))
                .find(|p| p.exists())
        })
    }

    pub fn start_or_skip(bucket: &str) -> Option<S3Server> {
        let bin = S3Server::find();
        if !require(
            "s3s-fs (cargo install s3s-fs --features binary)",
            bin.is_some(),
        ) {
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(bucket)).unwrap();
        let port = free_port();
        let mut child = Command::new(bin.unwrap())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, "s3s-fs", &mut child);
        Some(S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
            root,
        })
    }

    pub fn config(&self) -> crate::S3Config {
        crate::S3Config {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: S3_ACCESS_KEY.into(),
            secret_access_key: S3_SECRET_KEY.into(),
            ..Default::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
