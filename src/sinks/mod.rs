//! CRM targets. The pipeline hands a sink only what changed, parents before children for
//! upserts and children before parents for deletes; every sink makes its writes idempotent
//! (an upsert that finds the same values changes nothing) so a run that is killed and
//! redone converges on the same CRM.

pub mod sqlite;

use polars::prelude::DataFrame;

use crate::recipe::{DeletePolicy, Recipe};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("CRM {target}: {message}")]
    Write { target: String, message: String },
}

pub trait Sink {
    /// Creates or migrates the entity's object (adds missing columns).
    fn prepare(&mut self, recipe: &Recipe, rows: &DataFrame) -> Result<(), SinkError>;
    /// Inserts or updates `rows` (`id` + fields) in one transaction; create-only fields are
    /// written on insert only. Returns rows actually changed.
    fn upsert(
        &mut self,
        recipe: &Recipe,
        rows: &DataFrame,
        run_id: &str,
    ) -> Result<usize, SinkError>;
    /// Applies the delete policy to `ids` in one transaction. Returns rows affected.
    fn delete(
        &mut self,
        recipe: &Recipe,
        ids: &[String],
        policy: DeletePolicy,
        run_id: &str,
    ) -> Result<usize, SinkError>;
}
