//! [`vox_fleet::LeaseStore`] and [`vox_fleet::CostLedger`] in the job database, so workers on several machines
//! share instances safely and one cost report covers them all.
//!
//! Each lease operation runs in one exclusive transaction (SQLite: `BEGIN IMMEDIATE`, the single writer lock;
//! PostgreSQL: a self-conflicting lock on the lease table), so "no other live lease" and "no live stop claim"
//! are checked and acted on atomically. They are rare (a worker touches them every few seconds), so one lock
//! for all instances costs nothing.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};
use vox_fleet::{
    CostLedger, Hold, InstanceInterval, InstancePhase, JobCost, Lease, LeaseStore, LedgerError,
};

use crate::db::{Db, Dialect, new_id, now_ms};

fn err(what: &str) -> impl FnOnce(sqlx::Error) -> LedgerError + '_ {
    move |e| LedgerError {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

impl Db {
    async fn exclusive(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("LOCK TABLE vox_instance_leases IN SHARE ROW EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    async fn other_stop(
        tx: &mut Transaction<'static, Any>,
        instance: &str,
        holder: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "SELECT holder FROM vox_instance_stops WHERE instance = $1 AND holder <> $2 AND expires_ms > $3",
        )
        .bind(instance)
        .bind(holder)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(r.is_some())
    }

    async fn try_hold(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Hold, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.exclusive().await?;
        if Self::other_stop(&mut tx, instance, holder, now).await? {
            tx.rollback().await?;
            return Ok(Hold::Stopping);
        }
        sqlx::query(
            "INSERT INTO vox_instance_leases (instance, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (instance, holder) DO UPDATE SET expires_ms = excluded.expires_ms",
        )
        .bind(instance)
        .bind(holder)
        .bind(now + ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Hold::Held)
    }

    async fn try_claim_stop(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.exclusive().await?;
        let others = sqlx::query(
            "SELECT holder FROM vox_instance_leases WHERE instance = $1 AND holder <> $2 AND expires_ms > $3",
        )
        .bind(instance)
        .bind(holder)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if others.is_some() || Self::other_stop(&mut tx, instance, holder, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM vox_instance_leases WHERE instance = $1 AND holder = $2")
            .bind(instance)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO vox_instance_stops (instance, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms",
        )
        .bind(instance)
        .bind(holder)
        .bind(now + ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

impl LeaseStore for Db {
    async fn hold(&self, instance: &str, holder: &str, ttl: Duration) -> Result<Hold, LedgerError> {
        self.try_hold(instance, holder, ttl)
            .await
            .map_err(err("record an instance lease"))
    }

    async fn release(&self, instance: &str, holder: &str) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM vox_instance_leases WHERE instance = $1 AND holder = $2")
            .bind(instance)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(err("release an instance lease"))?;
        Ok(())
    }

    async fn claim_stop(
        &self,
        instance: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, LedgerError> {
        self.try_claim_stop(instance, holder, ttl)
            .await
            .map_err(err("claim an instance stop"))
    }

    async fn end_stop(&self, instance: &str, holder: &str) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM vox_instance_stops WHERE instance = $1 AND holder = $2")
            .bind(instance)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(err("end an instance stop"))?;
        Ok(())
    }

    async fn leases(&self, instance: &str) -> Result<Vec<Lease>, LedgerError> {
        let rows = sqlx::query(
            "SELECT holder, expires_ms FROM vox_instance_leases WHERE instance = $1 AND expires_ms > $2 ORDER BY holder",
        )
        .bind(instance)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await
        .map_err(err("list instance leases"))?;
        rows.iter()
            .map(|r| {
                let ms: i64 = r.try_get(1).map_err(err("decode a lease"))?;
                Ok(Lease {
                    instance: instance.to_string(),
                    holder: r.try_get(0).map_err(err("decode a lease"))?,
                    expires_at: UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
                })
            })
            .collect()
    }
}

impl CostLedger for Db {
    async fn record_interval(&self, i: &InstanceInterval) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO vox_instance_intervals (id, instance, phase, start_ms, end_ms, gpu_dph, storage_dph) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id("iv_"))
        .bind(&i.instance)
        .bind(phase_str(i.phase))
        .bind(i.start_ms)
        .bind(i.end_ms)
        .bind(i.gpu_dph)
        .bind(i.storage_dph)
        .execute(&self.pool)
        .await
        .map_err(err("record an instance interval"))?;
        Ok(())
    }

    async fn record_job(&self, c: &JobCost) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO vox_job_costs (id, job_id, instance, gpu_seconds, dollars, recorded_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id("jc_"))
        .bind(&c.job_id)
        .bind(&c.instance)
        .bind(c.gpu_seconds)
        .bind(c.dollars)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(err("record a job cost"))?;
        Ok(())
    }
}

fn phase_str(p: InstancePhase) -> &'static str {
    match p {
        InstancePhase::Running => "running",
        InstancePhase::Stopped => "stopped",
    }
}

/// One instance's time and money over the recorded intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceCost {
    pub instance: String,
    pub running_seconds: f64,
    pub stopped_seconds: f64,
    pub gpu_dollars: f64,
    pub storage_dollars: f64,
    pub total_dollars: f64,
}

/// Everything recorded: per job, per instance, totals. Job dollars are the share of the instances' GPU dollars
/// spent synthesizing; the rest of the GPU time was start-up and idle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub jobs: Vec<JobCost>,
    pub instances: Vec<InstanceCost>,
    pub job_gpu_seconds: f64,
    pub job_dollars: f64,
    pub gpu_dollars: f64,
    pub storage_dollars: f64,
    pub total_dollars: f64,
}

impl Db {
    pub async fn intervals(&self) -> Result<Vec<InstanceInterval>, LedgerError> {
        let rows = sqlx::query(
            "SELECT instance, phase, start_ms, end_ms, gpu_dph, storage_dph FROM vox_instance_intervals \
             ORDER BY instance, start_ms",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("read instance intervals"))?;
        rows.iter()
            .map(|r| {
                let e = || err("decode an interval");
                let phase: String = r.try_get(1).map_err(e())?;
                Ok(InstanceInterval {
                    instance: r.try_get(0).map_err(e())?,
                    phase: if phase == "running" {
                        InstancePhase::Running
                    } else {
                        InstancePhase::Stopped
                    },
                    start_ms: r.try_get(2).map_err(e())?,
                    end_ms: r.try_get(3).map_err(e())?,
                    gpu_dph: r.try_get(4).map_err(e())?,
                    storage_dph: r.try_get(5).map_err(e())?,
                })
            })
            .collect()
    }

    pub async fn job_costs(&self) -> Result<Vec<JobCost>, LedgerError> {
        let rows = sqlx::query(
            "SELECT job_id, instance, gpu_seconds, dollars FROM vox_job_costs ORDER BY recorded_ms, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err("read job costs"))?;
        rows.iter()
            .map(|r| {
                let e = || err("decode a job cost");
                Ok(JobCost {
                    job_id: r.try_get(0).map_err(e())?,
                    instance: r.try_get(1).map_err(e())?,
                    gpu_seconds: r.try_get(2).map_err(e())?,
                    dollars: r.try_get(3).map_err(e())?,
                })
            })
            .collect()
    }

    pub async fn cost_report(&self) -> Result<CostReport, LedgerError> {
        Ok(CostReport::from_records(
            self.job_costs().await?,
            &self.intervals().await?,
        ))
    }
}

impl CostReport {
    pub fn from_records(jobs: Vec<JobCost>, intervals: &[InstanceInterval]) -> CostReport {
        let mut instances: Vec<InstanceCost> = Vec::new();
        for i in intervals {
            let pos = match instances.iter().position(|c| c.instance == i.instance) {
                Some(p) => p,
                None => {
                    instances.push(InstanceCost {
                        instance: i.instance.clone(),
                        ..Default::default()
                    });
                    instances.len() - 1
                }
            };
            let c = &mut instances[pos];
            let s = i.seconds();
            match i.phase {
                InstancePhase::Running => {
                    c.running_seconds += s;
                    c.gpu_dollars += s * i.gpu_dph / 3600.0;
                }
                InstancePhase::Stopped => c.stopped_seconds += s,
            }
            c.storage_dollars += s * i.storage_dph / 3600.0;
            c.total_dollars = c.gpu_dollars + c.storage_dollars;
        }
        let gpu_dollars = total(instances.iter().map(|c| c.gpu_dollars));
        let storage_dollars = total(instances.iter().map(|c| c.storage_dollars));
        CostReport {
            job_gpu_seconds: total(jobs.iter().map(|j| j.gpu_seconds)),
            job_dollars: total(jobs.iter().map(|j| j.dollars)),
            jobs,
            instances,
            gpu_dollars,
            storage_dollars,
            total_dollars: gpu_dollars + storage_dollars,
        }
    }
}

/// A sum that is 0, not -0, when empty (f64's `Sum` starts at -0.0, which reports print as "-0").
fn total(xs: impl Iterator<Item = f64>) -> f64 {
    xs.fold(0.0, |a, b| a + b)
}
