//! `loadgen`: parse flags, run the bounded load test, print the summary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = loadgen::Args::parse();
    match loadgen::run(&args).await {
        Ok(summary) => {
            println!("{summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
