//! `gender-service check`: an offline look at a data directory — which log
//! bytes are damaged, what is intact, and where delivery stands.

use anyhow::{Context, Result};
use clap::Args;
use gender_embedded::state::StateStore;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The data directory of a stopped server.
    #[arg(long, env = "GENDER_DATA_DIR", default_value = gender_local::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// Prints the report; the exit code is 1 when anything is damaged.
pub fn run(args: CheckArgs) -> Result<bool> {
    let log_dir = args.data_dir.join("log");
    let scans = gender_embedded::scan_log(&log_dir)
        .with_context(|| format!("scanning {}", log_dir.display()))?;
    let delivered = match StateStore::open(args.data_dir.join("state.redb")) {
        Ok(state) => {
            let delivery = state.delivery_state()?;
            println!(
                "state store: ok; delivered up to log offset {}, {} object(s) waiting for curate",
                delivery.delivered_offset,
                delivery.pending.len()
            );
            Some(delivery.delivered_offset)
        }
        Err(e) => {
            println!("state store: cannot open ({e:#}); is a server running on this directory?");
            None
        }
    };
    let mut damaged_records = 0;
    let mut intact = 0;
    for scan in &scans {
        intact += scan.intact_records;
        println!(
            "log segment {:020}: {} bytes, {} intact record(s){}",
            scan.base,
            scan.bytes,
            scan.intact_records,
            scan.torn_tail
                .map(|t| format!(", torn tail of {t} bytes (never acknowledged)"))
                .unwrap_or_default()
        );
        for damage in &scan.damaged {
            damaged_records += damage.records;
            let delivered_note = match delivered {
                Some(d) if damage.end <= d => " (already delivered before the damage)",
                _ => "",
            };
            println!("  DAMAGED: {damage}{delivered_note}");
        }
    }
    let damaged = scans.iter().any(|s| !s.damaged.is_empty());
    println!(
        "summary: {} segment(s), {intact} intact record(s) readable, {damaged_records} record(s) in damaged ranges",
        scans.len()
    );
    Ok(!damaged)
}
