//! The job queue in SQL, one code path for SQLite and PostgreSQL (sqlx's `Any` driver; `$N` placeholders work
//! in both). Times are Unix milliseconds from the worker's clock, stored as BIGINT.
//!
//! Claiming is one atomic `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`: SQLite runs it under its single
//! writer lock; PostgreSQL adds `FOR UPDATE SKIP LOCKED` to the inner select and re-checks the claimable
//! condition in the outer one, so two workers never take the same job and never wait on each other.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Connection, Row};

use crate::error::{JobsError, Result};

/// Which SQL engine is behind the pool (the few statements that differ ask this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Where a job is in its life. `Done`, `Failed`, `Dead` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    /// Bad input: failed at once with its reason.
    Failed,
    /// Gave up after the configured number of attempts (infrastructure kept failing).
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl FromStr for JobState {
    type Err = JobsError;
    fn from_str(s: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| {
                JobsError::BadInput(format!(
                    "unknown job state {s:?}: use queued, running, done, failed, dead or cancelled"
                ))
            })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub state: JobState,
    pub text: String,
    pub voice: Option<String>,
    /// Engine parameters as given (a JSON object).
    pub params: serde_json::Value,
    pub idempotency_key: Option<String>,
    /// The content-addressed object, once known.
    pub object_key: Option<String>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub lease_holder: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub next_attempt_ms: i64,
    pub error: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub finished_ms: Option<i64>,
}

/// What a submitter gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub text: String,
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Filters for [`Db::list`]; newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

const COLS: &str = "id, state, text, voice, params, idempotency_key, object_key, attempts, max_attempts, \
    lease_holder, lease_expires_ms, next_attempt_ms, error, created_ms, updated_ms, finished_ms";

/// The claimable condition, used in both the inner select and the outer re-check.
const CLAIMABLE: &str = "((state = 'queued' AND next_attempt_ms <= $3) OR (state = 'running' AND lease_expires_ms < $3)) \
    AND attempts < max_attempts";

const SCHEMA_V1: &str = r#"
CREATE TABLE vox_jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    text TEXT NOT NULL,
    voice TEXT,
    params TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    object_key TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_holder TEXT,
    lease_expires_ms BIGINT,
    next_attempt_ms BIGINT NOT NULL,
    error TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX vox_jobs_claim ON vox_jobs (state, next_attempt_ms);
CREATE INDEX vox_jobs_created ON vox_jobs (created_ms);
CREATE TABLE vox_instance_leases (
    instance TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (instance, holder)
);
CREATE TABLE vox_instance_stops (
    instance TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE vox_instance_intervals (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    phase TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    gpu_dph DOUBLE PRECISION NOT NULL,
    storage_dph DOUBLE PRECISION NOT NULL
);
CREATE TABLE vox_job_costs (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    gpu_seconds DOUBLE PRECISION NOT NULL,
    dollars DOUBLE PRECISION NOT NULL,
    recorded_ms BIGINT NOT NULL
);
"#;

/// A connection pool to the job database, migrated.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
    /// Wakes this process's runners when a job is submitted through this handle (or its clones), so a job
    /// submitted to a worker starts at once instead of at the next poll. Other processes still poll.
    pub(crate) submitted: std::sync::Arc<tokio::sync::Notify>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

pub(crate) fn new_id(prefix: &str) -> String {
    let b: [u8; 12] = rand::random();
    format!("{prefix}{}", hex::encode(b))
}

impl Db {
    /// Opens `sqlite:///path/jobs.db` (created if missing) or `postgres://…`, and brings the schema up to date
    /// (safe with several workers starting at once: sqlx's migrator locks on PostgreSQL).
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(JobsError::Config(format!(
                "database URL {url:?}: use sqlite:///path/to/jobs.db or postgres://user@host/db"
            )));
        };
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                Cow::Owned(format!("{url}{sep}mode=rwc"))
            }
            _ => Cow::Borrowed(url),
        };
        // One direct attempt first: the pool would retry a refused connection until its acquire timeout.
        let probe = sqlx::AnyConnection::connect(&url)
            .await
            .map_err(JobsError::db("connect"))?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 4,
                Dialect::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Readers never block the one writer; waits on the writer lock are bounded.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(JobsError::db("connect"))?;
        let db = Db {
            pool,
            dialect,
            submitted: Default::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn migrate(&self) -> Result<()> {
        let m = Migrator {
            migrations: Cow::Owned(vec![Migration::new(
                1,
                "jobs, instance leases, cost records".into(),
                MigrationType::Simple,
                SCHEMA_V1.into(),
                false,
            )]),
            ..Migrator::DEFAULT
        };
        m.run(&self.pool).await.map_err(|e| JobsError::Db {
            what: "migrate its schema",
            source: e.into(),
        })
    }

    /// Queues a job. With an idempotency key already used, returns that job instead (`false`: not new).
    pub async fn submit(&self, job: &NewJob, max_attempts: u32) -> Result<(Job, bool)> {
        let now = now_ms();
        let params = job
            .params
            .clone()
            .unwrap_or_else(|| serde_json::json!({}))
            .to_string();
        let sql = format!(
            "INSERT INTO vox_jobs (id, state, text, voice, params, idempotency_key, attempts, max_attempts, \
             next_attempt_ms, created_ms, updated_ms) VALUES ($1, 'queued', $2, $3, $4, $5, 0, $6, $7, $7, $7) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(new_id("job_"))
            .bind(&job.text)
            .bind(job.voice.clone())
            .bind(params)
            .bind(job.idempotency_key.clone())
            .bind(i64::from(max_attempts))
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(JobsError::db("insert a job"))?;
        if let Some(r) = row {
            self.submitted.notify_waiters();
            return Ok((job_from(&r)?, true));
        }
        let key = job.idempotency_key.clone().unwrap_or_default();
        let sql = format!("SELECT {COLS} FROM vox_jobs WHERE idempotency_key = $1");
        let r = sqlx::query(&sql)
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(JobsError::db("read a job by idempotency key"))?;
        Ok((job_from(&r)?, false))
    }

    /// Returns after `at_most`, or sooner when a job is submitted through this handle.
    pub async fn wait_for_submission(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.submitted.notified()).await;
    }

    pub async fn get(&self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {COLS} FROM vox_jobs WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(JobsError::db("read a job"))?;
        r.map(|r| job_from(&r))
            .transpose()?
            .ok_or_else(|| JobsError::NotFound(id.to_string()))
    }

    pub async fn list(&self, f: &JobFilter) -> Result<Vec<Job>> {
        let limit = i64::from(f.limit.unwrap_or(100).min(1000));
        let offset = i64::from(f.offset.unwrap_or(0));
        let rows = match f.state {
            Some(s) => {
                let sql = format!(
                    "SELECT {COLS} FROM vox_jobs WHERE state = $1 ORDER BY created_ms DESC, id LIMIT $2 OFFSET $3"
                );
                sqlx::query(&sql)
                    .bind(s.as_str())
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {COLS} FROM vox_jobs ORDER BY created_ms DESC, id LIMIT $1 OFFSET $2"
                );
                sqlx::query(&sql)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(JobsError::db("list jobs"))?;
        rows.iter().map(job_from).collect()
    }

    /// Counts per state (metrics).
    pub async fn counts(&self) -> Result<Vec<(JobState, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM vox_jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(JobsError::db("count jobs"))?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(0).map_err(JobsError::db("decode a count"))?;
                let n: i64 = r.try_get(1).map_err(JobsError::db("decode a count"))?;
                Ok((s.parse()?, n))
            })
            .collect()
    }

    /// Takes the next runnable job for `holder` until now + `ttl`: a queued job whose retry time has come, or a
    /// running one whose lease lapsed (its worker died). Jobs out of attempts are dead-lettered first.
    pub async fn claim(&self, holder: &str, ttl: Duration) -> Result<Option<Job>> {
        let now = now_ms();
        self.dead_letter_lapsed(now).await?;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE vox_jobs SET state = 'running', lease_holder = $1, lease_expires_ms = $2, \
             attempts = attempts + 1, updated_ms = $3 \
             WHERE id = (SELECT id FROM vox_jobs WHERE {CLAIMABLE} ORDER BY next_attempt_ms, created_ms, id LIMIT 1{lock}) \
             AND {CLAIMABLE} RETURNING {COLS}"
        );
        let r = sqlx::query(&sql)
            .bind(holder)
            .bind(now + ttl.as_millis() as i64)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(JobsError::db("claim a job"))?;
        r.map(|r| job_from(&r)).transpose()
    }

    async fn dead_letter_lapsed(&self, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE vox_jobs SET state = 'dead', lease_holder = NULL, lease_expires_ms = NULL, \
             error = 'gave up after ' || CAST(attempts AS TEXT) || ' attempts: ' || \
             COALESCE(error, 'the worker running it stopped (lease expired)'), updated_ms = $1, finished_ms = $1 \
             WHERE state = 'running' AND lease_expires_ms < $1 AND attempts >= max_attempts",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(JobsError::db("dead-letter lapsed jobs"))?;
        Ok(())
    }

    /// Extends `holder`'s lease on a running job. `false`: the lease is gone (cancelled, or taken over after it
    /// lapsed), so the holder must stop working on it.
    pub async fn heartbeat(&self, id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE vox_jobs SET lease_expires_ms = $1, updated_ms = $2 \
             WHERE id = $3 AND state = 'running' AND lease_holder = $4",
        )
        .bind(now + ttl.as_millis() as i64)
        .bind(now)
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(JobsError::db("renew a job lease"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the object for a job `holder` still holds. `false`: not the holder any more (nothing changed).
    pub async fn complete(&self, id: &str, holder: &str, object_key: &str) -> Result<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE vox_jobs SET state = 'done', object_key = $1, error = NULL, lease_holder = NULL, \
             lease_expires_ms = NULL, updated_ms = $2, finished_ms = $2 \
             WHERE id = $3 AND state = 'running' AND lease_holder = $4",
        )
        .bind(object_key)
        .bind(now)
        .bind(id)
        .bind(holder)
        .execute(&self.pool)
        .await
        .map_err(JobsError::db("mark a job done"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends an attempt that failed. `retry_after: None` (bad input) fails the job for good; `Some(delay)` queues
    /// it again after `delay`, or dead-letters it once its attempts are used up. Returns the job as it is now,
    /// or `None` when `holder` no longer held it.
    pub async fn fail(
        &self,
        id: &str,
        holder: &str,
        reason: &str,
        retry_after: Option<Duration>,
    ) -> Result<Option<Job>> {
        let now = now_ms();
        let retry = i64::from(retry_after.is_some());
        let next = now + retry_after.map_or(0, |d| d.as_millis() as i64);
        let sql = format!(
            "UPDATE vox_jobs SET \
             state = CASE WHEN $1 = 0 THEN 'failed' WHEN attempts < max_attempts THEN 'queued' ELSE 'dead' END, \
             error = CASE WHEN $1 = 1 AND attempts >= max_attempts \
                 THEN 'gave up after ' || CAST(attempts AS TEXT) || ' attempts: ' || $2 ELSE $2 END, \
             finished_ms = CASE WHEN $1 = 1 AND attempts < max_attempts THEN NULL ELSE $3 END, \
             next_attempt_ms = $4, lease_holder = NULL, lease_expires_ms = NULL, updated_ms = $3 \
             WHERE id = $5 AND state = 'running' AND lease_holder = $6 RETURNING {COLS}"
        );
        let r = sqlx::query(&sql)
            .bind(retry)
            .bind(reason)
            .bind(now)
            .bind(next)
            .bind(id)
            .bind(holder)
            .fetch_optional(&self.pool)
            .await
            .map_err(JobsError::db("record a failed attempt"))?;
        r.map(|r| job_from(&r)).transpose()
    }

    /// Cancels a queued or running job (a runner notices at its next heartbeat). A final job stays as it is.
    pub async fn cancel(&self, id: &str) -> Result<Job> {
        let now = now_ms();
        sqlx::query(
            "UPDATE vox_jobs SET state = 'cancelled', lease_holder = NULL, lease_expires_ms = NULL, \
             updated_ms = $1, finished_ms = $1 WHERE id = $2 AND state IN ('queued', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(JobsError::db("cancel a job"))?;
        self.get(id).await
    }
}

fn job_from(r: &AnyRow) -> Result<Job> {
    let get_s = |i: &str| -> Result<String> {
        r.try_get::<String, _>(i)
            .map_err(JobsError::db("decode a job row"))
    };
    let get_os = |i: &str| -> Result<Option<String>> {
        r.try_get::<Option<String>, _>(i)
            .map_err(JobsError::db("decode a job row"))
    };
    let get_i = |i: &str| -> Result<i64> {
        r.try_get::<i64, _>(i)
            .map_err(JobsError::db("decode a job row"))
    };
    let get_oi = |i: &str| -> Result<Option<i64>> {
        r.try_get::<Option<i64>, _>(i)
            .map_err(JobsError::db("decode a job row"))
    };
    let params: String = get_s("params")?;
    Ok(Job {
        id: get_s("id")?,
        state: get_s("state")?.parse()?,
        text: get_s("text")?,
        voice: get_os("voice")?,
        params: serde_json::from_str(&params).unwrap_or(serde_json::Value::Null),
        idempotency_key: get_os("idempotency_key")?,
        object_key: get_os("object_key")?,
        attempts: get_i("attempts")? as u32,
        max_attempts: get_i("max_attempts")? as u32,
        lease_holder: get_os("lease_holder")?,
        lease_expires_ms: get_oi("lease_expires_ms")?,
        next_attempt_ms: get_i("next_attempt_ms")?,
        error: get_os("error")?,
        created_ms: get_i("created_ms")?,
        updated_ms: get_i("updated_ms")?,
        finished_ms: get_oi("finished_ms")?,
    })
}
