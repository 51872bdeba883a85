//! Durable state of a workspace (`<out>/state/`): each entity's last accepted snapshot
//! (parquet, a base and a delta of what changed since, advanced by atomic rename only after
//! that entity's CRM writes committed: see `snapshots`), and
//! `state.sqlite` with the runs, their files, the deletes held by the guard and the change
//! log that `explain` reads.

pub mod cluster_lock;
mod inputs;
pub mod journal;
pub mod lock;
pub mod remote;
mod snapshots;

pub use inputs::EntityInputs;
pub use snapshots::NextSnapshot;

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, ToSql};

use crate::model::{FileStatus, HoldState, RunState};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("snapshot {path}: {source}")]
    Snapshot { path: PathBuf, source: PolarsError },
    #[error("snapshot {path} is unreadable ({source}); the run stopped before touching the CRM. Restore the file from a backup, or remove it to reload the entity in full (every row is upserted again; rows gone from the export are then not deleted)")]
    CorruptSnapshot { path: PathBuf, source: PolarsError },
    #[error("snapshot delta {path} is unreadable ({source}); the run stopped before touching the CRM. Restore the file from a backup, or remove it: the entity is then compared with its older base, and every change since is written again (the CRM ends the same)")]
    CorruptDelta { path: PathBuf, source: PolarsError },
    #[error("run {run_id}'s journal: {message}")]
    Journal { run_id: String, message: String },
    /// The tenant's state in PostgreSQL could not be fetched or published.
    #[error("tenant {tenant}'s state in PostgreSQL: {message}")]
    Remote { tenant: String, message: String },
    #[error("state folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A command that reads what runs left was pointed at a folder no run wrote: answering
    /// "nothing found" there would look like an empty history.
    #[error("no dropsync workspace at {}: it has no state/state.sqlite. Point --out at the folder a run wrote (the demo writes demo/: --out demo), or run `dropsync run --out {}` first", out.display(), out.display())]
    NoWorkspace { out: PathBuf },
}

pub struct State {
    dir: PathBuf,
    db_path: PathBuf,
    pub db: Connection,
}

/// Held delete IDs per entity.
pub type HeldDeletes = Vec<(String, Vec<String>)>;

/// One row of the change log: ID, `inserted|updated|deleted`, changed fields, source line.
pub type ChangeRow<'a> = (String, &'a str, Option<String>, Option<u32>);

/// One run as listed by `dropsync runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunState,
    pub summary: Option<serde_json::Value>,
}

/// Statuses are stored as their words; reading one that is not in the vocabulary fails where it
/// is read, naming the word, instead of travelling on as a string nobody compares right.
macro_rules! stored_as_words {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<$t> {
                v.as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )*};
}

stored_as_words!(RunState, HoldState, FileStatus);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
  status TEXT NOT NULL, summary TEXT);
CREATE TABLE IF NOT EXISTS run_files (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, file TEXT NOT NULL, hash TEXT NOT NULL,
  bytes INTEGER NOT NULL, encoding TEXT, status TEXT NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS held_deletes (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'held', PRIMARY KEY (run_id, entity, id));
CREATE TABLE IF NOT EXISTS changes (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, change TEXT NOT NULL,
  fields TEXT, line INTEGER);
CREATE INDEX IF NOT EXISTS changes_by_row ON changes (entity, id);
CREATE TABLE IF NOT EXISTS processed_files (
  hash TEXT PRIMARY KEY, name TEXT NOT NULL, run_id TEXT NOT NULL, status TEXT NOT NULL,
  at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS last_content (
  entity TEXT PRIMARY KEY, hash TEXT NOT NULL, run_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
  run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, meta TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entity_inputs (
  entity TEXT PRIMARY KEY, file_hash TEXT NOT NULL, recipe_key TEXT NOT NULL,
  parents_key TEXT NOT NULL, ids_hash INTEGER NOT NULL, run_id TEXT NOT NULL,
  summary TEXT NOT NULL, snapshot_stamp TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remote_seen (
  source TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (source, key));
";

/// Where a workspace keeps its state database.
pub fn db_path(out: &Path) -> PathBuf {
    out.join("state").join("state.sqlite")
}

/// Fails with [`StateError::NoWorkspace`] unless a run has written `out`.
pub fn require_workspace(out: &Path) -> Result<(), StateError> {
    if db_path(out).is_file() {
        Ok(())
    } else {
        Err(StateError::NoWorkspace {
            out: out.to_path_buf(),
        })
    }
}

impl State {
    /// The workspace's state as a dry run sees it, creating nothing: the existing database
    /// read-only, or, before the first run, an empty one in memory.
    pub fn open_for_plan(out: &Path) -> Result<State, StateError> {
        let dir = out.join("state");
        let db_path = db_path(out);
        let db = if db_path.is_file() {
            crate::support::read_only_db::open(&db_path)
        } else {
            Connection::open_in_memory()
        }
        .map_err(|source| StateError::Db {
            path: db_path.clone(),
            source,
        })?;
        let state = State { dir, db_path, db };
        if !state.db_path.is_file() {
            state.db.execute_batch(SCHEMA).map_err(|e| state.err(e))?;
        }
        Ok(state)
    }

    pub fn open(out: &Path) -> Result<State, StateError> {
        let dir = out.join("state");
        std::fs::create_dir_all(dir.join("snapshots")).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        let db_path = dir.join("state.sqlite");
        let db = Connection::open(&db_path).map_err(|source| StateError::Db {
            path: db_path.clone(),
            source,
        })?;
        let state = State { dir, db_path, db };
        state
            .db
            .execute_batch(&format!(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; {SCHEMA}"
            ))
            .map_err(|e| state.err(e))?;
        state.drop_outdated_caches().map_err(|e| state.err(e))?;
        Ok(state)
    }

    /// `entity_inputs` only says what each entity's last pass was computed from; a table
    /// laid out by an older release is dropped, not converted, and each entity's next run
    /// is a full pass that records it anew.
    fn drop_outdated_caches(&self) -> rusqlite::Result<()> {
        let current = self
            .db
            .prepare(
                "SELECT 1 FROM pragma_table_info('entity_inputs') WHERE name = 'snapshot_stamp'",
            )?
            .exists([])?;
        if !current {
            tracing::info!(
                "entity_inputs has an older layout; dropped (next runs are full passes)"
            );
            self.db
                .execute_batch(&format!("DROP TABLE IF EXISTS entity_inputs; {SCHEMA}"))?;
        }
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    /// Runs left `running` by a crash are marked `interrupted`: their work is redone by the
    /// next run, which diffs against snapshots that only advanced after committed writes.
    pub fn begin_run(&self, run_id: &str, started_at: &str) -> Result<usize, StateError> {
        let stale = self
            .db
            .execute(
                "UPDATE runs SET status = ?1 WHERE status = ?2",
                params![RunState::Interrupted, RunState::Running],
            )
            .map_err(|e| self.err(e))?;
        self.db
            .execute(
                "INSERT INTO runs (run_id, started_at, status) VALUES (?1, ?2, ?3)",
                params![run_id, started_at, RunState::Running],
            )
            .map_err(|e| self.err(e))?;
        Ok(stale)
    }

    pub fn finish_run(
        &self,
        run_id: &str,
        status: RunState,
        summary: &serde_json::Value,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, summary = ?4 WHERE run_id = ?1",
                params![run_id, status, now(), summary.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_status(&self, run_id: &str, status: RunState) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE runs SET status = ?2 WHERE run_id = ?1",
                params![run_id, status],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record_file(
        &self,
        run_id: &str,
        entity: &str,
        file: &str,
        hash: &str,
        bytes: u64,
        encoding: Option<&str>,
        status: FileStatus,
        reason: Option<&str>,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT INTO run_files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    run_id,
                    entity,
                    file,
                    hash,
                    bytes as i64,
                    encoding,
                    status,
                    reason
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Held deletes of a run per entity, and how many of them were superseded.
    pub fn held(&self, run_id: &str) -> Result<(HeldDeletes, usize), StateError> {
        let mut stmt = self
            .db
            .prepare("SELECT entity, id, state FROM held_deletes WHERE run_id = ?1 ORDER BY entity, rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, HoldState>(2)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut superseded = 0;
        for row in rows {
            let (entity, id, state) = row.map_err(|e| self.err(e))?;
            if state != HoldState::Held {
                superseded += (state == HoldState::Superseded) as usize;
                continue;
            }
            match out.last_mut() {
                Some((e, ids)) if *e == entity => ids.push(id),
                _ => out.push((entity, vec![id])),
            }
        }
        Ok((out, superseded))
    }

    /// The change-log rows of one entity, inside the caller's transaction, in multi-row
    /// statements (a first load logs every row).
    fn insert_changes(
        &self,
        conn: &Connection,
        run_id: &str,
        entity: &str,
        rows: &[ChangeRow],
    ) -> Result<(), StateError> {
        let frame = df!(
            "id" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            "change" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "fields" => rows.iter().map(|r| r.2.as_deref()).collect::<Vec<_>>(),
            "line" => rows.iter().map(|r| r.3).collect::<Vec<_>>()
        )
        .map_err(|source| StateError::Snapshot {
            path: self.db_path.clone(),
            source,
        })?;
        crate::support::sqlite_frames::insert_frame(
            conn,
            "INSERT INTO changes (id, change, fields, line, run_id, entity)",
            "",
            &frame,
            &[
                rusqlite::types::Value::Text(run_id.to_string()),
                rusqlite::types::Value::Text(entity.to_string()),
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The content (hash) the daemon last processed for `entity`, with the run that did.
    /// Only a repeat of *that* content is a duplicate: a full snapshot that returns to an
    /// earlier state is a real change.
    pub fn last_content(&self, entity: &str) -> Result<Option<(String, String)>, StateError> {
        self.db
            .query_row(
                "SELECT hash, run_id FROM last_content WHERE entity = ?1",
                params![entity],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_last_content(
        &self,
        entity: &str,
        hash: &str,
        run_id: &str,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO last_content VALUES (?1, ?2, ?3)",
                params![entity, hash, run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn mark_processed(
        &self,
        hash: &str,
        name: &str,
        run_id: &str,
        status: &str,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO processed_files VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, name, run_id, status, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Whether a remote source already delivered this file version (`key`).
    pub fn remote_seen(&self, source: &str, key: &str) -> bool {
        self.db
            .query_row(
                "SELECT 1 FROM remote_seen WHERE source = ?1 AND key = ?2",
                params![source, key],
                |_| Ok(()),
            )
            .is_ok()
    }

    pub fn mark_remote_seen(
        &self,
        source: &str,
        key: &str,
        run_id: &str,
    ) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO remote_seen VALUES (?1, ?2, ?3)",
                params![source, key, run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        self.db
            .query_row(
                "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE run_id = ?1",
                params![run_id],
                record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut stmt = self
            .db
            .prepare("SELECT run_id, started_at, finished_at, status, summary FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![limit as i64], record)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

fn record(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        run_id: r.get(0)?,
        started_at: r.get(1)?,
        finished_at: r.get(2)?,
        status: r.get(3)?,
        summary: r
            .get::<_, Option<String>>(4)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_statuses_are_stored_as_their_words_and_read_back_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let at = "2026-01-01T00:00:00.000Z";
        state.begin_run("r1", at).unwrap();
        let word = |id: &str| -> String {
            state
                .db
                .query_row("SELECT status FROM runs WHERE run_id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(word("r1"), "running");
        assert_eq!(state.begin_run("r2", at).unwrap(), 1);
        assert_eq!(word("r1"), "interrupted");
        assert_eq!(
            state.run("r1").unwrap().unwrap().status,
            RunState::Interrupted
        );
        state
            .finish_run("r2", RunState::Held, &serde_json::json!({}))
            .unwrap();
        assert_eq!(word("r2"), "held");
        state
            .db
            .execute("UPDATE runs SET status = 'done' WHERE run_id = 'r1'", [])
            .unwrap();
        let err = state.run("r1").unwrap_err().to_string();
        assert!(err.contains("unknown run status `done`"), "{err}");
    }

    /// SQLite's instructions to commit a run of 10 inserts, after an earlier run logged
    /// `history` changes.
    fn commit_ops(history: usize) -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let tx = state.db.transaction().unwrap();
        for i in 0..history {
            tx.execute(
                "INSERT INTO changes (run_id, entity, id, change) VALUES ('old', 'e', ?1, 'inserted')",
                params![i.to_string()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        state.begin_run("r", "now").unwrap();
        let ids: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let lines: Vec<u32> = (1..=10).collect();
        let mut intent = journal::EntityIntent {
            entity: "e".into(),
            file_name: "e.csv".into(),
            inserts: df!("id" => &ids, crate::model::LINE => &lines).unwrap(),
            updates: df!(
                "id" => Vec::<String>::new(),
                crate::model::LINE => Vec::<u32>::new(),
                journal::FIELDS => Vec::<String>::new()
            )
            .unwrap(),
            deletes: Vec::new(),
            held: Vec::new(),
            staged: None,
            has_snapshot: false,
        };
        state.journal_entity("r", &mut intent, None).unwrap();
        let ops = std::sync::Arc::new(AtomicU64::new(0));
        let counter = ops.clone();
        state
            .db
            .progress_handler(
                1,
                Some(move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    false
                }),
            )
            .unwrap();
        state
            .commit_run(
                "r",
                crate::model::RunStatus::Ok,
                &serde_json::json!({}),
                &[("e".into(), "e.csv".into(), false)],
            )
            .unwrap();
        state.db.progress_handler(0, None::<fn() -> bool>).unwrap();
        let logged: i64 = state
            .db
            .query_row("SELECT count(*) FROM changes WHERE run_id = 'r'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(logged, 10);
        ops.load(Ordering::Relaxed)
    }

    /// A regression: the commit cleared the run's rows with a DELETE that scanned the whole
    /// change log, so every run cost more than the one before.
    #[test]
    fn committing_a_run_costs_its_changes_not_the_log_before_it() {
        let (fresh, after) = (commit_ops(0), commit_ops(20_000));
        assert!(
            after < fresh + fresh / 2,
            "{fresh} instructions on an empty log, {after} after 20,000 rows"
        );
    }

    #[test]
    fn an_entity_inputs_table_without_snapshot_stamps_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let db = Connection::open(db_path(dir.path())).unwrap();
        db.execute_batch(
            "CREATE TABLE entity_inputs (entity TEXT PRIMARY KEY, file_hash TEXT NOT NULL, \
             recipe_key TEXT NOT NULL, parents_key TEXT NOT NULL, ids_hash INTEGER NOT NULL, \
             run_id TEXT NOT NULL, summary TEXT NOT NULL); \
             INSERT INTO entity_inputs VALUES ('clientes', 'h', 'r', '', 0, 'r1', '{}');",
        )
        .unwrap();
        drop(db);
        let state = State::open(dir.path()).unwrap();
        assert!(state.entity_inputs("clientes").unwrap().is_none());
        let rows: i64 = state
            .db
            .query_row("SELECT count(*) FROM entity_inputs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // Reopening a current table keeps its records.
        state
            .db
            .execute(
                "INSERT INTO entity_inputs VALUES ('ventas', 'h', 'r', '', 0, 'r1', '{}', 's')",
                [],
            )
            .unwrap();
        drop(state);
        let state = State::open(dir.path()).unwrap();
        let rows: i64 = state
            .db
            .query_row("SELECT count(*) FROM entity_inputs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }
}
