//! The golden signals as the server itself counted them during the run: two scrapes of its
//! `/metrics` (before and after) and the differences, with latency quantiles interpolated from
//! the histogram buckets the way Prometheus' `histogram_quantile` does.

use std::collections::BTreeMap;

use serde::Serialize;

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape(Vec<Sample>);

impl Scrape {
    /// Parses the text exposition format (comments skipped, label values unescaped enough for
    /// our own metrics).
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(parse_line)
                .collect(),
        )
    }

    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| {
                s.name == name
                    && filter
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels
        .split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once("=\"")?;
            Some((k.trim().to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect();
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// What the server reported over the run.
#[derive(Debug, Clone, Serialize)]
pub struct GoldenSignals {
    /// Requests per second, all routes.
    pub requests_per_second: f64,
    /// Share of requests answered 5xx.
    pub server_error_ratio: f64,
    /// Errors by reason (4xx and 5xx), counted by the server.
    pub errors_by_reason: BTreeMap<String, f64>,
    /// `/predict` latency (200s) from the histogram, in milliseconds.
    pub predict_p50_ms: f64,
    /// 99th percentile, same.
    pub predict_p99_ms: f64,
    /// Requests in progress at the end (the scrape itself included).
    pub in_flight: f64,
    /// Tokio worker busy ratio at the end.
    pub worker_busy_ratio: f64,
    /// Resident memory at the end, MiB.
    pub resident_mib: f64,
    /// Predictions by label.
    pub predictions_by_label: BTreeMap<String, f64>,
}

/// The differences between two scrapes `seconds` apart.
pub fn golden_signals(before: &Scrape, after: &Scrape, seconds: f64) -> GoldenSignals {
    let delta =
        |name: &str, filter: &[(&str, &str)]| after.sum(name, filter) - before.sum(name, filter);
    let requests = delta("http_server_requests_total", &[]);
    let server_errors: f64 = after
        .label_values("http_server_requests_total", "http_response_status_code")
        .iter()
        .filter(|c| c.starts_with('5'))
        .map(|c| {
            delta(
                "http_server_requests_total",
                &[("http_response_status_code", c.as_str())],
            )
        })
        .sum();
    let errors_by_reason = after
        .label_values("http_server_errors_total", "reason")
        .into_iter()
        .map(|r| {
            let d = delta("http_server_errors_total", &[("reason", r.as_str())]);
            (r, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let predictions_by_label = after
        .label_values("model_predictions_total", "label")
        .into_iter()
        .map(|l| {
            let d = delta("model_predictions_total", &[("label", l.as_str())]);
            (l, d)
        })
        .collect();
    let ok = [
        ("http_route", "/predict"),
        ("http_response_status_code", "200"),
    ];
    let mut buckets: Vec<(f64, f64)> = after
        .label_values("http_server_request_duration_seconds_bucket", "le")
        .iter()
        .map(|le| {
            let mut f = ok.to_vec();
            f.push(("le", le.as_str()));
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            (
                bound,
                delta("http_server_request_duration_seconds_bucket", &f),
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    GoldenSignals {
        requests_per_second: requests / seconds.max(1e-9),
        // `+ 0.0` turns the -0.0 of an empty float sum into 0.0, so it never prints as "-0.0000".
        server_error_ratio: if requests > 0.0 {
            (server_errors / requests).max(0.0) + 0.0
        } else {
            0.0
        },
        errors_by_reason,
        predict_p50_ms: histogram_quantile(0.5, &buckets) * 1000.0,
        predict_p99_ms: histogram_quantile(0.99, &buckets) * 1000.0,
        in_flight: after.sum("http_server_active_requests", &[]),
        worker_busy_ratio: after.sum("tokio_worker_busy_ratio", &[]),
        resident_mib: after.sum("process_resident_memory_bytes", &[]) / (1024.0 * 1024.0),
        predictions_by_label,
    }
}

/// Prometheus' `histogram_quantile` over cumulative `(upper bound, count)` buckets.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return previous.0;
            }
            let in_bucket = count - previous.1;
            let fraction = if in_bucket > 0.0 {
                (rank - previous.1) / in_bucket
            } else {
                0.0
            };
            return previous.0 + (bound - previous.0) * fraction;
        }
        previous = (bound, count);
    }
    previous.0
}

impl std::fmt::Display for GoldenSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "== golden signals, from the server's /metrics over the run"
        )?;
        writeln!(
            f,
            "traffic         {:.1} requests/s",
            self.requests_per_second
        )?;
        writeln!(
            f,
            "latency         /predict p50 {:.3} ms, p99 {:.3} ms (histogram)",
            self.predict_p50_ms, self.predict_p99_ms
        )?;
        let errors: Vec<String> = self
            .errors_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            f,
            "errors          5xx ratio {:.4}; by reason: {}",
            self.server_error_ratio,
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            }
        )?;
        writeln!(
            f,
            "saturation      in flight {}, worker busy {:.2}, resident {:.1} MiB",
            self.in_flight, self.worker_busy_ratio, self.resident_mib
        )?;
        let labels: Vec<String> = self
            .predictions_by_label
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        write!(f, "predictions     {}", labels.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        // 10 in (0, 1], 10 in (1, 2]: the median is 1, p75 is 1.5.
        let b = [(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert!((histogram_quantile(0.5, &b) - 1.0).abs() < 1e-12);
        assert!((histogram_quantile(0.75, &b) - 1.5).abs() < 1e-12);
        assert_eq!(histogram_quantile(0.5, &[]), 0.0);
    }

    #[test]
    fn deltas_between_scrapes() {
        let before = Scrape::parse(
            "# TYPE x counter\nhttp_server_requests_total{http_response_status_code=\"200\"} 10\nmodel_predictions_total{label=\"a\"} 3\n",
        );
        let after = Scrape::parse(concat!(
            "http_server_requests_total{http_response_status_code=\"200\"} 30\n",
            "http_server_requests_total{http_response_status_code=\"503\"} 5\n",
            "http_server_errors_total{reason=\"overloaded\",status_class=\"5xx\"} 5\n",
            "model_predictions_total{label=\"a\"} 13\n",
            "model_predictions_total{label=\"b\"} 10\n",
        ));
        let g = golden_signals(&before, &after, 5.0);
        assert!((g.requests_per_second - 5.0).abs() < 1e-12);
        assert!((g.server_error_ratio - 0.2).abs() < 1e-12);
        assert_eq!(g.errors_by_reason.get("overloaded"), Some(&5.0));
        assert_eq!(g.predictions_by_label.get("a"), Some(&10.0));
        assert_eq!(g.predictions_by_label.get("b"), Some(&10.0));
    }
}
