//! The journal of confirmed batches: what lets an interrupted apply be redone without sending
//! anything twice.
//!
//! A row is written right after the CRM confirmed a batch, before the next batch is sent, so
//! after a kill or an outage it lists exactly the batches the CRM has. It also keeps how many
//! records the CRM confirmed and which it refused, so a redo reports the same outcome. The rows
//! of an object are deleted by `RestCrm::finish` once its snapshot has advanced.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use super::RestError;

/// A confirmed batch: its confirmed count and its refused records as `(id, message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JournalEntry {
    pub(super) confirmed: usize,
    pub(super) rejected: Vec<(String, String)>,
}

#[derive(Debug)]
pub(super) struct Journal {
    conn: Connection,
    path: PathBuf,
}

impl Journal {
    /// Opens or creates the journal file and its table.
    pub(super) fn open(path: &Path) -> Result<Self, RestError> {
        let err = |source| RestError::Journal {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // Another dropsync process on the same journal waits instead of failing at once.
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS journal (
                 object       TEXT    NOT NULL,
                 batch_hash   TEXT    NOT NULL,
                 confirmed_at INTEGER NOT NULL,  -- unix seconds
                 confirmed    INTEGER NOT NULL,  -- records the CRM confirmed
                 rejected     TEXT    NOT NULL,  -- JSON [[id, message], ...] of refused records
                 PRIMARY KEY (object, batch_hash)
             );",
        )
        .map_err(err)?;
        Ok(Journal {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> RestError {
        RestError::Journal {
            path: self.path.clone(),
            source,
        }
    }

    /// The entry of a batch already confirmed, if any.
    pub(super) fn lookup(
        &self,
        object: &str,
        hash: &str,
    ) -> Result<Option<JournalEntry>, RestError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT confirmed, rejected FROM journal WHERE object = ?1 AND batch_hash = ?2",
                params![object, hash],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.map(|(confirmed, rejected)| JournalEntry {
            confirmed: usize::try_from(confirmed).unwrap_or(0),
            // Written by `record` below; an unreadable list (hand-edited file) loses only the
            // replayed rejects, never the skip.
            rejected: serde_json::from_str(&rejected).unwrap_or_default(),
        }))
    }

    /// Records a batch the CRM confirmed (autocommit: durable once this returns).
    pub(super) fn record(
        &self,
        object: &str,
        hash: &str,
        entry: &JournalEntry,
    ) -> Result<(), RestError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let rejected = serde_json::to_string(&entry.rejected).expect("strings always serialize");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO journal (object, batch_hash, confirmed_at, confirmed, rejected)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![object, hash, now, entry.confirmed as i64, rejected],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets every batch of `object`; returns how many there were.
    pub(super) fn forget(&self, object: &str) -> Result<usize, RestError> {
        self.conn
            .execute("DELETE FROM journal WHERE object = ?1", params![object])
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_forget_is_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let entry = JournalEntry {
            confirmed: 99,
            rejected: vec![("c-7".into(), "bad email".into())],
        };
        {
            let journal = Journal::open(&path).unwrap();
            assert_eq!(journal.lookup("contacts", "h1").unwrap(), None);
            journal.record("contacts", "h1", &entry).unwrap();
            journal.record("deals", "h1", &entry).unwrap();
        }
        let journal = Journal::open(&path).unwrap();
        assert_eq!(
            journal.lookup("contacts", "h1").unwrap(),
            Some(entry.clone())
        );
        assert_eq!(journal.forget("contacts").unwrap(), 1);
        assert_eq!(journal.lookup("contacts", "h1").unwrap(), None);
        assert_eq!(journal.lookup("deals", "h1").unwrap(), Some(entry));
    }

    #[test]
    fn unopenable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("journal.sqlite");
        let err = Journal::open(&path).unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        assert!(!err.is_transient());
    }
}
