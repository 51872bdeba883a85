//! `staging.sqlite`: tables analysts query.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::{params, Connection};

use super::StageError;
use crate::model::EntitySummary;
use crate::model::{Issue, Severity};
use crate::support::sqlite_frames::{ident, insert_frame, sql_type};

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

/// The rejects and warnings `run_id` staged for `entity`, in the order written; none when
/// there is no staging.sqlite yet. Opened only to look (`support::read_only_db`), so `plan`
/// leaves the workspace byte-identical.
pub fn rejects_of(path: &Path, run_id: &str, entity: &str) -> Result<Vec<Issue>, StageError> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let e = |x: rusqlite::Error| err(path, x);
    let conn = crate::support::read_only_db::open(path).map_err(e)?;
    let mut stmt = conn
        .prepare(
            "SELECT file, line, coalesce(id, ''), severity, rule, reason FROM rejects \
             WHERE run_id = ?1 AND entity = ?2 ORDER BY rowid",
        )
        .map_err(e)?;
    let rows = stmt
        .query_map(params![run_id, entity], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(e)?;
    let mut out = Vec::new();
    for row in rows {
        let (file, line, id, severity, rule, reason) = row.map_err(e)?;
        let severity = Severity::from_word(&severity).ok_or_else(|| {
            err(
                path,
                format!("rejects of run {run_id}: unknown severity {severity:?}"),
            )
        })?;
        out.push(Issue {
            entity: entity.to_string(),
            file,
            line,
            id,
            severity,
            rule,
            reason,
        });
    }
    Ok(out)
}

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

    /// Makes the entity's table hold exactly `rows`, in one transaction: readers see the old
    /// snapshot or the new one, never half of it. `hashes` (one per row, over every field)
    /// are kept beside the table in `_staged_<entity>`, so a rerun writes only the rows whose
    /// hash changed and deletes the IDs that left; a new layout or a large change rewrites
    /// the table. Returns the number of rows written or deleted.
    pub fn sync_entity(
        &mut self,
        entity: &str,
        rows: &DataFrame,
        hashes: &[u64],
    ) -> Result<usize, StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let table = ident(entity);
        let hash_table = ident(&format!("_staged_{entity}"));
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
        let create = format!("CREATE TABLE {table} ({})", defs.join(", "));
        let tx = self.conn.transaction().map_err(e)?;
        let current: Option<String> = tx
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                params![entity],
                |r| r.get(0),
            )
            .ok();
        let staged: Option<rustc_hash::FxHashMap<String, i64>> = match current {
            Some(sql) if sql == create => tx
                .prepare(&format!("SELECT id, hash FROM {hash_table}"))
                .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .ok(),
            _ => None,
        };
        let ids = rows
            .column("id")
            .and_then(|c| c.str().cloned())
            .map_err(|x| err(&path, x))?;
        let insert = format!("INSERT OR REPLACE INTO {table} ({})", names.join(", "));
        let hash_frame = |idx: Option<&[u32]>| -> PolarsResult<DataFrame> {
            let (ids, hs): (Vec<&str>, Vec<i64>) = match idx {
                None => ids
                    .iter()
                    .zip(hashes)
                    .map(|(i, h)| (i.unwrap_or(""), *h as i64))
                    .unzip(),
                Some(idx) => idx
                    .iter()
                    .map(|&i| (ids.get(i as usize).unwrap_or(""), hashes[i as usize] as i64))
                    .unzip(),
            };
            df!("id" => ids, "hash" => hs)
        };
        let pe = |x: PolarsError| err(&path, x);
        let written = match staged {
            Some(staged) => {
                let mut upserts: Vec<u32> = Vec::new();
                let mut seen = rustc_hash::FxHashSet::with_capacity_and_hasher(
                    rows.height(),
                    Default::default(),
                );
                for (i, (id, h)) in ids.iter().zip(hashes).enumerate() {
                    let id = id.unwrap_or("");
                    seen.insert(id);
                    if staged.get(id) != Some(&(*h as i64)) {
                        upserts.push(i as u32);
                    }
                }
                let gone: Vec<&String> = staged
                    .keys()
                    .filter(|k| !seen.contains(k.as_str()))
                    .collect();
                {
                    let mut del = tx
                        .prepare(&format!("DELETE FROM {table} WHERE id = ?1"))
                        .map_err(e)?;
                    let mut del_h = tx
                        .prepare(&format!("DELETE FROM {hash_table} WHERE id = ?1"))
                        .map_err(e)?;
                    for id in &gone {
                        del.execute(params![id]).map_err(e)?;
                        del_h.execute(params![id]).map_err(e)?;
                    }
                }
                if !upserts.is_empty() {
                    let idx = IdxCa::from_vec(
                        "idx".into(),
                        upserts.iter().map(|&i| i as IdxSize).collect(),
                    );
                    let subset = rows.take(&idx).map_err(pe)?;
                    insert_frame(&tx, &insert, "", &subset, &[]).map_err(e)?;
                    let hf = hash_frame(Some(&upserts)).map_err(pe)?;
                    insert_frame(
                        &tx,
                        &format!("INSERT OR REPLACE INTO {hash_table} (id, hash)"),
                        "",
                        &hf,
                        &[],
                    )
                    .map_err(e)?;
                }
                upserts.len() + gone.len()
            }
            None => {
                tx.execute_batch(&format!(
                    "DROP TABLE IF EXISTS {table}; {create}; DROP TABLE IF EXISTS {hash_table};
                     CREATE TABLE {hash_table} (id TEXT PRIMARY KEY, hash INTEGER NOT NULL);"
                ))
                .map_err(e)?;
                insert_frame(&tx, &insert, "", rows, &[]).map_err(e)?;
                let hf = hash_frame(None).map_err(pe)?;
                insert_frame(
                    &tx,
                    &format!("INSERT INTO {hash_table} (id, hash)"),
                    "",
                    &hf,
                    &[],
                )
                .map_err(e)?;
                rows.height()
            }
        };
        tx.commit().map_err(e)?;
        Ok(written)
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
                    s.status.as_str(),
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
