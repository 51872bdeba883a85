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
