//! Clients of a running server's admin routes: `flush`, `daily`, `backfill`.

use anyhow::{Context, Result, bail};
use clap::Args;
use gender_core::Date;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Base URL of the server.
    #[arg(long, env = "GENDER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key; else read from DATA_DIR/api-key.
    #[arg(long, env = "GENDER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Data directory of a local server, to read its api-key file.
    #[arg(long, env = "GENDER_DATA_DIR", default_value = gender_local::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

impl Target {
    pub fn key(&self) -> Result<String> {
        if let Some(key) = &self.api_key {
            return Ok(key.clone());
        }
        gender_local::read_api_key(&self.data_dir).with_context(|| {
            format!(
                "no --api-key / GENDER_API_KEY and cannot read {}",
                self.data_dir.join(gender_local::API_KEY_FILE).display()
            )
        })
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}

/// POSTs JSON and returns the JSON answer, or an error carrying the server's message.
pub async fn post_json(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    path: &str,
    body: &Value,
) -> Result<Value> {
    let url = target.endpoint(path);
    let response = client
        .post(&url)
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        bail!("POST {url}: {status}: {json}");
    }
    Ok(json)
}

pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .context("building the HTTP client")
}

pub async fn flush(target: &Target) -> Result<()> {
    let report = post_json(
        &http_client()?,
        target,
        &target.key()?,
        "/admin/flush",
        &Value::Null,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub async fn daily(target: &Target, date: Option<&str>) -> Result<()> {
    let body = match date {
        Some(date) => serde_json::json!({ "date": parse_date(date)?.to_string() }),
        None => serde_json::json!({}),
    };
    let summary = post_json(
        &http_client()?,
        target,
        &target.key()?,
        "/admin/daily",
        &body,
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

pub fn parse_date(text: &str) -> Result<Date> {
    Date::parse(text).with_context(|| format!("{text:?} is not a date YYYY-MM-DD"))
}

/// The daily job for each date from `from` to `to`, oldest first, so the
/// stored 7-day signal ends as of `to`.
pub async fn run_daily_range(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    from: Date,
    to: Date,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut date = from;
    while date <= to {
        progress.set_message(date.to_string());
        post_json(
            client,
            target,
            key,
            "/admin/daily",
            &serde_json::json!({ "date": date.to_string() }),
        )
        .await?;
        progress.inc(1);
        date = date.add_days(1);
    }
    Ok(())
}

pub async fn backfill(target: &Target, from: &str, to: &str) -> Result<()> {
    let (from, to) = (parse_date(from)?, parse_date(to)?);
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let progress = crate::progress::bar((to.days() - from.days() + 1) as u64, "daily runs");
    run_daily_range(&http_client()?, target, &target.key()?, from, to, &progress).await?;
    progress.finish_with_message(format!("backfilled {from} ..= {to}"));
    Ok(())
}
