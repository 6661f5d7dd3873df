//! Runs loadgen for a few seconds against a real `serve` (in this process, on an ephemeral
//! loopback port) and checks its summary against the server's own `/metrics`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pipeline::dataset::{DEFAULT_CATEGORIES, read_archive};
use pipeline::progress::NoProgress;
use pipeline::{Model, ModelFile, TrainConfig};

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The archive named by `NEWSGROUPS_ARCHIVE`, or `None` (and a line saying the test is skipped):
/// `make test` always sets it, a bare `cargo test` on a machine without the dataset may not.
fn real_archive() -> Option<PathBuf> {
    let archive = std::env::var_os("NEWSGROUPS_ARCHIVE")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if archive.is_none() {
        eprintln!("skipped: set NEWSGROUPS_ARCHIVE to run this test");
    }
    archive
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_counts_what_the_server_counts() {
    let Some(archive) = real_archive() else {
        return;
    };
    // The real model, trained here, served by the real server code.
    let categories: Vec<String> = DEFAULT_CATEGORIES.map(String::from).to_vec();
    let dataset = read_archive(&archive, &categories, None, &NoProgress).expect("archive");
    let model = Model::train(&dataset, &TrainConfig::default()).expect("train");
    let test = model.evaluate(&dataset.test);
    let metadata = pipeline::Metadata::of_training(&dataset, &TrainConfig::default(), 1.0, test);
    let file = ModelFile::new(model, metadata).expect("wrap");
    let config = serve::config::Config::parse_from(["serve", "--max-body-bytes", "262144"]);
    let telemetry =
        pipeline::telemetry::Telemetry::init(&serve::telemetry_config(&config)).expect("telemetry");
    let app = serve::App::new(file, serve::Limits::from(&config), Some(&telemetry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let policy = serve::ShutdownPolicy {
        header_timeout: Duration::from_secs(5),
        drain_delay: Duration::ZERO,
        grace: Duration::from_secs(5),
    };
    let server = tokio::spawn(serve::run(listener, app, policy, async {
        let _ = stopped.await;
    }));

    let reports = tempfile::tempdir().expect("tempdir");
    let args = loadgen::Args::parse_from([
        "loadgen",
        "--host",
        &format!("http://{addr}"),
        "--duration",
        "3s",
        "--users",
        "4",
        "--hatch-rate",
        "100",
        "--mix",
        "predict=80,health=10,bad-input=10",
        "--oversize-bytes",
        "262145",
        "--archive",
        archive.to_str().expect("utf-8 path"),
        "--report-dir",
        reports.path().to_str().expect("utf-8 path"),
    ]);
    let summary = loadgen::run(&args).await.expect("load test");
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let _ = stop.send(());
    let _ = server.await;

    assert!(summary.requests > 100, "{summary}");
    assert_eq!(summary.errors.transport, 0, "{summary}");
    assert_eq!(
        summary.errors.server_5xx + summary.errors.unexpected_4xx,
        0,
        "{summary}"
    );
    assert!(
        summary.expected_rejections > 0,
        "bad input was sent and rejected as expected: {summary}"
    );
    assert!(summary.wrong_answer_rate < 0.10, "{summary}");
    assert!(summary.latency_ms.p50 > 0.0 && summary.latency_ms.p99 >= summary.latency_ms.p50);
    assert_eq!(summary.slowest.len(), 5);

    let ok = metric(
        &metrics,
        r#"http_server_requests_total{http_request_method="POST",http_route="/predict",http_response_status_code="200"}"#,
    );
    assert_eq!(
        ok, summary.predictions as f64,
        "server 200s vs loadgen's answered predictions"
    );
    let rejected: f64 = ["400", "405", "413"]
        .iter()
        .map(|s| {
            let method = if *s == "405" { "GET" } else { "POST" };
            metric(&metrics, &format!(r#"http_server_requests_total{{http_request_method="{method}",http_route="/predict",http_response_status_code="{s}"}}"#))
        })
        .sum();
    assert_eq!(
        rejected, summary.expected_rejections as f64,
        "server 4xx vs loadgen's expected rejections"
    );
    let readyz = metric(
        &metrics,
        r#"http_server_requests_total{http_request_method="GET",http_route="/readyz",http_response_status_code="200"}"#,
    );
    let scrapes = metric(
        &metrics,
        r#"http_server_requests_total{http_request_method="GET",http_route="/metrics",http_response_status_code="200"}"#,
    );
    // loadgen's health checks, plus the /readyz it asks once before starting and the two /metrics
    // scrapes (before and after) its golden-signal summary is computed from.
    assert_eq!(
        readyz + scrapes,
        summary.health_ok as f64 + 3.0,
        "server health requests vs loadgen's"
    );
    let server = summary
        .server
        .as_ref()
        .expect("golden signals from the server's /metrics");
    assert_eq!(
        server.predictions_by_label.values().sum::<f64>(),
        summary.predictions as f64
    );
    assert!(
        server.predict_p99_ms >= server.predict_p50_ms && server.predict_p50_ms > 0.0,
        "{server}"
    );
    assert_eq!(server.server_error_ratio, 0.0);
    for file in ["report.html", "report.json", "report.md", "summary.json"] {
        assert!(reports.path().join(file).exists(), "{file}");
    }
}

#[tokio::test]
async fn a_missing_dataset_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let missing = "/nonexistent/20news-bydate.tar.gz";
    let args = loadgen::Args::parse_from([
        "loadgen",
        "--host",
        &format!("http://127.0.0.1:{port}"),
        "--archive",
        missing,
    ]);
    let err = format!("{:#}", loadgen::run(&args).await.expect_err("no dataset"));
    assert!(
        err.contains("cannot read archive") && err.contains(missing),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let Some(archive) = real_archive() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let args = loadgen::Args::parse_from([
        "loadgen",
        "--host",
        &host,
        "--archive",
        archive.to_str().expect("utf-8"),
    ]);
    let err = loadgen::run(&args)
        .await
        .expect_err("nothing listens")
        .to_string();
    assert!(
        err.contains("cannot reach the server") && err.contains(&host),
        "{err}"
    );
}
