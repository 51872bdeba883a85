//! Where runs write, end to end through dropsync's public API: the CRM targets (a real
//! PostgreSQL started by the tests, a fake REST CRM) against the embedded SQLite CRM, and the
//! Google Sheets staging against a fake Sheets API. The servers come from `dropsync-testkit`
//! (`tests/testkit/`).

mod support;

mod samples {
    //! The shipped samples through every target: PostgreSQL (a real server started by the tests)
    //! and a REST CRM (a local HTTP server speaking the bulk API) must end with the same counts
    //! as the embedded SQLite CRM; a rerun writes nothing; the next snapshot writes exactly its
    //! changes. And a run publishes its staging to Google Sheets (the fake Sheets API).

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use dropsync::app::check::check;
    use dropsync::app::gen::Manifest;
    use dropsync::app::run::{self, RunOptions, RunReport};
    use dropsync::state::State;
    use dropsync_testkit::crm::FakeCrm;
    use dropsync_testkit::google::key_in_env;
    use dropsync_testkit::postgres::TestDb;
    use dropsync_testkit::sheets::{FakeSheets, Fault, Route};

    use crate::support::{postgres_target, recipes_with, rest_target};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn run(recipes: &Path, day: &str, out: &Path) -> RunReport {
        let inbox = out.parent().unwrap().join(format!("in-{day}"));
        std::fs::create_dir_all(&inbox).unwrap();
        for e in std::fs::read_dir(repo().join("samples").join(day)).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() != "manifest.json" {
                std::fs::copy(&p, inbox.join(p.file_name().unwrap())).unwrap();
            }
        }
        run::run(&RunOptions::new(
            recipes.to_path_buf(),
            inbox,
            out.to_path_buf(),
        ))
        .unwrap()
    }

    fn counts(r: &RunReport) -> Vec<(String, usize, usize, usize, usize)> {
        r.entities
            .iter()
            .map(|(e, s)| (e.clone(), s.accepted, s.inserted, s.updated, s.deleted))
            .collect()
    }

    /// Total inserted + updated + deleted the next sample snapshot must write.
    fn next_changes() -> usize {
        let m = Manifest::load(&repo().join("samples/2026-11-21")).unwrap();
        m.changes
            .unwrap()
            .values()
            .map(|c| c.inserted + c.updated + c.deleted)
            .sum()
    }

    /// Per table of the embedded SQLite CRM in `out`: (rows, soft-deleted rows).
    fn crm_counts(out: &Path) -> BTreeMap<String, (i64, i64)> {
        let conn = rusqlite::Connection::open(out.join("crm.sqlite")).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|t| t.unwrap())
            .collect();
        let mut counts = BTreeMap::new();
        for t in tables {
            let q = format!(
                "SELECT count(*), coalesce(sum(_deleted), 0) FROM \"{}\"",
                t.replace('"', "\"\"")
            );
            // A table without `_deleted` is not a CRM table: left out.
            if let Ok(c) = conn.query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?))) {
                counts.insert(t, c);
            }
        }
        counts
    }

    /// Runs day 1, day 1 again and day 2 into `recipes`' target and into SQLite; checks counts.
    fn check_target(recipes: &Path, tmp: &Path) -> Vec<RunReport> {
        let sqlite_recipes = recipes_with(&tmp.join("sqlite"), "");
        let sq_out = tmp.join("sqlite/out");
        let first_sqlite = run(&sqlite_recipes, "2026-11-20", &sq_out);
        let out = tmp.join("target/out");
        std::fs::create_dir_all(&out).unwrap();
        let first = run(recipes, "2026-11-20", &out);
        assert_eq!(counts(&first), counts(&first_sqlite));
        let accepted: usize = first.entities.iter().map(|(_, s)| s.accepted).sum();
        assert_eq!(first.crm_rows_written, accepted);
        let again = run(recipes, "2026-11-20", &out);
        assert_eq!(again.crm_rows_written, 0);
        let next = run(recipes, "2026-11-21", &out);
        let next_sqlite = run(&sqlite_recipes, "2026-11-21", &sq_out);
        assert_eq!(counts(&next), counts(&next_sqlite));
        assert_eq!(next.crm_rows_written, next_changes());
        vec![first, again, next]
    }

    #[test]
    fn samples_load_into_postgres_like_into_sqlite() {
        let db = TestDb::new("dropsync_e2e");
        let tmp = tempfile::tempdir().unwrap();
        let recipes = recipes_with(tmp.path(), &postgres_target(&db.env_var));
        check_target(&recipes, tmp.path());
        let mut c = db.client();
        let sqlite = crm_counts(&tmp.path().join("sqlite/out"));
        for (table, (rows, deleted)) in sqlite {
            let row = c
                .query_one(
                    &format!(
                        "SELECT count(*), count(*) FILTER (WHERE _deleted) FROM crm.\"{table}\""
                    ),
                    &[],
                )
                .unwrap();
            let (n, d): (i64, i64) = (row.get(0), row.get(1));
            assert_eq!((n, d), (rows, deleted), "{table}");
        }
        let staged: i64 = c
            .query_one("SELECT count(*) FROM staging.clientes", &[])
            .unwrap()
            .get(0);
        assert_eq!(staged, 305);
        // Accents and dates arrive typed.
        let (typ, dated): (String, i64) = c
            .query_one(
                "SELECT pg_typeof(fecha_alta)::text, count(fecha_alta) FROM crm.clientes GROUP BY 1",
                &[],
            )
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(typ, "date");
        assert!(dated > 290, "{dated}");
        let accented: i64 = c
            .query_one(
                "SELECT count(*) FROM crm.clientes WHERE razon_social ~ '[áéíóúñ]'",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(accented > 10);
    }

    #[test]
    fn samples_load_into_a_rest_crm_like_into_sqlite() {
        let crm = FakeCrm::start("secret-token");
        let var = format!("DROPSYNC_E2E_CRM_TOKEN_{}", std::process::id());
        std::env::set_var(&var, "secret-token");
        let tmp = tempfile::tempdir().unwrap();
        let recipes = recipes_with(tmp.path(), &rest_target(&crm.base_url, &var, ""));
        crm.fail_429(1);
        crm.fail_500(1);
        let reports = check_target(&recipes, tmp.path());
        // The CRM holds the accepted clients of day 1, plus day 2's inserts, minus its archives.
        let day2 = &reports[2].entities[0].1;
        assert_eq!(crm.stored("clientes"), 305 + day2.inserted - day2.deleted);
        assert_eq!(
            crm.archived("clientes").len(),
            reports[2].entities[0].1.deleted
        );
    }

    #[test]
    fn crm_refusals_become_rejects_and_an_outage_resumes_without_resending() {
        let crm = FakeCrm::start("tok");
        let var = format!("DROPSYNC_E2E_CRM_TOKEN2_{}", std::process::id());
        std::env::set_var(&var, "tok");
        let tmp = tempfile::tempdir().unwrap();
        let recipes = recipes_with(
            tmp.path(),
            &rest_target(
                &crm.base_url,
                &var,
                "max_retries = 1\nbackoff_base_ms = 1\nbackoff_max_ms = 2\n",
            ),
        );
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        // The CRM goes down after 3 confirmed batches: the run fails, nothing advances.
        crm.down_after(3);
        let failed = std::panic::catch_unwind(|| run(&recipes, "2026-11-20", &out));
        assert!(failed.is_err(), "the outage must fail the run");
        // ...and the run is on record as failed, with the reason, for `runs` and the status page.
        let runs = State::open(&out).unwrap().runs(1).unwrap();
        assert_eq!(runs[0].status, dropsync::model::RunState::Failed);
        let error = runs[0].summary.as_ref().unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.contains("ventas") || error.contains("clientes"),
            "{error}"
        );
        crm.up();
        // The CRM refuses one sale by validation (sales were not sent before the outage).
        crm.reject("OP-2019-000002", "amount over the portal's limit");
        let r = run(&recipes, "2026-11-20", &out);
        let ventas = &r.entities.iter().find(|(e, _)| e == "ventas").unwrap().1;
        assert_eq!(ventas.crm_refused, 1);
        let refusal = r.issues.iter().find(|i| i.rule == "crm.refused").unwrap();
        assert_eq!(
            (refusal.id.as_str(), refusal.file.as_str(), refusal.line),
            ("OP-2019-000002", "ventas.csv", 3)
        );
        // Nothing was received twice although the first run died after 3 batches.
        for id in ["1", "2", "3", "150", "300"] {
            assert_eq!(crm.received("clientes", id), 1, "client {id}");
        }
        // The refused sale did not advance: the next run sends it (and only it) again.
        let before = crm.received("ventas", "OP-2019-000002");
        let again = run(&recipes, "2026-11-20", &out);
        assert_eq!(
            again
                .entities
                .iter()
                .map(|(_, s)| s.inserted)
                .sum::<usize>(),
            1
        );
        assert_eq!(crm.received("ventas", "OP-2019-000002"), before + 1);
        assert_eq!(crm.received("ventas", "OP-2025-000001"), 1);
    }

    /// The spreadsheet of the no-code flow, end to end: a run on the samples publishes every
    /// staged entity, the rejects (with their lines) and the summary to the Sheets API — here the
    /// local fake of `stage::gsheets`, since Google cannot be reached offline — and a Sheets
    /// outage leaves the run (and the CRM) fine, with the error in the run's summary.
    #[test]
    fn accepted_runs_publish_their_staging_to_google_sheets() {
        let email = "dropsync-e2e@example-project.iam.gserviceaccount.com";
        let sheets = FakeSheets::start("book-e2e", email, (1000, 26));
        let tmp = tempfile::tempdir().unwrap();
        let var = key_in_env(
            tmp.path(),
            email,
            &sheets.token_uri(),
            "DROPSYNC_E2E_GSHEETS_KEY",
        );
        let recipes = recipes_with(
            tmp.path(),
            &format!(
                "\n[staging.gsheets]\nspreadsheet_id = \"book-e2e\"\nkey_file_env = \"{var}\"\napi_base = \"{}\"\nmax_retries = 0\n",
                sheets.base()
            ),
        );
        let out = tmp.path().join("out");
        // `dropsync check` reads the spreadsheet first, writing nothing.
        let verdicts = check(&recipes, &tmp.path().join("sources.toml"), &out, None);
        let probe = verdicts
            .iter()
            .find(|v| v.item == "staging google sheets")
            .expect("a verdict for the spreadsheet");
        assert!(probe.ok && probe.detail.contains("book-e2e"), "{probe:?}");
        assert_eq!(sheets.titles(), ["Sheet1"]);
        let r = run(&recipes, "2026-11-20", &out);
        let published = r.gsheets.as_ref().expect("gsheets outcome in the report");
        assert!(published.get("error").is_none(), "{published}");
        let titles = sheets.titles();
        for (entity, summary) in &r.entities {
            assert!(titles.contains(entity), "{entity} tab in {titles:?}");
            let tab = sheets.values(entity);
            assert_eq!(
                tab.len(),
                summary.accepted + 1,
                "{entity}: header + accepted rows"
            );
            assert_eq!(tab[0][0], "id");
        }
        let rejects = sheets.values("rejects");
        assert_eq!(rejects.len(), r.issues.len() + 1);
        let first = &r.issues[0];
        assert!(rejects.iter().any(|row| row[0] == first.entity
            && row[2] == first.line.to_string()
            && row[5] == first.rule));
        let summary = sheets.values("summary");
        assert_eq!(summary.len(), r.entities.len() + 1);
        // Amounts and dates are numbers with their formats, as in the workbook: the sale of
        // 40.850.171,87 on 06/12/2019 (Sheets' serial day 43805), not text.
        let ventas = sheets.values("ventas");
        let col = |name: &str| ventas[0].iter().position(|h| h == name).unwrap() as u64;
        let (amount, fecha) = (col("importe_total"), col("fecha"));
        let row = ventas
            .iter()
            .position(|r| r[amount as usize] == "40850171.87")
            .expect("the sale, exact") as u64;
        assert!(sheets.is_number("ventas", row, amount));
        assert_eq!(
            sheets.number_format("ventas", row, amount),
            Some(("NUMBER".into(), "#,##0.00".into()))
        );
        assert_eq!(ventas[row as usize][fecha as usize], "43805");
        assert!(sheets.is_number("ventas", row, fecha));
        assert_eq!(
            sheets.number_format("ventas", row, fecha),
            Some(("DATE".into(), "yyyy-mm-dd".into()))
        );
        assert!(!sheets.is_number("ventas", 0, amount), "headers stay text");
        let id = col("id");
        assert!(!sheets.is_number("ventas", row, id), "IDs stay text");

        // Next day, the Sheets API is down: the run still loads the CRM and says why the
        // spreadsheet is stale.
        sheets.fault(Route::Write, Fault::Internal, 100);
        let r2 = run(&recipes, "2026-11-21", &out);
        assert_eq!(r2.status.as_str(), "ok");
        assert!(r2.crm_rows_written > 0);
        let error = r2.gsheets.as_ref().unwrap()["error"].as_str().unwrap();
        assert!(error.contains("500"), "{error}");
        let stored = State::open(&out).unwrap().runs(1).unwrap();
        assert!(stored[0].summary.as_ref().unwrap()["gsheets"]["error"].is_string());
    }
}

mod gsheets {
    //! `publish` against the fake Sheets API (`dropsync_testkit::sheets`): real HTTP, real token
    //! grant, real google-sheets4 and yup-oauth2 code. Google's API cannot be reached offline (nor
    //! should tests write to a real spreadsheet), so every test here runs against that local fake.

    use std::time::Duration;

    use dropsync::stage::gsheets::{
        probe_with, publish_with, Grid, GsheetsError, GsheetsSpec, PublishReport, RetryTiming,
    };
    use dropsync::stage::workbook::neutralize;
    use dropsync_testkit::google::key_in_env;
    use dropsync_testkit::sheets::{FakeSheets, Fault, Route};

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

        fn publish(
            &self,
            spec: &GsheetsSpec,
            grids: &[Grid],
        ) -> Result<PublishReport, GsheetsError> {
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
            kinds: Vec::new(),
        }
    }

    /// The grid as it should read back: header then rows, every cell neutralised, trailing
    /// empty cells dropped as Google's `values.get` does.
    fn expected(g: &Grid) -> Vec<Vec<String>> {
        std::iter::once(&g.header)
            .chain(&g.rows)
            .map(|row| {
                let mut r: Vec<String> = row.iter().map(|c| neutralize(c).into_owned()).collect();
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
            kinds: Vec::new(),
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
        let said = probe_with(&s.spec(), fast()).unwrap();
        assert!(said.contains("1 tab(s) (Sheet1)"), "{said}");
        assert!(said.contains("26000 of 10000000 cells"), "{said}");
        assert!(s.statuses(Route::Write).is_empty());
        assert!(s.statuses(Route::BatchUpdate).is_empty());
        let mut wrong = s.spec();
        wrong.spreadsheet_id = "no-such-book".into();
        let err = probe_with(&wrong, fast()).unwrap_err().to_string();
        assert!(
            err.contains("404") && err.contains("spreadsheets.get"),
            "{err}"
        );
    }
}
