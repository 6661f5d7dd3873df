//! After N requests, `/metrics` holds the right counts, real histograms and the model's metrics.

use crate::helpers::{Server, request};

#[test]
fn metrics_count_what_happened() {
    let server = Server::start(&["--max-concurrency", "17"], &[]);
    let docs = [
        "my car engine needs new brakes",
        "riding my motorcycle on the highway",
        "the pitcher threw a strike in the ninth inning",
        "the goalie stopped the puck",
        "the hockey game went to overtime",
        "zzzz qqqq unknownword",
        "a home run for the batter",
    ];
    let mut labels = std::collections::HashMap::<String, f64>::new();
    let mut bytes = 0usize;
    for doc in docs {
        let r = request(server.addr, "POST", "/predict", &[], doc.as_bytes());
        assert_eq!(r.status, 200);
        *labels
            .entry(r.json()["result"].as_str().expect("result").to_owned())
            .or_default() += 1.0;
        bytes += doc.len();
    }
    request(server.addr, "POST", "/predict", &[], b"");
    request(server.addr, "GET", "/livez", &[], b"");
    let m = server.metrics();
    let n = docs.len() as f64;
    let ok = [
        ("http_request_method", "POST"),
        ("http_route", "/predict"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(m.value("http_server_requests_total", &ok), Some(n));
    assert_eq!(
        m.value("http_server_request_duration_seconds_count", &ok),
        Some(n)
    );
    assert_eq!(
        m.kind("http_server_request_duration_seconds"),
        Some("histogram"),
        "a real histogram, not a summary"
    );
    let mut le = ok.to_vec();
    le.push(("le", "+Inf"));
    assert_eq!(
        m.value("http_server_request_duration_seconds_bucket", &le),
        Some(n)
    );
    le.pop();
    le.push(("le", "0.00005"));
    assert!(
        m.value("http_server_request_duration_seconds_bucket", &le)
            .is_some(),
        "sub-millisecond buckets"
    );
    let bad = [
        ("http_request_method", "POST"),
        ("http_route", "/predict"),
        ("http_response_status_code", "400"),
    ];
    assert_eq!(m.value("http_server_requests_total", &bad), Some(1.0));
    let live = [
        ("http_request_method", "GET"),
        ("http_route", "/livez"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(m.value("http_server_requests_total", &live), Some(1.0));

    for step in ["tokenize", "vectorize", "weigh", "predict"] {
        assert_eq!(
            m.value("pipeline_step_duration_seconds_count", &[("step", step)]),
            Some(n),
            "{step}"
        );
        assert_eq!(m.kind("pipeline_step_duration_seconds"), Some("histogram"));
    }
    for label in [
        "rec.autos",
        "rec.motorcycles",
        "rec.sport.baseball",
        "rec.sport.hockey",
    ] {
        let expected = labels.get(label).copied().unwrap_or(0.0);
        assert_eq!(
            m.value("model_predictions_total", &[("label", label)]),
            Some(expected),
            "{label}"
        );
    }
    assert_eq!(m.value("model_prediction_confidence_count", &[]), Some(n));
    assert_eq!(
        m.value("model_document_length_bytes_sum", &[]),
        Some(bytes as f64)
    );
    assert_eq!(m.value("model_document_tokens_count", &[]), Some(n));
    // "zzzz qqqq unknownword": all 3 tokens unknown, so at least one ratio of 1.
    assert!(
        m.value("model_out_of_vocabulary_ratio_sum", &[])
            .is_some_and(|s| s >= 1.0)
    );
    assert_eq!(m.value("model_out_of_vocabulary_ratio_count", &[]), Some(n));
    assert_eq!(
        m.value(
            "http_server_request_body_size_bytes_count",
            &[("http_route", "/predict")]
        ),
        Some(n + 1.0)
    );
    assert_eq!(
        m.value("http_server_active_requests", &[("http_route", "/predict")]),
        Some(0.0)
    );
    assert_eq!(
        m.value("http_server_active_requests", &[("http_route", "/metrics")]),
        Some(1.0),
        "this scrape"
    );
    assert_eq!(m.value("http_server_concurrency_limit", &[]), Some(17.0));
    assert_eq!(
        m.sum(
            "model_info",
            &[("weighting", "counts"), ("trained_at", "1700000000")]
        ),
        1.0
    );
    assert!(
        m.value("process_resident_memory_bytes", &[])
            .is_some_and(|v| v > 1e6)
    );
    assert!(m.value("process_open_fds", &[]).is_some_and(|v| v > 0.0));
    assert!(m.value("process_cpu_seconds_total", &[]).is_some());
    assert!(m.value("tokio_workers", &[]).is_some_and(|v| v >= 1.0));
    assert!(
        m.value("tokio_worker_busy_ratio", &[])
            .is_some_and(|v| (0.0..=1.0).contains(&v))
    );
    assert_eq!(m.value("otel_spans_dropped_total", &[]), Some(0.0));
    // No raw path becomes a label value.
    request(server.addr, "GET", "/secret/user/12345", &[], b"");
    assert!(!server.metrics().0.contains("12345"));
}
