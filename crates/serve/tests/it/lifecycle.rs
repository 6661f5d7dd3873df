//! Start, readiness, shutdown, and a missing or corrupt model.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::helpers::{
    OtlpReceiver, Server, eventually, read_response, request, small_model, start_fails_with,
};

#[test]
fn health_endpoints_describe_the_model() {
    let server = Server::start(&[], &[]);
    assert_eq!(request(server.addr, "GET", "/livez", &[], b"").status, 200);
    assert_eq!(request(server.addr, "GET", "/readyz", &[], b"").status, 200);
    for path in ["/healthz", "/"] {
        let v = request(server.addr, "GET", path, &[], b"").json();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["model"]["categories"].as_array().map(Vec::len), Some(4));
        assert!(
            v["model"]["model_version"]
                .as_str()
                .is_some_and(|s| s.len() == 12)
        );
    }
}

#[test]
fn sigterm_fails_readiness_at_once_finishes_in_flight_work_and_exits_0() {
    let mut server = Server::start(&["--drain-delay", "2s"], &[]);
    let mut in_flight = TcpStream::connect(server.addr).expect("connect");
    in_flight
        .write_all(b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 27\r\n\r\nthe goalie ")
        .expect("send half");
    server.wait_for_log(|l| l["message"] == "listening");
    // Make sure the half-sent request is in the server before the signal.
    server.wait_for_active("/predict", 1.0);
    server.terminate();
    let readiness = || request(server.addr, "GET", "/readyz", &[], b"").status;
    eventually(
        Duration::from_secs(2),
        || (readiness() == 503).then_some(()),
        || format!("readiness still {} after SIGTERM", readiness()),
    );
    assert_eq!(
        request(server.addr, "GET", "/livez", &[], b"").status,
        200,
        "alive while draining"
    );
    in_flight
        .write_all(b"stopped the puck")
        .expect("send the rest");
    let r = read_response(&mut in_flight);
    assert_eq!(r.status, 200, "in-flight request finished: {}", r.body);
    assert_eq!(r.json()["result"], "rec.sport.hockey");
    let (status, _) = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

fn start_fails(model: &std::path::Path) -> String {
    start_fails_with(model, &[])
}

#[test]
fn a_missing_model_exits_non_zero_with_one_line() {
    let stderr = start_fails(std::path::Path::new("/nonexistent/model.bin"));
    assert!(
        stderr.contains("/nonexistent/model.bin") && stderr.contains("train"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_model_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(small_model()).expect("read model");
    let truncated = dir.path().join("truncated.bin");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    assert!(start_fails(&truncated).contains("truncated"));
    let foreign = dir.path().join("foreign.bin");
    std::fs::write(&foreign, b"{\"not\": \"a model\"}").expect("write");
    assert!(start_fails(&foreign).contains("not a model file"));
}

#[test]
fn an_unsupported_otlp_compression_exits_non_zero_with_one_line() {
    let stderr = start_fails_with(
        small_model(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
        ],
    );
    assert!(
        stderr.contains("\"zstd\"") && stderr.contains("use gzip or none"),
        "{stderr}"
    );
}

#[test]
fn an_otlp_endpoint_that_is_not_an_http_url_exits_non_zero_with_one_line() {
    // A gRPC `host:port` without a scheme is allowed (TLS unless ..._INSECURE is true, see
    // tls.rs); for OTLP/HTTP it is not a URL.
    for (protocol, endpoint) in [
        ("http/protobuf", "localhost:4318"),
        ("http/protobuf", "ftp://collector:4318"),
        ("http/protobuf", "http://"),
        ("grpc", "ftp://collector:4317"),
        ("grpc", "http://"),
    ] {
        let stderr = start_fails_with(
            small_model(),
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ],
        );
        assert!(
            stderr.contains(&format!("{endpoint:?}")) && stderr.contains("write a URL"),
            "{protocol} {endpoint}: {stderr}"
        );
    }
}

#[test]
fn an_export_header_the_exporter_would_drop_exits_non_zero_without_showing_it() {
    for protocol in ["http/protobuf", "grpc"] {
        for (variable, headers) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,Bearer s3cret"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=s3cret%"),
        ] {
            let stderr = start_fails_with(
                small_model(),
                &[
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                    (variable, headers),
                ],
            );
            assert!(
                stderr.contains(&format!("{variable}: entry")) && stderr.contains("key=value"),
                "{protocol} {variable}: {stderr}"
            );
            assert!(!stderr.contains("s3cret"), "shows the value: {stderr}");
        }
    }
}

#[test]
fn a_batch_or_timeout_variable_that_is_not_a_number_exits_non_zero_with_one_line() {
    for (variable, value) in [
        ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
    ] {
        let stderr = start_fails_with(
            small_model(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                (variable, value),
            ],
        );
        assert!(
            stderr.contains(&format!("{variable} {value:?}")) && stderr.contains("milliseconds"),
            "{variable}: {stderr}"
        );
    }
}

#[test]
fn a_resource_attribute_entry_that_is_not_key_value_is_warned_about_and_left_out() {
    let receiver = OtlpReceiver::start();
    // As Kubernetes leaves a reference to an undefined variable.
    let (server, trace_id) = receiver.serve_one(
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "$(OTEL_RESOURCE_ATTRIBUTES),k8s.pod.name=web-1",
        )],
        b"the goalie made a save",
    );
    let line = server.wait_for_log(|l| l["level"] == "WARN");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"$(OTEL_RESOURCE_ATTRIBUTES)\" is not key=value"),
        "{line}"
    );
    receiver.wait_for_trace(&trace_id, 5);
    let spans = receiver.spans.lock().expect("lock").clone();
    let (resource, _) = &spans[0];
    let pod = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "k8s.pod.name");
    assert!(pod.is_some(), "the valid entries are kept: {resource:?}");
}

#[test]
fn an_unknown_traces_exporter_exits_non_zero_with_one_line() {
    let stderr = start_fails_with(small_model(), &[("OTEL_TRACES_EXPORTER", "console")]);
    assert!(
        stderr.contains("\"console\"") && stderr.contains("OTEL_TRACES_EXPORTER"),
        "{stderr}"
    );
}

#[test]
fn a_mistyped_sampler_or_ratio_exits_non_zero_with_one_line() {
    let stderr = start_fails_with(small_model(), &[("OTEL_TRACES_SAMPLER", "always_of")]);
    assert!(
        stderr.contains("\"always_of\"") && stderr.contains("parentbased_traceidratio"),
        "{stderr}"
    );
    let stderr = start_fails_with(
        small_model(),
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "10%"),
        ],
    );
    assert!(
        stderr.contains("\"10%\"") && stderr.contains("from 0 to 1"),
        "{stderr}"
    );
}

#[test]
fn the_start_line_names_the_sampler_in_use() {
    let server = Server::start(
        &[],
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ],
    );
    let line = server.wait_for_log(|l| l["message"] == "listening");
    assert_eq!(line["sampler"], "ParentBased(TraceIdRatioBased(0.25))");
}

#[test]
fn an_endpoint_on_the_other_protocols_standard_port_is_warned_about_at_start() {
    for (protocol, endpoint, advice) in [
        ("grpc", "http://127.0.0.1:4318", "use port 4317"),
        ("http/protobuf", "http://127.0.0.1:4317", "use port 4318"),
    ] {
        let server = Server::start(
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ],
        );
        let line = server.wait_for_log(|l| l["level"] == "WARN");
        let message = line["message"].as_str().unwrap_or_default();
        assert!(message.contains(advice), "{protocol}: {line}");
        assert_eq!(line["endpoint"], endpoint);
        // A warning, not a refusal: the port may be right for this collector.
        let response = request(
            server.addr,
            "POST",
            "/predict",
            &[],
            b"the goalie made a save",
        );
        assert_eq!(response.status, 200, "{protocol}");
    }
    let server = Server::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "false"),
        ],
    );
    let listening = server.wait_for_log(|l| l["message"] == "listening");
    assert_eq!(
        listening["trace_export"],
        "OTLP http/protobuf to http://127.0.0.1:4318, compression none"
    );
    let warnings: Vec<_> = server
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert!(
        warnings.is_empty(),
        "no warning on the right port: {warnings:?}"
    );
}

#[test]
fn otel_sdk_disabled_set_to_neither_true_nor_false_is_warned_about() {
    let server = Server::start(&[], &[("OTEL_SDK_DISABLED", "1")]);
    let line = server.wait_for_log(|l| l["level"] == "WARN");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("OTEL_SDK_DISABLED=\"1\""), "{line}");
    // Taken as false, as the specification says: requests still get trace ids.
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[],
        b"the goalie made a save",
    );
    assert!(r.header("x-trace-id").is_some(), "{:?}", r.status);
}

#[test]
fn a_rust_log_that_does_not_parse_is_warned_about_and_the_default_filter_used() {
    let server = Server::start(&[], &[("RUST_LOG", "serve=[")]);
    let line = server.wait_for_log(|l| l["level"] == "WARN");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("RUST_LOG \"serve=[\"") && message.contains("default filter"),
        "{line}"
    );
    // The default, info, still writes the start line and the access lines.
    server.wait_for_log(|l| l["message"] == "listening");
    let r = request(server.addr, "GET", "/livez", &[], b"");
    assert_eq!(r.status, 200);
    server.wait_for_log(|l| l["message"] == "request served");
}

#[test]
fn help_explains_the_flags_and_the_tracing_variables() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .arg("--help")
        .output()
        .expect("run serve --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "--max-body-bytes",
        "[env: MAX_BODY_BYTES=]",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_INSECURE",
        "OTEL_TRACES_SAMPLER[_ARG]",
        "OTEL_PROPAGATORS",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}
