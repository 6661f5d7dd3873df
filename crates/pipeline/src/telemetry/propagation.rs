//! The caller's span, read from a request's headers in the formats `OTEL_PROPAGATORS` names:
//! W3C `traceparent`/`tracestate` (`tracecontext`), B3 in its single-header (`b3: ...`) or
//! multi-header (`X-B3-*`) encoding (`b3` and `b3multi`: Zipkin-instrumented callers and meshes
//! whose proxies send B3, such as Envoy/Istio set up for Zipkin), Jaeger's `uber-trace-id`
//! (`jaeger`), AWS X-Ray's `X-Amzn-Trace-Id` (`xray`: callers behind an AWS load balancer or API
//! Gateway, or instrumented with the X-Ray SDKs) and OpenTracing's `ot-tracer-*` headers
//! (`ottrace`: callers still on an OpenTracing tracer).
//!
//! Extraction only: the server joins its caller's trace and calls nothing downstream, so it never
//! writes these headers. Why not the ecosystem's propagators: B3's lives in the Zipkin exporter
//! crate and reads a B3 caller that leaves the sampling decision to the receiver (no sampled
//! flag, which the B3 specification allows) as "not sampled", which drops those traces under the
//! default parent-based sampler; here the configured sampler decides, as for a new trace, in the
//! caller's trace. Jaeger's (`opentelemetry-jaeger-propagator`) is still built for
//! opentelemetry 0.32, one release behind the SDK here.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// A trace-context format a caller's headers may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    TraceContext,
    /// B3, single header `b3` first, then the `X-B3-*` headers (both `b3` and `b3multi` read
    /// both encodings, as the OpenTelemetry specification asks of a B3 extractor).
    B3,
    /// Jaeger's `uber-trace-id`.
    Jaeger,
    /// AWS X-Ray's `X-Amzn-Trace-Id`.
    XRay,
    /// OpenTracing's `ot-tracer-traceid`, `ot-tracer-spanid` and `ot-tracer-sampled`.
    OtTrace,
}

impl Format {
    /// The format an `OTEL_PROPAGATORS` name stands for (lowercase), if this server reads it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tracecontext" => Some(Self::TraceContext),
            "b3" | "b3multi" => Some(Self::B3),
            "jaeger" => Some(Self::Jaeger),
            "xray" => Some(Self::XRay),
            "ottrace" => Some(Self::OtTrace),
            _ => None,
        }
    }

    /// The `OTEL_PROPAGATORS` name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Self::TraceContext => "tracecontext",
            Self::B3 => "b3",
            Self::Jaeger => "jaeger",
            Self::XRay => "xray",
            Self::OtTrace => "ottrace",
        }
    }

    fn extract(self, headers: &dyn Extractor) -> Option<CallerSpan> {
        match self {
            Self::TraceContext => trace_context(headers),
            Self::B3 => headers
                .get("b3")
                .and_then(b3_single)
                .or_else(|| b3_multi(headers)),
            Self::Jaeger => headers.get("uber-trace-id").and_then(jaeger),
            Self::XRay => headers.get("x-amzn-trace-id").and_then(xray),
            Self::OtTrace => ot_trace(headers),
        }
    }
}

/// The caller's span as its headers name it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerSpan {
    /// Its trace id, span id, sampled flag and (W3C only) trace state; remote and valid.
    pub context: SpanContext,
    /// False when the caller left the sampling decision to this server (B3, X-Ray or OpenTracing
    /// headers without a sampling state, or X-Ray's `Sampled=?`): the sampled flag then means
    /// nothing.
    pub decided: bool,
}

/// The formats read from requests, in the order `OTEL_PROPAGATORS` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation(Vec<Format>);

impl Default for Propagation {
    /// `tracecontext`, as with `OTEL_PROPAGATORS` unset.
    fn default() -> Self {
        Self(vec![Format::TraceContext])
    }
}

impl Propagation {
    /// The formats given, each once, in their first position.
    pub fn new(formats: impl IntoIterator<Item = Format>) -> Self {
        let mut kept = Vec::new();
        for format in formats {
            if !kept.contains(&format) {
                kept.push(format);
            }
        }
        Self(kept)
    }

    /// The formats read, in order (empty: every request starts a new trace).
    pub fn formats(&self) -> &[Format] {
        &self.0
    }

    /// The formats' names, comma-separated as `OTEL_PROPAGATORS` writes them (`none` if empty).
    pub fn names(&self) -> String {
        if self.0.is_empty() {
            return "none".to_owned();
        }
        let names: Vec<&str> = self.0.iter().map(|f| f.name()).collect();
        names.join(",")
    }

    /// The caller's span, if a listed format names a valid one. When several do, the last listed
    /// wins, as extraction through a composite propagator does. Malformed headers are ignored.
    pub fn extract(&self, headers: &dyn Extractor) -> Option<CallerSpan> {
        self.0
            .iter()
            .rev()
            .find_map(|format| format.extract(headers))
    }
}

fn trace_context(headers: &dyn Extractor) -> Option<CallerSpan> {
    // Checked first: most requests carry none, and the SDK's extractor builds a context anyway.
    headers.get("traceparent")?;
    let cx = TraceContextPropagator::new().extract(headers);
    let context = cx.span().span_context().clone();
    context.is_valid().then_some(CallerSpan {
        context,
        decided: true,
    })
}

/// `b3: {trace id}-{span id}[-{sampling state}[-{parent span id}]]`. A sampling state alone
/// (`b3: 0`) names no span and is ignored.
fn b3_single(value: &str) -> Option<CallerSpan> {
    let mut parts = value.trim().split('-');
    let trace_id = padded_trace_id(parts.next()?)?;
    let span_id = span_id_16(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        span_id_16(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    remote(trace_id, span_id, sampled)
}

/// `X-B3-TraceId`, `X-B3-SpanId`, and optionally `X-B3-Sampled` (`1`/`0`, or the older
/// `true`/`false`) and `X-B3-Flags: 1` (debug, which means sampled).
fn b3_multi(headers: &dyn Extractor) -> Option<CallerSpan> {
    let trace_id = padded_trace_id(headers.get("x-b3-traceid")?.trim())?;
    let span_id = span_id_16(headers.get("x-b3-spanid")?.trim())?;
    let debug = headers.get("x-b3-flags").map(str::trim) == Some("1");
    let sampled = match headers.get("x-b3-sampled").map(str::trim) {
        _ if debug => Some(true),
        None => None,
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(_) => return None,
    };
    remote(trace_id, span_id, sampled)
}

/// A trace id of 32 hex digits, or of 16 left-padded to 128 bits (as B3 and OpenTracing
/// tracers with 64-bit ids send them; the B3 specification says how to widen them).
fn padded_trace_id(hex: &str) -> Option<TraceId> {
    matches!(hex.len(), 16 | 32)
        .then(|| parse_hex(hex, 32))
        .flatten()
        .map(TraceId::from)
}

/// A span id of exactly 16 hex digits (B3, X-Ray, OpenTracing).
fn span_id_16(hex: &str) -> Option<SpanId> {
    (hex.len() == 16)
        .then(|| parse_hex(hex, 16))
        .flatten()
        .and_then(|id| u64::try_from(id).ok())
        .map(SpanId::from)
}

/// `uber-trace-id: {trace id}:{span id}:{parent span id}:{flags}`, ids in hex with leading
/// zeros optional, flags a hex byte (1 sampled, 2 debug, which means sampled). Some clients send
/// the colons URL-encoded (`%3A`).
fn jaeger(value: &str) -> Option<CallerSpan> {
    let value = value.trim();
    let decoded;
    let value = if value.contains('%') {
        decoded = value.replace("%3A", ":").replace("%3a", ":");
        decoded.as_str()
    } else {
        value
    };
    let mut parts = value.split(':');
    let trace_id = TraceId::from(parse_hex(parts.next()?, 32)?);
    let span_id = SpanId::from(u64::try_from(parse_hex(parts.next()?, 16)?).ok()?);
    parse_hex(parts.next()?, 16)?; // the parent span id, deprecated and unused
    let flags = u8::try_from(parse_hex(parts.next()?, 2)?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    remote(trace_id, span_id, Some(flags & 0b11 != 0))
}

/// `X-Amzn-Trace-Id: Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={1|0|?}`, the fields in
/// any order and spaced freely. The root's two parts make the 128-bit trace id. Other fields
/// (`Self`, which AWS load balancers add, `Lineage`, a caller's own) are ignored. No `Parent`
/// (a header a load balancer started, with no span to join) names no span. `Sampled=?` or no
/// `Sampled` leaves the decision to this server.
fn xray(value: &str) -> Option<CallerSpan> {
    let (mut root, mut parent, mut sampled) = (None, None, None);
    for field in value.split(';').map(str::trim).filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=')?;
        match key.trim() {
            "Root" => root = Some(xray_trace_id(value.trim())?),
            "Parent" => parent = Some(span_id_16(value.trim())?),
            "Sampled" => {
                sampled = match value.trim() {
                    "1" => Some(true),
                    "0" => Some(false),
                    "?" => None,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    remote(root?, parent?, sampled)
}

/// `1-{8 hex digits}-{24 hex digits}`: version 1, then the trace id in two parts.
fn xray_trace_id(root: &str) -> Option<TraceId> {
    let (time, unique) = root.strip_prefix("1-")?.split_once('-')?;
    if time.len() != 8 || unique.len() != 24 {
        return None;
    }
    let high = parse_hex(time, 8)?;
    let low = parse_hex(unique, 24)?;
    Some(TraceId::from(high << 96 | low))
}

/// `ot-tracer-traceid` (16 or 32 hex digits, the shorter left-padded), `ot-tracer-spanid`, and
/// optionally `ot-tracer-sampled`: `true`/`false`, or the `1`/`0` some tracers write.
fn ot_trace(headers: &dyn Extractor) -> Option<CallerSpan> {
    let trace_id = padded_trace_id(headers.get("ot-tracer-traceid")?.trim())?;
    let span_id = span_id_16(headers.get("ot-tracer-spanid")?.trim())?;
    let sampled = match headers.get("ot-tracer-sampled").map(str::trim) {
        None => None,
        Some(s) if s == "1" || s.eq_ignore_ascii_case("true") => Some(true),
        Some(s) if s == "0" || s.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => return None,
    };
    remote(trace_id, span_id, sampled)
}

/// Digits only: `from_str_radix` alone would take a sign.
fn parse_hex(hex: &str, max_digits: usize) -> Option<u128> {
    let digits =
        !hex.is_empty() && hex.len() <= max_digits && hex.bytes().all(|b| b.is_ascii_hexdigit());
    digits.then(|| u128::from_str_radix(hex, 16).ok()).flatten()
}

/// A caller's span; `None` for the all-zero ids no format allows.
fn remote(trace_id: TraceId, span_id: SpanId, sampled: Option<bool>) -> Option<CallerSpan> {
    let flags = if sampled == Some(true) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let context = SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE);
    context.is_valid().then_some(CallerSpan {
        context,
        decided: sampled.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// (trace id, span id, sampled, decided) of what `formats` read from `pairs`.
    fn read(formats: &[Format], pairs: &[(&str, &str)]) -> Option<(String, String, bool, bool)> {
        let caller = Propagation::new(formats.iter().copied()).extract(&headers(pairs))?;
        let sc = &caller.context;
        assert!(sc.is_remote() && sc.is_valid());
        Some((
            format!("{:032x}", sc.trace_id()),
            format!("{:016x}", sc.span_id()),
            sc.is_sampled(),
            caller.decided,
        ))
    }

    fn ids(trace: &str, sampled: bool, decided: bool) -> Option<(String, String, bool, bool)> {
        Some((trace.to_owned(), SPAN.to_owned(), sampled, decided))
    }

    #[test]
    fn b3_single_header_reads_ids_and_the_sampling_state() {
        let b3 = |v: &str| read(&[Format::B3], &[("b3", v)]);
        assert_eq!(b3(&format!("{TRACE}-{SPAN}-1")), ids(TRACE, true, true));
        assert_eq!(b3(&format!("{TRACE}-{SPAN}-0")), ids(TRACE, false, true));
        assert_eq!(b3(&format!("{TRACE}-{SPAN}-d")), ids(TRACE, true, true));
        assert_eq!(
            b3(&format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90")),
            ids(TRACE, true, true)
        );
        // No sampling state: the receiver decides.
        assert_eq!(b3(&format!("{TRACE}-{SPAN}")), ids(TRACE, false, false));
        // A 64-bit trace id is left-padded.
        assert_eq!(
            b3(&format!("a3ce929d0e0e4736-{SPAN}-1")),
            ids("0000000000000000a3ce929d0e0e4736", true, true)
        );
    }

    #[test]
    fn malformed_b3_single_headers_are_ignored() {
        for bad in [
            "0".to_owned(),
            "1".to_owned(),
            "d".to_owned(),
            String::new(),
            TRACE.to_owned(),
            format!("{TRACE}-{SPAN}-2"),
            format!("{TRACE}-{SPAN}-1-zz"),
            format!("{TRACE}-{SPAN}-1-05e3ac9a4f6e3b90-extra"),
            format!("{}-{SPAN}-1", &TRACE[1..]),
            format!("{TRACE}-{}-1", &SPAN[1..]),
            format!("{TRACE}-+0f067aa0ba902b7-1"),
            format!("{}-{SPAN}-1", "0".repeat(32)),
            format!("{TRACE}-{}-1", "0".repeat(16)),
        ] {
            assert_eq!(read(&[Format::B3], &[("b3", &bad)]), None, "{bad:?}");
        }
    }

    #[test]
    fn b3_multi_headers_are_read_and_the_single_header_takes_precedence() {
        let multi = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
            pairs.extend_from_slice(extra);
            read(&[Format::B3], &pairs)
        };
        assert_eq!(multi(&[("x-b3-sampled", "1")]), ids(TRACE, true, true));
        assert_eq!(multi(&[("x-b3-sampled", "true")]), ids(TRACE, true, true));
        assert_eq!(multi(&[("x-b3-sampled", "0")]), ids(TRACE, false, true));
        assert_eq!(multi(&[]), ids(TRACE, false, false));
        assert_eq!(
            multi(&[("x-b3-sampled", "0"), ("x-b3-flags", "1")]),
            ids(TRACE, true, true),
            "debug means sampled"
        );
        assert_eq!(multi(&[("x-b3-sampled", "yes")]), None);
        assert_eq!(
            read(&[Format::B3], &[("x-b3-traceid", TRACE)]),
            None,
            "no span id"
        );

        let other = "0af7651916cd43dd8448eb211c80319c";
        let single = format!("{other}-{SPAN}-1");
        assert_eq!(
            multi(&[("b3", single.as_str())]),
            ids(other, true, true),
            "the single header wins"
        );
        assert_eq!(
            multi(&[("b3", "garbage"), ("x-b3-sampled", "1")]),
            ids(TRACE, true, true),
            "a malformed single header falls back to the multi headers"
        );
    }

    #[test]
    fn jaeger_reads_short_ids_flags_and_encoded_colons() {
        let jaeger = |v: &str| read(&[Format::Jaeger], &[("uber-trace-id", v)]);
        assert_eq!(
            jaeger(&format!("{TRACE}:{SPAN}:0:1")),
            ids(TRACE, true, true)
        );
        assert_eq!(
            jaeger(&format!("{TRACE}:{SPAN}:0:0")),
            ids(TRACE, false, true)
        );
        assert_eq!(
            jaeger(&format!("{TRACE}:{SPAN}:0:3")),
            ids(TRACE, true, true)
        );
        assert_eq!(
            jaeger(&format!("{TRACE}:{SPAN}:0:2")),
            ids(TRACE, true, true),
            "debug means sampled"
        );
        assert_eq!(
            jaeger(&format!("{TRACE}%3A{SPAN}%3a0%3A1")),
            ids(TRACE, true, true)
        );
        assert_eq!(
            jaeger("a3ce929d0e0e4736:f067aa0ba902b7:0:01"),
            ids("0000000000000000a3ce929d0e0e4736", true, true)
        );
        for bad in [
            format!("{TRACE}:{SPAN}:0"),
            format!("{TRACE}:{SPAN}:0:1:0"),
            format!("{TRACE}:{SPAN}:0:100"),
            format!("{TRACE}0:{SPAN}:0:1"),
            format!("{TRACE}:{SPAN}:x:1"),
            format!("0:{SPAN}:0:1"),
            format!("{TRACE}:0:0:1"),
            format!("{TRACE}::0:1"),
        ] {
            assert_eq!(jaeger(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn xray_reads_root_parent_and_sampled_in_any_order_among_other_fields() {
        let xray = |v: &str| read(&[Format::XRay], &[("x-amzn-trace-id", v)]);
        let root = "1-4bf92f35-77b34da6a3ce929d0e0e4736";
        assert_eq!(
            xray(&format!("Root={root};Parent={SPAN};Sampled=1")),
            ids(TRACE, true, true)
        );
        assert_eq!(
            xray(&format!(
                "Self=1-67891234-abcdef012345678912345678; Sampled=0 ;Parent={SPAN};Root={root};Lineage=a87bd80c:1|68fd508a:5;"
            )),
            ids(TRACE, false, true)
        );
        // Deferred, or no decision: this server's sampler decides.
        assert_eq!(
            xray(&format!("Root={root};Parent={SPAN};Sampled=?")),
            ids(TRACE, false, false)
        );
        assert_eq!(
            xray(&format!("Root={root};Parent={SPAN}")),
            ids(TRACE, false, false)
        );
        for bad in [
            format!("Root={root};Sampled=1"),
            format!("Parent={SPAN};Sampled=1"),
            format!("Root={root};Parent={SPAN};Sampled=yes"),
            format!("Root=2-4bf92f35-77b34da6a3ce929d0e0e4736;Parent={SPAN}"),
            format!("Root=1-4bf92f3-577b34da6a3ce929d0e0e4736;Parent={SPAN}"),
            format!("Root=1-4bf92f35-77b34da6a3ce929d0e0e47;Parent={SPAN}"),
            format!("Root=1-4bf92f35-77b34da6a3ce929d0e0e473z;Parent={SPAN}"),
            format!("Root={root};Parent={}", &SPAN[1..]),
            format!("Root=1-00000000-000000000000000000000000;Parent={SPAN}"),
            format!("Root={root};Parent={SPAN};garbage"),
            String::new(),
        ] {
            assert_eq!(xray(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ottrace_reads_short_or_long_ids_and_a_boolean_or_bit_sampled_flag() {
        let ot = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("ot-tracer-traceid", TRACE), ("ot-tracer-spanid", SPAN)];
            pairs.extend_from_slice(extra);
            read(&[Format::OtTrace], &pairs)
        };
        assert_eq!(ot(&[("ot-tracer-sampled", "true")]), ids(TRACE, true, true));
        assert_eq!(ot(&[("ot-tracer-sampled", "1")]), ids(TRACE, true, true));
        assert_eq!(
            ot(&[("ot-tracer-sampled", "False")]),
            ids(TRACE, false, true)
        );
        assert_eq!(ot(&[("ot-tracer-sampled", "0")]), ids(TRACE, false, true));
        assert_eq!(ot(&[]), ids(TRACE, false, false));
        assert_eq!(ot(&[("ot-tracer-sampled", "maybe")]), None);
        assert_eq!(
            read(
                &[Format::OtTrace],
                &[
                    ("ot-tracer-traceid", "a3ce929d0e0e4736"),
                    ("ot-tracer-spanid", SPAN),
                    ("ot-tracer-sampled", "true"),
                ]
            ),
            ids("0000000000000000a3ce929d0e0e4736", true, true)
        );
        assert_eq!(
            read(&[Format::OtTrace], &[("ot-tracer-traceid", TRACE)]),
            None,
            "no span id"
        );
        assert_eq!(
            read(
                &[Format::OtTrace],
                &[
                    ("ot-tracer-traceid", &TRACE[2..]),
                    ("ot-tracer-spanid", SPAN)
                ]
            ),
            None,
            "30 digits"
        );
    }

    #[test]
    fn traceparent_is_read_with_its_tracestate() {
        let traceparent = format!("00-{TRACE}-{SPAN}-01");
        let pairs = [
            ("traceparent", traceparent.as_str()),
            ("tracestate", "vendor=opaque"),
        ];
        let caller = Propagation::default()
            .extract(&headers(&pairs))
            .expect("a caller");
        assert!(caller.decided && caller.context.is_sampled());
        assert_eq!(caller.context.trace_state().get("vendor"), Some("opaque"));
        assert_eq!(
            read(&[Format::TraceContext], &[("traceparent", "00-zz-01")]),
            None
        );
    }

    #[test]
    fn only_listed_formats_are_read_and_the_last_listed_wins() {
        let other = "0af7651916cd43dd8448eb211c80319c";
        let traceparent = format!("00-{TRACE}-{SPAN}-01");
        let b3 = format!("{other}-{SPAN}-1");
        let pairs = [("traceparent", traceparent.as_str()), ("b3", b3.as_str())];
        let trace = |formats: &[Format]| read(formats, &pairs).map(|(t, ..)| t);
        assert_eq!(trace(&[Format::TraceContext]), Some(TRACE.to_owned()));
        assert_eq!(trace(&[Format::B3]), Some(other.to_owned()));
        assert_eq!(
            trace(&[Format::TraceContext, Format::B3]),
            Some(other.to_owned())
        );
        assert_eq!(
            trace(&[Format::B3, Format::TraceContext]),
            Some(TRACE.to_owned())
        );
        assert_eq!(trace(&[Format::Jaeger]), None);
        assert_eq!(trace(&[]), None);
        // A listed format whose header is malformed does not hide an earlier one's span.
        let broken = [("traceparent", traceparent.as_str()), ("b3", "nonsense")];
        assert!(
            Propagation::new([Format::TraceContext, Format::B3])
                .extract(&headers(&broken))
                .is_some()
        );
    }

    #[test]
    fn names_map_to_formats_each_kept_once() {
        assert_eq!(Format::from_name("b3multi"), Some(Format::B3));
        assert_eq!(Format::from_name("xray-lambda"), None);
        for format in [
            Format::TraceContext,
            Format::B3,
            Format::Jaeger,
            Format::XRay,
            Format::OtTrace,
        ] {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        let p = Propagation::new([Format::B3, Format::Jaeger, Format::B3]);
        assert_eq!(p.formats(), [Format::B3, Format::Jaeger]);
        assert_eq!(Propagation::default().formats(), [Format::TraceContext]);
        assert_eq!(p.names(), "b3,jaeger");
        assert_eq!(Propagation::new([]).names(), "none");
    }
}
