//! A local stand-in for the parts of Google's OAuth token endpoint and Drive v3 that
//! dropsync's gdrive source uses, so its tests never reach Google:
//!
//! - `POST /token`: the service-account JWT grant for the `drive.readonly` scope
//!   (`crate::google::TokenIssuer`).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
// A hand-made body needs http_body's Frame, which axum does not re-export.
use http_body::Frame;

use crate::google::{self, bearer, google_error, lock, Served, TokenIssuer};

pub const SHEET_MIME: &str = "application/vnd.google-apps.spreadsheet";
const READONLY_SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";

/// One item in the fake folder.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub content: Vec<u8>,
    pub modified: String,
}

impl FakeFile {
    pub fn blob(id: &str, name: &str, content: &[u8]) -> Self {
        FakeFile {
            id: id.to_owned(),
            name: name.to_owned(),
            mime: "text/csv".to_owned(),
            content: content.to_vec(),
            modified: "2025-01-31T09:30:00.000Z".to_owned(),
        }
    }

    pub fn with_mime(mut self, mime: &str) -> Self {
        self.mime = mime.to_owned();
        self
    }

    fn native(&self) -> bool {
        self.mime.starts_with("application/vnd.google-apps.")
    }

    /// Stand-in for Drive's md5Checksum: opaque to the client, changes with the content.
    pub fn md5(&self) -> String {
        blake3::hash(&self.content).to_hex()[..32].to_owned()
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Token,
    List,
    Media,
    Export,
    /// Any Drive route (not the token endpoint).
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
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
pub struct Hit {
    pub route: Route,
    pub file_id: Option<String>,
    pub query: HashMap<String, String>,
    pub status: u16,
    pub at: Instant,
}

struct Drive {
    folder_id: String,
    tokens: TokenIssuer,
    files: Vec<FakeFile>,
    page_size: usize,
    faults: Vec<Planned>,
    hits: Vec<Hit>,
}

type Shared = google::Shared<Drive>;

/// A running fake server; stops when dropped.
pub struct FakeDrive {
    served: Served,
    state: Shared,
}

impl FakeDrive {
    /// Serves `files` as the content of folder `folder_id`, shared with `client_email`.
    pub fn start(folder_id: &str, client_email: &str, files: Vec<FakeFile>) -> Self {
        let (listener, addr) = Served::bind();
        let state: Shared = Arc::new(Mutex::new(Drive {
            folder_id: folder_id.to_owned(),
            tokens: TokenIssuer::new(client_email, format!("http://{addr}/token"), READONLY_SCOPE),
            files,
            page_size: 2,
            faults: Vec::new(),
            hits: Vec::new(),
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/drive/v3/files", get(list))
            .route("/drive/v3/files/{id}", get(media))
            .route("/drive/v3/files/{id}/export", get(export))
            .with_state(state.clone());
        FakeDrive {
            served: Served::start(listener, app),
            state,
        }
    }

    /// `http://127.0.0.1:PORT/`, for `api_base`.
    pub fn base(&self) -> String {
        self.served.base()
    }

    pub fn token_uri(&self) -> String {
        lock(&self.state).tokens.token_uri().to_owned()
    }

    /// Makes the next `times` requests on `route` (for `file_id`, if given) fail with `fault`.
    pub fn fault(&self, route: Route, file_id: Option<&str>, fault: Fault, times: u32) {
        lock(&self.state).faults.push(Planned {
            route,
            file_id: file_id.map(str::to_owned),
            fault,
            times,
        });
    }

    /// Replaces a file's content (a new upload: new md5 and modifiedTime).
    pub fn replace(&self, id: &str, content: &[u8], modified: &str) {
        let mut st = lock(&self.state);
        let file = st
            .files
            .iter_mut()
            .find(|f| f.id == id)
            .expect("known file id");
        file.content = content.to_vec();
        file.modified = modified.to_owned();
    }

    pub fn hits(&self, route: Route) -> Vec<Hit> {
        lock(&self.state)
            .hits
            .iter()
            .filter(|h| h.route == route)
            .cloned()
            .collect()
    }
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
                if let Some(t) = bearer(headers) {
                    st.tokens.revoke(t);
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
    match st.tokens.refusal(headers) {
        None => Gate::Pass { truncate },
        Some(r) => Gate::Reject(r),
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
    let answer = lock(&s).tokens.grant(&form);
    finish(&s, Route::Token, None, &HashMap::new(), answer)
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
