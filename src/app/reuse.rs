//! Standing on an entity's last full pass when nothing it is computed from changed: the same
//! file bytes, the same compiled recipe and program, and parents whose referenceable IDs are
//! the same set. Such an entity is not read, typed, validated, diffed, staged or written
//! again; it is reported as that pass found it (every row unchanged), with that pass's
//! rejects and warnings, as a full pass would report them.
//!
//! The last pass is what `state::EntityInputs` recorded once it took effect, with the
//! snapshot file it left: while that file is the one on disk, the fingerprint of the IDs
//! the entity offers its children stands without reading them. Only a child that is itself
//! recomputed needs the IDs: they are read then (the snapshot's, less those the pass
//! rejected). Anything that does not add up means a full pass, never a guess.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::error::PipelineError;
use super::explain::normalize;
use crate::config::{Recipe, Recipes};
use crate::model::{EntityStatus, EntitySummary, Issue, Severity};
use crate::stage::staging_db;
use crate::state::{EntityInputs, State};

/// An entity taken from its last full pass.
pub(super) struct Reused {
    pub summary: EntitySummary,
    pub issues: Vec<Issue>,
    /// The IDs that pass rejected: its snapshot keeps their last version, but children could
    /// not reference them.
    pub rejected: HashSet<String>,
    /// Fingerprint of the IDs its children may reference.
    pub ids_hash: u64,
    /// The run whose pass stands.
    pub since: String,
}

/// What decides an entity's outcome besides its file and its parents: its compiled recipe
/// (where it lives aside), the pipeline's guard, and this very program (a new build may
/// parse differently, so it recomputes once).
pub(super) fn recipe_key(recipes: &Recipes, recipe: &Recipe) -> String {
    let mut r = recipe.clone();
    r.file = Default::default();
    let text = format!("{r:?}\u{0}{:?}\u{0}{}", recipes.pipeline.guard, program());
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// The running executable as a file (path, size, modification time), read once per process:
/// a rebuilt or reinstalled program is another program. Cheaper than hashing its bytes.
fn program() -> &'static str {
    static PROGRAM: OnceLock<String> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let exe = std::env::current_exe();
        let meta = exe.as_ref().ok().and_then(|p| std::fs::metadata(p).ok());
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        match (exe.as_ref().ok(), meta.as_ref(), modified) {
            (Some(p), Some(m), Some(t)) => format!("{} {} {t:?}", p.display(), m.len()),
            // Unknown program: never the same key twice, so never a reuse.
            _ => format!("unknown {:?}", std::time::SystemTime::now()),
        }
    })
}

/// The referenceable-ID fingerprints of the entity's parents (each referenced entity once),
/// as they are in this run so far.
pub(super) fn parents_key(recipe: &Recipe, fingerprints: &HashMap<String, u64>) -> String {
    parents(recipe)
        .into_iter()
        .map(|p| format!("{p}={:016x}", fingerprints.get(p).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The entities `recipe` references, each once.
pub(super) fn parents(recipe: &Recipe) -> BTreeSet<&str> {
    recipe
        .fields
        .iter()
        .filter_map(|f| f.reference.as_ref().map(|r| r.entity.as_str()))
        .collect()
}

/// The IDs a reused entity offers its children: its snapshot's, less those its pass
/// rejected. Read only when a recomputed child needs them.
pub(super) fn offered_ids(
    state: &State,
    entity: &str,
    rejected: &HashSet<String>,
) -> Result<crate::validate::IdSet, PipelineError> {
    let ids = state.snapshot_ids(entity)?.unwrap_or_default();
    Ok(crate::validate::id_keys(
        ids.iter()
            .map(String::as_str)
            .filter(|id| !rejected.contains(*id)),
    ))
}

/// The last full pass of `recipe`'s entity, when this run's inputs are the ones it had.
pub(super) fn reusable(
    state: &State,
    staging: &Path,
    recipe: &Recipe,
    file_hash: &str,
    recipe_key: &str,
    parents_key: &str,
) -> Result<Option<Reused>, PipelineError> {
    let entity = recipe.entity.as_str();
    let Some(last) = state.entity_inputs(entity)? else {
        return Ok(None);
    };
    if last.file_hash != file_hash
        || last.recipe_key != recipe_key
        || last.parents_key != parents_key
    {
        return Ok(None);
    }
    if state.snapshot_stamp(entity).as_deref() != Some(last.snapshot_stamp.as_str()) {
        tracing::debug!(
            entity,
            "its snapshot is not the one its last pass left; full pass"
        );
        return Ok(None);
    }
    let issues = staging_db::rejects_of(staging, &last.run_id, entity)?;
    // The snapshot carries the last accepted version of a row that pass rejected; children
    // could not reference it then, so they cannot now.
    let rejected: HashSet<String> = issues
        .iter()
        .filter(|i| i.severity != Severity::Warning && !i.id.is_empty())
        .map(|i| normalize(&i.id, recipe.id.numeric, recipe.id.uppercase))
        .collect();
    let s = &last.summary;
    if issues.is_empty() && s.rejected + s.warnings + s.skipped > 0 {
        tracing::debug!(
            entity,
            "that pass's rejects are gone from staging; full pass"
        );
        return Ok(None);
    }
    Ok(Some(Reused {
        summary: unchanged(&last),
        issues,
        rejected,
        ids_hash: last.ids_hash,
        since: last.run_id,
    }))
}

/// The entity's line as a full pass of the same inputs reports it: the same reads, accepts,
/// rejects and warnings, every accepted row unchanged, nothing written.
fn unchanged(last: &EntityInputs) -> EntitySummary {
    let s = &last.summary;
    EntitySummary {
        status: EntityStatus::Ok,
        inserted: 0,
        updated: 0,
        deleted: 0,
        held_deletes: 0,
        crm_refused: 0,
        unchanged: s.accepted,
        unchanged_since: Some(last.run_id.clone()),
        // Nothing changed this run (the file's drift, a property of the file, still holds).
        field_changes: Default::default(),
        ..s.clone()
    }
}

/// Whether a full pass that ended as `summary` may be stood on next time: it took effect
/// whole (nothing held, nothing refused by the CRM).
pub(super) fn may_record(summary: &EntitySummary) -> bool {
    summary.status == EntityStatus::Ok && summary.held_deletes == 0 && summary.crm_refused == 0
}
