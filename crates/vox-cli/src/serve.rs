//! `vox serve`: the HTTP server. Flags and the environment become a [`ServerConfig`]; the engine kinds this
//! binary knows are registered here, the one place that names model families.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use vox_server::{Engine, EngineKinds, Models, RequestLimits, Server, ServerConfig};
use vox_store::{Manifest, ModelStore};

use crate::config::Settings;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs VOX_API_KEY (or --insecure).
    #[arg(long, env = "VOX_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// Manifest: built-in name or TOML file (default: the configured one, `starter` out of the box).
    #[arg(long, short = 'm')]
    manifest: Option<String>,
    /// Serve without API keys on a non-loopback address.
    #[arg(long)]
    insecure: bool,
    /// Threads per engine (requests run at once on each model).
    #[arg(long, env = "VOX_ENGINE_THREADS", default_value_t = 1)]
    engine_threads: usize,
    /// Requests that may wait per model; one more is answered 429.
    #[arg(long, env = "VOX_MAX_QUEUED", default_value_t = 16)]
    max_queued: usize,
    /// Seconds a request may wait for an engine thread before it is answered 503.
    #[arg(long, env = "VOX_QUEUE_TIMEOUT", default_value_t = 30.0)]
    queue_timeout: f64,
    /// Largest request body in MiB (uploads).
    #[arg(long, env = "VOX_MAX_BODY_MIB", default_value_t = 100)]
    max_body_mib: usize,
    /// Longest TTS text in characters.
    #[arg(long, env = "VOX_MAX_TEXT_CHARS", default_value_t = 100_000)]
    max_text_chars: usize,
    /// Longest STT upload in seconds of audio.
    #[arg(long, env = "VOX_MAX_AUDIO_SECS", default_value_t = 10_800.0)]
    max_audio_secs: f64,
    /// Seconds to produce a response's headers.
    #[arg(long, env = "VOX_REQUEST_TIMEOUT", default_value_t = 600.0)]
    request_timeout: f64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "VOX_DRAIN_TIMEOUT", default_value_t = 30.0)]
    drain_timeout: f64,
}

/// The engine kinds this binary can serve.
pub fn engine_kinds() -> EngineKinds {
    let mut k = EngineKinds::new();
    k.register("whisper", |dir| {
        Ok(Engine::Transcriber(Arc::new(
            vox_whisper::engine::WhisperEngine::load(dir)?,
        )))
    });
    k.register("piper", |dir| {
        Ok(Engine::Synthesizer(Arc::new(vox_piper::PiperVoice::load(
            dir,
        )?)))
    });
    k.register("chatterbox", |dir| {
        Ok(Engine::Synthesizer(Arc::new(
            vox_chatterbox::ChatterboxEngine::load(dir)?,
        )))
    });
    k
}

fn secs(v: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("--{flag} {v}: expected seconds ≥ 0"))
}

pub async fn run(args: ServeArgs, settings: &Settings) -> Result<ExitCode> {
    let mut config = ServerConfig::new(args.bind);
    // Keys come from the environment only: a flag would show them in `ps`.
    config.api_keys = ServerConfig::parse_keys(&std::env::var("VOX_API_KEY").unwrap_or_default());
    config.insecure = args.insecure;
    config.queue.workers = args.engine_threads.max(1);
    config.queue.max_queued = args.max_queued;
    config.queue.queue_timeout = secs(args.queue_timeout, "queue-timeout")?;
    config.limits = RequestLimits {
        max_body_bytes: args.max_body_mib << 20,
        max_text_chars: args.max_text_chars,
        max_audio_secs: args.max_audio_secs,
        request_timeout: secs(args.request_timeout, "request-timeout")?,
    };
    config.drain_timeout = secs(args.drain_timeout, "drain-timeout")?;
    let manifest = Manifest::load(args.manifest.as_deref().unwrap_or(settings.manifest()))?;
    let store = ModelStore::new(settings.store_config()?)?;
    let server = Server::bind(config).await?;
    // Opt-in (VOX_WATCHDOG_IDLE_SECS): on a rented instance, stop it ourselves after a long idle deadline, so a
    // crashed worker cannot leave a GPU billing.
    if let Some(cfg) = vox_fleet::watchdog::WatchdogConfig::from_env() {
        let cfg = cfg?;
        let idle = server.state().0.idle.clone();
        tokio::spawn(async move {
            let signal = move || {
                let r = idle.report();
                vox_fleet::watchdog::IdleSignal {
                    in_flight: r.in_flight as u64,
                    idle_seconds: r.idle_seconds,
                }
            };
            match vox_fleet::watchdog::run(cfg, signal, std::future::pending()).await {
                Ok(outcome) => tracing::warn!(?outcome, "idle watchdog ended"),
                Err(e) => tracing::error!(error = %e, "idle watchdog failed to stop this instance"),
            }
        });
    }
    // One line on stdout for scripts and tests that bound port 0.
    println!(
        "{}",
        serde_json::json!({"event": "listening", "addr": server.local_addr().to_string()})
    );
    let models = Models {
        store: Arc::new(store),
        manifest,
        kinds: Arc::new(engine_kinds()),
    };
    server.run(models, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (what container runtimes send) or Ctrl-C. `vox worker` stops on the same signals.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown signal received");
}
