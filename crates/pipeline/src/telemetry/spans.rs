//! Spans for a hot path, built directly as the SDK's `SpanData` and handed to the export queue,
//! with the sampling decision and ids the SDK's tracer would give them.
//!
//! A `tracing` span bridged by `tracing-opentelemetry` costs the subscriber's bookkeeping on every
//! poll of the future it instruments (enter, exit, the OpenTelemetry layer's extensions), and an
//! SDK `Span` goes through the tracer, the span limits and every processor. For a request that
//! does microseconds of work, those were most of the telemetry cost (see docs/benchmarks.md).
//! Here a request is a [`SpanIds`] chosen up front (its trace id, span id, parent and sampling
//! flag, which logs and response headers need at once) and a few [`LiteSpan`]s written when the
//! work is done, from times already measured, with their attributes inline: one allocation for
//! the request's spans, encoded straight into OTLP by the thread that ends them, into its own
//! chunk of the export queue (`export::EncodedChunk`). They
//! reach the same exporter as every other span (as `SpanData` for exporters other than
//! OTLP/HTTP), so what the collector receives is the same.
//!
//! Sampling uses the SDK's own sampler, configured from `OTEL_TRACES_SAMPLER[_ARG]` exactly as the
//! tracer provider's is; a child span follows the decision of its request, as `ParentBased` does
//! and as `traceidratio` does by construction (the decision depends only on the trace id).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks,
};

use super::export::BoundedBatchProcessor;
use super::propagation::Propagation;

/// Makes the spans of requests and queues them for export (cheap to clone: one per server).
#[derive(Debug, Clone)]
pub struct SpanSink {
    sampler: Box<dyn ShouldSample>,
    ids: RandomIdGenerator,
    scope: InstrumentationScope,
    /// `None` when nothing is exported: spans still get ids (for logs and response headers).
    queue: Option<Arc<BoundedBatchProcessor>>,
    /// The formats a caller's span is read in (`OTEL_PROPAGATORS`).
    propagation: Propagation,
}

/// The identity of a span chosen when it starts.
#[derive(Debug, Clone)]
pub struct SpanIds {
    /// Trace id, span id, sampling flag and trace state of the span.
    pub context: SpanContext,
    /// The parent span, `SpanId::INVALID` for a root.
    pub parent: SpanId,
    /// Whether the parent came from another process (a `traceparent` header).
    pub parent_is_remote: bool,
}

impl SpanIds {
    /// True when the span is to be exported.
    pub fn is_sampled(&self) -> bool {
        self.context.is_sampled()
    }

    /// An OpenTelemetry context whose current span is this one: attached while the request runs,
    /// log lines find its ids in it and `tracing` spans opened inside become its children.
    pub fn as_parent(&self) -> Context {
        Context::new().with_remote_span_context(self.context.clone())
    }
}

impl SpanSink {
    pub(crate) fn new(
        sampler: Box<dyn ShouldSample>,
        scope_name: &'static str,
        queue: Option<Arc<BoundedBatchProcessor>>,
    ) -> Self {
        Self {
            sampler,
            ids: RandomIdGenerator::default(),
            scope: InstrumentationScope::builder(scope_name).build(),
            queue,
            propagation: Propagation::default(),
        }
    }

    pub(crate) fn with_propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    /// Ids of a request's server span: in the caller's trace when its headers name a span in a
    /// format `OTEL_PROPAGATORS` lists, otherwise the root of a new trace. A caller that left the
    /// sampling decision open (B3 without a sampling state) is sampled as a new trace would be.
    pub fn start_for_caller(&self, headers: &dyn Extractor, name: &str, kind: SpanKind) -> SpanIds {
        match self.propagation.extract(headers) {
            None => self.start(None, name, kind),
            Some(caller) if caller.decided => {
                let parent = Context::new().with_remote_span_context(caller.context.clone());
                self.start_under(Some(&caller.context), Some(&parent), name, kind)
            }
            Some(caller) => self.start_under(Some(&caller.context), None, name, kind),
        }
    }

    /// Ids of a new span named `name`: a child of `parent` when it is a valid span context (the
    /// caller's), otherwise the root of a new trace; sampled as the configured sampler decides.
    pub fn start(&self, parent: Option<&Context>, name: &str, kind: SpanKind) -> SpanIds {
        let parent_sc = parent
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let sampler_parent = parent.filter(|_| parent_sc.is_some());
        self.start_under(parent_sc.as_ref(), sampler_parent, name, kind)
    }

    /// A span under `parent` (a root if `None`), sampled as if `sampler_parent` were its parent.
    fn start_under(
        &self,
        parent: Option<&SpanContext>,
        sampler_parent: Option<&Context>,
        name: &str,
        kind: SpanKind,
    ) -> SpanIds {
        let trace_id = parent.map_or_else(|| self.ids.new_trace_id(), SpanContext::trace_id);
        let decision = self
            .sampler
            .should_sample(sampler_parent, trace_id, name, &kind, &[], &[]);
        let flags = if decision.decision == SamplingDecision::RecordAndSample {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanIds {
            context: SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                flags,
                false,
                decision.trace_state,
            ),
            parent: parent.map_or(SpanId::INVALID, SpanContext::span_id),
            parent_is_remote: parent.is_some_and(SpanContext::is_remote),
        }
    }

    /// Ids of a child of `parent`, which shares its trace and sampling decision.
    pub fn child(&self, parent: &SpanIds) -> SpanIds {
        let p = &parent.context;
        SpanIds {
            context: SpanContext::new(
                p.trace_id(),
                self.ids.new_span_id(),
                p.trace_flags(),
                false,
                TraceState::NONE,
            ),
            parent: p.span_id(),
            parent_is_remote: false,
        }
    }

    /// An empty batch for the spans of one unit of work, in the form the exporter takes:
    /// encoded as each span is added when it sends OTLP/HTTP, kept as [`LiteSpan`]s otherwise.
    pub fn batch(&self) -> SpanBatch {
        let encoded = self.queue.as_ref().is_some_and(|q| q.takes_encoded());
        SpanBatch(if encoded {
            Batch::Encoded(EncodedSpans::default())
        } else {
            Batch::Lite(Vec::new())
        })
    }

    /// Queues a batch's spans together (all or none, so a trace is never cut), if all of them
    /// are sampled.
    pub fn submit(&self, batch: SpanBatch) {
        let Some(queue) = &self.queue else {
            return;
        };
        match batch.0 {
            Batch::Lite(spans) => queue.enqueue_lite(&self.scope, spans),
            Batch::Encoded(spans) if spans.all_sampled => {
                queue.enqueue_encoded(&self.scope, &spans.bytes, spans.spans);
            }
            Batch::Encoded(_) => {}
        }
    }

    /// True when spans handed to [`SpanSink::submit`] go anywhere: callers skip building
    /// them otherwise.
    pub fn exports(&self) -> bool {
        self.queue.is_some()
    }
}

/// The spans of one unit of work (a request), from [`SpanSink::batch`] to [`SpanSink::submit`].
#[derive(Debug)]
pub struct SpanBatch(Batch);

#[derive(Debug)]
enum Batch {
    Lite(Vec<LiteSpan>),
    Encoded(EncodedSpans),
}

/// Spans encoded as they are added: each [`LiteSpan`] lives on the stack only while it is
/// written, where a `Vec<LiteSpan>` held five of them (some 2.8 KiB, moved in, read back, each
/// attribute slot dropped) until the request ended.
#[derive(Debug)]
struct EncodedSpans {
    bytes: Vec<u8>,
    spans: usize,
    all_sampled: bool,
    /// Scratch space of the encoder (used by spans with events).
    item: Vec<u8>,
    value: Vec<u8>,
}

impl Default for EncodedSpans {
    fn default() -> Self {
        Self {
            bytes: Vec::new(),
            spans: 0,
            all_sampled: true,
            item: Vec::new(),
            value: Vec::new(),
        }
    }
}

impl SpanBatch {
    /// Adds a finished span.
    pub fn push(&mut self, span: LiteSpan) {
        match &mut self.0 {
            Batch::Lite(spans) => spans.push(span),
            Batch::Encoded(e) => {
                if e.bytes.capacity() == 0 {
                    // Room for a request's five spans, nearly always.
                    e.bytes.reserve(1024);
                }
                super::otlp::write_lite_span(&mut e.bytes, &mut e.item, &mut e.value, &span);
                e.spans += 1;
                e.all_sampled &= span.ids.is_sampled();
            }
        }
    }

    /// Spans added so far.
    pub fn len(&self) -> usize {
        match &self.0 {
            Batch::Lite(spans) => spans.len(),
            Batch::Encoded(e) => e.spans,
        }
    }

    /// True when no span was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An attribute value of a [`LiteSpan`].
#[derive(Debug, Clone, PartialEq)]
pub enum LiteValue {
    /// An integer.
    I64(i64),
    /// A number.
    F64(f64),
    /// A string known at compile time.
    Static(&'static str),
    /// A string shared by many spans (a label of the model).
    Shared(Arc<str>),
    /// A string of this span only.
    Owned(String),
}

impl LiteValue {
    /// The value as the SDK holds it.
    pub fn to_value(&self) -> Value {
        match self {
            Self::I64(i) => Value::I64(*i),
            Self::F64(f) => Value::F64(*f),
            Self::Static(s) => Value::from(*s),
            Self::Shared(s) => Value::from(s.clone()),
            Self::Owned(s) => Value::from(s.clone()),
        }
    }
}

impl From<i64> for LiteValue {
    fn from(v: i64) -> Self {
        Self::I64(v)
    }
}
impl From<f64> for LiteValue {
    fn from(v: f64) -> Self {
        Self::F64(v)
    }
}
impl From<&'static str> for LiteValue {
    fn from(v: &'static str) -> Self {
        Self::Static(v)
    }
}
impl From<Arc<str>> for LiteValue {
    fn from(v: Arc<str>) -> Self {
        Self::Shared(v)
    }
}
impl From<String> for LiteValue {
    fn from(v: String) -> Self {
        Self::Owned(v)
    }
}
impl From<std::borrow::Cow<'static, str>> for LiteValue {
    fn from(v: std::borrow::Cow<'static, str>) -> Self {
        match v {
            Cow::Borrowed(s) => Self::Static(s),
            Cow::Owned(s) => Self::Owned(s),
        }
    }
}

/// A time as OTLP carries it: nanoseconds since the Unix epoch. A request converts its wall clock
/// once and adds its steps' offsets (a `SystemTime` conversion is a call of some sixty
/// instructions, and a request's spans have ten times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub u64);

impl From<SystemTime> for UnixNanos {
    /// Saturates in the year 2554, as OTLP's `fixed64` field does; times before 1970 are 0.
    fn from(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(
            d.as_secs()
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(d.subsec_nanos())),
        )
    }
}

impl std::ops::Add<Duration> for UnixNanos {
    type Output = Self;

    fn add(self, offset: Duration) -> Self {
        let offset = u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(offset))
    }
}

impl From<UnixNanos> for SystemTime {
    fn from(t: UnixNanos) -> Self {
        UNIX_EPOCH + Duration::from_nanos(t.0)
    }
}

/// Attributes a [`LiteSpan`] holds at most; more are counted as dropped, as the SDK's span
/// limits would.
pub const LITE_ATTRIBUTES: usize = 8;

/// A finished span of a hot path: static attribute keys and values held inline, so building,
/// queueing, encoding and freeing it touch no per-span allocation. It becomes a `SpanData`
/// ([`LiteSpan::to_span_data`]) only for exporters other than the OTLP/HTTP one, whose encoder
/// writes it directly (the same bytes, tested).
#[derive(Debug, Clone)]
pub struct LiteSpan {
    pub(crate) ids: SpanIds,
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SpanKind,
    pub(crate) start: UnixNanos,
    pub(crate) end: UnixNanos,
    attributes: [(&'static str, LiteValue); LITE_ATTRIBUTES],
    len: u8,
    pub(crate) dropped_attributes: u32,
    pub(crate) status: Status,
    pub(crate) events: Vec<opentelemetry::trace::Event>,
}

impl LiteSpan {
    /// A span with these ids, name, kind and times, and no attributes yet.
    pub fn new(
        ids: SpanIds,
        name: Cow<'static, str>,
        kind: SpanKind,
        (start, end): (UnixNanos, UnixNanos),
    ) -> Self {
        Self {
            ids,
            name,
            kind,
            start,
            end,
            attributes: std::array::from_fn(|_| ("", LiteValue::I64(0))),
            len: 0,
            dropped_attributes: 0,
            status: Status::Unset,
            events: Vec::new(),
        }
    }

    /// Adds an attribute (counted as dropped past [`LITE_ATTRIBUTES`]).
    pub fn attribute(&mut self, key: &'static str, value: impl Into<LiteValue>) -> &mut Self {
        match self.attributes.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = (key, value.into());
                self.len += 1;
            }
            None => self.dropped_attributes += 1,
        }
        self
    }

    /// Sets the status.
    pub fn status(&mut self, status: Status) -> &mut Self {
        self.status = status;
        self
    }

    /// Adds an event.
    pub fn event(&mut self, event: opentelemetry::trace::Event) -> &mut Self {
        self.events.push(event);
        self
    }

    /// The attributes set so far.
    pub fn attributes(&self) -> &[(&'static str, LiteValue)] {
        &self.attributes[..usize::from(self.len)]
    }

    /// The same span as the SDK's `SpanData`.
    pub fn to_span_data(&self, scope: &InstrumentationScope) -> SpanData {
        let mut events = SpanEvents::default();
        events.events = self.events.clone();
        SpanData {
            span_context: self.ids.context.clone(),
            parent_span_id: self.ids.parent,
            parent_span_is_remote: self.ids.parent_is_remote,
            span_kind: self.kind.clone(),
            name: self.name.clone(),
            start_time: self.start.into(),
            end_time: self.end.into(),
            attributes: self
                .attributes()
                .iter()
                .map(|(k, v)| KeyValue::new(*k, v.to_value()))
                .collect(),
            dropped_attributes_count: self.dropped_attributes,
            events,
            links: SpanLinks::default(),
            status: self.status.clone(),
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceId;
    use opentelemetry_sdk::trace::Sampler;

    fn remote_parent(flags: TraceFlags) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            flags,
            true,
            TraceState::NONE,
        ))
    }

    #[test]
    fn unix_nanos_convert_both_ways_and_saturate() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_795_000_000_123_456_789);
        let n = UnixNanos::from(t);
        assert_eq!(n.0, 1_795_000_000_123_456_789);
        assert_eq!(SystemTime::from(n), t);
        assert_eq!(
            (n + Duration::from_micros(250)).0,
            1_795_000_000_123_706_789
        );
        assert_eq!((n + Duration::MAX).0, u64::MAX);
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(UnixNanos::from(before_1970).0, 0);
    }

    #[test]
    fn a_valid_parent_is_joined_and_a_missing_one_starts_a_trace() {
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", None);
        let parent = remote_parent(TraceFlags::SAMPLED);
        let ids = sink.start(Some(&parent), "POST /predict", SpanKind::Server);
        assert_eq!(
            ids.context.trace_id(),
            parent.span().span_context().trace_id()
        );
        assert_eq!(ids.parent, parent.span().span_context().span_id());
        assert!(ids.parent_is_remote && ids.is_sampled());

        let root = sink.start(None, "POST /predict", SpanKind::Server);
        assert!(root.context.is_valid());
        assert_eq!(root.parent, SpanId::INVALID);
        assert_ne!(root.context.trace_id(), ids.context.trace_id());

        let invalid = Context::new().with_remote_span_context(SpanContext::empty_context());
        let fresh = sink.start(Some(&invalid), "x", SpanKind::Server);
        assert_eq!(
            fresh.parent,
            SpanId::INVALID,
            "an invalid parent is ignored"
        );
    }

    /// Keeps the spans the SDK ends.
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<SpanData>>>);

    impl opentelemetry_sdk::trace::SpanProcessor for Capture {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}
        fn on_end(&self, span: SpanData) {
            if let Ok(mut spans) = self.0.lock() {
                spans.push(span);
            }
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(
            &self,
            _: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn a_tracing_span_opened_while_a_request_span_is_attached_is_its_child() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let capture = Capture::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(capture.clone())
            .build();
        let subscriber = tracing_subscriber::Registry::default()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", None);
        let request = sink.start(None, "POST /predict", SpanKind::Server);
        tracing::subscriber::with_default(subscriber, || {
            let _attached = request.as_parent().attach();
            tracing::info_span!("inner").in_scope(|| {});
        });
        let spans = capture.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_eq!(spans[0].name, "inner");
        assert_eq!(spans[0].span_context.trace_id(), request.context.trace_id());
        assert_eq!(spans[0].parent_span_id, request.context.span_id());
    }

    #[test]
    fn the_sampler_decides_and_children_follow() {
        let parent_based = SpanSink::new(
            Box::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            "test",
            None,
        );
        let unsampled_parent = remote_parent(TraceFlags::default());
        let ids = parent_based.start(Some(&unsampled_parent), "x", SpanKind::Server);
        assert!(!ids.is_sampled(), "parent-based follows the caller");
        let child = parent_based.child(&ids);
        assert!(!child.is_sampled());
        assert_eq!(child.parent, ids.context.span_id());
        assert_eq!(child.context.trace_id(), ids.context.trace_id());

        let off = SpanSink::new(Box::new(Sampler::AlwaysOff), "test", None);
        assert!(!off.start(None, "x", SpanKind::Server).is_sampled());
        let on = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", None);
        let sampled = on.start(Some(&unsampled_parent), "x", SpanKind::Server);
        assert!(sampled.is_sampled(), "always_on ignores the parent's flag");
        assert!(on.child(&sampled).is_sampled());
    }
}
