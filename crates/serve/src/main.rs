//! `serve`: parse flags, load the model, start telemetry, serve until SIGTERM/SIGINT, flush.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pipeline::ModelFile;
use pipeline::telemetry::Telemetry;
use serve::config::Config;

// glibc's malloc showed up at ~8% of a loaded server's profile (many small, short-lived
// allocations per request, freed on other threads: spans go to the export thread). jemalloc
// gave +35% throughput with telemetry on; mimalloc did as well but held twice the memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = Config::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(usize::from(n));
    }
    let result = runtime
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")
        .and_then(|rt| rt.block_on(run(config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let model = ModelFile::load(&config.model)?;
    let mut telemetry = match config.telemetry.as_str() {
        "off" => None,
        _ => Some(Telemetry::init(&serve::telemetry_config(&config))?),
    };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let addr = listener.local_addr()?;
    let app = serve::App::new(model, serve::Limits::from(&config), telemetry.as_ref());
    match &telemetry {
        Some(t) => {
            tracing::info!(%addr, model_version = %app.model_version(), trace_export = %t.trace_export, sampler = %t.sampler, propagators = %t.propagators, "listening")
        }
        None => eprintln!("listening on {addr} with telemetry off"),
    }
    let policy = serve::ShutdownPolicy {
        header_timeout: config.header_timeout,
        drain_delay: config.drain_delay,
        grace: config.shutdown_grace,
    };
    serve::run(listener, app, policy, serve::shutdown::shutdown_signal()).await;
    // Blocking flush (bounded); the runtime is still up for any export task that needs it.
    let timeout = config.telemetry_flush_timeout;
    if let Some(mut telemetry) = telemetry.take() {
        tokio::task::spawn_blocking(move || telemetry.shutdown(timeout))
            .await
            .context("telemetry flush panicked")?;
    }
    Ok(())
}
