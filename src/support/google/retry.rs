//! Retry decisions for Google API calls (Drive, Sheets).
//!
//! The generated hubs report every non-2xx answer to a [`Delegate`] before giving up, and only the
//! delegate sees the response headers (`Retry-After`). Sleeping inside the generated call would
//! count against our per-request timeout, so the delegate here only *decides*: it records how
//! long to wait in the shared [`Attempts`] and aborts the call, and [`run`] does the waiting and
//! the next try. The one exception is a 401: the delegate asks the token source for a new token
//! and lets the generated call retry at once, because the hub fetches the token inside its loop.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use google_drive3::common;
use google_drive3::hyper_util;

/// How long to wait between tries and for answers. The defaults suit Google's documented
/// advice (exponential backoff up to about 32 s); tests shrink them to keep runs short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTiming {
    /// First backoff step; each further retry doubles it (plus jitter). Default 1 s.
    pub base_delay: Duration,
    /// Cap on one backoff pause. Default 32 s.
    pub max_delay: Duration,
    /// Longest wait for the response headers of one request (token fetch included), after
    /// which the try counts as a timeout and is retried. Default 60 s.
    pub request_timeout: Duration,
    /// Longest silence while a download streams, after which the try is retried. Default 60 s.
    pub idle_timeout: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails and the next poll
    /// tries again, so one rate-limited poll cannot block the caller for long. Default 300 s.
    pub max_retry_after: Duration,
}

impl Default for RetryTiming {
    fn default() -> Self {
        RetryTiming {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(32),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// What happened to one logical call (one page of `files.list`, one download, one values
/// write) over all its tries; shared by the delegate, the retry loop and the error mapping.
pub(crate) struct Attempts {
    what: String,
    max_retries: u32,
    timing: RetryTiming,
    force_refresh: Arc<AtomicBool>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    retries: u32,
    refreshed: bool,
    pending: Option<Duration>,
    last_status: Option<u16>,
    last_problem: Option<String>,
    /// The last failure was worth retrying but the budget (or the `Retry-After` cap) said no.
    exhausted: bool,
}

impl Attempts {
    pub(crate) fn new(
        what: String,
        max_retries: u32,
        timing: RetryTiming,
        force_refresh: Arc<AtomicBool>,
    ) -> Self {
        Attempts {
            what,
            max_retries,
            timing,
            force_refresh,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counters are still meaningful.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The call this is about, e.g. `files.list page 2`.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    pub(crate) fn timing(&self) -> RetryTiming {
        self.timing
    }

    /// A fresh delegate for one try of the generated call.
    pub(crate) fn delegate(&self) -> RetryDelegate<'_> {
        RetryDelegate { attempts: self }
    }

    /// Tries made so far (the first one included).
    pub(crate) fn tries(&self) -> u32 {
        self.lock().retries + 1
    }

    pub(crate) fn last_status(&self) -> Option<u16> {
        self.lock().last_status
    }

    pub(crate) fn last_problem(&self) -> Option<String> {
        self.lock().last_problem.clone()
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.lock().exhausted
    }

    /// Takes the pause the delegate decided on, if it decided to retry.
    fn take_pending(&self) -> Option<Duration> {
        self.lock().pending.take()
    }

    /// Records a transient problem seen outside the generated call (a timeout, a download
    /// that broke off) and returns the pause before the next try, or `None` when retries are
    /// used up.
    pub(crate) fn transient(&self, problem: String) -> Option<Duration> {
        let mut st = self.lock();
        st.last_status = None;
        st.last_problem = Some(problem);
        self.backoff(&mut st)
    }

    /// Counts one retry and returns its backoff pause, or `None` when the budget is spent.
    fn backoff(&self, st: &mut State) -> Option<Duration> {
        if st.retries >= self.max_retries {
            st.exhausted = true;
            return None;
        }
        let delay = backoff_delay(&self.timing, st.retries, jitter_fraction());
        st.retries += 1;
        Some(delay)
    }

    /// Like [`Self::backoff`] for a server-given `Retry-After`.
    fn after(&self, st: &mut State, wait: Duration) -> Option<Duration> {
        if st.retries >= self.max_retries || wait > self.timing.max_retry_after {
            st.exhausted = true;
            return None;
        }
        st.retries += 1;
        Some(wait)
    }
}

/// Exponential backoff with "equal jitter": half of `base * 2^retry` (capped) plus a random
/// part of the other half, so clients that failed together do not retry together.
pub(crate) fn backoff_delay(timing: &RetryTiming, retry: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(retry.min(20));
    let full = timing
        .base_delay
        .saturating_mul(factor)
        .min(timing.max_delay);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A number in [0, 1) that differs between calls; std's `RandomState` is randomly keyed, which
/// is enough for jitter without another dependency.
fn jitter_fraction() -> f64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    h.write_u32(nanos);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` in its delay-seconds form; an HTTP-date (rare from Google) yields `None`
/// and the caller falls back to backoff.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `error.message` and first `error.errors[].reason` of a Google JSON error body.
pub(crate) fn google_error(json: Option<&serde_json::Value>) -> (Option<String>, Option<String>) {
    let Some(err) = json.and_then(|v| v.get("error")) else {
        return (None, None);
    };
    let message = err
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    let reason = err
        .get("errors")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str())
        .map(str::to_owned);
    (message, reason)
}

/// The delegate handed to each generated call; see the module doc.
pub(crate) struct RetryDelegate<'a> {
    attempts: &'a Attempts,
}

impl common::Delegate for RetryDelegate<'_> {
    fn http_error(&mut self, err: &hyper_util::client::legacy::Error) -> common::Retry {
        let a = self.attempts;
        let mut st = a.lock();
        st.last_status = None;
        st.last_problem = Some(format!("connection problem: {err}"));
        st.pending = a.backoff(&mut st);
        common::Retry::Abort
    }

    fn token(
        &mut self,
        e: Box<dyn std::error::Error + Send + Sync>,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        self.attempts.lock().last_problem = Some(format!("no access token: {e}"));
        Err(e)
    }

    fn http_failure(
        &mut self,
        response: &common::Response,
        json: Option<&serde_json::Value>,
    ) -> common::Retry {
        let a = self.attempts;
        let status = response.status().as_u16();
        let (message, reason) = google_error(json);
        let mut st = a.lock();
        st.last_status = Some(status);
        st.last_problem = Some(format!(
            "HTTP {status}: {}",
            message
                .as_deref()
                .or(response.status().canonical_reason())
                .unwrap_or("no message")
        ));
        let rate_limited = status == 429
            || (status == 403
                && matches!(
                    reason.as_deref(),
                    Some("userRateLimitExceeded" | "rateLimitExceeded")
                ));
        if status == 401 && !st.refreshed {
            st.refreshed = true;
            a.force_refresh.store(true, Ordering::SeqCst);
            tracing::info!(
                call = %a.what,
                "Google refused the access token (401); fetching a new one and retrying"
            );
            return common::Retry::After(Duration::ZERO);
        }
        if rate_limited {
            let hinted = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            st.pending = match hinted {
                Some(wait) => a.after(&mut st, wait),
                None => a.backoff(&mut st),
            };
        } else if status == 408 || (500..=599).contains(&status) {
            st.pending = a.backoff(&mut st);
        }
        common::Retry::Abort
    }
}

/// Why [`run`] stopped without a result.
pub(crate) enum Stop {
    /// The generated call failed and the delegate chose not to retry (or could not).
    Call(common::Error),
    /// The last try got no response headers within `request_timeout` and retries are used up.
    TimedOut,
}

/// Runs `call` until it succeeds, a failure is not worth retrying, or retries run out.
/// Each try is bounded by `request_timeout`; pauses between tries happen here.
pub(crate) async fn run<T, F, Fut>(attempts: &Attempts, mut call: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, common::Error>>,
{
    let limit = attempts.timing.request_timeout;
    loop {
        let pause = match tokio::time::timeout(limit, call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => match attempts.take_pending() {
                Some(pause) => pause,
                None => return Err(Stop::Call(err)),
            },
            Err(_) => match attempts.transient(format!("no response within {limit:?}")) {
                Some(pause) => pause,
                None => return Err(Stop::TimedOut),
            },
        };
        log_retry(attempts, pause);
        tokio::time::sleep(pause).await;
    }
}

/// How a call ended for good, before each caller turns it into its own error with its own
/// hints.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A retryable failure outlasted the retry budget (or a `Retry-After` was too long).
    GaveUp { tries: u32, last: String },
    /// No access token: the token endpoint refused the key or could not be reached.
    Auth(String),
    /// The API answered with an error it is no use retrying.
    Api {
        status: u16,
        message: String,
        reason: Option<String>,
    },
    /// The answer was not what the API documents (wrong `api_base`?).
    Protocol(String),
}

/// Sorts out why [`run`] stopped.
pub(crate) fn classify(attempts: &Attempts, stop: Stop) -> Failure {
    let gave_up = || Failure::GaveUp {
        tries: attempts.tries(),
        last: attempts
            .last_problem()
            .unwrap_or_else(|| "unknown problem".to_owned()),
    };
    if attempts.exhausted() {
        return gave_up();
    }
    let err = match stop {
        Stop::TimedOut => return gave_up(),
        Stop::Call(err) => err,
    };
    let (status, message, reason) = match err {
        common::Error::MissingToken(e) => return Failure::Auth(e.to_string()),
        common::Error::BadRequest(json) => {
            let (message, reason) = google_error(Some(&json));
            let code = json
                .pointer("/error/code")
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok());
            (attempts.last_status().or(code), message, reason)
        }
        common::Error::Failure(response) => (Some(response.status().as_u16()), None, None),
        common::Error::JsonDecodeError(_, e) => {
            return Failure::Protocol(format!("the answer is not the documented JSON: {e}"));
        }
        other => return Failure::Protocol(other.to_string()),
    };
    Failure::Api {
        status: status.unwrap_or(0),
        message: message.unwrap_or_else(|| {
            attempts
                .last_problem()
                .unwrap_or_else(|| "no message".to_owned())
        }),
        reason,
    }
}

pub(crate) fn log_retry(attempts: &Attempts, pause: Duration) {
    let st = attempts.lock();
    tracing::warn!(
        call = %attempts.what,
        retry = st.retries,
        max_retries = attempts.max_retries,
        pause_ms = pause.as_millis() as u64,
        problem = st.last_problem.as_deref().unwrap_or("unknown"),
        "Google API call failed; retrying after a pause"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> RetryTiming {
        RetryTiming {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryTiming::default()
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let t = timing();
        assert_eq!(backoff_delay(&t, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff_delay(&t, 0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(&t, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(&t, 10, 1.0), Duration::from_millis(1000));
        assert_eq!(backoff_delay(&t, 60, 0.5), Duration::from_millis(750));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter_fraction();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn budget_is_counted_across_kinds_of_failure() {
        let a = Attempts::new("x".into(), 2, timing(), Arc::new(AtomicBool::new(false)));
        assert!(a.transient("t1".into()).is_some());
        assert!(a.transient("t2".into()).is_some());
        assert!(a.transient("t3".into()).is_none());
        assert!(a.exhausted());
        assert_eq!(a.tries(), 3);
        assert_eq!(a.last_problem().as_deref(), Some("t3"));
    }

    #[test]
    fn long_retry_after_is_not_waited_for() {
        let a = Attempts::new("x".into(), 5, timing(), Arc::new(AtomicBool::new(false)));
        let mut st = a.lock();
        assert_eq!(
            a.after(&mut st, Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(a.after(&mut st, Duration::from_secs(3600)), None);
        assert!(st.exhausted);
    }

    #[test]
    fn google_error_fields() {
        let v: serde_json::Value = serde_json::json!({"error": {"code": 403, "message": "Rate",
            "errors": [{"reason": "userRateLimitExceeded"}]}});
        let (m, r) = google_error(Some(&v));
        assert_eq!(m.as_deref(), Some("Rate"));
        assert_eq!(r.as_deref(), Some("userRateLimitExceeded"));
        assert_eq!(google_error(None), (None, None));
    }
}
