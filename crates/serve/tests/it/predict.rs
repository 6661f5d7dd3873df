//! `POST /predict` answers and every bad-input case.

use crate::helpers::{OtlpReceiver, Server, attr, real_dataset, real_model, request};

#[test]
fn classifies_real_test_documents() {
    let (Some(model), Some(dataset)) = (real_model(), real_dataset()) else {
        eprintln!("skipped: set NEWSGROUPS_ARCHIVE to run this test");
        return;
    };
    let server = Server::start_with_model(model, &[], &[]);
    let sample: Vec<_> = dataset.test.iter().step_by(8).collect();
    let mut right = 0;
    for doc in &sample {
        let r = request(server.addr, "POST", "/predict", &[], doc.text.as_bytes());
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["result"] == dataset.categories[doc.label].as_str() {
            right += 1;
        }
        let sum: f64 = v["probabilities"]
            .as_object()
            .expect("probabilities")
            .values()
            .filter_map(|p| p.as_f64())
            .sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }
    let accuracy = f64::from(right) / sample.len() as f64;
    assert!(
        accuracy >= 0.90,
        "accuracy {accuracy} on {} documents",
        sample.len()
    );
}

#[test]
fn curl_form_bodies_plain_text_and_json_all_work() {
    let server = Server::start(&[], &[]);
    let text = "the goalie stopped the puck in the hockey playoffs";
    let json_body = serde_json::json!({ "text": text }).to_string();
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", text.as_bytes()),
        ("text/plain; charset=utf-8", text.as_bytes()),
        ("application/json", json_body.as_bytes()),
        ("application/json; charset=utf-8", json_body.as_bytes()),
    ] {
        let r = request(
            server.addr,
            "POST",
            "/predict",
            &[("Content-Type", content_type)],
            body,
        );
        assert_eq!(r.status, 200, "{content_type}: {}", r.body);
        let v = r.json();
        assert_eq!(v["result"], "rec.sport.hockey", "{content_type}");
        assert!(
            v["confidence"]
                .as_f64()
                .is_some_and(|c| c > 0.25 && c <= 1.0)
        );
        assert_eq!(v["probabilities"].as_object().map(|o| o.len()), Some(4));
        assert!(v["model_version"].as_str().is_some_and(|s| s.len() == 12));
    }
}

#[test]
fn invalid_utf8_is_read_as_latin1() {
    let server = Server::start(&[], &[]);
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[],
        b"caf\xe9 car engine brakes \xff\xfe",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"], "rec.autos");
}

type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
    u16,
    &'a str,
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("deflate");
    e.finish().expect("deflate")
}

#[test]
fn gzip_and_deflate_bodies_are_decompressed_and_other_codings_get_415() {
    let server = Server::start(&["--max-body-bytes", "10000"], &[]);
    let text = b"the goalie stopped the puck in the hockey playoffs";
    let plain = request(server.addr, "POST", "/predict", &[], text).json();
    for (coding, body) in [("gzip", gzip(text)), ("deflate", zlib(text))] {
        let r = request(
            server.addr,
            "POST",
            "/predict",
            &[("Content-Encoding", coding)],
            &body,
        );
        assert_eq!(r.status, 200, "{coding}: {}", r.body);
        assert_eq!(r.json(), plain, "{coding}: the same answer as uncompressed");
    }
    let json = serde_json::json!({ "text": "new brakes for my car" }).to_string();
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(json.as_bytes()),
    );
    assert_eq!(r.json()["result"], "rec.autos", "{}", r.body);

    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("Content-Encoding", "br")],
        b"\x1b\x03\x00",
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(r.json()["error"], "bad_input");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"br\""))
    );
    assert_eq!(r.header("accept-encoding"), Some("gzip, deflate"));

    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("Content-Encoding", "gzip")],
        text,
    );
    assert_eq!(r.status, 400, "not gzip: {}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid gzip"))
    );

    // 1.4 MB of text in a 1.4 KB body: held to the body limit once decompressed.
    let bomb = gzip(&vec![b'a'; 1_400_000]);
    assert!(bomb.len() < 10_000);
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{}", r.body);

    let m = server.metrics();
    assert_eq!(
        m.sum("model_predictions_total", &[]),
        4.0,
        "only the good ones"
    );
    assert_eq!(
        m.value(
            "http_server_errors_total",
            &[
                ("http_route", "/predict"),
                ("status_class", "4xx"),
                ("reason", "bad_input")
            ]
        ),
        Some(2.0)
    );
}

#[test]
fn bad_input_gets_a_json_error_is_counted_logged_once_and_changes_nothing() {
    let server = Server::start(&[], &[]);
    // (method, path, headers, body, status, reason)
    let cases: [Case<'_>; 5] = [
        ("POST", "/predict", &[], b"", 400, "bad_input"),
        (
            "POST",
            "/predict",
            &[("Content-Type", "application/json")],
            b"{\"text\": ",
            400,
            "bad_input",
        ),
        (
            "POST",
            "/predict",
            &[("Content-Type", "application/json")],
            b"{\"txt\": \"x\"}",
            400,
            "bad_input",
        ),
        ("GET", "/predict", &[], b"", 405, "method_not_allowed"),
        ("POST", "/nowhere", &[], b"car", 404, "not_found"),
    ];
    for (method, path, headers, body, status, reason) in cases {
        let r = request(server.addr, method, path, headers, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let v = r.json();
        assert_eq!(v["error"], reason);
        assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{v}");
        let trace_id = r.header("x-trace-id").expect("trace id header");
        let lines = server.wait_for_log(|l| l["trace_id"] == trace_id);
        assert_eq!(lines["error.type"], reason);
        assert_eq!(
            server.logs_of_trace(trace_id).len(),
            1,
            "logged exactly once"
        );
    }
    assert_eq!(
        request(server.addr, "GET", "/predict", &[], b"").header("allow"),
        Some("POST")
    );
    let m = server.metrics();
    assert_eq!(
        m.value(
            "http_server_errors_total",
            &[
                ("http_route", "/predict"),
                ("status_class", "4xx"),
                ("reason", "bad_input")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        m.value(
            "http_server_errors_total",
            &[
                ("http_route", ""),
                ("status_class", "4xx"),
                ("reason", "not_found")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sum("model_predictions_total", &[]),
        0.0,
        "no bad request reached the model"
    );
    // Still serving.
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[],
        b"my car needs new brakes",
    );
    assert_eq!(
        (r.status, r.json()["result"].as_str()),
        (200, Some("rec.autos"))
    );
}

#[test]
fn a_slightly_oversized_body_is_discarded_so_the_client_reads_its_413() {
    let server = Server::start(&["--max-body-bytes", "1000"], &[]);
    // 1500 bytes (under twice the limit) then a good request on the same connection: the server
    // must discard the excess, answer 413, keep the connection and answer the next one.
    let oversized = "a".repeat(1500);
    let raw = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\n\r\n{oversized}\
         POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\ncar engine"
    );
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    std::io::Write::write_all(&mut stream, raw.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut buf);
    let text = String::from_utf8_lossy(&buf);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["413", "200"], "{text}");
}

#[test]
fn oversized_bodies_get_413_without_being_read() {
    let server = Server::start(&["--max-body-bytes", "1000"], &[]);
    // Announces 50 MB and sends 10 bytes: the answer must come without waiting for the rest.
    let raw = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\ncar engine";
    let r = crate::helpers::raw_request(server.addr, raw);
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "too_large");
    // Chunked, no length announced: cut off at the limit.
    let chunk = "a".repeat(800);
    let raw = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let r = crate::helpers::raw_request(server.addr, raw.as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    // Exactly at the limit is fine.
    let body = format!("car {}", "x ".repeat(498));
    assert_eq!(body.len(), 1000);
    assert_eq!(
        request(server.addr, "POST", "/predict", &[], body.as_bytes()).status,
        200
    );
    let m = server.metrics();
    assert_eq!(
        m.value(
            "http_server_errors_total",
            &[
                ("http_route", "/predict"),
                ("status_class", "4xx"),
                ("reason", "too_large")
            ]
        ),
        Some(2.0)
    );
}

#[test]
fn client_text_in_log_lines_spans_and_error_bodies_is_cut_at_512_bytes() {
    let receiver = OtlpReceiver::start();
    let server = receiver.server(&[]);
    let long_path = format!("/{}", "p".repeat(20_000));
    let long_agent = "a".repeat(20_000);
    let r = request(
        server.addr,
        "GET",
        &long_path,
        &[("user-agent", long_agent.as_str())],
        b"",
    );
    assert_eq!(r.status, 404);
    let trace_id = r.header("x-trace-id").expect("trace id").to_owned();
    let cut = |text: &str| format!("{}…", &text[..512]);
    let line = server.wait_for_log(|l| l["trace_id"] == trace_id.as_str());
    assert_eq!(line["url.path"], cut(&long_path));
    let span = receiver.wait_for_trace(&trace_id, 1).remove(0);
    assert_eq!(attr(&span, "url.path"), Some(cut(&long_path)));
    assert_eq!(attr(&span, "user_agent.original"), Some(cut(&long_agent)));

    let coding = "x".repeat(20_000);
    let r = request(
        server.addr,
        "POST",
        "/predict",
        &[("content-encoding", coding.as_str())],
        b"some text",
    );
    assert_eq!(r.status, 415);
    let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains(&cut(&coding)) && message.len() < 1024,
        "{} bytes",
        message.len()
    );
}
