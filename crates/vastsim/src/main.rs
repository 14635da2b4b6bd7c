//! `vastsim`: serve a simulated Vast.ai REST API on loopback for tests and for checks with the official
//! `vastai` CLI. Prints `{"url": "..."}` on one line once listening, then serves until killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use vastsim::{OfferSpec, OnstartConfig, SimConfig, VastSim};

#[derive(Debug, Parser)]
#[command(version, about = "A Vast.ai REST API simulator (tests only)")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// API key the simulator accepts (Bearer header or `?api_key=`).
    #[arg(long, env = "VASTSIM_API_KEY", default_value = "sim-key")]
    api_key: String,
    /// Seconds from create/start until the container reports `loading`.
    #[arg(long, default_value_t = 1.0)]
    provision_secs: f64,
    /// Seconds an instance stays `loading` before `running`.
    #[arg(long, default_value_t = 5.0)]
    loading_secs: f64,
    /// Seconds from a stop request until the container reports `exited`.
    #[arg(long, default_value_t = 1.0)]
    stop_secs: f64,
    /// Run each instance's `onstart` on this machine with this `vox` binary first on its PATH (off by
    /// default: onstart is stored only).
    #[arg(long)]
    vox_bin: Option<std::path::PathBuf>,
    /// Directory for the instances' disks when onstart runs (default: a `vastsim` dir under the temp dir).
    #[arg(long)]
    workdir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = SimConfig {
        api_key: args.api_key,
        provision_delay: Duration::from_secs_f64(args.provision_secs),
        loading_delay: Duration::from_secs_f64(args.loading_secs),
        stop_delay: Duration::from_secs_f64(args.stop_secs),
        manual_clock: false,
        offers: OfferSpec::sample_catalog(),
        onstart: args.vox_bin.map(|bin| OnstartConfig {
            vox_bin: Some(bin),
            ..OnstartConfig::new(
                args.workdir
                    .unwrap_or_else(|| std::env::temp_dir().join("vastsim")),
            )
        }),
    };
    let sim = VastSim::start_at(cfg, args.bind).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "url": sim.url() }))?;
    out.flush()?;
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
