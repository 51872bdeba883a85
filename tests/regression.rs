//! One test per bug found in dropsync's promises (issue 11), named after what must hold.
//! Each failed before its fix.

mod support;

use support::{clients_csv, Workdir};

const BUSINESS: &str = "SELECT id, email, _deleted FROM clientes ORDER BY id";

/// Drop A, then drop B killed between the CRM commit and the snapshot advance, then drop A
/// again: the CRM must be what A -> B -> A leaves, not keep B's rows (the rerun used to diff A
/// against the old snapshot A and see nothing to do).
#[test]
fn a_kill_between_crm_and_snapshots_followed_by_another_drop_leaves_the_crm_exact() {
    let a = clients_csv(40, &[], &[]);
    let b = clients_csv(40, &[5, 6], &[3, 9]);
    let clean = Workdir::new();
    for drop in [&a, &b, &a] {
        clean.cp1252("clientes.csv", drop);
        assert_eq!(clean.run().code, 0);
    }
    let want = clean.rows("crm.sqlite", BUSINESS);

    for point in ["after-upserts", "before-snapshots"] {
        let w = Workdir::new();
        w.cp1252("clientes.csv", &a);
        assert_eq!(w.run().code, 0);
        w.cp1252("clientes.csv", &b);
        let killed = w.run_with_env(&[("DROPSYNC_FAILPOINT", point)]);
        assert_ne!(killed.code, 0, "{point}: the failpoint must kill the run");
        w.cp1252("clientes.csv", &a);
        let r = w.run();
        assert_eq!(r.code, 0, "{point}: {}", r.stderr);
        assert_eq!(w.rows("crm.sqlite", BUSINESS), want, "{point}");
        // The killed run is on record as completed by the next one.
        let recovered: i64 = w.q(
            "state/state.sqlite",
            "SELECT count(*) FROM runs WHERE status = 'ok' AND summary LIKE '%recovered_by%'",
        );
        assert_eq!(recovered, 1, "{point}");
    }
}

/// An approval killed after its CRM deletes but before the snapshot dropped those rows: the
/// next run (of the same truncated drop) must find the approval completed, not hold the same
/// deletes again over a CRM that already lost them.
#[test]
fn an_approval_killed_after_its_crm_deletes_is_completed_by_the_next_run() {
    let full = clients_csv(40, &[], &[]);
    let truncated = clients_csv(20, &[], &[]);
    let w = Workdir::new();
    w.cp1252("clientes.csv", &full);
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &truncated);
    let held = w.run();
    assert_eq!(held.code, 3, "{}", held.stderr);
    let run_id = held.json["run_id"].as_str().unwrap().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(w.path())
        .env("DROPSYNC_FAILPOINT", "approve-after-delete")
        .args(["approve", &run_id])
        .args(support::WORKSPACE)
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failpoint must kill approve");
    let r = w.run();
    assert_eq!(
        r.code, 0,
        "the approval must have been completed: {}",
        r.stderr
    );
    assert_eq!(r.json["crm_rows_written"], 0);
    let deleted: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 1",
    );
    assert_eq!(deleted, 20);
    let status: String = w.q(
        "state/state.sqlite",
        &format!("SELECT status FROM runs WHERE run_id = '{run_id}'"),
    );
    assert_eq!(status, "approved");
}

/// While the guard holds a truncated clientes export, the held clients still exist for every
/// reference: their sales are not rejected and their units keep their client link (the
/// optional link used to be emptied in the CRM before anyone approved anything).
#[test]
fn held_rows_still_count_for_references_and_their_children_do_not_change() {
    let w = Workdir::new();
    let gen = w.cmd(&["gen", "--clients", "80", "--seed", "3", "--out", "in"]);
    assert!(gen.status.success());
    assert_eq!(w.run().code, 0);
    let links = "SELECT count(*) FROM unidades WHERE cliente_id IS NOT NULL";
    let linked: i64 = w.q("crm.sqlite", links);
    assert!(linked > 10, "{linked}");
    let before_units = w.rows("crm.sqlite", "SELECT * FROM unidades ORDER BY id");
    let before_sales = w.rows("crm.sqlite", "SELECT * FROM ventas ORDER BY id");

    // clientes cut to its first 10 records: the guard holds the rest.
    support::keep_csv_records(&w.inbox().join("clientes.csv"), 10);
    let r = w.run();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.json["entities"]["clientes"]["held_deletes"]
            .as_u64()
            .unwrap()
            > 50
    );
    let ref_rejects: i64 = w.q(
        "staging.sqlite",
        &format!(
            "SELECT count(*) FROM rejects WHERE run_id = '{}' AND rule LIKE 'ref.%'",
            r.json["run_id"].as_str().unwrap()
        ),
    );
    assert_eq!(ref_rejects, 0, "held clients must still resolve");
    assert_eq!(w.q::<i64>("crm.sqlite", links), linked);
    assert_eq!(
        w.rows("crm.sqlite", "SELECT * FROM unidades ORDER BY id"),
        before_units
    );
    assert_eq!(
        w.rows("crm.sqlite", "SELECT * FROM ventas ORDER BY id"),
        before_sales
    );
    let deleted: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 1",
    );
    assert_eq!(deleted, 0);
}

/// A value longer than Excel's cell limit used to fail the run after the CRM and snapshots
/// had committed (and every later run too): the workbook cell is cut with a marker, the full
/// value stays in staging.sqlite and the CRM, and the run is ok.
#[test]
fn a_cell_over_excels_limit_is_cut_in_the_workbook_and_the_run_succeeds() {
    let w = Workdir::new();
    let long = "Calle ".repeat(7_000);
    let csv = clients_csv(5, &[], &[]).replace("Calle 3;", &format!("{long};"));
    w.cp1252("clientes.csv", &csv);
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json["status"], "ok");
    let staged: i64 = w.q(
        "staging.sqlite",
        "SELECT max(length(domicilio)) FROM clientes",
    );
    assert!(staged >= 40_000, "{staged}");
    let crm: i64 = w.q("crm.sqlite", "SELECT max(length(domicilio)) FROM clientes");
    assert_eq!(crm, staged);
    let zip = std::fs::File::open(w.out().join("staging.xlsx")).unwrap();
    let mut archive = zip::ZipArchive::new(zip).unwrap();
    let mut sheet = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut sheet,
    )
    .unwrap();
    assert!(sheet.contains('…'), "the cut cell carries its marker");
    // The next run is ok too (it used to fail on every later run).
    assert_eq!(w.run().code, 0);
}

/// Counts and shares that make no sense are usage errors (exit 2), caught by clap before
/// anything runs.
#[test]
fn gen_and_bench_refuse_zero_clients_and_shares_outside_zero_to_one() {
    let w = Workdir::new();
    for args in [
        &["gen", "--clients", "0", "--out", "x"][..],
        &["gen", "--clients", "10", "--out", "x", "--changed", "1.5"],
        &["bench", "--sizes", "100,0"],
    ] {
        let o = w.cmd(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!w.path().join("x").exists(), "{args:?}: nothing written");
    }
}

/// Logs on a stderr that is not a terminal (cron mail, log collectors) carry no colour codes.
#[test]
fn logs_to_a_pipe_carry_no_escape_sequences() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(3, &[], &[]));
    w.utf8("notes.txt", "not an export\n");
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("notes.txt"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

/// `dropsync ARGS` on the workspace with its output's reader gone before anything is printed.
fn with_reader_gone(w: &Workdir, args: &[&str]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(w.path())
        .env("RUST_LOG", "warn")
        .args(args)
        .args(support::WORKSPACE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The read end closes long before the command (hundreds of milliseconds) prints.
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// `dropsync run --json | head -c 1`: the reader goes away before the run prints. The run's
/// work is done and committed, so its exit code is the run's (0), not a panic's 101
/// ("failed printing to stdout: Broken pipe").
#[test]
fn a_reader_that_goes_away_does_not_turn_a_completed_run_into_a_failure() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(40, &[], &[]));
    let out = with_reader_gone(&w, &["run", "--inbox", "in", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        w.q::<i64>("crm.sqlite", "SELECT count(*) FROM clientes"),
        40,
        "and the run's writes are there"
    );
    // The same for a command whose output is all it does.
    let out = with_reader_gone(&w, &["runs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
