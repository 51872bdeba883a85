//! Pacing of CRM requests: a client-side rate limit and exponential backoff with full jitter.
//!
//! Spacing requests evenly (rather than a bursting token bucket) keeps us under per-second
//! limits that hosted CRMs count over short windows. Full jitter spreads the retries of several
//! clients hit by the same outage instead of having them hammer the CRM in step.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// At most `rate` requests per second, each at least `1/rate` after the previous one.
#[derive(Debug)]
pub(super) struct RateLimiter {
    interval: Duration,
    next: Option<Instant>,
}

impl RateLimiter {
    /// `rate` must be positive and finite (checked by `RestConfig::validate`).
    pub(super) fn new(rate: f64) -> Self {
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: None,
        }
    }

    /// Sleeps until the next request may go, and books the slot after it.
    pub(super) fn wait(&mut self) {
        let now = Instant::now();
        let start = match self.next {
            Some(slot) if slot > now => {
                std::thread::sleep(slot - now);
                slot
            }
            _ => now,
        };
        self.next = Some(start + self.interval);
    }
}

/// Exponential backoff with full jitter: retry n waits uniformly in
/// `0..=min(max, base * 2^n)`.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The wait before retry `attempt + 1` (attempt 0 is the first request).
    pub(super) fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_u64())
    }

    fn ceiling(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max)
    }

    fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(random % (ceiling + 1))
    }
}

/// Good-enough randomness for jitter without another dependency: std's `RandomState` is
/// seeded randomly per thread and changes on every `new()`.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_millis(1_000));
        assert_eq!(b.ceiling(40), Duration::from_millis(1_000));
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));
        assert_eq!(b.delay_with(2, 0), Duration::ZERO);
        assert_eq!(b.delay_with(2, 400), Duration::from_millis(400));
        assert_eq!(b.delay_with(2, 401), Duration::ZERO);
        for attempt in 0..10 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
        let distinct: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(5)).collect();
        assert!(distinct.len() > 1, "jitter must vary: {distinct:?}");
    }

    #[test]
    fn rate_limiter_spaces_requests() {
        let mut limiter = RateLimiter::new(50.0);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.wait();
        }
        // The first goes at once, then four intervals of 20 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }
}
