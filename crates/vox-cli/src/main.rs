//! `vox`: the command line. It parses flags, resolves settings and calls the libraries; the work lives there.

mod config;
mod cost;
mod job;
mod models;
mod progress;
mod serve;
mod stt;
mod tts;
mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{FlagOverrides, Settings};

#[derive(Parser)]
#[command(
    name = "vox",
    version,
    about = "Speech inference on rented GPUs: model provisioning, serving, jobs."
)]
struct Cli {
    /// TOML config file (default: $VOX_CONFIG, else ./vox.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The model volume (overrides MODELS_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    models_dir: Option<PathBuf>,
    /// Hugging Face Hub endpoint (overrides HF_ENDPOINT).
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
    /// Never touch the network (like HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    offline: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision models on the volume: pull, verify, list, prune, import, mirror.
    Models(models::ModelsArgs),
    /// Transcribe an audio file with a Whisper model of the manifest (no server).
    Stt(stt::SttArgs),
    /// Serve the HTTP API (provisions and loads the manifest's models first).
    Serve(serve::ServeArgs),
    /// Speak text into an audio file with a voice of the manifest (no server).
    Tts(tts::TtsArgs),
    /// Run durable TTS jobs: the jobs HTTP API and the runner that synthesizes and uploads.
    Worker(Box<worker::WorkerArgs>),
    /// Submit, inspect, list or cancel jobs of a running `vox worker`.
    Job(job::JobArgs),
    /// What instances and jobs cost (from the job database).
    Cost(cost::CostArgs),
    /// Print the effective settings and where each came from (secrets masked).
    Config {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    // Inference frees and reallocates tens of MB per layer; keep those blocks instead of remapping them.
    vox_whisper::cpu_ops::keep_freed_memory();
    let mut flags = FlagOverrides {
        config: cli.config.clone(),
        values: Vec::new(),
    };
    if let Some(d) = &cli.models_dir {
        flags
            .values
            .push(("models_dir", d.to_string_lossy().to_string()));
    }
    if let Some(e) = &cli.endpoint {
        flags.values.push(("hf_endpoint", e.clone()));
    }
    if cli.offline {
        flags.values.push(("hf_hub_offline", "1".into()));
    }
    let result = (|| -> anyhow::Result<ExitCode> {
        if let Command::Models(args) = &cli.command
            && let Some(m) = args.manifest_flag()
        {
            flags.values.push(("manifest", m.to_string()));
        }
        let settings = Settings::load(&flags)?;
        settings.export_env();
        match cli.command {
            Command::Config { json } => {
                print_config(&settings, json);
                Ok(ExitCode::SUCCESS)
            }
            Command::Models(args) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(models::run(args, &settings))
            }
            Command::Stt(args) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(stt::run(args, &settings))
            }
            Command::Serve(args) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(serve::run(args, &settings))
            }
            Command::Tts(args) => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(tts::run(args, &settings))
            }
            Command::Worker(args) => runtime()?.block_on(worker::run(*args, &settings)),
            Command::Job(args) => runtime()?.block_on(job::run(args)),
            Command::Cost(args) => runtime()?.block_on(cost::run(args, &settings)),
        }
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Human logs on a terminal, JSON logs otherwise. `VOX_LOG` (or `RUST_LOG`) sets the filter.
fn init_logging() {
    let filter = std::env::var("VOX_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        b.compact().init();
    } else {
        b.json().flatten_event(true).init();
    }
}

fn print_config(s: &Settings, json: bool) {
    let rows = s.rows();
    if json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, o, _)| (k.to_string(), serde_json::json!({"value": v, "source": o})))
            .collect();
        println!("{}", serde_json::Value::Object(v));
        return;
    }
    let kw = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let vw = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for (k, v, o, _) in rows {
        println!("{k:<kw$}  {v:<vw$}  ({o})");
    }
}
