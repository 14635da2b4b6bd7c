//! The runner: claim a job → compute its object key → if the object exists, done without synthesis → else take
//! an instance from the [`Gpu`], `POST {base_url}/tts` with the instance's own key → upload → mark done and
//! record what the GPU time cost. The job's lease is renewed while this runs; a lost lease (cancelled, or taken
//! over after a stall) abandons the attempt. Failures are classified: bad input fails the job at once with the
//! server's reason; anything else is retried with exponential backoff, then dead-lettered.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use vox_fleet::{CostLedger, JobCost};

use crate::db::{Db, Job, NewJob};
use crate::error::{JobsError, Result};
use crate::metrics::Metrics;
use crate::store::{Objects, object_key};

/// One usable synthesis server, held while a request runs (dropping it gives the instance back).
pub trait GpuInstance: Send + Sync {
    /// `"<provider>/<id>"`, the key in leases and cost records.
    fn instance(&self) -> &str;
    fn base_url(&self) -> &str;
    /// The instance's own server key (Bearer), if it has one.
    fn api_key(&self) -> Option<&str>;
    /// GPU price per hour while running (for the job's cost).
    fn gpu_dph(&self) -> f64;
    /// The instance failed in a way that should make the source stop handing it out.
    fn mark_broken(&self) {}
}

/// Where the runner gets instances: `vox_fleet::Fleet` in production, [`StaticGpu`] for a server you run.
pub trait Gpu: Send + Sync + 'static {
    type Instance: GpuInstance + 'static;
    fn acquire(&self) -> impl Future<Output = std::result::Result<Self::Instance, String>> + Send;
}

/// A fixed, already running server (no start or stop).
#[derive(Debug, Clone)]
pub struct StaticGpu {
    pub instance: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub gpu_dph: f64,
}

impl GpuInstance for StaticGpu {
    fn instance(&self) -> &str {
        &self.instance
    }
    fn base_url(&self) -> &str {
        &self.base_url
    }
    fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }
    fn gpu_dph(&self) -> f64 {
        self.gpu_dph
    }
}

impl Gpu for StaticGpu {
    type Instance = StaticGpu;
    async fn acquire(&self) -> std::result::Result<StaticGpu, String> {
        Ok(self.clone())
    }
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request is wrong (the server said 400/413/422): fail the job now.
    BadInput,
    /// Instance, network or storage trouble: retry with backoff.
    Infra,
}

#[derive(Debug, Clone)]
pub struct TtsFailure {
    pub kind: FailureKind,
    pub reason: String,
}

impl TtsFailure {
    fn infra(reason: impl Into<String>) -> Self {
        TtsFailure {
            kind: FailureKind::Infra,
            reason: reason.into(),
        }
    }
}

/// Engine parameters a job may carry (passed through to `/tts`); anything else is refused at submit time.
pub const JOB_PARAMS: &[&str] = &[
    "model",
    "speed",
    "seed",
    "sample_rate",
    "exaggeration",
    "cfg_weight",
    "temperature",
    "top_p",
    "min_p",
    "repetition_penalty",
    "noise_scale",
    "noise_w",
];

/// What `POST /jobs` accepts. Voices: the configured list, else the list the server reported the last time an
/// instance was up (unknown until then: the server's own 400 then fails the job with its reason).
#[derive(Debug, Default)]
pub struct SubmitRules {
    pub max_text_chars: usize,
    pub configured_voices: Option<Vec<String>>,
    pub learned_voices: RwLock<Option<Vec<String>>>,
}

impl SubmitRules {
    pub fn new(max_text_chars: usize, voices: Option<Vec<String>>) -> SubmitRules {
        SubmitRules {
            max_text_chars,
            configured_voices: voices,
            learned_voices: RwLock::new(None),
        }
    }

    pub fn voices(&self) -> Option<Vec<String>> {
        self.configured_voices
            .clone()
            .or_else(|| self.learned_voices.read().unwrap().clone())
    }

    /// Checks a submission; the error says what to fix.
    pub fn check(&self, job: &NewJob) -> Result<()> {
        if job.text.trim().is_empty() {
            return Err(JobsError::BadInput("the text is empty".into()));
        }
        let n = job.text.chars().count();
        if n > self.max_text_chars {
            return Err(JobsError::BadInput(format!(
                "the text has {n} characters, over the limit of {}",
                self.max_text_chars
            )));
        }
        if let Some(v) = job.voice.as_deref()
            && let Some(known) = self.voices()
            && !known.iter().any(|k| k == v)
        {
            return Err(JobsError::BadInput(format!(
                "unknown voice {v:?}; voices: {}",
                known.join(", ")
            )));
        }
        match &job.params {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                if let Some(k) = m.keys().find(|k| !JOB_PARAMS.contains(&k.as_str())) {
                    return Err(JobsError::BadInput(format!(
                        "unknown parameter {k:?}; parameters: {}",
                        JOB_PARAMS.join(", ")
                    )));
                }
            }
            Some(_) => return Err(JobsError::BadInput("params must be a JSON object".into())),
        }
        if job
            .idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > 200)
        {
            return Err(JobsError::BadInput(
                "idempotency_key must be 1 to 200 characters".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// This worker's unique id (job and instance leases).
    pub holder: String,
    /// Part of every object key: change it when the model changes, so old audio is not reused.
    pub model_revision: String,
    pub lease_ttl: Duration,
    pub poll_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// One `/tts` request, at most.
    pub request_timeout: Duration,
    /// Jobs run at once by [`Runner::run`].
    pub concurrency: usize,
}

impl RunnerConfig {
    pub fn new(holder: impl Into<String>) -> RunnerConfig {
        RunnerConfig {
            holder: holder.into(),
            model_revision: "default".into(),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            max_attempts: 5,
            request_timeout: Duration::from_secs(600),
            concurrency: 2,
        }
    }

    /// Delay before attempt `attempts + 1`: base × 2^(attempts−1), capped, with ±20% jitter so retries of a
    /// burst spread out.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp =
            self.backoff_base.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let capped = exp.min(self.backoff_max.as_secs_f64());
        let jitter = 0.8 + 0.4 * rand::random::<f64>();
        Duration::from_secs_f64(capped * jitter)
    }
}

/// Runs jobs from the database on instances from a [`Gpu`].
pub struct Runner<G: Gpu> {
    pub db: Db,
    pub objects: Objects,
    pub gpu: Arc<G>,
    pub cfg: RunnerConfig,
    pub metrics: Metrics,
    pub rules: Arc<SubmitRules>,
    http: reqwest::Client,
}

enum Outcome {
    Done { reused: bool, spans: Spans },
    Failed(TtsFailure),
}

/// Where an attempt's time went: the parts that are not the worker's own overhead.
#[derive(Debug, Clone, Copy, Default)]
struct Spans {
    /// Waiting for an instance (acquire; a start when the instance was stopped).
    acquire: Duration,
    /// The `/tts` request.
    synth: Duration,
    /// The object upload.
    upload: Duration,
}

impl<G: Gpu> Runner<G> {
    pub fn new(
        db: Db,
        objects: Objects,
        gpu: Arc<G>,
        cfg: RunnerConfig,
        metrics: Metrics,
        rules: Arc<SubmitRules>,
    ) -> Arc<Runner<G>> {
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a TLS backend is compiled in");
        Arc::new(Runner {
            db,
            objects,
            gpu,
            cfg,
            metrics,
            rules,
            http,
        })
    }

    /// Runs `concurrency` claim loops until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.cfg.concurrency.max(1) {
            let me = self.clone();
            tasks.spawn(async move {
                loop {
                    match me.run_once().await {
                        Ok(true) => {}
                        Ok(false) => me.db.wait_for_submission(me.cfg.poll_interval).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "job loop");
                            tokio::time::sleep(me.cfg.poll_interval).await;
                        }
                    }
                }
            });
        }
        shutdown.await;
        tasks.abort_all();
    }

    /// Claims and runs one job. `false`: nothing was runnable.
    pub async fn run_once(&self) -> Result<bool> {
        let t0 = Instant::now();
        let Some(job) = self.db.claim(&self.cfg.holder, self.cfg.lease_ttl).await? else {
            return Ok(false);
        };
        self.metrics.attempts.inc();
        tracing::info!(job = %job.id, attempt = job.attempts, "job claimed");
        let work = self.attempt(&job);
        let lost = self.keep_lease(&job.id);
        let outcome = tokio::select! {
            o = work => o,
            () = lost => {
                tracing::warn!(job = %job.id, "lost the job's lease (cancelled or taken over); attempt abandoned");
                return Ok(true);
            }
        };
        match outcome {
            Outcome::Done { reused, spans } => {
                if reused {
                    self.metrics.reused.inc();
                }
                // The worker's own cost per job: claim, object check, lease and records, HTTP and encoding
                // around the engine, all but the instance wait, the synthesis and the upload.
                let total = t0.elapsed();
                let overhead = total.saturating_sub(spans.acquire + spans.synth + spans.upload);
                self.metrics
                    .overhead_seconds
                    .observe(overhead.as_secs_f64());
                let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
                tracing::info!(
                    job = %job.id,
                    total_ms = ms(total),
                    acquire_ms = ms(spans.acquire),
                    synth_ms = ms(spans.synth),
                    upload_ms = ms(spans.upload),
                    overhead_ms = ms(overhead),
                    "job timings"
                );
                self.metrics.finished.with_label_values(&["done"]).inc();
            }
            Outcome::Failed(f) => {
                let retry = (f.kind == FailureKind::Infra).then(|| self.cfg.backoff(job.attempts));
                tracing::warn!(job = %job.id, reason = %f.reason, retry = ?retry, "job attempt failed");
                if let Some(j) = self
                    .db
                    .fail(&job.id, &self.cfg.holder, &f.reason, retry)
                    .await?
                    && j.state.is_final()
                {
                    self.metrics
                        .finished
                        .with_label_values(&[j.state.as_str()])
                        .inc();
                }
            }
        }
        Ok(true)
    }

    /// Renews the job lease every third of its TTL; returns when it is lost.
    async fn keep_lease(&self, id: &str) {
        let every = self.cfg.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .db
                .heartbeat(id, &self.cfg.holder, self.cfg.lease_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                // A database hiccup: keep working; the lease has two more beats before it lapses.
                Err(e) => tracing::warn!(job = %id, error = %e, "lease renewal failed"),
            }
        }
    }

    async fn attempt(&self, job: &Job) -> Outcome {
        let key = object_key(
            &self.cfg.model_revision,
            job.voice.as_deref(),
            &job.params,
            &job.text,
        );
        let mut spans = Spans::default();
        match self.objects.exists(&key).await {
            Ok(true) => return self.finish(job, &key, true, spans).await,
            Ok(false) => {}
            Err(e) => return Outcome::Failed(TtsFailure::infra(e.to_string())),
        }
        let t = Instant::now();
        let inst = match self.gpu.acquire().await {
            Ok(i) => i,
            Err(e) => return Outcome::Failed(TtsFailure::infra(format!("no GPU instance: {e}"))),
        };
        spans.acquire = t.elapsed();
        self.learn_voices(&inst).await;
        let t0 = Instant::now();
        let audio = self.synthesize(&inst, job).await;
        spans.synth = t0.elapsed();
        let secs = spans.synth.as_secs_f64();
        let cost = JobCost {
            job_id: job.id.clone(),
            instance: inst.instance().to_string(),
            gpu_seconds: secs,
            dollars: secs * inst.gpu_dph() / 3600.0,
        };
        drop(inst);
        // The GPU time was spent whether or not it produced audio.
        if let Err(e) = self.db.record_job(&cost).await {
            tracing::warn!(job = %job.id, error = %e, "job cost not recorded");
        }
        self.metrics.gpu_seconds.inc_by(cost.gpu_seconds);
        self.metrics.dollars.inc_by(cost.dollars);
        let audio = match audio {
            Ok(a) => a,
            Err(f) => return Outcome::Failed(f),
        };
        let meta = [
            ("job-id", job.id.clone()),
            ("voice", job.voice.clone().unwrap_or_default()),
            ("model-revision", self.cfg.model_revision.clone()),
        ];
        let t = Instant::now();
        if let Err(e) = self.objects.put(&key, audio, "audio/wav", &meta).await {
            return Outcome::Failed(TtsFailure::infra(e.to_string()));
        }
        spans.upload = t.elapsed();
        self.finish(job, &key, false, spans).await
    }

    async fn finish(&self, job: &Job, key: &str, reused: bool, spans: Spans) -> Outcome {
        match self.db.complete(&job.id, &self.cfg.holder, key).await {
            Ok(true) => {
                tracing::info!(job = %job.id, key, reused, "job done");
                Outcome::Done { reused, spans }
            }
            Ok(false) => {
                tracing::warn!(job = %job.id, "job finished elsewhere or cancelled; not marked done twice");
                Outcome::Done { reused, spans }
            }
            Err(e) => Outcome::Failed(TtsFailure::infra(e.to_string())),
        }
    }

    async fn synthesize(
        &self,
        inst: &G::Instance,
        job: &Job,
    ) -> std::result::Result<Bytes, TtsFailure> {
        let mut body = serde_json::Map::new();
        if let serde_json::Value::Object(m) = &job.params {
            body.extend(m.clone());
        }
        body.insert("text".into(), job.text.clone().into());
        if let Some(v) = &job.voice {
            body.insert("voice".into(), v.clone().into());
        }
        body.insert("format".into(), "wav".into());
        let url = format!("{}/tts", inst.base_url().trim_end_matches('/'));
        let mut req = self.http.post(&url).json(&body);
        if let Some(k) = inst.api_key() {
            req = req.bearer_auth(k);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                if e.is_connect() {
                    inst.mark_broken();
                }
                return Err(TtsFailure::infra(format!("POST {url}: {e}")));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return resp
                .bytes()
                .await
                .map_err(|e| TtsFailure::infra(format!("reading audio from {url}: {e}")));
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        let kind = match status.as_u16() {
            400 | 413 | 422 => FailureKind::BadInput,
            _ => FailureKind::Infra,
        };
        Err(TtsFailure {
            kind,
            reason: format!("the TTS server answered {status}: {message}"),
        })
    }

    /// Remembers the server's voices, so later submissions are checked at once.
    async fn learn_voices(&self, inst: &G::Instance) {
        if self.rules.configured_voices.is_some()
            || self.rules.learned_voices.read().unwrap().is_some()
        {
            return;
        }
        let url = format!("{}/v1/audio/voices", inst.base_url().trim_end_matches('/'));
        let mut req = self.http.get(&url).timeout(Duration::from_secs(10));
        if let Some(k) = inst.api_key() {
            req = req.bearer_auth(k);
        }
        let Ok(resp) = req.send().await else { return };
        let Ok(v) = resp.json::<serde_json::Value>().await else {
            return;
        };
        if let Some(list) = v["voices"].as_array() {
            let ids: Vec<String> = list
                .iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .collect();
            if !ids.is_empty() {
                *self.rules.learned_voices.write().unwrap() = Some(ids);
            }
        }
    }
}
