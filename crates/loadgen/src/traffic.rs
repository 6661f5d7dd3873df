//! The transactions goose runs: `predict` (real documents, answers checked), `health`
//! (`/readyz`, `/metrics`) and `bad-input` (requests the server must reject, and does).
//! Every request carries a fresh W3C `traceparent`, so its trace starts here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use goose::prelude::*;

use crate::tally::{Outcome, Tally};

/// A test document and the category it belongs to.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The post, as the server gets it.
    pub text: String,
    /// Its newsgroup.
    pub label: String,
}

/// State shared by all users.
#[derive(Debug)]
pub struct Shared {
    /// The documents.
    pub docs: Vec<Doc>,
    /// The order they are sent in (a seeded permutation, or identity for round-robin).
    pub order: Vec<usize>,
    /// Seed of the permutation and of the trace ids.
    pub seed: u64,
    /// Size of the oversized bodies (just over the server's limit).
    pub oversize_bytes: usize,
    /// The counts.
    pub tally: Tally,
    next: AtomicU64,
}

impl Shared {
    /// Documents in seeded random order, or as given when `shuffle` is false.
    pub fn new(docs: Vec<Doc>, shuffle: bool, seed: u64, oversize_bytes: usize) -> Self {
        let mut order: Vec<usize> = (0..docs.len()).collect();
        if shuffle {
            // Fisher-Yates with SplitMix64: the same seed gives the same order everywhere.
            let mut state = seed;
            for i in (1..order.len()).rev() {
                let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        Self {
            docs,
            order,
            seed,
            oversize_bytes,
            tally: Tally::default(),
            next: AtomicU64::new(0),
        }
    }

    /// A request number, unique within the run.
    fn ticket(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A `traceparent` header and its trace id, derived from the seed and the request number.
    fn traceparent(&self, ticket: u64) -> (String, String) {
        // Ticket n takes draws 3n+1..3n+3 of one splitmix64 stream, so no two requests share
        // a draw (xor-ing the ticket into the seed made neighbours share half their trace id).
        let mut state = self
            .seed
            .wrapping_add(ticket.wrapping_mul(3).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (hi, lo, span) = (
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state) | 1,
        );
        let trace_id = format!("{hi:016x}{lo:016x}");
        (format!("00-{trace_id}-{span:016x}-01"), trace_id)
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Builds a goose transaction from an async function over the shared state.
macro_rules! shared_transaction {
    ($shared:expr, $f:ident, $name:literal) => {{
        let shared = $shared.clone();
        Transaction::new(Arc::new(move |user| {
            let shared = shared.clone();
            Box::pin(async move { $f(&shared, user).await })
        }))
        .set_name($name)
    }};
}

/// The `predict` transaction.
pub fn predict_transaction(shared: &Arc<Shared>) -> Transaction {
    shared_transaction!(shared, predict, "predict")
}

/// The `health` transaction.
pub fn health_transaction(shared: &Arc<Shared>) -> Transaction {
    shared_transaction!(shared, health, "health")
}

/// The `bad-input` transaction.
pub fn bad_input_transaction(shared: &Arc<Shared>) -> Transaction {
    shared_transaction!(shared, bad_input, "bad-input")
}

async fn predict(shared: &Shared, user: &mut GooseUser) -> TransactionResult {
    let ticket = shared.ticket();
    let Some(doc) = shared
        .order
        .get((ticket % shared.order.len().max(1) as u64) as usize)
        .and_then(|&i| shared.docs.get(i))
    else {
        return Ok(());
    };
    let (traceparent, trace_id) = shared.traceparent(ticket);
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/predict")?
        .header("traceparent", traceparent)
        .header("content-type", "text/plain; charset=utf-8")
        .body(doc.text.clone());
    let started = Instant::now();
    let mut goose = user
        .request(
            GooseRequest::builder()
                .set_request_builder(builder)
                .name("predict")
                .build(),
        )
        .await?;
    let outcome = match goose.response {
        Err(_) => Outcome::Transport,
        Ok(response) if response.status().as_u16() == 200 => {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            if body["result"].as_str() == Some(doc.label.as_str()) {
                Outcome::Right
            } else {
                Outcome::WrongAnswer
            }
        }
        Ok(response) => Outcome::UnexpectedStatus(response.status().as_u16()),
    };
    shared
        .tally
        .record("predict", outcome, started.elapsed(), &trace_id);
    if outcome == Outcome::WrongAnswer {
        // Goose reports it as a failed request, tagged so it is not mistaken for a 5xx.
        return user.set_failure("wrong answer", &mut goose.request, None, None);
    }
    Ok(())
}

async fn health(shared: &Shared, user: &mut GooseUser) -> TransactionResult {
    for path in ["/readyz", "/metrics"] {
        let ticket = shared.ticket();
        let (traceparent, trace_id) = shared.traceparent(ticket);
        let builder = user
            .get_request_builder(&GooseMethod::Get, path)?
            .header("traceparent", traceparent);
        let started = Instant::now();
        let goose = user
            .request(
                GooseRequest::builder()
                    .set_request_builder(builder)
                    .name(path)
                    .build(),
            )
            .await?;
        let outcome = match goose.response {
            Err(_) => Outcome::Transport,
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                Outcome::Ok
            }
            Ok(r) => Outcome::UnexpectedStatus(r.status().as_u16()),
        };
        shared
            .tally
            .record("health", outcome, started.elapsed(), &trace_id);
    }
    Ok(())
}

/// The four kinds of bad input, in turn, with the status each must get.
async fn bad_input(shared: &Shared, user: &mut GooseUser) -> TransactionResult {
    let ticket = shared.ticket();
    let (traceparent, trace_id) = shared.traceparent(ticket);
    let (name, expected, builder) = match ticket % 4 {
        0 => (
            "bad-input: empty body",
            400,
            user.get_request_builder(&GooseMethod::Post, "/predict")?
                .body(""),
        ),
        1 => (
            "bad-input: malformed JSON",
            400,
            user.get_request_builder(&GooseMethod::Post, "/predict")?
                .header("content-type", "application/json")
                .body("{\"text\": "),
        ),
        2 => (
            "bad-input: wrong method",
            405,
            user.get_request_builder(&GooseMethod::Get, "/predict")?,
        ),
        _ => (
            "bad-input: oversized body",
            413,
            user.get_request_builder(&GooseMethod::Post, "/predict")?
                .body(vec![b'a'; shared.oversize_bytes]),
        ),
    };
    let builder = builder.header("traceparent", traceparent);
    let started = Instant::now();
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(name)
        .expect_status_code(expected)
        .build();
    let goose = user.request(request).await?;
    let outcome = match goose.response {
        Err(_) => Outcome::Transport,
        Ok(r) if r.status().as_u16() == expected => {
            let _ = r.bytes().await;
            Outcome::ExpectedRejection
        }
        Ok(r) => Outcome::UnexpectedStatus(r.status().as_u16()),
    };
    shared
        .tally
        .record("bad-input", outcome, started.elapsed(), &trace_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(n: usize) -> Vec<Doc> {
        (0..n)
            .map(|i| Doc {
                text: i.to_string(),
                label: "x".into(),
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_order_and_another_seed_another() {
        let a = Shared::new(docs(50), true, 7, 10);
        let b = Shared::new(docs(50), true, 7, 10);
        let c = Shared::new(docs(50), true, 8, 10);
        assert_eq!(a.order, b.order);
        assert_ne!(a.order, c.order);
        let mut sorted = a.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
        assert_eq!(Shared::new(docs(5), false, 7, 10).order, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn traceparents_are_valid_and_distinct() {
        let s = Shared::new(docs(1), false, 1, 10);
        let (tp1, id1) = s.traceparent(1);
        let (tp2, id2) = s.traceparent(2);
        assert_ne!(id1, id2);
        for tp in [&tp1, &tp2] {
            let parts: Vec<_> = tp.split('-').collect();
            assert_eq!(
                (parts[0], parts[1].len(), parts[2].len(), parts[3]),
                ("00", 32, 16, "01")
            );
            assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()) && parts[1] != "0".repeat(32));
        }
    }

    #[test]
    fn no_two_requests_share_any_part_of_their_ids() {
        let s = Shared::new(docs(1), false, 1, 10);
        let mut halves = std::collections::HashSet::new();
        for ticket in 0..10_000 {
            let (tp, _) = s.traceparent(ticket);
            let parts: Vec<_> = tp.split('-').collect();
            for half in [&parts[1][..16], &parts[1][16..], parts[2]] {
                assert!(
                    halves.insert(half.to_owned()),
                    "{half} repeats at ticket {ticket}"
                );
            }
        }
    }
}
