//! With `SimConfig::onstart`, a running instance's `onstart` really runs here: `vox serve` answers `/ready`
//! at the instance's reported `public_ipaddr:HostPort`, sees the container variables, and a stop ends it.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vastsim::{OnstartConfig, SimConfig, VastSim};

/// The `vox` binary (`$VOX_BIN`, else the workspace's debug build). Missing: fails under CI, skips elsewhere.
fn vox_bin() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let p = std::env::var_os("VOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("debug/vox"));
    if p.exists() {
        return Some(p);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(!ci, "the vox binary {} is required under CI", p.display());
    eprintln!(
        "SKIPPED: no vox binary at {}; cargo build -p vox-cli or set VOX_BIN",
        p.display()
    );
    None
}

/// `GET path` on `addr`: the status code, or `None` if nothing listens.
fn get(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

async fn api(sim: &VastSim, method: &str, path: &str, body: Option<Value>) -> Value {
    let addr = sim.url().trim_start_matches("http://").to_owned();
    let key = sim.api_key().to_owned();
    let (method, path) = (method.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let json = buf.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(json).unwrap()
    })
    .await
    .unwrap()
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn onstart_serves_ready_through_the_published_port_until_stopped() {
    let Some(vox) = vox_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("empty.toml");
    std::fs::write(&manifest, "models = []\n").unwrap();
    let sim = VastSim::start(SimConfig {
        onstart: Some(OnstartConfig {
            vox_bin: Some(vox),
            ..OnstartConfig::new(dir.path().join("hosts"))
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let created = api(
        &sim,
        "PUT",
        "/api/v0/asks/5560/",
        Some(serde_json::json!({
            "image": "vox:latest", "disk": 20, "runtype": "ssh_direc ssh_proxy",
            "env": {"-p 8000:8000": "1", "VOX_BIND": "0.0.0.0:8000"},
            "onstart": format!("env > container.env; exec vox serve --manifest {}", manifest.display()),
        })),
    )
    .await;
    let id = created["new_contract"].as_u64().unwrap();
    // Poll as a client does until the ports are published.
    let mut row = Value::Null;
    for _ in 0..10 {
        row =
            api(&sim, "GET", &format!("/api/v0/instances/{id}/"), None).await["instances"].clone();
        if row["ports"]["8000/tcp"].is_array() {
            break;
        }
    }
    let host = row["public_ipaddr"].as_str().unwrap().trim().to_owned();
    let port = row["ports"]["8000/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = format!("{host}:{port}");
    wait_for(|| get(&addr, "/ready") == Some(200)).await;

    let env = std::fs::read_to_string(sim.instance_dir(id).unwrap().join("container.env")).unwrap();
    assert!(env.contains(&format!("CONTAINER_ID={id}")), "{env}");
    assert!(env.contains(&format!("VAST_TCP_PORT_8000={port}")), "{env}");
    assert!(env.contains("CONTAINER_API_KEY=inst-key-"), "{env}");

    api(
        &sim,
        "PUT",
        &format!("/api/v0/instances/{id}/"),
        Some(serde_json::json!({"state": "stopped"})),
    )
    .await;
    wait_for(|| get(&addr, "/ready").is_none()).await;

    // Started again: the same published port serves again; destroy ends it for good.
    api(
        &sim,
        "PUT",
        &format!("/api/v0/instances/{id}/"),
        Some(serde_json::json!({"state": "running"})),
    )
    .await;
    for _ in 0..5 {
        api(&sim, "GET", &format!("/api/v0/instances/{id}/"), None).await;
    }
    wait_for(|| get(&addr, "/ready") == Some(200)).await;
    api(&sim, "DELETE", &format!("/api/v0/instances/{id}/"), None).await;
    wait_for(|| get(&addr, "/ready").is_none()).await;
    assert!(
        !sim.instance_dir(id).unwrap().exists(),
        "the disk went with the instance"
    );
}
