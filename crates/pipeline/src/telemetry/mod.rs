//! Telemetry setup shared by the binaries (feature `telemetry`): JSON logs carrying trace ids,
//! OpenTelemetry traces exported over OTLP, and the Prometheus metrics recorder.
//!
//! Business code never touches this module after start-up: it uses `tracing` and `metrics`
//! macros. Everything is configured the way users already know: `RUST_LOG` for log levels and the
//! standard `OTEL_*` variables for traces (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//! `..._PROTOCOL` (`http/protobuf` or `grpc`), `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`
//! (`gzip` or `none`), `..._CERTIFICATE`, `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY` (PEM files
//! for an `https://` collector, see [`tls`]), `..._INSECURE` (a gRPC `host:port` without a
//! scheme is plaintext when true, TLS otherwise), `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_PROPAGATORS`, `OTEL_SDK_DISABLED`,
//! `OTEL_TRACES_EXPORTER=none`).
//! With no endpoint set, spans still get ids (for logs and response headers) but nothing is
//! exported. Values the SDK would ignore with a warning nobody sees (an unknown sampler,
//! protocol or compression, an endpoint that is not an http(s) URL, an export header it would
//! drop, an unreadable certificate) stop the start with a message instead (`otel_env.rs` and
//! [`tls`]).

pub mod export;
pub mod json_log;
mod otel_env;
pub mod otlp;
pub mod otlp_grpc;
pub mod propagation;
pub mod sharded_metrics;
pub mod spans;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, WorkerGuard};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

pub use export::{BatchSettings, ExportStats};
pub use sharded_metrics::MetricsHandle;
pub use spans::{SpanIds, SpanSink};

/// What the binary wants from telemetry.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` sets one.
    pub service_name: &'static str,
    /// Also write the JSON logs to daily-rotated files here.
    pub log_dir: Option<PathBuf>,
    /// File name prefix of those files (`<prefix>.YYYY-MM-DD.log`).
    pub log_file_prefix: &'static str,
    /// Log filter when `RUST_LOG` is not set.
    pub default_log_filter: &'static str,
    /// Histogram bucket bounds per metric name ([`sharded_metrics`] records these); histograms not
    /// listed render as summaries, so list every histogram.
    pub histogram_buckets: Vec<(&'static str, Vec<f64>)>,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// No endpoint configured (or `OTEL_TRACES_EXPORTER=none`): ids only.
    Disabled,
    /// `OTEL_SDK_DISABLED=true`: no OpenTelemetry layer at all (no trace ids in logs either).
    SdkDisabled,
    /// OTLP over HTTP/protobuf or gRPC to this endpoint.
    Otlp {
        /// `http/protobuf` or `grpc`.
        protocol: String,
        /// The endpoint as configured, with the scheme a gRPC endpoint written without one gets
        /// (`https://`, or `http://` when `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` is true).
        endpoint: String,
        /// `gzip` or `none` (the default); anything else fails at start.
        compression: String,
    },
}

/// How the start line says where spans go.
impl std::fmt::Display for TraceExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled => {
                f.write_str("none (ids only; set OTEL_EXPORTER_OTLP_ENDPOINT to export)")
            }
            Self::SdkDisabled => f.write_str("none (OTEL_SDK_DISABLED=true: no trace ids either)"),
            Self::Otlp {
                protocol,
                endpoint,
                compression,
            } => write!(
                f,
                "OTLP {protocol} to {endpoint}, compression {compression}"
            ),
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A global recorder or subscriber was already installed.
    #[error("telemetry is already initialised in this process: {0}")]
    AlreadyInitialised(String),
    /// The log folder cannot be written.
    #[error("cannot write logs to {path}: {reason}; create the folder or fix --log-dir")]
    LogDir {
        /// The folder.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A bad `OTEL_*` setting or an exporter that cannot be built.
    #[error("OpenTelemetry configuration: {0}")]
    Otel(String),
    /// A bad histogram bucket list.
    #[error("metrics configuration: {0}")]
    Metrics(String),
}

/// Counts of log lines dropped by the non-blocking writers.
#[derive(Debug, Clone)]
pub struct LogDrops(json_log::LogFlush<NonBlocking>);

impl LogDrops {
    /// Lines dropped so far, all writers together.
    pub fn total(&self) -> u64 {
        self.0.dropped_lines()
    }
}

/// Running telemetry. Keep it alive for the life of the process; [`Telemetry::shutdown`] (or drop)
/// flushes spans (bounded by a deadline) and logs.
#[derive(Debug)]
pub struct Telemetry {
    /// Renders `/metrics`.
    pub metrics: MetricsHandle,
    /// Span export counters (dropped, exported, failed).
    pub export_stats: Arc<ExportStats>,
    /// Where spans go.
    pub trace_export: TraceExport,
    /// The sampler in use, from `OTEL_TRACES_SAMPLER[_ARG]` (`none` when the SDK is disabled).
    pub sampler: String,
    /// The caller formats read, from `OTEL_PROPAGATORS` (`none` when none is, or the SDK is
    /// disabled).
    pub propagators: String,
    provider: Option<SdkTracerProvider>,
    span_sink: Option<SpanSink>,
    log_flush: json_log::LogFlush<NonBlocking>,
    log_guards: Vec<WorkerGuard>,
}

impl Telemetry {
    /// Installs the metrics recorder, the tracer provider and the log subscriber, globally.
    pub fn init(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let metrics = install_metrics(&config.histogram_buckets)?;
        let export_stats = Arc::new(ExportStats::default());
        let trace_export = trace_export_from_env();
        let sampler = match &trace_export {
            TraceExport::SdkDisabled => "none".to_owned(),
            _ => sampler_from_env()?,
        };
        let propagators = otel_env::propagators_from_env();
        otel_env::check_traces_exporter_from_env().map_err(TelemetryError::Otel)?;
        // Written once the logs work.
        let (attributes, mut warnings) = otel_env::resource_attributes_from_env();
        let (provider, span_sink) = match &trace_export {
            TraceExport::SdkDisabled => (None, None),
            _ => {
                let (provider, sink) = tracer_provider(
                    config.service_name,
                    resource(config.service_name, attributes),
                    &trace_export,
                    export_stats.clone(),
                )?;
                let sink = sink.with_propagation(propagators.propagation.clone());
                (Some(provider), Some(sink))
            }
        };
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let writers = LogWriters::open(config)?;
        let (filter, bad_filter) = log_filter(config.default_log_filter);
        warnings.extend(bad_filter);
        let mut layers: Vec<BoxedLayer> = Vec::new();
        if let Some(p) = provider.as_ref() {
            layers.push(otel_layer(p, config.service_name));
        }
        // One layer for both writers: each line is filtered and formatted once.
        let mut log_layer = json_log::JsonLogLayer::new(writers.stdout);
        if let Some(file) = writers.file {
            log_layer = log_layer.and(file);
        }
        for counter in writers.errors {
            log_layer = log_layer.counting_drops(counter);
        }
        let log_flush = log_layer.flusher(Some(json_log::FLUSH_EVERY));
        layers.push(log_layer.with_filter(filter).boxed());
        Registry::default()
            .with(layers)
            .try_init()
            .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;
        warn_about_settings(&trace_export, &propagators, &warnings);
        let log_guards = writers.guards;
        let propagators = match span_sink {
            Some(_) => propagators.propagation.names(),
            None => "none".to_owned(),
        };
        Ok(Self {
            metrics,
            export_stats,
            trace_export,
            sampler,
            propagators,
            provider,
            span_sink,
            log_flush,
            log_guards,
        })
    }

    /// Where a hot path's spans are built and queued (`None` when the SDK is disabled: no trace
    /// ids at all then).
    pub fn span_sink(&self) -> Option<SpanSink> {
        self.span_sink.clone()
    }

    /// Log lines dropped because a writer could not keep up.
    pub fn log_lines_dropped(&self) -> u64 {
        self.log_drops().total()
    }

    /// A handle that reads the dropped-log-lines count later, from anywhere.
    pub fn log_drops(&self) -> LogDrops {
        LogDrops(self.log_flush.clone())
    }

    /// Flushes and stops span export, waiting at most `timeout`, then flushes the logs.
    pub fn shutdown(&mut self, timeout: Duration) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(timeout)
        {
            tracing::warn!(error = %e, "span export did not finish in time; unsent spans are lost");
        }
        self.log_flush.flush();
        self.log_guards.clear();
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(3));
    }
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The JSON log writers: stdout, and daily files in `--log-dir` when set.
struct LogWriters {
    stdout: NonBlocking,
    file: Option<NonBlocking>,
    /// Lines each writer dropped because its queue was full.
    errors: Vec<ErrorCounter>,
    /// Keep alive for the life of the process: dropping one flushes and stops its writer.
    guards: Vec<WorkerGuard>,
}

impl LogWriters {
    fn open(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        // Buffered behind the non-blocking queue: the writer thread flushes whenever the queue
        // runs dry, so lines are batched into few syscalls under load and never held back idle.
        const BUFFER: usize = 1 << 16;
        let (stdout, stdout_guard) = tracing_appender::non_blocking(
            std::io::BufWriter::with_capacity(BUFFER, std::io::stdout()),
        );
        let mut writers = Self {
            errors: vec![stdout.error_counter()],
            stdout,
            file: None,
            guards: vec![stdout_guard],
        };
        if let Some(dir) = &config.log_dir {
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(config.log_file_prefix)
                .filename_suffix("log")
                .max_log_files(7)
                .build(dir)
                .map_err(|e| TelemetryError::LogDir {
                    path: dir.clone(),
                    reason: e.to_string(),
                })?;
            let (file, guard) =
                tracing_appender::non_blocking(std::io::BufWriter::with_capacity(BUFFER, appender));
            writers.errors.push(file.error_counter());
            writers.guards.push(guard);
            writers.file = Some(file);
        }
        Ok(writers)
    }
}

/// `RUST_LOG`, else `default`; a `RUST_LOG` that does not parse falls back to `default`, with a
/// warning to write once the logs work.
fn log_filter(default: &str) -> (EnvFilter, Option<String>) {
    let builder = || EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    let Ok(value) = std::env::var("RUST_LOG") else {
        return (builder().parse_lossy(default), None);
    };
    match builder().parse(&value) {
        Ok(filter) => (filter, None),
        Err(e) => {
            let warning = format!("RUST_LOG {value:?}: {e}; the default filter is used instead");
            (builder().parse_lossy(default), Some(warning))
        }
    }
}

/// Spans are traced at INFO whatever `RUST_LOG` says: log levels must not switch traces off.
/// Only warnings and errors become span events: the access log line of every request is
/// already in Loki with its trace id, and copying it into the span doubled its cost.
fn otel_layer(provider: &SdkTracerProvider, service_name: &'static str) -> BoxedLayer {
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(|m| {
            let most_verbose = if m.is_span() {
                Level::INFO
            } else {
                Level::WARN
            };
            *m.level() <= most_verbose
        }))
        .boxed()
}

/// Settings that may be wrong but do not stop the start, written once the logs work, with
/// `warnings` found before.
fn warn_about_settings(
    trace_export: &TraceExport,
    propagators: &otel_env::Propagators,
    warnings: &[String],
) {
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if let TraceExport::Otlp {
        protocol, endpoint, ..
    } = trace_export
        && let Some(hint) = otel_env::port_mismatch(protocol, endpoint)
    {
        tracing::warn!(endpoint, protocol, "{hint}");
    }
    if let Some((var, value)) = otel_env::insecure_from_env() {
        let warning = otel_env::boolean_warning(var, &value).or_else(|| match trace_export {
            TraceExport::Otlp { endpoint, .. } => {
                otel_env::insecure_disagrees(var, &value, endpoint)
            }
            _ => None,
        });
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
    }
    if let TraceExport::Otlp { protocol, .. } = trace_export
        && let Some(endpoint) = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        && let Some(hint) = otel_env::traces_endpoint_without_path(protocol, &endpoint)
    {
        tracing::warn!("{hint}");
    }
    if let Some(warning) = otel_env::boolean_warning(
        "OTEL_SDK_DISABLED",
        &std::env::var("OTEL_SDK_DISABLED").unwrap_or_default(),
    ) {
        tracing::warn!("{warning}");
    }
    if !propagators.unsupported.is_empty() {
        let unsupported = propagators.unsupported.join(",");
        let reads = propagators.propagation.names();
        tracing::warn!(
            unsupported,
            reads,
            "OTEL_PROPAGATORS lists propagators this server does not implement; their headers \
             are ignored (it reads tracecontext, b3/b3multi, jaeger, xray and ottrace)"
        );
    }
}

/// Appends `bytes` as lowercase hex (trace and span ids, as W3C trace context writes them).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Ids are 8 or 16 bytes: formatted on the stack and appended at once, not a char at a time.
    let mut buf = [0u8; 32];
    for chunk in bytes.chunks(16) {
        let hex = &mut buf[..chunk.len() * 2];
        for (pair, b) in hex.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        // Only ASCII hex digits were written.
        out.push_str(std::str::from_utf8(hex).unwrap_or_default());
    }
}

fn install_metrics(buckets: &[(&'static str, Vec<f64>)]) -> Result<MetricsHandle, TelemetryError> {
    let exporter = PrometheusBuilder::new().build_recorder();
    let prometheus = exporter.handle();
    let recorder = sharded_metrics::BucketedRecorder::new(exporter, buckets)
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    let sharded = recorder.sharded();
    metrics::set_global_recorder(recorder)
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;
    let prometheus = start_upkeep(prometheus)?;
    Ok(MetricsHandle::new(prometheus, sharded))
}

/// Samples of histograms without buckets pile up in the exporter until upkeep folds them:
/// without it, memory grows with every sample until the next scrape (forever if nobody scrapes).
fn start_upkeep(handle: PrometheusHandle) -> Result<PrometheusHandle, TelemetryError> {
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| TelemetryError::Metrics(format!("cannot start the upkeep thread: {e}")))?;
    Ok(handle)
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Reads the standard variables that decide whether and where spans are exported.
pub fn trace_export_from_env() -> TraceExport {
    if env_nonempty("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return TraceExport::SdkDisabled;
    }
    if env_nonempty("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")) {
        return TraceExport::Disabled;
    }
    let endpoint = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let protocol = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    let compression = env_nonempty("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
        .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_COMPRESSION"))
        .map_or_else(|| "none".to_owned(), |c| c.to_ascii_lowercase());
    let insecure = otel_env::insecure_from_env();
    match endpoint {
        Some(endpoint) => TraceExport::Otlp {
            endpoint: otel_env::with_grpc_scheme(
                &protocol,
                endpoint,
                insecure.as_ref().map(|(_, v)| v.as_str()),
            ),
            protocol,
            compression,
        },
        None => TraceExport::Disabled,
    }
}

/// Checks `OTEL_TRACES_SAMPLER[_ARG]` and describes the sampler they make. The SDK warns where
/// nobody sees it and falls back to sampling everything, so a typo would silently cost a full
/// trace of every request; here it stops the start with a message instead.
pub fn sampler_from_env() -> Result<String, TelemetryError> {
    const RATIO: [&str; 2] = ["traceidratio", "parentbased_traceidratio"];
    const OTHERS: [&str; 4] = [
        "always_on",
        "always_off",
        "parentbased_always_on",
        "parentbased_always_off",
    ];
    let name = env_nonempty("OTEL_TRACES_SAMPLER");
    if let Some(name) = &name {
        if !RATIO.contains(&name.as_str()) && !OTHERS.contains(&name.as_str()) {
            return Err(TelemetryError::Otel(format!(
                "unsupported OTEL_TRACES_SAMPLER {name:?}; use one of {}",
                [RATIO.as_slice(), OTHERS.as_slice()].concat().join(", ")
            )));
        }
        if RATIO.contains(&name.as_str())
            && let Some(arg) = env_nonempty("OTEL_TRACES_SAMPLER_ARG")
            && !arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
        {
            return Err(TelemetryError::Otel(format!(
                "OTEL_TRACES_SAMPLER_ARG {arg:?} is not a ratio; use a number from 0 to 1 (0.1 keeps one trace in ten)"
            )));
        }
    }
    Ok(format!(
        "{:?}",
        opentelemetry_sdk::trace::Config::default().sampler
    ))
}

/// The SDK's resource (`telemetry.sdk.*`) with `OTEL_RESOURCE_ATTRIBUTES` decoded and
/// `service.name` as the specification orders it: `OTEL_SERVICE_NAME`, else the attribute, else
/// the binary's default. The SDK keeps values percent-encoded and lets the attribute win over
/// `OTEL_SERVICE_NAME`.
fn resource(default_service_name: &'static str, attributes: Vec<(String, String)>) -> Resource {
    let service_name = env_nonempty("OTEL_SERVICE_NAME")
        .or_else(|| {
            attributes
                .iter()
                .find(|(key, _)| key == "service.name")
                .map(|(_, value)| value.clone())
        })
        .unwrap_or_else(|| default_service_name.to_owned());
    Resource::builder()
        .with_attributes(
            attributes
                .into_iter()
                .map(|(key, value)| opentelemetry::KeyValue::new(key, value)),
        )
        .with_service_name(service_name)
        .build()
}

fn tracer_provider(
    service_name: &'static str,
    resource: Resource,
    export: &TraceExport,
    stats: Arc<ExportStats>,
) -> Result<(SdkTracerProvider, SpanSink), TelemetryError> {
    // The sampler the SDK reads from OTEL_TRACES_SAMPLER[_ARG], for both kinds of spans.
    let sampler = opentelemetry_sdk::trace::Config::default().sampler;
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler.clone());
    let TraceExport::Otlp {
        protocol,
        compression,
        endpoint,
    } = export
    else {
        return Ok((builder.build(), SpanSink::new(sampler, service_name, None)));
    };
    // The SDK would warn where nobody sees it and send uncompressed.
    if !matches!(compression.as_str(), "gzip" | "none") {
        return Err(TelemetryError::Otel(format!(
            "unsupported OTLP compression {compression:?} (OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION); use gzip or none"
        )));
    }
    otel_env::check_endpoint(endpoint).map_err(TelemetryError::Otel)?;
    otel_env::check_headers_from_env().map_err(TelemetryError::Otel)?;
    otel_env::check_numbers_from_env().map_err(TelemetryError::Otel)?;
    // The exporter builders read the endpoint, headers, timeout and compression variables.
    let (grpc_endpoint, gzip) = (endpoint.clone(), compression == "gzip");
    let processor = match protocol.as_str() {
        // The endpoint with the scheme resolved above, so that the TLS set-up and the channel
        // cannot disagree about it.
        "grpc" => export::BoundedBatchProcessor::start(
            move || otlp_grpc::GrpcExporter::from_env(&grpc_endpoint, gzip),
            BatchSettings::from_env(),
            stats,
        ),
        "http/protobuf" => export::BoundedBatchProcessor::start(
            otlp::HttpProtoExporter::from_env,
            BatchSettings::from_env(),
            stats,
        ),
        other => {
            return Err(TelemetryError::Otel(format!(
                "unsupported OTLP protocol {other:?}; use http/protobuf or grpc"
            )));
        }
    }
    .map_err(|e| TelemetryError::Otel(e.to_string()))?;
    let processor = Arc::new(processor);
    let sink = SpanSink::new(sampler, service_name, Some(processor.clone()));
    let provider = builder
        .with_span_processor(export::SharedProcessor(processor))
        .build();
    Ok((provider, sink))
}
