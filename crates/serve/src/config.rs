//! Command-line flags, each with an environment variable and a default that works out of the box.
//! Tracing settings are not flags: they are the standard `OTEL_*` variables (see the README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The tracing settings, which are environment variables, listed under `--help`.
const TRACING_HELP: &str = "\
Tracing is set by the standard OpenTelemetry variables (the README lists them all):
  OTEL_EXPORTER_OTLP_ENDPOINT  collector URL, e.g. http://localhost:4318 (unset: no export)
  OTEL_EXPORTER_OTLP_PROTOCOL  http/protobuf (the default, port 4318) or grpc (port 4317)
  OTEL_EXPORTER_OTLP_INSECURE  true: a gRPC endpoint written host:port, without a scheme, is
                               plaintext (the default is TLS); with a scheme, the scheme decides
  OTEL_EXPORTER_OTLP_HEADERS   key=value,... sent with every export, values percent-encoded
  OTEL_SERVICE_NAME            service.name of the spans (default doc-classifier)
  OTEL_RESOURCE_ATTRIBUTES     key=value,... added to every span's resource
  OTEL_TRACES_SAMPLER[_ARG]    e.g. parentbased_traceidratio and 0.1 to keep one trace in ten
  OTEL_PROPAGATORS             the caller headers a request joins the trace of: tracecontext
                               (the default, traceparent), b3 or b3multi (either B3 encoding),
                               jaeger (uber-trace-id), xray (X-Amzn-Trace-Id), ottrace
                               (ot-tracer-*), several comma-separated, or none
  OTEL_SDK_DISABLED=true       no tracing at all, and no trace ids in the logs
A value the server cannot use stops the start with a one-line reason.";

/// Serve the 20 Newsgroups classifier over HTTP with Prometheus metrics, OpenTelemetry traces
/// and JSON logs that carry trace ids.
///
/// POST /predict takes a document (plain text, or JSON {"text": "..."}) and answers with its
/// category. GET /metrics, /livez, /readyz, /healthz (and /) for operations. Traces are exported
/// over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; log levels follow RUST_LOG.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about, after_long_help = TRACING_HELP)]
pub struct Config {
    /// The model file written by `train`.
    #[arg(
        long,
        env = "MODEL_PATH",
        default_value = "data/model.bin",
        value_name = "PATH"
    )]
    pub model: PathBuf,

    /// Address and port to listen on.
    #[arg(long, env = "SERVE_ADDR", default_value = "0.0.0.0:3000")]
    pub addr: SocketAddr,

    /// Largest request body accepted; larger ones get 413 without being read.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Most /predict requests handled at once; beyond it, 503 with Retry-After instead of a queue.
    #[arg(long, env = "MAX_CONCURRENCY", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrency: u32,

    /// Time a client has to send its request headers (slowloris protection), e.g. 10s, 500ms.
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time a client has to send its request body.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// After SIGTERM, keep serving (with /readyz failing) this long before closing the listener,
    /// so load balancers stop sending traffic first. 0 when Kubernetes has a preStop pause.
    #[arg(long, env = "DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// Longest wait for in-flight requests at shutdown.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Longest wait for the last spans to be exported at shutdown.
    #[arg(long, env = "TELEMETRY_FLUSH_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub telemetry_flush_timeout: Duration,

    /// Also write the JSON logs to daily files in this folder (serve.YYYY-MM-DD.log).
    #[arg(long, env = "LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Telemetry (logs, traces, metrics): `on`, or `off` to measure what it costs (no log line,
    /// no span, no metric; /metrics answers 404).
    #[arg(long, env = "TELEMETRY", default_value = "on", value_parser = ["on", "off"])]
    pub telemetry: String,

    /// Tokio worker threads (default: one per core).
    #[arg(long, env = "WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
}

/// Parses `10s`, `250ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}; use e.g. 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn defaults_need_no_flag() {
        let c = Config::try_parse_from(["serve"]).expect("defaults parse");
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.addr.port(), 3000);
    }
}
