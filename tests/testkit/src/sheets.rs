//! A local stand-in for the parts of Google Sheets v4 that dropsync's `publish` uses, so its tests
//! never reach Google. It keeps one spreadsheet in memory the way Google does: tabs with a
//! grid size each and cells only inside the grid.
//!
//! - `POST /token`: the service-account JWT grant for the `spreadsheets` scope
//!   (`crate::google::TokenIssuer`).
//! - `GET /v4/spreadsheets/{id}`: tabs with `sheetId`, `title`, `index`, `sheetType` and
//!   `gridProperties`.
//! - `POST /v4/spreadsheets/{id}:batchUpdate`: `addSheet` (default grid 1000 × 26, title
//!   unique), `updateSheetProperties` of the grid size under a `fields` mask, and
//!   `repeatCell` of a `userEnteredFormat.numberFormat` over a grid range inside the grid;
//!   requests apply in order and all or none. Cells cut off by a shrink are gone. A request that
//!   raises the spreadsheet above its cell limit is refused with Google's 400 text.
//! - `POST /v4/spreadsheets/{id}/values:batchClear` and `.../values:batchUpdate` (only
//!   `valueInputOption=RAW`, rows major; a JSON number is kept as a number): ranges in A1 notation with quoted titles; a range
//!   beyond its tab's grid is refused with Google's "exceeds grid limits", values that do not
//!   fit their range likewise, and so are cells over 50,000 characters.
//! - Bodies above `max_body` bytes are refused with 400, as Google refuses large payloads.
//!
//! Every API route requires a bearer token issued here and not revoked. Faults are
//! programmed per route: 429 with `Retry-After`, 500, or revoking the presented token (401).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Form, OriginalUri, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::google::{self, bearer, google_error, lock, Served, TokenIssuer};

const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Token,
    Get,
    BatchUpdate,
    Clear,
    Write,
    /// Anything we do not serve.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: <seconds>`.
    TooMany { retry_after: u64 },
    /// 500.
    Internal,
    /// The presented token becomes revoked, so this request answers 401.
    RevokeToken,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub route: Route,
    pub status: u16,
    pub body_bytes: usize,
    /// Google's `error.message` of a refusal.
    pub message: Option<String>,
    /// The query string (`fields=...`).
    pub query: String,
}

#[derive(Debug, Clone)]
struct Tab {
    id: i32,
    title: String,
    rows: u64,
    cols: u64,
    /// (row, col), 0-based, only inside the grid.
    cells: BTreeMap<(u64, u64), String>,
    /// Cells written as JSON numbers (RAW input keeps them numbers, not text).
    numbers: BTreeSet<(u64, u64)>,
    /// `repeatCell` number formats in the order applied.
    formats: Vec<Applied>,
}

/// One number format over rows and columns (half-open, 0-based): (rows, cols, type, pattern).
type Applied = ((u64, u64), (u64, u64), String, String);

struct Book {
    spreadsheet_id: String,
    limit: u64,
    max_body: usize,
    tabs: Vec<Tab>,
    next_id: i32,
    tokens: TokenIssuer,
    faults: Vec<(Route, Fault, u32)>,
    hits: Vec<Hit>,
}

type Shared = google::Shared<Book>;

/// A running fake server; stops when dropped.
pub struct FakeSheets {
    served: Served,
    state: Shared,
}

impl FakeSheets {
    /// Serves spreadsheet `spreadsheet_id` holding one tab `Sheet1` of `first_tab` (rows,
    /// cols), as a new spreadsheet has; tokens go to `client_email`.
    pub fn start(spreadsheet_id: &str, client_email: &str, first_tab: (u64, u64)) -> Self {
        let (listener, addr) = Served::bind();
        let state: Shared = Arc::new(Mutex::new(Book {
            spreadsheet_id: spreadsheet_id.to_owned(),
            limit: 10_000_000,
            max_body: 10 * 1024 * 1024,
            tabs: vec![Tab {
                id: 0,
                title: "Sheet1".to_owned(),
                rows: first_tab.0,
                cols: first_tab.1,
                cells: BTreeMap::new(),
                numbers: BTreeSet::new(),
                formats: Vec::new(),
            }],
            next_id: 1000,
            tokens: TokenIssuer::new(client_email, format!("http://{addr}/token"), SCOPE),
            faults: Vec::new(),
            hits: Vec::new(),
        }));
        let app = Router::new()
            .route("/token", post(token))
            .fallback(api)
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        FakeSheets {
            served: Served::start(listener, app),
            state,
        }
    }

    pub fn base(&self) -> String {
        self.served.base()
    }

    pub fn token_uri(&self) -> String {
        lock(&self.state).tokens.token_uri().to_owned()
    }

    /// Google's cells-per-spreadsheet limit, smaller for tests.
    pub fn set_cell_limit(&self, limit: u64) {
        lock(&self.state).limit = limit;
    }

    pub fn set_max_body(&self, bytes: usize) {
        lock(&self.state).max_body = bytes;
    }

    /// Makes the next `times` requests on `route` fail with `fault`.
    pub fn fault(&self, route: Route, fault: Fault, times: u32) {
        lock(&self.state).faults.push((route, fault, times));
    }

    /// Puts `rows` into tab `title` (created with that size if missing), like an analyst.
    pub fn put_tab(&self, title: &str, rows: &[&[&str]]) {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        let cols = rows.iter().map(|r| r.len()).max().unwrap_or(1) as u64;
        let mut tab = Tab {
            id,
            title: title.to_owned(),
            rows: rows.len().max(1) as u64,
            cols: cols.max(1),
            cells: BTreeMap::new(),
            numbers: BTreeSet::new(),
            formats: Vec::new(),
        };
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                tab.cells.insert((r as u64, c as u64), (*v).to_owned());
            }
        }
        st.tabs.push(tab);
    }

    /// Tab titles in order.
    pub fn titles(&self) -> Vec<String> {
        lock(&self.state)
            .tabs
            .iter()
            .map(|t| t.title.clone())
            .collect()
    }

    /// (rows, cols) of a tab's grid.
    pub fn grid(&self, title: &str) -> Option<(u64, u64)> {
        lock(&self.state)
            .tabs
            .iter()
            .find(|t| t.title == title)
            .map(|t| (t.rows, t.cols))
    }

    /// A tab's non-empty cells as rows, trailing empty cells and rows dropped (as
    /// `values.get` answers).
    pub fn values(&self, title: &str) -> Vec<Vec<String>> {
        let st = lock(&self.state);
        let Some(tab) = st.tabs.iter().find(|t| t.title == title) else {
            return Vec::new();
        };
        let mut out: Vec<Vec<String>> = Vec::new();
        for (&(r, c), v) in &tab.cells {
            if v.is_empty() {
                continue;
            }
            let (r, c) = (r as usize, c as usize);
            if out.len() <= r {
                out.resize(r + 1, Vec::new());
            }
            if out[r].len() <= c {
                out[r].resize(c + 1, String::new());
            }
            out[r][c] = v.clone();
        }
        out
    }

    /// Whether cell (row, col) (0-based) of a tab holds a number rather than text.
    pub fn is_number(&self, title: &str, row: u64, col: u64) -> bool {
        lock(&self.state)
            .tabs
            .iter()
            .find(|t| t.title == title)
            .is_some_and(|t| t.numbers.contains(&(row, col)))
    }

    /// The number format (type, pattern) that applies to cell (row, col) of a tab.
    pub fn number_format(&self, title: &str, row: u64, col: u64) -> Option<(String, String)> {
        let st = lock(&self.state);
        let tab = st.tabs.iter().find(|t| t.title == title)?;
        tab.formats
            .iter()
            .rev()
            .find(|((r0, r1), (c0, c1), ..)| (*r0..*r1).contains(&row) && (*c0..*c1).contains(&col))
            .map(|(_, _, t, p)| (t.clone(), p.clone()))
    }

    pub fn total_cells(&self) -> u64 {
        lock(&self.state).tabs.iter().map(|t| t.rows * t.cols).sum()
    }

    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.state).hits.clone()
    }

    pub fn route_hits(&self, route: Route) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.route == route)
            .collect()
    }
}

async fn token(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let answer = lock(&s).tokens.grant(&form);
    record(&s, Route::Token, answer.status(), 0, None, String::new());
    answer
}

fn record(
    s: &Shared,
    route: Route,
    status: StatusCode,
    body_bytes: usize,
    message: Option<String>,
    query: String,
) {
    lock(s).hits.push(Hit {
        route,
        status: status.as_u16(),
        body_bytes,
        message,
        query,
    });
}

/// A refusal in Google's shape, with the message kept for [`Hit`].
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

fn bad(message: String) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        reason: "badRequest",
        message,
    }
}

/// Every API route: routes by method and path by hand, since Google's `{id}:verb` paths
/// are not axum route syntax.
async fn api(
    State(s): State<Shared>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let (route, id) = match_route(&method, &path);
    let result = serve(&s, route, id.as_deref(), &headers, &body);
    let (response, message) = match result {
        Ok(v) => (Json(v).into_response(), None),
        Err(Answer::Refused(r)) => (
            google_error(r.status, r.reason, &r.message),
            Some(r.message),
        ),
        Err(Answer::Raw(resp)) => (*resp, None),
    };
    record(&s, route, response.status(), body.len(), message, query);
    response
}

fn match_route(method: &Method, path: &str) -> (Route, Option<String>) {
    let Some(rest) = path.strip_prefix("/v4/spreadsheets/") else {
        return (Route::Other, None);
    };
    let (route, id) = if let Some(id) = rest.strip_suffix("/values:batchClear") {
        (Route::Clear, id)
    } else if let Some(id) = rest.strip_suffix("/values:batchUpdate") {
        (Route::Write, id)
    } else if let Some(id) = rest.strip_suffix(":batchUpdate") {
        (Route::BatchUpdate, id)
    } else if !rest.contains(['/', ':']) {
        (Route::Get, rest)
    } else {
        (Route::Other, rest)
    };
    let expected = if route == Route::Get {
        Method::GET
    } else {
        Method::POST
    };
    if *method != expected {
        return (Route::Other, None);
    }
    (route, Some(id.to_owned()))
}

enum Answer {
    Refused(Refusal),
    Raw(Box<Response>),
}

impl From<Refusal> for Answer {
    fn from(r: Refusal) -> Self {
        Answer::Refused(r)
    }
}

fn serve(
    s: &Shared,
    route: Route,
    id: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Answer> {
    let mut st = lock(s);
    if let Some(pos) = st.faults.iter().position(|f| f.0 == route) {
        let fault = st.faults[pos].1;
        st.faults[pos].2 -= 1;
        if st.faults[pos].2 == 0 {
            st.faults.remove(pos);
        }
        match fault {
            Fault::TooMany { retry_after } => {
                let mut r = google_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimitExceeded",
                    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user'",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after.into());
                return Err(Answer::Raw(Box::new(r)));
            }
            Fault::Internal => {
                return Err(Answer::Raw(Box::new(google_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "backendError",
                    "Internal error encountered.",
                ))))
            }
            Fault::RevokeToken => {
                if let Some(t) = bearer(headers) {
                    st.tokens.revoke(t);
                }
            }
        }
    }
    if let Some(r) = st.tokens.refusal(headers) {
        return Err(Answer::Raw(Box::new(r)));
    }
    if route == Route::Other {
        return Err(Refusal {
            status: StatusCode::NOT_FOUND,
            reason: "notFound",
            message: "this fake does not serve that method".to_owned(),
        }
        .into());
    }
    if id != Some(st.spreadsheet_id.as_str()) {
        return Err(Refusal {
            status: StatusCode::NOT_FOUND,
            reason: "notFound",
            message: "Requested entity was not found.".to_owned(),
        }
        .into());
    }
    if body.len() > st.max_body {
        return Err(bad(format!(
            "Request payload size exceeds the limit: {} bytes.",
            st.max_body
        ))
        .into());
    }
    let json = || -> Result<Value, Answer> {
        serde_json::from_slice(body)
            .map_err(|e| bad(format!("Invalid JSON payload received. {e}")).into())
    };
    match route {
        Route::Get => Ok(get(&st)),
        Route::BatchUpdate => batch_update(&mut st, &json()?).map_err(Answer::from),
        Route::Clear => batch_clear(&mut st, &json()?).map_err(Answer::from),
        Route::Write => batch_write(&mut st, &json()?).map_err(Answer::from),
        Route::Token | Route::Other => unreachable!("handled above"),
    }
}

fn get(st: &Book) -> Value {
    let sheets: Vec<Value> = st
        .tabs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"properties": {"sheetId": t.id, "title": t.title, "index": i, "sheetType": "GRID",
                "gridProperties": {"rowCount": t.rows, "columnCount": t.cols}}})
        })
        .collect();
    json!({"spreadsheetId": st.spreadsheet_id, "sheets": sheets})
}

fn cells(tabs: &[Tab]) -> u64 {
    tabs.iter().map(|t| t.rows * t.cols).sum()
}

fn limit_refusal(i: usize, limit: u64) -> Refusal {
    bad(format!(
        "Invalid requests[{i}]: This action would increase the number of cells in the workbook above the limit of {limit} cells."
    ))
}

/// Applies the requests in order to a copy, which replaces the tabs only if all succeed.
fn batch_update(st: &mut Book, body: &Value) -> Result<Value, Refusal> {
    let requests = body["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() {
        return Err(bad("Must specify at least one request.".to_owned()));
    }
    let mut tabs = st.tabs.clone();
    let mut next_id = st.next_id;
    let mut replies = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let before = cells(&tabs);
        if let Some(add) = req.get("addSheet") {
            let props = &add["properties"];
            let title = props["title"].as_str().unwrap_or("").to_owned();
            if title.is_empty() || tabs.iter().any(|t| t.title.eq_ignore_ascii_case(&title)) {
                return Err(bad(format!(
                    "Invalid requests[{i}].addSheet: A sheet with the name \"{title}\" already exists. Please enter another name."
                )));
            }
            let rows = props["gridProperties"]["rowCount"].as_u64().unwrap_or(1000);
            let cols = props["gridProperties"]["columnCount"]
                .as_u64()
                .unwrap_or(26);
            if rows == 0 || cols == 0 {
                return Err(bad(format!(
                    "Invalid requests[{i}].addSheet: grid must have rows and columns"
                )));
            }
            let id = next_id;
            next_id += 1;
            tabs.push(Tab {
                id,
                title: title.clone(),
                rows,
                cols,
                cells: BTreeMap::new(),
                numbers: BTreeSet::new(),
                formats: Vec::new(),
            });
            replies.push(
                json!({"addSheet": {"properties": {"sheetId": id, "title": title,
                "gridProperties": {"rowCount": rows, "columnCount": cols}}}}),
            );
        } else if let Some(upd) = req.get("updateSheetProperties") {
            let fields = upd["fields"].as_str().unwrap_or("");
            if fields.is_empty() {
                return Err(bad(format!(
                    "Invalid requests[{i}].updateSheetProperties: At least one field must be updated."
                )));
            }
            let props = &upd["properties"];
            let sheet_id = props["sheetId"].as_i64().unwrap_or(0);
            let Some(tab) = tabs.iter_mut().find(|t| i64::from(t.id) == sheet_id) else {
                return Err(bad(format!(
                    "Invalid requests[{i}].updateSheetProperties: No grid with id: {sheet_id}"
                )));
            };
            let grid = &props["gridProperties"];
            let masked = |name: &str| {
                fields.split(',').any(|f| {
                    let f = f.trim();
                    f == format!("gridProperties.{name}")
                        || f == "gridProperties"
                        || f == "*"
                        || (f.starts_with("gridProperties(") && f.contains(name))
                })
            };
            for (name, dim) in [("rowCount", &mut tab.rows), ("columnCount", &mut tab.cols)] {
                if masked(name) {
                    match grid[name].as_u64() {
                        Some(n) if n > 0 => *dim = n,
                        _ => {
                            return Err(bad(format!(
                                "Invalid requests[{i}].updateSheetProperties: {name} must be at least 1"
                            )))
                        }
                    }
                }
            }
            let (rows, cols) = (tab.rows, tab.cols);
            tab.cells.retain(|&(r, c), _| r < rows && c < cols);
            tab.numbers.retain(|&(r, c)| r < rows && c < cols);
            replies.push(json!({}));
        } else if let Some(rep) = req.get("repeatCell") {
            let fields = rep["fields"].as_str().unwrap_or("");
            if fields != "userEnteredFormat.numberFormat" {
                return Err(bad(format!(
                    "Invalid requests[{i}].repeatCell: this fake takes only fields userEnteredFormat.numberFormat, got {fields:?}"
                )));
            }
            let range = &rep["range"];
            let sheet_id = range["sheetId"].as_i64().unwrap_or(0);
            let Some(tab) = tabs.iter_mut().find(|t| i64::from(t.id) == sheet_id) else {
                return Err(bad(format!(
                    "Invalid requests[{i}].repeatCell: No grid with id: {sheet_id}"
                )));
            };
            let bound = |k: &str, default: u64| range[k].as_u64().unwrap_or(default);
            let rows = (bound("startRowIndex", 0), bound("endRowIndex", tab.rows));
            let cols = (
                bound("startColumnIndex", 0),
                bound("endColumnIndex", tab.cols),
            );
            if rows.0 >= rows.1 || cols.0 >= cols.1 || rows.1 > tab.rows || cols.1 > tab.cols {
                return Err(bad(format!(
                    "Invalid requests[{i}].repeatCell: Range ({}!R{}C{}:R{}C{}) exceeds grid limits. Max rows: {}, max columns: {}",
                    tab.title, rows.0 + 1, cols.0 + 1, rows.1, cols.1, tab.rows, tab.cols
                )));
            }
            let format = &rep["cell"]["userEnteredFormat"]["numberFormat"];
            let kind = format["type"].as_str().unwrap_or("");
            if ![
                "TEXT",
                "NUMBER",
                "PERCENT",
                "CURRENCY",
                "DATE",
                "TIME",
                "DATE_TIME",
                "SCIENTIFIC",
            ]
            .contains(&kind)
            {
                return Err(bad(format!(
                    "Invalid requests[{i}].repeatCell: Invalid value at 'requests[{i}].repeat_cell.cell.user_entered_format.number_format.type' ({kind:?})"
                )));
            }
            let pattern = format["pattern"].as_str().unwrap_or("").to_owned();
            tab.formats.push((rows, cols, kind.to_owned(), pattern));
            replies.push(json!({}));
        } else {
            return Err(bad(format!(
                "Invalid requests[{i}]: this fake knows only addSheet, updateSheetProperties and repeatCell"
            )));
        }
        let after = cells(&tabs);
        if after > before && after > st.limit {
            return Err(limit_refusal(i, st.limit));
        }
    }
    st.tabs = tabs;
    st.next_id = next_id;
    Ok(json!({"spreadsheetId": st.spreadsheet_id, "replies": replies}))
}

/// A parsed A1 range: tab index and 0-based inclusive bounds.
struct A1 {
    tab: usize,
    rows: (u64, u64),
    cols: (u64, u64),
}

/// Parses `'title'`, `'title'!A1:C5` or `title!A1:C5` (quotes doubled inside quotes).
fn parse_a1(tabs: &[Tab], text: &str) -> Result<A1, Refusal> {
    let unparsable = || bad(format!("Unable to parse range: {text}"));
    let (title, cells) = if let Some(rest) = text.strip_prefix('\'') {
        let mut title = String::new();
        let mut chars = rest.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|p| p.1) == Some('\'') {
                    chars.next();
                    title.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                title.push(c);
            }
        }
        let end = end.ok_or_else(unparsable)?;
        let after = &rest[end..];
        let cells = match after.strip_prefix('!') {
            Some(c) => Some(c),
            None if after.is_empty() => None,
            None => return Err(unparsable()),
        };
        (title, cells)
    } else {
        match text.split_once('!') {
            Some((t, c)) => (t.to_owned(), Some(c)),
            None => (text.to_owned(), None),
        }
    };
    let tab = tabs
        .iter()
        .position(|t| t.title == title)
        .ok_or_else(unparsable)?;
    let t = &tabs[tab];
    let Some(cells) = cells else {
        return Ok(A1 {
            tab,
            rows: (0, t.rows - 1),
            cols: (0, t.cols - 1),
        });
    };
    let (a, b) = cells.split_once(':').unwrap_or((cells, cells));
    let (c1, r1) = cell_ref(a).ok_or_else(unparsable)?;
    let (c2, r2) = cell_ref(b).ok_or_else(unparsable)?;
    if r2 >= t.rows || c2 >= t.cols {
        return Err(bad(format!(
            "Range ({text}) exceeds grid limits. Max rows: {}, max columns: {}",
            t.rows, t.cols
        )));
    }
    Ok(A1 {
        tab,
        rows: (r1, r2),
        cols: (c1, c2),
    })
}

/// `AB12` → (col 27, row 11), 0-based.
fn cell_ref(s: &str) -> Option<(u64, u64)> {
    let split = s.find(|c: char| c.is_ascii_digit())?;
    let (letters, digits) = s.split_at(split);
    if letters.is_empty() || !letters.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let col = letters
        .bytes()
        .fold(0u64, |acc, b| acc * 26 + u64::from(b - b'A' + 1))
        - 1;
    let row: u64 = digits.parse().ok()?;
    (row > 0).then_some((col, row - 1))
}

/// 0-based column → `A`, `B`, ..., `Z`, `AA`, ...: the inverse of [`cell_ref`]'s column.
/// The fake's own, not dropsync's layout code, so that a bug there cannot hide here.
fn column_name(col: u64) -> String {
    let letter = char::from(b'A' + (col % 26) as u8);
    match col / 26 {
        0 => letter.to_string(),
        above => format!("{}{letter}", column_name(above - 1)),
    }
}

fn batch_clear(st: &mut Book, body: &Value) -> Result<Value, Refusal> {
    let ranges: Vec<String> = body["ranges"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let parsed = ranges
        .iter()
        .map(|r| parse_a1(&st.tabs, r))
        .collect::<Result<Vec<_>, _>>()?;
    for a in parsed {
        let inside =
            |r: u64, c: u64| a.rows.0 <= r && r <= a.rows.1 && a.cols.0 <= c && c <= a.cols.1;
        let tab = &mut st.tabs[a.tab];
        tab.cells.retain(|&(r, c), _| !inside(r, c));
        tab.numbers.retain(|&(r, c)| !inside(r, c));
    }
    Ok(json!({"spreadsheetId": st.spreadsheet_id, "clearedRanges": ranges}))
}

/// Validates every range before writing any, as Google does.
fn batch_write(st: &mut Book, body: &Value) -> Result<Value, Refusal> {
    match body["valueInputOption"].as_str() {
        Some("RAW") => {}
        Some(other) => {
            return Err(bad(format!(
                "this fake takes only valueInputOption RAW, got {other}"
            )))
        }
        None => {
            return Err(bad(
                "'valueInputOption' is required but not specified".to_owned()
            ))
        }
    }
    let data = body["data"].as_array().cloned().unwrap_or_default();
    let mut writes = Vec::new();
    for vr in &data {
        if vr["majorDimension"].as_str().is_some_and(|d| d != "ROWS") {
            return Err(bad("this fake takes only majorDimension ROWS".to_owned()));
        }
        let text = vr["range"].as_str().unwrap_or("");
        let a = parse_a1(&st.tabs, text)?;
        let rows = vr["values"].as_array().cloned().unwrap_or_default();
        let height = a.rows.1 - a.rows.0 + 1;
        let width = a.cols.1 - a.cols.0 + 1;
        if rows.len() as u64 > height {
            return Err(bad(format!(
                "Requested writing within range [{text}], but tried writing to row [{}]",
                a.rows.0 + rows.len() as u64
            )));
        }
        for row in &rows {
            let cells = row.as_array().cloned().unwrap_or_default();
            if cells
                .iter()
                .any(|c| c.as_str().is_some_and(|t| t.chars().count() > 50_000))
            {
                return Err(bad(
                    "Your input contains more than the maximum of 50000 characters in a single cell."
                        .to_owned(),
                ));
            }
            if cells.len() as u64 > width {
                return Err(bad(format!(
                    "Requested writing within range [{text}], but tried writing to column [{}]",
                    column_name(a.cols.0 + cells.len() as u64 - 1)
                )));
            }
        }
        writes.push((a, rows));
    }
    let mut updated = 0u64;
    for (a, rows) in writes {
        let tab = &mut st.tabs[a.tab];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.as_array().into_iter().flatten().enumerate() {
                let at = (a.rows.0 + r as u64, a.cols.0 + c as u64);
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                if v.is_number() {
                    tab.numbers.insert(at);
                } else {
                    tab.numbers.remove(&at);
                }
                tab.cells.insert(at, text);
                updated += 1;
            }
        }
    }
    Ok(json!({"spreadsheetId": st.spreadsheet_id, "totalUpdatedCells": updated}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(title: &str, rows: u64, cols: u64) -> Tab {
        Tab {
            id: 1,
            title: title.into(),
            rows,
            cols,
            cells: BTreeMap::new(),
            numbers: BTreeSet::new(),
            formats: Vec::new(),
        }
    }

    #[test]
    fn a1_ranges_parse_and_check_the_grid() {
        let tabs = [tab("it's", 10, 3), tab("plain", 5, 5)];
        let a = parse_a1(&tabs, "'it''s'!A2:C10").unwrap_or_else(|r| panic!("{}", r.message));
        assert_eq!((a.tab, a.rows, a.cols), (0, (1, 9), (0, 2)));
        let a = parse_a1(&tabs, "'plain'").unwrap_or_else(|r| panic!("{}", r.message));
        assert_eq!((a.tab, a.rows, a.cols), (1, (0, 4), (0, 4)));
        let e = parse_a1(&tabs, "'it''s'!A1:C2000")
            .err()
            .expect("beyond the grid");
        assert!(e.message.contains("exceeds grid limits"), "{}", e.message);
        assert!(parse_a1(&tabs, "'nope'!A1").is_err());
        assert_eq!(cell_ref("AB12"), Some((27, 11)));
    }

    #[test]
    fn column_names_invert_cell_refs() {
        for (col, name) in [
            (0, "A"),
            (25, "Z"),
            (26, "AA"),
            (27, "AB"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_name(col), name);
            assert_eq!(cell_ref(&format!("{name}1")), Some((col, 0)));
        }
    }
}
