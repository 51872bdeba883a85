//! What each entity's last full pass was computed from, so a rerun whose inputs are the same
//! can stand on that pass instead of recomputing it (`app::reuse`).
//!
//! The record is written only once the pass has taken effect (its CRM writes and snapshot
//! committed, nothing held, nothing refused) and forgotten before any later pass of the same
//! entity starts to change things. So a record never describes a state the CRM and the
//! snapshot are not in: a run killed between the two simply leaves no record, and the next
//! run does the full pass.

use rusqlite::{params, OptionalExtension};

use super::{State, StateError};
use crate::model::EntitySummary;

/// The inputs and outcome of one entity's last full pass.
#[derive(Debug, Clone)]
pub struct EntityInputs {
    /// blake3 of the file's bytes.
    pub file_hash: String,
    /// The compiled recipe, the pipeline settings that decide its outcome, and the program.
    pub recipe_key: String,
    /// The fingerprints of the reference IDs of the entity's parents, as they were.
    pub parents_key: String,
    /// Fingerprint of the IDs the entity's children could reference after that pass.
    pub ids_hash: u64,
    /// The snapshot file the pass left ([`State::snapshot_stamp`]): while it is the same
    /// file, the IDs behind `ids_hash` are too, and need not be read to be trusted.
    pub snapshot_stamp: String,
    /// The run that made the pass: its rejects are this entity's rejects.
    pub run_id: String,
    /// The entity's line of that run.
    pub summary: EntitySummary,
}

impl State {
    pub fn entity_inputs(&self, entity: &str) -> Result<Option<EntityInputs>, StateError> {
        let row = self
            .db
            .query_row(
                "SELECT file_hash, recipe_key, parents_key, ids_hash, run_id, summary, \
                 snapshot_stamp FROM entity_inputs WHERE entity = ?1",
                params![entity],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional();
        let row = match row {
            // A workspace opened read-only (plan) by this release before any run wrote it.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => None,
            other => other.map_err(|e| self.err(e))?,
        };
        let Some((file_hash, recipe_key, parents_key, ids_hash, run_id, summary, snapshot_stamp)) =
            row
        else {
            return Ok(None);
        };
        // A summary this release cannot read is no record: the entity gets a full pass.
        let Ok(summary) = serde_json::from_str(&summary) else {
            return Ok(None);
        };
        Ok(Some(EntityInputs {
            file_hash,
            recipe_key,
            parents_key,
            ids_hash: ids_hash as u64,
            snapshot_stamp,
            run_id,
            summary,
        }))
    }

    /// Called before a full pass of `entity` writes anything: from then on its last record
    /// may no longer describe the CRM.
    pub fn forget_entity_inputs(&self, entity: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "DELETE FROM entity_inputs WHERE entity = ?1",
                params![entity],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Called once the full pass has taken effect.
    pub fn record_entity_inputs(
        &self,
        entity: &str,
        inputs: &EntityInputs,
    ) -> Result<(), StateError> {
        let summary = serde_json::to_string(&inputs.summary).unwrap_or_default();
        self.db
            .execute(
                "INSERT OR REPLACE INTO entity_inputs \
                 (entity, file_hash, recipe_key, parents_key, ids_hash, run_id, summary, \
                 snapshot_stamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    entity,
                    inputs.file_hash,
                    inputs.recipe_key,
                    inputs.parents_key,
                    inputs.ids_hash as i64,
                    inputs.run_id,
                    summary,
                    inputs.snapshot_stamp
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
