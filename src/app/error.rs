//! What can stop a run or an approval. Each error names the run and, where there is one, the
//! entity, and says what the next run does about it: an operator reading it knows whether
//! anything is lost (nothing ever is once the journal committed).

use polars::prelude::PolarsError;

use crate::config::RecipeError;
use crate::sinks::SinkError;
use crate::sources::SourceError;
use crate::stage::StageError;
use crate::state::StateError;

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
    #[error("source `{source_name}`: {error}; nothing was taken from any source, the next run tries again")]
    Pull { source_name: String, error: String },
    #[error("run {run_id}: the CRM and the state are committed, but its files could not be stored: {error}; the next run stores the workbook again")]
    Outputs {
        run_id: String,
        error: crate::stage::store::StoreError,
    },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Usage(String),
}

/// Wraps a frame error with the run and entity it happened in.
pub(super) fn frame_err(run_id: &str, entity: &str) -> impl Fn(PolarsError) -> PipelineError {
    let (run_id, entity) = (run_id.to_string(), entity.to_string());
    move |error| PipelineError::Frame {
        run_id: run_id.clone(),
        entity: entity.clone(),
        error,
    }
}

/// Wraps a CRM error with the run and entity it happened in.
pub(super) fn sink_err(run_id: &str, entity: &str) -> impl Fn(SinkError) -> PipelineError {
    let (run_id, entity) = (run_id.to_string(), entity.to_string());
    move |error| PipelineError::Sink {
        run_id: run_id.clone(),
        entity: entity.clone(),
        error,
    }
}
