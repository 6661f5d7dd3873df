//! The trace of a request: its server span, named and attributed per the OpenTelemetry HTTP
//! semantic conventions, with the step spans as children; the caller's trace context in (its
//! `traceparent`, or B3 or Jaeger headers if `OTEL_PROPAGATORS` lists them, joins its trace) and
//! W3C out (`traceresponse` and `x-trace-id` name the trace).
//!
//! The spans are built as `SpanData` when the request is done (see `pipeline::telemetry::spans`
//! for why not as `tracing` spans). While the request runs, its span is the current
//! OpenTelemetry context: log lines carry its ids, and a `tracing` span opened inside becomes
//! its child.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, header};
use opentelemetry::propagation::Extractor;

use opentelemetry::trace::{Event, SpanKind, Status};
use opentelemetry::{Context, KeyValue, Value};
use pipeline::telemetry::spans::{LiteSpan, SpanBatch, UnixNanos};
use pipeline::telemetry::{SpanIds, SpanSink};

use crate::client_text::bounded;
use crate::error::ApiError;
use crate::observe::{Route, Step};

/// W3C Trace Context Level 2's response header.
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");
const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// What the server span records of the request, taken before the request is handed on.
struct RequestFacts {
    name: Cow<'static, str>,
    method: &'static str,
    route: Route,
    path: Cow<'static, str>,
    user_agent: Option<String>,
}

/// The spans of one request, finished by [`RequestTrace::finish`].
pub(crate) struct RequestTrace<'a> {
    sink: &'a SpanSink,
    ids: SpanIds,
    start: UnixNanos,
    facts: Option<RequestFacts>,
    spans: SpanBatch,
}

/// What the step spans record of a prediction.
pub(crate) struct StepFacts {
    pub bytes: usize,
    pub tokens: usize,
    pub terms: usize,
    pub oov_tokens: usize,
    pub oov_ratio: f64,
    pub weighting: &'static str,
    pub features: usize,
    pub label: &'static str,
    pub confidence: f64,
}

impl<'a> RequestTrace<'a> {
    /// Ids and sampling decision of the request's server span, in the caller's trace if the
    /// headers name one.
    pub(crate) fn start(
        sink: &'a SpanSink,
        req: &http::Request<hyper::body::Incoming>,
        method: &'static str,
        route: Route,
        path: impl FnOnce() -> Cow<'static, str>,
    ) -> Self {
        let name = span_name(method, route);
        let ids = sink.start_for_caller(&HeaderExtractor(req.headers()), &name, SpanKind::Server);
        // Only what is exported is copied.
        let facts = (ids.is_sampled() && sink.exports()).then(|| RequestFacts {
            name,
            method,
            route,
            path: path(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|agent| bounded(agent).into_owned()),
        });
        Self {
            sink,
            ids,
            start: SystemTime::now().into(),
            facts,
            spans: sink.batch(),
        }
    }

    /// The server span as an OpenTelemetry context, to attach while the request runs.
    pub(crate) fn context(&self) -> Context {
        self.ids.as_parent()
    }

    /// True when the request's spans are exported: step spans are built only then.
    pub(crate) fn records(&self) -> bool {
        self.facts.is_some()
    }

    /// Adds one child span per pipeline step, from the times the steps were measured with.
    pub(crate) fn add_steps(
        &mut self,
        wall: SystemTime,
        laps: [(Duration, Duration); 4],
        facts: &StepFacts,
    ) {
        if !self.records() {
            return;
        }
        let wall = UnixNanos::from(wall);
        for (step, (name, (start, end))) in Step::NAMES.iter().zip(laps).enumerate() {
            let mut span = LiteSpan::new(
                self.sink.child(&self.ids),
                Cow::Borrowed(name),
                SpanKind::Internal,
                (wall + start, wall + end),
            );
            match step {
                0 => span
                    .attribute("document.bytes", facts.bytes as i64)
                    .attribute("document.tokens", facts.tokens as i64),
                1 => span
                    .attribute("document.terms", facts.terms as i64)
                    .attribute("document.oov_tokens", facts.oov_tokens as i64)
                    .attribute("document.oov_ratio", facts.oov_ratio),
                2 => span
                    .attribute("model.weighting", facts.weighting)
                    .attribute("document.features", facts.features as i64),
                _ => span
                    .attribute("model.label", facts.label)
                    .attribute("model.confidence", facts.confidence),
            };
            self.spans.push(span);
        }
    }

    /// `traceresponse` and `x-trace-id` for the response (the trace's ids, whether or not it
    /// is sampled: the flag says which).
    pub(crate) fn response_headers(&self, headers: &mut HeaderMap) {
        let sc = &self.ids.context;
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        hex_into(&mut buf[3..35], &sc.trace_id().to_bytes());
        buf[35] = b'-';
        hex_into(&mut buf[36..52], &sc.span_id().to_bytes());
        buf[52] = b'-';
        hex_into(&mut buf[53..55], &[sc.trace_flags().to_u8()]);
        if let Ok(v) = HeaderValue::from_bytes(&buf) {
            headers.insert(TRACERESPONSE, v);
        }
        if let Ok(v) = HeaderValue::from_bytes(&buf[3..35]) {
            headers.insert(X_TRACE_ID, v);
        }
    }

    /// Ends the server span with the response's status and queues the request's spans.
    pub(crate) fn finish(mut self, status: u16, error: Option<&ApiError>) {
        let Some(facts) = self.facts else {
            return;
        };
        let end = SystemTime::now();
        let mut server = LiteSpan::new(
            self.ids,
            facts.name,
            SpanKind::Server,
            (self.start, end.into()),
        );
        server
            .attribute("http.request.method", facts.method)
            .attribute("url.path", facts.path)
            .attribute("url.scheme", "http")
            .attribute("network.protocol.version", "1.1")
            .attribute("http.response.status_code", i64::from(status));
        if facts.route != Route::Unmatched {
            server.attribute("http.route", facts.route.template());
        }
        if let Some(agent) = facts.user_agent {
            server.attribute("user_agent.original", agent);
        }
        if let Some(e) = error {
            let reason = e.reason().as_str();
            server.attribute("error.type", reason);
            // A warning or an error, as the access log line says, is also an event of the span.
            let (level, message) = if status >= 500 {
                server.status(Status::error(reason));
                ("ERROR", "request failed")
            } else {
                ("WARN", "request rejected")
            };
            server.event(Event::new(
                message,
                end,
                vec![
                    KeyValue::new("level", level),
                    KeyValue::new("error.type", reason),
                    KeyValue::new("error.message", Value::from(e.to_string())),
                ],
                0,
            ));
        }
        self.spans.push(server);
        self.sink.submit(self.spans);
    }
}

/// `{method} {route}` per the conventions, the method alone for an unmatched path.
fn span_name(method: &'static str, route: Route) -> Cow<'static, str> {
    match (route, method) {
        (Route::Predict, "POST") => Cow::Borrowed("POST /predict"),
        (Route::Unmatched, _) => Cow::Borrowed(method),
        _ => Cow::Owned(format!("{method} {}", route.template())),
    }
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_follow_the_http_conventions() {
        assert_eq!(span_name("POST", Route::Predict), "POST /predict");
        assert_eq!(span_name("GET", Route::Readyz), "GET /readyz");
        assert_eq!(span_name("GET", Route::Unmatched), "GET");
    }
}
