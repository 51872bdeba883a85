//! Staging: what analysts look at. `staging.sqlite` holds one table per entity with this
//! run's accepted rows (replaced atomically), the `rejects` of every run and a `runs` table
//! of per-entity counts; `staging.xlsx` mirrors it as one sheet per entity plus `rejects`
//! and `summary`; `gsheets` optionally publishes the same sheets to a Google spreadsheet;
//! `store` puts the run's files where they outlive a worker (S3 or a shared volume).

pub use crate::model::EntitySummary;

pub mod gsheets;
pub mod staged_hashes;
pub mod staging_db;
pub mod store;
pub mod workbook;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("staging database {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("staging workbook {path}: {message}")]
    Xlsx { path: String, message: String },
}
