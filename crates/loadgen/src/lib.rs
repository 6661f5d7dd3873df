//! # loadgen
//!
//! A bounded goose load test of the `serve` API that exercises every golden signal: real
//! test-split documents posted to `/predict` (answers checked against the true newsgroup),
//! health and metrics checks, and a configurable share of bad input the server must reject.
//! It stops by itself, writes goose's reports, and returns its own [`tally::Summary`].

pub mod golden;
pub mod tally;
pub mod traffic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use pipeline::dataset::{DEFAULT_CATEGORIES, read_archive};

pub use tally::Summary;

/// Load-test the doc-classifier server with real documents, health checks and bad input, then
/// report latency, throughput, errors by kind and the model's accuracy under load.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
pub struct Args {
    /// Server to load.
    #[arg(long, env = "LOADGEN_HOST", default_value = "http://127.0.0.1:3000")]
    pub host: String,

    /// How long to run (e.g. 30s, 2m); the test stops by itself.
    #[arg(long, default_value = "30s", value_parser = parse_seconds)]
    pub duration: u64,

    /// Concurrent users (each sends its next request when the previous one is answered).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,

    /// Users started per second.
    #[arg(long, default_value_t = 5.0)]
    pub hatch_rate: f64,

    /// Cap on requests per second, all users together (default: as fast as answered).
    #[arg(long)]
    pub rps: Option<u32>,

    /// Share of each kind of traffic, as weights: predict, health (/readyz and /metrics) and
    /// bad-input (empty, malformed JSON, wrong method, oversized). A weight of 0 turns it off.
    #[arg(long, default_value = "predict=90,health=5,bad-input=5", value_parser = parse_mix)]
    pub mix: Mix,

    /// Load shape: steady (--users for --duration), or spike (ramp to --users, jump to 4x,
    /// hold, come back down: for the saturation panels).
    #[arg(long, default_value = "steady", value_parser = ["steady", "spike"])]
    pub profile: String,

    /// Order of the documents: round-robin over the test split, or random (seeded).
    #[arg(long, default_value = "random", value_parser = ["random", "round-robin"])]
    pub order: String,

    /// Seed of the document order and the trace ids.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// The 20news-bydate.tar.gz to take test documents from (default: the one `train` cached).
    #[arg(long, env = "NEWSGROUPS_ARCHIVE", value_name = "PATH")]
    pub archive: Option<PathBuf>,

    /// Folder where `train` caches the archive.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Newsgroups whose test documents are sent (comma separated; must match the model's).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_CATEGORIES.map(String::from))]
    pub categories: Vec<String>,

    /// Folder for goose's reports (report.html, report.json, report.md) and summary.json.
    #[arg(long, default_value = "reports/loadgen")]
    pub report_dir: PathBuf,

    /// Size of the oversized bodies; just over the server's --max-body-bytes (1 MiB by default).
    #[arg(long, default_value_t = 1024 * 1024 + 1)]
    pub oversize_bytes: usize,
}

/// Weights of the three kinds of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// `/predict` with a real document.
    pub predict: usize,
    /// `/readyz` then `/metrics`.
    pub health: usize,
    /// A request the server must reject.
    pub bad_input: usize,
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut mix = Mix {
        predict: 0,
        health: 0,
        bad_input: 0,
    };
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
        let weight: usize = weight
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
        match name.trim() {
            "predict" => mix.predict = weight,
            "health" => mix.health = weight,
            "bad-input" => mix.bad_input = weight,
            other => {
                return Err(format!(
                    "unknown traffic kind {other:?}; use predict, health, bad-input"
                ));
            }
        }
    }
    if mix.predict + mix.health + mix.bad_input == 0 {
        return Err("at least one weight must be above 0".into());
    }
    Ok(mix)
}

fn parse_seconds(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, mult) = if let Some(m) = s.strip_suffix('m') {
        (m, 60)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1)
    };
    match n.trim().parse::<u64>() {
        Ok(v) if v > 0 => Ok(v * mult),
        _ => Err(format!("invalid duration {s:?}; use e.g. 30s or 2m")),
    }
}

/// Runs the load test and returns what it saw; reports are written to `--report-dir`.
pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let host = args.host.trim_end_matches('/').to_owned();
    let docs = load_documents(args)?;
    check_server(&host).await?;
    std::fs::create_dir_all(&args.report_dir).with_context(|| {
        format!(
            "cannot create the report folder {}",
            args.report_dir.display()
        )
    })?;
    let shared = Arc::new(traffic::Shared::new(
        docs,
        args.order == "random",
        args.seed,
        args.oversize_bytes,
    ));

    let mut scenario = Scenario::new("traffic");
    for (weight, transaction) in [
        (args.mix.predict, traffic::predict_transaction(&shared)),
        (args.mix.health, traffic::health_transaction(&shared)),
        (args.mix.bad_input, traffic::bad_input_transaction(&shared)),
    ] {
        if weight > 0 {
            scenario = scenario.register_transaction(transaction.set_weight(weight)?);
        }
    }
    let mut attack = GooseAttack::initialize_with_config(goose_config(args, &host))?
        .set_scheduler(GooseScheduler::Random)
        .register_scenario(scenario);
    if args.profile == "spike" {
        attack = *attack.set_default(
            GooseDefault::TestPlan,
            spike_plan(args.users, args.duration).as_str(),
        )?;
    }
    let before = scrape(&host).await;
    let started = Instant::now();
    attack.execute().await.context("the load test failed")?;
    let elapsed = started.elapsed();
    let mut summary = shared.tally.summary(elapsed);
    if let (Some(before), Some(after)) = (before, scrape(&host).await) {
        summary.server = Some(golden::golden_signals(
            &before,
            &after,
            elapsed.as_secs_f64(),
        ));
    }
    let path = args.report_dir.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}

fn goose_config(args: &Args, host: &str) -> GooseConfiguration {
    let mut c = GooseConfiguration::default();
    c.host = Some(host.to_owned());
    if args.profile != "spike" {
        c.users = Some(args.users as usize);
        c.increase_rate = Some(args.hatch_rate.to_string());
        c.run_time = Some(args.duration.to_string());
    }
    c.throttle_requests = args.rps.map(|r| r as usize);
    c.report_file = ["report.html", "report.json", "report.md"]
        .iter()
        .map(|f| args.report_dir.join(f).to_string_lossy().into_owned())
        .collect();
    c.quiet = 1;
    c.no_telnet = true;
    c.no_print_metrics = true;
    c.no_reset_metrics = true;
    c.timeout = Some("10".to_owned());
    c
}

/// Ramp to `users` (10% of the time), jump to 4x (10%), hold (40%), back to `users` (10%),
/// hold (20%), ramp down (10%), in goose's test-plan syntax (`users,duration;...`).
fn spike_plan(users: u32, seconds: u64) -> String {
    let step = |share: u64| (seconds * share / 100).max(1);
    let peak = users * 4;
    format!(
        "{users},{}s;{peak},{}s;{peak},{}s;{users},{}s;{users},{}s;0,{}s",
        step(10),
        step(10),
        step(40),
        step(10),
        step(20),
        step(10)
    )
}

/// The test-split documents of the chosen categories.
fn load_documents(args: &Args) -> anyhow::Result<Vec<traffic::Doc>> {
    let archive = match &args.archive {
        Some(a) => a.clone(),
        None => {
            let cached = args
                .data_dir
                .join(pipeline::dataset::download::ARCHIVE_NAME);
            if !cached.exists() {
                bail!(
                    "no dataset: {} does not exist; run `cargo run --release -p train` (it downloads it) or pass --archive PATH",
                    cached.display()
                );
            }
            cached
        }
    };
    let dataset = read_archive(
        &archive,
        &args.categories,
        None,
        &pipeline::progress::NoProgress,
    )?;
    Ok(dataset
        .test
        .into_iter()
        .map(|d| traffic::Doc {
            text: d.text,
            label: dataset.categories[d.label].clone(),
        })
        .collect())
}

/// The server's `/metrics`, if it answers.
async fn scrape(host: &str) -> Option<golden::Scrape> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let text = client
        .get(format!("{host}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(golden::Scrape::parse(&text))
}

/// Fails fast, with advice, when nothing answers at `host` or it is not ready.
async fn check_server(host: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let url = format!("{host}/readyz");
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => bail!(
            "the server at {host} is not ready ({} from /readyz)",
            r.status()
        ),
        Err(e) => bail!(
            "cannot reach the server at {host} ({e}); start it with `make serve` or pass --host"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_rejects_nonsense() {
        assert_eq!(
            parse_mix("predict=8, health=1,bad-input=1"),
            Ok(Mix {
                predict: 8,
                health: 1,
                bad_input: 1
            })
        );
        assert_eq!(
            parse_mix("predict=1"),
            Ok(Mix {
                predict: 1,
                health: 0,
                bad_input: 0
            })
        );
        assert!(parse_mix("predict=0").is_err());
        assert!(parse_mix("predikt=1").is_err());
        assert!(parse_mix("predict=x").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_seconds("30s"), Ok(30));
        assert_eq!(parse_seconds("2m"), Ok(120));
        assert_eq!(parse_seconds("5"), Ok(5));
        assert!(parse_seconds("0s").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
