//! The intent journal: what a run or an approval is about to do to the CRM, made durable
//! before the first CRM write.
//!
//! Why: the CRM and the snapshots cannot commit together. A run killed after the CRM took
//! its writes but before the snapshots advanced would otherwise leave a CRM the snapshots do
//! not describe, and the next run (perhaps of a different drop) would diff against the old
//! snapshot and never repair it. With the journal, the next run first *rolls the interrupted
//! one forward*: it re-applies the journaled writes (every sink's writes are idempotent),
//! promotes the journaled snapshots, and records the run as it would have ended. A run killed
//! before its journal committed never touched the CRM, and is as if it had not run.
//!
//! Layout: `state/pending/<run_id>/` holds per entity the rows to insert and update (with
//! their source lines and changed fields), the IDs to delete and to hold, and the next
//! snapshot (whole, or a delta against the current base: see `snapshots`); the journal commits when its row is inserted into `state.sqlite`'s `pending`
//! table, after every file is written and fsynced. A folder without that row is debris of a
//! run killed while writing its journal and is removed.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{NextSnapshot, State, StateError};
use crate::model::{HoldState, RunState, RunStatus};

/// Column of the journaled updates holding the changed fields (comma-separated).
pub const FIELDS: &str = "__fields";

/// One entity's share of a run's intent.
pub struct EntityIntent {
    pub entity: String,
    /// The file the rows came from (for the CRM's refusals, which become rejects).
    pub file_name: String,
    /// Rows to insert: `id`, the fields, `__line`.
    pub inserts: DataFrame,
    /// Rows to update: as inserts, plus `__fields`.
    pub updates: DataFrame,
    /// IDs to delete now (the recipe's policy applies).
    pub deletes: Vec<String>,
    /// IDs whose deletes the guard holds until approval.
    pub held: Vec<String>,
    /// This run's accepted rows, journaled only for a target that stages them itself.
    pub staged: Option<DataFrame>,
    /// A next snapshot waits in the journal (false: the entity's snapshot stays as it is).
    pub has_snapshot: bool,
}

/// An entity as a journal lists it: (entity, file name, has a next snapshot).
pub type JournaledEntity = (String, String, bool);

impl EntityIntent {
    pub fn writes(&self) -> usize {
        self.inserts.height() + self.updates.height() + self.deletes.len()
    }
}

/// What a journal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentKind {
    Run,
    Approve,
}

/// The small part of a journal, kept in its `pending` row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentMeta {
    pub kind: IntentKind,
    /// The run's status once applied; none for an approval (stored as `""`).
    #[serde(with = "optional_status")]
    pub status: Option<RunStatus>,
    /// The run's summary as known before the CRM stage.
    pub report: serde_json::Value,
    /// (entity, file name, has a next snapshot), in load order.
    pub entities: Vec<JournaledEntity>,
}

/// A committed journal not yet applied to the end.
pub struct Pending {
    pub run_id: String,
    pub meta: IntentMeta,
}

impl State {
    fn pending_dir(&self, run_id: &str) -> PathBuf {
        self.dir.join("pending").join(run_id)
    }

    /// The run's journal folder, created if it was not yet.
    fn created_pending_dir(&self, run_id: &str) -> Result<PathBuf, StateError> {
        let dir = self.pending_dir(run_id);
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    fn pending_file(&self, run_id: &str, entity: &str, part: &str) -> PathBuf {
        self.pending_dir(run_id)
            .join(format!("{entity}.{part}.parquet"))
    }

    /// Writes one entity's part of a run's journal (its writes and next snapshot, each file
    /// fsynced), not yet committed. A run journals each entity as soon as it is diffed, so
    /// no entity's rows wait in memory for the others'; a folder whose run never committed
    /// is debris the next run removes.
    pub fn journal_entity(
        &self,
        run_id: &str,
        e: &mut EntityIntent,
        snapshot: Option<&mut NextSnapshot>,
    ) -> Result<(), StateError> {
        self.created_pending_dir(run_id)?;
        let entity = e.entity.clone();
        let file = |part: &str| self.pending_file(run_id, &entity, part);
        write_parquet(&file("inserts"), &mut e.inserts)?;
        write_parquet(&file("updates"), &mut e.updates)?;
        write_parquet(&file("deletes"), &mut id_frame(&e.deletes)?)?;
        write_parquet(&file("held"), &mut id_frame(&e.held)?)?;
        if let Some(staged) = e.staged.as_mut() {
            write_parquet(&file("staged"), staged)?;
        }
        if let Some(s) = snapshot {
            self.journal_snapshot(file, &entity, s)?;
        }
        Ok(())
    }

    /// Commits a run's journal once every entity in `entities` (load order) was journaled:
    /// the folder fsynced, then the `pending` row. Nothing may touch the CRM before this
    /// returns.
    pub fn commit_intent(
        &self,
        run_id: &str,
        status: RunStatus,
        report: &serde_json::Value,
        entities: Vec<JournaledEntity>,
    ) -> Result<(), StateError> {
        // A run with no entity to journal (every one reused or without a file) commits too.
        sync_dir(&self.created_pending_dir(run_id)?)?;
        let meta = IntentMeta {
            kind: IntentKind::Run,
            status: Some(status),
            report: report.clone(),
            entities,
        };
        self.insert_pending(run_id, &meta)?;
        crate::support::failpoint::failpoint("after-intent");
        Ok(())
    }

    /// Commits the intent of an approval (the held IDs are already in `held_deletes`).
    pub fn write_approve_intent(&self, run_id: &str) -> Result<(), StateError> {
        self.insert_pending(
            run_id,
            &IntentMeta {
                kind: IntentKind::Approve,
                status: None,
                report: serde_json::Value::Null,
                entities: Vec::new(),
            },
        )
    }

    fn insert_pending(&self, run_id: &str, meta: &IntentMeta) -> Result<(), StateError> {
        let text = serde_json::to_string(meta).unwrap_or_default();
        self.db
            .execute(
                "INSERT OR REPLACE INTO pending (run_id, kind, meta, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    run_id,
                    match meta.kind {
                        IntentKind::Run => "run",
                        IntentKind::Approve => "approve",
                    },
                    text,
                    super::now()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Committed journals not yet applied to the end, oldest first.
    pub fn pending(&self) -> Result<Vec<Pending>, StateError> {
        let mut stmt = self
            .db
            .prepare("SELECT run_id, meta FROM pending ORDER BY at, rowid")
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (run_id, meta) in rows {
            let meta: IntentMeta =
                serde_json::from_str(&meta).map_err(|e| StateError::Journal {
                    run_id: run_id.clone(),
                    message: format!("unreadable journal entry: {e}"),
                })?;
            out.push(Pending { run_id, meta });
        }
        Ok(out)
    }

    /// Removes journal folders without a committed row: debris of runs killed while writing
    /// their journal. Only under the workspace lock (a run holding it may be writing one).
    pub fn remove_uncommitted_journals(&self, committed: &[Pending]) {
        if let Ok(dirs) = std::fs::read_dir(self.dir.join("pending")) {
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                if !committed.iter().any(|p| p.run_id == name) {
                    let _ = std::fs::remove_dir_all(d.path());
                }
            }
        }
    }

    /// Reads one entity of a committed run journal back, when its turn comes (the snapshot
    /// stays on disk until promoted).
    pub fn load_entity_intent(
        &self,
        run_id: &str,
        journaled: &JournaledEntity,
    ) -> Result<EntityIntent, StateError> {
        self.read_entity_intent(run_id, journaled, Part::Whole)
    }

    /// One entity of a journal read back, whole or only what its change log is made of.
    fn read_entity_intent(
        &self,
        run_id: &str,
        (entity, file_name, has_snapshot): &JournaledEntity,
        part: Part,
    ) -> Result<EntityIntent, StateError> {
        let file = |name: &str| self.pending_file(run_id, entity, name);
        let writes = |name: &str, columns: &[&str]| match part {
            Part::Whole => read_parquet(&file(name)),
            Part::Changes => read_parquet_columns(&file(name), columns),
        };
        let staged = file("staged");
        Ok(EntityIntent {
            entity: entity.clone(),
            file_name: file_name.clone(),
            inserts: writes("inserts", &["id", crate::model::LINE])?,
            updates: writes("updates", &["id", crate::model::LINE, FIELDS])?,
            deletes: ids(&read_parquet(&file("deletes"))?)?,
            held: ids(&read_parquet(&file("held"))?)?,
            staged: match part {
                Part::Whole if staged.exists() => Some(read_parquet(&staged)?),
                _ => None,
            },
            has_snapshot: *has_snapshot,
        })
    }

    /// Where a run journals an entity's next snapshot: whole, or as a delta.
    fn journaled_snapshot(&self, run_id: &str, entity: &str) -> (PathBuf, PathBuf) {
        (
            self.pending_file(run_id, entity, "snapshot"),
            self.pending_file(run_id, entity, "delta"),
        )
    }

    /// Whether the entity's journaled snapshot (whole or delta) still waits to become
    /// current (false once promoted: the entity's part of the run is then complete).
    pub fn snapshot_pending(&self, run_id: &str, entity: &str) -> bool {
        let (whole, delta) = self.journaled_snapshot(run_id, entity);
        whole.exists() || delta.exists()
    }

    /// The journaled next snapshot, whole.
    pub fn load_pending_snapshot(
        &self,
        run_id: &str,
        entity: &str,
    ) -> Result<DataFrame, StateError> {
        let (whole, delta) = self.journaled_snapshot(run_id, entity);
        self.read_journaled(&whole, &delta, entity)
    }

    /// Replaces the journaled snapshot (the CRM refused some rows: they keep their last
    /// accepted version).
    pub fn replace_pending_snapshot(
        &self,
        run_id: &str,
        entity: &str,
        df: &mut DataFrame,
    ) -> Result<(), StateError> {
        let (whole, delta) = self.journaled_snapshot(run_id, entity);
        self.replace_journaled(&whole, &delta, df)
    }

    /// Makes the journaled snapshot the entity's current one (one rename).
    pub fn promote_snapshot(&self, run_id: &str, entity: &str) -> Result<(), StateError> {
        let (whole, delta) = self.journaled_snapshot(run_id, entity);
        self.promote_journaled(&whole, &delta, entity)
    }

    /// The end of an applied run, in one transaction: older holds of its entities
    /// superseded, its changes logged, its holds recorded, its status set, its journal
    /// closed. Then the journal's folder goes.
    pub fn commit_run(
        &self,
        run_id: &str,
        status: RunStatus,
        summary: &serde_json::Value,
        entities: &[JournaledEntity],
    ) -> Result<(), StateError> {
        let tx = self.db.unchecked_transaction().map_err(|e| self.err(e))?;
        for journaled in entities {
            // One entity's writes at a time, read back from the journal: the change log of a
            // first load holds every row, and no entity's rows wait here for the others'.
            let e = &self.read_entity_intent(run_id, journaled, Part::Changes)?;
            tx.execute(
                "UPDATE held_deletes SET state = ?3 WHERE entity = ?1 AND state = ?4 AND run_id <> ?2",
                params![e.entity, run_id, HoldState::Superseded, HoldState::Held],
            )
            .map_err(|x| self.err(x))?;
            // Logged without first clearing the run's rows: this transaction also closes the
            // journal, so it commits once per run (an approval logs its deletes later), and
            // a clearing DELETE scanned the whole change log, which grows by every row every
            // run writes (2.3 s of a 1M-client 1% rerun once the first load logged 5.7M).
            let rows = change_rows(e)?;
            self.insert_changes(&tx, run_id, &e.entity, &rows)?;
            let mut stmt = tx
                .prepare(
                    "INSERT OR REPLACE INTO held_deletes (run_id, entity, id) VALUES (?1, ?2, ?3)",
                )
                .map_err(|x| self.err(x))?;
            for id in &e.held {
                stmt.execute(params![run_id, e.entity, id])
                    .map_err(|x| self.err(x))?;
            }
        }
        tx.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, summary = ?4 WHERE run_id = ?1",
            params![
                run_id,
                RunState::from(status),
                super::now(),
                summary.to_string()
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM pending WHERE run_id = ?1", params![run_id])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        let _ = std::fs::remove_dir_all(self.pending_dir(run_id));
        Ok(())
    }

    /// An approval's entity done, in one transaction: its holds released, its deletes
    /// logged.
    pub fn release_held(
        &self,
        run_id: &str,
        entity: &str,
        deleted: &[String],
    ) -> Result<(), StateError> {
        let tx = self.db.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE held_deletes SET state = ?3 WHERE run_id = ?1 AND entity = ?2 AND state = ?4",
            params![run_id, entity, HoldState::Approved, HoldState::Held],
        )
        .map_err(|e| self.err(e))?;
        let rows: Vec<super::ChangeRow> = deleted
            .iter()
            .map(|id| (id.clone(), "deleted", None, None))
            .collect();
        self.insert_changes(&tx, run_id, entity, &rows)?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// The approval is complete: the run reads `approved`, its journal is closed.
    pub fn finish_approve(&self, run_id: &str) -> Result<(), StateError> {
        let tx = self.db.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE runs SET status = ?2 WHERE run_id = ?1",
            params![run_id, RunState::Approved],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM pending WHERE run_id = ?1", params![run_id])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

/// How much of an entity's journal is read back.
#[derive(Clone, Copy)]
enum Part {
    /// Everything the CRM stage writes.
    Whole,
    /// What the change log is made of: IDs, lines and changed fields of the writes (not
    /// their values), the deletes and holds.
    Changes,
}

/// The change log rows of one entity's intent: inserts and updates with their lines, then
/// deletes.
fn change_rows(e: &EntityIntent) -> Result<Vec<super::ChangeRow<'static>>, StateError> {
    let frame = |source| StateError::Journal {
        run_id: String::new(),
        message: format!("{}: {source}", e.entity),
    };
    let mut rows = Vec::with_capacity(e.writes());
    for (df, kind) in [(&e.inserts, "inserted"), (&e.updates, "updated")] {
        let ids = df
            .column("id")
            .and_then(|c| c.str().cloned())
            .map_err(frame)?;
        let lines = df
            .column(crate::model::LINE)
            .ok()
            .and_then(|c| c.u32().ok().cloned());
        let fields = df.column(FIELDS).ok().and_then(|c| c.str().ok().cloned());
        for i in 0..df.height() {
            rows.push((
                ids.get(i).unwrap_or("").to_string(),
                kind,
                fields.as_ref().and_then(|f| f.get(i)).map(str::to_string),
                lines.as_ref().and_then(|l| l.get(i)),
            ));
        }
    }
    rows.extend(
        e.deletes
            .iter()
            .map(|id| (id.clone(), "deleted", None, None)),
    );
    Ok(rows)
}

fn id_frame(ids: &[String]) -> Result<DataFrame, StateError> {
    let col = StringChunked::from_iter_values("id".into(), ids.iter().map(String::as_str));
    DataFrame::new(ids.len(), vec![col.into_column()]).map_err(|source| StateError::Snapshot {
        path: PathBuf::from("journal"),
        source,
    })
}

fn ids(df: &DataFrame) -> Result<Vec<String>, StateError> {
    let col = df
        .column("id")
        .and_then(|c| c.str().cloned())
        .map_err(|source| StateError::Snapshot {
            path: PathBuf::from("journal"),
            source,
        })?;
    Ok(col.iter().map(|s| s.unwrap_or("").to_string()).collect())
}

/// Writes a parquet file beside its final name, fsyncs it, renames it into place.
pub(super) fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), StateError> {
    use crate::support::parquet_file::{self, WriteError};
    parquet_file::write(path, df, true).map_err(|e| {
        let path = parquet_file::temp_path(path);
        match e {
            WriteError::Io(source) => StateError::Io { path, source },
            WriteError::Frame(source) => StateError::Snapshot { path, source },
        }
    })
}

pub(super) fn read_parquet(path: &Path) -> Result<DataFrame, StateError> {
    let file = std::fs::File::open(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| StateError::Snapshot {
            path: path.to_path_buf(),
            source,
        })
}

/// Only `columns` of a parquet file: what a question about IDs costs.
pub(super) fn read_parquet_columns(path: &Path, columns: &[&str]) -> Result<DataFrame, StateError> {
    let file = std::fs::File::open(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetReader::new(file)
        .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
        .finish()
        .map_err(|source| StateError::Snapshot {
            path: path.to_path_buf(),
            source,
        })
}

/// fsync of a folder, so the renames and new files in it survive a power loss.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// `IntentMeta::status` as journals have always stored it: the run's status word, or `""` for
/// an approval.
mod optional_status {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::RunStatus;

    pub fn serialize<S: Serializer>(status: &Option<RunStatus>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(status.map(RunStatus::as_str).unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RunStatus>, D::Error> {
        let word = String::deserialize(d)?;
        if word.is_empty() {
            return Ok(None);
        }
        word.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_keeps_the_status_words_it_always_stored() {
        for (status, word) in [
            (Some(RunStatus::Ok), "ok"),
            (Some(RunStatus::Held), "held"),
            (None, ""),
        ] {
            let meta = IntentMeta {
                kind: IntentKind::Run,
                status,
                report: serde_json::Value::Null,
                entities: Vec::new(),
            };
            let text = serde_json::to_string(&meta).unwrap();
            assert!(text.contains(&format!("\"status\":\"{word}\"")), "{text}");
            let back: IntentMeta = serde_json::from_str(&text).unwrap();
            assert_eq!(back.status, status);
        }
        let odd = r#"{"kind":"run","status":"done","report":null,"entities":[]}"#;
        let err = serde_json::from_str::<IntentMeta>(odd).unwrap_err();
        assert!(
            err.to_string().contains("unknown run status `done`"),
            "{err}"
        );
    }
}
