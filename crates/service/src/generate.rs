//! Data generators of SPEC 10.

use crate::client::{Target, http_client, post_json, run_daily_range};
use crate::progress;
use anyhow::{Context, Result, bail};
use clap::Args;
use gender_core::time::{MS_PER_DAY, format_rfc3339_millis};
use gender_core::{Date, default_daily_date};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BATCH: usize = 500;

#[derive(Args, Debug)]
pub struct DummyArgs {
    /// How many previous days (ending yesterday UTC) to fill.
    #[arg(long, default_value_t = 10)]
    days: u32,
    #[arg(long, default_value_t = 100)]
    visitors: u32,
    /// Seed for repeatable data.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    target: Target,
}

/// One visitor's page hits for one day: 5-30 of them, M with the visitor's bias.
fn visitor_day(rng: &mut fastrand::Rng, clientid: &str, bias_m: f64, day: Date) -> Vec<Value> {
    let count = rng.usize(5..=30);
    (0..count)
        .map(|_| {
            let at = day.start_millis() + rng.i64(0..MS_PER_DAY);
            let gender = if rng.f64() < bias_m { "M" } else { "F" };
            json!({ "clientid": clientid, "pageGender": gender, "timestamp": format_rfc3339_millis(at) })
        })
        .collect()
}

pub async fn dummy(args: DummyArgs) -> Result<()> {
    if args.days == 0 || args.days > 365 {
        bail!("--days must be 1..=365");
    }
    let mut rng = args
        .seed
        .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let yesterday = default_daily_date(gender_core::time::system_now_ms());
    let first = yesterday.add_days(1 - args.days as i32);
    let mut hits = Vec::new();
    for v in 0..args.visitors {
        let clientid = format!("dummy-{v:04}");
        let bias_m = rng.f64();
        let mut day = first;
        while day <= yesterday {
            hits.extend(visitor_day(&mut rng, &clientid, bias_m, day));
            day = day.add_days(1);
        }
    }

    let client = http_client()?;
    let key = args.target.key()?;
    let progress = progress::bar(hits.len() as u64, "hits");
    for chunk in hits.chunks(BATCH) {
        let answer = post_json(
            &client,
            &args.target,
            &key,
            "/hits",
            &Value::Array(chunk.to_vec()),
        )
        .await?;
        if answer["accepted"].as_u64() != Some(chunk.len() as u64) {
            bail!("server did not accept the whole batch: {answer}");
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_with_message("sent");

    // A deployed stack has no admin routes: Firehose and the curate Lambda
    // deliver on their own, and the daily job runs in Lambda.
    let flush = client
        .post(args.target.endpoint("/admin/flush"))
        .header("x-api-key", &key)
        .send()
        .await?;
    if flush.status() == reqwest::StatusCode::NOT_FOUND {
        println!(
            "{} hits sent for {} visitors over {first} ..= {yesterday}. The target has no /admin routes \
             (a deployed stack): once Firehose has delivered them (its buffer interval), run \
             `just daily date=D` for each date from {first} to {yesterday}, oldest first.",
            hits.len(),
            args.visitors
        );
        return Ok(());
    }
    if !flush.status().is_success() {
        bail!(
            "POST /admin/flush: {}: {}",
            flush.status(),
            flush.text().await.unwrap_or_default()
        );
    }
    let days = progress::bar(args.days as u64, "daily runs");
    run_daily_range(&client, &args.target, &key, first, yesterday, &days).await?;
    days.finish_with_message("done");
    println!(
        "{} hits for {} visitors over {first} ..= {yesterday}; 7-day signals as of {yesterday}",
        hits.len(),
        args.visitors
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// Hits per second.
    #[arg(long, default_value_t = 50)]
    rps: u32,
    /// Stop after this long (e.g. 30s, 5m, 1h, or plain seconds); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[arg(long, default_value_t = 1000)]
    visitors: u32,
    #[command(flatten)]
    target: Target,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 30s, 5m, 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Sends `rps` hits per second in ticks of 100 ms (one request per tick,
/// split at 500 hits), with at most 64 requests in flight.
pub async fn stream(args: StreamArgs) -> Result<()> {
    if args.rps == 0 {
        bail!("--rps must be positive");
    }
    let client = http_client()?;
    let key = Arc::new(args.target.key()?);
    let target = Arc::new(args.target);
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let progress = indicatif::ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(200));

    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut due = 0f64;
    let mut rng = fastrand::Rng::new();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => break,
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Hits owed so far, so fractional rates come out right over time.
        due += args.rps as f64 / 10.0;
        let count = due.floor() as usize;
        due -= count as f64;
        let hits: Vec<Value> = (0..count)
            .map(|_| json!({ "clientid": format!("stream-{:05}", rng.u32(0..args.visitors)), "pageGender": if rng.bool() { "M" } else { "F" } }))
            .collect();
        for chunk in hits.chunks(BATCH) {
            let permit = in_flight
                .clone()
                .acquire_owned()
                .await
                .context("semaphore closed")?;
            let (client, target, key, sent, errors) = (
                client.clone(),
                target.clone(),
                key.clone(),
                sent.clone(),
                errors.clone(),
            );
            let body = Value::Array(chunk.to_vec());
            tokio::spawn(async move {
                match post_json(&client, &target, &key, "/hits", &body).await {
                    Ok(answer) => {
                        sent.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed)
                    }
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
            });
        }
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let n = sent.load(Ordering::Relaxed);
        progress.set_message(format!(
            "sent {n} hits ({:.0}/s), failed requests {}",
            n as f64 / elapsed,
            errors.load(Ordering::Relaxed)
        ));
    }
    // Let in-flight requests finish.
    let _ = in_flight.acquire_many(64).await;
    let summary = format!(
        "sent {} hits in {:.1}s, failed requests {}",
        sent.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    progress.finish_and_clear();
    // Also when stdout is not a terminal (where indicatif draws nothing).
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_visitor_day_has_5_to_30_hits_inside_the_day() {
        let mut rng = fastrand::Rng::with_seed(7);
        let day = Date::parse("2026-11-20").unwrap();
        for _ in 0..50 {
            let hits = visitor_day(&mut rng, "v", 0.5, day);
            assert!((5..=30).contains(&hits.len()));
            for hit in hits {
                assert!(
                    hit["timestamp"]
                        .as_str()
                        .unwrap()
                        .starts_with("2026-11-20T")
                );
            }
        }
    }
}
