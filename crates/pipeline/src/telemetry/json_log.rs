//! JSON log lines that carry the OpenTelemetry `trace_id` and `span_id` of the span they are
//! emitted in, at the top level, so a log query or a Loki derived field finds them with
//! `"trace_id":"(\w+)"`.
//!
//! One object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, the event's
//! fields, `span` (the current span's name), `trace_id`, `span_id`.

use std::fmt::Write as _;
use std::io::Write as _;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::ErrorCounter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;

/// A layer that writes each event as one JSON line to each of its writers (the line is formatted
/// once, whatever the number of writers).
///
/// It only handles events: unlike `tracing_subscriber::fmt::Layer`, it formats nothing when a
/// span opens, which matters when every request opens several spans. The trace ids come from the
/// current span as the whole subscriber sees it, so a per-layer level filter that hides INFO
/// spans from this layer does not lose them.
///
/// Lines are gathered and handed to the writers in chunks (at [`CHUNK_BYTES`], or by
/// [`LogFlush`] every [`FLUSH_EVERY`] and at shutdown): a `tracing_appender` non-blocking writer
/// wakes its thread for each message, and one wake-up per line per writer cost more CPU under
/// load than formatting the line.
#[derive(Debug)]
pub struct JsonLogLayer<W> {
    shared: Arc<Shared<W>>,
}

/// Lines are handed over once this many bytes are waiting.
pub const CHUNK_BYTES: usize = 128 * 1024;
/// Lines never wait longer than this (plus the writer's own delay) when [`LogFlush`] runs.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Shared<W> {
    writers: Vec<W>,
    drop_counters: Vec<ErrorCounter>,
    pending: Mutex<Pending>,
    /// Held while a chunk is written, and taken before `pending` is released, so chunks reach
    /// the writers in order while other threads go on adding lines. Holds the spare buffer.
    writing: Mutex<Pending>,
    dropped_lines: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: u64,
}

impl<W> JsonLogLayer<W> {
    /// Writes to `writer` (e.g. a `tracing_appender` non-blocking writer).
    pub fn new(writer: W) -> Self {
        Self {
            shared: Arc::new(Shared {
                writers: vec![writer],
                drop_counters: Vec::new(),
                pending: Mutex::new(Pending::default()),
                writing: Mutex::new(Pending::default()),
                dropped_lines: AtomicU64::new(0),
            }),
        }
    }

    /// Also writes every line to `writer`.
    pub fn and(mut self, writer: W) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.writers.push(writer);
        }
        self
    }

    /// Counts the chunks `counter` reports dropped, in lines.
    pub fn counting_drops(mut self, counter: ErrorCounter) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.drop_counters.push(counter);
        }
        self
    }
}

impl<W> JsonLogLayer<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    /// A handle that hands waiting lines over now; with `every`, a thread also does so at that
    /// interval for as long as the layer lives.
    pub fn flusher(&self, every: Option<Duration>) -> LogFlush<W> {
        if let Some(every) = every {
            let weak = Arc::downgrade(&self.shared);
            let _ = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(move || {
                    while let Some(shared) = weak.upgrade() {
                        shared.flush();
                        drop(shared);
                        std::thread::sleep(every);
                    }
                });
        }
        LogFlush(self.shared.clone())
    }
}

impl<W> Shared<W>
where
    W: for<'w> MakeWriter<'w>,
{
    fn push(&self, line: &str) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        pending.bytes.extend_from_slice(line.as_bytes());
        pending.lines += 1;
        if pending.bytes.len() >= CHUNK_BYTES {
            self.hand_over(pending);
        }
    }

    fn flush(&self) {
        if let Ok(pending) = self.pending.lock() {
            self.hand_over(pending);
        }
    }

    /// Swaps the waiting lines out and writes them to every writer after releasing `pending`:
    /// writing a chunk copies it once per writer, and other threads logging meanwhile used to
    /// wait for that (a futex sleep and wake-up on a busy worker).
    fn hand_over(&self, mut pending: MutexGuard<'_, Pending>) {
        if pending.bytes.is_empty() {
            return;
        }
        let Ok(mut chunk) = self.writing.lock() else {
            return;
        };
        std::mem::swap(&mut *pending, &mut *chunk);
        drop(pending);
        let before: usize = self
            .drop_counters
            .iter()
            .map(ErrorCounter::dropped_lines)
            .sum();
        for writer in &self.writers {
            let _ = writer.make_writer().write_all(&chunk.bytes);
        }
        let after: usize = self
            .drop_counters
            .iter()
            .map(ErrorCounter::dropped_lines)
            .sum();
        let chunks_dropped = after.saturating_sub(before) as u64;
        self.dropped_lines
            .fetch_add(chunks_dropped * chunk.lines, Ordering::Relaxed);
        chunk.bytes.clear();
        chunk.lines = 0;
    }
}

/// Hands the layer's waiting lines to its writers; see [`JsonLogLayer::flusher`].
#[derive(Debug, Clone)]
pub struct LogFlush<W>(Arc<Shared<W>>);

impl<W> LogFlush<W>
where
    W: for<'w> MakeWriter<'w>,
{
    /// Writes what is waiting now.
    pub fn flush(&self) {
        self.0.flush();
    }

    /// Lines lost because a writer's queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.0.dropped_lines.load(Ordering::Relaxed)
    }
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLogLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        self.shared.push(&format_line(event));
    }
}

/// The JSON line of one event, newline included.
///
/// Written without `core::fmt` (timestamp, numbers and ids by hand or with `itoa`/`ryu`): this
/// runs once per request and formatting through `fmt` was most of its cost.
fn format_line(event: &Event<'_>) -> String {
    let mut line = String::with_capacity(512);
    line.push_str("{\"timestamp\":\"");
    push_timestamp(&mut line, std::time::SystemTime::now());
    let meta = event.metadata();
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push_str("\",\"target\":");
    push_json_str(&mut line, meta.target());
    event.record(&mut JsonFields { out: &mut line });
    let in_tracing_span = tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let (Some(id), Some(meta)) = (current.id(), current.metadata()) else {
            return false;
        };
        line.push_str(",\"span\":");
        push_json_str(&mut line, meta.name());
        if let Some(cx) = tracing_opentelemetry::get_otel_context(id, dispatch) {
            push_otel_ids(&mut line, cx.span().span_context());
        }
        true
    });
    if !in_tracing_span {
        // A span made without `tracing` (a request's, see `spans`) is attached as the current
        // OpenTelemetry context while its work runs.
        opentelemetry::Context::map_current(|cx| {
            push_otel_ids(&mut line, cx.span().span_context())
        });
    }
    line.push_str("}\n");
    line
}

/// Appends the ids of a span (those that get exported), if it has any.
fn push_otel_ids(line: &mut String, sc: &opentelemetry::trace::SpanContext) {
    if sc.trace_id() != TraceId::INVALID {
        line.push_str(",\"trace_id\":\"");
        super::push_hex(line, &sc.trace_id().to_bytes());
        line.push_str("\",\"span_id\":\"");
        super::push_hex(line, &sc.span_id().to_bytes());
        line.push('"');
    }
}

/// Appends `t` as RFC 3339 UTC with microseconds (`2026-11-25T09:30:00.123456Z`), the format of
/// `tracing_subscriber`'s `SystemTime` timer. The date and time of day are formatted once per
/// second and thread; only the microseconds change between most lines.
fn push_timestamp(out: &mut String, t: std::time::SystemTime) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 20])> =
            const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = SECOND.with(|cached| {
        let (at, prefix) = cached.get();
        if at == secs {
            return prefix;
        }
        let prefix = format_second(secs);
        cached.set((secs, prefix));
        prefix
    });
    let mut tail = *b"000000Z";
    put_digits(&mut tail[..6], u64::from(since.subsec_micros()));
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(&prefix).unwrap_or_default());
    out.push_str(std::str::from_utf8(&tail).unwrap_or_default());
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix time in seconds.
fn format_second(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let day_secs = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.";
    put_digits(&mut buf[0..4], year.clamp(0, 9999) as u64);
    put_digits(&mut buf[5..7], u64::from(month));
    put_digits(&mut buf[8..10], u64::from(day));
    put_digits(&mut buf[11..13], day_secs / 3600);
    put_digits(&mut buf[14..16], day_secs / 60 % 60);
    put_digits(&mut buf[17..19], day_secs % 60);
    buf
}

/// Writes the last `out.len()` decimal digits of `v` into `out`.
fn put_digits(out: &mut [u8], mut v: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Year, month (1..=12) and day (1..=31) of a count of days since 1970-01-01, proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        self.out.push('"');
        // Formatted straight into the line, escaped piece by piece (no intermediate String).
        let _ = write!(JsonEscaped(self.out), "{value:?}");
        self.out.push('"');
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            self.out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            self.out.push_str("null");
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        push_json_str(self.out, &value.to_string());
    }
}

/// Writes what is formatted into it as the inside of a JSON string literal.
struct JsonEscaped<'a>(&'a mut String);

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        push_json_escaped(self.0, s);
        Ok(())
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_escaped(out, s);
    out.push('"');
}

/// True when some byte of `s` must be escaped in a JSON string (a control character, `"` or
/// `\\`), tested 8 bytes at a time: nearly every string in a log line needs no escape, and a
/// byte-by-byte scan of each one was the largest part of formatting a line.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `v` is below `n` (n <= 128), exactly ("hasless" from Bit Twiddling Hacks).
    let has_less = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let has_byte = |v: u64, b: u8| has_less(v ^ (ONES * u64::from(b)), 1);
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word);
        if has_less(v, 0x20) || has_byte(v, b'"') || has_byte(v, b'\\') {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` escaped for a JSON string; runs of characters that need no escape are copied whole.
fn push_json_escaped(out: &mut String, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        return;
    }
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
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

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        // Expected values from Python's datetime.fromtimestamp(s, timezone.utc).
        let at = |secs: u64, micros: u64| {
            let mut s = String::new();
            let t =
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(secs * 1_000_000 + micros);
            push_timestamp(&mut s, t);
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(1_795_000_000, 120_000), "2026-11-18T11:06:40.120000Z");
        // The same second again (from the per-second cache), then the next one.
        assert_eq!(at(1_795_000_000, 5), "2026-11-18T11:06:40.000005Z");
        assert_eq!(at(1_795_000_001, 5), "2026-11-18T11:06:41.000005Z");
        assert_eq!(at(0, 999_999), "1970-01-01T00:00:00.999999Z");
    }

    #[test]
    fn the_word_scan_finds_every_byte_that_needs_an_escape() {
        // Every byte value at every position of strings of up to 20 bytes, against the plain test.
        for len in 1..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&s), expected, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape(
            "plain ascii and é, ü and 中文 text".as_bytes()
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::from("{\"a\":");
        push_json_str(&mut s, "tab\there \"q\" \u{7f} \u{1f}");
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["a"], "tab\there \"q\" \u{7f} \u{1f}");
    }
    /// Collects what the layer writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn an_event_is_one_json_line_with_its_typed_fields() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let out = Captured::default();
        let layer = JsonLogLayer::new(out.clone()).and(out.clone());
        let flush = layer.flusher(None);
        let subscriber = tracing_subscriber::Registry::default().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let reason = "say \"hi\"\n";
            tracing::warn!(count = 3u64, delta = -2i64, ms = 0.25, ok = true, why = %reason, "a \"quoted\" {}", 1);
        });
        assert!(
            out.0.lock().is_ok_and(|v| v.is_empty()),
            "held until flushed"
        );
        flush.flush();
        let bytes = out.0.lock().map(|v| v.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one line per writer: {text}");
        assert_eq!(lines[0], lines[1]);
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("valid JSON");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "a \"quoted\" 1");
        assert_eq!(v["why"], "say \"hi\"\n");
        assert_eq!(
            (v["count"].as_u64(), v["delta"].as_i64()),
            (Some(3), Some(-2))
        );
        assert_eq!(
            (v["ms"].as_f64(), v["ok"].as_bool()),
            (Some(0.25), Some(true))
        );
        assert!(
            v["timestamp"]
                .as_str()
                .is_some_and(|t| t.len() == 27 && t.ends_with('Z'))
        );
        assert!(v.get("trace_id").is_none(), "no span, no trace id");
    }

    #[test]
    fn lines_from_threads_logging_at_once_arrive_whole_once_and_in_order_per_thread() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let out = Captured::default();
        let layer = JsonLogLayer::new(out.clone());
        let flush = layer.flusher(None);
        let dispatch = tracing::Dispatch::new(tracing_subscriber::Registry::default().with(layer));
        // Several chunks' worth (lines of about 150 bytes), from four threads at once.
        let (threads, per_thread) = (4u64, 2_500u64);
        std::thread::scope(|s| {
            for t in 0..threads {
                let dispatch = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..per_thread {
                            tracing::info!(thread = t, seq = i, "a line");
                        }
                    });
                });
            }
        });
        flush.flush();
        let bytes = out.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(
            bytes.len() > 2 * CHUNK_BYTES,
            "several chunks: {}",
            bytes.len()
        );
        let text = String::from_utf8(bytes).expect("UTF-8");
        let mut next = vec![0u64; threads as usize];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
            let (t, seq) = (v["thread"].as_u64(), v["seq"].as_u64());
            let (Some(t), Some(seq)) = (t, seq) else {
                panic!("fields missing: {line}");
            };
            assert_eq!(seq, next[t as usize], "thread {t} out of order or repeated");
            next[t as usize] += 1;
        }
        assert_eq!(next, vec![per_thread; threads as usize], "every line, once");
    }
}
