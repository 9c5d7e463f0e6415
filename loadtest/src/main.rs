//! `gender-loadtest`: see `lib.rs` and `--help`. Exits 1 when a threshold fails.

use std::process::ExitCode;

use clap::Parser;
use gender_loadtest::options::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let verdict = gender_loadtest::run(Cli::parse()).await?;
    if verdict.failures.is_empty() {
        println!("load test passed");
        return Ok(ExitCode::SUCCESS);
    }
    for failure in &verdict.failures {
        eprintln!("FAILED: {failure}");
    }
    Ok(ExitCode::FAILURE)
}
