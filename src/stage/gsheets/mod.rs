//! Google Sheets staging: for analysts who work in Sheets, the staging tables of the last
//! accepted run as one spreadsheet per workspace, a sheet per entity plus `rejects` and
//! `summary`, each rewritten whole by [`publish`].
//!
//! # Sheets v4 calls (all with `Authorization: Bearer <token>`, scope `spreadsheets`)
//! 1. `spreadsheets.get` with `fields=sheets.properties(sheetId,title,gridProperties)`: which
//!    tabs exist and how big their grids are.
//! 2. `spreadsheets.batchUpdate` (one request, only when something changes): every shrink
//!    first, then `addSheet` for missing tabs and the grows, via `updateSheetProperties` with
//!    `fields=gridProperties.rowCount,gridProperties.columnCount`, so each managed grid is
//!    exactly header + rows wide and high. Shrinks go first because Google's limit of
//!    10,000,000 cells per spreadsheet counts grid cells, filled or not, at every step.
//! 3. `values.batchClear` of the managed tabs that already existed (stale cells inside the
//!    new grid).
//! 4. `values.batchUpdate` with `valueInputOption=RAW`, the rows split into requests of at
//!    most `max_request_bytes` of JSON, several tabs per request when they are small: Google
//!    allows about 60 write requests per minute per user, so few big requests are better.
//!
//! Tabs that are not ours (analysts' own) are never touched, but their grids count against
//! the cell limit; when everything does not fit, entity sheets are cut (see `budget.rs`) and
//! end in a marker row that says where the full data is. Every cell passes through
//! [`neutralize`](crate::stage::workbook::neutralize): RAW stops formulas in Sheets, but
//! analysts export tabs to CSV and open them in Excel.
//!
//! # Retries and credentials
//! As for the Drive source (`crate::support::google`, through the one retry policy of
//! `crate::support::retry`): 429 waits for `Retry-After` or backs off, 5xx, timeouts and
//! connection errors back off with jitter, up to `max_retries` per call; a 401 fetches one
//! fresh token. Re-sending a write is harmless: it writes the same cells again.
//!
//! # Limits
//! Titles are matched exactly (Google compares them case-insensitively, so a tab `Clientes`
//! beside a grid `clientes` makes `addSheet` fail with a clear 400). Between the clear and
//! the last write, readers see a partly filled sheet. A cell over Google's 50,000-character
//! limit is cut, ending in `…`. A structural `batchUpdate` that Google applied but whose
//! answer was lost is retried and then refused (the tab already exists): that publish fails
//! and the next one, which sees the new tab, succeeds. A managed tab with more frozen rows
//! or columns than its new size cannot shrink; Google's 400 says so.

mod budget;
mod frames;
mod layout;

pub use self::frames::staging_grids;
pub use crate::stage::workbook::SheetInput;

pub use crate::support::google::RetryTiming;

use std::cell::Cell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use google_sheets4::api::{
    BatchClearValuesRequest, BatchUpdateSpreadsheetRequest, BatchUpdateValuesRequest, Scope,
    ValueRange,
};
use google_sheets4::Sheets;

use crate::support::google::auth::{self, KeyError};
use crate::support::google::call::{classify, Call, Failure, TryError};
use crate::support::google::{Connector, Session, SessionError};
use crate::support::retry::Failed;

use self::budget::Need;
use self::layout::{Existing, Part, Planned};

pub use crate::config::specs::GsheetsSpec;

const DEFAULT_API_BASE: &str = "https://sheets.googleapis.com/";
/// Partial response of `spreadsheets.get`: no cell data, only what sizing needs.
const GET_FIELDS: &str = "sheets.properties(sheetId,title,gridProperties)";
/// Google refuses longer sheet titles.
const MAX_TITLE_CHARS: usize = 100;
/// Sheets kept whole while entity sheets can still be cut: they explain the run.
const KEPT_WHOLE: [&str; 2] = ["rejects", "summary"];

/// One sheet to publish: a header and rows of text, as staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// The tab's title: the entity's name, `rejects` or `summary`.
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Per column, what its cells hold, so Sheets gets numbers and dates analysts can sum and
    /// sort rather than text; a column past the end (or `None`) is text.
    pub kinds: Vec<Option<CellKind>>,
}

/// A typed column: its text cells are sent as numbers (dates as Sheets' serial day numbers,
/// the same 1899-12-30 epoch as Excel), and amounts, dates and datetimes get a number format
/// (`repeatCell`) so they display like the workbook's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    Integer,
    /// An exact decimal with this many decimals: `#,##0.00` for 2.
    Amount {
        scale: usize,
    },
    Date,
    DateTime,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// One per grid, in the order given.
    pub sheets: Vec<SheetReport>,
    /// HTTP requests to the Sheets API, retries included (token requests not counted).
    pub requests: usize,
    /// Of those, how many were retries.
    pub retries: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetReport {
    pub title: String,
    /// Data rows in the grid (header not counted).
    pub rows_total: usize,
    /// Data rows written; fewer than `rows_total` when the cell limit cut the sheet.
    pub rows_written: usize,
}

/// What went wrong, naming the call, the sheet or the setting at fault and what to do.
/// Never quotes a token or the key file's content.
#[derive(Debug, thiserror::Error)]
pub enum GsheetsError {
    #[error("[staging.gsheets] `{field}`: {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    #[error("Google Sheets staging: sheet `{title}`: {problem}")]
    BadGrid { title: String, problem: String },
    #[error("Google Sheets staging: environment variable {var} is not set or empty; set it to the path of the service-account key JSON (the variable is named by key_file_env in [staging.gsheets])")]
    MissingEnv { var: String },
    #[error("Google Sheets staging: cannot read the key file {path} (named by {var}): {source}; check the path and its permissions")]
    KeyFile {
        var: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Google Sheets staging: the key file {path} is not usable: {message}; download a JSON key for the service account from the Cloud Console")]
    KeyFormat { path: PathBuf, message: String },
    #[error("Google Sheets staging: cannot set up the HTTP client: {message}")]
    Setup { message: String },
    #[error("Google Sheets staging: {call}: no access token for {principal} ({message}); check that the key in {key_path} is valid and not revoked, and that its token_uri is reachable")]
    Auth {
        call: String,
        principal: String,
        key_path: PathBuf,
        message: String,
    },
    #[error("Google Sheets staging: {call} failed with HTTP {status}: {message}; {hint}")]
    Api {
        call: String,
        status: u16,
        message: String,
        hint: String,
    },
    #[error("Google Sheets staging: {call} still failing after {tries} tries ({last}); the next accepted run publishes again, raise max_retries if this is frequent")]
    GaveUp {
        call: String,
        tries: u32,
        last: String,
    },
    #[error(
        "Google Sheets staging: {call}: {message}; is api_base pointing at the Sheets v4 API?"
    )]
    Protocol { call: String, message: String },
    #[error("Google Sheets staging: spreadsheet `{spreadsheet_id}` has no room: headers alone need {least} cells, but its other tabs ({other_cells} cells) leave {available} of max_cells {max_cells}; remove or shrink those tabs, or use another spreadsheet")]
    NoRoom {
        spreadsheet_id: String,
        least: u64,
        available: u64,
        other_cells: u64,
        max_cells: u64,
    },
}

/// Publishes `grids` to the spreadsheet of `spec` (see the module doc). Blocking: it runs
/// its own tokio runtime, so call it outside async code.
pub fn publish(spec: &GsheetsSpec, grids: &[Grid]) -> Result<PublishReport, GsheetsError> {
    publish_with(spec, grids, RetryTiming::default())
}

/// [`publish`] with other retry pauses and timeouts (tests use milliseconds).
pub fn publish_with(
    spec: &GsheetsSpec,
    grids: &[Grid],
    timing: RetryTiming,
) -> Result<PublishReport, GsheetsError> {
    check(spec, grids)?;
    let c = connect(spec, timing)?;
    c.runtime.block_on(c.publisher.run(grids))
}

/// `dropsync check`'s test of the Sheets setup: the key gives a token and the spreadsheet
/// is readable (one `spreadsheets.get`, nothing written). Says which tabs it has.
pub fn probe(spec: &GsheetsSpec) -> Result<String, GsheetsError> {
    probe_with(spec, RetryTiming::default())
}

pub fn probe_with(spec: &GsheetsSpec, timing: RetryTiming) -> Result<String, GsheetsError> {
    check(spec, &[])?;
    let c = connect(spec, timing)?;
    let tabs = c.runtime.block_on(c.publisher.sheets_now())?;
    let cells: u64 = tabs.iter().map(|t| t.rows * t.cols).sum();
    Ok(format!(
        "spreadsheet {} readable as {}: {} tab(s) ({}), {cells} of {} cells used",
        spec.spreadsheet_id,
        c.publisher.principal,
        tabs.len(),
        tabs.iter()
            .map(|t| t.title.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        spec.max_cells
    ))
}

/// A publisher and the runtime its connections live on. Field order matters: the publisher
/// (its hub's pooled connections) is dropped before the runtime.
struct Connected<'a> {
    publisher: Publisher<'a>,
    runtime: tokio::runtime::Runtime,
}

fn connect(spec: &GsheetsSpec, timing: RetryTiming) -> Result<Connected<'_>, GsheetsError> {
    let api_base = crate::support::google::api_base(spec.api_base.as_deref(), DEFAULT_API_BASE)
        .map_err(|raw| GsheetsError::Config {
            field: "api_base",
            problem: format!(
                "`{raw}` is not an http:// or https:// URL; remove it to use {DEFAULT_API_BASE}"
            ),
        })?;
    let (key_path, key) = auth::load_key(&spec.key_file_env).map_err(|e| match e {
        KeyError::MissingEnv { var } => GsheetsError::MissingEnv { var },
        KeyError::Read { var, path, source } => GsheetsError::KeyFile { var, path, source },
        KeyError::Format { path, message } => GsheetsError::KeyFormat { path, message },
    })?;
    let session = Session::new(&key, &api_base, "dropsync-gsheets", timing.request_timeout)
        .map_err(|e| match e {
            SessionError::Setup(message) => GsheetsError::Setup { message },
            SessionError::Key(message) => GsheetsError::KeyFormat {
                path: key_path.clone(),
                message,
            },
        })?;
    let mut hub = Sheets::new(session.client, session.tokens);
    hub.base_url(api_base.clone());
    hub.root_url(api_base);
    hub.user_agent(format!("dropsync/{}", env!("CARGO_PKG_VERSION")));
    Ok(Connected {
        publisher: Publisher {
            spec,
            hub,
            timing,
            force_refresh: session.force_refresh,
            principal: key.principal(),
            key_path,
            requests: Cell::new(0),
            retries: Cell::new(0),
        },
        runtime: session.runtime,
    })
}

/// Checks what needs no network, so a bad recipe or caller fails before any call.
fn check(spec: &GsheetsSpec, grids: &[Grid]) -> Result<(), GsheetsError> {
    let config = |field, problem: &str| GsheetsError::Config {
        field,
        problem: problem.to_owned(),
    };
    if spec.spreadsheet_id.trim().is_empty() {
        return Err(config(
            "spreadsheet_id",
            "is empty; set it to the part of the spreadsheet's URL after /d/",
        ));
    }
    if spec.key_file_env.trim().is_empty() {
        return Err(config(
            "key_file_env",
            "is empty; name the environment variable that holds the key file's path",
        ));
    }
    if spec.max_request_bytes == 0 {
        return Err(config("max_request_bytes", "must be above 0"));
    }
    let mut seen = HashSet::new();
    for g in grids {
        let bad = |problem: &str| GsheetsError::BadGrid {
            title: g.title.clone(),
            problem: problem.to_owned(),
        };
        if g.title.trim().is_empty() {
            return Err(bad("the title is empty"));
        }
        if g.title.chars().count() > MAX_TITLE_CHARS {
            return Err(bad("the title is longer than Google's 100 characters"));
        }
        if !seen.insert(g.title.as_str()) {
            return Err(bad("two grids have this title"));
        }
    }
    Ok(())
}

/// Width of a grid's tab: the widest of header and rows, at least 1 (Google has no
/// zero-column grids).
fn width(g: &Grid) -> usize {
    g.rows
        .iter()
        .map(Vec::len)
        .chain([g.header.len(), 1])
        .max()
        .unwrap_or(1)
}

/// Runs one generated call (`$call`, built anew for each try from the hub and a clone of
/// the request body `$val`) under the one retry policy (`crate::support::retry`), then counts
/// its tries and maps its failure. A macro because each generated call is its own type with
/// the same inherent methods.
macro_rules! retried {
    ($publisher:expr, $call_state:ident, |$hub:ident $(, $arg:ident = $val:ident)?| $call:expr) => {{
        let tries = Cell::new(0usize);
        let timeout = $publisher.timing.request_timeout;
        let result = $publisher
            .timing
            .policy($publisher.spec.max_retries)
            .run(
                $call_state.what(),
                || {
                    tries.set(tries.get() + 1);
                    let mut dlg = $call_state.delegate();
                    let $hub = &$publisher.hub;
                    $(let $arg = $val.clone();)?
                    $call_state.attempt(timeout, async move {
                        $call
                            .add_scope(Scope::Spreadsheet)
                            .delegate(&mut dlg)
                            .doit()
                            .await
                    })
                },
                TryError::verdict,
            )
            .await;
        $publisher.finish(&$call_state, tries.get(), result)
    }};
}

struct Publisher<'a> {
    spec: &'a GsheetsSpec,
    hub: Sheets<Connector>,
    timing: RetryTiming,
    force_refresh: Arc<AtomicBool>,
    principal: String,
    key_path: PathBuf,
    requests: Cell<usize>,
    retries: Cell<usize>,
}

impl Publisher<'_> {
    async fn run(&self, grids: &[Grid]) -> Result<PublishReport, GsheetsError> {
        let started = Instant::now();
        let id = self.spec.spreadsheet_id.as_str();
        let existing = self.sheets_now().await?;
        let managed: HashSet<&str> = grids.iter().map(|g| g.title.as_str()).collect();
        let other_cells: u64 = existing
            .iter()
            .filter(|e| !managed.contains(e.title.as_str()))
            .map(|e| e.rows * e.cols)
            .sum();
        let needs: Vec<Need> = grids
            .iter()
            .map(|g| Need {
                rows: g.rows.len() as u64,
                cols: width(g) as u64,
                keep_whole: KEPT_WHOLE.contains(&g.title.as_str()),
            })
            .collect();
        let written = budget::allot(&needs, other_cells, self.spec.max_cells).map_err(|e| {
            GsheetsError::NoRoom {
                spreadsheet_id: id.to_owned(),
                least: e.least,
                available: e.available,
                other_cells,
                max_cells: self.spec.max_cells,
            }
        })?;
        let planned: Vec<Planned> = grids
            .iter()
            .zip(&written)
            .map(|(grid, &w)| {
                let w = w as usize;
                let more = grid.rows.len() - w;
                if more > 0 {
                    tracing::warn!(
                        spreadsheet_id = id,
                        sheet = %grid.title,
                        rows_written = w,
                        rows_total = grid.rows.len(),
                        max_cells = self.spec.max_cells,
                        "sheet cut to fit the spreadsheet's cell limit; the full data is in staging.sqlite"
                    );
                }
                let p = Planned {
                    grid,
                    cols: width(grid),
                    written: w,
                    marker: (more > 0).then(|| layout::marker(more, self.spec.max_cells)),
                };
                let overlong = p.overlong();
                if overlong > 0 {
                    tracing::warn!(
                        spreadsheet_id = id,
                        sheet = %grid.title,
                        cells = overlong,
                        max_chars = layout::MAX_CELL_CHARS,
                        "cells over Google's per-cell limit were cut; the full text is in staging.sqlite"
                    );
                }
                p
            })
            .collect();

        let now: Vec<Option<&Existing>> = grids
            .iter()
            .map(|g| existing.iter().find(|e| e.title == g.title))
            .collect();
        let wanted: Vec<(&str, u64, u64)> = planned
            .iter()
            .map(|p| (p.grid.title.as_str(), p.grid_rows() as u64, p.cols as u64))
            .collect();
        let structure = layout::resize_requests(&wanted, &now);
        let added = if structure.is_empty() {
            Vec::new()
        } else {
            self.batch_update(structure, "addSheet/resize").await?
        };
        let sheet_ids: Vec<Option<i32>> = grids
            .iter()
            .zip(&now)
            .map(|(g, e)| {
                e.map(|e| e.sheet_id)
                    .or_else(|| added.iter().find(|(t, _)| *t == g.title).map(|(_, i)| *i))
            })
            .collect();
        let stale: Vec<String> = grids
            .iter()
            .zip(&now)
            .filter(|(_, e)| e.is_some())
            .map(|(g, _)| layout::quoted(&g.title))
            .collect();
        if !stale.is_empty() {
            self.clear(stale).await?;
        }
        for chunk in layout::chunks(&planned, self.spec.max_request_bytes) {
            self.write(&planned, &chunk).await?;
        }
        let formats = layout::format_requests(&planned, &sheet_ids);
        if !formats.is_empty() {
            self.batch_update(formats, "number format").await?;
        }

        let report = PublishReport {
            sheets: planned
                .iter()
                .map(|p| SheetReport {
                    title: p.grid.title.clone(),
                    rows_total: p.grid.rows.len(),
                    rows_written: p.written,
                })
                .collect(),
            requests: self.requests.get(),
            retries: self.retries.get(),
        };
        tracing::info!(
            spreadsheet_id = id,
            sheets = report.sheets.len(),
            rows_written = report.sheets.iter().map(|s| s.rows_written).sum::<usize>(),
            cut = report
                .sheets
                .iter()
                .filter(|s| s.rows_written < s.rows_total)
                .count(),
            requests = report.requests,
            retries = report.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "staging published to Google Sheets"
        );
        Ok(report)
    }

    fn call(&self, what: String) -> Call {
        Call::new(what, self.force_refresh.clone())
    }

    /// Counts the tries of a finished call and turns its failure into our error.
    fn finish<T>(
        &self,
        call: &Call,
        tries: usize,
        result: Result<T, Failed<TryError>>,
    ) -> Result<T, GsheetsError> {
        self.requests.set(self.requests.get() + tries);
        self.retries
            .set(self.retries.get() + tries.saturating_sub(1));
        result.map_err(|failed| self.call_error(call, failed))
    }

    /// Every tab with its grid size; tabs without a grid (chart sheets) count as 0 cells.
    async fn sheets_now(&self) -> Result<Vec<Existing>, GsheetsError> {
        let id = self.spec.spreadsheet_id.as_str();
        let call = self.call("spreadsheets.get".to_owned());
        let (_, book) = retried!(self, call, |hub| hub
            .spreadsheets()
            .get(id)
            .param("fields", GET_FIELDS))?;
        let mut out = Vec::new();
        for sheet in book.sheets.unwrap_or_default() {
            let Some(p) = sheet.properties else { continue };
            let (Some(sheet_id), Some(title)) = (p.sheet_id, p.title) else {
                return Err(GsheetsError::Protocol {
                    call: call.what().to_owned(),
                    message: "a sheet came back without sheetId or title".to_owned(),
                });
            };
            let g = p.grid_properties.unwrap_or_default();
            let size = |n: Option<i32>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            out.push(Existing {
                sheet_id,
                title,
                rows: size(g.row_count),
                cols: size(g.column_count),
            });
        }
        Ok(out)
    }

    /// One `spreadsheets.batchUpdate`; the sheet IDs of the tabs it added, by title.
    async fn batch_update(
        &self,
        requests: Vec<google_sheets4::api::Request>,
        kind: &str,
    ) -> Result<Vec<(String, i32)>, GsheetsError> {
        let id = self.spec.spreadsheet_id.as_str();
        let what = format!(
            "spreadsheets.batchUpdate ({} {kind} requests)",
            requests.len()
        );
        let call = self.call(what);
        let body = BatchUpdateSpreadsheetRequest {
            requests: Some(requests),
            ..Default::default()
        };
        retried!(self, call, |hub, body = body| hub.spreadsheets().batch_update(body, id)).map(
            |(_, answer)| {
                answer
                    .replies
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| {
                        let p = r.add_sheet?.properties?;
                        Some((p.title?, p.sheet_id?))
                    })
                    .collect()
            },
        )
    }

    async fn clear(&self, ranges: Vec<String>) -> Result<(), GsheetsError> {
        let id = self.spec.spreadsheet_id.as_str();
        let call = self.call(format!("values.batchClear {}", ranges.join(", ")));
        let body = BatchClearValuesRequest {
            ranges: Some(ranges),
        };
        retried!(self, call, |hub, body = body| hub.spreadsheets().values_batch_clear(body, id))
            .map(drop)
    }

    /// One `values.batchUpdate` with the rows of `chunk`.
    async fn write(&self, planned: &[Planned<'_>], chunk: &[Part]) -> Result<(), GsheetsError> {
        let id = self.spec.spreadsheet_id.as_str();
        let what = chunk
            .iter()
            .map(|p| {
                format!(
                    "{} rows {}-{}",
                    layout::quoted(&planned[p.sheet].grid.title),
                    p.first + 1,
                    p.end
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let call = self.call(format!("values.batchUpdate {what}"));
        let data: Vec<ValueRange> = chunk
            .iter()
            .map(|p| {
                let sheet = &planned[p.sheet];
                ValueRange {
                    range: Some(layout::range(
                        &sheet.grid.title,
                        p.first + 1,
                        p.end,
                        sheet.cols,
                    )),
                    major_dimension: Some("ROWS".to_owned()),
                    values: Some((p.first..p.end).map(|i| sheet.row(i)).collect()),
                }
            })
            .collect();
        let body = BatchUpdateValuesRequest {
            value_input_option: Some("RAW".to_owned()),
            data: Some(data),
            ..Default::default()
        };
        retried!(self, call, |hub, body = body| hub.spreadsheets().values_batch_update(body, id))
            .map(drop)
    }

    fn call_error(&self, call: &Call, failed: Failed<TryError>) -> GsheetsError {
        let call = call.what().to_owned();
        match classify(failed) {
            Failure::GaveUp { tries, last } => GsheetsError::GaveUp { call, tries, last },
            Failure::Auth(message) => GsheetsError::Auth {
                call,
                principal: self.principal.clone(),
                key_path: self.key_path.clone(),
                message,
            },
            Failure::Protocol(message) => GsheetsError::Protocol { call, message },
            Failure::Api {
                status, message, ..
            } => GsheetsError::Api {
                hint: self.hint(status),
                call,
                status,
                message,
            },
        }
    }

    fn hint(&self, status: u16) -> String {
        let id = &self.spec.spreadsheet_id;
        match status {
            401 => format!(
                "Google refused even a freshly issued token; check that the key in {} is current and the Sheets API is enabled for its project",
                self.key_path.display()
            ),
            403 => format!(
                "share the spreadsheet `{id}` with {} as Editor and enable the Sheets API for the key's project",
                self.principal
            ),
            404 => format!("check spreadsheet_id `{id}` in [staging.gsheets] (the part of the spreadsheet's URL after /d/)"),
            400 => "the spreadsheet may have changed during the publish (a tab added, renamed or resized), or a request was too big (lower max_request_bytes); the next accepted run publishes again".to_owned(),
            _ => "the next accepted run publishes again".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> Result<GsheetsSpec, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn spec_defaults_and_unknown_keys() {
        let s = spec("spreadsheet_id = \"abc\"").expect("minimal spec");
        assert_eq!(s.key_file_env, "DROPSYNC_GSHEETS_KEY");
        assert_eq!(s.max_retries, 5);
        assert_eq!(s.max_cells, 10_000_000);
        assert_eq!(s.max_request_bytes, 4 * 1024 * 1024);
        assert_eq!(s.api_base, None);
        let err =
            spec("spreadsheet_id = \"abc\"\nkey_file = \"/k.json\"").expect_err("unknown key");
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn pipeline_toml_takes_a_gsheets_table() {
        let file: crate::config::files::PipelineFile =
            toml::from_str("[staging.gsheets]\nspreadsheet_id = \"abc\"\nmax_cells = 500\n")
                .expect("pipeline.toml");
        let g = file.staging.gsheets.expect("gsheets");
        assert_eq!((g.spreadsheet_id.as_str(), g.max_cells), ("abc", 500));
        let file: crate::config::files::PipelineFile = toml::from_str("").expect("empty");
        assert!(file.staging.gsheets.is_none());
    }

    #[test]
    fn bad_titles_and_settings_fail_before_any_call() {
        let s = spec("spreadsheet_id = \"abc\"").expect("spec");
        let grid = |t: &str| Grid {
            title: t.into(),
            header: vec![],
            rows: vec![],
            kinds: Vec::new(),
        };
        let err = check(&s, &[grid("a"), grid("a")]).expect_err("duplicate");
        assert!(err.to_string().contains("`a`"), "{err}");
        assert!(check(&s, &[grid(" ")]).is_err());
        assert!(check(&s, &[grid(&"x".repeat(101))]).is_err());
        let mut empty = s.clone();
        empty.spreadsheet_id = String::new();
        let err = check(&empty, &[]).expect_err("no id");
        assert!(err.to_string().contains("spreadsheet_id"), "{err}");
    }

    #[test]
    fn width_is_the_widest_row() {
        let g = Grid {
            title: "t".into(),
            header: vec!["a".into()],
            rows: vec![vec!["1".into(), "2".into(), "3".into()]],
            kinds: Vec::new(),
        };
        assert_eq!(width(&g), 3);
        let empty = Grid {
            title: "t".into(),
            header: vec![],
            rows: vec![],
            kinds: Vec::new(),
        };
        assert_eq!(width(&empty), 1);
    }
}
