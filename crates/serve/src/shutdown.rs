//! The one shutdown signal: SIGTERM (Kubernetes, systemd, `docker stop`) or SIGINT (Ctrl-C).

/// Resolves on the first SIGTERM or SIGINT. If a handler cannot be installed, that signal is
/// simply never awaited, and the process can still be stopped by the other or by SIGKILL.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
