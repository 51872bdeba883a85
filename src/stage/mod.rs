//! Staging: what analysts look at. `staging.sqlite` holds one table per entity with this
//! run's accepted rows (replaced atomically), the `rejects` of every run and a `runs` table
//! of per-entity counts; `staging.xlsx` mirrors it as one sheet per entity plus `rejects`
//! and `summary`; `gsheets` optionally publishes the same sheets to a Google spreadsheet.

pub mod gsheets;
pub mod sheets;
pub mod sqlite;

/// Per-entity line of a run, as staged in `runs` and the `summary` sheet.
/// Deserialized back from a run's stored summary by the status page; `default` keeps old
/// summaries readable when a field is added.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EntitySummary {
    pub status: String,
    pub file: Option<String>,
    pub encoding: Option<String>,
    pub read: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub skipped: usize,
    pub warnings: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub held_deletes: usize,
    /// Rows the CRM refused (per-record errors of a REST CRM); they are in `rejects`.
    pub crm_refused: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("staging database {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("staging workbook {path}: {message}")]
    Xlsx { path: String, message: String },
}
