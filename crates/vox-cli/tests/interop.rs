//! The volume is shared with Python: huggingface_hub (2.x and 0.36) reads what vox wrote, offline, and vox reads
//! what huggingface_hub wrote, offline. Both talk to the same Hub-compatible server on 127.0.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use hubsim::{HubSim, Repo, RepoFile, SimConfig};

fn repo() -> Repo {
    Repo::new(
        "acme/tiny-tts",
        vec![
            RepoFile::regular("config.json", r#"{"a": 1}"#),
            RepoFile::regular("tokenizer/vocab.txt", "a\nb\n"),
            RepoFile::synthetic("acme/tiny-tts", "model.safetensors", 3 << 20),
            RepoFile::regular("README.md", "# skip"),
        ],
    )
}

const PATTERNS: [&str; 3] = ["*.json", "*.safetensors", "tokenizer/*"];

/// The huggingface_hub installs to check against: `.cache/py/hf2` and `.cache/py/hf0` (installed by .ci/run).
fn hf_installs() -> Vec<PathBuf> {
    let root = workspace_root().join(".cache/py");
    ["hf2", "hf0"]
        .iter()
        .map(|v| root.join(v))
        .filter(|p| p.join("huggingface_hub").is_dir())
        .collect()
}

fn python(site: &Path, args: &[&str], endpoint: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/hf_interop.py");
    let o = Command::new("python3")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", site)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python {args:?} with {}: {}",
        site.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(
        o.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap()
}

fn manifest_for(dir: &Path) -> PathBuf {
    manifest(dir, "acme/tiny-tts", "main", &format!("{:?}", PATTERNS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huggingface_hub_reads_the_cache_vox_wrote_offline() {
    let installs = hf_installs();
    if !require(
        "huggingface_hub in .cache/py/{hf2,hf0}",
        installs.len() == 2,
    ) {
        return;
    }
    let r = repo();
    let sim = HubSim::start(vec![r.clone()], SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let o = vox(&models, &sim.endpoint())
        .args(["models", "pull", "-m"])
        .arg(manifest_for(dir.path()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let cache = hub_cache(&models);
    for site in installs {
        let mut args = vec!["read", cache.to_str().unwrap(), "acme/tiny-tts"];
        let commit = r.commit();
        args.push(&commit);
        args.extend(PATTERNS);
        let v = python(&site, &args, "http://127.0.0.1:1");
        assert_eq!(
            v["files"],
            serde_json::json!(["config.json", "model.safetensors", "tokenizer/vocab.txt"]),
            "{v}"
        );
        assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
        assert!(v["size_on_disk"].as_u64().unwrap() >= 3 << 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vox_reads_a_cache_huggingface_hub_wrote_offline() {
    let installs = hf_installs();
    if !require(
        "huggingface_hub in .cache/py/{hf2,hf0}",
        installs.len() == 2,
    ) {
        return;
    }
    let r = repo();
    let sim = HubSim::start(vec![r.clone()], SimConfig::default())
        .await
        .unwrap();
    for site in installs {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let cache = hub_cache(&models);
        let mut args = vec!["write", cache.to_str().unwrap(), "acme/tiny-tts"];
        args.extend(PATTERNS);
        python(&site, &args, &sim.endpoint());
        sim.reset_log();
        let o = vox(&models, "http://127.0.0.1:1")
            .args(["--offline", "models", "pull", "--json", "-m"])
            .arg(manifest_for(dir.path()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", site.display(), stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["report"]["snapshots"][0]["commit"], r.commit());
        assert_eq!(
            v["report"]["snapshots"][0]["files"]
                .as_array()
                .unwrap()
                .len(),
            3,
            "{v}"
        );
        assert_eq!(v["report"]["used_network"], false);
        let o = vox(&models, "http://127.0.0.1:1")
            .args([
                "--offline",
                "models",
                "verify",
                "--deep",
                "--no-repair",
                "-m",
            ])
            .arg(manifest_for(dir.path()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            site.display(),
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(sim.requests().is_empty());
    }
}
