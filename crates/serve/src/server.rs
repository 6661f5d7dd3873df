//! The HTTP/1.1 server: accept loop, per-connection limits, and the shutdown sequence.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;

/// How the server shuts down.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// Time clients have to send their headers.
    pub header_timeout: Duration,
    /// Keep accepting (with readiness failing) this long after the signal.
    pub drain_delay: Duration,
    /// Longest wait for in-flight requests.
    pub grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then: readiness fails at once, the
/// listener stays open for the drain delay, closes, and in-flight requests get up to the grace
/// period to finish. The caller binds (tests bind port 0) and flushes telemetry afterwards.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    policy: ShutdownPolicy,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // hyper's header timeout does nothing without a timer.
    http.timer(TokioTimer::new())
        .header_read_timeout(policy.header_timeout)
        .keep_alive(true);

    accept_until(&listener, &app, &http, &graceful, shutdown).await;
    app.begin_shutdown();
    tracing::info!(
        drain_delay_ms = policy.drain_delay.as_millis() as u64,
        "shutdown signal received; readiness is now failing"
    );
    accept_until(
        &listener,
        &app,
        &http,
        &graceful,
        tokio::time::sleep(policy.drain_delay),
    )
    .await;
    drop(listener);

    match tokio::time::timeout(policy.grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            grace_ms = policy.grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        ),
    }
}

async fn accept_until(
    listener: &TcpListener,
    app: &Arc<App>,
    http: &http1::Builder,
    graceful: &GracefulShutdown,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.handle(req).await) }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}
