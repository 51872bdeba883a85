//! The shipped samples through every target: PostgreSQL (a real server started by the tests)
//! and a REST CRM (a local HTTP server speaking the bulk API) must end with the same counts
//! as the embedded SQLite CRM; a rerun writes nothing; the next snapshot writes exactly its
//! changes.

use std::path::{Path, PathBuf};

use dropsync_testkit::crm::FakeCrm;
use dropsync_testkit::google::key_in_env;
use dropsync_testkit::postgres::TestDb;
use dropsync_testkit::sheets::{FakeSheets, Fault, Route};

use crate::app::gen::Manifest;
use crate::app::run::{self, RunOptions, RunReport};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped recipes with `target` as pipeline.toml's `[target]`.
fn recipes_with(dir: &Path, target: &str) -> PathBuf {
    let r = dir.join("recipes");
    std::fs::create_dir_all(&r).unwrap();
    for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, r.join(p.file_name().unwrap())).unwrap();
    }
    let mut pipeline = std::fs::read_to_string(r.join("pipeline.toml")).unwrap();
    pipeline.push_str(target);
    std::fs::write(r.join("pipeline.toml"), pipeline).unwrap();
    r
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
    run::run(&RunOptions {
        recipes: recipes.to_path_buf(),
        inbox,
        out: out.to_path_buf(),
        dry_run: false,
        progress: false,
        stop: None,
    })
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
    let recipes = recipes_with(
        tmp.path(),
        &format!(
            "\n[target]\nkind = \"postgres\"\n[target.postgres]\nurl_env = \"{}\"\nschema = \"crm\"\nstaging_schema = \"staging\"\n",
            db.env_var
        ),
    );
    check_target(&recipes, tmp.path());
    let mut c = db.client();
    let sqlite = run::crm_counts(&tmp.path().join("sqlite/out"));
    for (table, (rows, deleted)) in sqlite {
        let row = c
            .query_one(
                &format!("SELECT count(*), count(*) FILTER (WHERE _deleted) FROM crm.\"{table}\""),
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
    let recipes = recipes_with(
        tmp.path(),
        &format!(
            "\n[target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"{}\"\ntoken_env = \"{var}\"\nmax_requests_per_second = 1000.0\n",
            crm.base_url
        ),
    );
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
        &format!(
            "\n[target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"{}\"\ntoken_env = \"{var}\"\nmax_requests_per_second = 1000.0\nmax_retries = 1\nbackoff_base_ms = 1\nbackoff_max_ms = 2\n",
            crm.base_url
        ),
    );
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The CRM goes down after 3 confirmed batches: the run fails, nothing advances.
    crm.down_after(3);
    let failed = std::panic::catch_unwind(|| run(&recipes, "2026-11-20", &out));
    assert!(failed.is_err(), "the outage must fail the run");
    // ...and the run is on record as failed, with the reason, for `runs` and the status page.
    let runs = crate::state::State::open(&out).unwrap().runs(1).unwrap();
    assert_eq!(runs[0].status, "failed");
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
    let verdicts = crate::app::check::check(&recipes, &tmp.path().join("sources.toml"), &out);
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

    // Next day, the Sheets API is down: the run still loads the CRM and says why the
    // spreadsheet is stale.
    sheets.fault(Route::Write, Fault::Internal, 100);
    let r2 = run(&recipes, "2026-11-21", &out);
    assert_eq!(r2.status.as_str(), "ok");
    assert!(r2.crm_rows_written > 0);
    let error = r2.gsheets.as_ref().unwrap()["error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
    let stored = crate::state::State::open(&out).unwrap().runs(1).unwrap();
    assert!(stored[0].summary.as_ref().unwrap()["gsheets"]["error"].is_string());
}
