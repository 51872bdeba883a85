//! PostgreSQL CRM target. The main crate turns each change set into COPY text (see
//! [`copy_escape`]) and this module loads it: `COPY` into a temp table, then one
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE <something differs>` per batch, all in one
//! transaction, so a rerun of the same data rewrites nothing and a failure leaves the CRM as
//! it was. Tables migrate forward only (missing columns are added, nothing is dropped or
//! retyped), and recipe identifiers are always quoted, never trusted.
//!
//! The connection URL comes from an environment variable whose *name* is in the config, so
//! secrets never sit in recipe files. TLS is not enabled (`NoTls`): use a local socket, a
//! private network or an SSL tunnel, or a URL with `sslmode=disable`/`prefer`.

mod copy_text;
pub mod sink;
mod sql;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io::{BufReader, Read, Write};
use std::time::Instant;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Transaction};
use tracing::{debug, info};

pub use self::copy_text::{copy_escape, CopyText, COPY_NULL};
use self::copy_text::{CopyRows, ParseError};
use self::sql::{check_columns, check_ident, crm_reserved, quote_ident, Col, BOOKKEEPING};

/// Column of a target table. `sql_type` is one of TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN,
/// DATE, TIMESTAMP (case-insensitive); the values in the COPY text must parse as that type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    pub name: String,
    pub sql_type: String,
    /// Written when the row is inserted, never overwritten by later upserts (e.g. the source
    /// a client was first seen in, or a value the CRM users edit by hand afterwards).
    pub create_only: bool,
}

/// What deleting an id means in the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// Keep the row, set `_deleted = true` and `_deleted_run`; the row comes back (undeleted)
    /// if a later snapshot contains the id again.
    Soft,
    /// Remove the row.
    Hard,
}

/// Errors of the PostgreSQL target. Each names the value at fault and, where there is one,
/// the fix; [`PgError::is_transient`] tells whether retrying the run may succeed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "environment variable {var} {reason}: set it to the CRM connection URL \
         (postgres://USER:PASSWORD@HOST:5432/DATABASE); the config names the variable so \
         the secret stays out of recipe files"
    )]
    MissingUrlEnv { var: String, reason: &'static str },

    #[error(
        "cannot connect to PostgreSQL with the URL in {var}: {message}; check the host, \
         port, database, user and password in {var} and that the server accepts connections"
    )]
    Connect {
        var: String,
        message: String,
        transient: bool,
    },

    #[error("invalid PostgreSQL identifier {name:?}: {reason}; rename it in the recipe")]
    InvalidIdentifier { name: String, reason: &'static str },

    #[error(
        "table {table:?}: column {column:?} is reserved (id and the _created_run, \
         _updated_run, _deleted, _deleted_run bookkeeping); rename the field in the recipe"
    )]
    ReservedColumn { table: String, column: String },

    #[error("table {table:?}: column {column:?} appears twice; give each field its own CRM name")]
    DuplicateColumn { table: String, column: String },

    #[error(
        "table {table:?}, column {column:?}: unsupported type {sql_type:?}; use one of {}",
        sql::SqlType::ALLOWED
    )]
    UnsupportedType {
        table: String,
        column: String,
        sql_type: String,
    },

    #[error(
        "table {table}: column {column:?} is {existing} in PostgreSQL but the recipe says \
         {wanted}; dropsync never retypes existing data: ALTER the column by hand or give the \
         field a new CRM name"
    )]
    TypeMismatch {
        table: String,
        column: String,
        existing: String,
        wanted: String,
    },

    #[error(
        "table {table} exists without an \"id\" column, so it cannot be a dropsync CRM table; \
         pick another table name or rename the existing table"
    )]
    MissingIdColumn { table: String },

    #[error(
        "refusing to replace {table} as a staging table: it has the CRM bookkeeping columns \
         (_created_run, _deleted...), so it holds CRM data; give the staging table its own name"
    )]
    NotAStagingTable { table: String },

    #[error(
        "{table}: {} in the input more than once ({}); one row per id per batch, so \
         deduplicate the input (the validate stage's unique_ids check catches this)",
        if ids.len() == 1 { "an id appears" } else { "ids appear" },
        ids.join(", ")
    )]
    DuplicateIds { table: String, ids: Vec<String> },

    #[error("{table}: reading the COPY input failed: {source}")]
    Read {
        table: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{table}: line {line} of the COPY input: {message}")]
    Parse {
        table: String,
        line: u64,
        message: String,
    },

    #[error(
        "{op} on {table} failed{}: {message}{}",
        sqlstate.as_deref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default(),
        if *transient { "; this looks transient: retrying the run should succeed" } else { "" }
    )]
    Db {
        op: &'static str,
        table: String,
        message: String,
        sqlstate: Option<String>,
        transient: bool,
    },
}

impl PgError {
    /// True for connection losses, serialization failures, deadlocks and server restarts:
    /// the run can be retried as is. Everything else needs a change in data or config.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PgError::Connect {
                transient: true,
                ..
            } | PgError::Db {
                transient: true,
                ..
            }
        )
    }
}

/// The message of a driver error with the server's detail, hint and context (the context
/// holds the COPY line and column, which the driver's own `Display` leaves out).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str("; detail: ");
            text.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            text.push_str("; hint: ");
            text.push_str(hint);
        }
        if let Some(context) = db.where_() {
            text.push_str("; context: ");
            text.push_str(context);
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether retrying may help: lost connections, I/O errors, and the SQLSTATEs of
/// serialization failures, deadlocks, lock timeouts, shutdowns and connection limits.
fn transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code, "40001" | "40P01" | "55P03" | "53300")
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn db_error(op: &'static str, table: &str, e: &postgres::Error) -> PgError {
    let mut message = describe(e);
    // Undefined table or column: the write ran before the schema migration.
    if matches!(e.code().map(|c| c.code()), Some("42P01" | "42703")) {
        message.push_str("; call prepare_crm_table with the recipe's columns before writing");
    }
    PgError::Db {
        op,
        table: table.to_string(),
        message,
        sqlstate: e.code().map(|c| c.code().to_string()),
        transient: transient(e),
    }
}

/// A write into a COPY stream fails with an `io::Error` wrapping the driver error.
fn copy_write_error(op: &'static str, table: &str, e: std::io::Error) -> PgError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<postgres::Error>())
    {
        Some(pg) => db_error(op, table, pg),
        None => PgError::Db {
            op,
            table: table.to_string(),
            message: e.to_string(),
            sqlstate: None,
            transient: true,
        },
    }
}

/// Streams `data` into a `COPY ... FROM STDIN` inside `tx`. On any error the writer is
/// dropped unfinished, which aborts the COPY; the caller's transaction then rolls back.
fn copy_from(
    tx: &mut Transaction<'_>,
    copy_sql: &str,
    data: &mut dyn Read,
    table: &str,
    op: &'static str,
) -> Result<u64, PgError> {
    debug!(table, sql = copy_sql, "starting COPY");
    let mut writer = tx.copy_in(copy_sql).map_err(|e| db_error(op, table, &e))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PgError::Read {
                    table: table.to_string(),
                    source,
                })
            }
        };
        writer
            .write_all(&buf[..n])
            .map_err(|e| copy_write_error(op, table, e))?;
    }
    writer.finish().map_err(|e| db_error(op, table, &e))
}

/// The table's columns as (name, type) in table order; empty when the table does not exist.
fn table_columns(
    tx: &mut Transaction<'_>,
    qualified: &str,
    table: &str,
) -> Result<Vec<(String, String)>, PgError> {
    let rows = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&qualified],
        )
        .map_err(|e| db_error("read the table layout", table, &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A connection to the CRM database and the schema its tables live in.
pub struct PgTarget {
    client: Client,
    schema: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Connects with the URL held in the environment variable named `url_env` (e.g.
    /// `DROPSYNC_PG_URL`): the config holds the name, never the secret. Creates `schema` if
    /// it is missing (only then, so a CRM user without CREATE on the database can still run
    /// against an existing schema).
    pub fn connect(url_env: &str, schema: &str) -> Result<Self, PgError> {
        let missing = |reason| PgError::MissingUrlEnv {
            var: url_env.to_string(),
            reason,
        };
        let url = match std::env::var(url_env) {
            Ok(url) if url.trim().is_empty() => return Err(missing("is empty")),
            Ok(url) => url,
            Err(std::env::VarError::NotPresent) => return Err(missing("is not set")),
            Err(std::env::VarError::NotUnicode(_)) => return Err(missing("is not valid Unicode")),
        };
        check_ident(schema)?;
        let mut client = Client::connect(&url, NoTls).map_err(|e| PgError::Connect {
            var: url_env.to_string(),
            message: describe(&e),
            transient: transient(&e),
        })?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .map_err(|e| db_error("look up the schema", schema, &e))?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                ))
                .map_err(|e| db_error("create the schema", schema, &e))?;
            info!(schema, "created the CRM schema");
        }
        info!(url_env, schema, "connected to PostgreSQL");
        Ok(PgTarget {
            client,
            schema: schema.to_string(),
        })
    }

    /// The schema every table of this target lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// `"schema"."table"`.
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// Creates the CRM table if it is missing: `id TEXT PRIMARY KEY`, the columns, then the
    /// bookkeeping `_created_run TEXT, _updated_run TEXT, _deleted BOOLEAN NOT NULL DEFAULT
    /// false, _deleted_run TEXT`. An existing table gets its missing columns added (existing
    /// rows read NULL there); columns the recipe no longer lists are kept, and a column whose
    /// type differs from the recipe is an error rather than a silent conversion. All of it in
    /// one transaction, so the schema migrates at start and never half-way.
    pub fn prepare_crm_table(&mut self, table: &str, columns: &[PgColumn]) -> Result<(), PgError> {
        let cols = check_columns(table, columns, &crm_reserved())?;
        let target = self.qualified(table);
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error("begin", table, &e))?;
        let existing = table_columns(&mut tx, &target, table)?;
        if existing.is_empty() {
            let mut defs = sql::column_defs(&cols);
            defs.extend(
                BOOKKEEPING
                    .iter()
                    .map(|(n, d)| format!("{} {d}", quote_ident(n))),
            );
            let ddl = format!("CREATE TABLE IF NOT EXISTS {target} ({})", defs.join(", "));
            debug!(table, sql = ddl, "creating CRM table");
            tx.batch_execute(&ddl)
                .map_err(|e| db_error("create the table", table, &e))?;
            tx.commit().map_err(|e| db_error("commit", table, &e))?;
            info!(table, columns = cols.len(), "created CRM table");
            return Ok(());
        }
        if !existing.iter().any(|(name, _)| name == "id") {
            return Err(PgError::MissingIdColumn { table: target });
        }
        let mut added = Vec::new();
        let mut add = |tx: &mut Transaction<'_>, name: &str, def: &str| {
            let ddl = format!(
                "ALTER TABLE {target} ADD COLUMN {} {def}",
                quote_ident(name)
            );
            debug!(table, sql = ddl, "adding column");
            added.push(name.to_string());
            tx.batch_execute(&ddl)
                .map_err(|e| db_error("add a column", table, &e))
        };
        let mut retyped = Vec::new();
        for col in &cols {
            match existing.iter().find(|(name, _)| *name == col.name) {
                Some((_, ty)) if *ty != col.ty.catalog_name() => {
                    let Some(using) = col.ty.migration_from(ty, &col.quoted) else {
                        return Err(PgError::TypeMismatch {
                            table: target.clone(),
                            column: col.name.clone(),
                            existing: ty.clone(),
                            wanted: col.ty.ddl(),
                        });
                    };
                    let ddl = format!(
                        "ALTER TABLE {target} ALTER COLUMN {} TYPE {} USING {using}",
                        col.quoted,
                        col.ty.ddl()
                    );
                    debug!(table, sql = ddl, "changing a column's type");
                    tx.batch_execute(&ddl)
                        .map_err(|e| db_error("change a column's type", table, &e))?;
                    retyped.push(format!("{}: {ty} -> {}", col.name, col.ty.ddl()));
                }
                Some(_) => {}
                None => add(&mut tx, &col.name, &col.ty.ddl())?,
            }
        }
        for (name, def) in BOOKKEEPING {
            if !existing.iter().any(|(n, _)| n == name) {
                add(&mut tx, name, def)?;
            }
        }
        tx.commit().map_err(|e| db_error("commit", table, &e))?;
        if !retyped.is_empty() {
            info!(table, columns = ?retyped, "migrated CRM table: exact column types");
        }
        if added.is_empty() {
            debug!(table, "CRM table is up to date");
        } else {
            info!(table, added = ?added, "migrated CRM table: added missing columns");
        }
        Ok(())
    }

    /// The bulk path, in ONE transaction: `COPY` `data` (PostgreSQL text format, columns =
    /// `id` then `columns` in order) into a temp table with the same types, then one
    /// `INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE` that rewrites a row only when a non
    /// create-only value differs or the row was soft-deleted (which undeletes it). New rows
    /// get `_created_run = _updated_run = run_id`; changed rows get `_updated_run = run_id`.
    /// Create-only columns are written on insert only. Returns the rows inserted or actually
    /// changed. Any error (malformed line, duplicate id, constraint) rolls everything back.
    pub fn upsert_copy(
        &mut self,
        table: &str,
        columns: &[PgColumn],
        data: &mut dyn Read,
        run_id: &str,
    ) -> Result<u64, PgError> {
        let cols = check_columns(table, columns, &crm_reserved())?;
        let target = self.qualified(table);
        let started = Instant::now();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error("begin", table, &e))?;
        tx.batch_execute(&sql::create_temp_table(&cols))
            .map_err(|e| db_error("create the temp table", table, &e))?;
        let copy_sql = format!(
            "COPY {} ({}) FROM STDIN",
            quote_ident(sql::TEMP_TABLE),
            sql::copy_column_list(&cols)
        );
        let rows = copy_from(&mut tx, &copy_sql, data, table, "COPY")?;
        check_unique_ids(&mut tx, table)?;
        let upsert = sql::upsert_from_temp(&target, &cols);
        debug!(table, sql = upsert, "upserting from the temp table");
        let changed = tx
            .execute(&upsert, &[&run_id])
            .map_err(|e| db_error("upsert", table, &e))?;
        tx.commit().map_err(|e| db_error("commit", table, &e))?;
        info!(
            table,
            run_id,
            rows,
            changed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upserted via COPY"
        );
        Ok(changed)
    }

    /// Deletes `ids` in one statement (`id = ANY($1)`, no round trip per row). `Soft` marks
    /// the rows `_deleted = true, _deleted_run = run_id` (rows already soft-deleted keep
    /// their first `_deleted_run` and are not counted); `Hard` removes them. Unknown ids are
    /// ignored. Returns the rows affected.
    pub fn delete(
        &mut self,
        table: &str,
        ids: &[String],
        mode: DeleteMode,
        run_id: &str,
    ) -> Result<u64, PgError> {
        check_ident(table)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let target = self.qualified(table);
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error("begin", table, &e))?;
        let affected = match mode {
            DeleteMode::Soft => tx.execute(
                &format!(
                    "UPDATE {target} SET \"_deleted\" = true, \"_deleted_run\" = $2::text \
                     WHERE \"id\" = ANY($1) AND NOT \"_deleted\""
                ),
                &[&ids, &run_id],
            ),
            DeleteMode::Hard => tx.execute(
                &format!("DELETE FROM {target} WHERE \"id\" = ANY($1)"),
                &[&ids],
            ),
        }
        .map_err(|e| db_error("delete", table, &e))?;
        tx.commit().map_err(|e| db_error("commit", table, &e))?;
        info!(table, run_id, mode = ?mode, requested = ids.len(), affected, "deleted rows");
        Ok(affected)
    }

    /// Makes the staging table hold exactly the rows of `data`, atomically: in one
    /// transaction the table is created (or re-created when its layout differs from `id TEXT
    /// PRIMARY KEY` + `columns`), truncated and loaded by COPY. Other sessions never see an
    /// empty or half-loaded table (they wait on the TRUNCATE's lock until the commit), and a
    /// failing COPY (malformed line, duplicate id, broken input) leaves the previous rows
    /// intact. Refuses to touch a table with CRM bookkeeping columns. Returns the rows loaded.
    pub fn replace_staging(
        &mut self,
        table: &str,
        columns: &[PgColumn],
        data: &mut dyn Read,
    ) -> Result<u64, PgError> {
        let cols = check_columns(table, columns, &["id"])?;
        let target = self.qualified(table);
        let started = Instant::now();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error("begin", table, &e))?;
        let existing = table_columns(&mut tx, &target, table)?;
        let mut wanted = vec![("id".to_string(), "text".to_string())];
        wanted.extend(cols.iter().map(|c| (c.name.clone(), c.ty.catalog_name())));
        let create = format!(
            "CREATE TABLE {target} ({})",
            sql::column_defs(&cols).join(", ")
        );
        if existing.is_empty() {
            tx.batch_execute(&create)
                .map_err(|e| db_error("create the staging table", table, &e))?;
        } else if existing == wanted {
            tx.batch_execute(&format!("TRUNCATE {target}"))
                .map_err(|e| db_error("truncate the staging table", table, &e))?;
        } else {
            if BOOKKEEPING
                .iter()
                .all(|(name, _)| existing.iter().any(|(n, _)| n == name))
            {
                return Err(PgError::NotAStagingTable { table: target });
            }
            info!(table, "staging layout changed: re-creating the table");
            tx.batch_execute(&format!("DROP TABLE {target}; {create}"))
                .map_err(|e| db_error("re-create the staging table", table, &e))?;
        }
        let copy_sql = format!(
            "COPY {target} ({}) FROM STDIN",
            sql::copy_column_list(&cols)
        );
        let rows = copy_from(&mut tx, &copy_sql, data, table, "COPY into staging")?;
        tx.commit().map_err(|e| db_error("commit", table, &e))?;
        info!(
            table,
            rows,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "replaced staging table"
        );
        Ok(rows)
    }

    /// The naive baseline the benchmark compares against: the same semantics as
    /// [`PgTarget::upsert_copy`] (one transaction, same `ON CONFLICT` clause, same type
    /// parsing, duplicate ids refused) but one prepared `INSERT ... ON CONFLICT` execution,
    /// hence one round trip, per row of the COPY text. Returns the rows changed.
    pub fn upsert_row_by_row(
        &mut self,
        table: &str,
        columns: &[PgColumn],
        data: &mut dyn Read,
        run_id: &str,
    ) -> Result<u64, PgError> {
        let cols = check_columns(table, columns, &crm_reserved())?;
        let target = self.qualified(table);
        let started = Instant::now();
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| db_error("begin", table, &e))?;
        let statement = tx
            .prepare(&sql::upsert_one_row(&target, &cols))
            .map_err(|e| db_error("prepare the row upsert", table, &e))?;
        let mut reader = CopyRows::new(BufReader::new(data));
        let mut seen = HashSet::new();
        let (mut rows, mut changed) = (0u64, 0u64);
        while let Some(fields) = next_row(&mut reader, table)? {
            let id = check_row(&fields, &cols, table, reader.line())?;
            if !seen.insert(id.to_string()) {
                return Err(PgError::DuplicateIds {
                    table: table.to_string(),
                    ids: vec![id.to_string()],
                });
            }
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(fields.len() + 1);
            params.push(&run_id);
            params.extend(fields.iter().map(|f| f as &(dyn ToSql + Sync)));
            changed += tx.execute(&statement, &params).map_err(|e| {
                let mut err = db_error("row-by-row upsert", table, &e);
                if let PgError::Db { message, .. } = &mut err {
                    *message = format!("line {}: {message}", reader.line());
                }
                err
            })?;
            rows += 1;
        }
        tx.commit().map_err(|e| db_error("commit", table, &e))?;
        info!(
            table,
            run_id,
            rows,
            changed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upserted row by row"
        );
        Ok(changed)
    }
}

fn next_row<R: std::io::BufRead>(
    reader: &mut CopyRows<R>,
    table: &str,
) -> Result<Option<Vec<Option<String>>>, PgError> {
    reader.next_row().map_err(|e| match e {
        ParseError::Read(source) => PgError::Read {
            table: table.to_string(),
            source,
        },
        ParseError::Malformed { line, message } => PgError::Parse {
            table: table.to_string(),
            line,
            message,
        },
    })
}

/// The row has `id` + one field per column and a non-null id; returns the id.
fn check_row<'a>(
    fields: &'a [Option<String>],
    cols: &[Col],
    table: &str,
    line: u64,
) -> Result<&'a str, PgError> {
    let parse_error = |message: String| PgError::Parse {
        table: table.to_string(),
        line,
        message,
    };
    if fields.len() != cols.len() + 1 {
        return Err(parse_error(format!(
            "expected {} tab-separated fields (id + {} columns), found {}",
            cols.len() + 1,
            cols.len(),
            fields.len()
        )));
    }
    fields[0]
        .as_deref()
        .ok_or_else(|| parse_error("the id is null (\\N); every row needs an id".to_string()))
}

/// `ON CONFLICT DO UPDATE` cannot touch a row twice in one statement; checking first turns
/// PostgreSQL's cryptic cardinality error into one that names the ids.
fn check_unique_ids(tx: &mut Transaction<'_>, table: &str) -> Result<(), PgError> {
    let rows = tx
        .query(
            &format!(
                "SELECT \"id\" FROM {} GROUP BY \"id\" HAVING count(*) > 1 ORDER BY \"id\" LIMIT 5",
                quote_ident(sql::TEMP_TABLE)
            ),
            &[],
        )
        .map_err(|e| db_error("check for duplicate ids", table, &e))?;
    if rows.is_empty() {
        return Ok(());
    }
    Err(PgError::DuplicateIds {
        table: table.to_string(),
        ids: rows.iter().map(|r| r.get(0)).collect(),
    })
}
