//! Disk and database faults: a full disk at several points of a run, a corrupt snapshot, a
//! locked state database, the PostgreSQL server dropping the connection mid-COPY. Each run
//! fails with a clear message (never a panic), the previous state stands, and the next run
//! converges on what an uninterrupted run gives.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use dropsync_testkit::postgres::TestDb;
use support::{clients_csv, Workdir, WORKSPACE};

fn crm(w: &Workdir) -> Vec<String> {
    w.rows(
        "crm.sqlite",
        "SELECT id, razon_social, email, _deleted FROM clientes ORDER BY id",
    )
}

/// Everything a run leaves that must converge: the CRM (bookkeeping run ids aside), the
/// staged clients and the snapshot as the next diff sees it (through `plan`'s counts).
fn outcome(w: &Workdir) -> Vec<String> {
    let mut v = crm(w);
    v.extend(w.rows(
        "staging.sqlite",
        "SELECT id, email FROM clientes ORDER BY id",
    ));
    v
}

fn first() -> String {
    clients_csv(300, &[], &[])
}

fn second() -> String {
    clients_csv(320, &[4, 9, 17], &(20..120).collect::<Vec<_>>())
}

/// A then B, uninterrupted: its outcome and its CRM.
fn reference() -> (Vec<String>, Vec<String>) {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &first());
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &second());
    assert_eq!(w.run().code, 0);
    (outcome(&w), crm(&w))
}

/// `dropsync run` with file writes limited to `kib` KiB (RLIMIT_FSIZE through the shell's
/// `ulimit -f`, SIGXFSZ ignored so writes fail with EFBIG instead of killing the process).
fn run_with_fsize(w: &Workdir, kib: u64) -> (i32, String) {
    let o = Command::new("sh")
        .current_dir(w.path())
        .env("RUST_LOG", "warn")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {kib}; exec \"$0\" run --inbox in --json {}",
            WORKSPACE.join(" ")
        ))
        .arg(env!("CARGO_BIN_EXE_dropsync"))
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_anywhere_in_a_run_fails_clearly_and_the_next_run_converges() {
    let (want, crm_want) = reference();
    // Sizes that stop the run in different places: the journal, the snapshots, staging.sqlite
    // or the workbook (the workspace's files grow past them at different moments).
    let mut failed = 0;
    for kib in [24, 64, 96, 128, 192, 256, 512] {
        let w = Workdir::new();
        w.cp1252("clientes.csv", &first());
        assert_eq!(w.run().code, 0);
        let crm_before = crm(&w);
        w.cp1252("clientes.csv", &second());
        let (code, err) = run_with_fsize(&w, kib);
        assert_ne!(code, 101, "{kib} KiB: panicked: {err}");
        eprintln!(
            "{kib} KiB: exit {code}: {}",
            err.lines().find(|l| l.starts_with("error")).unwrap_or("")
        );
        if code != 0 {
            failed += 1;
            assert_eq!(code, 1, "{kib} KiB: {err}");
            assert!(
                err.contains("File too large")
                    || err.contains("disk I/O error")
                    || err.contains("full"),
                "{kib} KiB: the message must say why: {err}"
            );
            // The CRM is untouched (failed before the journal committed), or B, or the
            // journal is committed and waits for the next run to complete it.
            let now = crm(&w);
            let pending: i64 = w.q("state/state.sqlite", "SELECT count(*) FROM pending");
            assert!(
                now == crm_before || now == crm_want || pending == 1,
                "{kib} KiB: {err}"
            );
        }
        let r = w.run();
        assert_eq!(r.code, 0, "{kib} KiB: the next run: {}", r.stderr);
        assert_eq!(outcome(&w), want, "{kib} KiB");
        // And nothing is left to do after it.
        assert_eq!(w.run().json["crm_rows_written"], 0, "{kib} KiB");
    }
    assert!(
        failed >= 3,
        "the limits must stop most of these runs ({failed})"
    );
}

#[test]
fn a_corrupt_snapshot_stops_the_run_before_the_crm_and_says_how_to_recover() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &first());
    assert_eq!(w.run().code, 0);
    let before = outcome(&w);
    let snap = w.out().join("state/snapshots/clientes.parquet");
    let bytes = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &bytes[..bytes.len() / 2]).unwrap();
    w.cp1252("clientes.csv", &second());
    let r = w.run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("clientes.parquet"), "{}", r.stderr);
    assert!(r.stderr.contains("remove it"), "{}", r.stderr);
    assert_eq!(outcome(&w), before, "nothing changed");
    // The documented way out: remove it, the entity reloads in full.
    std::fs::remove_file(&snap).unwrap();
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let crm: Vec<String> = w.rows(
        "crm.sqlite",
        "SELECT id, email FROM clientes WHERE _deleted = 0 AND CAST(id AS INTEGER) <= 320 ORDER BY id",
    );
    // 320 live: the 3 clients gone from the export stay (the documented cost of a reload).
    assert_eq!(crm.len(), 320);
    assert!(crm.iter().any(|r| r.ends_with("nuevo20@mail.com")));
}

/// A snapshot kept as a base and a delta: a corrupt delta stops the run before the CRM and
/// names the delta; removed, the entity is compared with its older base, and the changes
/// since are written again (idempotent), so the CRM ends as an uninterrupted sequence's.
#[test]
fn a_corrupt_snapshot_delta_stops_the_run_and_removing_it_converges() {
    let small = clients_csv(300, &[4], &[7, 8]);
    let next = clients_csv(300, &[4, 5], &[7, 8, 9]);
    let clean = Workdir::new();
    for drop in [first(), small.clone(), next.clone()] {
        clean.cp1252("clientes.csv", &drop);
        assert_eq!(clean.run().code, 0);
    }
    let w = Workdir::new();
    w.cp1252("clientes.csv", &first());
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &small);
    assert_eq!(w.run().code, 0);
    let delta = w.out().join("state/snapshots/clientes.delta.parquet");
    assert!(delta.exists(), "3 of 300 clients changed: kept as a delta");
    let before = outcome(&w);
    let bytes = std::fs::read(&delta).unwrap();
    std::fs::write(&delta, &bytes[..bytes.len() / 2]).unwrap();
    w.cp1252("clientes.csv", &next);
    let r = w.run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("clientes.delta.parquet"), "{}", r.stderr);
    assert!(
        r.stderr.contains("compared with its older base"),
        "{}",
        r.stderr
    );
    assert_eq!(outcome(&w), before, "nothing changed");
    std::fs::remove_file(&delta).unwrap();
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(crm(&w), crm(&clean));
    assert_eq!(w.run().json["crm_rows_written"], 0);
}

#[test]
fn a_locked_state_database_fails_the_run_clearly_and_the_next_run_converges() {
    let (want, _) = reference();
    let w = Workdir::new();
    w.cp1252("clientes.csv", &first());
    assert_eq!(w.run().code, 0);
    let before = outcome(&w);
    w.cp1252("clientes.csv", &second());
    {
        let lock = rusqlite::Connection::open(w.out().join("state/state.sqlite")).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let t = Instant::now();
        let r = w.run();
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("state.sqlite"), "{}", r.stderr);
        assert!(r.stderr.contains("locked"), "{}", r.stderr);
        assert!(t.elapsed() < Duration::from_secs(60));
        lock.execute_batch("ROLLBACK").unwrap();
    }
    assert_eq!(outcome(&w), before, "nothing changed");
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(outcome(&w), want);
}

/// The server drops the connection while the run is copying rows into PostgreSQL: the run
/// fails saying the CRM was unavailable, the next run completes the journal and converges.
#[test]
fn postgres_dropping_the_connection_mid_copy_fails_clearly_and_the_next_run_converges() {
    let db = TestDb::new(&format!("faults_{}", std::process::id()));
    let w = Workdir::new();
    let cfg = format!(
        "\n[target]\nkind = \"postgres\"\n[target.postgres]\nurl_env = \"{}\"\nschema = \"crm\"\nstaging_schema = \"staging\"\n",
        db.env_var
    );
    let p = w.recipes().join("pipeline.toml");
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + &cfg).unwrap();
    let big = clients_csv(20_000, &[], &[]);
    w.cp1252("clientes.csv", &big);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(w.path())
        .env("RUST_LOG", "warn")
        .args(["run", "--inbox", "in", "--json"])
        .args(WORKSPACE)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut admin = db.client();
    let t = Instant::now();
    let mut terminated = 0;
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(120) {
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND datname = current_database() \
                 AND query ILIKE 'COPY%'",
                &[],
            )
            .unwrap();
        terminated += rows.len();
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{err}");
    if terminated > 0 {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("CRM"), "{err}");
    }
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM crm.clientes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 20_000);
    assert_eq!(w.run().json["crm_rows_written"], 0);
    eprintln!("COPY sessions terminated: {terminated}");
}
