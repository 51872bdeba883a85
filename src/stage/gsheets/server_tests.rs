//! `publish` against the fake Sheets API (`dropsync_testkit::sheets`): real HTTP, real token
//! grant, real google-sheets4 and yup-oauth2 code. Google's API cannot be reached offline (nor
//! should tests write to a real spreadsheet), so every test here runs against that local fake.

use std::time::Duration;

use dropsync_testkit::google::key_in_env;
use dropsync_testkit::sheets::{FakeSheets, Fault, Route};

use super::{publish_with, Grid, GsheetsError, GsheetsSpec, PublishReport, RetryTiming};

const SPREADSHEET: &str = "sheet-book-1";
const EMAIL: &str = "dropsync-sheets@example-project.iam.gserviceaccount.com";

struct Setup {
    sheets: FakeSheets,
    _dir: tempfile::TempDir,
    var: String,
}

impl Setup {
    /// A new spreadsheet: one `Sheet1` tab of `first_tab` (rows, cols).
    fn new(first_tab: (u64, u64)) -> Self {
        let sheets = FakeSheets::start(SPREADSHEET, EMAIL, first_tab);
        let dir = tempfile::tempdir().expect("tempdir");
        let var = key_in_env(
            dir.path(),
            EMAIL,
            &sheets.token_uri(),
            "DROPSYNC_GSHEETS_TEST_KEY",
        );
        Setup {
            sheets,
            _dir: dir,
            var,
        }
    }

    fn spec(&self) -> GsheetsSpec {
        GsheetsSpec {
            spreadsheet_id: SPREADSHEET.into(),
            key_file_env: self.var.clone(),
            api_base: Some(self.sheets.base()),
            max_retries: 3,
            max_cells: 10_000_000,
            max_request_bytes: 4 * 1024 * 1024,
        }
    }

    fn publish(&self, spec: &GsheetsSpec, grids: &[Grid]) -> Result<PublishReport, GsheetsError> {
        publish_with(spec, grids, fast())
    }

    /// A tab as `values.get` would give it back: header first.
    fn read(&self, title: &str) -> Vec<Vec<String>> {
        self.sheets.values(title)
    }

    fn statuses(&self, route: Route) -> Vec<u16> {
        self.sheets
            .route_hits(route)
            .iter()
            .map(|h| h.status)
            .collect()
    }

    /// Requests the fake refused on its own (not programmed faults).
    fn refusals(&self) -> Vec<String> {
        self.sheets
            .hits()
            .into_iter()
            .filter(|h| h.status >= 400)
            .map(|h| {
                format!(
                    "{:?} {}: {}",
                    h.route,
                    h.status,
                    h.message.unwrap_or_default()
                )
            })
            .collect()
    }
}

fn fast() -> RetryTiming {
    RetryTiming {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        max_retry_after: Duration::from_secs(5),
    }
}

fn grid(title: &str, header: &[&str], rows: usize) -> Grid {
    Grid {
        title: title.into(),
        header: header.iter().map(|h| (*h).to_owned()).collect(),
        rows: (0..rows)
            .map(|r| header.iter().map(|h| format!("{h}-{r}")).collect())
            .collect(),
    }
}

/// The grid as it should read back: header then rows, every cell neutralised, trailing
/// empty cells dropped as Google's `values.get` does.
fn expected(g: &Grid) -> Vec<Vec<String>> {
    std::iter::once(&g.header)
        .chain(&g.rows)
        .map(|row| {
            let mut r: Vec<String> = row
                .iter()
                .map(|c| crate::stage::workbook::neutralize(c).into_owned())
                .collect();
            while r.last().is_some_and(String::is_empty) {
                r.pop();
            }
            r
        })
        .collect()
}

fn five_grids(scale: usize) -> Vec<Grid> {
    let mut clientes = grid("clientes", &["id", "nombre", "email"], 20 * scale);
    clientes.rows[0][1] = "=HYPERLINK(\"http://x\")".into();
    clientes.rows[1][2] = "@admin".into();
    vec![
        clientes,
        grid("unidades", &["vin", "modelo"], 15 * scale),
        grid("ventas", &["id", "importe", "fecha", "cliente"], 30 * scale),
        grid("rejects", &["row_number", "field", "rule", "message"], 4),
        grid("summary", &["entity", "status", "read", "accepted"], 3),
    ]
}

/// Runs against the local fake (Google's API cannot be reached offline): an empty
/// spreadsheet gets a tab per grid, each holding exactly its header and rows.
#[test]
fn gsheets_publish_creates_sheets_and_writes_every_value() {
    let s = Setup::new((1000, 26));
    let grids = five_grids(1);
    let report = s.publish(&s.spec(), &grids).expect("publish");

    assert_eq!(
        s.sheets.titles(),
        ["Sheet1", "clientes", "unidades", "ventas", "rejects", "summary"]
    );
    for g in &grids {
        assert_eq!(s.read(&g.title), expected(g), "{}", g.title);
        let cols = g.header.len() as u64;
        assert_eq!(
            s.sheets.grid(&g.title),
            Some((1 + g.rows.len() as u64, cols))
        );
    }
    assert_eq!(report.sheets.len(), 5);
    assert!(report.sheets.iter().all(|r| r.rows_written == r.rows_total));
    assert_eq!(report.retries, 0);
    // get, one structural batchUpdate, one write: nothing to clear in a new spreadsheet.
    assert_eq!(report.requests, 3);
    let get = s.sheets.route_hits(Route::Get);
    assert!(
        get[0].query.contains("fields=sheets.properties"),
        "{}",
        get[0].query
    );
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());
}

/// Runs against the local fake (Google's API cannot be reached offline): formula-looking
/// cells arrive with a leading apostrophe, so a CSV export opened in Excel stays inert.
#[test]
fn gsheets_formula_cells_get_an_apostrophe() {
    let s = Setup::new((1, 1));
    let g = Grid {
        title: "clientes".into(),
        header: vec!["=id".into(), "nombre".into()],
        rows: vec![
            vec!["1".into(), "=1+1".into()],
            vec!["2".into(), "+54 11 5555".into()],
            vec!["3".into(), "-5".into()],
            vec!["4".into(), "@SUM(A1)".into()],
            vec!["5".into(), "\tx".into()],
            vec!["6".into(), "a=b".into()],
        ],
    };
    s.publish(&s.spec(), std::slice::from_ref(&g))
        .expect("publish");
    let got = s.read("clientes");
    assert_eq!(got[0], ["'=id", "nombre"]);
    let col: Vec<&str> = got[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        col,
        ["'=1+1", "'+54 11 5555", "'-5", "'@SUM(A1)", "'\tx", "a=b"]
    );
}

/// Runs against the local fake (Google's API cannot be reached offline): a second publish
/// with fewer rows and other columns leaves no stale cell and shrinks the grids, and an
/// analyst's own tab is not touched.
#[test]
fn gsheets_republish_leaves_nothing_stale_and_keeps_other_tabs() {
    let s = Setup::new((5, 5));
    s.publish(&s.spec(), &five_grids(3)).expect("first publish");
    s.sheets
        .put_tab("mis notas", &[&["=A1*2", "nota"], &["x", "y"]]);
    let notes_before = s.read("mis notas");
    let notes_grid = s.sheets.grid("mis notas");

    let mut second = five_grids(1);
    // `unidades` loses a column and gains another; ragged row shorter than the header.
    second[1] = grid("unidades", &["vin", "color"], 5);
    second[1].rows[2].pop();
    second[2].rows.truncate(2);
    let report = s.publish(&s.spec(), &second).expect("second publish");

    for g in &second {
        assert_eq!(s.read(&g.title), expected(g), "{}", g.title);
        let cols = g.header.len() as u64;
        assert_eq!(
            s.sheets.grid(&g.title),
            Some((1 + g.rows.len() as u64, cols)),
            "{}",
            g.title
        );
    }
    assert_eq!(s.read("mis notas"), notes_before);
    assert_eq!(s.sheets.grid("mis notas"), notes_grid);
    assert_eq!(s.sheets.grid("Sheet1"), Some((5, 5)));
    // get, resize, clear, write.
    assert_eq!(report.requests, 4);
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());
}

/// Runs against the local fake (Google's API cannot be reached offline): a grid bigger than
/// `max_request_bytes` goes out in several writes, each under the fake's body limit, and
/// reads back whole.
#[test]
fn gsheets_big_grid_is_written_in_several_requests() {
    let s = Setup::new((1, 1));
    let big = grid("ventas", &["id", "importe", "descripcion"], 2000);
    let mut spec = s.spec();
    spec.max_request_bytes = 16 * 1024;
    s.sheets.set_max_body(spec.max_request_bytes + 4096);
    let report = s
        .publish(&spec, std::slice::from_ref(&big))
        .expect("publish");

    let writes = s.sheets.route_hits(Route::Write);
    assert!(writes.len() >= 5, "{} writes", writes.len());
    assert!(writes.iter().all(|w| w.status == 200));
    // Few big requests, not many small ones: all but the last are over half the limit.
    let sizes: Vec<usize> = writes.iter().map(|w| w.body_bytes).collect();
    assert!(
        sizes[..sizes.len() - 1]
            .iter()
            .all(|&b| b > spec.max_request_bytes / 2),
        "{sizes:?}"
    );
    assert_eq!(report.requests, 2 + writes.len());
    assert_eq!(s.read("ventas"), expected(&big));
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());
}

/// Runs against the local fake (Google's API cannot be reached offline): a 429 with
/// `Retry-After` on a write is waited out and retried.
#[test]
fn gsheets_rate_limit_is_retried_after_the_pause() {
    let s = Setup::new((1, 1));
    s.sheets
        .fault(Route::Write, Fault::TooMany { retry_after: 1 }, 1);
    let grids = five_grids(1);
    let started = std::time::Instant::now();
    let report = s.publish(&s.spec(), &grids).expect("publish");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(report.retries, 1);
    let statuses = s.statuses(Route::Write);
    assert_eq!(statuses, [429, 200]);
    for g in &grids {
        assert_eq!(s.read(&g.title), expected(g));
    }
}

/// Runs against the local fake (Google's API cannot be reached offline): a 500 that never
/// goes away fails after `max_retries` retries with an error naming the call and status.
#[test]
fn gsheets_persistent_server_error_gives_up_with_a_clear_error() {
    let s = Setup::new((1, 1));
    s.sheets.fault(Route::BatchUpdate, Fault::Internal, 100);
    let mut spec = s.spec();
    spec.max_retries = 2;
    let err = s.publish(&spec, &five_grids(1)).expect_err("keeps failing");
    let text = err.to_string();
    assert!(
        matches!(err, GsheetsError::GaveUp { tries: 3, .. }),
        "{text}"
    );
    assert!(
        text.contains("spreadsheets.batchUpdate") && text.contains("HTTP 500"),
        "{text}"
    );
    assert!(text.contains("Internal error encountered"), "{text}");
    assert_eq!(s.sheets.route_hits(Route::BatchUpdate).len(), 3);
    assert!(!text.contains("fake-token"), "{text}");
}

/// Runs against the local fake (Google's API cannot be reached offline): a token the server
/// stops accepting (401) makes the client fetch a fresh one and go on.
#[test]
fn gsheets_unauthorized_fetches_a_fresh_token() {
    let s = Setup::new((1, 1));
    s.sheets.fault(Route::Clear, Fault::RevokeToken, 1);
    s.publish(&s.spec(), &five_grids(1)).expect("first publish");
    let clears = s.statuses(Route::Clear);
    assert!(clears.is_empty(), "nothing to clear yet: {clears:?}");

    s.publish(&s.spec(), &five_grids(1))
        .expect("second publish");
    let clears = s.statuses(Route::Clear);
    assert_eq!(clears, [401, 200]);
    // One token per publish, plus the fresh one after the 401.
    assert_eq!(s.sheets.route_hits(Route::Token).len(), 3);
}

/// Runs against the local fake (Google's API cannot be reached offline), with its cell
/// limit and `max_cells` at 500: entity sheets are cut and end in the marker row, `rejects`
/// and `summary` stay whole, and the fake never has to refuse a request.
#[test]
fn gsheets_cell_limit_cuts_entity_sheets_not_rejects_or_summary() {
    let s = Setup::new((5, 4));
    s.sheets.set_cell_limit(500);
    let mut spec = s.spec();
    spec.max_cells = 500;
    let grids = five_grids(10); // 200×3 + 150×2 + 300×4 data cells: far over 500
    let report = s.publish(&spec, &grids).expect("publish");

    assert!(s.sheets.total_cells() <= 500, "{}", s.sheets.total_cells());
    for g in &grids[3..] {
        assert_eq!(s.read(&g.title), expected(g), "{} whole", g.title);
    }
    for (g, r) in grids[..3].iter().zip(&report.sheets) {
        assert!(r.rows_written < r.rows_total, "{} cut", g.title);
        let got = s.read(&g.title);
        assert_eq!(got.len(), 1 + r.rows_written + 1, "{}", g.title);
        assert_eq!(
            got[..got.len() - 1],
            expected(g)[..1 + r.rows_written],
            "{} top rows",
            g.title
        );
        let marker = &got[got.len() - 1][0];
        let more = r.rows_total - r.rows_written;
        assert!(
            marker.starts_with(&format!("… {more} more rows not written"))
                && marker.contains("500 cells")
                && marker.contains("staging.sqlite"),
            "{marker}"
        );
    }
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());

    // Growing `rejects` later takes room from the entity sheets: shrinks go first, so the
    // fake still refuses nothing.
    let mut grids = grids;
    grids[3] = grid("rejects", &["row_number", "field", "rule", "message"], 20);
    s.publish(&spec, &grids).expect("second publish");
    assert_eq!(s.read("rejects"), expected(&grids[3]));
    assert!(s.sheets.total_cells() <= 500);
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());
}

/// Runs against the local fake (Google's API cannot be reached offline): the fake does
/// enforce Google's cell limit, so the test above would see a refusal if `publish` grew
/// before shrinking or ignored the limit.
#[test]
fn gsheets_fake_refuses_what_google_refuses() {
    let s = Setup::new((5, 4));
    s.sheets.set_cell_limit(500);
    let mut spec = s.spec();
    spec.max_cells = 10_000; // publish believes there is room; Google (the fake) does not.
    let err = s
        .publish(&spec, &five_grids(10))
        .expect_err("over the limit");
    let text = err.to_string();
    assert!(
        matches!(err, GsheetsError::Api { status: 400, .. }),
        "{text}"
    );
    assert!(text.contains("above the limit of 500 cells"), "{text}");
}

/// Needs no server: a missing env var or an unreadable key file is reported naming the
/// variable (Google's API cannot be reached offline, and these fail before any call).
#[test]
fn gsheets_missing_or_unreadable_key_names_the_env_var() {
    let mut spec = GsheetsSpec {
        spreadsheet_id: SPREADSHEET.into(),
        key_file_env: "DROPSYNC_GSHEETS_SURELY_UNSET_VAR".into(),
        api_base: Some("http://127.0.0.1:1/".into()),
        max_retries: 0,
        max_cells: 10_000_000,
        max_request_bytes: 1024,
    };
    let err = publish_with(&spec, &[], fast()).expect_err("unset");
    assert!(matches!(err, GsheetsError::MissingEnv { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("DROPSYNC_GSHEETS_SURELY_UNSET_VAR"),
        "{err}"
    );

    let var = format!("DROPSYNC_GSHEETS_TEST_MISSING_{}", std::process::id());
    std::env::set_var(&var, "/nonexistent/dropsync/key.json");
    spec.key_file_env = var.clone();
    let err = publish_with(&spec, &[], fast()).expect_err("unreadable");
    let text = err.to_string();
    assert!(matches!(err, GsheetsError::KeyFile { .. }), "{text}");
    assert!(
        text.contains(&var) && text.contains("/nonexistent/dropsync/key.json"),
        "{text}"
    );
}

/// Runs against the local fake (Google's API cannot be reached offline), which refuses
/// cells over 50,000 characters as Google does: such a cell arrives cut, ending in `…`,
/// and the rest of the sheet is written.
#[test]
fn gsheets_overlong_cell_is_cut_not_refused() {
    let s = Setup::new((1, 1));
    let mut g = grid("servicios", &["id", "notas"], 3);
    g.rows[1][1] = "x".repeat(60_000);
    s.publish(&s.spec(), std::slice::from_ref(&g))
        .expect("publish");
    let got = s.read("servicios");
    assert_eq!(got[2][1].chars().count(), 50_000);
    assert!(got[2][1].ends_with("x…"));
    assert_eq!(got[3], expected(&g)[3]);
    assert!(s.refusals().is_empty(), "{:?}", s.refusals());
}

/// `dropsync check`'s probe reads the spreadsheet and writes nothing; a key the token
/// endpoint does not know fails with a clear error (against the local fake, as above).
#[test]
fn gsheets_probe_reads_the_tabs_and_writes_nothing() {
    let s = Setup::new((1000, 26));
    let said = super::probe_with(&s.spec(), fast()).unwrap();
    assert!(said.contains("1 tab(s) (Sheet1)"), "{said}");
    assert!(said.contains("26000 of 10000000 cells"), "{said}");
    assert!(s.statuses(Route::Write).is_empty());
    assert!(s.statuses(Route::BatchUpdate).is_empty());
    let mut wrong = s.spec();
    wrong.spreadsheet_id = "no-such-book".into();
    let err = super::probe_with(&wrong, fast()).unwrap_err().to_string();
    assert!(
        err.contains("404") && err.contains("spreadsheets.get"),
        "{err}"
    );
}
