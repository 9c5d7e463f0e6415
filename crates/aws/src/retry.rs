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
}
