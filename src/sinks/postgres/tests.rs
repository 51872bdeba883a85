//! Behaviour of `PgTarget` against a real PostgreSQL (see `dropsync_testkit::postgres`); each
//! test has its own database on the shared throwaway server.

use std::io::Read;
use std::time::Instant;

use dropsync_testkit::postgres::TestDb;

use super::*;

const SCHEMA: &str = "crm";

fn col(name: &str, sql_type: &str) -> PgColumn {
    PgColumn {
        name: name.to_string(),
        sql_type: sql_type.to_string(),
        create_only: false,
    }
}

fn create_only(name: &str, sql_type: &str) -> PgColumn {
    PgColumn {
        create_only: true,
        ..col(name, sql_type)
    }
}

/// COPY text for rows of optional values, escaped like the main crate does.
fn copy_text(rows: &[Vec<Option<&str>>]) -> String {
    let mut out = String::new();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match value {
                Some(v) => copy_escape(v, &mut out),
                None => out.push_str(COPY_NULL),
            }
        }
        out.push('\n');
    }
    out
}

fn connect(db: &TestDb) -> PgTarget {
    PgTarget::connect(&db.env_var, SCHEMA).expect("connect")
}

/// Every row of `crm.table` as PostgreSQL's record text, ordered by id: an exact,
/// type-aware snapshot of the table's contents.
fn dump(db: &TestDb, table: &str) -> Vec<String> {
    let sql = format!(
        "SELECT t::text FROM {}.{} t ORDER BY \"id\"",
        sql::quote_ident(SCHEMA),
        sql::quote_ident(table)
    );
    db.client()
        .query(&sql, &[])
        .expect("dump table")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// One text value per selected expression.
fn select(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    db.client()
        .query(sql, &[])
        .expect(sql)
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn clients_columns() -> Vec<PgColumn> {
    vec![col("name", "TEXT"), col("city", "TEXT")]
}

fn upsert(target: &mut PgTarget, table: &str, cols: &[PgColumn], text: &str, run: &str) -> u64 {
    target
        .upsert_copy(table, cols, &mut text.as_bytes(), run)
        .expect("upsert_copy")
}

#[test]
fn missing_url_env_var_names_the_variable() {
    let err = PgTarget::connect("DROPSYNC_TEST_SURELY_UNSET_URL", SCHEMA).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, PgError::MissingUrlEnv { .. }),
        "unexpected error: {text}"
    );
    assert!(
        text.contains("DROPSYNC_TEST_SURELY_UNSET_URL is not set"),
        "{text}"
    );
    assert!(text.contains("postgres://"), "the fix is named: {text}");

    std::env::set_var("DROPSYNC_TEST_EMPTY_URL", "  ");
    let text = PgTarget::connect("DROPSYNC_TEST_EMPTY_URL", SCHEMA)
        .unwrap_err()
        .to_string();
    assert!(text.contains("DROPSYNC_TEST_EMPTY_URL is empty"), "{text}");
}

#[test]
fn unreachable_server_is_a_transient_connect_error_without_the_secret() {
    // Port 1 on loopback: nothing listens there.
    std::env::set_var(
        "DROPSYNC_TEST_DOWN_URL",
        "postgres://crm:s3cret@127.0.0.1:1/crm?connect_timeout=2",
    );
    let err = PgTarget::connect("DROPSYNC_TEST_DOWN_URL", SCHEMA).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::Connect { .. }), "{text}");
    assert!(err.is_transient(), "{text}");
    assert!(text.contains("DROPSYNC_TEST_DOWN_URL"), "{text}");
    assert!(
        !text.contains("s3cret"),
        "the password must not leak: {text}"
    );
}

#[test]
fn connect_creates_the_schema() {
    let db = TestDb::new("connect_schema");
    let target = PgTarget::connect(&db.env_var, "Crm Schema").unwrap();
    assert_eq!(target.schema(), "Crm Schema");
    // Connecting again to the existing schema is fine.
    PgTarget::connect(&db.env_var, "Crm Schema").unwrap();
    let found = select(
        &db,
        "SELECT nspname::text FROM pg_namespace WHERE nspname = 'Crm Schema'",
    );
    assert_eq!(found, vec![vec![s("Crm Schema")]]);
}

#[test]
fn prepare_creates_then_migrates_without_losing_data() {
    let db = TestDb::new("prepare_migrate");
    let mut target = connect(&db);
    target
        .prepare_crm_table("clients", &[col("name", "TEXT")])
        .unwrap();
    let layout = select(
        &db,
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'crm' AND table_name = 'clients' ORDER BY ordinal_position",
    );
    let expected = [
        ("id", "text", "NO"),
        ("name", "text", "YES"),
        ("_created_run", "text", "YES"),
        ("_updated_run", "text", "YES"),
        ("_deleted", "boolean", "NO"),
        ("_deleted_run", "text", "YES"),
    ];
    let expected: Vec<Vec<Option<String>>> = expected
        .iter()
        .map(|(a, b, c)| vec![s(a), s(b), s(c)])
        .collect();
    assert_eq!(layout, expected);

    let one = copy_text(&[vec![Some("c1"), Some("Ana")]]);
    upsert(&mut target, "clients", &[col("name", "TEXT")], &one, "r1");

    // The recipe gains two columns: they are added, the old row keeps its data.
    let wider = [
        col("name", "TEXT"),
        col("since", "DATE"),
        col("vip", "BOOLEAN"),
    ];
    target.prepare_crm_table("clients", &wider).unwrap();
    target.prepare_crm_table("clients", &wider).unwrap(); // idempotent
    assert_eq!(
        select(
            &db,
            "SELECT id, name, since::text, vip::text, _created_run FROM crm.clients"
        ),
        vec![vec![s("c1"), s("Ana"), None, None, s("r1")]]
    );
    // A column the recipe drops stays in the table with its data.
    target
        .prepare_crm_table("clients", &[col("since", "DATE")])
        .unwrap();
    assert_eq!(
        select(&db, "SELECT name FROM crm.clients"),
        vec![vec![s("Ana")]]
    );

    // A type change is refused with the column, both types and the fix.
    let err = target
        .prepare_crm_table("clients", &[col("name", "BIGINT")])
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::TypeMismatch { .. }), "{text}");
    assert!(
        text.contains("\"name\" is text") && text.contains("BIGINT") && text.contains("ALTER"),
        "{text}"
    );
}

#[test]
fn a_double_amount_column_becomes_exact_numeric_in_place() {
    let db = TestDb::new("double_to_numeric");
    let mut target = connect(&db);
    // The layout a release that kept amounts as doubles created, with its values.
    let old = [col("amount", "DOUBLE PRECISION")];
    target.prepare_crm_table("sales", &old).unwrap();
    let amounts = [
        "40850171.87",
        "9999999999999.99",
        "12345678901234.56",
        "0.10",
        "-7.05",
    ];
    let rows: Vec<Vec<Option<&str>>> = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| vec![Some(["a", "b", "c", "d", "e"][i]), Some(*a)])
        .collect();
    upsert(&mut target, "sales", &old, &copy_text(&rows), "r1");

    let exact = [col("amount", "NUMERIC(18,2)")];
    target.prepare_crm_table("sales", &exact).unwrap();
    target.prepare_crm_table("sales", &exact).unwrap(); // idempotent
    assert_eq!(
        select(
            &db,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'crm.sales'::regclass AND attname = 'amount'"
        ),
        vec![vec![s("numeric(18,2)")]]
    );
    let stored: Vec<Option<String>> = select(&db, "SELECT amount::text FROM crm.sales ORDER BY id")
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect();
    let wanted: Vec<Option<String>> = amounts.iter().map(|a| s(a)).collect();
    assert_eq!(stored, wanted, "every cent kept");
    // The same values written again change nothing: they compare equal as numerics.
    assert_eq!(
        upsert(&mut target, "sales", &exact, &copy_text(&rows), "r2"),
        0
    );
    // A text column still cannot silently become a number.
    let err = target
        .prepare_crm_table("sales", &[col("_x", "TEXT"), col("amount", "BIGINT")])
        .unwrap_err();
    assert!(matches!(err, PgError::TypeMismatch { .. }), "{err}");
}

#[test]
fn prepare_adds_missing_bookkeeping_to_an_existing_table() {
    let db = TestDb::new("prepare_bookkeeping");
    db.client()
        .batch_execute(
            "CREATE SCHEMA crm; CREATE TABLE crm.legacy (id TEXT PRIMARY KEY, name TEXT); \
             INSERT INTO crm.legacy VALUES ('x', 'Old')",
        )
        .unwrap();
    let mut target = connect(&db);
    target
        .prepare_crm_table("legacy", &[col("name", "TEXT")])
        .unwrap();
    assert_eq!(
        select(
            &db,
            "SELECT name, _deleted::text, _created_run FROM crm.legacy"
        ),
        vec![vec![s("Old"), s("false"), None]]
    );
}

#[test]
fn upsert_inserts_then_reruns_change_nothing_and_changes_touch_only_their_rows() {
    let db = TestDb::new("upsert_cycle");
    let mut target = connect(&db);
    let cols = clients_columns();
    target.prepare_crm_table("clients", &cols).unwrap();
    let rows = vec![
        vec![Some("c1"), Some("Ana"), Some("Lyon")],
        vec![Some("c2"), Some("Bruno"), None],
        vec![Some("c3"), Some("Chloé"), Some("Nice")],
    ];
    let text = copy_text(&rows);

    assert_eq!(upsert(&mut target, "clients", &cols, &text, "r1"), 3);
    assert_eq!(
        select(
            &db,
            "SELECT id, _created_run, _updated_run, _deleted::text, _deleted_run \
             FROM crm.clients ORDER BY id"
        ),
        ["c1", "c2", "c3"]
            .iter()
            .map(|id| vec![s(id), s("r1"), s("r1"), s("false"), None])
            .collect::<Vec<_>>()
    );
    let before = dump(&db, "clients");

    // The same snapshot again: nothing is rewritten, `_updated_run` stays r1.
    assert_eq!(upsert(&mut target, "clients", &cols, &text, "r2"), 0);
    assert_eq!(dump(&db, "clients"), before);

    // One value changed (NULL -> value) and one unchanged row: exactly one row updated.
    let changed = copy_text(&[
        vec![Some("c2"), Some("Bruno"), Some("Paris")],
        vec![Some("c3"), Some("Chloé"), Some("Nice")],
    ]);
    assert_eq!(upsert(&mut target, "clients", &cols, &changed, "r3"), 1);
    assert_eq!(
        select(
            &db,
            "SELECT id, city, _created_run, _updated_run FROM crm.clients ORDER BY id"
        ),
        vec![
            vec![s("c1"), s("Lyon"), s("r1"), s("r1")],
            vec![s("c2"), s("Paris"), s("r1"), s("r3")],
            vec![s("c3"), s("Nice"), s("r1"), s("r1")],
        ]
    );

    // A value set back to NULL is a change too.
    let nulled = copy_text(&[vec![Some("c1"), Some("Ana"), None]]);
    assert_eq!(upsert(&mut target, "clients", &cols, &nulled, "r4"), 1);
    assert_eq!(
        select(
            &db,
            "SELECT city, _updated_run FROM crm.clients WHERE id = 'c1'"
        ),
        vec![vec![None, s("r4")]]
    );

    // An empty batch is a no-op.
    assert_eq!(upsert(&mut target, "clients", &cols, "", "r5"), 0);

    // Writing before the migration names the fix.
    let err = target
        .upsert_copy("not_prepared", &cols, &mut text.as_bytes(), "r5")
        .unwrap_err();
    assert!(err.to_string().contains("call prepare_crm_table"), "{err}");
}

#[test]
fn create_only_column_is_written_on_insert_and_never_overwritten() {
    let db = TestDb::new("create_only");
    let mut target = connect(&db);
    let cols = vec![col("name", "TEXT"), create_only("first_source", "TEXT")];
    target.prepare_crm_table("clients", &cols).unwrap();
    let first = copy_text(&[vec![Some("c1"), Some("Ana"), Some("shop_a")]]);
    assert_eq!(upsert(&mut target, "clients", &cols, &first, "r1"), 1);

    // Only the create-only value differs: not a change.
    let other_source = copy_text(&[vec![Some("c1"), Some("Ana"), Some("shop_b")]]);
    assert_eq!(
        upsert(&mut target, "clients", &cols, &other_source, "r2"),
        0
    );

    // A real change updates `name` but still leaves `first_source` alone.
    let renamed = copy_text(&[vec![Some("c1"), Some("Ana María"), None]]);
    assert_eq!(upsert(&mut target, "clients", &cols, &renamed, "r3"), 1);
    assert_eq!(
        select(
            &db,
            "SELECT name, first_source, _created_run, _updated_run FROM crm.clients"
        ),
        vec![vec![s("Ana María"), s("shop_a"), s("r1"), s("r3")]]
    );
}

/// Columns of every supported type, and the values the round trip must keep.
fn typed_columns() -> Vec<PgColumn> {
    vec![
        col("name", "TEXT"),
        col("qty", "BIGINT"),
        col("amount", "DOUBLE PRECISION"),
        col("paid", "BOOLEAN"),
        col("sold_on", "DATE"),
        col("sold_at", "timestamp"),
    ]
}

const TRICKY_TEXT: &[&str] = &[
    "tab\there",
    "line1\nline2",
    "carriage\rreturn\r\n",
    "back\\slash \\N \\. \\t",
    "quotes ' \" `",
    "Núñez Ångström 東京 🚗",
    "",
    " leading and trailing ",
    "\\",
];

fn typed_rows() -> Vec<Vec<Option<&'static str>>> {
    let mut rows: Vec<Vec<Option<&str>>> = TRICKY_TEXT
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let ids = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"];
            vec![
                Some(ids[i]),
                Some(*text),
                Some("42"),
                Some("1234.5"),
                Some("t"),
                Some("2026-11-20"),
                Some("2026-11-20 08:30:15.25"),
            ]
        })
        .collect();
    rows.push(vec![Some("z_nulls"), None, None, None, None, None, None]);
    rows.push(vec![
        Some("z_values"),
        Some("x"),
        Some("-9223372036854775808"),
        Some("-0.001e3"),
        Some("f"),
        Some("1999-01-31"),
        Some("2000-02-29 23:59:59"),
    ]);
    rows.push(vec![
        Some("id with\ttab and Ñ"),
        Some("y"),
        Some("0"),
        Some("1e300"),
        Some("true"),
        Some("2026-01-01"),
        Some("2026-01-01T00:00:00"),
    ]);
    rows
}

#[test]
fn values_survive_the_copy_round_trip() {
    let db = TestDb::new("round_trip");
    let mut target = connect(&db);
    let cols = typed_columns();
    target.prepare_crm_table("sales", &cols).unwrap();
    let rows = typed_rows();
    let text = copy_text(&rows);
    assert_eq!(
        upsert(&mut target, "sales", &cols, &text, "r1"),
        rows.len() as u64
    );

    let mut client = db.client();
    let stored = client
        .query(
            "SELECT id, name, qty, amount, paid, sold_on::text, sold_at::text \
             FROM crm.sales ORDER BY id",
            &[],
        )
        .unwrap();
    let mut expected = rows.clone();
    expected.sort_by(|a, b| a[0].cmp(&b[0]));
    assert_eq!(stored.len(), expected.len());
    for (row, want) in stored.iter().zip(&expected) {
        let id: String = row.get(0);
        assert_eq!(Some(id.as_str()), want[0]);
        let name: Option<String> = row.get(1);
        assert_eq!(name.as_deref(), want[1], "text of {id:?}");
        let qty: Option<i64> = row.get(2);
        assert_eq!(qty, want[2].map(|v| v.parse().unwrap()), "bigint of {id:?}");
        let amount: Option<f64> = row.get(3);
        assert_eq!(
            amount,
            want[3].map(|v| v.parse().unwrap()),
            "double of {id:?}"
        );
        let paid: Option<bool> = row.get(4);
        assert_eq!(
            paid,
            want[4].map(|v| v.starts_with('t')),
            "boolean of {id:?}"
        );
        let sold_on: Option<String> = row.get(5);
        assert_eq!(sold_on.as_deref(), want[5], "date of {id:?}");
    }
    let stamps: Vec<Option<String>> = stored.iter().map(|r| r.get(6)).collect();
    assert_eq!(
        stamps,
        vec![
            s("2026-01-01 00:00:00"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            s("2026-11-20 08:30:15.25"),
            None,
            s("2000-02-29 23:59:59"),
        ]
    );
    // Re-sending the same text is recognised as unchanged, values included.
    assert_eq!(upsert(&mut target, "sales", &cols, &text, "r2"), 0);
}

#[test]
fn soft_and_hard_delete() {
    let db = TestDb::new("deletes");
    let mut target = connect(&db);
    let cols = clients_columns();
    target.prepare_crm_table("clients", &cols).unwrap();
    let text = copy_text(&[
        vec![Some("a"), Some("A"), None],
        vec![Some("b"), Some("B"), None],
        vec![Some("c"), Some("C"), None],
    ]);
    upsert(&mut target, "clients", &cols, &text, "r1");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Unknown ids are ignored; only existing live rows count.
    assert_eq!(
        target
            .delete("clients", &ids(&["a", "nope"]), DeleteMode::Soft, "r2")
            .unwrap(),
        1
    );
    // Deleting again affects nothing and keeps the first `_deleted_run`.
    assert_eq!(
        target
            .delete("clients", &ids(&["a"]), DeleteMode::Soft, "r3")
            .unwrap(),
        0
    );
    assert_eq!(
        target
            .delete("clients", &ids(&["b"]), DeleteMode::Hard, "r3")
            .unwrap(),
        1
    );
    assert_eq!(
        target
            .delete("clients", &[], DeleteMode::Hard, "r3")
            .unwrap(),
        0
    );
    assert_eq!(
        select(
            &db,
            "SELECT id, name, _deleted::text, _deleted_run FROM crm.clients ORDER BY id"
        ),
        vec![
            vec![s("a"), s("A"), s("true"), s("r2")],
            vec![s("c"), s("C"), s("false"), None],
        ]
    );
}

#[test]
fn soft_deleted_row_that_comes_back_is_undeleted() {
    let db = TestDb::new("undelete");
    let mut target = connect(&db);
    let cols = clients_columns();
    target.prepare_crm_table("clients", &cols).unwrap();
    let text = copy_text(&[vec![Some("a"), Some("A"), Some("Lyon")]]);
    upsert(&mut target, "clients", &cols, &text, "r1");
    target
        .delete("clients", &["a".to_string()], DeleteMode::Soft, "r2")
        .unwrap();

    // Same values as before the delete: still counted, because the row is revived.
    assert_eq!(upsert(&mut target, "clients", &cols, &text, "r3"), 1);
    assert_eq!(
        select(
            &db,
            "SELECT name, _deleted::text, _deleted_run, _created_run, _updated_run \
             FROM crm.clients"
        ),
        vec![vec![s("A"), s("false"), None, s("r1"), s("r3")]]
    );
}

#[test]
fn staging_replace_is_atomic() {
    let db = TestDb::new("staging");
    let mut target = connect(&db);
    let cols = vec![col("amount", "DOUBLE PRECISION"), col("day", "DATE")];
    let replace = |target: &mut PgTarget, cols: &[PgColumn], text: &str| {
        target.replace_staging("stg_sales", cols, &mut text.as_bytes())
    };

    let three = "a\t1.5\t2026-01-01\nb\t2\t2026-01-02\nc\t\\N\t\\N\n";
    assert_eq!(replace(&mut target, &cols, three).unwrap(), 3);
    let two = "b\t20\t2026-02-02\nd\t4\t2026-02-04\n";
    assert_eq!(replace(&mut target, &cols, two).unwrap(), 2);
    let after_two = dump(&db, "stg_sales");
    assert_eq!(after_two, vec!["(b,20,2026-02-02)", "(d,4,2026-02-04)"]);

    // A malformed line after good ones: the error names the line and column, and the
    // previous rows are still there (the TRUNCATE was rolled back with the COPY).
    let malformed = "x\t1\t2026-03-01\ny\t2\t2026-13-45\n";
    let err = replace(&mut target, &cols, malformed).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("line 2") && text.contains("day") && text.contains("2026-13-45"),
        "{text}"
    );
    assert_eq!(dump(&db, "stg_sales"), after_two);

    // A duplicate id hits the primary key: same guarantee.
    let err = replace(&mut target, &cols, "x\t1\t\\N\nx\t2\t\\N\n").unwrap_err();
    assert!(err.to_string().contains("duplicate key"), "{err}");
    assert_eq!(dump(&db, "stg_sales"), after_two);

    // A reader failing half-way: same guarantee.
    let mut failing = FailingReader::new("x\t1\t\\N\n");
    let err = target
        .replace_staging("stg_sales", &cols, &mut failing)
        .unwrap_err();
    assert!(matches!(err, PgError::Read { .. }), "{err}");
    assert_eq!(dump(&db, "stg_sales"), after_two);

    // A new layout re-creates the table.
    let new_cols = vec![col("amount", "DOUBLE PRECISION"), col("note", "TEXT")];
    assert_eq!(replace(&mut target, &new_cols, "e\t5\thi\n").unwrap(), 1);
    assert_eq!(dump(&db, "stg_sales"), vec!["(e,5,hi)"]);

    // A CRM table is never taken for a staging table.
    target
        .prepare_crm_table("clients", &clients_columns())
        .unwrap();
    let err = target
        .replace_staging("clients", &[col("name", "TEXT")], &mut "q\tQ\n".as_bytes())
        .unwrap_err();
    assert!(matches!(err, PgError::NotAStagingTable { .. }), "{err}");
}

/// Yields `prefix`, then fails like a broken network share.
struct FailingReader {
    prefix: Vec<u8>,
    pos: usize,
}

impl FailingReader {
    fn new(prefix: &str) -> Self {
        FailingReader {
            prefix: prefix.as_bytes().to_vec(),
            pos: 0,
        }
    }
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        Err(std::io::Error::other("connection to the file share lost"))
    }
}

#[test]
fn an_error_inside_upsert_copy_rolls_back_everything() {
    let db = TestDb::new("upsert_rollback");
    let mut target = connect(&db);
    let cols = vec![col("name", "TEXT"), col("qty", "BIGINT")];
    target.prepare_crm_table("sales", &cols).unwrap();
    upsert(&mut target, "sales", &cols, "s1\tOld\t1\n", "r1");
    let before = dump(&db, "sales");

    // Malformed value on line 3, after a change and an insert on lines 1-2.
    let malformed = "s1\tNew\t1\ns2\tAdded\t2\ns3\tBad\tlots\n";
    let err = target
        .upsert_copy("sales", &cols, &mut malformed.as_bytes(), "r2")
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::Db { .. }), "{text}");
    assert!(
        text.contains("line 3") && text.contains("qty") && text.contains("lots"),
        "{text}"
    );
    assert!(!err.is_transient(), "{text}");
    assert_eq!(dump(&db, "sales"), before);

    // The input fails half-way.
    let mut failing = FailingReader::new("s1\tNew\t1\ns2\tAdded\t2\n");
    let err = target
        .upsert_copy("sales", &cols, &mut failing, "r2")
        .unwrap_err();
    assert!(err.to_string().contains("file share lost"), "{err}");
    assert_eq!(dump(&db, "sales"), before);

    // Duplicate ids are named.
    let dupes = "s1\tNew\t1\ns2\tA\t2\ns2\tB\t3\ns1\tC\t4\n";
    let err = target
        .upsert_copy("sales", &cols, &mut dupes.as_bytes(), "r2")
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PgError::DuplicateIds { .. }), "{text}");
    assert!(text.contains("s1, s2"), "{text}");
    assert_eq!(dump(&db, "sales"), before);

    // The INSERT itself fails (a CRM-side constraint) after the COPY went through.
    db.client()
        .batch_execute("ALTER TABLE crm.sales ADD CONSTRAINT qty_positive CHECK (qty > 0)")
        .unwrap();
    let violating = "s1\tNew\t1\ns2\tAdded\t-5\n";
    let err = target
        .upsert_copy("sales", &cols, &mut violating.as_bytes(), "r2")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("qty_positive") && text.contains("23514"),
        "{text}"
    );
    assert_eq!(dump(&db, "sales"), before);

    // The same connection is still usable (temp table gone, no transaction left open).
    let good = "s1\tNew\t1\ns2\tAdded\t2\n";
    assert_eq!(upsert(&mut target, "sales", &cols, good, "r3"), 2);
    assert_eq!(
        select(
            &db,
            "SELECT id, name, _updated_run FROM crm.sales ORDER BY id"
        ),
        vec![
            vec![s("s1"), s("New"), s("r3")],
            vec![s("s2"), s("Added"), s("r3")],
        ]
    );
}

#[test]
fn row_by_row_gives_the_same_table_as_copy() {
    let db = TestDb::new("row_by_row");
    let mut target = connect(&db);
    let mut cols = typed_columns();
    cols.push(create_only("origin", "TEXT"));
    let with_origin = |rows: &[Vec<Option<&'static str>>], origin: &'static str| {
        let rows: Vec<Vec<Option<&str>>> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.push(Some(origin));
                r
            })
            .collect();
        copy_text(&rows)
    };
    let first = with_origin(&typed_rows(), "first");
    // Second batch: t0 changes, t1 is identical, t2 only changes its create-only value,
    // t3 comes back after a soft delete, n1 is new.
    let mut second_rows = typed_rows()[..4].to_vec();
    second_rows[0][2] = Some("43");
    second_rows.push(vec![
        Some("n1"),
        Some("new"),
        Some("1"),
        Some("2.5"),
        Some("f"),
        Some("2026-11-21"),
        Some("2026-11-21 10:00:00"),
    ]);
    let second = with_origin(&second_rows, "second");

    let mut counts = Vec::new();
    for (table, by_row) in [("via_copy", false), ("via_rows", true)] {
        target.prepare_crm_table(table, &cols).unwrap();
        let run = |target: &mut PgTarget, text: &str, run_id: &str| {
            let mut input = text.as_bytes();
            if by_row {
                target.upsert_row_by_row(table, &cols, &mut input, run_id)
            } else {
                target.upsert_copy(table, &cols, &mut input, run_id)
            }
            .unwrap()
        };
        let a = run(&mut target, &first, "r1");
        let b = run(&mut target, &first, "r2");
        target
            .delete(table, &["t3".to_string()], DeleteMode::Soft, "r3")
            .unwrap();
        let c = run(&mut target, &second, "r4");
        counts.push((a, b, c));
    }
    assert_eq!(counts[0], (typed_rows().len() as u64, 0, 3));
    assert_eq!(counts[0], counts[1]);
    let copy_dump = dump(&db, "via_copy");
    assert_eq!(copy_dump.len(), typed_rows().len() + 1);
    assert_eq!(copy_dump, dump(&db, "via_rows"));

    // Same refusals as the COPY path.
    let err = target
        .upsert_row_by_row("via_rows", &cols, &mut "a\tb\n".as_bytes(), "r5")
        .unwrap_err();
    assert!(err.to_string().contains("line 1") && err.to_string().contains("expected 8"));
    let err = target
        .upsert_row_by_row(
            "via_rows",
            &[col("name", "TEXT")],
            &mut "d\tx\nd\ty\n".as_bytes(),
            "r5",
        )
        .unwrap_err();
    assert!(matches!(err, PgError::DuplicateIds { .. }), "{err}");
    let err = target
        .upsert_row_by_row(
            "via_rows",
            &[col("qty", "BIGINT")],
            &mut "q1\t1\nq2\tlots\n".as_bytes(),
            "r5",
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("line 2") && err.to_string().contains("lots"),
        "{err}"
    );
    assert_eq!(
        dump(&db, "via_rows"),
        copy_dump,
        "failed batches rolled back"
    );
}

#[test]
fn identifiers_from_recipes_are_quoted() {
    let db = TestDb::new("identifiers");
    let mut target = PgTarget::connect(&db.env_var, "my \"crm\"").unwrap();
    let table = "Sales \"2026\"; DROP TABLE x; --";
    let cols = vec![col("select", "TEXT"), col("Name With Caps", "BIGINT")];
    target.prepare_crm_table(table, &cols).unwrap();
    assert_eq!(upsert(&mut target, table, &cols, "k\tv\t7\n", "r1"), 1);
    assert_eq!(
        target
            .upsert_row_by_row(table, &cols, &mut "k\tw\t7\n".as_bytes(), "r2")
            .unwrap(),
        1
    );
    target
        .delete(table, &["k".to_string()], DeleteMode::Hard, "r3")
        .unwrap();
    target
        .replace_staging("stg \"x\"", &cols, &mut "k\tv\t7\n".as_bytes())
        .unwrap();
    let err = target
        .prepare_crm_table(table, &[col("_deleted", "TEXT")])
        .unwrap_err();
    assert!(matches!(err, PgError::ReservedColumn { .. }), "{err}");
}

/// Not a correctness test: prints rows/s of both upsert paths (run with --nocapture to see).
#[test]
fn throughput_copy_vs_row_by_row() {
    const ROWS: usize = 50_000;
    let db = TestDb::new("throughput");
    let mut target = connect(&db);
    let cols = vec![
        col("name", "TEXT"),
        col("city", "TEXT"),
        col("amount", "DOUBLE PRECISION"),
        col("qty", "BIGINT"),
        col("sold_on", "DATE"),
        col("paid", "BOOLEAN"),
    ];
    let mut text = String::new();
    for i in 0..ROWS {
        text.push_str(&format!(
            "client-{i:06}\tNúñez {i}\tCity\t{}.5\t{}\t2026-{:02}-{:02}\t{}\n",
            i % 1000,
            i % 7,
            i % 12 + 1,
            i % 28 + 1,
            if i % 2 == 0 { "t" } else { "f" }
        ));
    }
    let measure = |target: &mut PgTarget, table: &str, by_row: bool, run_id: &str| {
        let started = Instant::now();
        let mut input = text.as_bytes();
        let changed = if by_row {
            target.upsert_row_by_row(table, &cols, &mut input, run_id)
        } else {
            target.upsert_copy(table, &cols, &mut input, run_id)
        }
        .unwrap();
        let secs = started.elapsed().as_secs_f64();
        (changed, secs, ROWS as f64 / secs)
    };
    for (table, by_row) in [("bench_copy", false), ("bench_rows", true)] {
        target.prepare_crm_table(table, &cols).unwrap();
        let (inserted, secs, rate) = measure(&mut target, table, by_row, "r1");
        assert_eq!(inserted, ROWS as u64);
        println!(
            "{:>12}: insert {ROWS} rows in {secs:.2} s = {rate:>9.0} rows/s",
            if by_row { "row-by-row" } else { "COPY" }
        );
        // Row by row costs one round trip per row whether or not it changes anything: the
        // unchanged case is only measured for COPY, to keep the suite short.
        if !by_row {
            let (unchanged, secs, rate) = measure(&mut target, table, by_row, "r2");
            assert_eq!(unchanged, 0);
            println!(
                "{:>12}: re-upsert {ROWS} unchanged rows in {secs:.2} s = {rate:>9.0} rows/s",
                "COPY"
            );
        }
    }
}
