//! A client-side rate limit for remote APIs, on `governor`.
//!
//! Requests are spaced evenly (a burst of one) rather than let through in bursts: hosted APIs
//! count their per-second limits over short windows, and an even pace stays under them.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

type Direct<C> = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    C,
    governor::middleware::NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A period this long already means "practically never"; capping it keeps a tiny rate from
/// overflowing governor's nanosecond arithmetic.
const LONGEST_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// At most `rate` calls per second, each at least `1/rate` after the previous one.
pub struct RateLimit<C: Clock = DefaultClock> {
    /// `None` when the rate is so high that the spacing rounds to nothing.
    limiter: Option<Direct<C>>,
}

impl<C: Clock> std::fmt::Debug for RateLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("limited", &self.limiter.is_some())
            .finish()
    }
}

impl RateLimit {
    /// `rate` is in calls per second; callers check that it is positive and finite.
    pub fn per_second(rate: f64) -> Self {
        Self::with_clock(rate, DefaultClock::default())
    }

    /// Blocks the thread until the next call may go, and books its slot.
    pub fn wait(&self) {
        self.wait_with(std::thread::sleep);
    }
}

impl<C: Clock> RateLimit<C> {
    /// [`RateLimit::per_second`] on another clock (tests use governor's fake clock).
    pub fn with_clock(rate: f64, clock: C) -> Self {
        let period = Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(LONGEST_PERIOD)
            .min(LONGEST_PERIOD);
        let limiter = Quota::with_period(period)
            .map(|quota| RateLimiter::direct_with_clock(quota.allow_burst(NonZeroU32::MIN), clock));
        RateLimit { limiter }
    }

    /// Waits with `sleep` until the next call may go, and books its slot.
    pub fn wait_with(&self, mut sleep: impl FnMut(Duration)) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        while let Err(not_until) = limiter.check() {
            sleep(not_until.wait_time_from(limiter.clock().now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    /// Waits `calls` times on a fake clock; returns each wait.
    fn waits(
        limit: &RateLimit<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        calls: usize,
    ) -> Vec<Duration> {
        (0..calls)
            .map(|_| {
                let mut waited = Duration::ZERO;
                limit.wait_with(|d| {
                    waited += d;
                    clock.advance(d);
                });
                waited
            })
            .collect()
    }

    #[test]
    fn calls_are_spaced_evenly_without_a_burst() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(50.0, clock.clone());
        let ms = Duration::from_millis;
        assert_eq!(
            waits(&limit, &clock, 4),
            [ms(0), ms(20), ms(20), ms(20)],
            "the first goes at once, then one every 20 ms"
        );
    }

    #[test]
    fn time_spent_elsewhere_counts_toward_the_next_slot() {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(10.0, clock.clone());
        assert_eq!(waits(&limit, &clock, 1), [Duration::ZERO]);
        clock.advance(Duration::from_millis(60));
        assert_eq!(waits(&limit, &clock, 1), [Duration::from_millis(40)]);
        clock.advance(Duration::from_secs(5));
        // Idle time is not saved up for a burst.
        assert_eq!(
            waits(&limit, &clock, 2),
            [Duration::ZERO, Duration::from_millis(100)]
        );
    }

    #[test]
    fn extreme_rates_do_not_panic() {
        let clock = FakeRelativeClock::default();
        let fast = RateLimit::with_clock(1e15, clock.clone());
        assert_eq!(waits(&fast, &clock, 3), [Duration::ZERO; 3]);
        let slow = RateLimit::with_clock(1e-300, clock.clone());
        assert_eq!(waits(&slow, &clock, 1), [Duration::ZERO]);
    }

    #[test]
    fn the_real_clock_sleeps() {
        let limit = RateLimit::per_second(100.0);
        let start = std::time::Instant::now();
        for _ in 0..3 {
            limit.wait();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(19),
            "{:?}",
            start.elapsed()
        );
    }
}
