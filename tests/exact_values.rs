//! Exact values end to end: amounts up to 10^13 with cents arrive in every CRM target (the
//! embedded SQLite, a real PostgreSQL started by the tests, a local REST CRM that keeps the
//! JSON text it received) to the cent; an amount with more decimals than its field keeps is
//! reported on its line, never rounded; a workspace written by the release that kept amounts
//! as doubles migrates with nothing reported changed; the workbook holds numbers and dates;
//! the status page shows the dealer's amount as written.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use dropsync::app::gen::{self, GenEncoding, GenOptions, UnitFormat};
use dropsync::app::run::{self, RunOptions, RunReport};
use dropsync_testkit::crm::FakeCrm;
use dropsync_testkit::postgres::TestDb;
use support::{postgres_target, recipes_with, repo, rest_target, Workdir};

/// Cents of `1.234.567,89` / `-0,05` (the export's form), or of `1234567.89` (a store's).
/// Exactly two decimals or none; anything else is `None`. Written here, not borrowed from
/// the code under test.
fn cents(text: &str, decimal_mark: char) -> Option<i128> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once(decimal_mark).unwrap_or((body, "00"));
    let int: String = int
        .chars()
        .filter(|c| *c != '.' || decimal_mark == '.')
        .collect();
    if frac.len() != 2
        || int.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let v: i128 = format!("{int}{frac}").parse().ok()?;
    Some(if neg { -v } else { v })
}

/// `123456789` cents → `1.234.567,89`.
fn export_form(cents: i128) -> String {
    let int = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{grouped},{:02}", cents % 100)
}

/// A seeded, repeatable stream of amounts: up to 10^13 units with cents.
struct Amounts(u64);

impl Amounts {
    fn next(&mut self) -> i128 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Spread over every magnitude, not just the top one.
        let digits = 1 + (r % 15) as u32;
        i128::from((r >> 8) % 10u64.pow(digits)) + 1
    }
}

/// The drop: a generated dealer whose sales amounts are rewritten with large amounts (the
/// extremes first), one of them with three decimals. Returns the inbox, each sale's cents by
/// ID, and the line of the three-decimal amount.
struct Drop {
    inbox: PathBuf,
    amounts: BTreeMap<String, i128>,
    bad_line: u64,
}

fn large_amounts_drop(dir: &Path) -> Drop {
    let inbox = dir.join("inbox");
    gen::generate(
        &GenOptions {
            clients: 300,
            seed: 23,
            encoding: GenEncoding::Utf8,
            unidades: UnitFormat::Csv,
            dirty: false,
        },
        &inbox,
    )
    .unwrap();
    std::fs::remove_file(inbox.join("manifest.json")).unwrap();
    let path = inbox.join("ventas.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = headers.iter().position(|h| h == "Importe Total").unwrap();
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    writer.write_record(&headers).unwrap();
    let extremes = [
        1_000_000_000_000_000i128, // 10.000.000.000.000,00
        999_999_999_999_999,       // 9.999.999.999.999,99
        4_085_017_187,             // 40.850.171,87
        1,                         // 0,01
        10,                        // 0,10
    ];
    let mut random = Amounts(0x5eed_cafe);
    let mut amounts = BTreeMap::new();
    let mut bad_line = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.unwrap();
        // Generated sales have no line breaks inside fields: record i is on line i + 2.
        assert!(record.iter().all(|f| !f.contains('\n')));
        let line = i as u64 + 2;
        let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
        if i == 7 {
            fields[col] = "1.234,567".into();
            bad_line = line;
        } else {
            let c = extremes.get(i).copied().unwrap_or_else(|| random.next());
            fields[col] = export_form(c);
            amounts.insert(fields[0].clone(), c);
        }
        writer.write_record(&fields).unwrap();
    }
    std::fs::write(&path, writer.into_inner().unwrap()).unwrap();
    Drop {
        inbox,
        amounts,
        bad_line,
    }
}

fn run(recipes: &Path, inbox: &Path, out: &Path) -> RunReport {
    run::run(&RunOptions::new(
        recipes.to_path_buf(),
        inbox.to_path_buf(),
        out.to_path_buf(),
    ))
    .unwrap()
}

/// Every sale's amount a store holds, by ID, in cents (the store's text form).
fn parsed(stored: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, i128> {
    stored
        .into_iter()
        .map(|(id, text)| {
            let c =
                cents(&text, '.').unwrap_or_else(|| panic!("{id}: {text:?} is not exact cents"));
            (id, c)
        })
        .collect()
}

/// The sales amounts of `db` (`crm.sqlite` or `staging.sqlite`) in `out`.
fn sqlite_amounts(out: &Path, db: &str) -> BTreeMap<String, i128> {
    let conn = rusqlite::Connection::open(out.join(db)).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT id, importe_total FROM ventas WHERE importe_total IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    parsed(rows)
}

/// The run's checks shared by every target: the three-decimal amount is a `type.decimal`
/// warning on its line, left empty, and the store holds every other amount to the cent.
fn check(drop: &Drop, report: &RunReport, out: &Path, stored: &BTreeMap<String, i128>) {
    let ventas = &report
        .entities
        .iter()
        .find(|(e, _)| e == "ventas")
        .unwrap()
        .1;
    assert_eq!(ventas.accepted, drop.amounts.len() + 1, "{ventas:?}");
    let staging = rusqlite::Connection::open(out.join("staging.sqlite")).unwrap();
    let (line, severity, reason): (i64, String, String) = staging
        .query_row(
            "SELECT line, severity, reason FROM rejects WHERE entity = 'ventas' AND rule = 'type.decimal'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(line as u64, drop.bad_line);
    assert_eq!(severity, "warning");
    assert!(
        reason.contains("`1.234,567`")
            && reason.contains("3 decimals")
            && reason.contains("not rounded"),
        "{reason}"
    );
    assert_eq!(stored, &drop.amounts, "every amount to the cent");
    let file_sum: i128 = drop.amounts.values().sum();
    let stored_sum: i128 = stored.values().sum();
    assert_eq!(stored_sum, file_sum);
    assert!(
        file_sum > 10i128.pow(15),
        "the drop holds amounts near 10^13"
    );
}

#[test]
fn amounts_up_to_ten_trillion_arrive_to_the_cent_in_sqlite_postgres_and_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = large_amounts_drop(tmp.path());

    // The embedded CRM.
    let sqlite_out = tmp.path().join("sqlite/out");
    let recipes = recipes_with(&tmp.path().join("sqlite"), "");
    let report = run(&recipes, &drop.inbox, &sqlite_out);
    check(
        &drop,
        &report,
        &sqlite_out,
        &sqlite_amounts(&sqlite_out, "crm.sqlite"),
    );
    assert_eq!(
        sqlite_amounts(&sqlite_out, "staging.sqlite"),
        drop.amounts,
        "staging.sqlite is exact too"
    );
    // A rerun of the same drop compares exact values: nothing to write.
    assert_eq!(run(&recipes, &drop.inbox, &sqlite_out).crm_rows_written, 0);

    // PostgreSQL: NUMERIC, summed by the server itself.
    let db = TestDb::new("exact_amounts");
    let pg_out = tmp.path().join("pg/out");
    let recipes = recipes_with(&tmp.path().join("pg"), &postgres_target(&db.env_var));
    let report = run(&recipes, &drop.inbox, &pg_out);
    let mut client = db.client();
    let rows: Vec<(String, String)> = client
        .query(
            "SELECT id, importe_total::text FROM crm.ventas WHERE importe_total IS NOT NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    check(&drop, &report, &pg_out, &parsed(rows));
    let (sum, ty): (String, String) = client
        .query_one(
            "SELECT sum(importe_total)::text, pg_typeof(min(importe_total))::text FROM crm.ventas",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(ty, "numeric");
    let file_sum: i128 = drop.amounts.values().sum();
    assert_eq!(cents(&sum, '.'), Some(file_sum), "SUM in PostgreSQL: {sum}");
    let (staged_ty, fecha_ty): (String, String) = client
        .query_one(
            "SELECT format_type(a.atttypid, a.atttypmod), \
                    (SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                     WHERE attrelid = 'staging.ventas'::regclass AND attname = 'fecha') \
             FROM pg_attribute a WHERE a.attrelid = 'staging.ventas'::regclass AND a.attname = 'importe_total'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(
        (staged_ty.as_str(), fecha_ty.as_str()),
        ("numeric(18,2)", "date")
    );
    assert_eq!(run(&recipes, &drop.inbox, &pg_out).crm_rows_written, 0);

    // A REST CRM: the JSON numbers as they arrived, digit for digit.
    let crm = FakeCrm::start("secret-token");
    let var = format!("DROPSYNC_EXACT_CRM_TOKEN_{}", std::process::id());
    std::env::set_var(&var, "secret-token");
    let rest_out = tmp.path().join("rest/out");
    let recipes = recipes_with(
        &tmp.path().join("rest"),
        &rest_target(&crm.base_url, &var, ""),
    );
    let report = run(&recipes, &drop.inbox, &rest_out);
    let raw = crm.raw_column("ventas", "importe_total");
    let (top, _) = drop
        .amounts
        .iter()
        .find(|(_, c)| **c == 10i128.pow(15))
        .unwrap();
    assert_eq!(
        raw.get(top).map(String::as_str),
        Some("10000000000000.00"),
        "a JSON number with every digit, not 1e13"
    );
    let received: Vec<(String, String)> = raw.into_iter().filter(|(_, v)| v != "null").collect();
    check(&drop, &report, &rest_out, &parsed(received));
}

#[test]
fn rest_decimals_can_be_sent_as_strings() {
    let tmp = tempfile::tempdir().unwrap();
    let drop = large_amounts_drop(tmp.path());
    let crm = FakeCrm::start("secret-token");
    let var = format!("DROPSYNC_EXACT_STR_TOKEN_{}", std::process::id());
    std::env::set_var(&var, "secret-token");
    let recipes = recipes_with(
        tmp.path(),
        &rest_target(&crm.base_url, &var, "decimals = \"string\"\n"),
    );
    run(&recipes, &drop.inbox, &tmp.path().join("out"));
    let (id, _) = drop
        .amounts
        .iter()
        .find(|(_, c)| **c == 4_085_017_187)
        .unwrap();
    assert_eq!(
        crm.raw_property("ventas", id, "importe_total").as_deref(),
        Some("\"40850171.87\"")
    );
}

/// Unpacks `tests/fixtures/legacy-float-workspace.zip`: `inbox/` (a generated drop) and `out/`,
/// the workspace the release before exact decimals wrote from it (REAL columns in crm.sqlite
/// and staging.sqlite, doubles in the parquet snapshots).
fn legacy_workspace(dir: &Path) {
    let file =
        std::fs::File::open(repo().join("tests/fixtures/legacy-float-workspace.zip")).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let path = dir.join(entry.enclosed_name().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn column_type(db: &Path, table: &str, column: &str) -> String {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT type FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_float_workspace_from_the_previous_release_migrates_with_nothing_changed() {
    let tmp = tempfile::tempdir().unwrap();
    legacy_workspace(tmp.path());
    let out = tmp.path().join("out");
    let inbox = tmp.path().join("inbox");
    assert_eq!(
        column_type(&out.join("crm.sqlite"), "ventas", "importe_total"),
        "REAL"
    );
    let crm_rows_before: i64 = rusqlite::Connection::open(out.join("crm.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM ventas", [], |r| r.get(0))
        .unwrap();

    // The same drop the old release loaded: nothing changed, so nothing is reported changed.
    let report = run(&repo().join("recipes"), &inbox, &out);
    for (entity, s) in &report.entities {
        assert_eq!(
            (s.inserted, s.updated, s.deleted),
            (0, 0, 0),
            "{entity}: {s:?}"
        );
        assert_eq!(s.unchanged, s.accepted, "{entity}");
    }
    assert_eq!(report.crm_rows_written, 0);

    // The CRM and staging columns are exact now, every row and every cent kept.
    for db in ["crm.sqlite", "staging.sqlite"] {
        assert_eq!(
            column_type(&out.join(db), "ventas", "importe_total"),
            "TEXT",
            "{db}"
        );
        assert_eq!(
            column_type(&out.join(db), "servicios", "importe"),
            "TEXT",
            "{db}"
        );
    }
    let stored = sqlite_amounts(&out, "crm.sqlite");
    assert_eq!(stored.len() as i64, crm_rows_before);
    let text = std::fs::read_to_string(inbox.join("ventas.csv")).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "Importe Total")
        .unwrap();
    let in_file: BTreeMap<String, i128> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), cents(&r[col], ',').unwrap())
        })
        .collect();
    assert_eq!(stored, in_file);
    // And the next run still finds nothing to do.
    assert_eq!(
        run(&repo().join("recipes"), &inbox, &out).crm_rows_written,
        0
    );
}

/// The sheet of the workbook at `path` named `name`, as XML.
fn sheet_xml(path: &Path, name: &str) -> (String, String) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut part = |n: &str| {
        let mut s = String::new();
        zip.by_name(n).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let workbook = part("xl/workbook.xml");
    let index = workbook
        .split("<sheet ")
        .skip(1)
        .position(|s| s.contains(&format!("name=\"{name}\"")))
        .unwrap_or_else(|| panic!("no sheet {name}: {workbook}"));
    (
        part(&format!("xl/worksheets/sheet{}.xml", index + 1)),
        part("xl/styles.xml"),
    )
}

/// The number format code of style `s` in styles.xml.
fn format_code(styles: &str, s: usize) -> String {
    let xf = styles
        .split("<cellXfs")
        .nth(1)
        .unwrap()
        .split("<xf ")
        .nth(s + 1)
        .unwrap();
    let id = xf
        .split("numFmtId=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    styles
        .split("<numFmt ")
        .find(|f| f.contains(&format!("numFmtId=\"{id}\"")))
        .and_then(|f| f.split("formatCode=\"").nth(1))
        .and_then(|f| f.split('"').next())
        .unwrap_or_else(|| panic!("no format {id}"))
        .to_string()
}

/// The cell (attributes and body) whose value is `v`.
fn cell_with<'a>(sheet: &'a str, v: &str) -> &'a str {
    sheet
        .split("<c ")
        .find(|c| c.contains(&format!("<v>{v}</v>")))
        .unwrap_or_else(|| panic!("no cell holds {v}"))
}

fn style(cell: &str) -> usize {
    cell.split(" s=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unstyled: {cell}"))
}

#[test]
fn the_workbook_holds_amounts_as_numbers_and_dates_as_dates() {
    let w = Workdir::new();
    for e in std::fs::read_dir(repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
    assert_eq!(w.run().code, 0);
    let (sheet, styles) = sheet_xml(&w.out().join("staging.xlsx"), "ventas");
    // OP-2019-000002: 06/12/2019, 40.850.171,87.
    let amount = cell_with(&sheet, "40850171.87");
    assert!(!amount.contains(" t=\""), "a number, not text: {amount}");
    assert_eq!(format_code(&styles, style(amount)), "#,##0.00");
    let row = amount
        .split("r=\"")
        .nth(1)
        .unwrap()
        .trim_start_matches(char::is_alphabetic);
    let row: String = row.chars().take_while(char::is_ascii_digit).collect();
    let serial = (chrono::NaiveDate::from_ymd_opt(2019, 12, 6).unwrap()
        - chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap())
    .num_days();
    let date = sheet
        .split("<c ")
        .find(|c| c.contains(&format!("{row}\"")) && c.contains(&format!("<v>{serial}</v>")))
        .unwrap_or_else(|| panic!("row {row} has no date {serial}"));
    assert!(!date.contains(" t=\""), "{date}");
    assert_eq!(format_code(&styles, style(date)), "yyyy-mm-dd");
}

#[test]
fn the_status_page_shows_the_amount_as_the_dealer_wrote_it() {
    let w = Workdir::new();
    for e in std::fs::read_dir(repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
    let r = w.run();
    assert_eq!(r.code, 0);
    let run_id = r.json["run_id"].as_str().unwrap().to_string();
    let (mut child, base) = support::serve(&w);
    let page = reqwest::blocking::get(format!("{base}/runs/{run_id}")).and_then(|r| r.text());
    let _ = child.kill();
    let _ = child.wait();
    let page = page.unwrap();
    assert!(
        page.contains("40850171.87"),
        "the sale is on the page as written"
    );
    let exponent = regex::Regex::new(r"\d\.\d+e[+-]?\d").unwrap();
    assert!(
        !exponent.is_match(&page),
        "no scientific notation on the page"
    );
}
