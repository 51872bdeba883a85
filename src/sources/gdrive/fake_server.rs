//! A local stand-in for the parts of Google's OAuth token endpoint and Drive v3 that the
//! gdrive source uses, so its tests never reach Google:
//!
//! - `POST /token`: form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`;
//!   the JWT's claims must name the test service account (`iss`), this endpoint (`aud`) and
//!   the `drive.readonly` scope. (The signature is not checked; yup-oauth2 still has to parse
//!   and sign with the key.) Answers `{"access_token","expires_in","token_type":"Bearer"}`.
//! - `GET /drive/v3/files`: needs `q` = `'<folder>' in parents and trashed = false` (an
//!   unknown folder answers 404) and `fields` with `nextPageToken` and the file fields;
//!   pages of `page_size` items linked by `nextPageToken`/`pageToken`.
//! - `GET /drive/v3/files/{id}?alt=media`: the bytes; Google-native files answer 403
//!   `fileNotDownloadable` as Drive does.
//! - `GET /drive/v3/files/{id}/export?mimeType=text/csv`: a Sheet's CSV.
//!
//! Every Drive route requires `Authorization: Bearer <token issued here and not revoked>`.
//! Faults are programmed per route (and file): revoke the presented token (401), 429 with
//! `Retry-After`, 503, a stalled answer, or a body cut off before its `Content-Length`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
// hyper re-exports http_body's Frame, which a hand-made body needs.
use google_drive3::hyper::body::Frame;

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

pub(crate) const SHEET_MIME: &str = "application/vnd.google-apps.spreadsheet";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const READONLY_SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";

/// One item in the fake folder.
#[derive(Debug, Clone)]
pub(crate) struct FakeFile {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub content: Vec<u8>,
    pub modified: String,
}

impl FakeFile {
    pub(crate) fn blob(id: &str, name: &str, content: &[u8]) -> Self {
        FakeFile {
            id: id.to_owned(),
            name: name.to_owned(),
            mime: "text/csv".to_owned(),
            content: content.to_vec(),
            modified: "2025-01-31T09:30:00.000Z".to_owned(),
        }
    }

    pub(crate) fn with_mime(mut self, mime: &str) -> Self {
        self.mime = mime.to_owned();
        self
    }

    fn native(&self) -> bool {
        self.mime.starts_with("application/vnd.google-apps.")
    }

    /// Stand-in for Drive's md5Checksum: opaque to the client, changes with the content.
    pub(crate) fn md5(&self) -> String {
        blake3::hash(&self.content).to_hex()[..32].to_owned()
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Token,
    List,
    Media,
    Export,
    /// Any Drive route (not the token endpoint).
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The presented token becomes revoked, so this request answers 401.
    RevokeToken,
    /// 429 with `Retry-After: <seconds>`.
    TooMany { retry_after: u64 },
    /// 503.
    Unavailable,
    /// The answer comes only after this long.
    Stall(Duration),
    /// Media only: `Content-Length` of the whole file, half the bytes, then a dropped connection.
    Truncate,
}

struct Planned {
    route: Route,
    file_id: Option<String>,
    fault: Fault,
    times: u32,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub route: Route,
    pub file_id: Option<String>,
    pub query: HashMap<String, String>,
    pub status: u16,
    pub at: Instant,
}

struct Drive {
    folder_id: String,
    client_email: String,
    token_uri: String,
    files: Vec<FakeFile>,
    page_size: usize,
    valid_tokens: HashSet<String>,
    issued: u32,
    faults: Vec<Planned>,
    hits: Vec<Hit>,
}

type Shared = Arc<Mutex<Drive>>;

fn lock(s: &Shared) -> MutexGuard<'_, Drive> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake server; stops when dropped.
pub(crate) struct FakeDrive {
    addr: SocketAddr,
    state: Shared,
    stop: Arc<AtomicBool>,
}

impl FakeDrive {
    /// Serves `files` as the content of folder `folder_id`, shared with `client_email`.
    pub(crate) fn start(folder_id: &str, client_email: &str, files: Vec<FakeFile>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let state: Shared = Arc::new(Mutex::new(Drive {
            folder_id: folder_id.to_owned(),
            client_email: client_email.to_owned(),
            token_uri: format!("http://{addr}/token"),
            files,
            page_size: 2,
            valid_tokens: HashSet::new(),
            issued: 0,
            faults: Vec::new(),
            hits: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let app = Router::new()
            .route("/token", post(token))
            .route("/drive/v3/files", get(list))
            .route("/drive/v3/files/{id}", get(media))
            .route("/drive/v3/files/{id}/export", get(export))
            .with_state(state.clone());
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
        FakeDrive { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT/`, for `api_base`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub(crate) fn token_uri(&self) -> String {
        lock(&self.state).token_uri.clone()
    }

    /// Makes the next `times` requests on `route` (for `file_id`, if given) fail with `fault`.
    pub(crate) fn fault(&self, route: Route, file_id: Option<&str>, fault: Fault, times: u32) {
        lock(&self.state).faults.push(Planned {
            route,
            file_id: file_id.map(str::to_owned),
            fault,
            times,
        });
    }

    /// Replaces a file's content (a new upload: new md5 and modifiedTime).
    pub(crate) fn replace(&self, id: &str, content: &[u8], modified: &str) {
        let mut st = lock(&self.state);
        let file = st
            .files
            .iter_mut()
            .find(|f| f.id == id)
            .expect("known file id");
        file.content = content.to_vec();
        file.modified = modified.to_owned();
    }

    pub(crate) fn hits(&self, route: Route) -> Vec<Hit> {
        lock(&self.state)
            .hits
            .iter()
            .filter(|h| h.route == route)
            .cloned()
            .collect()
    }
}

impl Drop for FakeDrive {
    fn drop(&mut self) {
        // The server thread notices within 20 ms and ends on its own.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Google's JSON error shape.
fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {
        "code": status.as_u16(), "message": message,
        "errors": [{"domain": "global", "reason": reason, "message": message}]}});
    (status, Json(body)).into_response()
}

fn record(
    s: &Shared,
    route: Route,
    file_id: Option<&str>,
    query: &HashMap<String, String>,
    status: StatusCode,
) {
    lock(s).hits.push(Hit {
        route,
        file_id: file_id.map(str::to_owned),
        query: query.clone(),
        status: status.as_u16(),
        at: Instant::now(),
    });
}

enum Gate {
    Pass { truncate: bool },
    Reject(Response),
    Stall(Duration),
}

/// Applies the first programmed fault for this request, then checks the bearer token.
fn gate(s: &Shared, route: Route, file_id: Option<&str>, headers: &HeaderMap) -> Gate {
    let mut st = lock(s);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let pos = st.faults.iter().position(|p| {
        (p.route == route || (p.route == Route::Api && route != Route::Token))
            && (p.file_id.is_none() || p.file_id.as_deref() == file_id)
    });
    let mut truncate = false;
    if let Some(pos) = pos {
        let fault = st.faults[pos].fault;
        st.faults[pos].times -= 1;
        if st.faults[pos].times == 0 {
            st.faults.remove(pos);
        }
        match fault {
            Fault::RevokeToken => {
                if let Some(t) = &presented {
                    st.valid_tokens.remove(t);
                }
            }
            Fault::TooMany { retry_after } => {
                let mut r = google_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimitExceeded",
                    "Rate Limit Exceeded",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after.into());
                return Gate::Reject(r);
            }
            Fault::Unavailable => {
                return Gate::Reject(google_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backendError",
                    "Backend Error",
                ));
            }
            Fault::Stall(d) => return Gate::Stall(d),
            Fault::Truncate => truncate = true,
        }
    }
    match presented {
        Some(t) if st.valid_tokens.contains(&t) => Gate::Pass { truncate },
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
            Gate::Reject(r)
        }
    }
}

/// Runs the gate (sleeping outside the lock for a stall); `Err` is the answer to send.
async fn admit(
    s: &Shared,
    route: Route,
    file_id: Option<&str>,
    headers: &HeaderMap,
) -> Result<bool, Response> {
    loop {
        match gate(s, route, file_id, headers) {
            Gate::Pass { truncate } => return Ok(truncate),
            Gate::Reject(r) => return Err(r),
            Gate::Stall(d) => tokio::time::sleep(d).await,
        }
    }
}

fn finish(
    s: &Shared,
    route: Route,
    file_id: Option<&str>,
    query: &HashMap<String, String>,
    r: Response,
) -> Response {
    record(s, route, file_id, query, r.status());
    r
}

async fn token(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let empty = HashMap::new();
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some(JWT_GRANT) {
        return finish(
            &s,
            Route::Token,
            None,
            &empty,
            bad("unsupported grant_type"),
        );
    }
    let claims = form
        .get("assertion")
        .and_then(|a| a.split('.').nth(1))
        .and_then(base64url_decode)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(claims) = claims else {
        return finish(
            &s,
            Route::Token,
            None,
            &empty,
            bad("assertion is not a JWT"),
        );
    };
    let mut st = lock(&s);
    let field = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    if field("iss") != st.client_email {
        drop(st);
        return finish(
            &s,
            Route::Token,
            None,
            &empty,
            bad("Invalid JWT Signature."),
        );
    }
    if field("aud") != st.token_uri || !field("scope").split(' ').any(|sc| sc == READONLY_SCOPE) {
        drop(st);
        return finish(
            &s,
            Route::Token,
            None,
            &empty,
            bad("wrong audience or scope"),
        );
    }
    st.issued += 1;
    let tok = format!("fake-token-{}", st.issued);
    st.valid_tokens.insert(tok.clone());
    drop(st);
    let body = serde_json::json!({"access_token": tok, "expires_in": 3599, "token_type": "Bearer"});
    finish(&s, Route::Token, None, &empty, Json(body).into_response())
}

async fn list(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, Route::List, None, &headers).await {
        return finish(&s, Route::List, None, &q, r);
    }
    let answer = list_page(&lock(&s), &q);
    finish(&s, Route::List, None, &q, answer)
}

fn list_page(st: &Drive, q: &HashMap<String, String>) -> Response {
    let query = q.get("q").map(String::as_str).unwrap_or("");
    if !query.contains("trashed = false") {
        return google_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "expected `trashed = false` in q",
        );
    }
    if !query.contains(&format!("'{}' in parents", st.folder_id)) {
        return google_error(StatusCode::NOT_FOUND, "notFound", "File not found: .");
    }
    let fields = q.get("fields").map(String::as_str).unwrap_or("");
    for needed in [
        "nextPageToken",
        "files(",
        "id",
        "name",
        "mimeType",
        "md5Checksum",
        "modifiedTime",
        "size",
    ] {
        if !fields.contains(needed) {
            return google_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("fields lacks {needed}"),
            );
        }
    }
    let page: usize = match q.get("pageToken") {
        None => 0,
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return google_error(StatusCode::BAD_REQUEST, "invalid", "Invalid Value"),
        },
    };
    let start = page * st.page_size;
    let items: Vec<serde_json::Value> = st
        .files
        .iter()
        .skip(start)
        .take(st.page_size)
        .map(|f| {
            let mut v = serde_json::json!({"id": f.id, "name": f.name, "mimeType": f.mime,
                "modifiedTime": f.modified, "size": f.content.len().to_string()});
            if !f.native() {
                v["md5Checksum"] = f.md5().into();
            }
            v
        })
        .collect();
    let mut body =
        serde_json::json!({"kind": "drive#fileList", "incompleteSearch": false, "files": items});
    if start + st.page_size < st.files.len() {
        body["nextPageToken"] = format!("page-{}", page + 1).into();
    }
    Json(body).into_response()
}

async fn media(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let truncate = match admit(&s, Route::Media, Some(&id), &headers).await {
        Ok(t) => t,
        Err(r) => return finish(&s, Route::Media, Some(&id), &q, r),
    };
    let answer = {
        let st = lock(&s);
        match st.files.iter().find(|f| f.id == id) {
            _ if q.get("alt").map(String::as_str) != Some("media") => {
                google_error(StatusCode::BAD_REQUEST, "invalid", "this fake serves only alt=media")
            }
            None => google_error(StatusCode::NOT_FOUND, "notFound", &format!("File not found: {id}.")),
            Some(f) if f.native() => google_error(
                StatusCode::FORBIDDEN,
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            ),
            Some(f) if truncate => {
                let half = Bytes::copy_from_slice(&f.content[..f.content.len() / 2]);
                let body = Body::new(BreakingBody {
                    first: Some(half),
                    pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
                });
                Response::builder()
                    .header(header::CONTENT_LENGTH, f.content.len())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(body)
                    .expect("response")
            }
            Some(f) => ([(header::CONTENT_TYPE, "application/octet-stream")], f.content.clone()).into_response(),
        }
    };
    finish(&s, Route::Media, Some(&id), &q, answer)
}

async fn export(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, Route::Export, Some(&id), &headers).await {
        return finish(&s, Route::Export, Some(&id), &q, r);
    }
    let answer = {
        let st = lock(&s);
        match st.files.iter().find(|f| f.id == id) {
            _ if q.get("mimeType").map(String::as_str) != Some("text/csv") => google_error(
                StatusCode::BAD_REQUEST,
                "badRequest",
                "this fake exports only text/csv",
            ),
            None => google_error(
                StatusCode::NOT_FOUND,
                "notFound",
                &format!("File not found: {id}."),
            ),
            Some(f) if f.mime != SHEET_MIME => google_error(
                StatusCode::FORBIDDEN,
                "fileNotExportable",
                "Export only supports Docs Editors files.",
            ),
            Some(f) => ([(header::CONTENT_TYPE, "text/csv")], f.content.clone()).into_response(),
        }
    };
    finish(&s, Route::Export, Some(&id), &q, answer)
}

/// A body that sends its first chunk, waits so that the head and that chunk reach the
/// client, then fails: hyper aborts the connection short of the announced Content-Length,
/// which the client sees as a download breaking off midway.
struct BreakingBody {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl HttpBody for BreakingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(chunk) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other(
                "fake server cut the download",
            )))),
        }
    }
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
