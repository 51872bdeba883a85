//! The REST CRM as a `Sink`: frames become JSON records (CRM field names, typed values),
//! inserts carry every field, updates leave create-only fields out, and records the CRM
//! refuses come back with their source line.

use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use super::{redact_url, Outcome, Property, Record, RestConfig, RestCrm, RestError};
use crate::config::specs::RestDecimals;
use crate::config::{DeletePolicy, Recipe};
use crate::sinks::{Applied, Sink, SinkError};
use crate::support::frame_rows::ColumnView;

pub struct RestSink {
    crm: RestCrm,
    decimals: RestDecimals,
    /// The CRM as errors name it: `base_url` redacted (it may hold `user:password@`).
    target: String,
}

impl RestSink {
    pub fn open(cfg: RestConfig, journal: &Path) -> Result<RestSink, SinkError> {
        let target = redact_url(&cfg.base_url);
        if let Some(dir) = journal.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let decimals = cfg.decimals;
        let crm = RestCrm::new(cfg, journal).map_err(|e| err(&target, e))?;
        Ok(RestSink {
            crm,
            decimals,
            target,
        })
    }
}

fn err(target: &str, e: RestError) -> SinkError {
    if e.is_transient() {
        SinkError::Transient {
            target: target.to_string(),
            message: e.to_string(),
        }
    } else {
        SinkError::Write {
            target: target.to_string(),
            message: e.to_string(),
        }
    }
}

/// One record per row; `skip_create_only` for updates.
fn records(
    recipe: &Recipe,
    df: &DataFrame,
    skip_create_only: bool,
    decimals: RestDecimals,
) -> PolarsResult<Vec<Record>> {
    let ids = df.column("id")?.str()?.clone();
    let lines = df
        .column(crate::model::LINE)
        .ok()
        .and_then(|c| c.u32().ok().cloned());
    let fields: Vec<(&str, ColumnView)> = recipe
        .fields
        .iter()
        .filter(|f| !(skip_create_only && f.create_only))
        .map(|f| Ok((f.crm_name.as_str(), ColumnView::new(df.column(&f.name)?)?)))
        .collect::<PolarsResult<_>>()?;
    Ok((0..df.height())
        .map(|i| {
            let mut properties = Vec::with_capacity(fields.len());
            for (name, view) in &fields {
                let json = |v: Option<Value>| Property::Json(v.unwrap_or(Value::Null));
                let v = match view {
                    ColumnView::Str(c) => json(c.get(i).map(|s| Value::String(s.to_string()))),
                    ColumnView::I64(c) => json(c.get(i).map(Value::from)),
                    ColumnView::F64(c) => json(c.get(i).map(Value::from)),
                    ColumnView::Bool(c) => json(c.get(i).map(Value::Bool)),
                    ColumnView::Dec(..) => match (view.text(i), decimals) {
                        (None, _) => Property::Json(Value::Null),
                        (Some(t), RestDecimals::Number) => Property::Number(t),
                        (Some(t), RestDecimals::String) => Property::Json(Value::String(t)),
                    },
                };
                properties.push((name.to_string(), v));
            }
            Record {
                id: ids.get(i).unwrap_or("").to_string(),
                properties,
                source_line: lines.as_ref().and_then(|l| l.get(i)),
            }
        })
        .collect())
}

/// Confirmed now or by an earlier attempt (journal) count as written.
fn applied(out: Outcome) -> Applied {
    Applied {
        written: out.confirmed + out.already_confirmed,
        refused: out
            .rejected
            .into_iter()
            .map(|r| (r.id, r.message))
            .collect(),
    }
}

impl Sink for RestSink {
    fn prepare(
        &mut self,
        _recipe: &Recipe,
        _schema: &DataFrame,
        _staged: Option<&DataFrame>,
    ) -> Result<(), SinkError> {
        Ok(())
    }

    fn upsert(
        &mut self,
        recipe: &Recipe,
        inserts: &DataFrame,
        updates: &DataFrame,
        _run_id: &str,
    ) -> Result<Applied, SinkError> {
        let frame = |e: PolarsError| SinkError::Write {
            target: self.target.clone(),
            message: e.to_string(),
        };
        let mut all = records(recipe, inserts, false, self.decimals).map_err(frame)?;
        all.extend(records(recipe, updates, true, self.decimals).map_err(frame)?);
        let out = self
            .crm
            .upsert(&recipe.crm_object, &recipe.crm_id_property, &all)
            .map_err(|e| err(&self.target, e))?;
        Ok(applied(out))
    }

    fn delete(
        &mut self,
        recipe: &Recipe,
        ids: &[String],
        policy: DeletePolicy,
        _run_id: &str,
    ) -> Result<Applied, SinkError> {
        if policy == DeletePolicy::Ignore {
            return Ok(Applied::default());
        }
        let out = self
            .crm
            .delete(&recipe.crm_object, &recipe.crm_id_property, ids)
            .map_err(|e| err(&self.target, e))?;
        Ok(applied(out))
    }

    fn finish(&mut self, recipe: &Recipe) -> Result<(), SinkError> {
        self.crm
            .finish(&recipe.crm_object)
            .map_err(|e| err(&self.target, e))
    }
}
