//! # serve
//!
//! The prediction server of the 20 Newsgroups classifier, with its three pillars of
//! observability linked: Prometheus metrics ([`observe`]), OpenTelemetry traces with one span per
//! request and per pipeline step, and JSON logs carrying the same trace ids.
//!
//! `main.rs` parses [`config::Config`], starts telemetry, loads the model, binds, and calls
//! [`server::run`] with the shutdown signal; tests do the same with their own listener.

pub mod app;
pub mod client_text;
pub mod config;
pub mod error;
pub mod observe;
mod predict;
pub mod server;
pub mod shutdown;
pub mod trace_context;

pub use app::{App, Limits};
pub use server::{ShutdownPolicy, run};

/// Telemetry settings of the server.
pub fn telemetry_config(config: &config::Config) -> pipeline::telemetry::TelemetryConfig {
    pipeline::telemetry::TelemetryConfig {
        service_name: "doc-classifier",
        log_dir: config.log_dir.clone(),
        log_file_prefix: "serve",
        default_log_filter: "info",
        histogram_buckets: observe::histogram_buckets(),
    }
}
