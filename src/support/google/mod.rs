//! What every Google API client in dropsync shares: the credentials (`auth`), what a failed
//! call is worth (`call`, the Google side of `crate::support::retry`), the pauses and
//! timeouts ([`RetryTiming`]) and the HTTP client they run over. The Drive source and the
//! Sheets staging each build their own generated hub on top of a [`Session`].
//!
//! google-drive3 and google-sheets4 are generated from the same templates and re-export the
//! same google-apis-common, hyper and hyper-rustls, so the types below fit both hubs.

pub(crate) mod auth;
pub(crate) mod call;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::support::retry::RetryPolicy;

/// How long to wait between tries and for answers. The defaults suit Google's documented
/// advice (exponential backoff up to about 32 s); tests shrink them to keep runs short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTiming {
    /// Upper end of the first backoff pause; each further retry doubles it (the pause is
    /// between half and the whole of it). Default 1 s.
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

impl RetryTiming {
    /// The one retry policy with these pauses and `max_retries` retries per call.
    pub(crate) fn policy(&self, max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            max_retries,
            max_retry_after: self.max_retry_after,
        }
    }
}

use google_drive3::common;
use google_drive3::hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use google_drive3::hyper_util::client::legacy::connect::HttpConnector;
use google_drive3::hyper_util::client::legacy::Client;
use google_drive3::hyper_util::rt::{TokioExecutor, TokioTimer};

/// The connector both the API hubs and the token client use.
pub(crate) type Connector = HttpsConnector<HttpConnector>;

/// A tokio runtime, an HTTP client for the API and a token source for it, built from one
/// key. Callers keep the runtime alive longer than any hub made from `client` (declare it
/// last in their struct), because pooled connections run on it.
pub(crate) struct Session {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) client: common::Client<Connector>,
    pub(crate) tokens: auth::TokenSource,
    /// Set by the call delegate after a 401; read by `tokens`.
    pub(crate) force_refresh: Arc<AtomicBool>,
}

impl Session {
    /// No network call happens here: yup-oauth2 fetches the first token lazily.
    /// `api_base` only decides whether a machine without CA roots may still go on (plain
    /// HTTP to a local test server). Errors are plain text for the caller's own error type.
    pub(crate) fn new(
        key: &auth::Key,
        api_base: &str,
        thread_name: &str,
        timeout: Duration,
    ) -> Result<Session, SessionError> {
        let plain_http_only = api_base.starts_with("http://")
            && matches!(key, auth::Key::ServiceAccount(k) if k.token_uri.starts_with("http://"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread_name)
            .enable_all()
            .build()
            .map_err(|e| SessionError::Setup(format!("no tokio runtime: {e}")))?;
        let connector = connector(plain_http_only).map_err(SessionError::Setup)?;
        let auth_client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build::<_, String>(connector.clone());
        let client: common::Client<Connector> = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let authenticator = runtime
            .block_on(auth::authenticator(key, auth_client, timeout))
            .map_err(|e| SessionError::Key(e.to_string()))?;
        let force_refresh = Arc::new(AtomicBool::new(false));
        Ok(Session {
            tokens: auth::TokenSource {
                auth: authenticator,
                force_refresh: force_refresh.clone(),
            },
            force_refresh,
            client,
            runtime,
        })
    }
}

/// Why a [`Session`] could not be built.
#[derive(Debug)]
pub(crate) enum SessionError {
    /// The runtime or TLS could not be set up.
    Setup(String),
    /// yup-oauth2 refused the key (e.g. a private key it cannot parse).
    Key(String),
}

/// `raw` (or `default` when `None`) with exactly one trailing slash, or `None` when it is not
/// an http(s) URL a hub can be pointed at.
pub(crate) fn api_base(raw: Option<&str>, default: &str) -> Result<String, String> {
    let raw = raw.unwrap_or(default).trim();
    let ok = (raw.starts_with("https://") || raw.starts_with("http://"))
        && !raw.contains(['?', '#', ' '])
        && raw.len() > "https://".len();
    if !ok {
        return Err(raw.to_owned());
    }
    Ok(format!("{}/", raw.trim_end_matches('/')))
}

/// TLS with the system's roots and an explicit `ring` provider (see DEPENDENCIES.md, trap 1).
/// When every endpoint is plain HTTP (tests), a machine without CA certificates still works.
fn connector(plain_http_only: bool) -> Result<Connector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = match HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
        Ok(builder) => builder,
        Err(e) if plain_http_only => {
            tracing::debug!(error = %e, "no system CA roots; fine for plain-HTTP endpoints");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup failed: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            HttpsConnectorBuilder::new().with_tls_config(config)
        }
        Err(e) => {
            return Err(format!(
                "no system CA certificates ({e}); install the ca-certificates package"
            ))
        }
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    Ok(tls
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_gets_one_trailing_slash() {
        let d = "https://www.googleapis.com/";
        assert_eq!(api_base(None, d).as_deref(), Ok(d));
        assert_eq!(
            api_base(Some("http://127.0.0.1:8080//"), d).as_deref(),
            Ok("http://127.0.0.1:8080/")
        );
        assert_eq!(api_base(Some("ftp://x"), d), Err("ftp://x".to_owned()));
    }
}
