//! A minimal OTLP/HTTP receiver for benchmarks: it stands in for a collector, which in a real
//! deployment runs on other cores or another machine, so it is made to cost the shared benchmark
//! machine as little CPU as it can (the Python sink it replaces used about 2.6 µs per request
//! served, a quarter of the telemetry cost it was there to measure). It reads each request's
//! body, answers 200 with an empty body on keep-alive HTTP/1.1, and counts requests and bytes.
//!
//! ```text
//! cargo run --release -p serve --example otlp_sink -- PORT
//! ```
//! prints `ready` once listening on 127.0.0.1:PORT; on SIGTERM or SIGINT prints
//! `{"requests": N, "bytes": B}` as one JSON line and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn receive(
    stats: Arc<Stats>,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    let mut body = req.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        bytes += frame?.data_ref().map_or(0, |d| d.len() as u64);
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    let mut response = Response::new(Empty::new());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: otlp_sink PORT"))?
        .parse()?;
    // One thread: a collector's stand-in should not compete for both cores.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(port))
}

async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let stats = Arc::new(Stats::default());
    println!("ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let stats = stats.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| receive(stats.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!(
        "{{\"requests\": {}, \"bytes\": {}}}",
        stats.requests.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed)
    );
    Ok(())
}
