//! Span export to collectors behind TLS, configured by the standard variables: a private CA
//! (`OTEL_EXPORTER_OTLP_CERTIFICATE`), a client certificate (`..._CLIENT_CERTIFICATE`,
//! `..._CLIENT_KEY`), over both OTLP protocols; each receiver is a real TLS server on loopback
//! with certificates made for the test.

use crate::helpers::{OtlpReceiver, Server, TestPki, request, small_model, start_fails_with};

const DOC: &[u8] = b"the goalie stopped the puck";

/// A TLS receiver of this OTLP protocol.
fn tls_receiver(protocol: &str, config: std::sync::Arc<rustls::ServerConfig>) -> OtlpReceiver {
    match protocol {
        "grpc" => OtlpReceiver::start_grpc_tls(config),
        _ => OtlpReceiver::start_tls(config),
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The first "span export failed" warning (waited for, bounded) and its `error` field.
fn export_failure(server: &Server) -> String {
    let warning = server.wait_for_log(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("span export failed"))
    });
    assert_eq!(warning["level"], "WARN", "{warning}");
    warning["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn spans_reach_an_https_collector_whose_ca_is_in_otel_exporter_otlp_certificate() {
    let pki = TestPki::new();
    for protocol in ["http/protobuf", "grpc"] {
        let receiver = tls_receiver(protocol, pki.server_config(false));
        assert!(receiver.endpoint.starts_with("https://"));
        let (_server, trace_id) = receiver.serve_one(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
            ],
            DOC,
        );
        assert_eq!(receiver.wait_for_trace(&trace_id, 5).len(), 5, "{protocol}");
    }
}

#[test]
fn a_collector_whose_certificate_is_not_trusted_gets_nothing_and_requests_still_succeed() {
    let pki = TestPki::new();
    let receiver = OtlpReceiver::start_tls(pki.server_config(false));
    // No OTEL_EXPORTER_OTLP_CERTIFICATE: the test CA is in no trust store.
    let (server, _) = receiver.serve_one(&[], DOC);
    let error = export_failure(&server);
    assert!(error.contains("certificate"), "the cause is named: {error}");
    let again = request(server.addr, "POST", "/predict", &[], b"my car engine");
    assert_eq!(again.status, 200);
    assert!(receiver.spans.lock().expect("lock").is_empty());
}

#[test]
fn a_collector_that_requires_a_client_certificate_gets_the_configured_one() {
    let pki = TestPki::new();
    for protocol in ["http/protobuf", "grpc"] {
        let receiver = tls_receiver(protocol, pki.server_config(true));
        let (_server, trace_id) = receiver.serve_one(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", path(&pki.ca)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    path(&pki.client_cert),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pki.client_key)),
            ],
            DOC,
        );
        assert_eq!(receiver.wait_for_trace(&trace_id, 5).len(), 5, "{protocol}");
    }
    // Without the client certificate the same collector refuses the connection.
    let receiver = OtlpReceiver::start_tls(pki.server_config(true));
    let (server, _) = receiver.serve_one(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca))], DOC);
    export_failure(&server);
    assert!(receiver.spans.lock().expect("lock").is_empty());
}

#[test]
fn tls_files_that_cannot_be_used_stop_the_start_with_one_line() {
    let pki = TestPki::new();
    let (cert, key) = (path(&pki.client_cert), path(&pki.client_key));
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")],
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)],
            "needs both",
        ),
        // The key where the certificate belongs.
        (
            &[
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", key),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
            ],
            "no PEM certificate",
        ),
    ];
    for protocol in ["http/protobuf", "grpc"] {
        for (tls_env, reason) in cases {
            let mut env = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ];
            env.extend_from_slice(tls_env);
            let stderr = start_fails_with(small_model(), &env);
            assert!(stderr.contains(reason), "{protocol} {tls_env:?}: {stderr}");
        }
    }
}

#[test]
fn a_grpc_endpoint_without_a_scheme_uses_tls_unless_otel_exporter_otlp_insecure_is_true() {
    let pki = TestPki::new();
    let tls = OtlpReceiver::start_grpc_tls(pki.server_config(false));
    let plain = OtlpReceiver::start_grpc();
    let cases = [
        (
            &tls,
            "https://",
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca))],
        ),
        (
            &plain,
            "http://",
            vec![("OTEL_EXPORTER_OTLP_INSECURE", "true")],
        ),
        // The signal's own variable wins over the generic one.
        (
            &plain,
            "http://",
            vec![
                ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
                ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
            ],
        ),
    ];
    for (receiver, scheme, extra) in cases {
        let host_port = receiver.endpoint.strip_prefix(scheme).expect("scheme");
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", host_port),
        ];
        env.extend(extra);
        let (server, trace_id) = receiver.serve_one(&env, DOC);
        assert_eq!(receiver.wait_for_trace(&trace_id, 5).len(), 5, "{env:?}");
        let listening = server.wait_for_log(|l| l["message"] == "listening");
        assert_eq!(
            listening["trace_export"],
            format!("OTLP grpc to {scheme}{host_port}, compression none").as_str(),
            "the start line names the URL dialled"
        );
        assert!(
            !server.logs().iter().any(|l| l["level"] == "WARN"),
            "{env:?}: {:?}",
            server.logs()
        );
    }
}

#[test]
fn otel_exporter_otlp_insecure_contradicting_the_endpoints_scheme_is_warned_about() {
    let pki = TestPki::new();
    let receiver = OtlpReceiver::start_grpc_tls(pki.server_config(false));
    let (server, trace_id) = receiver.serve_one(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ],
        DOC,
    );
    let warning = server.wait_for_log(|l| l["level"] == "WARN");
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("OTEL_EXPORTER_OTLP_INSECURE=true is ignored") && message.contains("TLS"),
        "{warning}"
    );
    // The scheme decides: spans still go over TLS.
    assert_eq!(receiver.wait_for_trace(&trace_id, 5).len(), 5);
}
