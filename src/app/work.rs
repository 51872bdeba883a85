//! What the run's parts hand each other: the run's options, and one entity's work from the
//! diff to the journal and staging. A leaf of its own so that the run, the apply path,
//! staging and quarantine share these types without importing one another.

use std::path::PathBuf;

use polars::prelude::*;

use crate::config::Recipe;
use crate::diff::{ChangeSet, HASH};
use crate::model::REC;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub recipes: PathBuf,
    pub inbox: PathBuf,
    pub out: PathBuf,
    pub dry_run: bool,
    /// Recompute every entity: no entity's last pass stands, even with the same inputs.
    pub full: bool,
    /// Show progress bars (a terminal, not `--json`/`--quiet`).
    pub progress: bool,
    /// Set by a signal handler: the run finishes the entity in progress, then stops before
    /// anything is written.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The tenant's cluster-wide lock (`[lock]` of the tenants file), taken besides the
    /// workspace's file lock for a run that writes.
    pub cluster: Option<crate::state::cluster_lock::ClusterLock>,
    /// Where the tenant's state is published (`[state]`): fetched before the run, published
    /// when its journal commits and when it ends.
    pub remote: Option<crate::state::remote::RemoteState>,
    /// Where a run that ended stores its files (workbook, report, quarantined exports)
    /// beyond the workspace (the tenants file's `outputs`).
    pub outputs: Option<crate::stage::store::OutputStore>,
}

impl RunOptions {
    /// A plain run of `inbox` into workspace `out`: written, not forced, quiet, unstoppable,
    /// on this machine only. Callers set what differs.
    pub fn new(recipes: PathBuf, inbox: PathBuf, out: PathBuf) -> RunOptions {
        RunOptions {
            recipes,
            inbox,
            out,
            dry_run: false,
            full: false,
            progress: false,
            stop: None,
            cluster: None,
            remote: None,
            outputs: None,
        }
    }
}

/// Everything one entity carries from the diff to the journal and staging.
pub(super) struct EntityWork<'r> {
    pub(super) recipe: &'r Recipe,
    /// Accepted rows with `__hash`.
    pub(super) accepted: DataFrame,
    pub(super) lines: Vec<u32>,
    pub(super) changes: ChangeSet,
    /// The file the rows came from.
    pub(super) file_name: String,
    /// The entity had a snapshot before this run.
    pub(super) had_snapshot: bool,
    /// Deletes to apply now (policy soft/hard, not held).
    pub(super) deletes: Vec<String>,
    /// Deletes the guard holds until approval.
    pub(super) held: Vec<String>,
    pub(super) snapshot: DataFrame,
    /// The IDs whose rows in `snapshot` changed (see [`crate::diff::changed_ids`]).
    pub(super) changed_ids: Option<Vec<String>>,
}

/// The accepted rows (or a snapshot) as the CRM and staging take them: without the row hash
/// and the record key.
pub(super) fn without_hash(df: &DataFrame) -> PolarsResult<DataFrame> {
    let mut df = df.drop(HASH)?;
    if df.column(REC).is_ok() {
        df = df.drop(REC)?;
    }
    Ok(df)
}
