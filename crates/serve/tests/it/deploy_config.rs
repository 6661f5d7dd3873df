//! The Kubernetes ConfigMap in `manifests/` against the real server: every setting it passes is
//! one `serve` documents, and together they start it without a warning, exporting spans.

use std::path::PathBuf;

use yaml_rust2::YamlLoader;

use crate::helpers::{OtlpReceiver, Server, request};

/// The `data` of `manifests/configmap.yaml`, in file order.
fn configmap_data() -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/configmap.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let data = docs[0]["data"].as_hash().expect("a data map");
    data.iter()
        .map(|(k, v)| {
            let key = k.as_str().expect("string keys").to_owned();
            // A ConfigMap holds strings only: a bare number would not be applied.
            let value = v
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {v:?} is not a string"))
                .to_owned();
            (key, value)
        })
        .collect()
}

#[test]
fn every_configmap_setting_is_one_serve_documents() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .arg("--help")
        .output()
        .expect("serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let data = configmap_data();
    assert!(data.len() > 5, "{data:?}");
    for (key, _) in data {
        assert!(help.contains(&key), "{key} is not in serve --help");
    }
}

#[test]
fn the_configmap_settings_start_the_server_without_a_warning_and_spans_reach_the_endpoint() {
    let receiver = OtlpReceiver::start();
    // Tempo's in-cluster address becomes the receiver on loopback; `--addr 127.0.0.1:0`, which
    // the helper passes, wins over SERVE_ADDR.
    let env: Vec<(String, String)> = configmap_data()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => (k, receiver.endpoint.clone()),
            _ => (k, v),
        })
        .collect();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "50"));
    let mut server = Server::start(&[], &env);
    let r = request(server.addr, "POST", "/predict", &[], b"a new exhaust pipe");
    assert_eq!(r.status, 200, "{}", r.body);
    let trace_id = r.header("x-trace-id").expect("trace id");
    receiver.wait_for_trace(trace_id, 5);
    server.terminate();
    let (status, _) = server.wait_exit(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let complaints: Vec<_> = server
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}
