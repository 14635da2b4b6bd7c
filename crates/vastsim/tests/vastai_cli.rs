//! Fidelity check: the official `vastai` CLI (1.9.1, from PyPI) drives the simulator through search,
//! create, show, list, stop, start and a bad key, exactly as it would drive console.vast.ai.
//!
//! The CLI is found at `$VASTAI_CLI_DIR` or `<workspace>/.cache/py/vastai` (a `pip install --target`
//! directory). Missing, the test fails under `CI=1` and is skipped otherwise.

use std::path::PathBuf;

use serde_json::Value;
use vastsim::{SimConfig, VastSim};

fn cli_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VASTAI_CLI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/py/vastai")
        });
    dir.join("bin/vastai").is_file().then_some(dir)
}

struct Cli {
    dir: PathBuf,
    home: tempfile::TempDir,
    url: String,
}

impl Cli {
    /// Runs `vastai --url URL ARGS...` with an isolated home and no update check; returns stdout and
    /// stderr.
    async fn run(&self, args: &[&str]) -> String {
        let home = self.home.path();
        let out = tokio::process::Command::new("python3")
            .arg(self.dir.join("bin/vastai"))
            .args(["--url", &self.url])
            .args(args)
            .env("PYTHONPATH", &self.dir)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("XDG_CACHE_HOME", home)
            .env("XDG_STATE_HOME", home)
            .env("VAST_URL", &self.url)
            .env("VASTAI_NO_UPDATE_CHECK", "1")
            .env("VAST_API_KEY", "sim-key")
            .output()
            .await
            .expect("run python3");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Exit statuses are not asserted: the CLI's differ between commands for the same HTTP outcome.
        text
    }

    async fn json(&self, args: &[&str]) -> Value {
        let text = self.run(args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("vastai {args:?}: {e}: {text}"))
    }
}

#[tokio::test]
async fn official_cli_drives_the_simulator() {
    let Some(dir) = cli_dir() else {
        let why = "vastai CLI not installed (pip install --target .cache/py/vastai vastai==1.9.1)";
        assert!(std::env::var_os("CI").is_none_or(|v| v != "1"), "{why}");
        eprintln!("skipping: {why}");
        return;
    };
    let sim = VastSim::start(SimConfig::default()).await.unwrap();
    let cli = Cli {
        dir,
        home: tempfile::tempdir().unwrap(),
        url: sim.url().to_owned(),
    };

    let offers = cli
        .json(&[
            "search",
            "offers",
            "gpu_name=RTX_3090 num_gpus=1 reliability>0.98",
            "-o",
            "dph_total",
            "--raw",
        ])
        .await;
    let ids: Vec<u64> = offers
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [5560],
        "the unverified 3090 is filtered by the CLI's default `verified=true`"
    );

    let created = cli
        .json(&[
            "create",
            "instance",
            "5560",
            "--image",
            "ex/vox:1",
            "--disk",
            "20",
            "--label",
            "cli-a",
            "--env",
            "-p 8000:8000 -e HF_HOME=/data",
            "--onstart-cmd",
            "vox serve",
            "--ssh",
            "--direct",
            "--raw",
        ])
        .await;
    assert_eq!(created["success"], Value::Bool(true), "{created}");
    let id = created["new_contract"].as_u64().unwrap();
    let row = sim.instance_json(id).unwrap();
    assert_eq!(row["label"], "cli-a");
    assert_eq!(row["disk_space"], 20.0);
    assert_eq!(row["onstart"], "vox serve");
    let env = row["extra_env"].as_array().unwrap();
    assert!(
        env.contains(&serde_json::json!(["HF_HOME", "/data"])),
        "{env:?}"
    );
    assert!(
        env.contains(&serde_json::json!(["-p 8000:8000", "1"])),
        "{env:?}"
    );

    let shown = cli
        .json(&["show", "instance", &id.to_string(), "--raw"])
        .await;
    assert_eq!(shown["id"].as_u64(), Some(id));
    assert_eq!(shown["actual_status"], "loading");

    let listed = cli.json(&["show", "instances", "--raw"]).await;
    let listed: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [id]);

    cli.run(&["stop", "instance", &id.to_string()]).await;
    assert_eq!(sim.instance_json(id).unwrap()["intended_status"], "stopped");
    cli.run(&["start", "instance", &id.to_string()]).await;
    assert_eq!(sim.instance_json(id).unwrap()["intended_status"], "running");

    let missing = cli.run(&["show", "instance", "999"]).await;
    assert!(missing.contains("not found"), "{missing}");

    let before = sim.requests().len();
    cli.run(&[
        "--api-key",
        "bad",
        "show",
        "instance",
        &id.to_string(),
        "--raw",
    ])
    .await;
    assert!(sim.requests()[before..].iter().any(|r| r.status == 401));

    // Every request the CLI made was answered by a route, not the 404 fallback.
    let unrouted: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 404)
        .collect();
    assert!(unrouted.is_empty(), "{unrouted:?}");
}
