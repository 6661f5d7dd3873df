//! `train`: parse the command line, run, report errors in one line.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = train::Args::parse();
    match train::run(&args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
