//! The `train` command: get the dataset, fit, evaluate on the test split, write the model and its
//! report. `main.rs` only parses arguments; tests call [`run`] directly.

mod progress;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use pipeline::dataset::{self, DEFAULT_CATEGORIES, Dataset};
use pipeline::{Metadata, Model, ModelFile, TrainConfig, Weighting};

pub use report::Report;

/// Train the 20 Newsgroups classifier and write `model.bin` plus `model.metrics.json`.
///
/// Without --archive, downloads the canonical 20news-bydate.tar.gz (about 14 MB) into --data-dir,
/// verifies its SHA-256, and reuses it on later runs. With --archive, reads that local copy.
/// The same data and settings always give a byte-identical model file.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
pub struct Args {
    /// Local copy of 20news-bydate.tar.gz to read instead of downloading.
    #[arg(long, env = "NEWSGROUPS_ARCHIVE", value_name = "PATH")]
    pub archive: Option<PathBuf>,

    /// Expected SHA-256 of --archive (hex); checked while reading. Downloads are always checked
    /// against the canonical archive's checksum.
    #[arg(long, env = "NEWSGROUPS_SHA256", value_name = "HEX", value_parser = parse_sha256)]
    pub sha256: Option<String>,

    /// Folder that caches the downloaded archive.
    #[arg(long, env = "DATA_DIR", default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Download URLs, tried in order (comma separated).
    #[arg(long = "mirror", env = "NEWSGROUPS_MIRRORS", value_delimiter = ',', default_values_t = dataset::download::MIRRORS.map(String::from))]
    pub mirrors: Vec<String>,

    /// Where to write the model; the report goes beside it as <name>.metrics.json.
    #[arg(
        long,
        env = "MODEL_PATH",
        default_value = "data/model.bin",
        value_name = "PATH"
    )]
    pub model: PathBuf,

    /// Newsgroups to classify (comma separated).
    #[arg(long, env = "NEWSGROUPS_CATEGORIES", value_delimiter = ',', default_values_t = DEFAULT_CATEGORIES.map(String::from))]
    pub categories: Vec<String>,

    /// Keep only terms found in at least this many training documents (smaller vocabulary,
    /// less training memory).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_df: u32,

    /// Additive smoothing of naive Bayes.
    #[arg(long, default_value_t = TrainConfig::default().alpha)]
    pub alpha: f64,

    /// Term weights the classifier reads: counts or tfidf.
    #[arg(long, default_value_t = TrainConfig::default().weighting)]
    pub weighting: Weighting,

    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs the whole job and returns its report (also written beside the model).
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let started = Instant::now();
    let progress = progress::Bars::new(args.quiet);
    let (dataset, archive) = load_dataset(args, &progress)?;
    let read_seconds = started.elapsed().as_secs_f64();
    say(
        args,
        format_args!(
            "read {} training and {} test documents of {} categories from {} in {read_seconds:.2} s",
            dataset.train.len(),
            dataset.test.len(),
            dataset.categories.len(),
            archive.display()
        ),
    );

    let config = TrainConfig {
        min_df: args.min_df as usize,
        alpha: args.alpha,
        weighting: args.weighting,
    };
    let fit_started = Instant::now();
    let model = Model::train(&dataset, &config).context("training failed")?;
    let fit_seconds = fit_started.elapsed().as_secs_f64();

    let evaluate_started = Instant::now();
    let train_accuracy = model.evaluate(&dataset.train).accuracy;
    let test = model.evaluate(&dataset.test);
    let evaluate_seconds = evaluate_started.elapsed().as_secs_f64();

    let write_started = Instant::now();
    let file = ModelFile::new(model, metadata(&dataset, &config, train_accuracy, test))?;
    file.save(&args.model)?;
    let write_seconds = write_started.elapsed().as_secs_f64();

    let report = Report::new(
        &file.metadata,
        &args.model,
        &archive,
        [
            read_seconds,
            fit_seconds,
            evaluate_seconds,
            write_seconds,
            started.elapsed().as_secs_f64(),
        ],
        dataset.test.len(),
    );
    let report_path = report::path_beside(&args.model);
    report.save(&report_path)?;
    say(
        args,
        format_args!(
            "{report}\nwrote {} and {}",
            args.model.display(),
            report_path.display()
        ),
    );
    Ok(report)
}

fn say(args: &Args, message: std::fmt::Arguments<'_>) {
    if !args.quiet {
        println!("{message}");
    }
}

/// Reads the local archive, or downloads (or reuses) the canonical one.
fn load_dataset(args: &Args, progress: &progress::Bars) -> anyhow::Result<(Dataset, PathBuf)> {
    let (path, expected) = match &args.archive {
        Some(path) => (path.clone(), args.sha256.clone()),
        None => {
            let fetched = dataset::download::ensure_archive(
                &args.data_dir,
                &args.mirrors,
                dataset::download::CANONICAL_SHA256,
                progress,
            )?;
            if let dataset::download::Fetched::Downloaded(_, url) = &fetched {
                say(args, format_args!("downloaded {url}"));
            }
            // Already verified: don't hash it twice.
            (fetched.path().to_owned(), None)
        }
    };
    let dataset = dataset::read_archive(&path, &args.categories, expected.as_deref(), progress)?;
    Ok((dataset, path))
}

fn metadata(
    dataset: &Dataset,
    config: &TrainConfig,
    train_accuracy: f64,
    test: pipeline::evaluation::Evaluation,
) -> Metadata {
    Metadata {
        created_at: source_date_epoch(),
        ..Metadata::of_training(dataset, config, train_accuracy, test)
    }
}

/// The reproducible-builds convention for a timestamp that does not break byte-identical output.
fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

fn parse_sha256(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("expected 64 hexadecimal digits (a SHA-256)".into())
    }
}

/// The archive used when none is given: the cache under `data_dir`.
pub fn cached_archive(data_dir: &Path) -> PathBuf {
    data_dir.join(dataset::download::ARCHIVE_NAME)
}
