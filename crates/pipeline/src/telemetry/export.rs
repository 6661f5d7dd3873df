//! A span processor with a bounded queue that never blocks a request, counts what it drops, and
//! shuts down within a deadline whatever the collector does.
//!
//! The SDK's own `BatchSpanProcessor` drops silently (one log line, a total only at shutdown), and
//! its async-runtime variant can hang at shutdown against an unreachable endpoint
//! (opentelemetry-rust#3589) or deadlock a one-worker runtime with the gRPC exporter (#3380). Here
//! the exporter lives on its own thread with its own small Tokio runtime, so neither the server's
//! runtime nor its worker count matter, every export is bounded by a timeout, and `shutdown` waits
//! for the thread at most the time it is given.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::sharded_metrics::{my_shard, shard_count};
use super::spans::LiteSpan;

/// Queue and batch settings (the `OTEL_BSP_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Spans waiting for export at most; more are dropped and counted.
    pub max_queue_size: usize,
    /// Spans sent in one export at most.
    pub max_export_batch_size: usize,
    /// Longest wait before a partial batch is sent.
    pub scheduled_delay: Duration,
    /// Longest time one export may take before it is abandoned.
    pub export_timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl BatchSettings {
    /// Defaults overridden by `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    /// `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_EXPORT_TIMEOUT` (milliseconds), when valid.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let d = Self::default();
        let max_queue_size =
            var("OTEL_BSP_MAX_QUEUE_SIZE").map_or(d.max_queue_size, |v| v.max(1) as usize);
        Self {
            max_queue_size,
            max_export_batch_size: var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
                .map_or(d.max_export_batch_size, |v| v.max(1) as usize)
                .min(max_queue_size),
            scheduled_delay: var("OTEL_BSP_SCHEDULE_DELAY")
                .map_or(d.scheduled_delay, Duration::from_millis),
            export_timeout: var("OTEL_BSP_EXPORT_TIMEOUT")
                .map_or(d.export_timeout, Duration::from_millis),
        }
    }
}

/// Counters shared with whoever reports them (the `/metrics` endpoint).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans in batches that failed or timed out, or that the collector rejected.
    pub failed: AtomicU64,
}

enum Control {
    Resource(Resource),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// Spans waiting for export. Producers push under a short lock and never wake the export thread
/// for a single span (a wake-up is a syscall and a context switch, dearer than the span itself);
/// the thread wakes on its schedule, or when a full batch is waiting.
#[derive(Debug)]
struct Queue {
    pending: Mutex<Pending>,
    capacity: usize,
    batch: usize,
    /// Per-thread chunks of encoded spans, used when the exporter takes them (see
    /// [`EncodedChunk`]).
    shards: Box<[Shard]>,
    /// Spans a chunk gathers before it joins the queue: a quarter of a batch (or of the queue,
    /// if smaller), so a few chunks make a batch and chunks hold little the queue cannot see.
    chunk_spans: usize,
}

/// Bytes of encoded spans a thread gathers at most before it queues them as one entry (some
/// twenty requests of five spans).
pub const CHUNK_BYTES: usize = 16 * 1024;

/// One thread's chunk, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<EncodedChunk>);

/// Spans encoded by the thread that ended them, for an exporter that sends them as they are
/// (OTLP/HTTP): the worker writes a request's spans into its own chunk, on a lock no other thread
/// takes but the export thread sweeping, and the chunk joins the shared queue when full (one
/// shared lock per chunk, not per request) or when the export thread sweeps it on schedule,
/// flush and shutdown. Encoding where the spans were made reads them from a warm cache; the
/// export thread only concatenates chunks. A chunk holds whole requests, so a trace is never
/// cut; spans waiting in chunks (a quarter of a batch, [`CHUNK_BYTES`] at most, per thread) are
/// counted against the queue's size when they join it.
#[derive(Debug, Default)]
struct EncodedChunk {
    scope: Option<InstrumentationScope>,
    bytes: Vec<u8>,
    spans: usize,
    /// Scratch space of the encoder.
    item: Vec<u8>,
    value: Vec<u8>,
}

impl EncodedChunk {
    /// Takes the chunk's spans as a queue entry, leaving it empty.
    fn take(&mut self) -> Option<Queued> {
        if self.spans == 0 {
            return None;
        }
        let spans = std::mem::take(&mut self.spans);
        let bytes = std::mem::replace(&mut self.bytes, Vec::with_capacity(CHUNK_BYTES + 2048));
        let scope = self.scope.take()?;
        Some(Queued::Encoded {
            scope,
            spans,
            bytes,
        })
    }

    /// Appends the spans of one request.
    fn push(&mut self, scope: &InstrumentationScope, spans: &[LiteSpan]) {
        self.make_room(scope);
        for span in spans {
            super::otlp::write_lite_span(&mut self.bytes, &mut self.item, &mut self.value, span);
        }
        self.spans += spans.len();
    }

    /// Appends `spans` spans of one request, already encoded.
    fn append(&mut self, scope: &InstrumentationScope, bytes: &[u8], spans: usize) {
        self.make_room(scope);
        self.bytes.extend_from_slice(bytes);
        self.spans += spans;
    }

    fn make_room(&mut self, scope: &InstrumentationScope) {
        if self.scope.is_none() {
            self.scope = Some(scope.clone());
        }
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(CHUNK_BYTES + 2048);
        }
    }

    /// Runs for every request: compared as the encoder compares scopes, by the name's address
    /// first (a chunk nearly always holds clones of the one scope it is given).
    fn holds_other_scope(&self, scope: &InstrumentationScope) -> bool {
        self.scope
            .as_ref()
            .is_some_and(|s| !super::otlp::same_scope(s, scope))
    }
}

/// What waits for export, and how many spans that is.
#[derive(Debug, Default)]
struct Pending {
    items: Vec<Queued>,
    spans: usize,
}

impl Queue {
    /// Queues one entry whole if it fits; returns the spans dropped (all of the entry's, or
    /// none) and whether a full batch is now waiting that was not before.
    fn push(&self, entry: Queued) -> (u64, bool) {
        let n = entry.spans();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let was_below_batch = pending.spans < self.batch;
        let fits = pending.spans + n <= self.capacity;
        if fits {
            pending.items.push(entry);
            pending.spans += n;
        }
        let full_batch = was_below_batch && pending.spans >= self.batch;
        (if fits { 0 } else { n as u64 }, full_batch)
    }

    /// Moves every thread's chunk into the queue; returns the spans that did not fit.
    fn sweep_shards(&self) -> u64 {
        let mut dropped = 0;
        for shard in &self.shards {
            let entry = shard
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(entry) = entry {
                dropped += self.push(entry).0;
            }
        }
        dropped
    }
}

impl Pending {
    fn with_room(items: usize) -> Self {
        Self {
            items: Vec::with_capacity(items),
            spans: 0,
        }
    }
}

/// One entry of the export queue: a span of the SDK (from `tracing` or a tracer), or the spans
/// of one request made with [`super::spans::SpanSink`].
#[derive(Debug)]
pub enum Queued {
    /// A span of the SDK (boxed: the queue's entries are as large as the largest variant).
    Sdk(Box<SpanData>),
    /// Spans of one hot-path unit of work, with their instrumentation scope.
    Lite(InstrumentationScope, Vec<LiteSpan>),
    /// Spans of one scope already encoded as the `spans` of an OTLP `ScopeSpans` (see
    /// `EncodedChunk`); only queued for an exporter whose
    /// [`QueuedExporter::takes_encoded`] is true.
    Encoded {
        /// Their instrumentation scope.
        scope: InstrumentationScope,
        /// How many spans the bytes hold.
        spans: usize,
        /// `Span` messages, each as field 2 of `ScopeSpans`.
        bytes: Vec<u8>,
    },
}

impl Queued {
    fn spans(&self) -> usize {
        match self {
            Self::Sdk(_) => 1,
            Self::Lite(_, spans) => spans.len(),
            Self::Encoded { spans, .. } => *spans,
        }
    }
}

/// The SDK's spans as a batch, for exporters that encode batches themselves.
pub fn from_span_data(batch: Vec<SpanData>) -> Vec<Queued> {
    batch
        .into_iter()
        .map(|s| Queued::Sdk(Box::new(s)))
        .collect()
}

/// Turns a batch into the SDK's spans, for exporters that only take those.
pub fn into_span_data(batch: Vec<Queued>) -> Vec<SpanData> {
    let mut out = Vec::with_capacity(batch.iter().map(Queued::spans).sum());
    for item in batch {
        match item {
            Queued::Sdk(span) => out.push(*span),
            Queued::Lite(scope, spans) => out.extend(spans.iter().map(|s| s.to_span_data(&scope))),
            // Never queued for these exporters (see `takes_encoded`).
            Queued::Encoded { .. } => {}
        }
    }
    out
}

/// An exporter the export thread can drive: SDK exporters take lite spans as `SpanData`; the
/// OTLP/HTTP exporter encodes them directly.
pub trait QueuedExporter: SpanExporter {
    /// True when the exporter sends [`Queued::Encoded`] chunks: request spans are then encoded
    /// by the threads that end them.
    fn takes_encoded(&self) -> bool {
        false
    }

    /// Exports one batch.
    fn export_queued(
        &self,
        batch: Vec<Queued>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.export(into_span_data(batch))
    }

    /// After a successful export: the spans the collector said it rejected and its message
    /// (OTLP partial success), if it said anything.
    fn take_rejected(&self) -> Option<(u64, String)> {
        None
    }
}

/// The export queue and its thread. Cheap to call from any thread: queueing is a push under a
/// short lock (request spans for OTLP/HTTP go into the calling thread's own chunk first, see
/// `EncodedChunk`). The tracer provider reaches it through [`SharedProcessor`], request spans through
/// [`super::spans::SpanSink`].
#[derive(Debug)]
pub struct BoundedBatchProcessor {
    queue: Arc<Queue>,
    thread: std::thread::Thread,
    control: SyncSender<Control>,
    stats: Arc<ExportStats>,
    export_timeout: Duration,
    /// The exporter takes encoded chunks.
    encodes: bool,
}

impl BoundedBatchProcessor {
    /// Starts the export thread. `make_exporter` runs on that thread, inside its Tokio runtime
    /// (the gRPC exporter needs one at construction).
    pub fn start<E, F>(
        make_exporter: F,
        settings: BatchSettings,
        stats: Arc<ExportStats>,
    ) -> std::io::Result<Self>
    where
        E: QueuedExporter + 'static,
        F: FnOnce() -> Result<E, String> + Send + 'static,
    {
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::with_room(settings.max_export_batch_size)),
            capacity: settings.max_queue_size,
            batch: settings.max_export_batch_size,
            shards: (0..shard_count()).map(|_| Shard::default()).collect(),
            chunk_spans: (settings.max_export_batch_size.min(settings.max_queue_size) / 4).max(1),
        });
        let (control, control_rx) = mpsc::sync_channel(16);
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<bool, String>>(1);
        let thread_stats = stats.clone();
        let thread_queue = queue.clone();
        let handle = std::thread::Builder::new()
            .name("otel-export".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the export runtime: {e}")));
                        return;
                    }
                };
                let exporter = {
                    let _entered = runtime.enter();
                    make_exporter()
                };
                match exporter {
                    Ok(exporter) => {
                        let _ = ready_tx.send(Ok(exporter.takes_encoded()));
                        ExportLoop {
                            runtime,
                            exporter,
                            queue: thread_queue,
                            control: control_rx,
                            settings,
                            stats: thread_stats,
                            failures: FailureLog::default(),
                            rejections: FailureLog::default(),
                        }
                        .run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(encodes)) => Ok(Self {
                queue,
                thread: handle.thread().clone(),
                control,
                stats,
                export_timeout: settings.export_timeout,
                encodes,
            }),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("the export thread died at start")),
        }
    }

    fn ask(
        &self,
        make: impl FnOnce(SyncSender<()>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        self.control
            .try_send(make(ack_tx))
            .map_err(|_| OTelSdkError::InternalFailure("export thread busy or gone".into()))?;
        self.thread.unpark();
        ack_rx
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl BoundedBatchProcessor {
    /// Queues the sampled spans among `spans`, under one lock; what does not fit is dropped and
    /// counted.
    pub fn enqueue(&self, spans: impl IntoIterator<Item = SpanData>) {
        let Ok(mut pending) = self.queue.pending.lock() else {
            return;
        };
        let was_below_batch = pending.spans < self.queue.batch;
        let mut dropped = 0;
        for span in spans {
            if !span.span_context.is_sampled() {
                continue;
            }
            if pending.spans >= self.queue.capacity {
                dropped += 1;
                continue;
            }
            pending.items.push(Queued::Sdk(Box::new(span)));
            pending.spans += 1;
        }
        let full_batch = was_below_batch && pending.spans >= self.queue.batch;
        drop(pending);
        self.after_enqueue(dropped, full_batch);
    }

    /// Queues the spans of one request together (all or none, so a trace is never cut), if
    /// they are sampled.
    pub fn enqueue_lite(&self, scope: &InstrumentationScope, spans: Vec<LiteSpan>) {
        let n = spans.len();
        if n == 0 || !spans.iter().all(|s| s.ids.is_sampled()) {
            return;
        }
        if self.encodes {
            return self.encode_into_shard(scope, &spans);
        }
        self.push_entry(Queued::Lite(scope.clone(), spans));
    }

    /// True when the exporter sends encoded spans (see [`Self::enqueue_encoded`]).
    pub fn takes_encoded(&self) -> bool {
        self.encodes
    }

    /// Queues `spans` spans of one request already encoded as `Span` messages (field 2 of
    /// `ScopeSpans`), together; only for an exporter that [takes them](Self::takes_encoded).
    pub fn enqueue_encoded(&self, scope: &InstrumentationScope, bytes: &[u8], spans: usize) {
        if spans == 0 || !self.encodes {
            return;
        }
        self.add_to_shard(scope, |chunk| chunk.append(scope, bytes, spans));
    }

    /// Encodes a request's spans into the calling thread's chunk.
    fn encode_into_shard(&self, scope: &InstrumentationScope, spans: &[LiteSpan]) {
        self.add_to_shard(scope, |chunk| chunk.push(scope, spans));
    }

    /// Adds to the calling thread's chunk with `add`; the chunk joins the queue when full (or
    /// first, when it holds another scope's spans).
    fn add_to_shard(&self, scope: &InstrumentationScope, add: impl FnOnce(&mut EncodedChunk)) {
        let Some(shard) = self.queue.shards.get(my_shard().0) else {
            return;
        };
        let mut chunk = shard.0.lock().unwrap_or_else(PoisonError::into_inner);
        if chunk.holds_other_scope(scope)
            && let Some(entry) = chunk.take()
        {
            self.push_entry(entry);
        }
        add(&mut chunk);
        let full = (chunk.spans >= self.queue.chunk_spans || chunk.bytes.len() >= CHUNK_BYTES)
            .then(|| chunk.take());
        drop(chunk);
        if let Some(Some(entry)) = full {
            self.push_entry(entry);
        }
    }

    /// Queues one entry whole, or drops and counts all its spans when it does not fit.
    fn push_entry(&self, entry: Queued) {
        let (dropped, full_batch) = self.queue.push(entry);
        self.after_enqueue(dropped, full_batch);
    }

    fn after_enqueue(&self, dropped: u64, full_batch: bool) {
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if full_batch {
            self.thread.unpark();
        }
    }

    fn send_resource(&self, resource: &Resource) {
        let _ = self.control.try_send(Control::Resource(resource.clone()));
        self.thread.unpark();
    }
}

/// The processor as the tracer provider holds it, sharing its queue with a
/// [`super::spans::SpanSink`].
#[derive(Debug)]
pub struct SharedProcessor(pub Arc<BoundedBatchProcessor>);

impl SpanProcessor for SharedProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.enqueue(std::iter::once(span));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.ask(
            Control::Flush,
            self.0.export_timeout + Duration::from_secs(1),
        )
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.ask(Control::Shutdown, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.send_resource(resource);
    }
}

/// How much of the queue an export round sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Everything (on schedule, flush and shutdown).
    All,
    /// Full batches only (woken because one is waiting).
    FullBatches,
}

struct ExportLoop<E> {
    runtime: tokio::runtime::Runtime,
    exporter: E,
    queue: Arc<Queue>,
    control: Receiver<Control>,
    settings: BatchSettings,
    stats: Arc<ExportStats>,
    failures: FailureLog,
    /// Spans a collector accepted a request for but rejected (partial success), logged the same way.
    rejections: FailureLog,
}

impl<E: QueuedExporter> ExportLoop<E> {
    fn run(mut self) {
        let mut next_export = Instant::now() + self.settings.scheduled_delay;
        let mut full = false;
        loop {
            // Woken early by a full batch or a control message; otherwise on schedule. A full
            // batch left over from the last round is exported without waiting.
            if !full {
                std::thread::park_timeout(next_export.saturating_duration_since(Instant::now()));
                full = self.queue_holds_a_batch();
            }
            full = if Instant::now() >= next_export {
                next_export = Instant::now() + self.settings.scheduled_delay;
                self.export_queued(Drain::All)
            } else if full {
                self.export_queued(Drain::FullBatches)
            } else {
                false
            };
            while let Ok(message) = self.control.try_recv() {
                match message {
                    Control::Resource(resource) => self.exporter.set_resource(&resource),
                    Control::Flush(ack) => {
                        full = self.export_queued(Drain::All);
                        let _ = ack.send(());
                    }
                    Control::Shutdown(ack) => {
                        self.export_queued(Drain::All);
                        let _ = self
                            .exporter
                            .shutdown_with_timeout(self.settings.export_timeout);
                        let _ = ack.send(());
                        return;
                    }
                }
            }
        }
    }

    fn queue_holds_a_batch(&self) -> bool {
        self.queue
            .pending
            .lock()
            .map(|p| p.spans >= self.queue.batch)
            .unwrap_or(false)
    }

    /// Exports what is queued in batches of at most a batch size of spans (a request's spans
    /// stay in one batch). Woken by a full batch, it leaves the last, partial batch queued: sent
    /// at once, it would double the exports under steady load, and an export costs about as much
    /// as encoding a hundred spans. Returns whether a full batch is queued again.
    fn export_queued(&mut self, drain: Drain) -> bool {
        // Spans waiting in the threads' chunks go too when everything is sent.
        if drain == Drain::All {
            let dropped = self.queue.sweep_shards();
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        // The queue is left with room for a batch, allocated here rather than grown on the
        // request path.
        let room = Pending::with_room(self.settings.max_export_batch_size);
        let pending = match self.queue.pending.lock() {
            Ok(mut p) => std::mem::replace(&mut *p, room),
            Err(_) => return false,
        };
        let mut batch = Vec::new();
        let mut spans = 0;
        for item in pending.items {
            let n = item.spans();
            if spans > 0 && spans + n > self.settings.max_export_batch_size {
                self.export(std::mem::take(&mut batch), spans);
                spans = 0;
            }
            batch.push(item);
            spans += n;
        }
        if spans == 0 {
            return false;
        }
        if drain == Drain::All || spans >= self.settings.max_export_batch_size {
            self.export(batch, spans);
            return false;
        }
        self.requeue_front(batch, spans)
    }

    /// Puts a partial batch back ahead of what was queued meanwhile, so that spans keep their
    /// order; returns whether the queue now holds a full batch (the producers that filled it saw
    /// it below one, and did not wake this thread).
    fn requeue_front(&self, batch: Vec<Queued>, spans: usize) -> bool {
        let Ok(mut p) = self.queue.pending.lock() else {
            return false;
        };
        p.items.splice(0..0, batch);
        p.spans += spans;
        p.spans >= self.queue.batch
    }

    fn export(&mut self, batch: Vec<Queued>, spans: usize) {
        let n = spans as u64;
        let timeout = self.settings.export_timeout;
        let result = self.runtime.block_on(async {
            tokio::time::timeout(timeout, self.exporter.export_queued(batch)).await
        });
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "no answer within {timeout:?} (OTEL_BSP_EXPORT_TIMEOUT)"
            )),
        };
        match error {
            None => {
                let rejected = self.exporter.take_rejected();
                let lost = rejected.as_ref().map_or(0, |(r, _)| (*r).min(n));
                self.stats.exported.fetch_add(n - lost, Ordering::Relaxed);
                self.stats.failed.fetch_add(lost, Ordering::Relaxed);
                if let Some(lost) = self.failures.succeeded() {
                    tracing::info!(spans_lost = lost, "span export works again");
                }
                if let Some((_, message)) = rejected
                    && let Some(rejected) = self.rejections.failed(Instant::now(), lost)
                {
                    tracing::warn!(
                        spans_rejected = rejected,
                        collector_message = message,
                        "the collector rejected spans it was sent (reported at most once a minute)"
                    );
                }
            }
            Some(error) => {
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                if let Some(lost) = self.failures.failed(Instant::now(), n) {
                    tracing::warn!(
                        %error,
                        spans_lost = lost,
                        "span export failed; its spans are lost (reported at most once a minute)"
                    );
                }
            }
        }
    }
}

/// A failing collector is reported in the logs without a line per batch: the first failure at
/// once, then at most once per [`FAILURE_LOG_EVERY`] with the spans lost meanwhile, and one line
/// when exports work again.
#[derive(Debug, Default)]
struct FailureLog {
    last_warned: Option<Instant>,
    /// Spans lost since the last line about it.
    unreported: u64,
    /// A warning went out since the last "works again" line.
    warned: bool,
}

/// See [`FailureLog`].
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

impl FailureLog {
    /// Counts a failed batch; returns the spans to report if a warning is due.
    fn failed(&mut self, now: Instant, spans: u64) -> Option<u64> {
        self.unreported += spans;
        let due = self
            .last_warned
            .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_EVERY);
        due.then(|| {
            self.last_warned = Some(now);
            self.warned = true;
            std::mem::take(&mut self.unreported)
        })
    }

    /// After a warning, the first success returns the spans lost since it.
    fn succeeded(&mut self) -> Option<u64> {
        std::mem::take(&mut self.warned).then(|| std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::spans::{SpanSink, UnixNanos};
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::Sampler;
    use std::time::SystemTime;

    /// Records the number of spans in each batch it is given.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0
                .lock()
                .map_err(|_| OTelSdkError::AlreadyShutdown)?
                .push(batch.len());
            Ok(())
        }
    }

    impl QueuedExporter for Recorder {}

    fn five_spans(sink: &SpanSink) -> Vec<LiteSpan> {
        let now = UnixNanos::from(SystemTime::now());
        let root = sink.start(None, "POST /predict", SpanKind::Server);
        let mut spans: Vec<_> = (0..4)
            .map(|_| {
                LiteSpan::new(
                    sink.child(&root),
                    "step".into(),
                    SpanKind::Internal,
                    (now, now),
                )
            })
            .collect();
        spans.push(LiteSpan::new(
            root,
            "POST /predict".into(),
            SpanKind::Server,
            (now, now),
        ));
        spans
    }

    /// Polls until `done` holds, for at most five seconds.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_failing_collector_is_reported_once_a_minute_and_its_recovery_once() {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        assert_eq!(log.succeeded(), None, "nothing to say while all is well");
        assert_eq!(log.failed(t0, 10), Some(10), "the first failure at once");
        assert_eq!(log.failed(t0 + Duration::from_secs(1), 20), None);
        assert_eq!(log.failed(t0 + Duration::from_secs(59), 30), None);
        assert_eq!(
            log.failed(t0 + FAILURE_LOG_EVERY, 40),
            Some(90),
            "a minute on, with the spans lost meanwhile"
        );
        assert_eq!(log.failed(t0 + Duration::from_secs(61), 5), None);
        assert_eq!(
            log.succeeded(),
            Some(5),
            "recovery names what was not reported"
        );
        assert_eq!(log.succeeded(), None, "and is said once");
        // Flapping within the minute stays quiet; the loss is told with the next warning.
        assert_eq!(log.failed(t0 + Duration::from_secs(62), 7), None);
        assert_eq!(log.succeeded(), None);
        assert_eq!(log.failed(t0 + 2 * FAILURE_LOG_EVERY, 1), Some(8));
    }

    #[test]
    fn under_load_only_full_batches_are_sent_and_a_flush_sends_the_rest() {
        let recorder = Recorder::default();
        let batches = recorder.0.clone();
        let settings = BatchSettings {
            max_queue_size: 100,
            max_export_batch_size: 12,
            scheduled_delay: Duration::from_secs(3600),
            export_timeout: Duration::from_secs(5),
        };
        let stats = Arc::new(ExportStats::default());
        let processor = Arc::new(
            BoundedBatchProcessor::start(move || Ok(recorder), settings, stats.clone())
                .expect("export thread starts"),
        );
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", Some(processor.clone()));
        let scope = InstrumentationScope::builder("test").build();
        for _ in 0..5 {
            processor.enqueue_lite(&scope, five_spans(&sink));
        }
        // 25 spans in requests of 5: two batches of 10 are full (a third request would not
        // fit in 12); the last 5 wait for the schedule or a flush.
        wait_until("two full batches", || {
            stats.exported.load(Ordering::Relaxed) >= 20
        });
        assert_eq!(*batches.lock().expect("recorder lock"), vec![10, 10]);

        SharedProcessor(processor.clone())
            .force_flush()
            .expect("flush");
        assert_eq!(*batches.lock().expect("recorder lock"), vec![10, 10, 5]);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 25);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    }

    /// Spans of each batch, and whether all its entries came encoded.
    type Batches = Arc<Mutex<Vec<(usize, bool)>>>;

    /// Records [`Batches`].
    #[derive(Debug, Clone, Default)]
    struct ChunkRecorder(Batches);

    impl SpanExporter for ChunkRecorder {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            Err(OTelSdkError::InternalFailure("takes encoded chunks".into()))
        }
    }

    impl QueuedExporter for ChunkRecorder {
        fn takes_encoded(&self) -> bool {
            true
        }

        async fn export_queued(&self, batch: Vec<Queued>) -> OTelSdkResult {
            let spans = batch.iter().map(Queued::spans).sum();
            let encoded = batch.iter().all(|q| matches!(q, Queued::Encoded { .. }));
            self.0
                .lock()
                .map_err(|_| OTelSdkError::AlreadyShutdown)?
                .push((spans, encoded));
            Ok(())
        }
    }

    fn start_chunked(
        max_queue_size: usize,
        max_export_batch_size: usize,
    ) -> (Arc<BoundedBatchProcessor>, Batches, Arc<ExportStats>) {
        let recorder = ChunkRecorder::default();
        let batches = recorder.0.clone();
        let settings = BatchSettings {
            max_queue_size,
            max_export_batch_size,
            scheduled_delay: Duration::from_secs(3600),
            export_timeout: Duration::from_secs(5),
        };
        let stats = Arc::new(ExportStats::default());
        let processor = BoundedBatchProcessor::start(move || Ok(recorder), settings, stats.clone())
            .expect("export thread starts");
        (Arc::new(processor), batches, stats)
    }

    #[test]
    fn spans_are_encoded_in_thread_chunks_that_join_the_queue_when_full_or_swept() {
        let (processor, batches, stats) = start_chunked(100, 40);
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", Some(processor.clone()));
        let scope = InstrumentationScope::builder("test").build();
        // Chunks of a quarter batch (10 spans, two requests): four of them fill a batch.
        for _ in 0..9 {
            processor.enqueue_lite(&scope, five_spans(&sink));
        }
        wait_until("a full batch", || {
            stats.exported.load(Ordering::Relaxed) >= 40
        });
        assert_eq!(*batches.lock().expect("recorder lock"), vec![(40, true)]);
        // The ninth request waits in this thread's chunk until a flush sweeps it.
        SharedProcessor(processor.clone())
            .force_flush()
            .expect("flush");
        assert_eq!(
            *batches.lock().expect("recorder lock"),
            vec![(40, true), (5, true)]
        );
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_chunk_that_does_not_fit_the_queue_is_dropped_whole_and_counted() {
        let (processor, batches, stats) = start_chunked(10, 40);
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", Some(processor.clone()));
        let scope = InstrumentationScope::builder("test").build();
        for _ in 0..3 {
            processor.enqueue_lite(&scope, five_spans(&sink));
        }
        assert_eq!(
            stats.dropped.load(Ordering::Relaxed),
            5,
            "the third request"
        );
        SharedProcessor(processor.clone())
            .force_flush()
            .expect("flush");
        assert_eq!(*batches.lock().expect("recorder lock"), vec![(10, true)]);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_span_batch_takes_the_form_its_exporter_takes_and_is_all_or_nothing() {
        let (processor, batches, stats) = start_chunked(100, 40);
        let sampled = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", Some(processor.clone()));
        let mut batch = sampled.batch();
        five_spans(&sampled).into_iter().for_each(|s| batch.push(s));
        assert_eq!(batch.len(), 5);
        sampled.submit(batch);
        // An unsampled request's spans are never queued.
        let unsampled = SpanSink::new(
            Box::new(Sampler::AlwaysOff),
            "test",
            Some(processor.clone()),
        );
        let mut batch = unsampled.batch();
        five_spans(&unsampled)
            .into_iter()
            .for_each(|s| batch.push(s));
        unsampled.submit(batch);
        SharedProcessor(processor.clone())
            .force_flush()
            .expect("flush");
        assert_eq!(*batches.lock().expect("recorder lock"), vec![(5, true)]);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);

        // An exporter of `SpanData` gets the same spans as lite spans.
        let recorder = Recorder::default();
        let lite_batches = recorder.0.clone();
        let settings = BatchSettings {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchSettings::default()
        };
        let lite = Arc::new(
            BoundedBatchProcessor::start(move || Ok(recorder), settings, Arc::default())
                .expect("export thread starts"),
        );
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "test", Some(lite.clone()));
        let mut batch = sink.batch();
        five_spans(&sink).into_iter().for_each(|s| batch.push(s));
        sink.submit(batch);
        SharedProcessor(lite).force_flush().expect("flush");
        assert_eq!(*lite_batches.lock().expect("recorder lock"), vec![5]);
    }

    #[test]
    fn a_chunk_is_queued_before_spans_of_another_scope_join_it() {
        // Chunks of 20 spans: nothing here fills one.
        let (processor, _, _) = start_chunked(100, 80);
        let sink = SpanSink::new(Box::new(Sampler::AlwaysOn), "a", Some(processor.clone()));
        let (a, b) = (
            InstrumentationScope::builder("a").build(),
            InstrumentationScope::builder("b").build(),
        );
        processor.enqueue_lite(&a, five_spans(&sink));
        processor.enqueue_lite(&a.clone(), five_spans(&sink));
        processor.enqueue_lite(&b, five_spans(&sink));
        let queued: Vec<(String, usize)> = processor
            .queue
            .pending
            .lock()
            .expect("queue lock")
            .items
            .iter()
            .map(|q| match q {
                Queued::Encoded { scope, spans, .. } => (scope.name().to_string(), *spans),
                _ => (String::new(), 0),
            })
            .collect();
        // The two requests of scope "a" (a clone is the same scope) share a chunk, which the
        // request of scope "b" sends to the queue; "b" waits in the chunk.
        assert_eq!(queued, vec![("a".to_string(), 10)]);
        let waiting = processor.queue.shards[my_shard().0]
            .0
            .lock()
            .expect("shard lock")
            .scope
            .as_ref()
            .map(|s| s.name().to_string());
        assert_eq!(waiting.as_deref(), Some("b"));
    }
}
