//! `staging.sqlite`: tables analysts query.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::{params, Connection};

use super::{staged_hashes, StageError};
use crate::model::EntitySummary;
use crate::model::{Issue, Severity};
use crate::support::sqlite_frames::{ident, insert_frame, sql_type};

pub struct Staging {
    path: PathBuf,
    conn: Connection,
    /// Inside a batch (see [`Staging::begin_batch`]): the cached hash copies each entity's
    /// sync made current, whose older copies go once the batch commits.
    batch: Option<Vec<(String, String)>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rejects (
  run_id TEXT NOT NULL, entity TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
  id TEXT, severity TEXT NOT NULL, rule TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rejects_by_run ON rejects (run_id, entity);
CREATE TABLE IF NOT EXISTS staged_hash_tokens (entity TEXT PRIMARY KEY, token TEXT NOT NULL);
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
            batch: None,
        })
    }

    /// Opens one transaction around every write until [`Staging::commit_batch`]: a run syncs
    /// each entity as soon as it is diffed, yet analysts see the run's staging all at once
    /// once its journal committed, or (the run failed or was stopped before) not at all.
    pub fn begin_batch(&mut self) -> Result<(), StageError> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| err(&self.path, e))?;
        self.batch = Some(Vec::new());
        Ok(())
    }

    /// Commits the batch; then the hash copies it superseded go.
    pub fn commit_batch(&mut self) -> Result<(), StageError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| err(&self.path, e))?;
        let cache = staged_hashes::dir_of(&self.path);
        for (entity, token) in self.batch.take().unwrap_or_default() {
            staged_hashes::remove_others(&cache, &entity, &token);
        }
        Ok(())
    }

    /// The entity's cached hash copy `token` is the committed one (or will be, with the
    /// batch): the others go.
    fn committed_token(&mut self, entity: &str, token: &str) {
        match self.batch.as_mut() {
            Some(batch) => batch.push((entity.to_string(), token.to_string())),
            None => staged_hashes::remove_others(&staged_hashes::dir_of(&self.path), entity, token),
        }
    }

    /// Makes the entity's table hold exactly `rows`, in one transaction: readers see the old
    /// snapshot or the new one, never half of it. `hashes` (one per row, over every field)
    /// are kept beside the table in `_staged_<entity>` (and cached in `staged_hashes`), so a
    /// rerun writes only the rows whose hash changed and deletes the IDs that left; a new
    /// layout rewrites the table. Returns the number of rows written or deleted.
    pub fn sync_entity(
        &mut self,
        entity: &str,
        rows: &DataFrame,
        hashes: &[u64],
    ) -> Result<usize, StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let pe = |x: PolarsError| err(&path, x);
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
        let cache = staged_hashes::dir_of(&path);
        let mut pairs = rows.select(["id"]).map_err(pe)?;
        pairs
            .with_column(Column::new(
                "hash".into(),
                hashes.iter().map(|&h| h as i64).collect::<Vec<i64>>(),
            ))
            .map_err(pe)?;
        // A savepoint: its own transaction, or part of the run's batch.
        let tx = self.conn.savepoint().map_err(e)?;
        let text_of =
            |sql: &str| -> Option<String> { tx.query_row(sql, params![entity], |r| r.get(0)).ok() };
        let current = text_of("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1");
        // The token whose cached copy the pairs came from, when they did.
        let mut cached_token = None;
        let staged: Option<DataFrame> = match current {
            Some(sql) if sql == create => {
                let token = text_of("SELECT token FROM staged_hash_tokens WHERE entity = ?1");
                match token.and_then(|t| staged_hashes::read(&cache, entity, &t).map(|df| (t, df)))
                {
                    Some((t, df)) => {
                        cached_token = Some(t);
                        Some(df)
                    }
                    None => read_staged_table(&tx, &hash_table),
                }
            }
            _ => None,
        };
        let insert = format!("INSERT OR REPLACE INTO {table} ({})", names.join(", "));
        let insert_hashes = format!("INSERT OR REPLACE INTO {hash_table} (id, hash)");
        let written = match staged {
            Some(staged) => {
                let (upserts, gone) = compare(&pairs, &staged).map_err(pe)?;
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
                let written = upserts.len() + gone.len();
                if !upserts.is_empty() {
                    let idx = IdxCa::from_vec("idx".into(), upserts);
                    let subset = rows.take(&idx).map_err(pe)?;
                    insert_frame(&tx, &insert, "", &subset, &[]).map_err(e)?;
                    let changed = pairs.take(&idx).map_err(pe)?;
                    insert_frame(&tx, &insert_hashes, "", &changed, &[]).map_err(e)?;
                }
                written
            }
            None => {
                tx.execute_batch(&format!(
                    "DROP TABLE IF EXISTS {table}; {create}; DROP TABLE IF EXISTS {hash_table};
                     CREATE TABLE {hash_table} (id TEXT PRIMARY KEY, hash INTEGER NOT NULL);"
                ))
                .map_err(e)?;
                insert_frame(&tx, &insert, "", rows, &[]).map_err(e)?;
                insert_frame(&tx, &insert_hashes, "", &pairs, &[]).map_err(e)?;
                rows.height()
            }
        };
        if let (0, Some(token)) = (written, &cached_token) {
            // Nothing changed: the cached copy still holds exactly these pairs.
            tx.commit().map_err(e)?;
            let token = token.clone();
            self.committed_token(entity, &token);
            return Ok(0);
        }
        let token = staged_hashes::new_token();
        match staged_hashes::write(&cache, entity, &token, &mut pairs) {
            Ok(()) => tx.execute(
                "INSERT OR REPLACE INTO staged_hash_tokens (entity, token) VALUES (?1, ?2)",
                params![entity, token],
            ),
            Err(io) => {
                // Only slower next time: the rerun reads the pairs from this database.
                tracing::warn!(entity, error = %io, "staged hashes not cached");
                tx.execute(
                    "DELETE FROM staged_hash_tokens WHERE entity = ?1",
                    params![entity],
                )
            }
        }
        .map_err(e)?;
        tx.commit().map_err(e)?;
        self.committed_token(entity, &token);
        Ok(written)
    }

    pub fn write_rejects(&mut self, run_id: &str, issues: &[Issue]) -> Result<(), StageError> {
        let path = self.path.clone();
        let e = |x: rusqlite::Error| err(&path, x);
        let tx = self.conn.savepoint().map_err(e)?;
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
        let tx = self.conn.savepoint().map_err(e)?;
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

/// The `(id, hash)` pairs of a `_staged_` table; `None` when it cannot be read (the table is
/// then rewritten).
fn read_staged_table(tx: &Connection, hash_table: &str) -> Option<DataFrame> {
    let mut stmt = tx
        .prepare(&format!("SELECT id, hash FROM {hash_table}"))
        .ok()?;
    let mut ids: Vec<String> = Vec::new();
    let mut hashes: Vec<i64> = Vec::new();
    let mut rows = stmt.query([]).ok()?;
    while let Some(r) = rows.next().ok()? {
        ids.push(r.get(0).ok()?);
        hashes.push(r.get(1).ok()?);
    }
    df!("id" => ids, "hash" => hashes).ok()
}

/// Which of this run's rows (`current`, in row order) differ from or are missing in the
/// staged pairs, as row indices in order; and which staged IDs are no longer there. Joins on
/// the ID column, so millions of pairs are compared without a map of strings.
fn compare(current: &DataFrame, staged: &DataFrame) -> PolarsResult<(Vec<IdxSize>, Vec<String>)> {
    let cur = current.clone().lazy().with_row_index("row", None);
    let staged = staged
        .clone()
        .lazy()
        .select([col("id"), col("hash").alias("staged_hash")]);
    let changed = cur
        .clone()
        .join(
            staged.clone(),
            [col("id")],
            [col("id")],
            JoinArgs::new(JoinType::Left),
        )
        .filter(
            col("staged_hash")
                .is_null()
                .or(col("staged_hash").neq(col("hash"))),
        )
        .select([col("row")])
        .collect()?;
    let mut upserts: Vec<IdxSize> = changed.column("row")?.idx()?.into_no_null_iter().collect();
    upserts.sort_unstable();
    let gone = staged
        .join(
            cur.select([col("id")]),
            [col("id")],
            [col("id")],
            JoinArgs::new(JoinType::Anti),
        )
        .select([col("id")])
        .collect()?;
    let gone: Vec<String> = gone
        .column("id")?
        .str()?
        .iter()
        .map(|id| id.unwrap_or("").to_string())
        .collect();
    Ok((upserts, gone))
}

fn err(path: &Path, e: impl std::fmt::Display) -> StageError {
    StageError::Sqlite {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rows: &[(&str, &str)]) -> (DataFrame, Vec<u64>) {
        let ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let names: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let hashes = names
            .iter()
            .map(|n| n.bytes().fold(7u64, |h, b| h.wrapping_mul(31) ^ b as u64))
            .collect();
        (df!("id" => ids, "nombre" => names).unwrap(), hashes)
    }

    /// `(id, column)` of every row of `table`, by ID.
    fn pairs<T: rusqlite::types::FromSql>(
        s: &Staging,
        table: &str,
        column: &str,
    ) -> Vec<(String, T)> {
        let mut st = s
            .conn
            .prepare(&format!("SELECT id, {column} FROM {table} ORDER BY id"))
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn table(s: &Staging) -> Vec<(String, String)> {
        pairs(s, "clientes", "nombre")
    }

    fn staged_pairs(s: &Staging) -> Vec<(String, i64)> {
        pairs(s, "_staged_clientes", "hash")
    }

    fn cache_files(path: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(staged_hashes::dir_of(path))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn sync(s: &mut Staging, rows: &[(&str, &str)]) -> usize {
        let (df, h) = frame(rows);
        s.sync_entity("clientes", &df, &h).unwrap()
    }

    /// A staging database in a temporary folder with DAY1 synced.
    fn staged_day1() -> (tempfile::TempDir, std::path::PathBuf, Staging) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("staging.sqlite");
        let mut s = Staging::open(&path).unwrap();
        sync(&mut s, &DAY1);
        (tmp, path, s)
    }

    const DAY1: [(&str, &str); 3] = [("1", "Ana"), ("2", "Luis"), ("3", "Eva")];
    const DAY2: [(&str, &str); 3] = [("1", "Ana"), ("2", "Luisa"), ("4", "Juan")];

    fn want(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = rows
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_rerun_writes_only_changed_rows_through_the_cached_pairs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("staging.sqlite");
        let mut s = Staging::open(&path).unwrap();
        assert_eq!(sync(&mut s, &DAY1), 3);
        assert_eq!(cache_files(&path).len(), 1);
        // Luis renamed, Eva gone, Juan new: three writes, Ana untouched.
        assert_eq!(sync(&mut s, &DAY2), 3);
        assert_eq!(table(&s), want(&DAY2));
        let before = cache_files(&path);
        assert_eq!(sync(&mut s, &DAY2), 0, "nothing changed, nothing written");
        assert_eq!(
            cache_files(&path),
            before,
            "nor is the cached copy rewritten"
        );
        let files = cache_files(&path);
        assert_eq!(files.len(), 1, "older copies are removed: {files:?}");
        let token: String = s
            .conn
            .query_row(
                "SELECT token FROM staged_hash_tokens WHERE entity = 'clientes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(files[0], format!("clientes.{token}.parquet"));
        let cached = staged_hashes::read(&staged_hashes::dir_of(&path), "clientes", &token)
            .unwrap()
            .sort(["id"], Default::default())
            .unwrap();
        let ids: Vec<&str> = cached
            .column("id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        let hashes: Vec<i64> = cached
            .column("hash")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let pairs: Vec<(String, i64)> = ids.into_iter().map(String::from).zip(hashes).collect();
        assert_eq!(pairs, staged_pairs(&s), "the copy is what the table holds");
    }

    #[test]
    fn without_its_cached_copy_the_sync_reads_the_pairs_from_sqlite() {
        let (_tmp, path, mut s) = staged_day1();
        std::fs::remove_dir_all(staged_hashes::dir_of(&path)).unwrap();
        assert_eq!(sync(&mut s, &DAY2), 3, "still only the changes");
        assert_eq!(table(&s), want(&DAY2));
        assert_eq!(cache_files(&path).len(), 1, "and the copy is back");
    }

    /// A run's batch: what it synced is seen by readers once it commits, and a batch never
    /// committed (the run failed or was killed first) leaves the last committed staging and
    /// its cached pairs in force.
    #[test]
    fn a_batch_is_seen_whole_once_committed_and_not_at_all_before() {
        let (_tmp, path, mut s) = staged_day1();
        let reader = || {
            let c = Connection::open(&path).unwrap();
            let mut st = c
                .prepare("SELECT id, nombre FROM clientes ORDER BY id")
                .unwrap();
            let rows: Vec<(String, String)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows
        };
        s.begin_batch().unwrap();
        assert_eq!(sync(&mut s, &DAY2), 3);
        assert_eq!(reader(), want(&DAY1), "not before the batch commits");
        drop(s);
        let mut s = Staging::open(&path).unwrap();
        assert_eq!(table(&s), want(&DAY1), "an abandoned batch leaves nothing");
        assert_eq!(cache_files(&path).len(), 2, "its cached copy is a stray");
        s.begin_batch().unwrap();
        assert_eq!(sync(&mut s, &DAY2), 3, "compared with what was committed");
        assert_eq!(
            cache_files(&path).len(),
            3,
            "older copies stay until commit"
        );
        s.commit_batch().unwrap();
        assert_eq!(reader(), want(&DAY2));
        assert_eq!(cache_files(&path).len(), 1, "then only the committed copy");
        assert_eq!(sync(&mut s, &DAY2), 0, "and it is the one compared with");
    }

    #[test]
    fn a_copy_left_by_a_sync_that_never_committed_is_not_trusted() {
        let (_tmp, path, mut s) = staged_day1();
        // A crash after the new copy was written, before its transaction committed: a file
        // under a token the database never recorded, claiming DAY2 is staged.
        let (df, h) = frame(&DAY2);
        let mut pairs = df.select(["id"]).unwrap();
        pairs
            .with_column(Column::new(
                "hash".into(),
                h.iter().map(|&x| x as i64).collect::<Vec<i64>>(),
            ))
            .unwrap();
        staged_hashes::write(&staged_hashes::dir_of(&path), "clientes", "zzz", &mut pairs).unwrap();
        assert_eq!(sync(&mut s, &DAY2), 3, "compared with what was committed");
        assert_eq!(table(&s), want(&DAY2));
        assert_eq!(cache_files(&path).len(), 1, "the stray copy is removed");
    }
}
