//! Spans reach an OTLP/HTTP receiver with the right shape, and the same trace id is in the
//! response headers and the request's log line.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::helpers::{OtlpReceiver, Server, attr, hex, request};

fn server_with_receiver() -> (Server, OtlpReceiver) {
    let receiver = OtlpReceiver::start();
    (receiver.server(&[]), receiver)
}

#[test]
fn a_request_is_one_server_span_with_four_step_children_in_the_callers_trace() {
    let (server, receiver) = server_with_receiver();
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("traceparent", traceparent.as_str())],
        b"the goalie stopped the puck",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-trace-id"), Some(caller_trace));

    let spans = receiver.wait_for_trace(caller_trace, 5);
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1);
    let root = servers[0];
    assert_eq!(root.name, "POST /predict");
    assert_eq!(
        hex(&root.parent_span_id),
        caller_span,
        "joins the caller's span"
    );
    assert_eq!(attr(root, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(root, "http.route").as_deref(), Some("/predict"));
    assert_eq!(attr(root, "url.path").as_deref(), Some("/predict"));
    assert_eq!(
        attr(root, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        root.events.is_empty(),
        "the access line of a served request is a log line, not a span event: {:?}",
        root.events
    );
    let root_id = hex(&root.span_id);
    let traceresponse = r.header("traceresponse").expect("traceresponse");
    assert_eq!(traceresponse, format!("00-{caller_trace}-{root_id}-01"));

    let mut steps: Vec<_> = spans
        .iter()
        .filter(|s| s.kind != SpanKind::Server as i32)
        .collect();
    steps.sort_by_key(|s| s.start_time_unix_nano);
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tokenize", "vectorize", "weigh", "predict"]);
    for s in &steps {
        assert_eq!(
            hex(&s.parent_span_id),
            root_id,
            "{} is a child of the server span",
            s.name
        );
    }
    assert_eq!(attr(steps[0], "document.tokens").as_deref(), Some("5"));
    assert_eq!(
        attr(steps[3], "model.label").as_deref(),
        Some("rec.sport.hockey")
    );
    assert!(attr(steps[1], "document.oov_ratio").is_some());

    let line = server.wait_for_log(|l| l["trace_id"] == caller_trace);
    assert_eq!(
        line["span_id"],
        root_id.as_str(),
        "the log line names the exported server span"
    );
    assert_eq!(line["http.response.status_code"], 200);
    assert_eq!(line["message"], "request served");
    assert_eq!(line["http.route"], "/predict");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );

    let service = resource_attr(&receiver, "service.name");
    assert!(service.contains("doc-classifier"), "{service}");
}

#[test]
fn without_or_with_a_malformed_traceparent_a_new_trace_starts() {
    let (server, receiver) = server_with_receiver();
    for traceparent in [
        None,
        Some("00-not-a-trace-01"),
        Some("garbage"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ] {
        let headers: Vec<(&str, &str)> = traceparent
            .map(|t| ("traceparent", t))
            .into_iter()
            .collect();
        let r = request(server.addr, "POST", "/predict", &headers, b"my car engine");
        assert_eq!(r.status, 200, "{traceparent:?}");
        let trace_id = r.header("x-trace-id").expect("trace id").to_owned();
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
        let spans = receiver.wait_for_trace(&trace_id, 5);
        let root = spans
            .iter()
            .find(|s| s.kind == SpanKind::Server as i32)
            .expect("server span");
        assert!(
            root.parent_span_id.is_empty(),
            "{traceparent:?}: a new root"
        );
    }
}

#[test]
fn error_responses_are_traced_and_marked() {
    let (server, receiver) = server_with_receiver();
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("Content-Type", "application/json")],
        b"{oops",
    );
    assert_eq!(r.status, 400);
    let trace_id = r.header("x-trace-id").expect("trace id");
    let spans = receiver.wait_for_trace(trace_id, 1);
    assert_eq!(
        attr(&spans[0], "http.response.status_code").as_deref(),
        Some("400")
    );
    assert_eq!(attr(&spans[0], "error.type").as_deref(), Some("bad_input"));
    let events: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        ["request rejected"],
        "a warning is also a span event"
    );
}

/// The resource attribute `key` of the spans received, as its debug text.
fn resource_attr(receiver: &OtlpReceiver, key: &str) -> String {
    let (resource, _) = receiver.spans.lock().expect("lock")[0].clone();
    let value = resource
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone());
    format!("{value:?}")
}

#[test]
fn the_standard_variables_set_the_service_the_resource_and_the_export_headers() {
    let receiver = OtlpReceiver::start();
    let server = receiver.server(&[
        ("OTEL_SERVICE_NAME", "classifier-canary"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-tenant=acme, authorization=Basic%20dXNlcjpwdw%3D%3D",
        ),
    ]);
    let r = request(server.addr, "POST", "/predict", &[], b"my bike needs tyres");
    receiver.wait_for_trace(r.header("x-trace-id").expect("trace id"), 5);
    assert!(resource_attr(&receiver, "service.name").contains("classifier-canary"));
    assert!(resource_attr(&receiver, "deployment.environment.name").contains("staging"));
    let headers = receiver.headers.lock().expect("lock").clone();
    assert!(headers.iter().any(|h| h == "x-tenant: acme"), "{headers:?}");
    // Values are percent-decoded, as the specification says.
    assert!(
        headers
            .iter()
            .any(|h| h == "authorization: Basic dXNlcjpwdw=="),
        "{headers:?}"
    );
}

#[test]
fn otel_service_name_wins_over_the_attribute_and_attribute_values_are_decoded() {
    let receiver = OtlpReceiver::start();
    let (_server, trace_id) = receiver.serve_one(
        &[
            ("OTEL_SERVICE_NAME", "classifier-canary"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,team=search%20and%20ads",
            ),
        ],
        b"the engine needs a new clutch",
    );
    receiver.wait_for_trace(&trace_id, 5);
    assert!(resource_attr(&receiver, "service.name").contains("\"classifier-canary\""));
    assert!(resource_attr(&receiver, "team").contains("\"search and ads\""));
}

#[test]
fn otel_propagators_decides_whether_a_callers_trace_is_joined() {
    let caller = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{caller}-b7ad6b7169203331-01");
    // (OTEL_PROPAGATORS, traceparent joined, named in a warning, read as the listening line says)
    for (propagators, joins, warned_of, read) in [
        ("", true, None, "tracecontext"),
        ("none", false, None, "none"),
        (
            "tracecontext,datadog",
            true,
            Some("datadog"),
            "tracecontext",
        ),
        ("xray,ottrace", false, None, "xray,ottrace"),
        ("b3multi,jaeger", false, None, "b3,jaeger"),
        // A name nobody implements (a typo here) is warned about; the server still starts.
        ("tracecontex", false, Some("tracecontex"), "none"),
    ] {
        let server = Server::start(&[], &[("OTEL_PROPAGATORS", propagators)]);
        let listening = server.wait_for_log(|l| l["message"] == "listening");
        assert_eq!(listening["propagators"], read, "{propagators:?}");
        let r = request(
            server.addr,
            "POST",
            "/predict",
            &[("traceparent", traceparent.as_str())],
            b"the pitcher threw a slider",
        );
        assert_eq!(r.status, 200);
        let trace_id = r.header("x-trace-id").expect("trace id");
        assert_eq!(trace_id == caller, joins, "{propagators:?}: {trace_id}");
        let warning = server.logs().into_iter().find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("OTEL_PROPAGATORS"))
        });
        let named = warning
            .as_ref()
            .and_then(|l| l["unsupported"].as_str().map(str::to_owned));
        assert_eq!(named.as_deref(), warned_of, "{propagators:?}");
    }
}

#[test]
fn b3_jaeger_xray_and_ottrace_callers_join_their_trace_when_listed_and_an_open_decision_is_the_samplers()
 {
    let receiver = OtlpReceiver::start();
    // The default sampler, parentbased_always_on: a caller's decision is followed, and a new
    // trace (or a caller's open decision) is sampled.
    let mut server = receiver.server(&[("OTEL_PROPAGATORS", "b3multi,jaeger,xray,ottrace")]);
    let caller_span = "00f067aa0ba902b7";
    let b3_single = "463ac35c9f6413ad48485a3953bb6124";
    let b3_denied = "1e0b3bd4bcf57c5d0b0bb1ba0bd3e6a1";
    let b3_open = "5b8aa5a2d2c872e8321cf37308d69df2";
    let jaeger = "0af7651916cd43dd8448eb211c80319c";
    let w3c = "4bf92f3577b34da6a3ce929d0e0e4736";
    let xray = "5759e988bd862e3fe1be46a994272793";
    let xray_open = "6e0c63257de34c92bf9efcd03927272e";
    let ot_short = "a3ce929d0e0e4736";
    let ot = format!("{:0>32}", ot_short);
    let b3 = format!("{b3_single}-{caller_span}-1");
    // As an AWS load balancer passes it on: its own Self field first.
    let amzn = format!(
        "Self=1-67891233-abcdef012345678912345678;Root=1-{}-{};Parent={caller_span};Sampled=1",
        &xray[..8],
        &xray[8..]
    );
    let amzn_open = format!(
        "Root=1-{}-{};Parent={caller_span};Sampled=?",
        &xray_open[..8],
        &xray_open[8..]
    );
    let uber = format!("{jaeger}:{caller_span}:0:1");
    let traceparent = format!("00-{w3c}-{caller_span}-01");
    // (request headers, the trace id answered if it is the caller's, sampled)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, bool);
    let cases: [Case; 8] = [
        (&[("b3", &b3)], Some(b3_single), true),
        (
            &[
                ("X-B3-TraceId", b3_denied),
                ("X-B3-SpanId", caller_span),
                ("X-B3-Sampled", "0"),
            ],
            Some(b3_denied),
            false,
        ),
        // No X-B3-Sampled: the caller leaves the decision to this server's sampler.
        (
            &[("X-B3-TraceId", b3_open), ("X-B3-SpanId", caller_span)],
            Some(b3_open),
            true,
        ),
        (&[("uber-trace-id", &uber)], Some(jaeger), true),
        (&[("X-Amzn-Trace-Id", &amzn)], Some(xray), true),
        // Sampled=?: deferred to this server's sampler.
        (&[("X-Amzn-Trace-Id", &amzn_open)], Some(xray_open), true),
        (
            &[
                ("ot-tracer-traceid", ot_short),
                ("ot-tracer-spanid", caller_span),
                ("ot-tracer-sampled", "true"),
            ],
            Some(&ot),
            true,
        ),
        // tracecontext is not listed: a new trace.
        (&[("traceparent", &traceparent)], None, true),
    ];
    let mut own_trace = String::new();
    for (headers, trace, sampled) in cases {
        let r = request(server.addr, "POST", "/predict", headers, b"a faster bike");
        assert_eq!(r.status, 200, "{headers:?}");
        let got = r.header("x-trace-id").expect("trace id");
        match trace {
            Some(trace) => assert_eq!(got, trace, "{headers:?}"),
            None => {
                assert_ne!(got, w3c, "{headers:?}");
                own_trace = got.to_owned();
            }
        }
        let flags = r.header("traceresponse").expect("traceresponse");
        assert_eq!(flags.ends_with("-01"), sampled, "{headers:?}: {flags}");
    }
    server.terminate();
    let (status, _) = server.wait_exit(std::time::Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let spans = receiver.spans.lock().expect("lock").clone();
    for (trace, parent) in [
        (b3_single, caller_span),
        (b3_open, caller_span),
        (jaeger, caller_span),
        (xray, caller_span),
        (xray_open, caller_span),
        (ot.as_str(), caller_span),
        (own_trace.as_str(), ""),
    ] {
        let of_trace: Vec<_> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| hex(&s.trace_id) == trace)
            .collect();
        assert_eq!(of_trace.len(), 5, "{trace}: {of_trace:#?}");
        let root = of_trace
            .iter()
            .find(|s| s.kind == SpanKind::Server as i32)
            .expect("a server span");
        assert_eq!(hex(&root.parent_span_id), parent, "{trace}");
        assert_ne!(hex(&root.span_id), caller_span, "a span id of its own");
    }
    assert_eq!(
        spans.len(),
        35,
        "nothing of the trace whose caller said not sampled"
    );
}

#[test]
fn the_generic_endpoint_gets_v1_traces_appended_and_the_traces_endpoint_is_used_as_is() {
    let receiver = OtlpReceiver::start();
    let base = receiver.endpoint.clone();
    let cases = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", base.clone(), "/v1/traces"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{base}/"),
            "/v1/traces",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{base}/otlp"),
            "/otlp/v1/traces",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{base}/ingest/spans"),
            "/ingest/spans",
        ),
    ];
    for (variable, endpoint, path) in cases.into_iter().chain([(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!("{base}/"),
        "/",
    )]) {
        receiver.headers.lock().expect("lock").clear();
        // serve_one sets the generic endpoint first (the receiver, no path): the value here
        // replaces it, or for the signal-specific variable has to win over it.
        let (server, trace_id) = receiver.serve_one(
            &[(variable, endpoint.as_str())],
            b"the pitcher threw a curveball",
        );
        receiver.wait_for_trace(&trace_id, 5);
        let paths: Vec<String> = receiver
            .headers
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|h| h.strip_prefix(":path: ").map(str::to_owned))
            .collect();
        assert!(
            !paths.is_empty() && paths.iter().all(|p| p == path),
            "{variable}={endpoint}: {paths:?}"
        );
        // Only a traces endpoint without a path is warned about: collectors answer 404 there.
        let warned = server.logs().iter().any(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("has no path"))
        });
        assert_eq!(warned, path == "/", "{variable}={endpoint}");
    }
}

#[test]
fn the_sampler_variables_decide_what_is_exported_and_a_sampled_caller_is_followed() {
    let receiver = OtlpReceiver::start();
    let mut server = Server::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    // A new trace, sampled at ratio 0: named in the response, flagged not sampled, not exported.
    let own = request(
        server.addr,
        "POST",
        "/predict",
        &[],
        b"the umpire called it",
    );
    assert_eq!(own.status, 200);
    let own_trace = own.header("x-trace-id").expect("trace id").to_owned();
    let traceresponse = own.header("traceresponse").expect("traceresponse");
    assert!(traceresponse.ends_with("-00"), "{traceresponse}");
    // A caller's sampled trace is followed whatever the ratio.
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{caller_trace}-b7ad6b7169203331-01");
    let joined = request(
        server.addr,
        "POST",
        "/predict",
        &[("traceparent", traceparent.as_str())],
        b"the umpire called it again",
    );
    assert_eq!(joined.status, 200);
    // Shutdown flushes whatever is queued, so after it the receiver has all it will get.
    server.terminate();
    let (status, _) = server.wait_exit(std::time::Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let spans = receiver.spans.lock().expect("lock").clone();
    let traces: Vec<String> = spans.iter().map(|(_, s)| hex(&s.trace_id)).collect();
    assert_eq!(traces.len(), 5, "{traces:?}");
    assert!(traces.iter().all(|t| t == caller_trace), "{traces:?}");
    assert!(!traces.contains(&own_trace));
}

/// Serves one request with the spans exported to `receiver` under `env`; returns the encodings
/// the receiver saw once the request's five spans arrived (it decodes gzip, so a plain body
/// declared as gzip would never arrive).
fn export_encodings(receiver: &OtlpReceiver, env: &[(&str, &str)]) -> Vec<String> {
    let (_server, trace_id) = receiver.serve_one(env, b"a new clutch for my car");
    assert_eq!(receiver.wait_for_trace(&trace_id, 5).len(), 5, "{env:?}");
    receiver.encodings.lock().expect("lock").clone()
}

#[test]
fn otel_exporter_otlp_compression_gzip_compresses_the_export() {
    let receiver = OtlpReceiver::start();
    let encodings = export_encodings(&receiver, &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]);
    assert!(encodings.iter().all(|e| e == "gzip"), "{encodings:?}");
}

#[test]
fn exports_are_uncompressed_by_default() {
    let receiver = OtlpReceiver::start();
    let encodings = export_encodings(&receiver, &[]);
    assert!(encodings.iter().all(|e| e == "identity"), "{encodings:?}");
}

#[test]
fn grpc_export_delivers_the_spans_gzip_compressed_when_asked() {
    for (compression, expected) in [("none", "identity"), ("gzip", "gzip")] {
        let receiver = OtlpReceiver::start_grpc();
        let encodings = export_encodings(
            &receiver,
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", compression),
            ],
        );
        assert!(
            encodings.iter().all(|e| e == expected),
            "{compression}: {encodings:?}"
        );
    }
}

#[test]
fn grpc_export_sends_the_export_headers_as_metadata() {
    let receiver = OtlpReceiver::start_grpc();
    let (_server, trace_id) = receiver.serve_one(
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-tenant=acme,authorization=Bearer%20t0ken",
            ),
        ],
        b"the goalie stopped the puck",
    );
    receiver.wait_for_trace(&trace_id, 5);
    let headers = receiver.headers.lock().expect("lock").clone();
    for expected in ["x-tenant: acme", "authorization: Bearer t0ken"] {
        assert!(
            headers.iter().any(|h| h == expected),
            "{expected}: {headers:?}"
        );
    }
}

#[test]
fn rust_log_decides_whether_access_lines_are_written() {
    // Start-up lines (target `serve`) stay on: the helper waits for "listening".
    let server = Server::start(&[], &[("RUST_LOG", "info,serve::app=warn")]);
    let served = request(server.addr, "POST", "/predict", &[], b"my car engine");
    assert_eq!(served.status, 200);
    let rejected = request(server.addr, "POST", "/predict", &[], b"");
    assert_eq!(rejected.status, 400);
    let rejected_trace = rejected.header("x-trace-id").expect("trace id").to_owned();
    // The warning is written after the served line would have been: once it is there, the
    // served line is known to be absent, not late.
    let warning = server.wait_for_log(|l| l["trace_id"] == rejected_trace.as_str());
    assert_eq!(warning["message"], "request rejected");
    let served_trace = served.header("x-trace-id").expect("trace id");
    assert!(
        server.logs_of_trace(served_trace).is_empty(),
        "serve::app=warn: no access line for a served request"
    );
}

#[test]
fn spans_a_collector_rejects_in_a_partial_success_are_counted_failed_and_warned_about() {
    for (protocol, receiver) in [
        (
            "http/protobuf",
            OtlpReceiver::start_rejecting(2, "spans too old"),
        ),
        (
            "grpc",
            OtlpReceiver::start_grpc_rejecting(2, "spans too old"),
        ),
    ] {
        let (server, trace_id) = receiver.serve_one(
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)],
            b"the shortstop fielded the ball",
        );
        receiver.wait_for_trace(&trace_id, 5);
        let line = server.wait_for_log(|l| l["level"] == "WARN");
        assert_eq!(line["spans_rejected"], 2, "{protocol}: {line}");
        assert_eq!(
            line["collector_message"], "spans too old",
            "{protocol}: {line}"
        );
        let metrics = server.metrics();
        assert_eq!(
            metrics.value("otel_spans_failed_total", &[]),
            Some(2.0),
            "{protocol}"
        );
        assert_eq!(
            metrics.value("otel_spans_exported_total", &[]),
            Some(3.0),
            "{protocol}"
        );
    }
}

#[test]
fn a_grpc_collector_that_refuses_the_export_is_named_in_the_warning_after_retrying_only_what_is_transient()
 {
    // UNAVAILABLE is transient: 3 retries, the last failure reported.
    for (status, code, advice, calls) in [
        ("16", "Unauthenticated", "OTEL_EXPORTER_OTLP_HEADERS", 1),
        ("12", "Unimplemented", "4318", 1),
        ("14", "Unavailable", "", 4),
    ] {
        let receiver = OtlpReceiver::start_grpc_refusing(status);
        let (server, _) = receiver.serve_one(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], b"a save");
        let line = server.wait_for_log(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("span export failed"))
        });
        let error = line["error"].as_str().unwrap_or_default();
        let target = format!(
            "gRPC call {}/opentelemetry.proto.collector.trace.v1.TraceService/Export failed with {code}",
            receiver.endpoint
        );
        assert!(
            error.contains(&target) && error.contains(advice),
            "{status}: {error}"
        );
        // The warning comes after the last attempt.
        assert_eq!(
            receiver.encodings.lock().expect("lock").len(),
            calls,
            "{status}"
        );
    }
}

#[test]
fn a_grpc_collector_asking_for_a_later_retry_is_waited_for_within_the_export_timeout() {
    use std::time::{Duration, Instant};
    let asked = Duration::from_millis(500);
    // (code, its name, export timeout in ms, calls made)
    for (code, name, timeout, calls) in [
        // RESOURCE_EXHAUSTED with a RetryInfo is transient: 3 retries, each after the delay.
        (
            tonic::Code::ResourceExhausted,
            "ResourceExhausted",
            "10000",
            4,
        ),
        (tonic::Code::Unavailable, "Unavailable", "10000", 4),
        // A delay that does not fit in the export timeout ends the export at once.
        (
            tonic::Code::ResourceExhausted,
            "ResourceExhausted",
            "400",
            1,
        ),
    ] {
        let receiver = OtlpReceiver::start_grpc_throttling(code, asked);
        let sent = Instant::now();
        let (server, _) = receiver.serve_one(
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", timeout),
            ],
            b"a slow collector",
        );
        let line = server.wait_for_log(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("span export failed"))
        });
        let waited = sent.elapsed();
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("failed with {name}"))
                && error.contains("asked for a retry after 0.5 s"),
            "{name}: {error}"
        );
        let made = receiver.encodings.lock().expect("lock").len();
        assert_eq!(made, calls, "{name}, timeout {timeout} ms");
        // The backoff alone (100, 200, 400 ms and at most 100 ms of jitter each) would be done
        // in 1.0 s; each of the 3 waits is at least the 0.5 s asked for.
        if calls > 1 {
            assert!(waited >= asked * 3, "{name}: {waited:?}");
        }
    }
}

#[test]
fn an_http_collector_asking_for_a_later_retry_is_waited_for() {
    use std::time::{Duration, Instant};
    let receiver = OtlpReceiver::start_throttling("429 Too Many Requests", 1);
    let sent = Instant::now();
    let (server, _) = receiver.serve_one(&[], b"a busy collector");
    server.wait_for_log(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("span export failed"))
    });
    let waited = sent.elapsed();
    assert_eq!(
        receiver.encodings.lock().expect("lock").len(),
        4,
        "3 retries"
    );
    // The backoff alone would be done in 1.0 s; each of the 3 waits is at least the 1 s asked.
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
}

#[test]
fn a_collector_that_refuses_the_export_is_named_in_the_warning_with_what_to_check() {
    for (status, advice) in [
        ("404 Not Found", "check the path"),
        ("401 Unauthorized", "OTEL_EXPORTER_OTLP_HEADERS"),
    ] {
        let receiver = OtlpReceiver::start_refusing(status);
        let (server, _) = receiver.serve_one(&[], b"the goalie made a save");
        let line = server.wait_for_log(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("span export failed"))
        });
        let error = line["error"].as_str().unwrap_or_default();
        let target = format!("POST {}/v1/traces answered {status}", receiver.endpoint);
        assert!(
            error.contains(&target) && error.contains(advice),
            "{status}: {error}"
        );
    }
}
