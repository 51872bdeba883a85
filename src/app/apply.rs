//! The CRM stage through the intent journal, shared by runs, approvals and recovery. A run
//! first journals everything it is about to write (every entity's rows, deletes, holds and next
//! snapshot), then applies the journal with idempotent writes and promotes the snapshots. A
//! run killed anywhere after the journal committed is completed by the next run or approval
//! ([`recover`]) before it reads anything, so the CRM sees each change exactly once in effect.

use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rustc_hash::FxHashSet as HashSet;
use serde_json::{json, Value};

use super::error::{frame_err, sink_err, PipelineError};
use super::work::{without_hash, EntityWork, RunOptions};
use crate::config::Recipes;
use crate::diff;
use crate::model::{Issue, RunReport, RunStatus, Severity};
use crate::state::journal::{self, EntityIntent, IntentKind};
use crate::state::{NextSnapshot, State, StateError};
use crate::support::failpoint::failpoint;
use crate::support::progress::{Progress, Stage};
use crate::transform::ID;

/// A run's committed journal: from here its CRM writes are a promise the next run keeps.
pub(super) struct Journal {
    pub(super) intents: Vec<EntityIntent>,
    /// The run's status once applied.
    pub(super) status: RunStatus,
    /// The run's summary as known before the CRM stage.
    pub(super) summary: Value,
}

/// Journals the run: each entity's writes and its next snapshot (taken out of `work`, which
/// keeps the accepted rows staging needs), committed before anything touches the CRM.
pub(super) fn write_journal(
    state: &State,
    run_id: &str,
    work: &mut [EntityWork],
    report: &RunReport,
    max_delta_share: f64,
) -> Result<Journal, PipelineError> {
    let mut intents: Vec<EntityIntent> = work
        .iter()
        .map(|w| intent_of(w).map_err(frame_err(run_id, &w.recipe.entity)))
        .collect::<Result<_, _>>()?;
    let mut snapshots: Vec<Option<NextSnapshot>> = work
        .iter_mut()
        .zip(&intents)
        .map(|(w, i)| {
            let frame = std::mem::replace(&mut w.snapshot, DataFrame::empty());
            let changed_ids = w.changed_ids.take();
            i.has_snapshot.then_some(NextSnapshot {
                frame,
                changed_ids,
                max_delta_share,
            })
        })
        .collect();
    let summary = report.to_json();
    state.write_intent(
        run_id,
        report.status,
        &summary,
        &mut intents,
        &mut snapshots,
    )?;
    Ok(Journal {
        intents,
        status: report.status,
        summary,
    })
}

/// Builds one entity's journal entry from its diff: the rows to insert and update (with their
/// source lines and changed fields), the deletes to apply now and those held.
fn intent_of(w: &EntityWork) -> PolarsResult<EntityIntent> {
    let mut rows = without_hash(&w.accepted)?;
    rows.with_column(
        UInt32Chunked::from_vec(crate::read::LINE.into(), w.lines.clone()).into_column(),
    )?;
    let take = |idx: Vec<u32>| {
        // A first load inserts every row in order: the journal shares the frame's buffers
        // instead of holding a second copy of the whole entity.
        if idx.len() == rows.height() && idx.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(rows.clone());
        }
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
    let c = &w.changes;
    let unchanged = c.inserted.is_empty() && c.updated.is_empty() && c.deleted.is_empty();
    Ok(EntityIntent {
        entity: w.recipe.entity.clone(),
        file_name: w.file_name.clone(),
        inserts,
        updates,
        deletes: w.deletes.clone(),
        held: w.held.clone(),
        // No insert, update or delete: the new snapshot would have the same IDs and hashes
        // as the old one, so the file is left as it is.
        has_snapshot: !(unchanged && w.had_snapshot),
    })
}

/// This run's CRM stage: its journal applied, then closed with the run's summary.
pub(super) fn apply_run(
    opts: &RunOptions,
    recipes: &Recipes,
    run_id: &str,
    state: &State,
    work: &[EntityWork],
    journal: &Journal,
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
        &journal.intents,
        Some(&staged),
        progress,
    )?;
    let t = Instant::now();
    state.commit_run(run_id, journal.status, &journal.summary, &journal.intents)?;
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
            let prev = state.accepted_snapshot(recipe_of(entity)?)?;
            let next = state.load_pending_snapshot(run_id, entity)?;
            let mut next =
                revert_ids(&next, prev.as_ref(), &refused[k]).map_err(frame_err(run_id, entity))?;
            state.replace_pending_snapshot(run_id, entity, &mut next)?;
            applied.issues.extend(refused_issues(e, &refused[k]));
        }
        if e.has_snapshot {
            state.promote_snapshot(run_id, entity)?;
            failpoint(&format!("snapshot-promoted:{entity}"));
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
pub(super) fn recover(
    recipes: &Recipes,
    state: &State,
    out: &Path,
    by: &str,
) -> Result<usize, PipelineError> {
    let pending = state.pending()?;
    state.remove_uncommitted_journals(&pending);
    for p in &pending {
        match p.meta.kind {
            IntentKind::Run => {
                let status = p.meta.status.ok_or_else(|| StateError::Journal {
                    run_id: p.run_id.clone(),
                    message: "a run's journal without the run's status".into(),
                })?;
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
                state.commit_run(&p.run_id, status, &summary, &intents)?;
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
pub(super) struct CrmApplied {
    pub(super) written: usize,
    pub(super) crm_secs: f64,
    pub(super) snapshot_secs: f64,
    /// Rows the CRM refused, as rejects with their source line.
    pub(super) issues: Vec<Issue>,
}

/// `snapshot` with the rows of `refused` IDs replaced by their previous version (or dropped
/// when they had none).
fn revert_ids(
    snapshot: &DataFrame,
    prev: Option<&DataFrame>,
    refused: &[(String, String)],
) -> PolarsResult<DataFrame> {
    let ids: HashSet<&str> = refused.iter().map(|(id, _)| id.as_str()).collect();
    let kept = diff::without_ids(snapshot, &ids)?;
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

/// The approval's work, idempotent: per entity (children first) the CRM deletes, the
/// snapshot without those rows, then the holds released with the change log in one
/// transaction; an entity released before a kill is not touched again.
pub(super) fn approve_entities(
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
        state.remove_from_snapshot(entity, ids)?;
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
