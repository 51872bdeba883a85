//! The run's staging outputs for analysts: staging.sqlite (each entity's accepted rows and the
//! rejects), staging.xlsx and the Google Sheets copy. Staging is a full snapshot of the run
//! each time, never a source of truth: a run killed while writing it is repaired by the next
//! run, and a staging failure after the CRM committed fails the run without losing anything.

use std::time::Instant;

use polars::prelude::*;
use serde_json::{json, Value};

use super::error::{frame_err, PipelineError};
use super::work::{without_hash, EntityWork, RunOptions};
use crate::config::Recipes;
use crate::diff;
use crate::model::RunReport;
use crate::stage::staging_db::Staging;
use crate::stage::workbook::{self, SheetInput};
use crate::stage::StageError;
use crate::state::State;
use crate::support::failpoint::failpoint;
use crate::support::progress::{Progress, Stage};

/// Staging as written: the open database (the CRM's refusals and the run's line are added
/// once the CRM committed) and the seconds spent on each part.
pub(super) struct Staged {
    pub(super) db: Staging,
    pub(super) sqlite_secs: f64,
    pub(super) xlsx_secs: f64,
}

/// The frames the workbook and Google Sheets show, when either is configured.
pub(super) fn sheet_frames(
    recipes: &Recipes,
    state: &State,
    work: &[EntityWork],
    report: &RunReport,
    out: &std::path::Path,
) -> Result<Option<Vec<(String, DataFrame)>>, PipelineError> {
    let staging = &recipes.pipeline.staging;
    if !staging.xlsx && staging.gsheets.is_none() {
        return Ok(None);
    }
    // The sheets follow the data, not the clock: when every entity's last pass stands (or it
    // had no file), each sheet would be rewritten with what it holds, so it is not.
    let nothing_new = work.is_empty()
        && report.entities.iter().all(|(_, s)| {
            s.unchanged_since.is_some() || s.status == crate::model::EntityStatus::NoFile
        });
    if nothing_new && (!staging.xlsx || out.join("staging.xlsx").is_file()) {
        tracing::info!(
            "nothing changed since the last pass: staging.xlsx and the spreadsheet stand"
        );
        return Ok(None);
    }
    let run_id = report.run_id.as_str();
    xlsx_frames(recipes, state, work)
        .map(Some)
        .map_err(frame_err(run_id, "-"))
}

/// Writes staging.sqlite (entity tables, rejects) and staging.xlsx.
pub(super) fn stage(
    opts: &RunOptions,
    run_id: &str,
    work: &[EntityWork],
    report: &RunReport,
    sheets: Option<&[(String, DataFrame)]>,
    recipes: &Recipes,
    progress: &Progress,
) -> Result<Staged, PipelineError> {
    if sheets.is_some() {
        progress.add_step(Stage::Staging);
    }
    // The workbook and the staging tables share nothing: the workbook is written on its own
    // thread while the tables sync, so its single-threaded zip phase overlaps the SQLite work.
    std::thread::scope(|scope| {
        let workbook = sheets.map(|frames| {
            scope.spawn(move || -> Result<f64, StageError> {
                let t = Instant::now();
                progress.begin(Stage::Staging, "workbook");
                let inputs: Vec<SheetInput> = frames
                    .iter()
                    .map(|(n, df)| SheetInput {
                        name: n,
                        rows: df,
                        dates: date_fields(recipes, n),
                    })
                    .collect();
                workbook::write_workbook(
                    &opts.out.join("staging.xlsx"),
                    &inputs,
                    &report.issues,
                    &report.entities,
                    recipes.pipeline.staging.xlsx_max_rows,
                    recipes.pipeline.staging.xlsx_entity_rows,
                )?;
                let rows: usize = frames.iter().map(|(_, df)| df.height()).sum();
                progress.end(Stage::Staging, "workbook", rows);
                Ok(t.elapsed().as_secs_f64())
            })
        });
        let t = Instant::now();
        let staging = stage_tables(opts, run_id, work, report, progress)?;
        let sqlite_secs = t.elapsed().as_secs_f64();
        failpoint("after-stage");
        let xlsx_secs = match workbook.map(|h| h.join()) {
            None => 0.0,
            Some(Ok(r)) => r?,
            Some(Err(_)) => {
                return Err(PipelineError::Io("the workbook thread panicked".into()));
            }
        };
        Ok(Staged {
            db: staging,
            sqlite_secs,
            xlsx_secs,
        })
    })
}

/// staging.sqlite: each entity's table synced to this run's accepted rows, and the rejects.
fn stage_tables(
    opts: &RunOptions,
    run_id: &str,
    work: &[EntityWork],
    report: &RunReport,
    progress: &Progress,
) -> Result<Staging, PipelineError> {
    let mut staging = Staging::open(&opts.out.join("staging.sqlite"))?;
    for w in work {
        let entity = w.recipe.entity.as_str();
        progress.begin(Stage::Staging, entity);
        let rows = without_hash(&w.accepted).map_err(frame_err(run_id, entity))?;
        // Over every field's value, not the record key: the same rows keep their staged
        // hash across program upgrades (which change every record key), so an upgrade does
        // not rewrite every staged row. (Hashing from the record key was tried: no gain
        // measured on the nightly rerun, and a full rewrite after each upgrade.)
        let hashes = diff::row_hashes(&rows, w.recipe, diff::HashScope::AllFields)
            .map_err(frame_err(run_id, entity))?;
        let written = staging.sync_entity(entity, &rows, &hashes)?;
        progress.end(Stage::Staging, entity, written);
    }
    staging.write_rejects(run_id, &report.issues)?;
    Ok(staging)
}

/// The frames the workbook shows: this run's accepted rows, or for an entity without a file
/// this run, its last accepted snapshot.
fn xlsx_frames(
    recipes: &Recipes,
    state: &State,
    work: &[EntityWork],
) -> PolarsResult<Vec<(String, DataFrame)>> {
    let mut frames = Vec::new();
    for recipe in &recipes.entities {
        let df = match work.iter().find(|w| w.recipe.entity == recipe.entity) {
            Some(w) => without_hash(&w.accepted)?,
            None => match state.accepted_snapshot(recipe) {
                Ok(Some(s)) => without_hash(&s)?,
                _ => continue,
            },
        };
        frames.push((recipe.entity.clone(), df));
    }
    Ok(frames)
}

/// Publishes the staged sheets; the outcome as the run summary's `gsheets` object.
pub(super) fn publish_sheets(
    recipes: &Recipes,
    spec: &crate::stage::gsheets::GsheetsSpec,
    frames: &[(String, DataFrame)],
    report: &RunReport,
) -> Value {
    use crate::stage::gsheets;
    let inputs: Vec<gsheets::SheetInput> = frames
        .iter()
        .map(|(n, df)| gsheets::SheetInput {
            name: n,
            rows: df,
            dates: date_fields(recipes, n),
        })
        .collect();
    let published =
        gsheets::staging_grids(&inputs, &report.issues, &report.entities, spec.max_cells)
            .map_err(|e| e.to_string())
            .and_then(|grids| gsheets::publish(spec, &grids).map_err(|e| e.to_string()));
    match published {
        Ok(r) => json!({
            "spreadsheet_id": spec.spreadsheet_id,
            "requests": r.requests,
            "sheets": r.sheets.iter().map(|s| json!({
                "title": s.title, "rows_written": s.rows_written, "rows_total": s.rows_total,
            })).collect::<Vec<_>>(),
        }),
        Err(error) => {
            tracing::warn!(spreadsheet_id = %spec.spreadsheet_id, %error, "Google Sheets staging not updated; staging.sqlite and staging.xlsx are");
            json!({"spreadsheet_id": spec.spreadsheet_id, "error": error})
        }
    }
}

/// The staging thread's outcome once the CRM and the snapshots committed: any failure now
/// says that they did, and that the next run rewrites staging from its own rows.
pub(super) fn after_commit(
    run_id: &str,
    joined: std::thread::Result<Result<Staged, PipelineError>>,
) -> Result<Staged, PipelineError> {
    let staged = match joined {
        Ok(r) => r,
        Err(_) => Err(PipelineError::Io("the staging thread panicked".into())),
    };
    staged.map_err(|e| PipelineError::StagingAfterCommit {
        run_id: run_id.to_string(),
        error: Box::new(e),
    })
}

/// The entity's `date` fields: the columns the workbook writes as Excel dates.
fn date_fields<'r>(recipes: &'r Recipes, entity: &str) -> Vec<&'r str> {
    recipes
        .get(entity)
        .map(|r| {
            r.fields
                .iter()
                .filter(|f| {
                    matches!(
                        f.kind,
                        crate::config::FieldType::Date | crate::config::FieldType::Datetime
                    )
                })
                .map(|f| f.name.as_str())
                .collect()
        })
        .unwrap_or_default()
}
