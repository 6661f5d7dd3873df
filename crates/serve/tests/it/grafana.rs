//! The Grafana provisioning in `grafana/` against the server's real output: the Loki derived
//! field that turns a log line into a link to its trace must extract exactly the trace id.

use std::path::PathBuf;

use regex::Regex;
use yaml_rust2::YamlLoader;

use crate::helpers::{Server, request};

fn datasources_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../grafana/datasources/datasources.yaml")
}

/// The `matcherRegex` of the Loki datasource's derived field that links to Tempo.
fn derived_field_regex() -> Regex {
    let path = datasources_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let datasources = docs[0]["datasources"].as_vec().expect("datasources list");
    let loki = datasources
        .iter()
        .find(|d| d["type"].as_str() == Some("loki"))
        .expect("a Loki datasource");
    let field = loki["jsonData"]["derivedFields"]
        .as_vec()
        .expect("derivedFields on the Loki datasource")
        .iter()
        .find(|f| f["datasourceUid"].as_str() == Some("tempo"))
        .expect("a derived field linking to the Tempo datasource");
    if let Some(kind) = field["matcherType"].as_str() {
        assert_eq!(
            kind, "regex",
            "the derived field matches the log line, not a label"
        );
    }
    let pattern = field["matcherRegex"].as_str().expect("matcherRegex");
    Regex::new(pattern).unwrap_or_else(|e| panic!("matcherRegex {pattern:?}: {e}"))
}

#[test]
fn the_loki_derived_field_extracts_exactly_the_trace_id_from_real_log_lines() {
    let regex = derived_field_regex();
    let server = Server::start(&[], &[]);
    let ok = request(
        server.addr,
        "POST",
        "/predict",
        &[],
        b"the goalie stopped the puck",
    );
    let bad = request(server.addr, "POST", "/predict", &[], b"");
    let lost = request(server.addr, "GET", "/nowhere", &[], b"");
    let ids: Vec<String> = [&ok, &bad, &lost]
        .iter()
        .map(|r| r.header("x-trace-id").expect("x-trace-id").to_owned())
        .collect();
    // The access-log line (served or rejected) is the last one a request writes.
    for id in &ids {
        server.wait_for_log(|l| {
            l["trace_id"] == id.as_str() && !l["http.response.status_code"].is_null()
        });
    }

    let mut linked = Vec::new();
    for line in server.raw_logs() {
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        let found: Vec<&str> = regex
            .captures_iter(&line)
            .map(|c| c.get(1).map_or("", |m| m.as_str()))
            .collect();
        match parsed["trace_id"].as_str() {
            Some(trace_id) => {
                assert_eq!(found, [trace_id], "the regex on {line}");
                linked.push(trace_id.to_owned());
            }
            None => assert!(found.is_empty(), "no trace, no link: {line}"),
        }
    }
    for id in &ids {
        assert!(
            linked.contains(id),
            "the log line of trace {id} links to it"
        );
    }
}
