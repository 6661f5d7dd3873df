//! Counters and bucketed Prometheus histograms behind the `metrics` facade, updated with plain
//! adds into the updating thread's own shard.
//!
//! Why not the exporter's own: `metrics-exporter-prometheus` keeps every histogram sample (a
//! lock-free list of 64-value blocks, an epoch pin and a timestamp per sample) and folds them into
//! buckets at upkeep, and every update of any of its metrics also bumps a generation counter
//! shared by all threads. With ten histogram samples and two counter increments per request on
//! two worker threads, that was the largest single cost of telemetry under load (about 1.5 µs per
//! request, `perf` at 32 connections), mostly cache lines moving between the cores. Here a
//! histogram's bucket bounds are known up front (they must be: without them the exporter renders
//! a summary), so a sample is a bucket search and two adds to lines no other thread writes.
//!
//! [`BucketedRecorder`] wraps the exporter's recorder: counters and the histograms with
//! configured buckets are kept here; gauges (set, not summed, so there is nothing to shard) and
//! other histograms go to the exporter. [`MetricsHandle::render`] appends what is kept here to the
//! exporter's text, in the same format.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, write_help_line, write_type_line,
};

/// A bucket list that cannot describe a histogram.
#[derive(Debug, thiserror::Error)]
#[error("histogram {name}: {reason}")]
pub struct BucketError {
    name: String,
    reason: &'static str,
}

/// Bucket bounds checked once: finite, strictly increasing, at least one.
fn check_bounds(name: &str, bounds: &[f64]) -> Result<(), BucketError> {
    let reason = if bounds.is_empty() {
        Some("no bucket bounds; give at least one")
    } else if bounds.iter().any(|b| !b.is_finite()) {
        Some("bucket bounds must be finite (+Inf is always added)")
    } else if bounds.windows(2).any(|w| w[0] >= w[1]) {
        Some("bucket bounds must be strictly increasing")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BucketError {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// 16 counters: one cache line pair, so two shards never share a line.
#[repr(align(128))]
#[derive(Default)]
struct Line([AtomicU64; 16]);

/// Shards owned by one thread each: the first this-many recording threads (workers, but also
/// any blocking-pool thread that records) get their own; later ones share one more shard.
fn owned_shards() -> usize {
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .saturating_mul(2)
            .clamp(8, 64)
    })
}

/// All shards: the owned ones and the shared one (also the shards of the span chunks of
/// `export`).
pub(crate) fn shard_count() -> usize {
    owned_shards() + 1
}

/// The calling thread's shard, and whether it is the only thread writing it.
pub(crate) fn my_shard() -> (usize, bool) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed).min(owned_shards());
    }
    let shard = SHARD.with(|s| *s);
    (shard, shard < owned_shards())
}

/// Adds to a counter of a shard. A shard's owner is its only writer, so a plain load and store
/// suffice (no locked instruction: those were most of the cost of a sample); the shared shard
/// needs a read-modify-write.
fn add(slot: &AtomicU64, owned: bool, f: impl Fn(u64) -> u64) {
    if owned {
        slot.store(f(slot.load(Ordering::Relaxed)), Ordering::Relaxed);
        return;
    }
    let mut current = slot.load(Ordering::Relaxed);
    while let Err(now) =
        slot.compare_exchange_weak(current, f(current), Ordering::Relaxed, Ordering::Relaxed)
    {
        current = now;
    }
}

/// One label set of one histogram. Per shard: a count per bucket (the last one is +Inf), then
/// the sum of the samples as `f64` bits.
pub struct Series {
    bounds: Arc<[f64]>,
    lines_per_shard: usize,
    lines: Box<[Line]>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buckets, count, sum) = self.read();
        f.debug_struct("Series")
            .field("bounds", &self.bounds)
            .field("cumulative", &buckets)
            .field("count", &count)
            .field("sum", &sum)
            .finish()
    }
}

impl Series {
    fn new(bounds: Arc<[f64]>) -> Self {
        let slots = bounds.len() + 2;
        let lines_per_shard = slots.div_ceil(16);
        let lines = (0..lines_per_shard * shard_count())
            .map(|_| Line::default())
            .collect();
        Self {
            bounds,
            lines_per_shard,
            lines,
        }
    }

    fn slot(&self, shard: usize, i: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + i / 16].0[i % 16]
    }

    fn sum_slot(&self, shard: usize) -> &AtomicU64 {
        self.slot(shard, self.bounds.len() + 1)
    }

    /// Cumulative bucket counts (one per bound, without +Inf), count and sum.
    pub fn read(&self) -> (Vec<u64>, u64, f64) {
        let n = self.bounds.len();
        let mut per_bucket = vec![0u64; n + 1];
        let mut sum = 0.0;
        for shard in 0..shard_count() {
            for (i, c) in per_bucket.iter_mut().enumerate() {
                *c += self.slot(shard, i).load(Ordering::Relaxed);
            }
            sum += f64::from_bits(self.sum_slot(shard).load(Ordering::Relaxed));
        }
        let mut running = 0;
        for c in &mut per_bucket {
            running += *c;
            *c = running;
        }
        let count = per_bucket.pop().unwrap_or(0);
        (per_bucket, count, sum)
    }
}

/// One label set of one counter: a count per shard, plus a floor that
/// [`CounterFn::absolute`] raises.
pub struct ShardedCounter {
    lines: Box<[Line]>,
    floor: AtomicU64,
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCounter")
            .field("value", &self.value())
            .finish()
    }
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self {
            lines: (0..shard_count()).map(|_| Line::default()).collect(),
            floor: AtomicU64::new(0),
        }
    }
}

impl ShardedCounter {
    fn increments(&self) -> u64 {
        self.lines
            .iter()
            .map(|l| l.0[0].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// The count: what `absolute` set, plus the increments since.
    pub fn value(&self) -> u64 {
        self.floor
            .load(Ordering::Relaxed)
            .wrapping_add(self.increments())
    }
}

impl CounterFn for ShardedCounter {
    fn increment(&self, value: u64) {
        let (shard, owned) = my_shard();
        add(&self.lines[shard].0[0], owned, |n| n.wrapping_add(value));
    }

    /// Raises the count to `value` if it is lower (a counter never goes down), as the exporter
    /// does; used for counts kept elsewhere, such as the process's CPU time.
    fn absolute(&self, value: u64) {
        self.floor
            .fetch_max(value.saturating_sub(self.increments()), Ordering::Relaxed);
    }
}

impl HistogramFn for Series {
    /// A value equal to a bound counts in that bound's bucket (`le`, as Prometheus defines it).
    /// NaN counts in +Inf only and leaves the sum alone, so one bad sample cannot poison it.
    fn record(&self, value: f64) {
        let (shard, owned) = my_shard();
        // A scan from the lowest bound, not a binary search: bounds are few, and most samples
        // fall in the low buckets, so the branches predict well (the binary search's did not,
        // and was half of the cost of a sample).
        let bucket = if value.is_nan() {
            self.bounds.len()
        } else {
            self.bounds
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(self.bounds.len())
        };
        add(self.slot(shard, bucket), owned, |n| n + 1);
        if !value.is_nan() {
            add(self.sum_slot(shard), owned, |bits| {
                (f64::from_bits(bits) + value).to_bits()
            });
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    series: HashMap<Key, Arc<Series>>,
    counters: HashMap<Key, Arc<ShardedCounter>>,
    descriptions: HashMap<String, (Option<Unit>, SharedString)>,
}

#[derive(Debug)]
struct Shared {
    bounds: HashMap<String, Arc<[f64]>>,
    registry: Mutex<Registry>,
}

/// A recorder that keeps counters and the histograms listed with their buckets, and passes the
/// rest on.
#[derive(Debug)]
pub struct BucketedRecorder<R> {
    inner: R,
    shared: Arc<Shared>,
}

impl<R: Recorder> BucketedRecorder<R> {
    /// Counters, and histograms named in `buckets` (with those bounds), are kept here; gauges
    /// and other histograms go to `inner`.
    pub fn new(inner: R, buckets: &[(&'static str, Vec<f64>)]) -> Result<Self, BucketError> {
        let mut bounds = HashMap::new();
        for (name, list) in buckets {
            check_bounds(name, list)?;
            bounds.insert((*name).to_owned(), Arc::from(list.as_slice()));
        }
        Ok(Self {
            inner,
            shared: Arc::new(Shared {
                bounds,
                registry: Mutex::default(),
            }),
        })
    }

    /// Renders what is kept here; pair it with the exporter's handle in a [`MetricsHandle`].
    pub fn sharded(&self) -> ShardedMetrics {
        ShardedMetrics(self.shared.clone())
    }
}

impl<R: Recorder> Recorder for BucketedRecorder<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        let mut registry = self.shared.lock();
        registry
            .descriptions
            .insert(key.as_str().to_owned(), (unit, description));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.shared.bounds.contains_key(key.as_str()) {
            let mut registry = self.shared.lock();
            registry
                .descriptions
                .insert(key.as_str().to_owned(), (unit, description));
        } else {
            self.inner.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        let mut registry = self.shared.lock();
        let counter = registry.counters.entry(key.clone()).or_default().clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let Some(bounds) = self.shared.bounds.get(key.name()) else {
            return self.inner.register_histogram(key, metadata);
        };
        let mut registry = self.shared.lock();
        let series = registry
            .series
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Series::new(bounds.clone())))
            .clone();
        Histogram::from_arc(series)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Read access to the counters and histograms of a [`BucketedRecorder`].
#[derive(Debug, Clone)]
pub struct ShardedMetrics(Arc<Shared>);

impl ShardedMetrics {
    /// Appends every counter and histogram in the Prometheus text format: per name (sorted),
    /// `# HELP` and `# TYPE`, then per label set (sorted) the value, or for a histogram the
    /// cumulative `_bucket` series, `_sum` and `_count`.
    pub fn render_into(&self, out: &mut String) {
        let registry = self.0.lock();
        render_families(
            out,
            &registry,
            &registry.counters,
            "counter",
            |out, name, labels, c| {
                let _ = writeln!(out, "{name}{} {}", braces(labels), c.value());
            },
        );
        render_families(out, &registry, &registry.series, "histogram", write_series);
    }
}

/// Writes each metric family of `metrics` (sorted by name): `# HELP` if described, `# TYPE`,
/// then `write` for each label set (sorted), then a blank line.
fn render_families<T>(
    out: &mut String,
    registry: &Registry,
    metrics: &HashMap<Key, Arc<T>>,
    kind: &str,
    write: impl Fn(&mut String, &str, &str, &T),
) {
    let mut rows: Vec<(&str, String, &T)> = metrics
        .iter()
        .map(|(key, m)| (key.name(), label_text(key), &**m))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (i, (name, labels, metric)) in rows.iter().enumerate() {
        if i == 0 || rows[i - 1].0 != *name {
            if let Some((_, description)) = registry.descriptions.get(*name) {
                write_help_line(out, name, None, None, description);
            }
            write_type_line(out, name, None, None, kind);
        }
        write(out, name, labels, metric);
        if rows.get(i + 1).is_none_or(|next| next.0 != *name) {
            out.push('\n');
        }
    }
}

/// `{labels}`, or nothing without labels.
fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// `k="v"` for every label of `key`, comma-separated, escaped as the exporter escapes its own.
fn label_text(key: &Key) -> String {
    let mut text = String::new();
    for label in key.labels() {
        if !text.is_empty() {
            text.push(',');
        }
        let _ = write!(
            text,
            "{}=\"{}\"",
            sanitize_label_key(label.key()),
            sanitize_label_value(label.value())
        );
    }
    text
}

fn write_series(out: &mut String, name: &str, labels: &str, series: &Series) {
    let (buckets, count, sum) = series.read();
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, cumulative) in series.bounds.iter().zip(&buckets) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

/// Renders `/metrics`: the exporter's metrics, then the counters and bucketed histograms.
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    /// The exporter's handle (gauges, histograms without configured buckets).
    pub prometheus: PrometheusHandle,
    sharded: ShardedMetrics,
}

impl MetricsHandle {
    /// Pairs the exporter's handle with what the recorder wrapping it keeps.
    pub fn new(prometheus: PrometheusHandle, sharded: ShardedMetrics) -> Self {
        Self {
            prometheus,
            sharded,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = self.prometheus.render();
        self.sharded.render_into(&mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn recorder(
        buckets: &[(&'static str, Vec<f64>)],
    ) -> (
        BucketedRecorder<metrics_exporter_prometheus::PrometheusRecorder>,
        MetricsHandle,
    ) {
        let inner = PrometheusBuilder::new().build_recorder();
        let prometheus = inner.handle();
        let recorder = BucketedRecorder::new(inner, buckets).expect("valid buckets");
        let handle = MetricsHandle::new(prometheus, recorder.sharded());
        (recorder, handle)
    }

    fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn samples_land_in_le_buckets_cumulatively_with_sum_and_count() {
        let (recorder, handle) = recorder(&[("latency_seconds", vec![0.25, 0.5, 1.0])]);
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("latency_seconds", Unit::Seconds, "How long.");
            let h = metrics::histogram!("latency_seconds", "route" => "/predict");
            for v in [0.125, 0.25, 0.375, 1.0, 7.0, f64::NAN] {
                h.record(v);
            }
        });
        let text = handle.render();
        assert_eq!(
            lines_of(&text, "latency_seconds"),
            [
                r#"latency_seconds_bucket{route="/predict",le="0.25"} 2"#,
                r#"latency_seconds_bucket{route="/predict",le="0.5"} 3"#,
                r#"latency_seconds_bucket{route="/predict",le="1"} 4"#,
                r#"latency_seconds_bucket{route="/predict",le="+Inf"} 6"#,
                r#"latency_seconds_sum{route="/predict"} 8.75"#,
                r#"latency_seconds_count{route="/predict"} 6"#,
            ]
        );
        assert!(
            text.contains("# HELP latency_seconds How long.\n# TYPE latency_seconds histogram\n")
        );
    }

    #[test]
    fn label_sets_render_apart_sorted_and_escaped_and_unlabelled_has_no_braces() {
        let (recorder, handle) = recorder(&[("size_bytes", vec![10.0])]);
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("size_bytes", "k" => "b\"q").record(20.0);
            metrics::histogram!("size_bytes", "k" => "a").record(1.0);
            metrics::histogram!("size_bytes").record(3.0);
        });
        let text = handle.render();
        assert_eq!(
            lines_of(&text, "size_bytes_count"),
            [
                "size_bytes_count 1",
                r#"size_bytes_count{k="a"} 1"#,
                r#"size_bytes_count{k="b\"q"} 1"#,
            ]
        );
        assert_eq!(text.matches("# TYPE size_bytes histogram").count(), 1);
    }

    #[test]
    fn the_same_key_registered_twice_is_one_series() {
        let (recorder, handle) = recorder(&[("n", vec![1.0])]);
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("n", "a" => "1").record(0.5);
            metrics::histogram!("n", "a" => "1").record(0.5);
        });
        assert_eq!(
            lines_of(&handle.render(), "n_count"),
            [r#"n_count{a="1"} 2"#]
        );
    }

    #[test]
    fn threads_recording_at_once_lose_no_sample_on_owned_or_shared_shards() {
        let (recorder, handle) = recorder(&[("t", vec![0.5])]);
        let h = metrics::with_local_recorder(&recorder, || metrics::histogram!("t"));
        // More threads than owned shards: the last ones write the shared shard together.
        let threads = owned_shards() + 4;
        std::thread::scope(|s| {
            for _ in 0..threads {
                let h = h.clone();
                s.spawn(move || {
                    for i in 0..10_000 {
                        h.record(if i % 2 == 0 { 0.25 } else { 1.0 });
                    }
                });
            }
        });
        let n = threads * 10_000;
        let text = handle.render();
        assert_eq!(
            lines_of(&text, "t_"),
            [
                format!(r#"t_bucket{{le="0.5"}} {}"#, n / 2),
                format!(r#"t_bucket{{le="+Inf"}} {n}"#),
                format!("t_sum {}", n as f64 * 0.625),
                format!("t_count {n}"),
            ]
        );
    }

    #[test]
    fn counters_sum_every_thread_and_absolute_only_raises() {
        let (recorder, handle) = recorder(&[]);
        let c = metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("jobs_total", "Jobs done.");
            metrics::counter!("jobs_total", "kind" => "a")
        });
        let threads = owned_shards() + 4;
        std::thread::scope(|s| {
            for _ in 0..threads {
                let c = c.clone();
                s.spawn(move || (0..10_000).for_each(|_| c.increment(1)));
            }
        });
        let n = threads * 10_000;
        let text = handle.render();
        assert!(
            text.contains(&format!(
                "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total{{kind=\"a\"}} {n}\n"
            )),
            "{text}"
        );
        let cpu = metrics::with_local_recorder(&recorder, || metrics::counter!("cpu_total"));
        cpu.absolute(7);
        cpu.increment(1);
        cpu.absolute(5);
        assert_eq!(lines_of(&handle.render(), "cpu_total"), ["cpu_total 8"]);
        cpu.absolute(20);
        assert_eq!(lines_of(&handle.render(), "cpu_total"), ["cpu_total 20"]);
    }

    #[test]
    fn other_metrics_go_to_the_exporter() {
        let (recorder, handle) = recorder(&[("listed", vec![1.0])]);
        metrics::with_local_recorder(&recorder, || {
            metrics::gauge!("in_flight").set(3.0);
            metrics::histogram!("unlisted").record(2.0);
        });
        let text = handle.render();
        assert!(
            text.contains("# TYPE in_flight gauge\nin_flight 3\n"),
            "{text}"
        );
        // The exporter renders a histogram without buckets as a summary.
        assert!(text.contains("# TYPE unlisted summary"), "{text}");
        assert!(
            lines_of(&text, "listed").is_empty(),
            "nothing recorded for `listed`: {text}"
        );
    }

    #[test]
    fn bad_bucket_lists_are_refused_with_the_name() {
        let inner = || PrometheusBuilder::new().build_recorder();
        for (bounds, reason) in [
            (vec![], "at least one"),
            (vec![1.0, f64::INFINITY], "finite"),
            (vec![1.0, 1.0], "strictly increasing"),
            (vec![2.0, 1.0], "strictly increasing"),
        ] {
            let err = BucketedRecorder::new(inner(), &[("h", bounds)]).expect_err("refused");
            let message = err.to_string();
            assert!(
                message.starts_with("histogram h: ") && message.contains(reason),
                "{message}"
            );
        }
    }
}
