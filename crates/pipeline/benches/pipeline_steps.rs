//! Per-step and whole-pipeline cost of classifying one real test document.
//!
//! Needs the archive: `NEWSGROUPS_ARCHIVE=path/to/20news-bydate.tar.gz cargo bench -p pipeline`
//! (or the cache `data/20news-bydate.tar.gz` that `train` downloads).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use pipeline::dataset::{DEFAULT_CATEGORIES, read_archive};
use pipeline::progress::NoProgress;
use pipeline::{Model, TrainConfig};

fn archive() -> PathBuf {
    let candidates = [
        std::env::var_os("NEWSGROUPS_ARCHIVE").map(PathBuf::from),
        Some(PathBuf::from("../../data/20news-bydate.tar.gz")),
        Some(PathBuf::from("data/20news-bydate.tar.gz")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!(
                "set NEWSGROUPS_ARCHIVE to 20news-bydate.tar.gz (or run `cargo run -p train` first)"
            );
            std::process::exit(2)
        })
}

fn steps(c: &mut Criterion) {
    let categories: Vec<String> = DEFAULT_CATEGORIES.map(String::from).to_vec();
    let dataset =
        read_archive(&archive(), &categories, None, &NoProgress).expect("read the archive");
    let model = Model::train(&dataset, &TrainConfig::default()).expect("train");
    let docs: Vec<&str> = dataset.test.iter().map(|d| d.text.as_str()).collect();
    // A document of median length, for the per-step figures.
    let mut by_len = docs.clone();
    by_len.sort_by_key(|d| d.len());
    let median = by_len[by_len.len() / 2];
    eprintln!("median test document: {} bytes", median.len());

    let tokens = model.tokenize(median);
    let counts = model.count(&tokens);
    let features = model.weigh(&counts);
    let mut group = c.benchmark_group("step");
    group.bench_function("tokenize", |b| b.iter(|| model.tokenize(black_box(median))));
    group.bench_function("count", |b| b.iter(|| model.count(black_box(&tokens))));
    group.bench_function("tfidf", |b| b.iter(|| model.tfidf(black_box(&counts))));
    group.bench_function("weigh", |b| b.iter(|| model.weigh(black_box(&counts))));
    group.bench_function("predict", |b| {
        b.iter(|| model.predict(black_box(&features)))
    });
    group.finish();

    // Every test document in turn: the per-request cost over the real length distribution.
    let mut next = docs.iter().cycle();
    c.bench_function("classify/test_documents_round_robin", |b| {
        b.iter(|| model.classify(black_box(next.next().copied().unwrap_or_default())))
    });
    c.bench_function("classify/median_document", |b| {
        b.iter(|| model.classify(black_box(median)))
    });
}

criterion_group!(benches, steps);
criterion_main!(benches);
