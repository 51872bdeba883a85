//! What every local stand-in for a Google API needs: the OAuth token endpoint
//! (service-account JWT grant) with the bearer tokens it issued, Google's JSON error shape, a
//! server thread that stops when dropped, and a key file made from the test-only RSA key
//! ([`key_in_env`], what a test hands dropsync as `key_file_env`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

/// TEST-ONLY RSA key (PKCS#8), generated for this fake server; it grants nothing anywhere.
pub(crate) const TEST_PRIVATE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDRJsbMu2+DBLCz
J6P/XVjlWm/x40G7THBOcxipb+Imre9OieaNPoa0f5e9iLF3ulRqqBpkHGu52TBH
sx+6FFXLlXpDzMQ8l0tvtGgeSXH97wKw3UXi3knN3IOiBsiiE4T2jaG6hcA/xo1H
I3nXB8a9s2m0pDWPzvB34PEZ6MJCAe7if2mVFHq73zfQugLVJ++88o4VfvyKpPRm
NdMa9Eykrl1LBteBwo0LqRxLVEdBd2Y5yTP6npoCjHWUS5nFPBlqB1ElbSTcdgb4
XZMl2uqXRWwbhKvryatyw5n17I6ijmoLU7+/TDUnuKKaZgsyfQC5vIrid2P4gbcO
GY+3bxyXAgMBAAECggEABOuE7lipFTZCsy7cicD4EAp3la4Yjr+2k0cxLlMxHmMl
vP2QzIPLBsCgS4IarUwBzlx+pRo8t9YnGkNZcgwmadqYp12lbsjJqoAI7vrKpq7n
q6IY5xmpjMvXgN6TUP9lN6jkmWRUvcCoSXhz1kjFi72GYAx412rbzJt1sHwBjdc+
M5UzOjYHzKwbadvXB5zc7UGwqSGVA5LKylFOzGmqUnJQM5rCkLTDFdrIMcEvZABO
gLFvaH3NLgkr2jEFPJpdF4pwY+s5AGyGLAMEupQT+5OI1vUMsyyBxYE8XOQtT6mi
MU7IC57Mm3yf0s7PsXi0VPL1s78UrLOhdH0JFQtcwQKBgQD9spYlVCKe3x3K/ap5
2eM0JZ8eszO773/zmyY4NvywPbOxc2MAOG30wuoAAy/51F6wnEUGJu0mhGkpoeaq
9cY04RCWD9SMZoiAjLpRIGMRzCFeUy61w5mxSU5Y95iylu3B4IM0KFqJ9jXKt+XK
rUYIwod3bNxPqkQPgJS7Y3/49wKBgQDTDLJHZVK40aU8rKj8z+QOGaGa3Uy5BlZC
wPiBFns5owpk5UNHrtiIIT9oIn7HHOMoBs4OZki5wrcadTXsfikPcrwuNgp3a1Li
migWv4k+pF1F/kQyApHKx3wjsQXV+8A7MK+pzNOhZ3CxH1Zg6Mf3ahF814DF2oF9
Pp35kOmxYQKBgQCwf0AJ9ECpupulj1i8sSNqMgpDd3S0eOjRd8zdKxQdILAU8iuc
CaYltDzLiWwlKOQ/hlhW8VnnhBMNjb9GjPo566J4Y8cBbovkswMkUZ3a0eMdFk3W
0p/oQRGqv4aSKIJ8cU+WR8TFWm8N+2Z43JdunLdWFHwpSFFVX6UZwR1U/QKBgQCa
JLnJP43NgwFGcWzzSPtt+PZ5X4x7zs8N7lcSIVNa42PiETi0kFWCB5aB/j/OOaEH
SQESr04KrtaBMn5x/isLJ2ed8MZwNijRbHo/MyGQaQfe6TjxtcK58j0O7GowwbDD
CmoigIFJb311QEgce6ghYoznO5bH6zGMQkGrV1X3wQKBgQCQmXM+uXJ94zKzYQ+f
DTfIc1f0wG5shvqEEK5mYm2g6+BDtkbA0o9CdQECEYI7lL0800pXn2NehKD0XH48
VOIoH2TwfyzoK9rBx3Vf8OfOKfaXjQNjEW77Zoe5fWzm8idqcKDoBZk/fnOza316
hKIv1n654pOsRuZOzHJ53c3sRA==
-----END PRIVATE KEY-----
";

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A fake's in-memory state, shared by its handlers and the test.
pub(crate) type Shared<T> = Arc<Mutex<T>>;

/// Locks a fake's state; a poisoned lock only means a panicking test thread, the state is
/// still what the server saw.
pub(crate) fn lock<T>(s: &Shared<T>) -> MutexGuard<'_, T> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The token endpoint's memory: who may get tokens, for which scope, and what it issued.
pub(crate) struct TokenIssuer {
    client_email: String,
    token_uri: String,
    scope: &'static str,
    valid: HashSet<String>,
    issued: u32,
}

impl TokenIssuer {
    /// Issues tokens to `client_email` for `scope`; `token_uri` is the JWT's expected `aud`.
    pub(crate) fn new(client_email: &str, token_uri: String, scope: &'static str) -> Self {
        TokenIssuer {
            client_email: client_email.to_owned(),
            token_uri,
            scope,
            valid: HashSet::new(),
            issued: 0,
        }
    }

    pub(crate) fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Answers `POST /token` with form `grant_type=<jwt-bearer>&assertion=<JWT>`. The JWT's
    /// claims must name the account (`iss`), this endpoint (`aud`) and the scope; the signature
    /// is not checked (yup-oauth2 still has to parse and sign with the key).
    pub(crate) fn grant(&mut self, form: &HashMap<String, String>) -> Response {
        let bad = |why: &str| {
            (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": "invalid_grant", "error_description": why})),
            )
                .into_response()
        };
        if form.get("grant_type").map(String::as_str) != Some(JWT_GRANT) {
            return bad("unsupported grant_type");
        }
        let claims = form
            .get("assertion")
            .and_then(|a| a.split('.').nth(1))
            .and_then(base64url_decode)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let Some(claims) = claims else {
            return bad("assertion is not a JWT");
        };
        let field = |k: &str| {
            claims
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        if field("iss") != self.client_email {
            return bad("Invalid JWT Signature.");
        }
        if field("aud") != self.token_uri || !field("scope").split(' ').any(|s| s == self.scope) {
            return bad("wrong audience or scope");
        }
        self.issued += 1;
        let tok = format!("fake-token-{}", self.issued);
        self.valid.insert(tok.clone());
        let body =
            serde_json::json!({"access_token": tok, "expires_in": 3599, "token_type": "Bearer"});
        Json(body).into_response()
    }

    /// Makes a token answer 401 from now on, as a revoked one does.
    pub(crate) fn revoke(&mut self, token: &str) {
        self.valid.remove(token);
    }

    /// `None` when the request bears a token issued here and not revoked, else Google's 401.
    pub(crate) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        match bearer(headers) {
            Some(t) if self.valid.contains(t) => None,
            _ => {
                let mut r = google_error(
                    StatusCode::UNAUTHORIZED,
                    "authError",
                    "Request had invalid authentication credentials.",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"https://accounts.google.com/\""
                        .parse()
                        .expect("header"),
                );
                Some(r)
            }
        }
    }
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Google's JSON error shape.
pub(crate) fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {
        "code": status.as_u16(), "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}]}});
    (status, Json(body)).into_response()
}

/// A router served on 127.0.0.1 from its own thread; stops when dropped.
pub(crate) struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Served {
    /// Binds first, so the address is known before the router (which may need it) exists.
    pub(crate) fn bind() -> (std::net::TcpListener, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        (listener, addr)
    }

    pub(crate) fn start(listener: std::net::TcpListener, app: Router) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("fake server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let stopped = async move {
                    while !stop_flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await;
            });
        });
        Served { addr, stop }
    }

    /// `http://127.0.0.1:PORT/`, for `api_base`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // The server thread notices within 20 ms and ends on its own.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Writes a service-account key JSON for `client_email` (with [`TEST_PRIVATE_KEY`] and
/// `token_uri`) to `dir/key.json` and returns its path.
fn write_test_key(dir: &Path, client_email: &str, token_uri: &str) -> PathBuf {
    // DEPENDENCIES.md trap 1: tests that build clients install a provider once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "example-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_PRIVATE_KEY,
        "client_email": client_email,
        "client_id": "1234567890",
        "auth_uri": "http://127.0.0.1:1/unused",
        "token_uri": token_uri,
    });
    let path = dir.join("key.json");
    std::fs::write(&path, key.to_string()).expect("write key");
    path
}

/// Each call gets its own env var, so parallel tests never race on one.
static NEXT_VAR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Writes a test key (see [`write_test_key`]) and points a fresh environment variable,
/// `<prefix>_<pid>_<n>`, at it; returns the variable's name for `key_file_env`.
pub fn key_in_env(dir: &Path, client_email: &str, token_uri: &str, prefix: &str) -> String {
    let key_path = write_test_key(dir, client_email, token_uri);
    let var = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT_VAR.fetch_add(1, Ordering::SeqCst)
    );
    std::env::set_var(&var, &key_path);
    var
}

/// Unpadded base64url (RFC 4648 §5), as in JWTs.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trip() {
        assert_eq!(
            base64url_decode("eyJhIjoxfQ").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url_decode("a+b"), None);
    }
}
