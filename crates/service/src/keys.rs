//! `gender-service keys rotate`: a new key for one scope (SPEC 18), the
//! replaced key still accepted for a grace period. With a running server it
//! asks the server (`POST /admin/keys/rotate`, admin key), which writes the
//! key file and uses the new key at once; `--offline` rewrites the files of
//! a stopped server's data directory instead.

use crate::client::{Target, http_client, post_json};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gender_core::time::{format_rfc3339_millis, system_now_ms};
use gender_local::Scope;
use gender_local::keys::{DEFAULT_ROTATION_GRACE, key_file, rotate};
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Replace one scope's key; the old key keeps working for --grace-seconds (default a day).
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// ingest, read or admin.
    #[arg(long, value_parser = parse_scope)]
    scope: Scope,
    /// How long the replaced key is still accepted (0: not at all; at most 30 days).
    #[arg(long, default_value_t = DEFAULT_ROTATION_GRACE.as_secs())]
    grace_seconds: u64,
    /// Rewrite the key files in --data-dir directly; only while the server is stopped (a running server would not see it).
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    target: Target,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("{text:?}: one of ingest, read, admin"))
}

pub async fn run(command: KeysCommand) -> Result<()> {
    let KeysCommand::Rotate(args) = command;
    if args.offline {
        let rotated = rotate(
            &args.target.data_dir,
            args.scope,
            Duration::from_secs(args.grace_seconds),
            system_now_ms(),
        )
        .with_context(|| {
            format!(
                "rotating {}",
                args.target.data_dir.join(key_file(args.scope)).display()
            )
        })?;
        print_rotated(
            args.scope,
            &rotated.keys.current,
            &format_rfc3339_millis(rotated.previous_valid_until_ms),
        );
        return Ok(());
    }
    let body = serde_json::json!({
        "scope": args.scope.name(),
        "grace_seconds": args.grace_seconds,
    });
    let key = args.target.key()?;
    let answer = post_json(
        &http_client()?,
        &args.target,
        &key,
        "/admin/keys/rotate",
        &body,
    )
    .await
    .context("is the server running? (--offline rotates the files of a stopped one)")?;
    let (Some(new), Some(until)) = (
        answer["key"].as_str(),
        answer["previous_valid_until"].as_str(),
    ) else {
        bail!("unexpected answer: {answer}");
    };
    print_rotated(args.scope, new, until);
    Ok(())
}

fn print_rotated(scope: Scope, key: &str, until: &str) {
    println!("new {scope} key: {key}");
    println!("the replaced {scope} key is accepted until {until}");
}
