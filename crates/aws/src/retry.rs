use crate::AwsError;
use crate::error::chain;
use std::future::Future;
use std::time::Duration;

/// Exponential backoff with full jitter, bounded in attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 6,
            base: Duration::from_millis(25),
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The pause before attempt `n` (1-based retries): random in `[0, min(cap, base * 2^n)]`.
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1 << n.min(16)).min(self.cap);
        let nanos = ceiling.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { jitter(nanos) })
    }

    pub async fn pause(&self, n: u32) {
        tokio::time::sleep(self.delay(n)).await;
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not
    /// [retryable](AwsError::retryable), or `self.attempts` attempts have
    /// failed, which is [`AwsError::Exhausted`] naming the last failure.
    ///
    /// This sits above the SDK's own retry (3 attempts, for throttling, 5xx
    /// and timeouts, and only while its retry quota lasts): it also retries
    /// what the SDK does not know is transient (DynamoDB's
    /// `TransactionConflictException`), and keeps going with its own jitter
    /// when the SDK gives up. `attempt` must be safe to repeat: a request
    /// whose answer was lost may have been applied.
    pub async fn retry<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let attempts = self.attempts.max(1);
        let mut n = 0;
        loop {
            if n > 0 {
                self.pause(n).await;
            }
            n += 1;
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) if !err.retryable() => return Err(err),
                Err(err) => err,
            };
            if n >= attempts {
                let last = chain(&err);
                tracing::warn!(operation, attempts = n, error = %last, "retryable failures exhausted the attempts");
                return Err(AwsError::Exhausted {
                    operation,
                    attempts: n,
                    last,
                });
            }
            tracing::debug!(operation, attempt = n, error = %chain(&err), "retrying");
        }
    }
}

/// A cheap random number in `0..bound` (no crypto needed for jitter).
fn jitter(bound: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(bound);
    hasher.finish() % bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let b = Backoff {
            attempts: 5,
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        };
        for n in 0..20 {
            assert!(b.delay(n) <= Duration::from_millis(100));
        }
        assert!(b.delay(0) <= Duration::from_millis(10));
    }

    fn quick(attempts: u32) -> Backoff {
        Backoff {
            attempts,
            base: Duration::from_micros(10),
            cap: Duration::from_micros(100),
        }
    }

    fn throttled() -> AwsError {
        AwsError::sdk("PutItem", true, std::io::Error::other("throttled"))
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = Cell::new(0);
        let result = quick(4)
            .retry("PutItem", || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err(throttled()) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts_naming_the_last_error() {
        let calls = Cell::new(0);
        let err = quick(3)
            .retry("PutItem", || {
                calls.set(calls.get() + 1);
                async { Err::<(), _>(throttled()) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls.get(), 3);
        match err {
            AwsError::Exhausted {
                operation,
                attempts,
                last,
            } => {
                assert_eq!((operation, attempts), ("PutItem", 3));
                assert_eq!(last, "PutItem failed: throttled");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn does_not_retry_what_cannot_pass() {
        let calls = Cell::new(0);
        let err = quick(5)
            .retry("PutItem", || {
                calls.set(calls.get() + 1);
                async { Err::<(), _>(AwsError::sdk("PutItem", false, "validation")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls.get(), 1);
        assert!(!err.retryable());
    }
}
