//! The run's staging outputs for analysts: staging.sqlite (each entity's accepted rows and the
//! rejects), staging.xlsx and the Google Sheets copy. Staging is never a source of truth.
//! Its tables are synced on their own thread as each entity is diffed, so the entity's rows
//! can go before the next entity is read, inside one transaction committed once the run's
//! journal committed: analysts see a run's staging whole or not at all, and a run stopped or
//! killed before leaves the last one. A staging failure after the CRM committed fails the run
//! without losing anything; the next run rewrites staging from its own rows.

use std::io::Cursor;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;
use serde_json::{json, Value};

use super::error::{frame_err, PipelineError};
use super::work::{without_hash, RunOptions};
use crate::config::{Recipe, Recipes};
use crate::diff;
use crate::model::RunReport;
use crate::stage::staging_db::Staging;
use crate::stage::workbook::{self, SheetInput};
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

/// What the run hands the staging thread, in order.
pub(super) enum ToStaging<'r> {
    /// An entity's accepted rows (without row hash and record key), as soon as it is diffed.
    Entity { recipe: &'r Recipe, rows: DataFrame },
    /// The run's journal committed: the rejects join the batch, the batch commits, then the
    /// workbook is written from these sheets (when one is due).
    Commit {
        report: Box<RunReport>,
        sheets: Option<Arc<Vec<SheetFrame>>>,
    },
}

/// The staging thread: syncs each entity's table as its rows arrive, then on `Commit` the
/// rejects, the batch's commit and the workbook. Without `Commit` (the run failed or was
/// stopped before its journal committed) nothing it wrote stays.
pub(super) fn stage_as_diffed(
    opts: &RunOptions,
    run_id: &str,
    recipes: &Recipes,
    mut db: Staging,
    incoming: Receiver<ToStaging>,
    progress: &Progress,
) -> Result<Staged, PipelineError> {
    db.begin_batch()?;
    let mut sqlite_secs = 0.0;
    for message in incoming {
        let t = Instant::now();
        match message {
            ToStaging::Entity { recipe, rows } => {
                let entity = recipe.entity.as_str();
                progress.begin(Stage::Staging, entity);
                // Over every field's value, not the record key: the same rows keep their
                // staged hash across program upgrades (which change every record key), so an
                // upgrade does not rewrite every staged row. (Hashing from the record key was
                // tried: no gain measured on the nightly rerun, and a full rewrite after each
                // upgrade.)
                let hashes = diff::row_hashes(&rows, recipe, diff::HashScope::AllFields)
                    .map_err(frame_err(run_id, entity))?;
                let written = db.sync_entity(entity, &rows, &hashes)?;
                progress.end(Stage::Staging, entity, written);
                sqlite_secs += t.elapsed().as_secs_f64();
            }
            ToStaging::Commit { report, sheets } => {
                db.write_rejects(run_id, &report.issues)?;
                db.commit_batch()?;
                sqlite_secs += t.elapsed().as_secs_f64();
                failpoint("after-stage");
                let xlsx_secs = match sheets.filter(|_| recipes.pipeline.staging.xlsx) {
                    Some(frames) => write_xlsx(opts, recipes, &report, &frames, progress)?,
                    None => 0.0,
                };
                return Ok(Staged {
                    db,
                    sqlite_secs,
                    xlsx_secs,
                });
            }
        }
    }
    Err(PipelineError::Io(
        "the run ended before its journal committed: staging keeps the last run's".into(),
    ))
}

/// staging.xlsx from the sheets' rows and the run's rejects and summary; its seconds.
fn write_xlsx(
    opts: &RunOptions,
    recipes: &Recipes,
    report: &RunReport,
    frames: &[SheetFrame],
    progress: &Progress,
) -> Result<f64, PipelineError> {
    let t = Instant::now();
    progress.add_step(Stage::Staging);
    progress.begin(Stage::Staging, "workbook");
    let inputs: Vec<SheetInput> = frames.iter().map(|f| f.input(recipes)).collect();
    workbook::write_workbook(
        &opts.out.join("staging.xlsx"),
        &inputs,
        &report.issues,
        &report.entities,
        recipes.pipeline.staging.xlsx_max_rows,
        recipes.pipeline.staging.xlsx_entity_rows,
    )?;
    let rows: usize = frames.iter().map(|f| f.head.height()).sum();
    progress.end(Stage::Staging, "workbook", rows);
    Ok(t.elapsed().as_secs_f64())
}

/// One entity's sheet: the first rows any sheet shows, and how many rows the entity has.
pub(super) struct SheetFrame {
    pub(super) entity: String,
    pub(super) head: DataFrame,
    pub(super) total: usize,
}

impl SheetFrame {
    fn input<'a>(&'a self, recipes: &'a Recipes) -> SheetInput<'a> {
        SheetInput {
            name: &self.entity,
            rows: &self.head,
            total: self.total,
            dates: date_fields(recipes, &self.entity),
        }
    }
}

/// The rows the workbook and Google Sheets show, kept as each entity passes: a copy of its
/// first rows only, so its frames can go once it is journaled and staged (the workbook is
/// written after the journal commits, when every entity has gone by).
pub(super) struct SheetRows {
    /// Rows of an entity the workbook shows, when it is written.
    xlsx_rows: Option<usize>,
    /// Cells of the Google spreadsheet, when it is published.
    gsheets_cells: Option<u64>,
    frames: Vec<SheetFrame>,
}

impl SheetRows {
    pub(super) fn new(recipes: &Recipes) -> SheetRows {
        let staging = &recipes.pipeline.staging;
        SheetRows {
            xlsx_rows: staging.xlsx.then_some(staging.xlsx_entity_rows),
            gsheets_cells: staging.gsheets.as_ref().map(|g| g.max_cells),
            frames: Vec::new(),
        }
    }

    fn wanted(&self) -> bool {
        self.xlsx_rows.is_some() || self.gsheets_cells.is_some()
    }

    /// Keeps the first rows of an entity's rows as staged (without row hash and record key)
    /// that any sheet shows.
    pub(super) fn keep(&mut self, entity: &str, rows: &DataFrame) -> PolarsResult<()> {
        if !self.wanted() {
            return Ok(());
        }
        let cols = rows.width().max(1) as u64;
        let shown = self
            .xlsx_rows
            .unwrap_or(0)
            .max(self.gsheets_cells.map_or(0, |c| (c / cols) as usize));
        let total = rows.height();
        let head = if shown >= total {
            rows.clone()
        } else {
            detached(&rows.head(Some(shown)))?
        };
        self.frames.push(SheetFrame {
            entity: entity.to_string(),
            head,
            total,
        });
        Ok(())
    }

    /// Every entity's sheet in load order, those this run did not pass (reused, without a
    /// file, quarantined) from their last accepted snapshot; none when no sheet is due.
    pub(super) fn finish(
        mut self,
        recipes: &Recipes,
        state: &State,
        report: &RunReport,
        out: &std::path::Path,
    ) -> Result<Option<Arc<Vec<SheetFrame>>>, PipelineError> {
        if !self.wanted() {
            return Ok(None);
        }
        // The sheets follow the data, not the clock: when every entity's last pass stands
        // (or it had no file), each sheet would be rewritten with what it holds, so it is not.
        let nothing_new = self.frames.is_empty()
            && report.entities.iter().all(|(_, s)| {
                s.unchanged_since.is_some() || s.status == crate::model::EntityStatus::NoFile
            });
        if nothing_new && (self.xlsx_rows.is_none() || out.join("staging.xlsx").is_file()) {
            tracing::info!(
                "nothing changed since the last pass: staging.xlsx and the spreadsheet stand"
            );
            return Ok(None);
        }
        let run_id = report.run_id.as_str();
        let mut passed = std::mem::take(&mut self.frames);
        for recipe in &recipes.entities {
            let entity = recipe.entity.as_str();
            if let Some(k) = passed.iter().position(|f| f.entity == entity) {
                self.frames.push(passed.swap_remove(k));
            } else if let Ok(Some(snapshot)) = state.accepted_snapshot(recipe) {
                without_hash(&snapshot)
                    .and_then(|rows| self.keep(entity, &rows))
                    .map_err(frame_err(run_id, entity))?;
            }
        }
        Ok(Some(Arc::new(self.frames)))
    }
}

/// A copy of `df` sharing no buffer with it: a slice keeps its whole frame's buffers alive
/// (string views point into them), and the sheets' rows outlive the entity's frames. Made
/// through an in-memory parquet file, which every column type here takes back unchanged
/// (the snapshots rely on it).
fn detached(df: &DataFrame) -> PolarsResult<DataFrame> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Uncompressed)
        .finish(&mut df.clone())?;
    ParquetReader::new(Cursor::new(buf)).finish()
}

/// Publishes the staged sheets; the outcome as the run summary's `gsheets` object.
pub(super) fn publish_sheets(
    recipes: &Recipes,
    spec: &crate::stage::gsheets::GsheetsSpec,
    frames: &[SheetFrame],
    report: &RunReport,
) -> Value {
    use crate::stage::gsheets;
    let inputs: Vec<gsheets::SheetInput> = frames.iter().map(|f| f.input(recipes)).collect();
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
