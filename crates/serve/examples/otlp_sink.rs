//! A minimal OTLP/HTTP receiver for benchmarks: it stands in for a collector, which in a real
//! deployment runs on other cores or another machine, so it is made to cost the shared benchmark
//! machine as little CPU as it can (the Python sink it replaces used about 2.6 µs per request
//! served, a quarter of the telemetry cost it was there to measure). It reads each request's
//! body, answers 200 with an empty body on keep-alive HTTP/1.1, and counts requests and bytes.
//! With a second port it also takes OTLP/gRPC there (HTTP/2, `TraceService/Export` answered
//! with an empty message and `grpc-status: 0`), to measure the gRPC exporter the same way.
//!
//! ```text
//! cargo run --release -p serve --example otlp_sink -- PORT [GRPC_PORT]
//! ```
//! prints `ready` once listening on 127.0.0.1:PORT (and GRPC_PORT); on SIGTERM or SIGINT prints
//! `{"requests": N, "bytes": B}` as one JSON line and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Reads a request's body to its end and counts it.
async fn drain(stats: &Stats, req: Request<Incoming>) -> Result<(), hyper::Error> {
    let mut body = req.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        bytes += frame?.data_ref().map_or(0, |d| d.len() as u64);
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}

async fn receive(
    stats: Arc<Stats>,
    req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, hyper::Error> {
    drain(&stats, req).await?;
    let mut response = Response::new(Empty::new());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

/// The answer to a unary gRPC call: an empty `ExportTraceServiceResponse` (a 5-byte frame:
/// uncompressed, length 0), then the `grpc-status: 0` trailer.
type GrpcBody = http_body_util::combinators::WithTrailers<
    Full<Bytes>,
    std::future::Ready<Option<Result<http::HeaderMap, std::convert::Infallible>>>,
>;

async fn receive_grpc(
    stats: Arc<Stats>,
    req: Request<Incoming>,
) -> Result<Response<GrpcBody>, hyper::Error> {
    drain(&stats, req).await?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from_static(&[0; 5]))
        .with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let usage = || anyhow::anyhow!("usage: otlp_sink PORT [GRPC_PORT]");
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().ok_or_else(usage)?.parse()?;
    let grpc_port: Option<u16> = args.next().map(|p| p.parse()).transpose()?;
    // One thread: a collector's stand-in should not compete for both cores.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(port, grpc_port))
}

/// Accepts OTLP/gRPC connections on `listener` until the runtime ends.
async fn serve_grpc(listener: tokio::net::TcpListener, stats: Arc<Stats>) {
    while let Ok((stream, _)) = listener.accept().await {
        // As gRPC servers do: the answer is three frames (headers, message, trailers), and
        // Nagle's algorithm would hold the later ones back for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| receive_grpc(stats.clone(), req));
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve(port: u16, grpc_port: Option<u16>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let stats = Arc::new(Stats::default());
    if let Some(grpc_port) = grpc_port {
        let grpc = tokio::net::TcpListener::bind(("127.0.0.1", grpc_port)).await?;
        tokio::spawn(serve_grpc(grpc, stats.clone()));
    }
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
