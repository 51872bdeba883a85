//! The one retry policy for every remote call (Google APIs, the REST CRM): exponential backoff
//! with jitter from `backon`, a bounded number of retries, and a server's `Retry-After` honoured
//! up to a limit.
//!
//! Whether a failure is worth another try depends on the API, so each caller passes a
//! predicate that turns its error into a [`Verdict`]; the pauses, the bound, the logging and
//! the reason for giving up are decided here, the same way for everyone.
//!
//! The jitter is "equal jitter": retry `n` waits between half and the whole of
//! `min(max_delay, base_delay * 2^n)`. Half of the pause keeps the backoff growing, the random
//! half keeps clients that failed together from retrying together.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder, Retryable};

/// What one failed try says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Another try cannot succeed (a refused request, a missing resource, our own disk).
    Permanent,
    /// Another try may succeed after a backoff pause (5xx, timeouts, broken connections).
    Transient,
    /// The server said when to come back (`Retry-After`): wait at least this long.
    RetryAfter(Duration),
}

/// How persistent to be. Callers build it from their own settings (`[target.rest]`, a Google
/// source's `max_retries`); tests use millisecond pauses so they never sleep long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper end of the first backoff pause; each further retry doubles it.
    pub base_delay: Duration,
    /// Cap on the upper end of one backoff pause.
    pub max_delay: Duration,
    /// Retries after the first try; 0 means one try only.
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the call gives up and the caller's
    /// next run or poll tries again, so one throttled call cannot block for an unbounded time.
    pub max_retry_after: Duration,
}

/// Why [`RetryPolicy::run`] returned an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The last failure was not worth retrying.
    Permanent,
    /// Every allowed retry failed too.
    Exhausted,
    /// The server asked for a longer pause than [`RetryPolicy::max_retry_after`].
    RetryAfterTooLong { wait: Duration, limit: Duration },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Permanent => f.write_str("not worth retrying"),
            StopReason::Exhausted => f.write_str("retries used up"),
            StopReason::RetryAfterTooLong { wait, limit } => write!(
                f,
                "Retry-After {} s is longer than {} s",
                wait.as_secs(),
                limit.as_secs()
            ),
        }
    }
}

/// A call that ended without a result: its last error, how many tries it took and why it
/// stopped, so each caller can word its own error (an outage to resume, or a refusal to fix).
#[derive(Debug, thiserror::Error)]
#[error("{last} ({reason} after {tries} tries)")]
pub struct Failed<E> {
    pub last: E,
    pub tries: u32,
    pub reason: StopReason,
}

impl RetryPolicy {
    /// backon's exponential builder for this policy. backon's jitter adds a random part of the
    /// current delay on top of it, so halving both ends gives equal jitter (see the module doc).
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay.min(self.max_delay) / 2)
            .with_max_delay(self.max_delay / 2)
            .with_jitter()
            .with_max_times(self.max_retries as usize)
    }

    /// Runs `op` until it succeeds, `verdict` calls its error permanent, or the retries run
    /// out; pauses on the tokio timer.
    pub async fn run<T, E, Fut>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Fut,
        verdict: impl Fn(&E) -> Verdict,
    ) -> Result<T, Failed<E>>
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let tries = Cell::new(0u32);
        let result = (|| {
            tries.set(tries.get() + 1);
            op()
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(|e| self.worth_retrying(verdict(e)))
        .adjust(|e, backoff| backoff.map(|b| self.pause(verdict(e), b)))
        .notify(|e, pause| self.log_retry(what, tries.get(), pause, e))
        .await;
        result.map_err(|last| self.failed(last, tries.get(), &verdict))
    }

    /// [`Self::run`] for blocking code: pauses put the thread to sleep.
    pub fn run_blocking<T, E>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, E>,
        verdict: impl Fn(&E) -> Verdict,
    ) -> Result<T, Failed<E>>
    where
        E: fmt::Display,
    {
        let tries = Cell::new(0u32);
        let result = (|| {
            tries.set(tries.get() + 1);
            op()
        })
        .retry(self.backoff())
        .sleep(std::thread::sleep)
        .when(|e| self.worth_retrying(verdict(e)))
        .notify(|e, backoff| {
            let pause = self.pause(verdict(e), backoff);
            self.log_retry(what, tries.get(), pause, e);
            // backon's blocking retry has no `adjust` hook: it sleeps `backoff` after this
            // returns, so only the rest of a longer `Retry-After` is slept here.
            std::thread::sleep(pause.saturating_sub(backoff));
        })
        .call();
        result.map_err(|last| self.failed(last, tries.get(), &verdict))
    }

    fn worth_retrying(&self, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Permanent => false,
            Verdict::Transient => true,
            Verdict::RetryAfter(wait) => wait <= self.max_retry_after,
        }
    }

    /// The longer of the backoff and the server's `Retry-After`: the server knows when it
    /// will take requests again, the backoff still spreads clients out.
    fn pause(&self, verdict: Verdict, backoff: Duration) -> Duration {
        match verdict {
            Verdict::RetryAfter(wait) => wait.max(backoff),
            Verdict::Permanent | Verdict::Transient => backoff,
        }
    }

    fn failed<E>(&self, last: E, tries: u32, verdict: &impl Fn(&E) -> Verdict) -> Failed<E> {
        let reason = match verdict(&last) {
            Verdict::Permanent => StopReason::Permanent,
            Verdict::RetryAfter(wait) if wait > self.max_retry_after => {
                StopReason::RetryAfterTooLong {
                    wait,
                    limit: self.max_retry_after,
                }
            }
            Verdict::Transient | Verdict::RetryAfter(_) => StopReason::Exhausted,
        };
        Failed {
            last,
            tries,
            reason,
        }
    }

    fn log_retry(&self, what: &str, tries: u32, pause: Duration, error: &impl fmt::Display) {
        tracing::warn!(
            call = what,
            attempt = tries,
            max_retries = self.max_retries,
            pause_ms = pause.as_millis() as u64,
            error = %error,
            "remote call failed; retrying after a pause"
        );
    }
}

/// `Retry-After` in its delay-seconds form. The HTTP-date form (rare from the APIs we call)
/// yields `None`, and the caller falls back to backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use backon::BackoffBuilder;

    use super::*;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(8),
            max_retries,
            max_retry_after: Duration::from_secs(1),
        }
    }

    /// A call that fails with `errors` in turn, then succeeds.
    fn scripted(errors: Vec<Verdict>) -> impl FnMut() -> Result<&'static str, Verdict> {
        let mut left = errors.into_iter();
        move || match left.next() {
            Some(v) => Err(v),
            None => Ok("done"),
        }
    }

    impl fmt::Display for Verdict {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn same(v: &Verdict) -> Verdict {
        *v
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let op = scripted(vec![Verdict::Transient, Verdict::Transient]);
        assert_eq!(policy(2).run_blocking("t", op, same).unwrap(), "done");
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let tries = Cell::new(0);
        let failed = policy(5)
            .run_blocking(
                "t",
                || {
                    tries.set(tries.get() + 1);
                    Err::<(), _>(Verdict::Permanent)
                },
                same,
            )
            .unwrap_err();
        assert_eq!(tries.get(), 1);
        assert_eq!((failed.tries, failed.reason), (1, StopReason::Permanent));
    }

    #[test]
    fn retries_stop_at_the_bound() {
        let tries = Cell::new(0);
        let failed = policy(3)
            .run_blocking(
                "t",
                || {
                    tries.set(tries.get() + 1);
                    Err::<(), _>(Verdict::Transient)
                },
                same,
            )
            .unwrap_err();
        assert_eq!(tries.get(), 4, "one try and three retries");
        assert_eq!((failed.tries, failed.reason), (4, StopReason::Exhausted));
        assert_eq!(failed.last, Verdict::Transient);
    }

    #[test]
    fn zero_retries_means_one_try() {
        let op = scripted(vec![Verdict::Transient]);
        let failed = policy(0).run_blocking("t", op, same).unwrap_err();
        assert_eq!((failed.tries, failed.reason), (1, StopReason::Exhausted));
    }

    #[test]
    fn retry_after_is_waited_for_and_counts_as_a_retry() {
        let wait = Duration::from_millis(150);
        let start = Instant::now();
        let op = scripted(vec![Verdict::RetryAfter(wait)]);
        assert_eq!(policy(1).run_blocking("t", op, same).unwrap(), "done");
        assert!(start.elapsed() >= wait, "{:?}", start.elapsed());

        let op = scripted(vec![Verdict::RetryAfter(Duration::ZERO); 2]);
        let failed = policy(1).run_blocking("t", op, same).unwrap_err();
        assert_eq!((failed.tries, failed.reason), (2, StopReason::Exhausted));
    }

    #[test]
    fn a_retry_after_beyond_the_limit_is_not_waited_for() {
        let start = Instant::now();
        let op = scripted(vec![Verdict::RetryAfter(Duration::from_secs(3600))]);
        let failed = policy(5).run_blocking("t", op, same).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(failed.tries, 1);
        assert_eq!(
            failed.reason,
            StopReason::RetryAfterTooLong {
                wait: Duration::from_secs(3600),
                limit: Duration::from_secs(1)
            }
        );
        assert!(failed
            .to_string()
            .contains("Retry-After 3600 s is longer than 1 s"));
    }

    #[test]
    fn async_runs_honour_retry_after_and_the_bound_alike() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let wait = Duration::from_millis(150);
        let start = Instant::now();
        let mut op = scripted(vec![Verdict::Transient, Verdict::RetryAfter(wait)]);
        let done = rt.block_on(policy(2).run("t", || std::future::ready(op()), same));
        assert_eq!(done.unwrap(), "done");
        assert!(start.elapsed() >= wait, "{:?}", start.elapsed());

        let tries = Cell::new(0);
        let failed = rt
            .block_on(policy(2).run(
                "t",
                || {
                    tries.set(tries.get() + 1);
                    std::future::ready(Err::<(), _>(Verdict::Transient))
                },
                same,
            ))
            .unwrap_err();
        assert_eq!((tries.get(), failed.tries), (3, 3));
        assert_eq!(failed.reason, StopReason::Exhausted);

        let failed = rt
            .block_on(policy(2).run(
                "t",
                || std::future::ready(Err::<(), _>(Verdict::Permanent)),
                same,
            ))
            .unwrap_err();
        assert_eq!((failed.tries, failed.reason), (1, StopReason::Permanent));
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retries: 8,
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let delays: Vec<Duration> = p.backoff().build().collect();
            assert_eq!(delays.len(), 8);
            for (n, d) in delays.iter().enumerate() {
                let ceiling =
                    Duration::from_millis(100 * (1 << n)).min(Duration::from_millis(1000));
                // backon multiplies in f32: allow a microsecond of rounding.
                let slack = Duration::from_micros(1);
                assert!(
                    *d + slack >= ceiling / 2 && *d <= ceiling + slack,
                    "retry {n}: {d:?} outside {:?}..={ceiling:?}",
                    ceiling / 2
                );
            }
        }
        let spread: std::collections::HashSet<Duration> = (0..20)
            .map(|_| p.backoff().build().next().unwrap())
            .collect();
        assert!(spread.len() > 1, "jitter must vary: {spread:?}");
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
