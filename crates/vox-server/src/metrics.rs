//! Prometheus metrics (`GET /metrics`) and the layer that counts every request by route and status.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

/// Every metric the server exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub in_flight: IntGauge,
    pub queue_depth: IntGaugeVec,
    pub engine_running: IntGaugeVec,
    pub rejected: IntCounterVec,
    pub audio_produced: prometheus::CounterVec,
    pub audio_consumed: prometheus::CounterVec,
    pub rtf: HistogramVec,
    pub model_load: GaugeVec,
    pub provision_bytes: IntCounter,
    pub ready: IntGauge,
    pub idle_seconds: Gauge,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let secs = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        Metrics {
            requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "vox_http_requests_total",
                        "HTTP requests by route, method and status",
                    ),
                    &["route", "method", "status"],
                )
                .unwrap(),
            ),
            latency: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "vox_http_request_duration_seconds",
                        "Time to the response headers, by route",
                    )
                    .buckets(secs.clone()),
                    &["route"],
                )
                .unwrap(),
            ),
            in_flight: reg(
                &r,
                IntGauge::new(
                    "vox_http_in_flight",
                    "Requests being served (streams until their last byte)",
                )
                .unwrap(),
            ),
            queue_depth: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("vox_queue_depth", "Requests waiting for an engine thread"),
                    &["model"],
                )
                .unwrap(),
            ),
            engine_running: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("vox_engine_in_flight", "Requests on an engine thread now"),
                    &["model"],
                )
                .unwrap(),
            ),
            rejected: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "vox_queue_rejected_total",
                        "Requests refused by an engine queue (full: 429, deadline: 503)",
                    ),
                    &["model", "reason"],
                )
                .unwrap(),
            ),
            audio_produced: reg(
                &r,
                prometheus::CounterVec::new(
                    Opts::new(
                        "vox_audio_seconds_produced_total",
                        "Seconds of speech synthesized",
                    ),
                    &["model"],
                )
                .unwrap(),
            ),
            audio_consumed: reg(
                &r,
                prometheus::CounterVec::new(
                    Opts::new(
                        "vox_audio_seconds_consumed_total",
                        "Seconds of audio transcribed",
                    ),
                    &["model"],
                )
                .unwrap(),
            ),
            rtf: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "vox_real_time_factor",
                        "Engine time divided by audio duration, per request",
                    )
                    .buckets(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]),
                    &["model"],
                )
                .unwrap(),
            ),
            model_load: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "vox_model_load_seconds",
                        "Seconds to load and warm up each model",
                    ),
                    &["model"],
                )
                .unwrap(),
            ),
            provision_bytes: reg(
                &r,
                IntCounter::new(
                    "vox_provision_bytes_total",
                    "Bytes brought onto the model volume at start-up",
                )
                .unwrap(),
            ),
            ready: reg(
                &r,
                IntGauge::new("vox_ready", "1 once every model is loaded and warmed up").unwrap(),
            ),
            idle_seconds: reg(
                &r,
                Gauge::new(
                    "vox_idle_seconds",
                    "Seconds since the last request finished (0 while any is in flight)",
                )
                .unwrap(),
            ),
            registry: r,
        }
    }

    /// The text exposition, with the gauges sampled now.
    pub fn render(&self, state: &AppState) -> String {
        if let Some(engines) = state.engines.get() {
            for m in &engines.models {
                let q = match &m.served {
                    crate::state::Served::Synthesizer(s) => s.queue().stats(),
                    crate::state::Served::Transcriber(t) => t.queue().stats(),
                };
                self.queue_depth
                    .with_label_values(&[&m.name])
                    .set(q.queued as i64);
                self.engine_running
                    .with_label_values(&[&m.name])
                    .set(q.running as i64);
            }
        }
        self.idle_seconds.set(state.idle.report().idle_seconds);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Probes do not count as activity: a load balancer polling `/ready` must not keep a machine awake.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/idle" | "/metrics")
}

/// Counts requests by route and status, times them, and holds the idle signal's in-flight count until the
/// response body is fully sent.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let probe = is_probe(req.uri().path());
    let guard = (!probe).then(|| {
        state.metrics.in_flight.inc();
        (
            state.idle.begin(),
            InFlight(state.metrics.in_flight.clone()),
        )
    });
    let t0 = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .with_label_values(&[&route])
        .observe(t0.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&route, &method, resp.status().as_str()])
        .inc();
    match guard {
        None => resp,
        Some(guard) => {
            let (parts, body) = resp.into_parts();
            let stream = body.into_data_stream().map(move |chunk| {
                let _held = &guard;
                chunk
            });
            Response::from_parts(parts, Body::from_stream(stream))
        }
    }
}

struct InFlight(IntGauge);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
