//! What loadgen saw, counted by itself (not inferred from goose's report): requests by kind and
//! outcome, latencies, wrong answers, and the slowest requests with their trace ids.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the document's true category.
    Right,
    /// 200 with another category: an error by the SRE book's definition.
    WrongAnswer,
    /// A bad-input request answered with the status it should get.
    ExpectedRejection,
    /// 2xx for health checks.
    Ok,
    /// Any other HTTP status.
    UnexpectedStatus(u16),
    /// No HTTP response at all (connection refused, reset, timeout).
    Transport,
}

/// Shared counters, updated by every user.
#[derive(Debug, Default)]
pub struct Tally {
    right: AtomicU64,
    wrong: AtomicU64,
    expected_rejections: AtomicU64,
    ok: AtomicU64,
    transport: AtomicU64,
    server_errors: AtomicU64,
    unexpected_4xx: AtomicU64,
    predict_ok: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    slowest: Mutex<Vec<(Duration, String, &'static str)>>,
}

const KEEP_SLOWEST: usize = 5;
const MAX_SAMPLES: usize = 10_000_000;

impl Tally {
    /// Records one request.
    pub fn record(&self, kind: &'static str, outcome: Outcome, latency: Duration, trace_id: &str) {
        let counter = match outcome {
            Outcome::Right => &self.right,
            Outcome::WrongAnswer => &self.wrong,
            Outcome::ExpectedRejection => &self.expected_rejections,
            Outcome::Ok => &self.ok,
            Outcome::Transport => &self.transport,
            Outcome::UnexpectedStatus(s) if s >= 500 => &self.server_errors,
            Outcome::UnexpectedStatus(_) => &self.unexpected_4xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Right | Outcome::WrongAnswer) {
            self.predict_ok.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut l) = self.latencies_us.lock()
            && l.len() < MAX_SAMPLES
        {
            l.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        }
        if let Ok(mut slowest) = self.slowest.lock()
            && (slowest.len() < KEEP_SLOWEST || slowest.last().is_some_and(|s| s.0 < latency))
        {
            slowest.push((latency, trace_id.to_owned(), kind));
            slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
            slowest.truncate(KEEP_SLOWEST);
        }
    }

    /// The summary of a run that lasted `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let mut l = self
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        l.sort_unstable();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * (l.len() - 1) as f64).round() as usize;
            f64::from(l[i.min(l.len() - 1)]) / 1000.0
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (right, wrong) = (load(&self.right), load(&self.wrong));
        let requests = right
            + wrong
            + load(&self.expected_rejections)
            + load(&self.ok)
            + load(&self.transport)
            + load(&self.server_errors)
            + load(&self.unexpected_4xx);
        let answered = right + wrong;
        Summary {
            requests,
            seconds: elapsed.as_secs_f64(),
            requests_per_second: requests as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency {
                p50: pct(50.0),
                p90: pct(90.0),
                p99: pct(99.0),
                max: pct(100.0),
            },
            predictions: answered,
            right_answers: right,
            wrong_answers: wrong,
            wrong_answer_rate: if answered == 0 {
                0.0
            } else {
                wrong as f64 / answered as f64
            },
            accuracy_under_load: if answered == 0 {
                0.0
            } else {
                right as f64 / answered as f64
            },
            expected_rejections: load(&self.expected_rejections),
            health_ok: load(&self.ok),
            errors: Errors {
                transport: load(&self.transport),
                server_5xx: load(&self.server_errors),
                unexpected_4xx: load(&self.unexpected_4xx),
            },
            slowest: self
                .slowest
                .lock()
                .map(|s| {
                    s.iter()
                        .map(|(d, t, k)| Slow {
                            ms: d.as_secs_f64() * 1000.0,
                            trace_id: t.clone(),
                            kind: k,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            server: None,
        }
    }
}

/// The end-of-run report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests sent (all kinds).
    pub requests: u64,
    /// Wall time of the load.
    pub seconds: f64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Latency percentiles over all requests.
    pub latency_ms: Latency,
    /// `/predict` requests answered with 200.
    pub predictions: u64,
    /// ...whose category was the document's newsgroup.
    pub right_answers: u64,
    /// ...whose category was not.
    pub wrong_answers: u64,
    /// `wrong / predictions`.
    pub wrong_answer_rate: f64,
    /// `right / predictions`: the model's accuracy under load.
    pub accuracy_under_load: f64,
    /// Bad-input requests rejected with the expected 4xx (not failures).
    pub expected_rejections: u64,
    /// Health and metrics requests answered 2xx.
    pub health_ok: u64,
    /// Failures.
    pub errors: Errors,
    /// The slowest requests, to look up in the tracing backend.
    pub slowest: Vec<Slow>,
    /// The golden signals as the server counted them (when its `/metrics` answered).
    pub server: Option<crate::golden::GoldenSignals>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Failures by kind.
#[derive(Debug, Clone, Serialize)]
pub struct Errors {
    /// No response (refused, reset, timed out).
    pub transport: u64,
    /// 5xx (overload answers 503).
    pub server_5xx: u64,
    /// A 4xx where none was expected.
    pub unexpected_4xx: u64,
}

/// One slow request.
#[derive(Debug, Clone, Serialize)]
pub struct Slow {
    /// Latency in milliseconds.
    pub ms: f64,
    /// Its trace id (the `traceparent` loadgen sent).
    pub trace_id: String,
    /// Which kind of request.
    pub kind: &'static str,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_ms;
        writeln!(f, "== loadgen summary")?;
        writeln!(
            f,
            "requests        {} in {:.1} s ({:.1} requests/s)",
            self.requests, self.seconds, self.requests_per_second
        )?;
        writeln!(
            f,
            "latency ms      p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            l.p50, l.p90, l.p99, l.max
        )?;
        writeln!(
            f,
            "predictions     {} answered, {} right, {} wrong: wrong-answer rate {:.2}%, accuracy under load {:.4}",
            self.predictions,
            self.right_answers,
            self.wrong_answers,
            self.wrong_answer_rate * 100.0,
            self.accuracy_under_load
        )?;
        writeln!(
            f,
            "bad input       {} rejected as expected (not counted as failures)",
            self.expected_rejections
        )?;
        writeln!(f, "health/metrics  {} ok", self.health_ok)?;
        let e = &self.errors;
        writeln!(
            f,
            "errors          transport {}, 5xx {}, unexpected 4xx {}",
            e.transport, e.server_5xx, e.unexpected_4xx
        )?;
        write!(f, "slowest         ")?;
        for (i, s) in self.slowest.iter().enumerate() {
            if i > 0 {
                write!(f, "\n                ")?;
            }
            write!(f, "{:.3} ms {} trace {}", s.ms, s.kind, s.trace_id)?;
        }
        if let Some(server) = &self.server {
            write!(f, "\n{server}")?;
        }
        Ok(())
    }
}
