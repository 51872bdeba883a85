//! The embedded CRM (`crm.sqlite`): one table per CRM object, `id` + the recipe's CRM
//! columns + bookkeeping (`_created_run`, `_updated_run`, `_deleted`, `_deleted_run`).

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rusqlite::types::Value;
use rusqlite::Connection;

use super::{Applied, Sink, SinkError};
use crate::config::{DeletePolicy, Recipe};
use crate::support::decimal;
use crate::support::sqlite_frames::{ident, insert_frame, sql_type};

pub struct SqliteCrm {
    path: PathBuf,
    conn: Connection,
}

impl SqliteCrm {
    pub fn open(path: &Path) -> Result<SqliteCrm, SinkError> {
        let conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(|e| err(path, e))?;
        Ok(SqliteCrm {
            path: path.to_path_buf(),
            conn,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> SinkError {
        err(&self.path, e)
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> SinkError {
    SinkError::Write {
        target: path.display().to_string(),
        message: e.to_string(),
    }
}

/// (CRM column, frame column, create-only) in frame order after `id`.
fn columns(recipe: &Recipe) -> Vec<(&str, &str, bool)> {
    recipe
        .fields
        .iter()
        .map(|f| (f.crm_name.as_str(), f.name.as_str(), f.create_only))
        .collect()
}

/// Rebuilds the CRM table when a decimal field's column is still `REAL` (written by a
/// release that kept amounts as doubles): the column becomes the exact canonical text
/// ([`decimal::from_f64`] of each double, at the field's scale), in one transaction, keeping
/// rows, rowids and every other column. SQLite cannot change a column's type in place, and
/// letting its own REAL → TEXT conversion do it would keep only 15 digits.
fn migrate_floats_to_decimals(conn: &mut Connection, recipe: &Recipe) -> rusqlite::Result<()> {
    let table = &recipe.crm_object;
    let layout: Vec<(String, String, bool, Option<String>, bool)> = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")?
        .query_map([table], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, i64>(2)? != 0,
                r.get(3)?,
                r.get::<_, i64>(4)? != 0,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let scale_of = |column: &str| {
        recipe
            .fields
            .iter()
            .find(|f| f.crm_name == column)
            .and_then(|f| f.decimal)
            .map(|d| d.scale)
    };
    let migrated: Vec<(String, usize)> = layout
        .iter()
        .filter(|(_, ty, ..)| ty.eq_ignore_ascii_case("REAL"))
        .filter_map(|(name, ..)| scale_of(name).map(|s| (name.clone(), s)))
        .collect();
    if migrated.is_empty() {
        return Ok(());
    }
    let defs: Vec<String> = layout
        .iter()
        .map(|(name, ty, not_null, default, pk)| {
            let ty = if migrated.iter().any(|(m, _)| m == name) {
                "TEXT"
            } else {
                ty.as_str()
            };
            let mut def = format!("{} {ty}", ident(name));
            if *pk {
                def.push_str(" PRIMARY KEY");
            }
            if *not_null {
                def.push_str(" NOT NULL");
            }
            if let Some(d) = default {
                def.push_str(&format!(" DEFAULT {d}"));
            }
            def
        })
        .collect();
    let names: Vec<String> = layout.iter().map(|(n, ..)| ident(n)).collect();
    let old = ident(table);
    let new = ident(&format!("_dropsync_migrate_{table}"));
    let tx = conn.transaction()?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {new}; CREATE TABLE {new} ({}); \
         INSERT INTO {new} (rowid, {cols}) SELECT rowid, {cols} FROM {old};",
        defs.join(", "),
        cols = names.join(", ")
    ))?;
    for (column, scale) in &migrated {
        let c = ident(column);
        let floats: Vec<(i64, f64)> = tx
            .prepare(&format!(
                "SELECT rowid, {c} FROM {old} WHERE typeof({c}) IN ('real', 'integer')"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut set = tx.prepare(&format!("UPDATE {new} SET {c} = ?1 WHERE rowid = ?2"))?;
        for (rowid, x) in floats {
            let text = decimal::from_f64(x, *scale).map(|u| decimal::to_text(u, *scale));
            set.execute(rusqlite::params![text, rowid])?;
        }
    }
    tx.execute_batch(&format!(
        "DROP TABLE {old}; ALTER TABLE {new} RENAME TO {old};"
    ))?;
    tx.commit()?;
    tracing::info!(
        table = table.as_str(),
        columns = ?migrated.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        "migrated CRM columns from REAL to exact decimal text"
    );
    Ok(())
}

impl Sink for SqliteCrm {
    fn prepare(
        &mut self,
        recipe: &Recipe,
        rows: &DataFrame,
        _staged: Option<&DataFrame>,
    ) -> Result<(), SinkError> {
        let table = ident(&recipe.crm_object);
        let mut defs = vec!["id TEXT PRIMARY KEY".to_string()];
        for (crm, field, _) in columns(recipe) {
            let dtype = rows
                .column(field)
                .map(|c| c.dtype().clone())
                .unwrap_or(DataType::String);
            defs.push(format!("{} {}", ident(crm), sql_type(&dtype)));
        }
        defs.extend(
            [
                "_created_run TEXT",
                "_updated_run TEXT",
                "_deleted INTEGER NOT NULL DEFAULT 0",
                "_deleted_run TEXT",
            ]
            .map(String::from),
        );
        self.conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({})",
                defs.join(", ")
            ))
            .map_err(|e| self.err(e))?;
        let existing: Vec<String> = self
            .conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                recipe.crm_object.replace('\'', "''")
            ))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        migrate_floats_to_decimals(&mut self.conn, recipe).map_err(|e| err(&self.path, e))?;
        for (crm, field, _) in columns(recipe) {
            if !existing.iter().any(|c| c == crm) {
                let dtype = rows
                    .column(field)
                    .map(|c| c.dtype().clone())
                    .unwrap_or(DataType::String);
                self.conn
                    .execute_batch(&format!(
                        "ALTER TABLE {table} ADD COLUMN {} {}",
                        ident(crm),
                        sql_type(&dtype)
                    ))
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    fn upsert(
        &mut self,
        recipe: &Recipe,
        inserts: &DataFrame,
        updates: &DataFrame,
        run_id: &str,
    ) -> Result<Applied, SinkError> {
        let rows = inserts.vstack(updates).map_err(|e| self.err(e))?;
        let rows = &rows;
        let cols = columns(recipe);
        let table = ident(&recipe.crm_object);
        let names: Vec<String> = std::iter::once("id".to_string())
            .chain(cols.iter().map(|(c, _, _)| ident(c)))
            .collect();
        let head = format!(
            "INSERT INTO {table} ({}, _created_run, _updated_run, _deleted, _deleted_run)",
            names.join(", ")
        );
        let owned: Vec<&(&str, &str, bool)> = cols.iter().filter(|c| !c.2).collect();
        let sets: Vec<String> = owned
            .iter()
            .map(|(c, _, _)| format!("{0} = excluded.{0}", ident(c)))
            .chain([
                "_updated_run = excluded._updated_run".into(),
                "_deleted = 0".into(),
                "_deleted_run = NULL".into(),
            ])
            .collect();
        let differs: Vec<String> = owned
            .iter()
            .map(|(c, _, _)| format!("{table}.{0} IS NOT excluded.{0}", ident(c)))
            .chain(["{table}._deleted <> 0".replace("{table}", &table)])
            .collect();
        let tail = format!(
            "ON CONFLICT(id) DO UPDATE SET {} WHERE {}",
            sets.join(", "),
            differs.join(" OR ")
        );
        let frame = rows
            .select(std::iter::once("id").chain(cols.iter().map(|(_, f, _)| *f)))
            .map_err(|e| self.err(e))?;
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| err(&path, e))?;
        let run = Value::Text(run_id.to_string());
        let n = insert_frame(
            &tx,
            &head,
            &tail,
            &frame,
            &[run.clone(), run, Value::Integer(0), Value::Null],
        )
        .map_err(|e| err(&path, e))?;
        crate::support::failpoint::failpoint(&format!("crm-upsert:{}", recipe.entity));
        tx.commit().map_err(|e| err(&path, e))?;
        Ok(Applied::written(n))
    }

    fn delete(
        &mut self,
        recipe: &Recipe,
        ids: &[String],
        policy: DeletePolicy,
        run_id: &str,
    ) -> Result<Applied, SinkError> {
        let table = ident(&recipe.crm_object);
        let sql = match policy {
            DeletePolicy::Ignore => return Ok(Applied::default()),
            DeletePolicy::Soft => format!(
                "UPDATE {table} SET _deleted = 1, _deleted_run = ?2 WHERE id = ?1 AND _deleted = 0"
            ),
            DeletePolicy::Hard => format!("DELETE FROM {table} WHERE id = ?1 AND ?2 IS NOT NULL"),
        };
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| err(&path, e))?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare(&sql).map_err(|e| err(&path, e))?;
            for id in ids {
                n += stmt
                    .execute(rusqlite::params![id, run_id])
                    .map_err(|e| err(&path, e))?;
            }
        }
        tx.commit().map_err(|e| err(&path, e))?;
        Ok(Applied::written(n))
    }
}
