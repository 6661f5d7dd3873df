//! JSON log lines that carry the OpenTelemetry `trace_id` and `span_id` of the span they are
//! emitted in, at the top level, so a log query or a Loki derived field finds them with
//! `"trace_id":"(\w+)"`.
//!
//! One object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, the event's
//! fields, `span` (the current span's name), `trace_id`, `span_id`.

use std::fmt::Write as _;
use std::io::Write as _;

use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;

/// A layer that writes each event as one JSON line to each of its writers (the line is formatted
/// once, whatever the number of writers).
///
/// It only handles events: unlike `tracing_subscriber::fmt::Layer`, it formats nothing when a
/// span opens, which matters when every request opens several spans. The trace ids come from the
/// current span as the whole subscriber sees it, so a per-layer level filter that hides INFO
/// spans from this layer does not lose them.
#[derive(Debug)]
pub struct JsonLogLayer<W> {
    writers: Vec<W>,
}

impl<W> JsonLogLayer<W> {
    /// Writes to `writer` (e.g. a `tracing_appender` non-blocking writer).
    pub fn new(writer: W) -> Self {
        Self {
            writers: vec![writer],
        }
    }

    /// Also writes every line to `writer`.
    pub fn and(mut self, writer: W) -> Self {
        self.writers.push(writer);
        self
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLogLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = format_line(event);
        for writer in &self.writers {
            let _ = writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
        }
    }
}

/// The JSON line of one event, newline included.
fn format_line(event: &Event<'_>) -> String {
    let mut line = String::with_capacity(320);
    line.push_str("{\"timestamp\":\"");
    let _ = SystemTime.format_time(&mut Writer::new(&mut line));
    let meta = event.metadata();
    let _ = write!(line, "\",\"level\":\"{}\",\"target\":", meta.level());
    push_json_str(&mut line, meta.target());
    event.record(&mut JsonFields { out: &mut line });
    tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        if let (Some(id), Some(meta)) = (current.id(), current.metadata()) {
            line.push_str(",\"span\":");
            push_json_str(&mut line, meta.name());
            push_otel_ids(&mut line, id, dispatch);
        }
    });
    line.push_str("}\n");
    line
}

/// Appends the ids the OpenTelemetry layer gave a span (they are what gets exported), if any.
fn push_otel_ids(line: &mut String, id: &tracing::span::Id, dispatch: &tracing::Dispatch) {
    let Some(cx) = tracing_opentelemetry::get_otel_context(id, dispatch) else {
        return;
    };
    let span = cx.span();
    let sc = span.span_context();
    if sc.trace_id() != TraceId::INVALID {
        let _ = write!(
            line,
            ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            sc.trace_id(),
            sc.span_id()
        );
    }
}

struct JsonFields<'a> {
    out: &'a mut String,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.out.push(',');
        push_json_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        push_json_str(self.out, &format!("{value:?}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            self.out.push_str("null");
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        push_json_str(self.out, &value.to_string());
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        let back: String = serde_json::from_str(&s).expect("valid JSON string");
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
