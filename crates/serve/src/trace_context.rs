//! W3C trace context in and out: the caller's `traceparent` joins its trace; the response names
//! the trace so a user can find it (`traceresponse` and `x-trace-id`).

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TraceId};
use pipeline::telemetry::push_hex;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the trace named in the headers, if any. A malformed `traceparent` is
/// ignored by the propagator: the request starts a new trace, it never fails because of it.
pub fn join_caller_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        // Fails only if the span was already started, which it is not here.
        let _ = span.set_parent(parent);
    }
}

/// `(traceresponse, trace id)` header values for `span`, or `None` without a trace.
pub fn response_headers(span: &tracing::Span) -> Option<(String, String)> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if sc.trace_id() == TraceId::INVALID {
        return None;
    }
    let mut traceresponse = String::with_capacity(55);
    traceresponse.push_str("00-");
    push_hex(&mut traceresponse, &sc.trace_id().to_bytes());
    let trace_id = traceresponse[3..].to_owned();
    traceresponse.push('-');
    push_hex(&mut traceresponse, &sc.span_id().to_bytes());
    traceresponse.push('-');
    push_hex(&mut traceresponse, &[sc.trace_flags().to_u8()]);
    Some((traceresponse, trace_id))
}
