//! What a failed Google API call is worth: the Google side of the one retry policy
//! (`crate::support::retry`).
//!
//! The generated hubs report every non-2xx answer to a [`Delegate`](common::Delegate) before
//! giving up, and only the delegate sees the response headers (`Retry-After`) and Google's
//! error reason. Sleeping inside the generated call would count against our per-request
//! timeout, so the delegate here only *judges*: it records a [`Verdict`] for the try and
//! aborts the call, and the retry policy does the waiting and the next try. The one exception
//! is a 401: the delegate asks the token source for a new token once per call and lets the
//! generated call retry at once, because the hub fetches the token inside its own loop.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use google_drive3::common;
use google_drive3::hyper_util;

use crate::support::retry::{parse_retry_after, Failed, StopReason, Verdict};

/// One logical call (one page of `files.list`, one download, one values write) over all its
/// tries: the delegate's findings and whether the token was already refreshed.
pub(crate) struct Call {
    what: String,
    force_refresh: Arc<AtomicBool>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// A 401 already fetched a fresh token during this call; a second one is final.
    refreshed: bool,
    /// The delegate's verdict on the current try; `None` (no finding) is permanent.
    verdict: Option<Verdict>,
    status: Option<u16>,
    problem: Option<String>,
}

/// Why one try failed, and whether another may succeed.
#[derive(Debug)]
pub(crate) struct TryError {
    verdict: Verdict,
    /// The HTTP status the delegate saw, if any.
    status: Option<u16>,
    /// What went wrong, for logs and the final error.
    problem: String,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    /// The generated call returned this error.
    Api(common::Error),
    /// No answer in time, or a body that broke off or stalled.
    Transport,
}

impl TryError {
    /// A failure outside the generated call that is worth another try (a download that broke
    /// off or stalled).
    pub(crate) fn transient(problem: String) -> Self {
        TryError {
            verdict: Verdict::Transient,
            status: None,
            problem,
            cause: Cause::Transport,
        }
    }

    /// The predicate handed to the retry policy.
    pub(crate) fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl fmt::Display for TryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

impl Call {
    pub(crate) fn new(what: String, force_refresh: Arc<AtomicBool>) -> Self {
        Call {
            what,
            force_refresh,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the findings are still meaningful.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The call this is about, e.g. `files.list page 2`.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// A fresh delegate for one try of the generated call.
    pub(crate) fn delegate(&self) -> CallDelegate<'_> {
        CallDelegate { call: self }
    }

    /// One try: `call` (a generated call built with [`Self::delegate`]) bounded by `timeout`
    /// for its response headers (token fetch included), judged by the delegate.
    pub(crate) async fn attempt<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<T, common::Error>>,
    ) -> Result<T, TryError> {
        {
            let mut st = self.lock();
            st.verdict = None;
            st.status = None;
            st.problem = None;
        }
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let mut st = self.lock();
                Err(TryError {
                    verdict: st.verdict.unwrap_or(Verdict::Permanent),
                    status: st.status,
                    problem: st.problem.take().unwrap_or_else(|| err.to_string()),
                    cause: Cause::Api(err),
                })
            }
            Err(_) => Err(TryError::transient(format!(
                "no response within {timeout:?}"
            ))),
        }
    }
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
pub(crate) struct CallDelegate<'a> {
    call: &'a Call,
}

impl common::Delegate for CallDelegate<'_> {
    fn http_error(&mut self, err: &hyper_util::client::legacy::Error) -> common::Retry {
        let mut st = self.call.lock();
        st.status = None;
        st.problem = Some(format!("connection problem: {err}"));
        st.verdict = Some(Verdict::Transient);
        common::Retry::Abort
    }

    fn token(
        &mut self,
        e: Box<dyn std::error::Error + Send + Sync>,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        self.call.lock().problem = Some(format!("no access token: {e}"));
        Err(e)
    }

    fn http_failure(
        &mut self,
        response: &common::Response,
        json: Option<&serde_json::Value>,
    ) -> common::Retry {
        let call = self.call;
        let status = response.status().as_u16();
        let (message, reason) = google_error(json);
        let mut st = call.lock();
        st.status = Some(status);
        st.problem = Some(format!(
            "HTTP {status}: {}",
            message
                .as_deref()
                .or(response.status().canonical_reason())
                .unwrap_or("no message")
        ));
        if status == 401 && !st.refreshed {
            st.refreshed = true;
            call.force_refresh.store(true, Ordering::SeqCst);
            tracing::info!(
                call = %call.what,
                "Google refused the access token (401); fetching a new one and retrying"
            );
            return common::Retry::After(Duration::ZERO);
        }
        let rate_limited = status == 429
            || (status == 403
                && matches!(
                    reason.as_deref(),
                    Some("userRateLimitExceeded" | "rateLimitExceeded")
                ));
        st.verdict = if rate_limited {
            let hinted = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            Some(hinted.map_or(Verdict::Transient, Verdict::RetryAfter))
        } else if status == 408 || (500..=599).contains(&status) {
            Some(Verdict::Transient)
        } else {
            Some(Verdict::Permanent)
        };
        common::Retry::Abort
    }
}

/// How a call ended for good, before each caller turns it into its own error with its own
/// hints.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A retryable failure outlasted the retries (or a `Retry-After` was too long).
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

/// Sorts out why the retry policy stopped.
pub(crate) fn classify(failed: Failed<TryError>) -> Failure {
    let Failed {
        last,
        tries,
        reason,
    } = failed;
    let err = match (reason, last.cause) {
        (StopReason::RetryAfterTooLong { .. }, _) => {
            return Failure::GaveUp {
                tries,
                last: format!("{}; {reason}", last.problem),
            }
        }
        (StopReason::Exhausted, _) | (StopReason::Permanent, Cause::Transport) => {
            return Failure::GaveUp {
                tries,
                last: last.problem,
            }
        }
        (StopReason::Permanent, Cause::Api(err)) => err,
    };
    let (status, message, reason) = match err {
        common::Error::MissingToken(e) => return Failure::Auth(e.to_string()),
        common::Error::BadRequest(json) => {
            let (message, reason) = google_error(Some(&json));
            let code = json
                .pointer("/error/code")
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok());
            (last.status.or(code), message, reason)
        }
        common::Error::Failure(response) => (Some(response.status().as_u16()), None, None),
        common::Error::JsonDecodeError(_, e) => {
            return Failure::Protocol(format!("the answer is not the documented JSON: {e}"));
        }
        other => return Failure::Protocol(other.to_string()),
    };
    Failure::Api {
        status: status.unwrap_or(0),
        message: message.unwrap_or(last.problem),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(error: TryError, tries: u32, reason: StopReason) -> Failed<TryError> {
        Failed {
            last: error,
            tries,
            reason,
        }
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

    #[test]
    fn transport_problems_are_transient_and_end_as_gave_up() {
        let e = TryError::transient("download stalled".into());
        assert_eq!(e.verdict(), Verdict::Transient);
        match classify(failed(e, 3, StopReason::Exhausted)) {
            Failure::GaveUp { tries, last } => {
                assert_eq!((tries, last.as_str()), (3, "download stalled"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_long_retry_after_says_so() {
        let e = TryError {
            verdict: Verdict::RetryAfter(Duration::from_secs(900)),
            status: Some(429),
            problem: "HTTP 429: Too Many Requests".into(),
            cause: Cause::Transport,
        };
        let reason = StopReason::RetryAfterTooLong {
            wait: Duration::from_secs(900),
            limit: Duration::from_secs(300),
        };
        match classify(failed(e, 1, reason)) {
            Failure::GaveUp { tries: 1, last } => {
                assert!(
                    last.contains("Retry-After 900 s is longer than 300 s"),
                    "{last}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_keeps_the_status_and_googles_message() {
        let json = serde_json::json!({"error": {"code": 404, "message": "File not found: x.",
            "errors": [{"reason": "notFound"}]}});
        let e = TryError {
            verdict: Verdict::Permanent,
            status: Some(404),
            problem: "HTTP 404: File not found: x.".into(),
            cause: Cause::Api(common::Error::BadRequest(json)),
        };
        match classify(failed(e, 1, StopReason::Permanent)) {
            Failure::Api {
                status,
                message,
                reason,
            } => {
                assert_eq!(status, 404);
                assert_eq!(message, "File not found: x.");
                assert_eq!(reason.as_deref(), Some("notFound"));
            }
            other => panic!("{other:?}"),
        }
    }
}
