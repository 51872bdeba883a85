//! The CRM stage through the intent journal, shared by runs, approvals and recovery. A run
//! first journals everything it is about to write (each entity's rows, deletes, holds and next
//! snapshot, as soon as it is diffed), commits the journal after the last entity, then applies
//! it entity by entity with idempotent writes and promotes the snapshots. A
//! run killed anywhere after the journal committed is completed by the next run or approval
//! ([`recover`]) before it reads anything, so the CRM sees each change exactly once in effect.

use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rustc_hash::FxHashSet as HashSet;
use serde_json::{json, Value};

use super::error::{frame_err, sink_err, PipelineError};
use super::work::{EntityWork, RunOptions};
use crate::config::Recipes;
use crate::diff;
use crate::model::{Issue, RunReport, RunStatus, Severity};
use crate::state::journal::{self, EntityIntent, IntentKind, JournaledEntity};
use crate::state::{NextSnapshot, State, StateError};
use crate::support::failpoint::failpoint;
use crate::support::progress::{Progress, Stage};
use crate::transform::ID;

/// A run's committed journal: from here its CRM writes are a promise the next run keeps.
pub(super) struct Journal {
    /// The journaled entities, in load order.
    pub(super) entities: Vec<JournaledEntity>,
    /// The run's status once applied.
    pub(super) status: RunStatus,
    /// The run's summary as known before the CRM stage.
    pub(super) summary: Value,
}

/// Journals one entity's part of the run as soon as it is diffed: its writes, its next
/// snapshot and, for a target that stages rows itself, its accepted rows (`rows`: the
/// accepted rows as staged, without row hash and record key). The entity's frames
/// are freed when this returns (the CRM stage reads its writes back from the journal), so a
/// run holds one entity's rows at a time, whatever the number of entities. Not committed:
/// see [`commit_journal`].
pub(super) fn journal_entity(
    state: &State,
    run_id: &str,
    mut w: EntityWork,
    rows: DataFrame,
    max_delta_share: f64,
    staged_by_target: bool,
) -> Result<JournaledEntity, PipelineError> {
    let entity = w.recipe.entity.clone();
    let mut intent =
        intent_of(&mut w, rows, staged_by_target).map_err(frame_err(run_id, &entity))?;
    let mut snapshot = intent.has_snapshot.then(|| NextSnapshot {
        frame: w.snapshot,
        changed_ids: w.changed_ids,
        max_delta_share,
    });
    state.journal_entity(run_id, &mut intent, snapshot.as_mut())?;
    failpoint(&format!("journaled:{entity}"));
    Ok((entity, intent.file_name, intent.has_snapshot))
}

/// Commits the run's journal once every entity was journaled: from here the run's CRM writes
/// are a promise, kept by this run or the next.
pub(super) fn commit_journal(
    state: &State,
    run_id: &str,
    entities: Vec<JournaledEntity>,
    report: &RunReport,
) -> Result<Journal, PipelineError> {
    let summary = report.to_json();
    state.commit_intent(run_id, report.status, &summary, entities.clone())?;
    Ok(Journal {
        entities,
        status: report.status,
        summary,
    })
}

/// Builds one entity's journal entry from its diff: the rows to insert and update (with their
/// source lines and changed fields), the deletes to apply now and those held.
fn intent_of(
    w: &mut EntityWork,
    staged: DataFrame,
    staged_by_target: bool,
) -> PolarsResult<EntityIntent> {
    let mut rows = staged.clone();
    rows.with_column(
        UInt32Chunked::from_vec(crate::read::LINE.into(), std::mem::take(&mut w.lines))
            .into_column(),
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
        file_name: std::mem::take(&mut w.file_name),
        inserts,
        updates,
        deletes: std::mem::take(&mut w.deletes),
        held: std::mem::take(&mut w.held),
        staged: staged_by_target.then_some(staged),
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
    journal: &Journal,
    progress: &Progress,
) -> Result<CrmApplied, PipelineError> {
    let mut crm =
        crate::sinks::open(&recipes.pipeline.target, &opts.out).map_err(sink_err(run_id, "-"))?;
    let applied = apply_intents(
        crm.as_mut(),
        recipes,
        run_id,
        state,
        &journal.entities,
        progress,
    )?;
    let t = Instant::now();
    state.commit_run(run_id, journal.status, &journal.summary, &journal.entities)?;
    Ok(CrmApplied {
        snapshot_secs: applied.snapshot_secs + t.elapsed().as_secs_f64(),
        ..applied
    })
}

/// Applies a committed journal to the CRM (upserts parents first, deletes children first),
/// then promotes each entity's journaled snapshot. Each entity's writes are read back from
/// the journal in turn, so a run and a recovery take the same path and hold one entity's
/// rows at a time. Every step is idempotent, so the same journal applied again after a kill
/// anywhere in here ends in the same CRM; an entity whose snapshot was already promoted had
/// finished its part and is skipped.
fn apply_intents(
    crm: &mut dyn crate::sinks::Sink,
    recipes: &Recipes,
    run_id: &str,
    state: &State,
    entities: &[JournaledEntity],
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
    let todo: Vec<bool> = entities
        .iter()
        .map(|(entity, _, has_snapshot)| !has_snapshot || state.snapshot_pending(run_id, entity))
        .collect();
    let mut applied = CrmApplied::default();
    let mut deletes: Vec<Vec<String>> = vec![Vec::new(); entities.len()];
    let mut refused: Vec<Refused> = (0..entities.len()).map(|_| Refused::default()).collect();
    for (k, journaled) in entities.iter().enumerate().filter(|(k, _)| todo[*k]) {
        let entity = journaled.0.as_str();
        let recipe = recipe_of(entity)?;
        let e = state.load_entity_intent(run_id, journaled)?;
        progress.begin(Stage::Crm, entity);
        crm.prepare(recipe, &e.inserts, e.staged.as_ref())
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
            refused[k] = Refused::of_writes(&e, out.refused);
        }
        progress.end(Stage::Crm, entity, e.inserts.height() + e.updates.height());
        deletes[k] = e.deletes;
    }
    failpoint("after-upserts");
    for (k, (entity, _, _)) in entities.iter().enumerate().rev().filter(|(k, _)| todo[*k]) {
        if deletes[k].is_empty() {
            continue;
        }
        let recipe = recipe_of(entity)?;
        let out = crm
            .delete(recipe, &deletes[k], recipe.delete_policy, run_id)
            .map_err(sink_err(run_id, entity))?;
        applied.written += deletes[k].len() - out.refused.len();
        refused[k].ids.extend(out.refused);
    }
    applied.crm_secs = t.elapsed().as_secs_f64();
    failpoint("before-snapshots");
    let t = Instant::now();
    for (k, (entity, file_name, has_snapshot)) in entities.iter().enumerate() {
        let entity = entity.as_str();
        if !todo[k] {
            // Promoted before a kill; the sink may still hold its resume notes.
            crm.finish(recipe_of(entity)?)
                .map_err(sink_err(run_id, entity))?;
            continue;
        }
        if !refused[k].ids.is_empty() && *has_snapshot {
            // What the CRM refused did not happen: those IDs keep their last accepted
            // version (or stay absent), so the next run tries them again.
            let prev = state.accepted_snapshot(recipe_of(entity)?)?;
            let next = state.load_pending_snapshot(run_id, entity)?;
            let mut next = revert_ids(&next, prev.as_ref(), &refused[k].ids)
                .map_err(frame_err(run_id, entity))?;
            state.replace_pending_snapshot(run_id, entity, &mut next)?;
            applied.issues.extend(refused[k].issues(entity, file_name));
        }
        if *has_snapshot {
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
                let mut crm = crate::sinks::open(&recipes.pipeline.target, out)
                    .map_err(sink_err(&p.run_id, "-"))?;
                let applied = apply_intents(
                    crm.as_mut(),
                    recipes,
                    &p.run_id,
                    state,
                    &p.meta.entities,
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
                state.commit_run(&p.run_id, status, &summary, &p.meta.entities)?;
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

/// What the CRM refused of one entity: the IDs with its messages, and the source lines of
/// those that were inserts or updates (deletes have none), taken while their rows were read.
#[derive(Default)]
struct Refused {
    ids: Vec<(String, String)>,
    lines: std::collections::HashMap<String, u32>,
}

impl Refused {
    fn of_writes(e: &EntityIntent, ids: Vec<(String, String)>) -> Refused {
        let wanted: HashSet<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        let mut lines = std::collections::HashMap::new();
        for df in [&e.inserts, &e.updates] {
            let (Ok(col), Ok(at)) = (
                df.column(ID).and_then(|c| c.str()),
                df.column(crate::read::LINE).and_then(|c| c.u32()),
            ) else {
                continue;
            };
            for (id, line) in col.iter().zip(at.iter()) {
                if let (Some(id), Some(line)) = (id, line) {
                    if wanted.contains(id) {
                        lines.insert(id.to_string(), line);
                    }
                }
            }
        }
        Refused { ids, lines }
    }

    fn issues(&self, entity: &str, file_name: &str) -> Vec<Issue> {
        self.ids
            .iter()
            .map(|(id, message)| Issue {
                entity: entity.to_string(),
                file: file_name.to_string(),
                line: self.lines.get(id).copied().unwrap_or(0),
                id: id.clone(),
                severity: Severity::Error,
                rule: "crm.refused".into(),
                reason: format!("the CRM refused the row: {message}"),
            })
            .collect()
    }
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
