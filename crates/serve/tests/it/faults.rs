//! Slow clients, overload, and a collector that is down or black-holed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::{Server, black_hole, closed_port, read_response, request};

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = Server::start(&["--header-timeout", "300ms"], &[]);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let result = stream.read_to_end(&mut buf);
    assert!(
        result.is_ok(),
        "the server never closed the connection: {result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "closed by the header timeout, not the test's"
    );
    assert!(
        request(server.addr, "GET", "/livez", &[], b"").status == 200,
        "still serving"
    );
}

#[test]
fn a_body_that_never_arrives_gets_408() {
    let server = Server::start(&["--request-timeout", "300ms"], &[]);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\ncar")
        .expect("send");
    let r = read_response(&mut stream);
    assert_eq!(r.status, 408);
    assert_eq!(r.json()["error"], "timeout");
}

#[test]
fn overload_gets_503_with_retry_after_instead_of_a_queue() {
    let server = Server::start(&["--max-concurrency", "1", "--request-timeout", "20s"], &[]);
    // A holds the only slot: headers sent, body still coming.
    let mut a = TcpStream::connect(server.addr).expect("connect");
    a.write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20\r\n\r\nthe goalie ").expect("send");
    // Only once A is in its handler (it owns the slot) may B come, or B could take it first.
    server.wait_for_active("/predict", 1.0);
    let rejected = request(server.addr, "POST", "/predict", &[], b"my car");
    assert_eq!(rejected.status, 503, "{}", rejected.body);
    assert_eq!(rejected.header("retry-after"), Some("1"));
    assert_eq!(rejected.json()["error"], "overloaded");
    a.write_all(b"the puck.").expect("finish body");
    let r = read_response(&mut a);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = server.metrics();
    assert!(
        m.value(
            "http_server_errors_total",
            &[
                ("http_route", "/predict"),
                ("status_class", "5xx"),
                ("reason", "overloaded")
            ]
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert_eq!(
        request(server.addr, "POST", "/predict", &[], b"my car").status,
        200,
        "slot released"
    );
}

/// `reason`: what the export failure's log line must say of the cause.
fn collector_down(protocol: &str, endpoint: &str, reason: &str) {
    let mut server = Server::start(
        &["--worker-threads", "1", "--telemetry-flush-timeout", "2s"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
        ],
    );
    for i in 0..50 {
        let r = request(
            server.addr,
            "POST",
            "/predict",
            &[],
            b"the goalie stopped the puck",
        );
        assert_eq!(
            r.status, 200,
            "request {i} with the collector down ({protocol} {endpoint})"
        );
    }
    // The failure is told once, with its reason, not once per batch.
    let is_export_failure = |l: &serde_json::Value| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("span export failed"))
    };
    let warning = server.wait_for_log(is_export_failure);
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        warning["error"]
            .as_str()
            .is_some_and(|e| e.contains(reason)),
        "the cause ({reason}) is named: {warning}"
    );
    assert!(
        warning["spans_lost"].as_u64().is_some_and(|n| n > 0),
        "{warning}"
    );
    server.terminate();
    let (status, took) = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    let warnings = server
        .logs()
        .into_iter()
        .filter(|l| is_export_failure(l))
        .count();
    assert_eq!(warnings, 1, "{:?}", server.raw_logs());
}

#[test]
fn collector_on_a_closed_port_changes_nothing_http() {
    collector_down(
        "http/protobuf",
        &format!("http://127.0.0.1:{}", closed_port()),
        "Connection refused",
    );
}

#[test]
fn collector_on_a_closed_port_changes_nothing_grpc_one_worker() {
    collector_down(
        "grpc",
        &format!("http://127.0.0.1:{}", closed_port()),
        "Connection refused",
    );
}

#[test]
fn black_holed_collector_changes_nothing_http() {
    let (endpoint, _hold) = black_hole();
    collector_down("http/protobuf", &endpoint, "");
}

#[test]
fn black_holed_collector_changes_nothing_grpc_one_worker() {
    let (endpoint, _hold) = black_hole();
    collector_down("grpc", &endpoint, "");
}

#[test]
fn a_full_export_queue_drops_and_counts_spans() {
    let (endpoint, _hold) = black_hole();
    let server = Server::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4"),
        ],
    );
    for _ in 0..10 {
        assert_eq!(
            request(server.addr, "POST", "/predict", &[], b"car").status,
            200
        );
    }
    // 10 requests make 50 spans; a queue of 8 behind a stuck exporter cannot hold them.
    let dropped = server
        .metrics()
        .value("otel_spans_dropped_total", &[])
        .unwrap_or(0.0);
    assert!(dropped >= 30.0, "dropped {dropped}");
}
