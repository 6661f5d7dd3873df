//! Shared test helpers: a model to serve, the real `serve` binary on an ephemeral loopback port,
//! a raw HTTP/1.1 client, a Prometheus text reader, and OTLP receivers (HTTP and gRPC).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pipeline::dataset::{DEFAULT_CATEGORIES, Dataset, Document, read_archive};
use pipeline::progress::NoProgress;
use pipeline::{Model, ModelFile, TrainConfig};

/// Polls `check` until it returns a value, for at most `limit`; after that the test fails with
/// `why()`, so a condition that never comes is reported instead of hanging the test.
pub fn eventually<T>(
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    why: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[should_panic(expected = "never came")]
fn eventually_fails_the_test_when_the_condition_never_comes() {
    eventually(
        Duration::from_millis(50),
        || None::<()>,
        || "never came".into(),
    );
}

#[test]
fn eventually_returns_the_first_value_the_check_gives() {
    let mut calls = 0;
    let got = eventually(
        Duration::from_secs(5),
        || {
            calls += 1;
            (calls == 3).then_some(calls)
        },
        || "unreachable".into(),
    );
    assert_eq!(got, 3);
}

/// The 20 Newsgroups archive, when `NEWSGROUPS_ARCHIVE` names one.
pub fn real_archive() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("NEWSGROUPS_ARCHIVE")?);
    path.exists().then_some(path)
}

/// The real dataset, read once per test process.
pub fn real_dataset() -> Option<&'static Dataset> {
    static DATASET: OnceLock<Option<Dataset>> = OnceLock::new();
    DATASET
        .get_or_init(|| {
            let categories: Vec<String> = DEFAULT_CATEGORIES.map(String::from).to_vec();
            real_archive()
                .map(|a| read_archive(&a, &categories, None, &NoProgress).expect("read archive"))
        })
        .as_ref()
}

fn save(model: Model, dataset: &Dataset, path: &Path) {
    let test = model.evaluate(&dataset.test);
    let metadata = pipeline::Metadata {
        created_at: Some(1_700_000_000),
        ..pipeline::Metadata::of_training(dataset, &TrainConfig::default(), 1.0, test)
    };
    ModelFile::new(model, metadata)
        .expect("wrap")
        .save(path)
        .expect("save model");
}

fn models_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// A model trained on the real archive (once per test process), if the archive is there.
pub fn real_model() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let dataset = real_dataset()?;
        let path = models_dir().join("real.bin");
        save(
            Model::train(dataset, &TrainConfig::default()).expect("train"),
            dataset,
            &path,
        );
        Some(path)
    })
    .as_deref()
}

/// A small model of the four categories trained on hand-written sentences: fast, always there.
pub fn small_model() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let doc = |text: &str, label| Document {
            id: String::new(),
            text: text.into(),
            label,
        };
        let dataset = Dataset {
            categories: DEFAULT_CATEGORIES.map(String::from).to_vec(),
            train: vec![
                doc("my car engine needs new brakes and tires", 0),
                doc("the dealer sold me a car with a bad transmission", 0),
                doc("riding my motorcycle with a helmet on the highway", 1),
                doc("the bike needs a new chain, motorcycle riders know", 1),
                doc(
                    "the pitcher threw a strike, baseball season and home runs",
                    2,
                ),
                doc("the batter hit a home run in the ninth inning", 2),
                doc("the goalie stopped the puck, hockey playoffs on ice", 3),
                doc(
                    "a power play goal in the third period of the hockey game",
                    3,
                ),
            ],
            test: vec![doc("brakes on my car", 0)],
            sha256: "00".repeat(32),
        };
        let path = models_dir().join("small.bin");
        save(
            Model::train(&dataset, &TrainConfig::default()).expect("train"),
            &dataset,
            &path,
        );
        path
    })
}

/// A running `serve` process on 127.0.0.1; killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `serve` with the small model and extra flags and environment.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_model(small_model(), args, env)
    }

    /// Starts `serve` on `model`; waits for its "listening" log line.
    pub fn start_with_model(model: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = serve_command(model);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"message\":\"listening\"") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().expect("lock").push(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("serve did not start: {err}");
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let addr = v["addr"]
            .as_str()
            .expect("addr field")
            .parse()
            .expect("socket address");
        Self { addr, child, logs }
    }

    /// Log lines so far, as printed.
    pub fn raw_logs(&self) -> Vec<String> {
        self.logs.lock().expect("lock").clone()
    }

    /// Log lines so far, parsed.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines that carry `trace_id`.
    pub fn logs_of_trace(&self, trace_id: &str) -> Vec<serde_json::Value> {
        self.logs()
            .into_iter()
            .filter(|l| l["trace_id"] == trace_id)
            .collect()
    }

    /// Waits (bounded) until a log line satisfies `f`.
    pub fn wait_for_log(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        eventually(
            Duration::from_secs(10),
            || self.logs().into_iter().find(|l| f(l)),
            || format!("log line never came; logs: {:?}", self.logs()),
        )
    }

    /// Waits (bounded) until `/metrics` shows `n` requests in flight on `route`.
    pub fn wait_for_active(&self, route: &str, n: f64) {
        let active = || {
            self.metrics()
                .value("http_server_active_requests", &[("http_route", route)])
        };
        eventually(
            Duration::from_secs(10),
            || (active() == Some(n)).then_some(()),
            || {
                format!(
                    "{route} never had {n} requests in flight (last: {:?})",
                    active()
                )
            },
        )
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    }

    /// Waits for exit, at most `limit`; returns the status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let status = eventually(
            limit,
            || self.child.try_wait().expect("try_wait"),
            || format!("serve did not exit within {limit:?}"),
        );
        (status, start.elapsed())
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        let r = request(self.addr, "GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200);
        Metrics(r.body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`), with `Content-Length` set.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(addr, &bytes)
}

/// Sends raw bytes and reads the response until the server closes the connection.
pub fn raw_request(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(bytes).expect("send");
    read_response(&mut stream)
}

/// Reads one response to the end of the connection.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Prometheus text exposition.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the series `name{labels}` (labels given in any order, all must match).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
                if series_name != name {
                    return None;
                }
                let all = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                let count = if rest == "}" {
                    0
                } else {
                    rest.matches("=\"").count()
                };
                (all && count == labels.len())
                    .then(|| value.parse().ok())
                    .flatten()
            })
    }

    /// Sum of every series of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                (series_name == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
                .then(|| value.parse::<f64>().ok())
                .flatten()
            })
            .sum()
    }

    /// The `# TYPE` of a metric.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# TYPE {name} ")))
    }
}

/// Decoded spans received by [`OtlpReceiver`].
pub type SpanList = Arc<
    Mutex<
        Vec<(
            opentelemetry_proto::tonic::resource::v1::Resource,
            opentelemetry_proto::tonic::trace::v1::Span,
        )>,
    >,
>;

/// An OTLP/HTTP receiver on loopback that decodes the real protobuf, gzip-compressed or not.
pub struct OtlpReceiver {
    pub endpoint: String,
    pub spans: SpanList,
    /// The `Content-Encoding` of each request received (`identity` when there was none).
    pub encodings: Arc<Mutex<Vec<String>>>,
    /// Every request header received, as `name: value` with the name in lowercase, and over
    /// HTTP/1.1 each request's target as `:path: /v1/traces`.
    pub headers: Arc<Mutex<Vec<String>>>,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        Self::start_http(None, "200 OK".into(), Vec::new())
    }

    /// An OTLP/HTTP receiver whose every 200 answer says it rejected `spans` of the request's
    /// spans with `message` (an OTLP partial success).
    pub fn start_rejecting(spans: i64, message: &str) -> Self {
        Self::start_http(None, "200 OK".into(), partial_success(spans, message))
    }

    /// An OTLP/HTTP receiver over TLS (`https://127.0.0.1:port`) with this server configuration;
    /// a connection whose handshake fails is closed and nothing is recorded.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Self {
        Self::start_http(Some(config), "200 OK".into(), Vec::new())
    }

    /// An OTLP/HTTP receiver that answers every request with `status` (e.g. `404 Not Found`)
    /// after recording it.
    pub fn start_refusing(status: &str) -> Self {
        Self::start_http(None, status.to_owned(), Vec::new())
    }

    /// An OTLP/HTTP receiver that answers every request with `status` and `Retry-After:
    /// seconds` after recording it.
    pub fn start_throttling(status: &str, seconds: u64) -> Self {
        Self::start_http(
            None,
            format!("{status}\r\nRetry-After: {seconds}"),
            Vec::new(),
        )
    }

    /// `status` (with any header lines after it) and `body` of each answer (a 200's body is an
    /// encoded `ExportTraceServiceResponse`; empty is one).
    fn start_http(tls: Option<Arc<rustls::ServerConfig>>, status: String, body: Vec<u8>) -> Self {
        let answer = Arc::new((status, body));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let spans: SpanList = Arc::default();
        let encodings: Arc<Mutex<Vec<String>>> = Arc::default();
        let headers: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, seen, heard) = (spans.clone(), encodings.clone(), headers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (sink, seen, heard) = (sink.clone(), seen.clone(), heard.clone());
                let (tls, answer) = (tls.clone(), answer.clone());
                std::thread::spawn(move || match tls {
                    None => serve_otlp_http(stream, &sink, &seen, &heard, &answer.0, &answer.1),
                    Some(config) => {
                        let session = rustls::ServerConnection::new(config).expect("session");
                        let stream = rustls::StreamOwned::new(session, stream);
                        serve_otlp_http(stream, &sink, &seen, &heard, &answer.0, &answer.1);
                    }
                });
            }
        });
        Self {
            endpoint,
            spans,
            encodings,
            headers,
        }
    }

    /// An OTLP/gRPC receiver: `TraceService/Export` over HTTP/2 (hyper), the messages
    /// gzip-compressed or not (`encodings` holds each request's `grpc-encoding`).
    pub fn start_grpc() -> Self {
        Self::start_grpc_with(None, GrpcAnswer::default())
    }

    /// The OTLP/gRPC receiver answering every call with `grpc-status: status` (`"16"` is
    /// UNAUTHENTICATED) after recording it.
    pub fn start_grpc_refusing(status: &'static str) -> Self {
        Self::start_grpc_with(
            None,
            GrpcAnswer {
                message: Vec::new(),
                status,
                trailers: None,
            },
        )
    }

    /// The OTLP/gRPC receiver answering every call with `code` and a `google.rpc.RetryInfo`
    /// asking the caller to wait `delay` before trying again.
    pub fn start_grpc_throttling(code: tonic::Code, delay: Duration) -> Self {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let status = tonic::Status::with_error_details(
            code,
            "slow down",
            ErrorDetails::with_retry_info(Some(delay)),
        );
        let mut trailers = http::HeaderMap::new();
        status.add_header(&mut trailers).expect("status trailers");
        Self::start_grpc_with(
            None,
            GrpcAnswer {
                message: Vec::new(),
                status: "refused",
                trailers: Some(trailers),
            },
        )
    }

    /// The OTLP/gRPC receiver whose every answer says it rejected `spans` of the call's spans
    /// with `message` (an OTLP partial success).
    pub fn start_grpc_rejecting(spans: i64, message: &str) -> Self {
        Self::start_grpc_with(
            None,
            GrpcAnswer {
                message: partial_success(spans, message),
                status: "0",
                trailers: None,
            },
        )
    }

    /// The OTLP/gRPC receiver over TLS (`https://127.0.0.1:port`, ALPN `h2`).
    pub fn start_grpc_tls(config: Arc<rustls::ServerConfig>) -> Self {
        let mut config = Arc::unwrap_or_clone(config);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self::start_grpc_with(Some(Arc::new(config)), GrpcAnswer::default())
    }

    fn start_grpc_with(tls: Option<Arc<rustls::ServerConfig>>, answer: GrpcAnswer) -> Self {
        let answer = Arc::new(answer);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", listener.local_addr().expect("addr"));
        let spans: SpanList = Arc::default();
        let encodings: Arc<Mutex<Vec<String>>> = Arc::default();
        let headers: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, seen, heard) = (spans.clone(), encodings.clone(), headers.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                while let Ok((stream, _)) = listener.accept().await {
                    let (sink, seen, heard) = (sink.clone(), seen.clone(), heard.clone());
                    let answer = answer.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let calls = (sink.clone(), seen.clone(), heard.clone());
                        grpc_export(req, calls, answer.clone())
                    });
                    let http2 = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    match acceptor.clone() {
                        None => {
                            tokio::spawn(
                                http2.serve_connection(
                                    hyper_util::rt::TokioIo::new(stream),
                                    service,
                                ),
                            );
                        }
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    let _ = http2
                                        .serve_connection(
                                            hyper_util::rt::TokioIo::new(stream),
                                            service,
                                        )
                                        .await;
                                }
                            });
                        }
                    }
                }
            });
        });
        Self {
            endpoint,
            spans,
            encodings,
            headers,
        }
    }

    /// Starts a server exporting here every 50 ms, with `env` added (after, so it can replace
    /// the endpoint).
    pub fn server(&self, env: &[(&str, &str)]) -> Server {
        let mut all = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ];
        all.extend_from_slice(env);
        Server::start(&[], &all)
    }

    /// Starts [`OtlpReceiver::server`], has it classify `body` (asserting 200) and returns the
    /// server and that request's trace id.
    pub fn serve_one(&self, env: &[(&str, &str)], body: &[u8]) -> (Server, String) {
        let server = self.server(env);
        let r = request(server.addr, "POST", "/predict", &[], body);
        assert_eq!(r.status, 200, "{}", r.body);
        let trace_id = r.header("x-trace-id").expect("trace id").to_owned();
        (server, trace_id)
    }

    /// Waits (bounded) until `n` spans of `trace_id` (hex) arrived; returns them.
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        n: usize,
    ) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        let spans_of_trace = || -> Vec<_> {
            self.spans
                .lock()
                .expect("lock")
                .iter()
                .filter(|(_, s)| hex(&s.trace_id) == trace_id)
                .map(|(_, s)| s.clone())
                .collect()
        };
        eventually(
            Duration::from_secs(15),
            || Some(spans_of_trace()).filter(|got| got.len() >= n),
            || {
                let got = spans_of_trace().len();
                format!("only {got} of {n} spans of trace {trace_id} arrived")
            },
        )
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string attribute of a span.
pub fn attr(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::DoubleValue(d) => Some(d.to_string()),
            Value::BoolValue(b) => Some(b.to_string()),
            _ => None,
        })
}

/// A TCP port where nothing listens.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// A listener that accepts connections and never answers (a black-holed collector). Lives as
/// long as the returned value.
pub fn black_hole() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clone = listener.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in clone.incoming().flatten() {
            held.push(s);
        }
    });
    (format!("http://{addr}"), listener)
}

/// OTLP/HTTP requests on one connection, answered 200, until it closes.
fn serve_otlp_http(
    stream: impl Read + Write,
    sink: &SpanList,
    seen: &Mutex<Vec<String>>,
    heard: &Mutex<Vec<String>>,
    status: &str,
    answer: &[u8],
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut encoding = String::from("identity");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // The request line's target, recorded as HTTP/2 would name it.
        if let Some(path) = line.split(' ').nth(1) {
            heard.lock().expect("lock").push(format!(":path: {path}"));
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                heard.lock().expect("lock").push(format!(
                    "{}: {}",
                    k.to_ascii_lowercase(),
                    v.trim()
                ));
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("content-encoding") {
                    encoding = v.trim().to_ascii_lowercase();
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if encoding == "gzip" {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a gzip body");
            body = plain;
        }
        seen.lock().expect("lock").push(encoding);
        store_spans(sink, &body);
        let stream = reader.get_mut();
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(answer);
        let _ = stream.flush();
    }
}

/// Decodes one `ExportTraceServiceRequest` and keeps its spans.
fn store_spans(sink: &SpanList, body: &[u8]) {
    use prost::Message as _;
    let request =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
            .expect("valid OTLP protobuf");
    for rs in request.resource_spans {
        let resource = rs.resource.unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                sink.lock().expect("lock").push((resource.clone(), span));
            }
        }
    }
}

/// An encoded `ExportTraceServiceResponse` saying that `spans` spans were rejected.
fn partial_success(spans: i64, message: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message as _;
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: spans,
            error_message: message.to_owned(),
        }),
    }
    .encode_to_vec()
}

/// What the gRPC receiver answers every call with: an encoded `ExportTraceServiceResponse`
/// (empty by default) and a `grpc-status` (a status other than 0 comes without a message).
pub struct GrpcAnswer {
    message: Vec<u8>,
    status: &'static str,
    /// The status trailers in full (`grpc-status`, `grpc-message`, `grpc-status-details-bin`),
    /// instead of `status` alone.
    trailers: Option<http::HeaderMap>,
}

impl Default for GrpcAnswer {
    fn default() -> Self {
        Self {
            message: Vec::new(),
            status: "0",
            trailers: None,
        }
    }
}

/// What a gRPC receiver records of its calls: spans, `grpc-encoding`s, headers.
type GrpcCalls = (SpanList, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>);

/// One gRPC call: length-prefixed messages in, `answer` out.
async fn grpc_export(
    req: hyper::Request<hyper::body::Incoming>,
    (sink, seen, heard): GrpcCalls,
    answer: Arc<GrpcAnswer>,
) -> Result<hyper::Response<GrpcReply>, hyper::Error> {
    use http_body_util::BodyExt as _;
    heard.lock().expect("lock").extend(
        req.headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes()))),
    );
    let encoding = req
        .headers()
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    let body = req.into_body().collect().await?.to_bytes();
    let mut rest = &body[..];
    while rest.len() >= 5 {
        let compressed = rest[0] == 1;
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let message = &rest[5..5 + len];
        rest = &rest[5 + len..];
        if compressed {
            assert_eq!(encoding, "gzip", "a compressed message needs grpc-encoding");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(message)
                .read_to_end(&mut plain)
                .expect("a gzip message");
            store_spans(&sink, &plain);
        } else {
            store_spans(&sink, message);
        }
    }
    seen.lock().expect("lock").push(encoding);
    Ok(hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(GrpcReply(0, answer))
        .expect("response"))
}

/// The body of a unary gRPC response: the message (none for an error status), then the status
/// trailer.
pub struct GrpcReply(u8, Arc<GrpcAnswer>);

impl hyper::body::Body for GrpcReply {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let status = self.1.status;
        if self.0 == 0 && status != "0" {
            self.0 = 1;
        }
        let frame = match self.0 {
            0 => {
                let message = &self.1.message;
                let mut framed = vec![0];
                framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
                framed.extend_from_slice(message);
                hyper::body::Frame::data(bytes::Bytes::from(framed))
            }
            1 => {
                let trailers = self.1.trailers.clone().unwrap_or_else(|| {
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static(status));
                    trailers
                });
                hyper::body::Frame::trailers(trailers)
            }
            _ => return std::task::Poll::Ready(None),
        };
        self.0 += 1;
        std::task::Poll::Ready(Some(Ok(frame)))
    }
}

/// A throw-away PKI made for one test: a CA, a server certificate for 127.0.0.1 and localhost,
/// and a client certificate, both signed by the CA; the CA and the client's files as PEM in a
/// temporary folder (what a user would point `OTEL_EXPORTER_OTLP_*` at).
pub struct TestPki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl TestPki {
    pub fn new() -> Self {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "serve tests CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: &[&str], usage| {
            let key = KeyPair::generate().expect("key");
            let mut params =
                CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                    .expect("params");
            params.extended_key_usages = vec![usage];
            (params.signed_by(&key, &issuer).expect("sign"), key)
        };
        let (server, server_key) = leaf(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) =
            leaf(&["serve-tests-client"], ExtendedKeyUsagePurpose::ClientAuth);

        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        Self {
            ca: write("ca.pem", ca.pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            ca_der: ca.der().clone(),
            server_cert: server.der().clone(),
            server_key: server_key.serialize_der(),
            _dir: dir,
        }
    }

    /// The receiver's TLS configuration; with `client_auth` it requires a client certificate
    /// signed by the CA.
    pub fn server_config(&self, client_auth: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("CA root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.server_key.clone());
        Arc::new(
            builder
                .with_single_cert(vec![self.server_cert.clone()], key.into())
                .expect("server certificate"),
        )
    }
}

/// Runs `serve` with `env`, expecting it to fail to start; returns its stderr, one line.
/// `serve` on an ephemeral loopback port with `model`, without the `OTEL_*` and `RUST_LOG`
/// variables of the environment the tests run in: each test sets what it needs.
fn serve_command(model: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_serve"));
    command
        .args(["--addr", "127.0.0.1:0", "--model"])
        .arg(model)
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs serve with `env` added, expecting it to refuse the start; returns its one stderr line.
/// A server that starts instead is killed after 30 s and the test fails (it does not hang).
pub fn start_fails_with(model: &Path, env: &[(&str, &str)]) -> String {
    let mut child = serve_command(model)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run serve");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started with {env:?} instead of refusing to");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("serve's stderr");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}
