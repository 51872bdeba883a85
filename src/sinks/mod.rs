//! CRM targets behind one interface. The pipeline hands a sink only what changed, parents
//! before children for upserts and children before parents for deletes; every sink makes its
//! writes idempotent (an upsert that finds the same values changes nothing, a REST batch
//! already confirmed is not sent again) so a run that is killed and redone converges on the
//! same CRM. `pipeline.toml`'s `[target]` picks the sink; credentials come from environment
//! variables it names.

pub mod postgres;
pub mod rest;
pub mod sqlite_crm;

use std::path::Path;

use polars::prelude::DataFrame;

use crate::config::{DeletePolicy, Recipe};

pub use crate::config::specs::{TargetKind, TargetSpec};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (CRM outage, rate limits beyond patience): the run stops, the
    /// snapshots of unwritten entities stay, the next run resumes.
    #[error("CRM {target} unavailable (will resume on the next run): {message}")]
    Transient { target: String, message: String },
    #[error("CRM {target}: {message}")]
    Write { target: String, message: String },
}

/// What a write did: rows written, and rows the CRM refused (ID, its message), which become
/// rejects and do not advance in the snapshot.
#[derive(Debug, Default)]
pub struct Applied {
    pub written: usize,
    pub refused: Vec<(String, String)>,
}

impl Applied {
    /// All `n` rows written, none refused.
    pub fn written(n: usize) -> Applied {
        Applied {
            written: n,
            refused: Vec::new(),
        }
    }
}

pub trait Sink {
    /// Creates or migrates the entity's object (adds missing columns; `schema` gives the
    /// column types). `staged` is this run's accepted rows for targets that also keep a
    /// staging copy (PostgreSQL's `staging_schema`); `None` when a journal is completed
    /// after a kill, whose staging the next run with that entity's file rewrites.
    fn prepare(
        &mut self,
        recipe: &Recipe,
        schema: &DataFrame,
        staged: Option<&DataFrame>,
    ) -> Result<(), SinkError>;
    /// Writes `inserts` and `updates` (`id` + fields + `__line`). Create-only fields are
    /// written on insert only.
    fn upsert(
        &mut self,
        recipe: &Recipe,
        inserts: &DataFrame,
        updates: &DataFrame,
        run_id: &str,
    ) -> Result<Applied, SinkError>;
    /// Applies the delete policy to `ids`.
    fn delete(
        &mut self,
        recipe: &Recipe,
        ids: &[String],
        policy: DeletePolicy,
        run_id: &str,
    ) -> Result<Applied, SinkError>;
    /// The entity's apply is complete and its snapshot advanced.
    fn finish(&mut self, _recipe: &Recipe) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Opens the configured target for a workspace.
pub fn open(target: &TargetSpec, out: &Path) -> Result<Box<dyn Sink>, SinkError> {
    match target.kind {
        TargetKind::Sqlite => Ok(Box::new(sqlite_crm::SqliteCrm::open(
            &out.join("crm.sqlite"),
        )?)),
        TargetKind::Postgres => {
            let cfg = target.postgres.clone().ok_or_else(|| SinkError::Write {
                target: "postgres".into(),
                message: "[target] kind = \"postgres\" needs a [target.postgres] section".into(),
            })?;
            Ok(Box::new(postgres::sink::PgSink::open(&cfg)?))
        }
        TargetKind::Rest => {
            let cfg = target.rest.clone().ok_or_else(|| SinkError::Write {
                target: "rest".into(),
                message: "[target] kind = \"rest\" needs a [target.rest] section".into(),
            })?;
            Ok(Box::new(rest::sink::RestSink::open(
                cfg,
                &out.join("state/rest-journal.sqlite"),
            )?))
        }
    }
}

/// Whether the configured target answers, for `dropsync check`, writing nothing to the
/// workspace: the embedded CRM is only looked at (it may not exist before the first run),
/// PostgreSQL is connected to, and the REST CRM is opened with its resume journal in a
/// scratch folder. Returns what was found, for the operator.
pub fn probe(target: &TargetSpec, out: &Path) -> Result<String, SinkError> {
    match target.kind {
        TargetKind::Sqlite => {
            let path = out.join("crm.sqlite");
            if !path.is_file() {
                return Ok(format!(
                    "{} not created yet (the first run creates it)",
                    path.display()
                ));
            }
            let fail = |e: rusqlite::Error| SinkError::Write {
                target: path.display().to_string(),
                message: e.to_string(),
            };
            let conn = crate::support::read_only_db::open(&path).map_err(fail)?;
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            Ok(format!(
                "{} opened read-only, {tables} table(s)",
                path.display()
            ))
        }
        TargetKind::Postgres | TargetKind::Rest => {
            let scratch = tempfile::tempdir().map_err(|e| SinkError::Write {
                target: "check".into(),
                message: format!("cannot make a scratch folder: {e}"),
            })?;
            open(target, scratch.path())?;
            Ok("connected".into())
        }
    }
}
