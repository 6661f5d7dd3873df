//! The OTLP/HTTP protobuf span exporter, with the request body encoded straight from the SDK's
//! `SpanData` into one reused buffer.
//!
//! The SDK's exporter first converts every span into `opentelemetry-proto` structures (a `String`
//! or `Vec` per id, name, key and value, grouped through a hash map), then encodes them with
//! prost, which measures each nested message again at every level, then frees it all: about
//! 11,000 instructions per span, more than the rest of the span's life. Here the same protobuf
//! message is written field by field; only the resource and scope, which never change, go through
//! the proto types. Request spans arrive already encoded (`export::EncodedChunk`): a batch of
//! them becomes the request body in one copy, its lengths summed up front.
//!
//! Everything else stays the SDK's: the endpoint, headers, timeout and compression resolved from
//! the `OTEL_*` variables, the request, the status and partial-success handling. The SDK exporter
//! is asked to export an empty batch through an HTTP client that puts the body encoded here in
//! the request (gzip-compressed when the SDK's request says so).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope as ProtoScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;

use super::export::{Queued, QueuedExporter, from_span_data};
use super::spans::{LiteSpan, LiteValue, UnixNanos};

/// OTLP/HTTP protobuf span exporter (see the module documentation).
#[derive(Debug)]
pub struct HttpProtoExporter {
    inner: opentelemetry_otlp::SpanExporter,
    body: Arc<Mutex<Bytes>>,
    /// Shared with the client (see [`BodyClient`]).
    last_error: Arc<Mutex<Option<String>>>,
    /// Shared with the client too.
    rejected: Arc<Mutex<Option<(u64, String)>>>,
    /// The encoded `Resource` message and the resource's schema URL.
    resource: (Vec<u8>, String),
    encoder: SharedEncoder,
}

/// The [`Encoder`] an exporter's sends share (one export runs at a time; the lock is uncontended).
#[derive(Debug, Default)]
pub(super) struct SharedEncoder(Mutex<Encoder>);

impl SharedEncoder {
    /// The `ExportTraceServiceRequest` of `batch` (see [`Encoder::request`]).
    pub(super) fn request_of(
        &self,
        batch: &[Queued],
        resource: &(Vec<u8>, String),
    ) -> Result<Bytes, OTelSdkError> {
        match self.0.lock() {
            Ok(mut encoder) => Ok(encoder.request(batch, resource)),
            Err(_) => Err(OTelSdkError::InternalFailure(
                "span encoder poisoned".into(),
            )),
        }
    }
}

impl HttpProtoExporter {
    /// Builds the exporter from the `OTEL_EXPORTER_OTLP_*` variables, as the SDK's would be.
    pub fn from_env() -> Result<Self, String> {
        let body = Arc::new(Mutex::new(Bytes::new()));
        let last_error = Arc::new(Mutex::new(None));
        let rejected = Arc::new(Mutex::new(None));
        let tls = super::tls::ExportTls::from_env()?;
        let client = tls
            .apply_to_reqwest(reqwest::Client::builder().timeout(timeout_from_env()))?
            .build()
            .map_err(|e| format!("failed to build the reqwest HTTP client: {e}"))?;
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(BodyClient {
                client,
                body: body.clone(),
                last_error: last_error.clone(),
                rejected: rejected.clone(),
            })
            .build()
            .map_err(|e| e.to_string())?;
        let mut exporter = Self {
            inner,
            body,
            last_error,
            rejected,
            resource: (Vec::new(), String::new()),
            encoder: SharedEncoder::default(),
        };
        exporter.set_resource(&Resource::builder_empty().build());
        Ok(exporter)
    }
}

/// The SDK's client timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (milliseconds), else 10 s.
pub(super) fn timeout_from_env() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis)
}

impl HttpProtoExporter {
    async fn send(&self, batch: &[Queued]) -> OTelSdkResult {
        let body = self.encoder.request_of(batch, &self.resource)?;
        if let Ok(mut slot) = self.body.lock() {
            *slot = body;
        }
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = None;
        }
        if let Ok(mut slot) = self.rejected.lock() {
            *slot = None;
        }
        let result = self.inner.export(Vec::new()).await;
        let detail = self.last_error.lock().ok().and_then(|mut slot| slot.take());
        match (result, detail) {
            (Err(OTelSdkError::InternalFailure(e)), Some(detail)) => {
                Err(OTelSdkError::InternalFailure(format!("{e} ({detail})")))
            }
            (result, _) => result,
        }
    }
}

impl QueuedExporter for HttpProtoExporter {
    fn takes_encoded(&self) -> bool {
        true
    }

    fn take_rejected(&self) -> Option<(u64, String)> {
        self.rejected.lock().ok()?.take()
    }

    async fn export_queued(&self, batch: Vec<Queued>) -> OTelSdkResult {
        let result = self.send(&batch).await;
        drop(batch);
        result
    }
}

impl SpanExporter for HttpProtoExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.send(&from_span_data(batch)).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = encode_resource(resource);
        self.inner.set_resource(resource);
    }
}

/// The encoded `Resource` message of a batch and the resource's schema URL (see
/// [`Encoder::request`]).
pub(super) fn encode_resource(resource: &Resource) -> (Vec<u8>, String) {
    let r = ResourceAttributesWithSchema::from(resource);
    let proto = ProtoResource {
        attributes: r.attributes.0,
        dropped_attributes_count: 0,
        entity_refs: vec![],
    };
    (proto.encode_to_vec(), r.schema_url.unwrap_or_default())
}

/// Scope equality, first by the address of the name (the clones of one scope, which is what a
/// batch nearly always holds, share it): comparing whole scopes for every span was 7% of the
/// encoding.
pub(crate) fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    let shared_name = std::ptr::eq(a.name(), b.name());
    (shared_name
        && a.version() == b.version()
        && a.schema_url() == b.schema_url()
        && a.attributes().next().is_none()
        && b.attributes().next().is_none())
        || a == b
}

/// Sends the SDK's request with the body encoded by [`HttpProtoExporter`].
#[derive(Debug)]
struct BodyClient {
    client: reqwest::Client,
    body: Arc<Mutex<Bytes>>,
    /// Why the last request could not be sent, with its causes: the SDK reports only "network
    /// error".
    last_error: Arc<Mutex<Option<String>>>,
    /// What the collector rejected of the last request it accepted (see [`partial_success`]).
    rejected: Arc<Mutex<Option<(u64, String)>>>,
}

#[async_trait::async_trait]
impl HttpClient for BodyClient {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let body = match self.body.lock() {
            Ok(body) => body.clone(),
            Err(_) => return Err("span request body poisoned".into()),
        };
        // The SDK compressed its own (empty) body and said so in the headers: the body sent must
        // match what they say.
        *request.body_mut() = match request.headers().get("content-encoding") {
            None => body,
            Some(v) if v == "gzip" => gzip(&body)?,
            Some(other) => return Err(format!("unsupported content-encoding {other:?}").into()),
        };
        let target = request_target(&request);
        let result = self.client.send_bytes(request).await;
        match &result {
            Err(e) => {
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(error_chain(e.as_ref()));
                }
            }
            Ok(response) if response.status().is_success() => {
                if let Ok(mut slot) = self.rejected.lock() {
                    *slot = partial_success(response.body());
                }
            }
            Ok(response) => {
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(status_error(&target, response.status()));
                }
            }
        }
        result
    }
}

/// `POST scheme://host:port/path`, without any user info or query the endpoint may carry.
fn request_target(request: &Request<Bytes>) -> String {
    let uri = request.uri();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{} {}://{}{port}{}",
        request.method(),
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or_default(),
        uri.path()
    )
}

/// What a refusal means, for the warning: the SDK says only "failed with status code: N" (it
/// keeps the body, which may echo a secret, to its debug log, and so do we).
fn status_error(target: &str, status: reqwest::StatusCode) -> String {
    let hint = match status.as_u16() {
        401 | 403 => "; check the credentials in OTEL_EXPORTER_OTLP_HEADERS",
        404 => {
            "; check the path: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as written, \
             OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces added"
        }
        415 => "; the endpoint does not take OTLP protobuf (is it the gRPC port, 4317?)",
        413 => "; the collector takes smaller requests: lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        _ => "",
    };
    format!("{target} answered {status}{hint}")
}

/// The spans a collector says it rejected in its 200 answer (OTLP "partial success"), and its
/// message, when it says anything. The SDK reads this only over gRPC, where it logs it.
fn partial_success(body: &[u8]) -> Option<(u64, String)> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    rejected_spans(ExportTraceServiceResponse::decode(body).ok()?)
}

/// What an `ExportTraceServiceResponse` says was rejected, when it says anything.
pub(super) fn rejected_spans(
    response: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
) -> Option<(u64, String)> {
    let partial = response.partial_success?;
    let rejected = u64::try_from(partial.rejected_spans).unwrap_or(0);
    (rejected > 0 || !partial.error_message.is_empty()).then_some((rejected, partial.error_message))
}

/// An error and its sources, `: `-separated.
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some wrappers repeat their cause's text.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`, at the SDK's level (flate2's default).
fn gzip(body: &[u8]) -> Result<Bytes, std::io::Error> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(body)?;
    encoder.finish().map(Bytes::from)
}

/// Protobuf writer with reused scratch buffers, one per nesting level.
#[derive(Debug, Default)]
struct Encoder {
    /// Spans of the scope being written (a `ScopeSpans` body).
    scope: Vec<u8>,
    /// One span.
    span: Vec<u8>,
    /// One key-value, event, link or status.
    item: Vec<u8>,
    /// One attribute value.
    value: Vec<u8>,
    /// The `ResourceSpans` body.
    resource_spans: Vec<u8>,
}

// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// Where protobuf bytes go: a `Vec<u8>`, or a [`StackSpan`] while a span is written.
trait ProtoOut {
    fn byte(&mut self, b: u8);
    fn put(&mut self, bytes: &[u8]);
    /// [`ProtoOut::put`] for a size known at compile time (ids, fixed-width numbers).
    #[inline]
    fn put_array<const N: usize>(&mut self, bytes: &[u8; N]) {
        self.put(bytes);
    }
}

impl ProtoOut for Vec<u8> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

#[inline]
fn key(out: &mut impl ProtoOut, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

#[inline]
fn varint(out: &mut impl ProtoOut, mut v: u64) {
    if v < 0x80 {
        out.byte(v as u8);
        return;
    }
    while v >= 0x80 {
        out.byte((v as u8) | 0x80);
        v >>= 7;
    }
    out.byte(v as u8);
}

/// A length-delimited field, written even when empty.
#[inline]
fn bytes_field(out: &mut impl ProtoOut, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.put(bytes);
}

/// A proto3 `string`/`bytes` field: omitted when empty.
#[inline]
fn opt_bytes(out: &mut impl ProtoOut, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_field(out, field, bytes);
    }
}

/// A proto3 integer field: omitted when zero.
#[inline]
fn opt_varint(out: &mut impl ProtoOut, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

#[inline]
fn opt_fixed64(out: &mut impl ProtoOut, field: u32, v: u64) {
    if v != 0 {
        key(out, field, FIXED64);
        out.put_array(&v.to_le_bytes());
    }
}

/// A length-delimited field of a size known at compile time, under 128 bytes (an id).
#[inline]
fn fixed_field<const N: usize>(out: &mut impl ProtoOut, field: u32, bytes: &[u8; N]) {
    key(out, field, LEN);
    out.byte(N as u8);
    out.put_array(bytes);
}

#[inline]
fn nanos(t: SystemTime) -> u64 {
    UnixNanos::from(t).0
}

/// `SpanFlags`: the trace flags, plus "has is_remote" and "is remote" bits (as the SDK sets them).
fn span_flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

/// An `AnyValue` message body (the oneof is always written, as prost does).
#[inline]
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Array(array) => {
            let mut values = Vec::new();
            let mut one = Vec::new();
            let mut push = |v: Value| {
                one.clear();
                any_value(&mut one, &v);
                bytes_field(&mut values, 1, &one);
            };
            match array {
                Array::Bool(vs) => vs.iter().for_each(|v| push(Value::Bool(*v))),
                Array::I64(vs) => vs.iter().for_each(|v| push(Value::I64(*v))),
                Array::F64(vs) => vs.iter().for_each(|v| push(Value::F64(*v))),
                Array::String(vs) => vs.iter().for_each(|v| push(Value::String(v.clone()))),
                _ => {}
            }
            bytes_field(out, 5, &values);
        }
        _ => {}
    }
}

/// Bytes kept for a length written after its message: two, a span's length nearly always.
const LEN_ROOM: usize = 2;

/// Starts a length-delimited body whose length is not known yet; returns where the body starts.
#[inline]
fn open_len(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0; LEN_ROOM]);
    out.len()
}

/// Writes the length of the body that started at `body` (from [`open_len`]) in front of it,
/// moving the body when its varint is not [`LEN_ROOM`] bytes long, so the encoding stays
/// canonical.
#[inline]
fn close_len(out: &mut Vec<u8>, body: usize) {
    let len = out.len() - body;
    if (0x80..0x4000).contains(&len) {
        out[body - 2] = (len as u8) | 0x80;
        out[body - 1] = (len >> 7) as u8;
    } else if len < 0x80 {
        // A short span (a step's, often): one byte of length, the body moved back by one.
        out[body - 2] = len as u8;
        out.copy_within(body.., body - 1);
        out.truncate(out.len() - 1);
    } else {
        resize_len(out, body, len);
    }
}

/// [`close_len`] for a length whose varint is longer than two bytes.
#[cold]
fn resize_len(out: &mut Vec<u8>, body: usize, len: usize) {
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len as u64);
    out.splice(body - LEN_ROOM..body, prefix);
}

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The encoded length of a scalar `AnyValue` body, `None` for arrays and maps.
#[inline]
fn scalar_value_len(value: &Value) -> Option<usize> {
    Some(match value {
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        Value::String(s) => {
            let n = s.as_str().len();
            1 + varint_len(n as u64) + n
        }
        _ => return None,
    })
}

/// The fields every span starts with (1 to 8: ids, trace state, parent, name, kind, times).
struct SpanHead<'a> {
    context: &'a opentelemetry::trace::SpanContext,
    parent: SpanId,
    name: &'a str,
    kind: &'a SpanKind,
    start: u64,
    end: u64,
}

impl<'a> SpanHead<'a> {
    fn of_sdk(s: &'a SpanData) -> Self {
        Self {
            context: &s.span_context,
            parent: s.parent_span_id,
            name: &s.name,
            kind: &s.span_kind,
            start: nanos(s.start_time),
            end: nanos(s.end_time),
        }
    }

    fn of_lite(s: &'a LiteSpan) -> Self {
        Self {
            context: &s.ids.context,
            parent: s.ids.parent,
            name: &s.name,
            kind: &s.kind,
            start: s.start.0,
            end: s.end.0,
        }
    }

    fn write(&self, out: &mut impl ProtoOut) {
        let sc = self.context;
        fixed_field(out, 1, &sc.trace_id().to_bytes());
        fixed_field(out, 2, &sc.span_id().to_bytes());
        // `header()` allocates a string, even for the empty state nearly every span has.
        if *sc.trace_state() != TraceState::NONE {
            opt_bytes(out, 3, sc.trace_state().header().as_bytes());
        }
        if self.parent != SpanId::INVALID {
            fixed_field(out, 4, &self.parent.to_bytes());
        }
        opt_bytes(out, 5, self.name.as_bytes());
        let kind = match self.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        };
        opt_varint(out, 6, kind);
        opt_fixed64(out, 7, self.start);
        opt_fixed64(out, 8, self.end);
    }
}

/// Field 11, one per event.
fn write_events(
    out: &mut Vec<u8>,
    item: &mut Vec<u8>,
    value: &mut Vec<u8>,
    events: &[opentelemetry::trace::Event],
) {
    let mut nested = Vec::new();
    for event in events {
        item.clear();
        opt_fixed64(item, 1, nanos(event.timestamp));
        opt_bytes(item, 2, event.name.as_bytes());
        nested.clear();
        Encoder::attributes(value, &mut Vec::new(), &mut nested, 3, &event.attributes);
        item.extend_from_slice(&nested);
        opt_varint(item, 4, u64::from(event.dropped_attributes_count));
        bytes_field(out, 11, item);
    }
}

/// Fields 15 (status) and 16 (flags), which end every span.
fn write_tail(
    out: &mut Vec<u8>,
    item: &mut Vec<u8>,
    status: &Status,
    parent_is_remote: bool,
    context: &opentelemetry::trace::SpanContext,
) {
    item.clear();
    let code = match status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error { description } => {
            opt_bytes(item, 2, description.as_bytes());
            2
        }
    };
    opt_varint(item, 3, code);
    bytes_field(out, 15, item);
    let flags = span_flags(parent_is_remote, context.trace_flags().to_u8());
    key(out, 16, FIXED32);
    out.extend_from_slice(&flags.to_le_bytes());
}

fn scope_of(item: &Queued) -> &InstrumentationScope {
    match item {
        Queued::Sdk(span) => &span.instrumentation_scope,
        Queued::Lite(scope, _) | Queued::Encoded { scope, .. } => scope,
    }
}

/// Appends a [`LiteSpan`] to `out` as field 2 of a `ScopeSpans` (a `Span`): the same bytes as
/// for its `SpanData`, without building it, and written in place rather than copied from a
/// scratch buffer (the copy was a tenth of the encoding). `item` and `value` are scratch space.
pub(crate) fn write_lite_span(
    out: &mut Vec<u8>,
    item: &mut Vec<u8>,
    value: &mut Vec<u8>,
    s: &LiteSpan,
) {
    if !StackSpan::write(out, s) {
        write_lite_span_in_place(out, item, value, s);
    }
}

/// [`write_lite_span`] for any span: written into `out`, its length filled in after.
fn write_lite_span_in_place(
    out: &mut Vec<u8>,
    item: &mut Vec<u8>,
    value: &mut Vec<u8>,
    s: &LiteSpan,
) {
    key(out, 2, LEN);
    let body = open_len(out);
    SpanHead::of_lite(s).write(out);
    for (k, v) in s.attributes() {
        lite_attribute(out, k.as_bytes(), v);
    }
    opt_varint(out, 10, u64::from(s.dropped_attributes));
    write_events(out, item, value, &s.events);
    write_tail(out, item, &s.status, s.ids.parent_is_remote, &s.ids.context);
    close_len(out, body);
}

/// Most spans of a request fit in this many bytes; a larger one takes the general path.
const STACK_SPAN_BYTES: usize = 512;

/// A span written into a buffer on the stack, then appended to its `Vec` in one copy.
///
/// Each push onto a `Vec<u8>` loads and stores the vector's length again (a byte store may alias
/// it), which made writing a span's hundred-odd fields cost about 950 instructions; here the
/// position stays in a register. Writes that would not fit are not made and set `overflow`, and
/// the span is then written by the general path: nothing is ever cut.
struct StackSpan<'a> {
    buf: &'a mut [u8],
    at: usize,
    overflow: bool,
}

impl ProtoOut for StackSpan<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        match self.buf.get_mut(self.at) {
            Some(slot) => {
                *slot = b;
                self.at += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Short strings (keys, names, most values) are copied with two overlapping fixed-width
    /// moves rather than a call to `memcpy`, which costs more than the copy at these sizes.
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        let Some(dst) = self.buf.get_mut(self.at..self.at + n) else {
            self.overflow = true;
            return;
        };
        match n {
            8..=16 => {
                copy_fixed::<8>(&mut dst[..8], &bytes[..8]);
                copy_fixed::<8>(&mut dst[n - 8..], &bytes[n - 8..]);
            }
            4..8 => {
                copy_fixed::<4>(&mut dst[..4], &bytes[..4]);
                copy_fixed::<4>(&mut dst[n - 4..], &bytes[n - 4..]);
            }
            0..4 => {
                for (d, s) in dst.iter_mut().zip(bytes) {
                    *d = *s;
                }
            }
            _ => dst.copy_from_slice(bytes),
        }
        self.at += n;
    }

    #[inline(always)]
    fn put_array<const N: usize>(&mut self, bytes: &[u8; N]) {
        let dst = self
            .buf
            .get_mut(self.at..self.at + N)
            .and_then(|d| <&mut [u8; N]>::try_from(d).ok());
        match dst {
            Some(dst) => {
                *dst = *bytes;
                self.at += N;
            }
            None => self.overflow = true,
        }
    }
}

/// Copies `N` bytes between slices of at least that length as one fixed-width move.
#[inline(always)]
fn copy_fixed<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
}

impl StackSpan<'_> {
    /// Appends `s` as field 2 of a `ScopeSpans` (the bytes [`write_lite_span`] writes) if it
    /// has no events and fits in [`STACK_SPAN_BYTES`]; returns whether it did.
    fn write(out: &mut Vec<u8>, s: &LiteSpan) -> bool {
        if !s.events.is_empty() {
            return false;
        }
        let mut buf = [0u8; STACK_SPAN_BYTES];
        // Three bytes kept in front for the field key and a length of up to two bytes.
        let mut span = StackSpan {
            buf: &mut buf,
            at: 3,
            overflow: false,
        };
        SpanHead::of_lite(s).write(&mut span);
        for (k, v) in s.attributes() {
            lite_attribute(&mut span, k.as_bytes(), v);
        }
        opt_varint(&mut span, 10, u64::from(s.dropped_attributes));
        span.status(&s.status);
        let flags = span_flags(s.ids.parent_is_remote, s.ids.context.trace_flags().to_u8());
        key(&mut span, 16, FIXED32);
        span.put_array(&flags.to_le_bytes());
        let (end, overflow) = (span.at, span.overflow);
        let len = end - 3;
        if overflow || len >= 0x4000 {
            return false;
        }
        let start = if len < 0x80 {
            buf[2] = len as u8;
            1
        } else {
            buf[1] = (len as u8) | 0x80;
            buf[2] = (len >> 7) as u8;
            0
        };
        buf[start] = ((2 << 3) | LEN) as u8;
        out.extend_from_slice(&buf[start..end]);
        true
    }

    /// Field 15 (a `Status`), its length computed rather than measured in a scratch buffer.
    fn status(&mut self, status: &Status) {
        let (code, description) = match status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, description.as_ref()),
        };
        let len = opt_field_len(description.len()) + if code == 0 { 0 } else { 2 };
        key(self, 15, LEN);
        varint(self, len as u64);
        opt_bytes(self, 2, description.as_bytes());
        opt_varint(self, 3, code);
    }
}

/// The encoded size of a length-delimited field numbered below 16 with an `n`-byte body.
fn field_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

/// [`field_len`] for a field omitted when empty.
fn opt_field_len(n: usize) -> usize {
    if n == 0 { 0 } else { field_len(n) }
}

/// The bytes of a string value, `None` for numbers.
#[inline]
fn lite_text(v: &LiteValue) -> Option<&[u8]> {
    match v {
        LiteValue::Static(s) => Some(s.as_bytes()),
        LiteValue::Shared(s) => Some(s.as_bytes()),
        LiteValue::Owned(s) => Some(s.as_bytes()),
        LiteValue::I64(_) | LiteValue::F64(_) => None,
    }
}

/// One attribute of a lite span as field 9 (a `KeyValue`), written in place.
fn lite_attribute(out: &mut impl ProtoOut, k: &[u8], v: &LiteValue) {
    let key_len = if k.is_empty() {
        0
    } else {
        1 + varint_len(k.len() as u64) + k.len()
    };
    let text = lite_text(v);
    let value_len = match (v, text) {
        (_, Some(t)) => 1 + varint_len(t.len() as u64) + t.len(),
        (LiteValue::I64(i), _) => 1 + varint_len(*i as u64),
        _ => 9,
    };
    key(out, 9, LEN);
    varint(
        out,
        (key_len + 1 + varint_len(value_len as u64) + value_len) as u64,
    );
    opt_bytes(out, 1, k);
    key(out, 2, LEN);
    varint(out, value_len as u64);
    match (v, text) {
        (_, Some(t)) => bytes_field(out, 1, t),
        (LiteValue::I64(i), _) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        (LiteValue::F64(f), _) => {
            key(out, 4, FIXED64);
            out.put_array(&f.to_le_bytes());
        }
        _ => {}
    }
}

impl Encoder {
    /// Appends one `KeyValue` per attribute as field `field` of `out`.
    ///
    /// Scalars (nearly every attribute) are written straight into `out` with lengths computed up
    /// front; arrays go through the scratch buffers.
    fn attributes(
        item: &mut Vec<u8>,
        value: &mut Vec<u8>,
        out: &mut Vec<u8>,
        field: u32,
        attributes: &[opentelemetry::KeyValue],
    ) {
        for kv in attributes {
            let k = kv.key.as_str().as_bytes();
            let key_len = if k.is_empty() {
                0
            } else {
                1 + varint_len(k.len() as u64) + k.len()
            };
            if let Some(v) = scalar_value_len(&kv.value) {
                key(out, field, LEN);
                varint(out, (key_len + 1 + varint_len(v as u64) + v) as u64);
                opt_bytes(out, 1, k);
                key(out, 2, LEN);
                varint(out, v as u64);
                any_value(out, &kv.value);
                continue;
            }
            value.clear();
            any_value(value, &kv.value);
            item.clear();
            opt_bytes(item, 1, k);
            bytes_field(item, 2, value);
            bytes_field(out, field, item);
        }
    }

    /// Writes one `Span` message body into `self.span`.
    fn span(&mut self, s: &SpanData) {
        let Self {
            span: out,
            item,
            value,
            ..
        } = self;
        out.clear();
        SpanHead::of_sdk(s).write(out);
        Self::attributes(item, value, out, 9, &s.attributes);
        opt_varint(out, 10, u64::from(s.dropped_attributes_count));
        write_events(out, item, value, &s.events.events);
        opt_varint(out, 12, u64::from(s.events.dropped_count));
        for link in &s.links.links {
            let lc = &link.span_context;
            item.clear();
            bytes_field(item, 1, &lc.trace_id().to_bytes());
            bytes_field(item, 2, &lc.span_id().to_bytes());
            opt_bytes(item, 3, lc.trace_state().header().as_bytes());
            let mut nested = Vec::new();
            Self::attributes(value, &mut Vec::new(), &mut nested, 4, &link.attributes);
            item.extend_from_slice(&nested);
            opt_varint(item, 5, u64::from(link.dropped_attributes_count));
            let flags = span_flags(lc.is_remote(), lc.trace_flags().to_u8());
            key(item, 6, FIXED32);
            item.extend_from_slice(&flags.to_le_bytes());
            bytes_field(out, 13, item);
        }
        opt_varint(out, 14, u64::from(s.links.dropped_count));
        write_tail(
            out,
            item,
            &s.status,
            s.parent_span_is_remote,
            &s.span_context,
        );
    }

    /// Appends a [`LiteSpan`] to `self.scope` (see [`write_lite_span`]).
    fn lite_span(&mut self, s: &LiteSpan) {
        write_lite_span(&mut self.scope, &mut self.item, &mut self.value, s);
    }

    /// The request of a batch of [`Queued::Encoded`] chunks of one scope, its lengths summed up
    /// front so that it is written once, at its final size (the nested copies of the general
    /// path moved each export's whole body three times); `None` for any other batch.
    fn request_of_chunks(batch: &[Queued], resource: &(Vec<u8>, String)) -> Option<Bytes> {
        let first = batch.first().map(scope_of)?;
        let mut spans_len = 0;
        for item in batch {
            match item {
                Queued::Encoded { scope, bytes, .. } if same_scope(scope, first) => {
                    spans_len += bytes.len();
                }
                _ => return None,
            }
        }
        let proto_scope = ProtoScope::from((first, None)).encode_to_vec();
        let schema = first.schema_url().unwrap_or("").as_bytes();
        let scope_len = field_len(proto_scope.len()) + spans_len + opt_field_len(schema.len());
        let resource_spans_len =
            field_len(resource.0.len()) + field_len(scope_len) + opt_field_len(resource.1.len());
        let total = field_len(resource_spans_len);
        let mut out = Vec::with_capacity(total);
        key(&mut out, 1, LEN);
        varint(&mut out, resource_spans_len as u64);
        bytes_field(&mut out, 1, &resource.0);
        key(&mut out, 2, LEN);
        varint(&mut out, scope_len as u64);
        bytes_field(&mut out, 1, &proto_scope);
        for item in batch {
            if let Queued::Encoded { bytes, .. } = item {
                out.extend_from_slice(bytes);
            }
        }
        opt_bytes(&mut out, 3, schema);
        opt_bytes(&mut out, 3, resource.1.as_bytes());
        debug_assert_eq!(out.len(), total, "the lengths summed up front");
        Some(Bytes::from(out))
    }

    /// The `ExportTraceServiceRequest` of a batch: one `ResourceSpans`, one `ScopeSpans` per
    /// instrumentation scope in order of first appearance (as the SDK groups them).
    fn request(&mut self, batch: &[Queued], resource: &(Vec<u8>, String)) -> Bytes {
        if let Some(body) = Self::request_of_chunks(batch, resource) {
            return body;
        }
        let mut scopes: Vec<&InstrumentationScope> = Vec::new();
        for item in batch {
            let scope = scope_of(item);
            if !scopes.iter().any(|k| same_scope(k, scope)) {
                scopes.push(scope);
            }
        }
        self.resource_spans.clear();
        bytes_field(&mut self.resource_spans, 1, &resource.0);
        for scope in scopes {
            self.scope.clear();
            let proto: ProtoScope = (scope, None).into();
            bytes_field(&mut self.scope, 1, &proto.encode_to_vec());
            for item in batch.iter().filter(|i| same_scope(scope_of(i), scope)) {
                match item {
                    Queued::Sdk(span) => {
                        self.span(span);
                        bytes_field(&mut self.scope, 2, &self.span);
                    }
                    Queued::Lite(_, spans) => spans.iter().for_each(|span| self.lite_span(span)),
                    Queued::Encoded { bytes, .. } => self.scope.extend_from_slice(bytes),
                }
            }
            opt_bytes(
                &mut self.scope,
                3,
                scope.schema_url().unwrap_or("").as_bytes(),
            );
            bytes_field(&mut self.resource_spans, 2, &self.scope);
        }
        opt_bytes(&mut self.resource_spans, 3, resource.1.as_bytes());
        let mut out = Vec::with_capacity(self.resource_spans.len() + 8);
        bytes_field(&mut out, 1, &self.resource_spans);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::borrow::Cow;
    use std::time::UNIX_EPOCH;

    #[test]
    fn an_error_is_told_with_its_causes_each_once() {
        #[derive(Debug)]
        struct Wrap(&'static str, Option<std::io::Error>);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_ref().map(|e| e as _)
            }
        }
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            error_chain(&Wrap("sending", Some(refused()))),
            "sending: refused"
        );
        assert_eq!(
            error_chain(&Wrap("connect: refused", Some(refused()))),
            "connect: refused"
        );
        assert_eq!(error_chain(&Wrap("alone", None)), "alone");
    }

    fn span(name: &'static str, scope: &'static str, parent: u64, status: Status) -> SpanData {
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "request served",
            UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            vec![
                KeyValue::new("level", "INFO"),
                KeyValue::new("duration_ms", 0.25),
            ],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(opentelemetry::trace::Link::new(
            SpanContext::new(
                TraceId::from(7),
                SpanId::from(8),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ),
            vec![KeyValue::new("k", "v")],
            1,
        ));
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
                SpanId::from(0x1112_1314_1516_1718),
                TraceFlags::SAMPLED,
                false,
                TraceState::from_key_value([("vendor", "x")]).unwrap_or_default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: parent == 9,
            span_kind: if parent == 0 {
                SpanKind::Server
            } else {
                SpanKind::Internal
            },
            name: Cow::Borrowed(name),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001),
            end_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_100_001),
            attributes: vec![
                KeyValue::new("http.route", "/predict"),
                KeyValue::new("empty", ""),
                KeyValue::new("", 1_i64),
                KeyValue::new("long", "x".repeat(300)),
                KeyValue::new("i64::MIN", i64::MIN),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("negative", -3_i64),
                KeyValue::new("model.confidence", 0.75),
                KeyValue::new("flag", false),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
                KeyValue::new("ints", Value::Array(Array::I64(vec![1, 0, -1]))),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status,
            instrumentation_scope: InstrumentationScope::builder(scope)
                .with_version("1.2")
                .build(),
        }
    }

    #[test]
    fn a_length_written_after_its_body_is_the_canonical_varint() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut expected = vec![7];
            bytes_field(&mut expected, 2, &body);
            let mut out = vec![7];
            key(&mut out, 2, LEN);
            let start = open_len(&mut out);
            out.extend_from_slice(&body);
            close_len(&mut out, start);
            assert!(out == expected, "body of {len} bytes");
        }
    }

    #[test]
    fn encodes_what_the_sdk_encodes() {
        let resource = Resource::builder()
            .with_service_name("doc-classifier")
            .with_schema_url([KeyValue::new("a", 1_i64)], "https://schema")
            .build();
        let spans = || {
            vec![
                span("POST /predict", "serve", 0, Status::Unset),
                span("tokenize", "doc-classifier", 0x21, Status::Ok),
                span("weigh", "serve", 9, Status::error("boom")),
                span("predict", "doc-classifier", 0x22, Status::error("")),
            ]
        };
        let schema = ResourceAttributesWithSchema::from(&resource);
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans(), &schema),
        };
        let r = ResourceAttributesWithSchema::from(&resource);
        let encoded_resource = ProtoResource {
            attributes: r.attributes.0,
            dropped_attributes_count: 0,
            entity_refs: vec![],
        }
        .encode_to_vec();
        let mut encoder = Encoder::default();
        let batch: Vec<Queued> = spans()
            .into_iter()
            .map(|s| Queued::Sdk(Box::new(s)))
            .collect();
        let body = encoder.request(
            &batch,
            &(encoded_resource, r.schema_url.unwrap_or_default()),
        );
        let decoded = ExportTraceServiceRequest::decode(body).expect("valid protobuf");
        assert_eq!(decoded, expected);
        assert_eq!(
            decoded.encode_to_vec().len(),
            expected.encode_to_vec().len()
        );
    }

    fn lite_spans() -> Vec<LiteSpan> {
        use crate::telemetry::spans::SpanIds;
        use std::sync::Arc;
        let ids = |span: u64, parent: u64, remote: bool, state: TraceState| SpanIds {
            context: SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                false,
                state,
            ),
            parent: SpanId::from(parent),
            parent_is_remote: remote,
        };
        let t = |us: u64| UNIX_EPOCH + std::time::Duration::from_micros(1_795_000_000_000_000 + us);
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap_or_default();
        let mut server = LiteSpan::new(
            ids(0x11, 0x00f0_67aa_0ba9_02b7, true, state),
            Cow::Borrowed("POST /predict"),
            SpanKind::Server,
            (t(0).into(), t(300).into()),
        );
        server
            .attribute("http.request.method", "POST")
            .attribute("url.path", Cow::<'static, str>::Owned("/p\u{e9}".into()))
            .attribute("http.response.status_code", 503_i64)
            .attribute("negative", -7_i64)
            .attribute("ratio", 0.125)
            .attribute("label", Arc::<str>::from("rec.autos"))
            .attribute("long", "x".repeat(200))
            .attribute("", 1_i64)
            .attribute("ninth, dropped", 9_i64)
            .status(Status::error("overloaded"))
            .event(opentelemetry::trace::Event::new(
                "request failed",
                t(299),
                vec![KeyValue::new("error.type", "overloaded")],
                0,
            ));
        let mut step = LiteSpan::new(
            ids(0x12, 0x11, false, TraceState::NONE),
            Cow::Borrowed("tokenize"),
            SpanKind::Internal,
            (t(10).into(), t(20).into()),
        );
        step.attribute("document.tokens", 5_i64);
        // Every varint at its widest, and bodies past two-byte lengths: the written span must
        // stay within the room sized for it.
        let mut wide = LiteSpan::new(
            ids(u64::MAX, u64::MAX, true, TraceState::NONE),
            Cow::Owned("n".repeat(20_000)),
            SpanKind::Consumer,
            (t(u64::MAX / 4_000).into(), UnixNanos(u64::MAX)),
        );
        for key in ["a", "b", "c", "d", "e", "f", "g"] {
            wide.attribute(key, i64::MIN);
        }
        wide.attribute("big", "v".repeat(70_000))
            .status(Status::error("d".repeat(17_000)));
        vec![server, step, wide]
    }

    #[test]
    fn lite_spans_are_encoded_as_their_span_data_would_be() {
        let resource = Resource::builder()
            .with_service_name("doc-classifier")
            .build();
        let request_scope = InstrumentationScope::builder("doc-classifier").build();
        let batch = || {
            vec![
                Queued::Sdk(Box::new(span("startup", "serve", 0, Status::Unset))),
                Queued::Lite(request_scope.clone(), lite_spans()),
                Queued::Lite(request_scope.clone(), lite_spans()),
            ]
        };
        assert_eq!(lite_spans()[0].dropped_attributes, 1, "past 8 attributes");
        let schema = ResourceAttributesWithSchema::from(&resource);
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                crate::telemetry::export::into_span_data(batch()),
                &schema,
            ),
        };
        let encoded_resource = ProtoResource {
            attributes: schema.attributes.0.clone(),
            dropped_attributes_count: 0,
            entity_refs: vec![],
        }
        .encode_to_vec();
        let body = Encoder::default().request(&batch(), &(encoded_resource, String::new()));
        let decoded = ExportTraceServiceRequest::decode(body.clone()).expect("valid protobuf");
        assert_eq!(decoded, expected);
        assert_eq!(body.len(), expected.encode_to_vec().len());
        assert_eq!(decoded.resource_spans[0].scope_spans.len(), 2, "two scopes");
        assert_eq!(decoded.resource_spans[0].scope_spans[1].spans.len(), 6);
    }

    #[test]
    fn encoded_chunks_make_the_same_request_as_their_lite_spans() {
        let schema = ResourceAttributesWithSchema::from(
            &Resource::builder()
                .with_service_name("doc-classifier")
                .build(),
        );
        let proto = ProtoResource {
            attributes: schema.attributes.0,
            dropped_attributes_count: 0,
            entity_refs: vec![],
        };
        let resource = (proto.encode_to_vec(), "https://schema/1".to_owned());
        let scope = InstrumentationScope::builder("doc-classifier")
            .with_schema_url("https://scope/1")
            .build();
        let lite = vec![
            Queued::Lite(scope.clone(), lite_spans()),
            Queued::Lite(scope.clone(), lite_spans()[..2].to_vec()),
        ];
        let chunk = |spans: &[LiteSpan]| {
            let (mut bytes, mut item, mut value) = (Vec::new(), Vec::new(), Vec::new());
            for s in spans {
                write_lite_span(&mut bytes, &mut item, &mut value, s);
            }
            Queued::Encoded {
                scope: scope.clone(),
                spans: spans.len(),
                bytes,
            }
        };
        let encoded = vec![chunk(&lite_spans()), chunk(&lite_spans()[..2])];
        assert!(Encoder::request_of_chunks(&encoded, &resource).is_some());
        assert!(Encoder::request_of_chunks(&lite, &resource).is_none());
        let expected = Encoder::default().request(&lite, &resource);
        let body = Encoder::default().request(&encoded, &resource);
        assert_eq!(body, expected, "byte for byte");
        let decoded = ExportTraceServiceRequest::decode(body).expect("valid protobuf");
        let scope_spans = &decoded.resource_spans[0].scope_spans;
        assert_eq!(scope_spans.len(), 1);
        assert_eq!(scope_spans[0].spans.len(), 5);
        assert_eq!(scope_spans[0].schema_url, "https://scope/1");
        assert_eq!(decoded.resource_spans[0].schema_url, "https://schema/1");

        // Chunks of another scope, or mixed with other entries, take the general path, which
        // writes them as they are too.
        let other = InstrumentationScope::builder("other").build();
        let mut mixed = encoded;
        mixed.push(Queued::Lite(other.clone(), lite_spans()));
        assert!(Encoder::request_of_chunks(&mixed, &resource).is_none());
        let mut lite_mixed = lite;
        lite_mixed.push(Queued::Lite(other, lite_spans()));
        assert_eq!(
            Encoder::default().request(&mixed, &resource),
            Encoder::default().request(&lite_mixed, &resource)
        );
    }

    #[test]
    fn small_spans_written_on_the_stack_are_the_bytes_of_the_general_path() {
        let mut spans = lite_spans();
        let (server, step, wide) = (spans.remove(0), spans.remove(0), spans.remove(0));
        let mut no_event = server.clone();
        no_event.events.clear();
        let mut ok = step.clone();
        ok.status(Status::Ok);
        let mut unicode = step.clone();
        unicode
            .attribute("k\u{e9}", Cow::<'static, str>::Owned("\u{1f600}".into()))
            .attribute("zero", 0_i64)
            .attribute("nan", f64::NAN);
        // Bodies of one-byte and two-byte lengths, an error status, a remote parent, a trace
        // state, every attribute type and dropped attributes all take the stack.
        for (i, span) in [&no_event, &step, &ok, &unicode].into_iter().enumerate() {
            let mut fast = vec![0xaa];
            assert!(StackSpan::write(&mut fast, span), "span {i} fits");
            let mut general = vec![0xaa];
            write_lite_span_in_place(&mut general, &mut Vec::new(), &mut Vec::new(), span);
            assert_eq!(fast, general, "span {i}");
        }
        let length_bytes = |span: &LiteSpan| {
            let mut out = Vec::new();
            StackSpan::write(&mut out, span);
            if out[1] < 0x80 { 1 } else { 2 }
        };
        assert_eq!(length_bytes(&step), 1, "a body under 128 bytes");
        assert_eq!(length_bytes(&no_event), 2, "a body of 128 bytes or more");
        // Events, or more than fits, take the general path.
        assert!(!StackSpan::write(&mut Vec::new(), &server));
        let mut out = Vec::new();
        assert!(!StackSpan::write(&mut out, &wide));
        assert!(out.is_empty(), "nothing written when it does not fit");
        let mut just_over = step.clone();
        just_over.attribute("pad", "p".repeat(STACK_SPAN_BYTES));
        assert!(!StackSpan::write(&mut Vec::new(), &just_over));
    }
}
