//! The per-client-address rate of `POST /hits` with an ingest key
//! (`--ingest-rate-per-ip`, issue 22). The ingest key is published in web
//! pages, so anyone can send hits with it; this bounds what one address can
//! send. Read and admin keys are server-to-server and never limited, and a
//! request without a valid ingest key is left to the key check (`401`/`403`).
//!
//! Each client address has a token bucket: `rate` requests per second
//! sustained, bursts of up to `rate` requests (one second's worth, at least
//! one). A request finding its bucket empty gets a JSON `429` with
//! `Retry-After` (the seconds until a token is back), before its body is
//! read; it is counted in `gender_requests_refused_total{reason="rate_limited"}`.
//!
//! The address is the TCP peer (the server puts it in each request as
//! `ConnectInfo`); an IPv6 client is keyed by its /64, which one host
//! usually owns whole. Behind a reverse proxy every client has the proxy's
//! address, so limit there instead.
//!
//! Memory is bounded: at most [`MAX_TRACKED_ADDRESSES`] buckets. When the
//! map is full, buckets that have refilled (an idle address, the same as an
//! unknown one) are dropped; if none has, the one seen longest ago is.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gender_api::{API_KEY_HEADER, ApiMetrics, Keys, Rule, Scope};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Client addresses with a bucket at most (about 40 bytes each).
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// Token buckets per client address, in bounded memory.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens per second.
    rate: f64,
    /// Tokens a bucket holds at most.
    burst: f64,
    capacity: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The key of `ip`'s bucket: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

impl RateLimiter {
    /// `per_second` requests per second per address, bursts of as many.
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter::with_capacity(per_second, MAX_TRACKED_ADDRESSES)
    }

    fn with_capacity(per_second: u32, capacity: usize) -> RateLimiter {
        let rate = f64::from(per_second.max(1));
        RateLimiter {
            rate,
            burst: rate,
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Addresses with a bucket now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes a token of `ip`'s bucket at `now`: `Ok` if there was one, else
    /// `Err(seconds)` until there is (at least 1, for `Retry-After`).
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u32> {
        let key = client_key(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.capacity {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err((wait.ceil() as u32).max(1))
        }
    }

    /// Makes room for one bucket: drops every refilled one, or else the
    /// one brought up to date longest ago.
    fn evict(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate < self.burst
        });
        if buckets.len() >= self.capacity
            && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
        {
            buckets.remove(&oldest);
        }
    }
}

/// The middleware's state.
#[derive(Clone)]
pub struct IngestRate {
    pub limiter: Arc<RateLimiter>,
    pub keys: Keys,
    pub metrics: Arc<ApiMetrics>,
}

/// The middleware: a `POST /hits` whose key is an ingest key takes a token
/// of its client address's bucket, or is answered `429` (module docs).
pub async fn limit_ingest(
    State(rate): State<IngestRate>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || request.uri().path() != "/hits" {
        return next.run(request).await;
    }
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    let header = request.headers().get(API_KEY_HEADER).map(|v| v.as_bytes());
    let in_url = gender_api::url_key(request.uri().query());
    // Only a request the key check will pass as an ingest key is limited;
    // the key check itself still runs (and answers everything else).
    let scope = gender_api::authorize(&rate.keys, Rule::INGEST, header, in_url.as_deref());
    if scope.ok() != Some(Scope::Ingest) {
        return next.run(request).await;
    }
    match rate.limiter.take(peer, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            rate.metrics.refused_rate_limited.inc();
            tracing::debug!(%peer, retry_after, "ingest rate per client address reached");
            gender_api::JsonError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "more than {} POST /hits per second from this address with the ingest key; \
                     nothing was stored, retry after {retry_after} s",
                    rate.limiter.rate
                ),
            )
            .with("retryable", true)
            .retry_after(retry_after)
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(limiter.take(a, t0), Ok(()));
        assert_eq!(limiter.take(a, t0), Ok(()));
        assert_eq!(limiter.take(a, t0), Err(1));
        // Another address has its own bucket.
        assert_eq!(limiter.take(ip("192.0.2.2"), t0), Ok(()));
        // Half a second at 2/s gives one token back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.take(a, t1), Ok(()));
        assert_eq!(limiter.take(a, t1), Err(1));
        // Idle for long, the bucket holds its burst, not more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(limiter.take(a, t2), Ok(()));
        assert_eq!(limiter.take(a, t2), Ok(()));
        assert_eq!(limiter.take(a, t2), Err(1));
    }

    #[test]
    fn retry_after_is_the_time_until_a_token() {
        let limiter = RateLimiter::new(1);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(limiter.take(a, t0), Ok(()));
        assert_eq!(limiter.take(a, t0), Err(1));
        assert_eq!(limiter.take(a, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn ipv6_clients_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let limiter = RateLimiter::new(1);
        let t0 = Instant::now();
        assert_eq!(limiter.take(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert_eq!(limiter.take(ip("2001:db8:1:2::ffff"), t0), Err(1));
        assert_eq!(limiter.take(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(limiter.take(ip("198.51.100.7"), t0), Ok(()));
        assert_eq!(limiter.take(ip("::ffff:198.51.100.7"), t0), Err(1));
    }

    #[test]
    fn memory_is_bounded_and_a_busy_address_keeps_its_bucket_over_idle_ones() {
        let limiter = RateLimiter::with_capacity(1, 3);
        let t0 = Instant::now();
        let busy = ip("192.0.2.1");
        assert_eq!(limiter.take(busy, t0), Ok(()));
        for n in 2..=3 {
            assert_eq!(limiter.take(ip(&format!("192.0.2.{n}")), t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 3);
        // Later, the busy address is still empty; the two others are idle
        // (refilled) and are dropped to make room.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(limiter.take(busy, t1), Ok(()));
        assert_eq!(limiter.take(ip("192.0.2.4"), t1), Ok(()));
        assert_eq!(limiter.tracked(), 2);
        assert_eq!(limiter.take(busy, t1), Err(1));
        // Full of busy addresses: the one seen longest ago goes.
        for n in 5..=20 {
            let _ = limiter.take(ip(&format!("192.0.2.{n}")), t1);
        }
        assert_eq!(limiter.tracked(), 3);
    }
}
