//! `staging.sqlite`: tables analysts query.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::{params, Connection};

use super::{EntitySummary, StageError};
use crate::table::{ident, insert_frame, sql_type};
use crate::validate::Issue;

pub struct Staging {
    path: PathBuf,
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rejects (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
  id TEXT, severity TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rejects_by_run ON rejects (run_id, entity);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, status TEXT NOT NULL, file TEXT,
  encoding TEXT, read INTEGER, accepted INTEGER, rejected INTEGER, skipped INTEGER,
  warnings INTEGER, inserted INTEGER, updated INTEGER, unchanged INTEGER, deleted INTEGER,
  held_deletes INTEGER, reason TEXT, PRIMARY KEY (run_id, entity));
";

impl Staging {
    pub fn open(path: &Path) -> Result<Staging, StageError> {
        let conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; {SCHEMA}"
        ))
        .map_err(|e| err(path, e))?;
        Ok(Staging {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Replaces the entity's table with `rows` in one transaction: readers see the old
    /// snapshot or the new one, never half of it.
    pub fn replace_entity(&mut self, entity: &str, rows: &DataFrame) -> Result<(), StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let table = ident(entity);
        let defs: Vec<String> = rows
            .columns()
            .iter()
            .map(|c| {
                let pk = if c.name().as_str() == "id" {
                    " PRIMARY KEY"
                } else {
                    ""
                };
                format!("{} {}{pk}", ident(c.name()), sql_type(c.dtype()))
            })
            .collect();
        let names: Vec<String> = rows.columns().iter().map(|c| ident(c.name())).collect();
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({});",
            defs.join(", ")
        ))
        .map_err(e)?;
        insert_frame(
            &tx,
            &format!("INSERT INTO {table} ({})", names.join(", ")),
            "",
            rows,
            &[],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    pub fn write_rejects(&mut self, run_id: &str, issues: &[Issue]) -> Result<(), StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare("INSERT INTO rejects VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(e)?;
            for i in issues {
                stmt.execute(params![
                    run_id,
                    i.entity,
                    i.file,
                    i.line,
                    i.id,
                    i.severity.as_str(),
                    i.rule,
                    i.reason
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    pub fn write_run(
        &mut self,
        run_id: &str,
        entities: &[(String, EntitySummary)],
    ) -> Result<(), StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare("INSERT OR REPLACE INTO runs VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)")
                .map_err(e)?;
            for (entity, s) in entities {
                stmt.execute(params![
                    run_id,
                    entity,
                    s.status,
                    s.file,
                    s.encoding,
                    s.read as i64,
                    s.accepted as i64,
                    s.rejected as i64,
                    s.skipped as i64,
                    s.warnings as i64,
                    s.inserted as i64,
                    s.updated as i64,
                    s.unchanged as i64,
                    s.deleted as i64,
                    s.held_deletes as i64,
                    s.reason
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> StageError {
    StageError::Sqlite {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}
