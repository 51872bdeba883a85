//! `dropsync approve RUN_ID`: the deletes the guard held, applied once an operator agrees.
//! The approval goes through the journal like a run's CRM stage, so an approval killed
//! halfway is completed by the next run or approval, and never applied twice.

use std::path::Path;

use super::apply::{approve_entities, recover};
use super::error::PipelineError;
use crate::config;
use crate::state::cluster_lock::ClusterLock;
use crate::state::remote::RemoteState;
use crate::state::State;

/// Applies the deletes a held run kept back, as `dropsync approve RUN_ID`. The approval is
/// journaled first, so one killed halfway is completed by the next run or approval.
pub fn approve(
    recipes_dir: &Path,
    out: &Path,
    run_id: &str,
    cluster: Option<&ClusterLock>,
    remote: Option<&RemoteState>,
) -> Result<Vec<(String, usize)>, PipelineError> {
    let recipes = config::load_dir(recipes_dir)?;
    let _cluster = cluster.map(ClusterLock::acquire).transpose()?;
    // With the state in PostgreSQL a fresh folder is fetched first; otherwise a folder no
    // run wrote is refused before anything is created in it.
    let _lock = match remote {
        Some(remote) => {
            std::fs::create_dir_all(out)
                .map_err(|e| PipelineError::Io(format!("cannot create {}: {e}", out.display())))?;
            let lock = crate::state::lock::WorkspaceLock::acquire(out)?;
            remote.hydrate(out)?;
            lock
        }
        None => {
            crate::state::require_workspace(out)?;
            crate::state::lock::WorkspaceLock::acquire(out)?
        }
    };
    crate::state::require_workspace(out)?;
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
    if let Some(remote) = remote {
        remote.publish(out, &state.db)?;
    }
    let applied = approve_entities(&recipes, &state, out, run_id)?;
    if let Some(remote) = remote {
        remote.publish(out, &state.db)?;
    }
    Ok(applied)
}
