//! Prometheus counters of the worker. Job-state gauges and cost totals are read from the database at scrape
//! time (see `api::metrics`), so they agree across workers sharing one PostgreSQL.

use prometheus::{Counter, CounterVec, Histogram, HistogramOpts, IntCounter, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub submitted: IntCounter,
    pub attempts: IntCounter,
    /// Final outcomes seen by this worker, by state.
    pub finished: CounterVec,
    /// Jobs completed from an existing object, without synthesis.
    pub reused: IntCounter,
    pub gpu_seconds: Counter,
    pub dollars: Counter,
    /// Worker time per finished job beyond waiting for an instance, synthesis and upload.
    pub overhead_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let submitted =
            IntCounter::new("vox_jobs_submitted_total", "Jobs accepted by POST /jobs").unwrap();
        let attempts = IntCounter::new(
            "vox_job_attempts_total",
            "Job attempts started by this worker",
        )
        .unwrap();
        let finished = CounterVec::new(
            Opts::new(
                "vox_jobs_finished_total",
                "Jobs this worker brought to a final state",
            ),
            &["state"],
        )
        .unwrap();
        let reused = IntCounter::new(
            "vox_jobs_reused_total",
            "Jobs completed from an existing object without synthesis",
        )
        .unwrap();
        let gpu_seconds = Counter::new(
            "vox_job_gpu_seconds_total",
            "GPU seconds spent on jobs by this worker (request wall time on the instance)",
        )
        .unwrap();
        let dollars = Counter::new(
            "vox_job_dollars_total",
            "Dollars of GPU time spent on jobs by this worker",
        )
        .unwrap();
        let overhead_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vox_job_overhead_seconds",
                "Worker time per finished job beyond the instance wait, the synthesis and the upload",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
            ]),
        )
        .unwrap();
        for c in [
            Box::new(submitted.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(attempts.clone()),
            Box::new(finished.clone()),
            Box::new(reused.clone()),
            Box::new(gpu_seconds.clone()),
            Box::new(dollars.clone()),
            Box::new(overhead_seconds.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            submitted,
            attempts,
            finished,
            reused,
            gpu_seconds,
            dollars,
            overhead_seconds,
        }
    }
}
