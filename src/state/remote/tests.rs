use super::*;
use crate::state::State;
use dropsync_testkit::postgres::TestDb;

fn remote(db: &TestDb, tenant: &str) -> RemoteState {
    RemoteState::new(std::env::var(&db.env_var).unwrap(), tenant.into())
}

/// Every file of a workspace's state folder but the marker, with its bytes, and the runs
/// state.sqlite records.
fn contents(out: &Path) -> (Vec<Local>, Vec<String>) {
    let dir = out.join("state");
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files).unwrap();
    files.sort();
    let state = State::open(out).unwrap();
    let runs = state
        .runs(100)
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r.run_id, r.status))
        .collect();
    (files, runs)
}

fn write_run(out: &Path, run_id: &str, snapshot: &[u8]) -> State {
    let state = State::open(out).unwrap();
    state.begin_run(run_id, "2026-12-02T00:00:00.000Z").unwrap();
    std::fs::write(out.join("state/snapshots/clientes.parquet"), snapshot).unwrap();
    std::fs::create_dir_all(out.join(format!("state/pending/{run_id}"))).unwrap();
    std::fs::write(
        out.join(format!("state/pending/{run_id}/clientes.inserts.parquet")),
        b"rows",
    )
    .unwrap();
    state
}

#[test]
fn a_fresh_folder_fetches_what_another_published() {
    let db = TestDb::new("remote_state_fetch");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let state = write_run(a.path(), "r1", b"base");
    remote(&db, "norte").publish(a.path(), &state.db).unwrap();
    remote(&db, "norte").hydrate(b.path()).unwrap();
    assert_eq!(contents(b.path()), contents(a.path()));
    assert!(contents(b.path()).1.contains(&"r1 running".to_string()));
    // Another tenant has nothing published: its folder stays as it is.
    let c = tempfile::tempdir().unwrap();
    remote(&db, "sur").hydrate(c.path()).unwrap();
    assert!(!c.path().join("state").exists());
}

#[test]
fn a_stale_folder_cannot_overwrite_and_is_brought_up_to_date() {
    let db = TestDb::new("remote_state_fence");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let state_a = write_run(a.path(), "r1", b"base");
    remote(&db, "norte").publish(a.path(), &state_a.db).unwrap();
    remote(&db, "norte").hydrate(b.path()).unwrap();
    // b moves on: a new run, the pending journal done, the snapshot rewritten.
    let state_b = write_run(b.path(), "r2", b"next");
    std::fs::remove_dir_all(b.path().join("state/pending")).unwrap();
    remote(&db, "norte").publish(b.path(), &state_b.db).unwrap();
    // a still holds generation 1: refused, nothing overwritten.
    let err = remote(&db, "norte")
        .publish(a.path(), &state_a.db)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another worker published since"), "{err}");
    drop(state_a);
    remote(&db, "norte").hydrate(a.path()).unwrap();
    assert_eq!(contents(a.path()), contents(b.path()));
    assert!(
        !a.path().join("state/pending").exists(),
        "removed files are gone"
    );
    assert_eq!(
        std::fs::read(a.path().join("state/snapshots/clientes.parquet")).unwrap(),
        b"next"
    );
}

#[test]
fn stored_paths_never_leave_the_state_folder() {
    let root = Path::new("/w/state");
    assert_eq!(
        safe_join(root, "snapshots/clientes.parquet"),
        Some(root.join("snapshots/clientes.parquet"))
    );
    for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "a\\..\\b", ""] {
        assert_eq!(safe_join(root, bad), None, "{bad}");
    }
}

fn local_changes(out: &Path) -> i64 {
    let state = State::open(out).unwrap();
    state
        .db
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap()
}

fn log_change(state: &State, run_id: &str, id: &str, change: &str) {
    state
        .db
        .execute(
            "INSERT INTO changes (run_id, entity, id, change, fields, line) \
             VALUES (?1, 'clientes', ?2, ?3, 'email', 7)",
            rusqlite::params![run_id, id, change],
        )
        .unwrap();
}

/// The change log leaves every publication's copy for `dropsync_state.changes`: each row is
/// sent once, a fresh folder fetches none of it, and `changes_of` reads it back in order.
#[test]
fn the_change_log_moves_to_postgres_and_each_row_is_sent_once() {
    let db = TestDb::new("remote_state_changes");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let norte = remote(&db, "norte");
    let state = write_run(a.path(), "r1", b"base");
    log_change(&state, "r1", "7", "inserted");
    log_change(&state, "r1", "8", "inserted");
    norte.publish(a.path(), &state.db).unwrap();
    assert_eq!(
        local_changes(a.path()),
        0,
        "published rows leave the folder"
    );
    norte.hydrate(b.path()).unwrap();
    assert_eq!(local_changes(b.path()), 0, "a fetch brings none");

    log_change(&state, "r2", "7", "updated");
    norte.publish(a.path(), &state.db).unwrap();
    let seven: Vec<(String, String)> = norte
        .changes_of("clientes", "7")
        .unwrap()
        .into_iter()
        .map(|c| (c.run_id, c.change))
        .collect();
    assert_eq!(
        seven,
        [
            ("r1".into(), "inserted".into()),
            ("r2".into(), "updated".into())
        ]
    );
    assert_eq!(norte.changes_of("clientes", "8").unwrap().len(), 1);
    assert!(remote(&db, "sur")
        .changes_of("clientes", "7")
        .unwrap()
        .is_empty());

    // A kill after the commit, before the rows left the folder and the marker moved: the
    // folder still holds them, at the old generation. The next run's fetch replaces it, and
    // its publication sends nothing twice.
    log_change(&state, "r2", "7", "updated");
    std::fs::write(a.path().join("state").join(MARKER), "1").unwrap();
    drop(state);
    norte.hydrate(a.path()).unwrap();
    assert_eq!(local_changes(a.path()), 0);
    let state = State::open(a.path()).unwrap();
    norte.publish(a.path(), &state.db).unwrap();
    assert_eq!(norte.changes_of("clientes", "7").unwrap().len(), 2);
}

/// A snapshot promoted from the journal by a rename is the same bytes under another path:
/// the next publication sends no content, and contents nothing points to are dropped.
#[test]
fn a_content_is_sent_once_whatever_its_path() {
    let db = TestDb::new("remote_state_blobs");
    let a = tempfile::tempdir().unwrap();
    let norte = remote(&db, "norte");
    let state = write_run(a.path(), "r1", b"base");
    let journaled = a.path().join("state/pending/r1/clientes.snapshot.parquet");
    std::fs::write(&journaled, b"the new snapshot").unwrap();
    let first = norte.publish(a.path(), &state.db).unwrap();
    assert!(first.bytes >= b"the new snapshot".len());
    // The run ends: the journal's snapshot becomes the entity's, the journal goes.
    std::fs::rename(
        &journaled,
        a.path().join("state/snapshots/clientes.parquet"),
    )
    .unwrap();
    std::fs::remove_dir_all(a.path().join("state/pending")).unwrap();
    let second = norte.publish(a.path(), &state.db).unwrap();
    // Only state.sqlite's copy changed (the run's record is in it).
    assert!(second.contents <= 1, "{second:?}");
    assert!(second.bytes < first.bytes, "{first:?} then {second:?}");
    let mut client = db.client();
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM dropsync_state.blobs b WHERE tenant = 'norte' AND NOT EXISTS \
             (SELECT 1 FROM dropsync_state.files f WHERE f.tenant = b.tenant AND f.hash = b.hash)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
    let b = tempfile::tempdir().unwrap();
    norte.hydrate(b.path()).unwrap();
    assert_eq!(contents(b.path()), contents(a.path()));
}

/// A database published by an earlier version (contents inline in `files`, schema version
/// 3) is migrated in place: the next fetch gets the same files.
#[test]
fn state_published_before_contents_were_shared_is_migrated() {
    let db = TestDb::new("remote_state_v3");
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE SCHEMA dropsync_state; \
             CREATE TABLE dropsync_state.migrations (version INT PRIMARY KEY, \
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        )
        .unwrap();
    for (i, sql) in MIGRATIONS.iter().take(3).enumerate() {
        client.batch_execute(sql).unwrap();
        client
            .execute(
                "INSERT INTO dropsync_state.migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .unwrap();
    }
    let a = tempfile::tempdir().unwrap();
    let state = write_run(a.path(), "r1", b"base");
    drop(state);
    let copy = a.path().join("state/state.sqlite");
    let mut files = vec![Local {
        path: "state.sqlite".into(),
        content: std::fs::read(&copy).unwrap(),
        modified_ns: None,
    }];
    collect(&a.path().join("state"), &a.path().join("state"), &mut files).unwrap();
    for f in &files {
        let hash = blake3::hash(&f.content).to_hex().to_string();
        client
            .execute(
                "INSERT INTO dropsync_state.files (tenant, path, hash, content, modified_ns) \
                 VALUES ('norte', $1, $2, $3, $4)",
                &[&f.path, &hash, &f.content, &f.modified_ns],
            )
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO dropsync_state.heads VALUES ('norte', 1, now())",
            &[],
        )
        .unwrap();
    let b = tempfile::tempdir().unwrap();
    remote(&db, "norte").hydrate(b.path()).unwrap();
    assert_eq!(contents(b.path()), contents(a.path()));
    let version: i32 = client
        .query_one("SELECT max(version) FROM dropsync_state.migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(version as usize, MIGRATIONS.len());
}
