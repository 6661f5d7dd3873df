//! Every metric the server emits: names, labels, units and buckets, written down in one place
//! like a small spec. Handlers call the recording functions here and never name a metric.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_route`, `http_response_status_code` |
//! | `http_server_requests_total` | counter | same |
//! | `http_server_request_body_size_bytes` | histogram | `http_route` |
//! | `http_server_errors_total` | counter | `http_route`, `status_class` (`4xx`/`5xx`), `reason` |
//! | `http_server_active_requests` | gauge | `http_route` |
//! | `http_server_concurrency_limit` | gauge | |
//! | `pipeline_step_duration_seconds` | histogram | `step` (`tokenize`, `vectorize`, `weigh`, `predict`) |
//! | `model_predictions_total` | counter | `label` (a category of the model) |
//! | `model_prediction_confidence` | histogram | |
//! | `model_document_length_bytes` | histogram | |
//! | `model_document_tokens` | histogram | |
//! | `model_out_of_vocabulary_ratio` | histogram | |
//! | `model_info` | gauge (1) | `model_version`, `weighting`, `test_accuracy`, `trained_at` |
//! | `tokio_workers`, `tokio_worker_busy_ratio` (since the previous scrape) | gauge | |
//! | `otel_spans_dropped_total`, `otel_spans_exported_total`, `otel_spans_failed_total` | counter | |
//! | `log_lines_dropped_total` | counter | |
//! | `process_*` | from `metrics-process` | |
//!
//! Label values come from closed sets (route templates, status codes, category names), never
//! from raw paths or user text. Unmatched paths have an empty `http_route`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use metrics::CounterFn as _;
use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use pipeline::telemetry::sharded_metrics::ShardedCounter;
use pipeline::telemetry::{ExportStats, Telemetry};

/// Request latency.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Requests served.
pub const REQUESTS: &str = "http_server_requests_total";
/// Request body sizes.
pub const REQUEST_BODY_SIZE: &str = "http_server_request_body_size_bytes";
/// Errors by kind.
pub const ERRORS: &str = "http_server_errors_total";
/// Requests in progress.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";
/// The `/predict` concurrency limit.
pub const CONCURRENCY_LIMIT: &str = "http_server_concurrency_limit";
/// Time of each pipeline step.
pub const STEP_DURATION: &str = "pipeline_step_duration_seconds";
/// Predictions by label.
pub const PREDICTIONS: &str = "model_predictions_total";
/// Probability of the predicted label.
pub const CONFIDENCE: &str = "model_prediction_confidence";
/// Document sizes.
pub const DOCUMENT_LENGTH: &str = "model_document_length_bytes";
/// Tokens per document.
pub const DOCUMENT_TOKENS: &str = "model_document_tokens";
/// Share of tokens unknown to the model.
pub const OOV_RATIO: &str = "model_out_of_vocabulary_ratio";
/// The loaded model.
pub const MODEL_INFO: &str = "model_info";

/// Latency buckets from 50 µs to 10 s: a prediction takes tens of microseconds, so the default
/// OpenTelemetry buckets (starting at 5 ms) would put every request in the first one.
const LATENCY_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 7.5, 10.0,
];
const STEP_BUCKETS: [f64; 14] = [
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025, 0.01, 0.1, 1.0,
];
const SIZE_BUCKETS: [f64; 12] = [
    64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 65536.0, 262144.0, 1048576.0,
    4194304.0,
];
const TOKEN_BUCKETS: [f64; 11] = [
    0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
const RATIO_BUCKETS: [f64; 11] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0];
const CONFIDENCE_BUCKETS: [f64; 10] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];

/// Bucket bounds of every histogram, for the recorder (a histogram not listed would render as a
/// summary, which Prometheus cannot aggregate).
pub fn histogram_buckets() -> Vec<(&'static str, Vec<f64>)> {
    vec![
        (REQUEST_DURATION, LATENCY_BUCKETS.to_vec()),
        (STEP_DURATION, STEP_BUCKETS.to_vec()),
        (REQUEST_BODY_SIZE, SIZE_BUCKETS.to_vec()),
        (DOCUMENT_LENGTH, SIZE_BUCKETS.to_vec()),
        (DOCUMENT_TOKENS, TOKEN_BUCKETS.to_vec()),
        (OOV_RATIO, RATIO_BUCKETS.to_vec()),
        (CONFIDENCE, CONFIDENCE_BUCKETS.to_vec()),
    ]
}

/// Registers help texts and units; call once after the recorder is installed.
pub fn describe() {
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP server requests."
    );
    describe_counter!(
        REQUESTS,
        "HTTP requests served, by method, route and status code."
    );
    describe_histogram!(
        REQUEST_BODY_SIZE,
        Unit::Bytes,
        "Size of HTTP request bodies read."
    );
    describe_counter!(
        ERRORS,
        "HTTP requests that failed, by status class and reason."
    );
    describe_gauge!(ACTIVE_REQUESTS, "HTTP requests in progress.");
    describe_gauge!(
        CONCURRENCY_LIMIT,
        "Most /predict requests handled at once; more get 503."
    );
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "Duration of each preprocessing and prediction step."
    );
    describe_counter!(PREDICTIONS, "Predictions made, by predicted label.");
    describe_histogram!(
        CONFIDENCE,
        "Probability the model gave its predicted label."
    );
    describe_histogram!(
        DOCUMENT_LENGTH,
        Unit::Bytes,
        "Size of documents classified."
    );
    describe_histogram!(DOCUMENT_TOKENS, "Tokens per document classified.");
    describe_histogram!(
        OOV_RATIO,
        "Share of a document's tokens unknown to the model (a drift signal)."
    );
    describe_gauge!(
        MODEL_INFO,
        "The loaded model (always 1); its facts are labels."
    );
    describe_gauge!("tokio_workers", "Worker threads of the Tokio runtime.");
    describe_gauge!(
        "tokio_worker_busy_ratio",
        "Share of time Tokio workers were busy since the previous scrape."
    );
    describe_counter!(
        "otel_spans_dropped_total",
        "Spans dropped because the export queue was full."
    );
    describe_counter!("otel_spans_exported_total", "Spans the collector accepted.");
    describe_counter!(
        "otel_spans_failed_total",
        "Spans in export batches that failed or timed out, or that the collector rejected (OTLP partial success)."
    );
    describe_counter!(
        "log_lines_dropped_total",
        "Log lines dropped because a log writer could not keep up."
    );
}

/// The routes of the server, with their templates (the only values `http_route` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/predict`
    Predict,
    /// `/metrics`
    Metrics,
    /// `/livez`
    Livez,
    /// `/readyz`
    Readyz,
    /// `/healthz`
    Healthz,
    /// `/`
    Root,
    /// Anything else.
    Unmatched,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Predict,
        Route::Metrics,
        Route::Livez,
        Route::Readyz,
        Route::Healthz,
        Route::Root,
        Route::Unmatched,
    ];

    /// The route of a request path.
    pub fn of(path: &str) -> Self {
        match path {
            "/predict" => Self::Predict,
            "/metrics" => Self::Metrics,
            "/livez" => Self::Livez,
            "/readyz" => Self::Readyz,
            "/healthz" => Self::Healthz,
            "/" => Self::Root,
            _ => Self::Unmatched,
        }
    }

    /// The template, empty when unmatched (as OpenTelemetry leaves `http.route` unset).
    pub fn template(self) -> &'static str {
        match self {
            Self::Predict => "/predict",
            Self::Metrics => "/metrics",
            Self::Livez => "/livez",
            Self::Readyz => "/readyz",
            Self::Healthz => "/healthz",
            Self::Root => "/",
            Self::Unmatched => "",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// HTTP methods as metric labels; anything unusual is `_OTHER` (OpenTelemetry's convention).
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER",
];
const STATUSES: [u16; 10] = [200, 400, 404, 405, 408, 413, 415, 500, 503, 0];

fn status_label(status: u16) -> (usize, &'static str) {
    match status {
        200 => (0, "200"),
        400 => (1, "400"),
        404 => (2, "404"),
        405 => (3, "405"),
        408 => (4, "408"),
        413 => (5, "413"),
        415 => (6, "415"),
        500 => (7, "500"),
        503 => (8, "503"),
        _ => (9, "other"),
    }
}

/// Why a request failed, as the `reason` label of [`ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// Empty body, malformed JSON, missing field.
    BadInput,
    /// Body over the limit.
    TooLarge,
    /// Concurrency limit reached.
    Overloaded,
    /// The client was too slow.
    Timeout,
    /// Unknown path.
    NotFound,
    /// Known path, wrong method.
    MethodNotAllowed,
    /// A bug or a failure of ours.
    Internal,
    /// Shutting down.
    Unavailable,
}

impl ErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadInput => "bad_input",
            Self::TooLarge => "too_large",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Per-request handles, created on first use (only label sets that occur become series) and then
/// reused without a registry lookup.
#[derive(Debug)]
pub struct RequestMetrics {
    duration: Vec<OnceLock<(Histogram, Counter)>>,
    active: Vec<ActiveCount>,
    body_size: Vec<Histogram>,
}

/// Requests of one route in progress, kept as two per-thread counts (started, finished) and
/// published as the gauge at scrape time: a gauge moved up and down by every request was one
/// atomic add on a line both workers write, twice per request.
#[derive(Debug)]
struct ActiveCount {
    started: ShardedCounter,
    finished: ShardedCounter,
    gauge: Gauge,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let n = Route::ALL.len() * METHODS.len() * STATUSES.len();
        Self {
            duration: (0..n).map(|_| OnceLock::new()).collect(),
            active: Route::ALL
                .iter()
                .map(|r| ActiveCount {
                    started: ShardedCounter::default(),
                    finished: ShardedCounter::default(),
                    gauge: gauge!(ACTIVE_REQUESTS, "http_route" => r.template()),
                })
                .collect(),
            body_size: Route::ALL
                .iter()
                .map(|r| histogram!(REQUEST_BODY_SIZE, "http_route" => r.template()))
                .collect(),
        }
    }
}

impl RequestMetrics {
    /// A request starts: counts it as active until the guard drops.
    pub fn start(&self, route: Route) -> ActiveGuard<'_> {
        let active = &self.active[route.index()];
        active.started.increment(1);
        ActiveGuard {
            finished: &active.finished,
            started: Instant::now(),
        }
    }

    /// Sets the active-requests gauges from the counts (at scrape time).
    pub fn publish_active(&self) {
        for a in &self.active {
            // Finished is read first: a request that starts and finishes between the reads is
            // then counted as still active (never as a negative count).
            let finished = a.finished.value();
            let started = a.started.value();
            a.gauge.set(started.saturating_sub(finished) as f64);
        }
    }

    /// A body of `bytes` was read.
    pub fn body_read(&self, route: Route, bytes: usize) {
        self.body_size[route.index()].record(bytes as f64);
    }

    /// A request finished with `status` after `elapsed`.
    pub fn finish(&self, method: &'static str, route: Route, status: u16, elapsed: Duration) {
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let (s, status_str) = status_label(status);
        let slot = (route.index() * METHODS.len() + m) * STATUSES.len() + s;
        let (histogram, count) = self.duration[slot].get_or_init(|| {
            let labels = [
                ("http_request_method", method),
                ("http_route", route.template()),
                ("http_response_status_code", status_str),
            ];
            (
                histogram!(REQUEST_DURATION, &labels),
                counter!(REQUESTS, &labels),
            )
        });
        histogram.record(elapsed.as_secs_f64());
        count.increment(1);
    }

    /// A request failed for `reason`.
    pub fn error(&self, route: Route, status: u16, reason: ErrorReason) {
        let class = if status >= 500 { "5xx" } else { "4xx" };
        counter!(ERRORS, "http_route" => route.template(), "status_class" => class, "reason" => reason.as_str()).increment(1);
    }
}

/// Counts the request as finished when it ends, however it ends.
#[derive(Debug)]
pub struct ActiveGuard<'a> {
    finished: &'a ShardedCounter,
    started: Instant,
}

impl ActiveGuard<'_> {
    /// Time since the request started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.finished.increment(1);
    }
}

/// The pipeline steps, as the `step` label and span names.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Lowercase and split.
    Tokenize = 0,
    /// Count against the vocabulary.
    Vectorize = 1,
    /// tf-idf or raw counts, per the model.
    Weigh = 2,
    /// Class probabilities.
    Predict = 3,
}

impl Step {
    /// Span names and `step` label values, in step order.
    pub const NAMES: [&'static str; 4] = ["tokenize", "vectorize", "weigh", "predict"];
}

/// Model-level handles: the step histograms and one prediction counter per label, registered at
/// start so every label shows (with 0) before its first prediction.
#[derive(Debug)]
pub struct ModelMetrics {
    steps: [Histogram; 4],
    predictions: Vec<Counter>,
    confidence: Histogram,
    length: Histogram,
    tokens: Histogram,
    oov: Histogram,
}

impl ModelMetrics {
    /// Registers the handles and publishes `model_info`.
    pub fn new(meta: &pipeline::Metadata) -> Self {
        let info = [
            ("model_version", meta.model_version.clone()),
            ("weighting", meta.config.weighting.to_string()),
            ("test_accuracy", format!("{:.4}", meta.test.accuracy)),
            (
                "trained_at",
                meta.created_at
                    .map_or_else(|| "unknown".to_owned(), |t| t.to_string()),
            ),
        ];
        gauge!(MODEL_INFO, &info).set(1.0);
        Self {
            steps: Step::NAMES.map(|s| histogram!(STEP_DURATION, "step" => s)),
            predictions: meta
                .categories
                .iter()
                .map(|c| counter!(PREDICTIONS, "label" => c.clone()))
                .collect(),
            confidence: histogram!(CONFIDENCE),
            length: histogram!(DOCUMENT_LENGTH),
            tokens: histogram!(DOCUMENT_TOKENS),
            oov: histogram!(OOV_RATIO),
        }
    }

    /// A step took `elapsed`.
    pub fn step(&self, step: Step, elapsed: Duration) {
        self.steps[step as usize].record(elapsed.as_secs_f64());
    }

    /// A document was classified.
    pub fn prediction(
        &self,
        label: usize,
        confidence: f64,
        bytes: usize,
        tokens: usize,
        oov_ratio: f64,
    ) {
        if let Some(c) = self.predictions.get(label) {
            c.increment(1);
        }
        self.confidence.record(confidence);
        self.length.record(bytes as f64);
        self.tokens.record(tokens as f64);
        self.oov.record(oov_ratio);
    }
}

/// Fills the gauges that are read rather than counted (process, runtime, exporters) and renders
/// the Prometheus text.
#[derive(Debug)]
pub struct Scrape {
    process: metrics_process::Collector,
    last_busy: Mutex<(Instant, Duration)>,
    export: Arc<ExportStats>,
    pushed: Mutex<[u64; 4]>,
}

impl Scrape {
    /// Describes the process metrics; needs the recorder installed.
    pub fn new(telemetry: &Telemetry) -> Self {
        let process = metrics_process::Collector::default();
        process.describe();
        Self {
            process,
            last_busy: Mutex::new((Instant::now(), Duration::ZERO)),
            export: telemetry.export_stats.clone(),
            pushed: Mutex::new([0; 4]),
        }
    }

    /// Updates the read-on-scrape metrics and renders all of them.
    pub fn render(
        &self,
        telemetry_dropped_logs: u64,
        handle: &pipeline::telemetry::MetricsHandle,
    ) -> String {
        self.process.collect();
        self.runtime();
        self.exporters(telemetry_dropped_logs);
        handle.render()
    }

    fn runtime(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let m = rt.metrics();
        let workers = m.num_workers();
        let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
        gauge!("tokio_workers").set(workers as f64);
        if let Ok(mut last) = self.last_busy.lock() {
            let now = Instant::now();
            let (then, busy_then) = *last;
            let delta_busy = busy.saturating_sub(busy_then);
            let wall = now.duration_since(then).as_secs_f64() * workers.max(1) as f64;
            if wall > 0.0 {
                gauge!("tokio_worker_busy_ratio").set((delta_busy.as_secs_f64() / wall).min(1.0));
            }
            *last = (now, busy);
        }
    }

    fn exporters(&self, dropped_logs: u64) {
        let now = [
            self.export.dropped.load(Ordering::Relaxed),
            self.export.exported.load(Ordering::Relaxed),
            self.export.failed.load(Ordering::Relaxed),
            dropped_logs,
        ];
        let names = [
            "otel_spans_dropped_total",
            "otel_spans_exported_total",
            "otel_spans_failed_total",
            "log_lines_dropped_total",
        ];
        if let Ok(mut pushed) = self.pushed.lock() {
            for i in 0..4 {
                counter!(names[i]).increment(now[i].saturating_sub(pushed[i]));
                pushed[i] = now[i];
            }
        }
    }
}
