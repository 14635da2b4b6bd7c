//! `vox worker`: the jobs API plus the runner that synthesizes jobs on GPU instances and uploads the audio.
//! With no configuration it runs on embedded defaults: SQLite and a local object dir under the data dir, and
//! `vox serve` started on this machine by the fleet's local provider when jobs arrive (stopped when idle).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use vox_fleet::{Fleet, FleetConfig, IdlePolicy, LocalConfig, LocalProvider};
use vox_jobs::api::{ApiState, router};
use vox_jobs::{Db, Metrics, Objects, Runner, RunnerConfig, S3Config, StaticGpu, SubmitRules};

use crate::config::Settings;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Address of the jobs API.
    #[arg(long, env = "VOX_WORKER_BIND", default_value = "127.0.0.1:8090")]
    bind: String,
    /// Where the embedded defaults live (jobs.db, objects/, the link secret); default: the models dir's parent.
    #[arg(long, env = "VOX_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite:///path/jobs.db or postgres://user:pass@host/db (several workers share one PostgreSQL).
    #[arg(long, env = "VOX_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// The worker's URL as clients reach it (local-store download links point here); default: http://BIND.
    #[arg(long, env = "VOX_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Upload to this S3/R2 bucket instead of the local object dir (credentials: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, e.g. an R2 API token's S3 credentials).
    #[arg(long, env = "VOX_BUCKET")]
    bucket: Option<String>,
    /// Cloudflare account id: the endpoint becomes https://<account>.r2.cloudflarestorage.com.
    #[arg(long, env = "VOX_R2_ACCOUNT")]
    r2_account: Option<String>,
    /// S3 endpoint (instead of --r2-account).
    #[arg(long, env = "VOX_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region (R2: auto, the default).
    #[arg(long, env = "VOX_S3_REGION")]
    s3_region: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "VOX_S3_PREFIX", default_value = "")]
    s3_prefix: String,
    /// Stop the instance after this many idle seconds (default: the fleet's computed break-even timeout).
    #[arg(long, env = "VOX_IDLE_TIMEOUT_SECS")]
    idle_timeout_secs: Option<f64>,
    /// A running `vox serve` to send jobs to (no instance management); default: start `vox serve` on this
    /// machine when jobs arrive and stop it when idle.
    #[arg(long, env = "VOX_TTS_URL", value_name = "URL")]
    tts_url: Option<String>,
    /// That server's API key.
    #[arg(long, env = "VOX_TTS_KEY", hide_env_values = true)]
    tts_key: Option<String>,
    /// Its GPU price in $/h (for job costs).
    #[arg(long, env = "VOX_TTS_DPH", default_value_t = 0.0)]
    tts_dph: f64,
    /// Part of every object key; change it when the model changes (default: the manifest name).
    #[arg(long, env = "VOX_MODEL_REVISION")]
    model_revision: Option<String>,
    /// Voices accepted at submit time (comma-separated); default: what the server reports once reached.
    #[arg(long, env = "VOX_VOICES", value_delimiter = ',')]
    voices: Option<Vec<String>>,
    /// Longest text accepted, in characters.
    #[arg(long, env = "VOX_MAX_TEXT_CHARS", default_value_t = 100_000)]
    max_text_chars: usize,
    /// Attempts before a job is dead-lettered.
    #[arg(long, env = "VOX_MAX_ATTEMPTS", default_value_t = 5)]
    max_attempts: u32,
    /// Job lease, renewed every third of it; a crashed worker's jobs are retried after it.
    #[arg(long, env = "VOX_JOB_LEASE_MS", default_value_t = 30_000)]
    lease_ms: u64,
    /// First retry delay (doubles per attempt, up to 5 minutes).
    #[arg(long, env = "VOX_JOB_RETRY_BASE_MS", default_value_t = 2_000)]
    retry_base_ms: u64,
    /// How often an idle runner looks for jobs.
    #[arg(long, env = "VOX_POLL_MS", default_value_t = 500)]
    poll_ms: u64,
    /// Jobs run at once.
    #[arg(long, env = "VOX_CONCURRENCY", default_value_t = 2)]
    concurrency: usize,
    /// How long download links stay valid.
    #[arg(long, env = "VOX_LINK_TTL_SECS", default_value_t = 3600)]
    link_ttl_secs: u64,
    /// Rent instances on Vast.ai (needs VAST_API_KEY) instead of running `vox serve` on this machine.
    #[arg(long)]
    vast: bool,
    /// Vast.ai API base URL.
    #[arg(long, env = "VAST_URL", default_value = vox_fleet::VAST_BASE_URL)]
    vast_url: String,
    /// Vast.ai instances to use first, in order (e.g. rented by hand; their volumes persist when stopped).
    #[arg(long, env = "VOX_VAST_INSTANCES", value_delimiter = ',')]
    vast_instances: Vec<u64>,
    /// Label of the instances this worker rents, so it finds them again after a restart.
    #[arg(long, env = "VOX_VAST_LABEL", default_value = "vox")]
    vast_label: String,
    /// Image for instances created from offers (a vox image: no weights inside; the volume is filled by
    /// `vox models pull` at start).
    #[arg(
        long,
        env = "VOX_VAST_IMAGE",
        default_value = "ghcr.io/vox-speech/vox:latest"
    )]
    vast_image: String,
    /// GPU model for new instances (Vast's gpu_name, e.g. "RTX 4090").
    #[arg(long, env = "VOX_VAST_GPU")]
    vast_gpu: Option<String>,
    /// Disk of new instances in GB (holds the model volume).
    #[arg(long, env = "VOX_VAST_DISK_GB", default_value_t = 40.0)]
    vast_disk_gb: f64,
    /// Most $/h to pay for a new instance.
    #[arg(long, env = "VOX_VAST_MAX_DPH", default_value_t = 1.0)]
    vast_max_dph: f64,
    /// Environment of new instances, KEY=VALUE, repeatable (e.g. HF_TOKEN, or VOX_WATCHDOG_IDLE_SECS to change
    /// the server's own idle backstop). Never put R2 credentials here: the host is someone else's machine.
    #[arg(long = "vast-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    vast_env: Vec<(String, String)>,
    /// How often the fleet polls an instance that is starting or stopping, and looks for idle ones.
    #[arg(long, env = "VOX_FLEET_POLL_MS", default_value_t = 5_000)]
    fleet_poll_ms: u64,
    /// This worker's lease on an instance, renewed while it uses or keeps it warm; a dead worker's lease lapses
    /// after this, and another worker may then stop the instance.
    #[arg(long, env = "VOX_FLEET_LEASE_MS", default_value_t = 60_000)]
    fleet_lease_ms: u64,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The Vast.ai side of `vox worker --vast`: which instances to use, and what a new one runs.
fn vast_provider(args: &WorkerArgs) -> Result<vox_fleet::VastProvider> {
    use vox_fleet::{CreateInstance, OfferQuery, Op, VastClient, VastProvider, VastRole};
    let key = std::env::var("VAST_API_KEY")
        .context("--vast needs VAST_API_KEY (console.vast.ai → Account → Keys)")?;
    let client = VastClient::new(&args.vast_url, key)?;
    // The server must be reachable on a published port: offers without direct ports cannot serve.
    let mut offers = OfferQuery::default()
        .filter("dph_total", Op::Lte, args.vast_max_dph)
        .filter("direct_port_count", Op::Gte, 1)
        .allocated_storage(args.vast_disk_gb);
    if let Some(gpu) = &args.vast_gpu {
        offers = offers.filter("gpu_name", Op::Eq, gpu.clone());
    }
    let mut create = CreateInstance::new(args.vast_image.clone());
    create.disk = args.vast_disk_gb;
    create.onstart = Some(VastRole::vox_onstart());
    // Idle deadline of the server's own watchdog: a backstop if this worker dies (its scoped key stops it).
    create
        .env
        .insert("VOX_WATCHDOG_IDLE_SECS".into(), "3600".into());
    create.env.extend(args.vast_env.iter().cloned());
    Ok(VastProvider::new(
        client,
        VastRole {
            label: args.vast_label.clone(),
            instances: args.vast_instances.clone(),
            offers,
            create,
            server_port: 8000,
        },
    ))
}

/// What the runner needs besides its instances.
struct RunnerParts {
    db: Db,
    objects: Objects,
    cfg: RunnerConfig,
    metrics: Metrics,
    rules: Arc<SubmitRules>,
}

/// Runs the idle loop and the job runner over a fleet of `provider`'s instances.
fn spawn_fleet<P: vox_fleet::Provider>(
    provider: P,
    fc: FleetConfig,
    parts: RunnerParts,
    stop: tokio::sync::watch::Receiver<bool>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    let fleet = Arc::new(Fleet::new(provider, Arc::new(parts.db.clone()), fc));
    let f = fleet.clone();
    let idle_rx = stop.clone();
    background.push(tokio::spawn(async move {
        f.run_idle_loop(wait_true(idle_rx)).await
    }));
    let runner = Runner::new(
        parts.db,
        parts.objects,
        fleet,
        parts.cfg,
        parts.metrics,
        parts.rules,
    );
    background.push(tokio::spawn(runner.run(wait_true(stop))));
}

pub fn data_dir(flag: Option<PathBuf>, settings: &Settings) -> PathBuf {
    flag.unwrap_or_else(|| {
        let m = settings.models_dir();
        m.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data"))
    })
}

pub async fn database(url: Option<String>, data_dir: &std::path::Path) -> Result<Db> {
    let url = match url {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            format!("sqlite://{}", data_dir.join("jobs.db").display())
        }
    };
    Ok(Db::connect(&url).await?)
}

pub async fn run(args: WorkerArgs, settings: &Settings) -> Result<ExitCode> {
    let data = data_dir(args.data_dir.clone(), settings);
    let db = database(args.database_url.clone(), &data).await?;
    let objects = match &args.bucket {
        Some(bucket) => {
            let cfg = S3Config {
                bucket: bucket.clone(),
                account: args.r2_account.clone(),
                endpoint: args.s3_endpoint.clone(),
                region: args.s3_region.clone(),
                access_key_id: std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
                secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
                prefix: args.s3_prefix.clone(),
            };
            let o = Objects::s3(&cfg)?;
            // Bad credentials or a wrong bucket: refuse to start rather than fail every job later.
            o.check().await.context("checking the bucket")?;
            o
        }
        None => {
            let secret = Objects::load_or_create_secret(&data.join("link-secret"))?;
            Objects::local(&vox_jobs::default_object_dir(&data), secret)?
        }
    };
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let metrics = Metrics::new();
    let rules = Arc::new(SubmitRules::new(args.max_text_chars, args.voices.clone()));
    let mut cfg = RunnerConfig::new(worker_id());
    cfg.model_revision = args
        .model_revision
        .clone()
        .unwrap_or_else(|| settings.manifest().to_string());
    cfg.max_attempts = args.max_attempts;
    cfg.lease_ttl = Duration::from_millis(args.lease_ms.max(30));
    cfg.backoff_base = Duration::from_millis(args.retry_base_ms);
    cfg.poll_interval = Duration::from_millis(args.poll_ms.max(1));
    cfg.concurrency = args.concurrency.max(1);
    let state = ApiState {
        db: db.clone(),
        objects: objects.clone(),
        metrics: metrics.clone(),
        rules: rules.clone(),
        max_attempts: args.max_attempts,
        link_ttl: Duration::from_secs(args.link_ttl_secs),
        public_url: public_url.clone(),
    };
    tracing::info!(holder = %cfg.holder, objects = objects.name(), %public_url, "worker starting");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    match args.tts_url.clone() {
        Some(url) => {
            let gpu = Arc::new(StaticGpu {
                instance: format!("static/{url}"),
                base_url: url,
                api_key: args.tts_key.clone(),
                gpu_dph: args.tts_dph,
            });
            let runner = Runner::new(db.clone(), objects, gpu, cfg, metrics, rules);
            background.push(tokio::spawn(runner.run(wait_true(rx.clone()))));
        }
        None => {
            let mut fc = FleetConfig::new(cfg.holder.clone());
            if let Some(secs) = args.idle_timeout_secs {
                fc.idle = IdlePolicy::Fixed(Duration::from_secs_f64(secs));
            }
            let parts = RunnerParts {
                db: db.clone(),
                objects,
                cfg,
                metrics,
                rules,
            };
            fc.poll_interval = Duration::from_millis(args.fleet_poll_ms.max(10));
            fc.idle_check = fc.poll_interval;
            fc.lease_ttl = Duration::from_millis(args.fleet_lease_ms.max(100));
            if args.vast {
                let provider = vast_provider(&args)?;
                // A wrong key is a start-up error, not a failed job later. A busy or failing API is not: the
                // fleet retries it for every job.
                use vox_fleet::VastError;
                match provider.client().current_user().await {
                    Ok(a) => {
                        tracing::info!(account = a.id, credit = ?a.credit, "Vast.ai key accepted")
                    }
                    Err(
                        e @ (VastError::Unauthorized { .. }
                        | VastError::Forbidden { .. }
                        | VastError::BadBaseUrl { .. }),
                    ) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("checking VAST_API_KEY against {}", args.vast_url)));
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not check the Vast.ai key now; starting anyway (jobs retry the API)"
                    ),
                }
                spawn_fleet(provider, fc, parts, rx.clone(), &mut background);
            } else {
                // The embedded default: `vox serve` on this machine as the fleet's one instance.
                let mut local = LocalConfig::new(settings.models_dir());
                local.log = Some(data.join("serve.log"));
                local.gpu_dph = args.tts_dph;
                local.api_key = args.tts_key.clone();
                spawn_fleet(
                    LocalProvider::new(local),
                    fc,
                    parts,
                    rx.clone(),
                    &mut background,
                );
            }
        }
    }
    println!(
        "{}",
        serde_json::json!({"event": "listening", "addr": addr.to_string(), "url": public_url})
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            crate::serve::shutdown_signal().await;
            let _ = tx.send(true);
        })
        .await?;
    for t in background {
        let _ = t.await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_true(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let r: u32 = rand::random();
    format!("{}-{}-{r:08x}", host.trim(), std::process::id())
}
