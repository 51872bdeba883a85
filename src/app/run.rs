//! One run, start to end: read → plan → validate (per entity, parents first) → stage →
//! diff → CRM → snapshots. The order of the durable steps is what makes a run atomic: the
//! CRM is written with idempotent upserts, and an entity's snapshot advances only after its
//! CRM writes committed, so a run killed anywhere is redone by the next one with the same
//! result and nothing doubled.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet as HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use polars::prelude::*;
use serde_json::{json, Value};

use crate::config::{self, DeletePolicy, Recipe, RecipeError, Recipes};
use crate::diff::{self, ChangeSet, HASH};
use crate::read::{self, ReadError};
use crate::sinks::SinkError;
use crate::sources::{self, SourceError};
use crate::stage::staging_db::Staging;
use crate::stage::workbook::{self, SheetInput};
use crate::stage::{EntitySummary, StageError};
use crate::state::journal::{self, EntityIntent, IntentKind};
use crate::state::{State, StateError};
use crate::support::progress::{Progress, Stage};
use crate::transform::{Plan, ID};
use crate::validate::{self, Issue, RefSets, Severity};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Busy(#[from] crate::state::lock::LockError),
    #[error("run {run_id} stopped on request before {entity}; nothing was written to the CRM, the next run redoes it")]
    Stopped { run_id: String, entity: String },
    #[error("run {run_id}: CRM write failed at {entity}: {error}; nothing is lost: the next run first completes what this run had journaled, then goes on")]
    Sink {
        run_id: String,
        entity: String,
        error: SinkError,
    },
    #[error("run {run_id}, {entity}: {error}")]
    Frame {
        run_id: String,
        entity: String,
        error: PolarsError,
    },
    #[error("run {run_id}: the CRM and the snapshots are committed, but staging could not be written: {error}; the next run rewrites staging")]
    StagingAfterCommit {
        run_id: String,
        error: Box<PipelineError>,
    },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Usage(String),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub recipes: PathBuf,
    pub inbox: PathBuf,
    pub out: PathBuf,
    pub dry_run: bool,
    /// Show progress bars (a terminal, not `--json`/`--quiet`).
    pub progress: bool,
    /// Set by a signal handler: the run finishes the entity in progress, then stops before
    /// anything is written.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

use crate::model::{ChangeSamples, EntityStatus, FieldChange, SampleRow, UpdatedSample};
pub use crate::model::{RunReport, RunStatus, Timings};
use crate::support::failpoint::failpoint;

fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt =
        blake3::hash(format!("{:?}{}", now.timestamp_nanos_opt(), std::process::id()).as_bytes());
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &salt.to_hex()[..6])
}

/// Everything one entity carries from validation to the CRM.
struct EntityWork<'r> {
    recipe: &'r Recipe,
    /// Accepted rows with `__hash`.
    accepted: DataFrame,
    lines: Vec<u32>,
    changes: ChangeSet,
    /// A few changes of each kind (for `plan`, the run summary and the status page).
    sample: ChangeSamples,
    /// The file the rows came from.
    file_name: String,
    /// The entity had a snapshot before this run.
    had_snapshot: bool,
    /// Deletes to apply now (policy soft/hard, not held).
    deletes: Vec<String>,
    snapshot: DataFrame,
}

pub fn run(opts: &RunOptions) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let recipes = config::load_dir(&opts.recipes)?;
    let (files, unmatched) = sources::scan_inbox(&opts.inbox, &recipes)?;
    for u in &unmatched {
        tracing::warn!(file = %u.display(), "no recipe takes this file; left alone");
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| PipelineError::Io(format!("cannot create {}: {e}", opts.out.display())))?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(crate::state::lock::WorkspaceLock::acquire(&opts.out)?)
    };
    let state = State::open(&opts.out)?;
    let run_id = new_run_id();
    if opts.dry_run {
        if !state.pending()?.is_empty() {
            tracing::warn!("an interrupted run left CRM writes to complete; this plan compares with the snapshots before them (the next real run completes them first)");
        }
    } else {
        recover(&recipes, &state, &opts.out, &run_id)?;
        let stale = state.begin_run(&run_id, &crate::state::now())?;
        if stale > 0 {
            tracing::warn!(
                stale,
                "earlier run(s) were interrupted; this run redoes their work"
            );
        }
    }
    tracing::info!(run_id = %run_id, files = files.len(), "run started");
    let result = process(opts, &recipes, &files, &state, &run_id, started);
    if let Err(e) = &result {
        if !opts.dry_run && !matches!(e, PipelineError::Stopped { .. }) {
            // The status page and `runs` must say why; the next run redoes the work anyway.
            if let Err(db) = state.finish_run(&run_id, "failed", &json!({"error": e.to_string()})) {
                tracing::warn!(error = %db, "could not record the failed run");
            }
        }
    }
    result
}

/// A run after it was registered: read, validate, diff, stage and apply each entity.
fn process(
    opts: &RunOptions,
    recipes: &Recipes,
    files: &[sources::EntityFile],
    state: &State,
    run_id: &str,
    started: Instant,
) -> Result<RunReport, PipelineError> {
    let progress = Progress::new(opts.progress, files.len());

    let mut timings = Timings::default();
    let mut refs: RefSets = RefSets::default();
    let mut summaries: Vec<(String, EntitySummary)> = Vec::new();
    let mut issues: Vec<Issue> = Vec::new();
    let mut work: Vec<EntityWork> = Vec::new();
    let mut held_any = false;
    let mut holds: Vec<(String, Vec<String>)> = Vec::new();

    for recipe in &recipes.entities {
        let entity = recipe.entity.as_str();
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
        {
            if !opts.dry_run {
                state.finish_run(run_id, "stopped", &json!({"stopped_before": entity}))?;
            }
            return Err(PipelineError::Stopped {
                run_id: run_id.to_string(),
                entity: entity.to_string(),
            });
        }
        let prev = state.load_snapshot(entity)?;
        let mut summary = EntitySummary::default();
        let Some(file) = files.iter().find(|f| f.entity == entity) else {
            summary.status = EntityStatus::NoFile;
            refs.insert(
                entity.to_string(),
                ids_of(prev.as_ref()).map_err(frame_err(run_id, entity))?,
            );
            summaries.push((entity.to_string(), summary));
            continue;
        };
        for ignored in &file.ignored {
            tracing::warn!(entity, file = %ignored.display(), "another file matched this entity; ignored");
        }
        progress.begin(Stage::Read, entity);
        let file_name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        summary.file = Some(file_name.clone());
        let t = Instant::now();
        let raw = match read::read_file(&file.path, recipe) {
            Ok(raw) => raw,
            Err(e) => {
                timings.read += t.elapsed().as_secs_f64();
                quarantine(state, opts, run_id, entity, &file.path, &e)?;
                summary.status = EntityStatus::Quarantined;
                summary.reason = Some(e.to_string());
                issues.push(Issue {
                    entity: entity.to_string(),
                    file: file_name,
                    line: read_error_line(&e),
                    id: String::new(),
                    severity: Severity::Error,
                    rule: "file.unreadable".into(),
                    reason: e.to_string(),
                });
                // The entity keeps its last accepted state; children check against it.
                refs.insert(
                    entity.to_string(),
                    ids_of(prev.as_ref()).map_err(frame_err(run_id, entity))?,
                );
                summaries.push((entity.to_string(), summary));
                continue;
            }
        };
        timings.read += t.elapsed().as_secs_f64();
        progress.end(Stage::Read, entity, raw.frame.height());
        summary.encoding = Some(raw.encoding.to_string());
        if !opts.dry_run {
            state.record_file(
                run_id,
                entity,
                &file_name,
                &raw.hash,
                raw.bytes,
                Some(raw.encoding),
                "read",
                None,
            )?;
        }
        for m in &raw.missing_columns {
            tracing::warn!(entity, column = %m, "optional column not in the file; its field stays empty");
        }

        progress.begin(Stage::Transform, entity);
        let t = Instant::now();
        let typed = Plan::new(recipe)
            .apply(raw.frame.clone())
            .map_err(frame_err(run_id, entity))?;
        timings.transform += t.elapsed().as_secs_f64();
        progress.end(Stage::Transform, entity, typed.height());

        progress.begin(Stage::Validate, entity);
        let t = Instant::now();
        let v = validate::validate(recipe, &file_name, &typed, &raw.frame, &refs)
            .map_err(frame_err(run_id, entity))?;
        drop(typed);
        drop(raw);
        timings.validate += t.elapsed().as_secs_f64();
        progress.end(Stage::Validate, entity, v.counts.accepted);
        let mut ref_ids = v.accepted_ids;

        progress.begin(Stage::Diff, entity);
        let t = Instant::now();
        let mut accepted = v.accepted;
        let hashes = diff::row_hashes(&accepted, recipe, diff::HashScope::Comparable)
            .map_err(frame_err(run_id, entity))?;
        accepted
            .with_column(UInt64Chunked::from_vec(HASH.into(), hashes).into_column())
            .map_err(frame_err(run_id, entity))?;
        let changes = diff::diff(recipe, &accepted, prev.as_ref(), &v.rejected_ids)
            .map_err(frame_err(run_id, entity))?;
        let prev_rows = prev.as_ref().map(|p| p.height()).unwrap_or(0);
        let mut keep_rows = changes.carried.clone();
        let mut deletes = Vec::new();
        if !changes.deleted.is_empty() && recipe.delete_policy != DeletePolicy::Ignore {
            let too_many =
                changes.deleted.len() as f64 > recipe.max_delete_share * prev_rows as f64;
            if v.counts.read == 0 || too_many {
                held_any = true;
                summary.held_deletes = changes.deleted.len();
                tracing::warn!(
                    entity,
                    deletes = changes.deleted.len(),
                    of = prev_rows,
                    "deletes held: {} (approve with `dropsync approve {run_id}`)",
                    if v.counts.read == 0 {
                        "the file has no rows"
                    } else {
                        "over the guard's share"
                    }
                );
                if let Some(p) = prev.as_ref() {
                    keep_rows.extend(
                        diff::positions(p, &changes.deleted).map_err(frame_err(run_id, entity))?,
                    );
                }
                holds.push((entity.to_string(), changes.deleted.clone()));
                // Held rows still exist until approval: children's references to them hold,
                // so nothing about them (not even a child's optional link) changes now.
                ref_ids.extend(changes.deleted.iter().cloned());
            } else {
                deletes = changes.deleted.clone();
            }
        }
        refs.insert(entity.to_string(), ref_ids);
        keep_rows.sort_unstable();
        let snapshot = diff::next_snapshot(&accepted, prev.as_ref(), &keep_rows)
            .map_err(frame_err(run_id, entity))?;
        timings.diff += t.elapsed().as_secs_f64();

        summary.status = if summary.held_deletes > 0 {
            EntityStatus::Held
        } else {
            EntityStatus::Ok
        };
        summary.read = v.counts.read;
        summary.accepted = v.counts.accepted;
        summary.rejected = v.counts.rejected;
        summary.skipped = v.counts.skipped;
        summary.warnings = v.counts.warnings;
        summary.inserted = changes.inserted.len();
        summary.updated = changes.updated.len();
        summary.unchanged = changes.unchanged;
        summary.deleted = deletes.len();
        issues.extend(v.issues);
        summaries.push((entity.to_string(), summary));
        let sample = samples(&accepted, prev.as_ref(), &changes);
        progress.end(
            Stage::Diff,
            entity,
            changes.inserted.len() + changes.updated.len() + changes.deleted.len(),
        );
        work.push(EntityWork {
            file_name: file_name.clone(),
            recipe,
            accepted,
            lines: v.lines,
            sample,
            had_snapshot: prev.is_some(),
            changes,
            deletes,
            snapshot,
        });
    }

    let status = if held_any {
        RunStatus::Held
    } else {
        RunStatus::Ok
    };
    let mut report = RunReport {
        run_id: run_id.to_string(),
        status,
        dry_run: opts.dry_run,
        entities: summaries,
        samples: work
            .iter()
            .map(|w| (w.recipe.entity.clone(), w.sample.clone()))
            .collect(),
        issues,
        timings,
        crm_rows_written: 0,
        peak_rss_mb: 0.0,
        gsheets: None,
    };
    if opts.dry_run {
        report.timings.total = started.elapsed().as_secs_f64();
        report.peak_rss_mb = peak_rss_mb();
        progress.finish();
        return Ok(report);
    }

    // Staging (sqlite, then the workbook) runs on its own thread while this one writes the
    // CRM: different files, no shared connection, both cores busy. Staging is a full
    // snapshot each run, so a run killed midway is repaired by the next one either way.
    let xlsx = recipes.pipeline.staging.xlsx;
    let gsheets = recipes.pipeline.staging.gsheets.as_ref();
    let sheet_frames = if xlsx || gsheets.is_some() {
        Some(
            xlsx_frames(recipes, state, &work).map_err(|error| PipelineError::Frame {
                run_id: run_id.to_string(),
                entity: "-".into(),
                error,
            })?,
        )
    } else {
        None
    };
    // The journal first: once it commits, the CRM writes below are this run's promise, and
    // a run that follows a kill completes them before it reads anything.
    let t = Instant::now();
    let mut intents: Vec<EntityIntent> = work
        .iter()
        .map(|w| intent_of(w, &holds).map_err(frame_err(run_id, &w.recipe.entity)))
        .collect::<Result<_, _>>()?;
    let mut snapshots: Vec<Option<DataFrame>> = work
        .iter_mut()
        .zip(&intents)
        .map(|(w, i)| {
            let s = std::mem::replace(&mut w.snapshot, DataFrame::empty());
            i.has_snapshot.then_some(s)
        })
        .collect();
    let summary = report.to_json();
    state.write_intent(
        run_id,
        status.as_str(),
        &summary,
        &mut intents,
        &mut snapshots,
    )?;
    drop(snapshots);
    let journal_secs = t.elapsed().as_secs_f64();
    let (staged, applied) = std::thread::scope(|scope| {
        let staging = scope.spawn(|| {
            stage(
                opts,
                run_id,
                &work,
                &report,
                sheet_frames.as_deref().filter(|_| xlsx),
                recipes,
                &progress,
            )
        });
        let applied = apply_run(
            opts, recipes, run_id, state, &work, &intents, &summary, &progress,
        );
        (staging.join(), applied)
    });
    let applied = applied?;
    // From here the CRM and the snapshots are committed: a staging failure (a full disk, say)
    // must say so, and the next run rewrites staging from its own rows.
    let staged = match staged {
        Ok(r) => r,
        Err(_) => Err(PipelineError::Io("the staging thread panicked".into())),
    };
    let (mut staging, stage_sqlite, stage_xlsx) =
        staged.map_err(|e| PipelineError::StagingAfterCommit {
            run_id: run_id.to_string(),
            error: Box::new(e),
        })?;
    report.timings.stage_sqlite = stage_sqlite;
    report.timings.stage_xlsx = stage_xlsx;
    report.timings.crm = applied.crm_secs;
    report.timings.snapshot = applied.snapshot_secs + journal_secs;
    report.crm_rows_written = applied.written;
    if !applied.issues.is_empty() {
        // Rows the CRM refused are rejects too, with their file and line.
        staging.write_rejects(run_id, &applied.issues)?;
        for issue in &applied.issues {
            if let Some((_, s)) = report.entities.iter_mut().find(|(e, _)| *e == issue.entity) {
                s.crm_refused += 1;
            }
        }
        report.issues.extend(applied.issues);
    }
    staging.write_run(run_id, &report.entities)?;
    // The spreadsheet follows accepted runs only: published once the CRM committed, with the
    // CRM's refusals among the rejects. Its failure is the analysts' problem, not the CRM's:
    // a warning and a line in the summary, never a failed run.
    if let (Some(spec), Some(frames)) = (gsheets, sheet_frames.as_deref()) {
        let t = Instant::now();
        report.gsheets = Some(publish_sheets(spec, frames, &report));
        report.timings.gsheets = t.elapsed().as_secs_f64();
    }
    report.timings.total = started.elapsed().as_secs_f64();
    report.peak_rss_mb = peak_rss_mb();
    state.finish_run(run_id, status.as_str(), &report.to_json())?;
    progress.finish();
    tracing::info!(run_id = %run_id, status = status.as_str(), crm_rows = report.crm_rows_written, seconds = report.timings.total, "run finished");
    Ok(report)
}

/// Writes staging.sqlite (entity tables, rejects) and staging.xlsx; returns the open
/// staging database and the seconds spent on each.
fn stage(
    opts: &RunOptions,
    run_id: &str,
    work: &[EntityWork],
    report: &RunReport,
    sheets: Option<&[(String, DataFrame)]>,
    recipes: &Recipes,
    progress: &Progress,
) -> Result<(Staging, f64, f64), PipelineError> {
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
                    .map(|(n, df)| SheetInput { name: n, rows: df })
                    .collect();
                workbook::write_workbook(
                    &opts.out.join("staging.xlsx"),
                    &inputs,
                    &report.issues,
                    &report.entities,
                    recipes.pipeline.staging.xlsx_max_rows,
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
        Ok((staging, sqlite_secs, xlsx_secs))
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
        let hashes = diff::row_hashes(&rows, w.recipe, diff::HashScope::AllFields)
            .map_err(frame_err(run_id, entity))?;
        let written = staging.sync_entity(entity, &rows, &hashes)?;
        progress.end(Stage::Staging, entity, written);
    }
    staging.write_rejects(run_id, &report.issues)?;
    Ok(staging)
}

/// Builds one entity's journal entry from its diff: the rows to insert and update (with their
/// source lines and changed fields), the deletes to apply now and those held.
fn intent_of(w: &EntityWork, holds: &[(String, Vec<String>)]) -> PolarsResult<EntityIntent> {
    let mut rows = without_hash(&w.accepted)?;
    rows.with_column(
        UInt32Chunked::from_vec(crate::read::LINE.into(), w.lines.clone()).into_column(),
    )?;
    let take = |idx: Vec<u32>| {
        let idx = IdxCa::from_vec(
            "idx".into(),
            idx.into_iter().map(|i| i as IdxSize).collect(),
        );
        rows.take(&idx)
    };
    let inserts = take(w.changes.inserted.clone())?;
    let mut updates = take(w.changes.updated.iter().map(|(r, _)| *r).collect())?;
    updates.with_column(
        StringChunked::from_iter_values(
            journal::FIELDS.into(),
            w.changes.updated.iter().map(|(_, f)| f.join(",")),
        )
        .into_column(),
    )?;
    let held = holds
        .iter()
        .find(|(e, _)| *e == w.recipe.entity)
        .map(|(_, ids)| ids.clone())
        .unwrap_or_default();
    let c = &w.changes;
    let unchanged = c.inserted.is_empty() && c.updated.is_empty() && c.deleted.is_empty();
    Ok(EntityIntent {
        entity: w.recipe.entity.clone(),
        file_name: w.file_name.clone(),
        inserts,
        updates,
        deletes: w.deletes.clone(),
        held,
        // No insert, update or delete: the new snapshot would have the same IDs and hashes
        // as the old one, so the file is left as it is.
        has_snapshot: !(unchanged && w.had_snapshot),
    })
}

/// This run's CRM stage: its journal applied, then closed with the run's summary.
#[allow(clippy::too_many_arguments)]
fn apply_run(
    opts: &RunOptions,
    recipes: &Recipes,
    run_id: &str,
    state: &State,
    work: &[EntityWork],
    intents: &[EntityIntent],
    summary: &Value,
    progress: &Progress,
) -> Result<CrmApplied, PipelineError> {
    let mut crm =
        crate::sinks::open(&recipes.pipeline.target, &opts.out).map_err(sink_err(run_id, "-"))?;
    let staged: Vec<DataFrame> = work
        .iter()
        .map(|w| without_hash(&w.accepted).map_err(frame_err(run_id, &w.recipe.entity)))
        .collect::<Result<_, _>>()?;
    let applied = apply_intents(
        crm.as_mut(),
        recipes,
        run_id,
        state,
        intents,
        Some(&staged),
        progress,
    )?;
    let t = Instant::now();
    let status = summary["status"].as_str().unwrap_or("ok");
    state.commit_run(run_id, status, summary, intents)?;
    Ok(CrmApplied {
        snapshot_secs: applied.snapshot_secs + t.elapsed().as_secs_f64(),
        ..applied
    })
}

/// Applies a committed journal to the CRM (upserts parents first, deletes children first),
/// then promotes each entity's journaled snapshot. Every step is idempotent, so the same
/// journal applied again after a kill anywhere in here ends in the same CRM; an entity
/// whose snapshot was already promoted had finished its part and is skipped.
fn apply_intents(
    crm: &mut dyn crate::sinks::Sink,
    recipes: &Recipes,
    run_id: &str,
    state: &State,
    intents: &[EntityIntent],
    staged: Option<&[DataFrame]>,
    progress: &Progress,
) -> Result<CrmApplied, PipelineError> {
    let t = Instant::now();
    let recipe_of = |entity: &str| {
        recipes
            .entities
            .iter()
            .find(|r| r.entity == entity)
            .ok_or_else(|| {
                PipelineError::Usage(format!(
                    "run {run_id} left CRM writes for {entity} to complete, but no recipe defines \
                     {entity} any more: restore its recipe, run again, then remove it"
                ))
            })
    };
    let todo: Vec<bool> = intents
        .iter()
        .map(|e| !e.has_snapshot || state.snapshot_pending(run_id, &e.entity))
        .collect();
    let mut applied = CrmApplied::default();
    let mut refused: Vec<Vec<(String, String)>> = vec![Vec::new(); intents.len()];
    for (k, e) in intents.iter().enumerate().filter(|(k, _)| todo[*k]) {
        let entity = e.entity.as_str();
        let recipe = recipe_of(entity)?;
        progress.begin(Stage::Crm, entity);
        crm.prepare(recipe, &e.inserts, staged.map(|s| &s[k]))
            .map_err(sink_err(run_id, entity))?;
        if e.inserts.height() + e.updates.height() > 0 {
            let updates = e
                .updates
                .drop(journal::FIELDS)
                .map_err(frame_err(run_id, entity))?;
            let out = crm
                .upsert(recipe, &e.inserts, &updates, run_id)
                .map_err(sink_err(run_id, entity))?;
            applied.written += e.inserts.height() + updates.height() - out.refused.len();
            refused[k] = out.refused;
        }
        progress.end(Stage::Crm, entity, e.inserts.height() + e.updates.height());
    }
    failpoint("after-upserts");
    for (k, e) in intents.iter().enumerate().rev().filter(|(k, _)| todo[*k]) {
        if e.deletes.is_empty() {
            continue;
        }
        let recipe = recipe_of(&e.entity)?;
        let out = crm
            .delete(recipe, &e.deletes, recipe.delete_policy, run_id)
            .map_err(sink_err(run_id, &e.entity))?;
        applied.written += e.deletes.len() - out.refused.len();
        refused[k].extend(out.refused);
    }
    applied.crm_secs = t.elapsed().as_secs_f64();
    failpoint("before-snapshots");
    let t = Instant::now();
    for (k, e) in intents.iter().enumerate() {
        let entity = e.entity.as_str();
        if !todo[k] {
            // Promoted before a kill; the sink may still hold its resume notes.
            crm.finish(recipe_of(entity)?)
                .map_err(sink_err(run_id, entity))?;
            continue;
        }
        if !refused[k].is_empty() && e.has_snapshot {
            // What the CRM refused did not happen: those IDs keep their last accepted
            // version (or stay absent), so the next run tries them again.
            let prev = state.load_snapshot(entity)?;
            let next = state.load_pending_snapshot(run_id, entity)?;
            let mut next =
                revert_ids(&next, prev.as_ref(), &refused[k]).map_err(frame_err(run_id, entity))?;
            state.replace_pending_snapshot(run_id, entity, &mut next)?;
            applied.issues.extend(refused_issues(e, &refused[k]));
        }
        if e.has_snapshot {
            state.promote_snapshot(run_id, entity)?;
        }
        crm.finish(recipe_of(entity)?)
            .map_err(sink_err(run_id, entity))?;
    }
    applied.snapshot_secs = t.elapsed().as_secs_f64();
    Ok(applied)
}

/// Completes what interrupted runs and approvals had committed to do (their journals),
/// before anything new is read: their CRM writes re-applied, their snapshots promoted,
/// their runs recorded as they would have ended. Returns how many were completed.
fn recover(recipes: &Recipes, state: &State, out: &Path, by: &str) -> Result<usize, PipelineError> {
    let pending = state.pending()?;
    state.remove_uncommitted_journals(&pending);
    for p in &pending {
        match p.meta.kind {
            IntentKind::Run => {
                let intents = state.load_intent(p)?;
                let mut crm = crate::sinks::open(&recipes.pipeline.target, out)
                    .map_err(sink_err(&p.run_id, "-"))?;
                let applied = apply_intents(
                    crm.as_mut(),
                    recipes,
                    &p.run_id,
                    state,
                    &intents,
                    None,
                    &Progress::new(false, 0),
                )?;
                let mut summary = p.meta.report.clone();
                if let Some(o) = summary.as_object_mut() {
                    o.insert("recovered_by".into(), json!(by));
                    o.insert(
                        "crm_rows_written_on_recovery".into(),
                        json!(applied.written),
                    );
                }
                state.commit_run(&p.run_id, &p.meta.status, &summary, &intents)?;
            }
            IntentKind::Approve => {
                approve_entities(recipes, state, out, &p.run_id)?;
            }
        }
        tracing::warn!(run_id = %p.run_id, by, "completed the CRM writes an interrupted {} had committed to", match p.meta.kind { IntentKind::Run => "run", IntentKind::Approve => "approval" });
    }
    Ok(pending.len())
}

/// What the CRM stage did.
#[derive(Default)]
struct CrmApplied {
    written: usize,
    crm_secs: f64,
    snapshot_secs: f64,
    /// Rows the CRM refused, as rejects with their source line.
    issues: Vec<Issue>,
}

/// `snapshot` with the rows of `refused` IDs replaced by their previous version (or dropped
/// when they had none).
fn revert_ids(
    snapshot: &DataFrame,
    prev: Option<&DataFrame>,
    refused: &[(String, String)],
) -> PolarsResult<DataFrame> {
    let ids: HashSet<&str> = refused.iter().map(|(id, _)| id.as_str()).collect();
    let keep: BooleanChunked = snapshot
        .column(ID)?
        .str()?
        .iter()
        .map(|id| Some(!id.is_some_and(|id| ids.contains(id))))
        .collect();
    let kept = snapshot.filter(&keep)?;
    let Some(prev) = prev else { return Ok(kept) };
    let back: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let rows = diff::positions(prev, &back)?;
    diff::next_snapshot(&kept, Some(prev), &rows)
}

fn refused_issues(e: &EntityIntent, refused: &[(String, String)]) -> Vec<Issue> {
    let mut line_of: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for df in [&e.inserts, &e.updates] {
        let (Ok(ids), Ok(lines)) = (
            df.column(ID).and_then(|c| c.str()),
            df.column(crate::read::LINE).and_then(|c| c.u32()),
        ) else {
            continue;
        };
        for (id, line) in ids.iter().zip(lines.iter()) {
            if let (Some(id), Some(line)) = (id, line) {
                line_of.insert(id, line);
            }
        }
    }
    refused
        .iter()
        .map(|(id, message)| Issue {
            entity: e.entity.clone(),
            file: e.file_name.clone(),
            line: line_of.get(id.as_str()).copied().unwrap_or(0),
            id: id.clone(),
            severity: Severity::Error,
            rule: "crm.refused".into(),
            reason: format!("the CRM refused the row: {message}"),
        })
        .collect()
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
            None => match state.load_snapshot(&recipe.entity) {
                Ok(Some(s)) => without_hash(&s)?,
                _ => continue,
            },
        };
        frames.push((recipe.entity.clone(), df));
    }
    Ok(frames)
}

/// Publishes the staged sheets; the outcome as the run summary's `gsheets` object.
fn publish_sheets(
    spec: &crate::stage::gsheets::GsheetsSpec,
    frames: &[(String, DataFrame)],
    report: &RunReport,
) -> Value {
    use crate::stage::gsheets;
    let published =
        gsheets::staging_grids(frames, &report.issues, &report.entities, spec.max_cells)
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

/// VmHWM from /proc (Linux); 0 elsewhere.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Wraps a frame error with the run and entity it happened in.
fn frame_err(run_id: &str, entity: &str) -> impl Fn(PolarsError) -> PipelineError {
    let (run_id, entity) = (run_id.to_string(), entity.to_string());
    move |error| PipelineError::Frame {
        run_id: run_id.clone(),
        entity: entity.clone(),
        error,
    }
}

/// Wraps a CRM error with the run and entity it happened in.
fn sink_err(run_id: &str, entity: &str) -> impl Fn(SinkError) -> PipelineError {
    let (run_id, entity) = (run_id.to_string(), entity.to_string());
    move |error| PipelineError::Sink {
        run_id: run_id.clone(),
        entity: entity.clone(),
        error,
    }
}

fn ids_of(df: Option<&DataFrame>) -> PolarsResult<HashSet<String>> {
    let Some(df) = df else {
        return Ok(HashSet::default());
    };
    Ok(df
        .column(ID)?
        .str()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect())
}

fn without_hash(df: &DataFrame) -> PolarsResult<DataFrame> {
    df.drop(HASH)
}

fn read_error_line(e: &ReadError) -> u32 {
    match e {
        ReadError::Csv { line, .. } | ReadError::Xml { line, .. } => *line as u32,
        _ => 0,
    }
}

/// Copies an unreadable file to `<out>/quarantine/<run_id>/` with a `.reason.txt` beside it.
/// The inbox file itself is left where it is.
fn quarantine(
    state: &State,
    opts: &RunOptions,
    run_id: &str,
    entity: &str,
    path: &Path,
    e: &ReadError,
) -> Result<(), PipelineError> {
    tracing::error!(entity, file = %path.display(), reason = %e, "file quarantined; the entity keeps its last accepted state");
    if opts.dry_run {
        return Ok(());
    }
    let dir = opts.out.join("quarantine").join(run_id);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let io = |x: std::io::Error| PipelineError::Io(format!("quarantine {}: {x}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::copy(path, dir.join(&name)).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.reason.txt")), format!("{e}\n")).map_err(io)?;
    let bytes = std::fs::read(path).unwrap_or_default();
    state.record_file(
        run_id,
        entity,
        &name,
        &blake3::hash(&bytes).to_hex(),
        bytes.len() as u64,
        None,
        "quarantined",
        Some(&e.to_string()),
    )?;
    Ok(())
}

/// A few changes of each kind, for `plan` and the status page: inserted rows (and their IDs),
/// deleted rows as the snapshot had them, and deleted IDs, updated
/// rows as `field: before -> after`.
fn samples(accepted: &DataFrame, prev: Option<&DataFrame>, changes: &ChangeSet) -> ChangeSamples {
    let text = |df: &DataFrame, col: &str, row: usize| -> String {
        df.column(col)
            .ok()
            .and_then(|c| c.get(row).ok())
            .map(|v| match v {
                AnyValue::Null => "∅".to_string(),
                AnyValue::String(s) => s.to_string(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "∅".into())
    };
    // Positions in the previous snapshot of just the sampled IDs: one scan, no index of a
    // million IDs built for ten rows (this runs on every run).
    let wanted: HashSet<String> = changes
        .updated
        .iter()
        .take(5)
        .map(|(i, _)| text(accepted, ID, *i as usize))
        .chain(changes.deleted.iter().take(5).cloned())
        .collect();
    let prev_index: std::collections::HashMap<String, usize> = prev
        .filter(|_| !wanted.is_empty())
        .and_then(|p| p.column(ID).ok().and_then(|c| c.str().ok().cloned()))
        .map(|ids| {
            ids.iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    id.filter(|id| wanted.contains(*id))
                        .map(|id| (id.to_string(), i))
                })
                .collect()
        })
        .unwrap_or_default();
    let updated = changes
        .updated
        .iter()
        .take(5)
        .map(|(i, fields)| {
            let id = text(accepted, ID, *i as usize);
            let j = prev_index.get(&id).copied();
            let changes = fields
                .iter()
                .map(|f| FieldChange {
                    field: f.clone(),
                    before: match (prev, j) {
                        (Some(p), Some(j)) => text(p, f, j),
                        _ => "∅".into(),
                    },
                    after: text(accepted, f, *i as usize),
                })
                .collect();
            UpdatedSample { id, changes }
        })
        .collect();
    // Whole rows for inserts and deletes: what arrived, and what the CRM had for what left.
    let row = |df: &DataFrame, i: usize| -> SampleRow {
        SampleRow(
            df.get_column_names()
                .iter()
                .filter(|c| !c.starts_with("__"))
                .map(|c| (c.to_string(), text(df, c, i)))
                .collect(),
        )
    };
    ChangeSamples {
        inserted: changes
            .inserted
            .iter()
            .take(5)
            .map(|&i| text(accepted, ID, i as usize))
            .collect(),
        inserted_rows: changes
            .inserted
            .iter()
            .take(5)
            .map(|&i| row(accepted, i as usize))
            .collect(),
        updated,
        deleted: changes.deleted.iter().take(5).cloned().collect(),
        deleted_rows: match prev {
            Some(p) => changes
                .deleted
                .iter()
                .take(5)
                .filter_map(|id| prev_index.get(id).map(|&j| row(p, j)))
                .collect(),
            None => Vec::new(),
        },
    }
}

/// Applies the deletes a held run kept back, as `dropsync approve RUN_ID`. The approval is
/// journaled first, so one killed halfway is completed by the next run or approval.
pub fn approve(
    recipes_dir: &Path,
    out: &Path,
    run_id: &str,
) -> Result<Vec<(String, usize)>, PipelineError> {
    let recipes = config::load_dir(recipes_dir)?;
    let _lock = crate::state::lock::WorkspaceLock::acquire(out)?;
    let state = State::open(out)?;
    recover(&recipes, &state, out, &format!("approve {run_id}"))?;
    let Some(run) = state.run(run_id)? else {
        return Err(PipelineError::Usage(format!(
            "no run {run_id} in {}",
            out.display()
        )));
    };
    let (held, superseded) = state.held(run_id)?;
    if held.is_empty() {
        return Err(PipelineError::Usage(if superseded > 0 {
            format!("run {run_id}: its held deletes were superseded by a later run of the same entities; approve that run instead (see `dropsync runs`)")
        } else {
            format!("run {run_id} (status {}) has no held deletes", run.status)
        }));
    }
    state.write_approve_intent(run_id)?;
    approve_entities(&recipes, &state, out, run_id)
}

/// The approval's work, idempotent: per entity (children first) the CRM deletes, the
/// snapshot without those rows, then the holds released with the change log in one
/// transaction; an entity released before a kill is not touched again.
fn approve_entities(
    recipes: &Recipes,
    state: &State,
    out: &Path,
    run_id: &str,
) -> Result<Vec<(String, usize)>, PipelineError> {
    let (held, _) = state.held(run_id)?;
    let mut crm =
        crate::sinks::open(&recipes.pipeline.target, out).map_err(sink_err(run_id, "-"))?;
    let mut done = Vec::new();
    for recipe in recipes.entities.iter().rev() {
        let Some((_, ids)) = held.iter().find(|(e, _)| *e == recipe.entity) else {
            continue;
        };
        let entity = recipe.entity.as_str();
        let n = crm
            .delete(recipe, ids, recipe.delete_policy, run_id)
            .map_err(sink_err(run_id, entity))?;
        failpoint("approve-after-delete");
        if let Some(snap) = state.load_snapshot(entity)? {
            let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
            let keep: BooleanChunked = snap
                .column(ID)
                .and_then(|c| c.str().cloned())
                .map_err(frame_err(run_id, entity))?
                .iter()
                .map(|id| Some(!id.is_some_and(|id| gone.contains(id))))
                .collect();
            let mut kept = snap.filter(&keep).map_err(frame_err(run_id, entity))?;
            state.save_snapshot(entity, &mut kept)?;
        }
        failpoint("approve-after-snapshot");
        state.release_held(run_id, entity, ids)?;
        // The sink's resume notes for these deletes are moot once released.
        crm.finish(recipe).map_err(sink_err(run_id, entity))?;
        tracing::info!(entity, deleted = n.written, "held deletes applied");
        done.push((recipe.entity.clone(), ids.len()));
    }
    state.finish_approve(run_id)?;
    Ok(done)
}

/// Rows per entity in the CRM, for reports and tests.
pub fn crm_counts(out: &Path) -> BTreeMap<String, (i64, i64)> {
    let mut counts = BTreeMap::new();
    let Ok(conn) = rusqlite::Connection::open(out.join("crm.sqlite")) else {
        return counts;
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    for t in tables {
        let q = format!(
            "SELECT count(*), coalesce(sum(_deleted), 0) FROM {}",
            crate::support::sqlite_frames::ident(&t)
        );
        if let Ok(c) = conn.query_row(&q, [], |r| Ok((r.get(0)?, r.get(1)?))) {
            counts.insert(t, c);
        }
    }
    counts
}
