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
