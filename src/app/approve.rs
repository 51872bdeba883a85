//! `dropsync approve RUN_ID`: the deletes the guard held, applied once an operator agrees.
//! The approval goes through the journal like a run's CRM stage, so an approval killed
//! halfway is completed by the next run or approval, and never applied twice.

use std::path::Path;

use polars::prelude::*;
use rustc_hash::FxHashSet as HashSet;

use super::apply::recover;
use super::error::{frame_err, sink_err, PipelineError};
use crate::config::{self, Recipes};
use crate::state::State;
use crate::support::failpoint::failpoint;
use crate::transform::ID;

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
