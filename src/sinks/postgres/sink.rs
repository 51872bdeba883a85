//! PostgreSQL as a `Sink`: the same table layout as the embedded CRM, written by `COPY` into
//! a temporary table and one `INSERT … ON CONFLICT (id) DO UPDATE … WHERE` a value differs,
//! one transaction per entity. Optionally the run's accepted rows are staged into a second
//! schema with the layout of `staging.sqlite`.

use polars::prelude::*;

use super::CopyText;
use super::{DeleteMode, PgColumn, PgError, PgTarget};
use crate::config::specs::PostgresSpec;
use crate::config::{DecimalSpec, DeletePolicy, FieldType, Recipe};
use crate::sinks::{Applied, Sink, SinkError};

pub struct PgSink {
    crm: PgTarget,
    staging: Option<PgTarget>,
}

fn err(e: PgError) -> SinkError {
    if e.is_transient() {
        SinkError::Transient {
            target: "postgres".into(),
            message: e.to_string(),
        }
    } else {
        SinkError::Write {
            target: "postgres".into(),
            message: e.to_string(),
        }
    }
}

fn frame(e: PolarsError) -> SinkError {
    SinkError::Write {
        target: "postgres".into(),
        message: e.to_string(),
    }
}

/// Column types as the embedded CRM has them, in PostgreSQL terms.
pub fn columns(recipe: &Recipe, crm_names: bool) -> Vec<PgColumn> {
    recipe
        .fields
        .iter()
        .map(|f| PgColumn {
            name: if crm_names {
                f.crm_name.clone()
            } else {
                f.name.clone()
            },
            sql_type: match f.kind {
                FieldType::Integer => "BIGINT".into(),
                FieldType::Decimal => {
                    let d = f.decimal.unwrap_or(DecimalSpec::DEFAULT);
                    format!("NUMERIC({},{})", d.precision, d.scale)
                }
                FieldType::Boolean => "BOOLEAN".into(),
                FieldType::Date => "DATE".into(),
                FieldType::Datetime => "TIMESTAMP".into(),
                FieldType::String => "TEXT".into(),
            },
            create_only: f.create_only,
        })
        .collect()
}

/// `id` + fields in recipe order, the layout the COPY text must have.
fn ordered(recipe: &Recipe, df: &DataFrame) -> PolarsResult<DataFrame> {
    df.select(std::iter::once("id").chain(recipe.fields.iter().map(|f| f.name.as_str())))
}

impl PgSink {
    pub fn open(cfg: &PostgresSpec) -> Result<PgSink, SinkError> {
        let crm = PgTarget::connect(&cfg.url_env, &cfg.schema).map_err(err)?;
        let staging = match &cfg.staging_schema {
            Some(schema) => Some(PgTarget::connect(&cfg.url_env, schema).map_err(err)?),
            None => None,
        };
        Ok(PgSink { crm, staging })
    }
}

impl Sink for PgSink {
    fn prepare(
        &mut self,
        recipe: &Recipe,
        _schema: &DataFrame,
        staged: Option<&DataFrame>,
    ) -> Result<(), SinkError> {
        self.crm
            .prepare_crm_table(&recipe.crm_object, &columns(recipe, true))
            .map_err(err)?;
        if let (Some(st), Some(rows)) = (&mut self.staging, staged) {
            let df = ordered(recipe, rows).map_err(frame)?;
            let mut data = CopyText::new(&df).map_err(frame)?;
            st.replace_staging(&recipe.entity, &columns(recipe, false), &mut data)
                .map_err(err)?;
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
        let rows = ordered(recipe, &inserts.vstack(updates).map_err(frame)?).map_err(frame)?;
        let mut data = CopyText::new(&rows).map_err(frame)?;
        let n = self
            .crm
            .upsert_copy(
                &recipe.crm_object,
                &columns(recipe, true),
                &mut data,
                run_id,
            )
            .map_err(err)?;
        crate::support::failpoint::failpoint(&format!("crm-upsert:{}", recipe.entity));
        Ok(Applied::written(n as usize))
    }

    fn delete(
        &mut self,
        recipe: &Recipe,
        ids: &[String],
        policy: DeletePolicy,
        run_id: &str,
    ) -> Result<Applied, SinkError> {
        let mode = match policy {
            DeletePolicy::Ignore => return Ok(Applied::default()),
            DeletePolicy::Soft => DeleteMode::Soft,
            DeletePolicy::Hard => DeleteMode::Hard,
        };
        let n = self
            .crm
            .delete(&recipe.crm_object, ids, mode, run_id)
            .map_err(err)?;
        Ok(Applied::written(n as usize))
    }
}
