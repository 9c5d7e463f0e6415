//! `gender-service`: the local pipeline (`serve`) and the command-line tools
//! of SPEC 9 and 10.

mod check;
mod client;
mod generate;
mod keys;
mod progress;
mod serve;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc, so memory freed after a burst (bodies
/// of many connections, a flush, a daily run) goes back to the OS: glibc
/// keeps freed memory in per-thread arenas and raises its mmap threshold
/// after large frees, so RSS stays at its peak. docs/PERFORMANCE.md, "Memory".
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts: a background thread returns
/// pages unused for a second to the OS even while the process is idle
/// (without it, purging happens only on later allocations).
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "gender-service",
    version,
    about = "Per-visitor gender estimates from page hits"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole local pipeline and the HTTP server on a data directory.
    // Boxed: the flags make it far larger than the other commands.
    Serve(Box<serve::ServeArgs>),
    /// POST /admin/flush: wait until every accepted hit is delivered, curated and visible.
    Flush {
        #[command(flatten)]
        target: client::Target,
    },
    /// POST /admin/daily for one date (default: yesterday UTC).
    Daily {
        #[arg(long)]
        date: Option<String>,
        #[command(flatten)]
        target: client::Target,
    },
    /// The daily job for every date from A to B inclusive, in order.
    Backfill {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        target: client::Target,
    },
    /// The keys of a local server: `keys rotate --scope ingest`.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Offline check of a data directory: damaged log ranges, intact records, delivery state.
    Check(check::CheckArgs),
    /// Backfill about 100 visitors' hits over the previous N days, then run the daily job.
    GenerateDummyData(generate::DummyArgs),
    /// Send random hits at a steady rate until stopped or for --duration.
    GenerateStreamData(generate::StreamArgs),
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GENDER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing();
    match Cli::parse().command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Check(args) => {
            if !check::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Keys { command } => keys::run(command).await,
        Command::Flush { target } => client::flush(&target).await,
        Command::Daily { date, target } => client::daily(&target, date.as_deref()).await,
        Command::Backfill { from, to, target } => client::backfill(&target, &from, &to).await,
        Command::GenerateDummyData(args) => generate::dummy(args).await,
        Command::GenerateStreamData(args) => generate::stream(args).await,
    }
}
