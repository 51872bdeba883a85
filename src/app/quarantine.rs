//! An export the reader cannot take as its entity (wrong encoding, broken quoting, missing
//! required columns) is set aside, never half-loaded: a copy with its reason goes to
//! `<out>/quarantine/<run_id>/`, the run records it, and the entity keeps its last accepted
//! state while the other entities go on.

use std::path::Path;

use super::error::PipelineError;
use super::work::RunOptions;
use crate::model::{EntityStatus, EntitySummary, FileStatus, Issue, Severity};
use crate::read::ReadError;
use crate::state::State;

fn read_error_line(e: &ReadError) -> u32 {
    match e {
        ReadError::Csv { line, .. } | ReadError::Xml { line, .. } => *line as u32,
        _ => 0,
    }
}

/// Copies an unreadable file to `<out>/quarantine/<run_id>/` with a `.reason.txt` beside it,
/// and says so in the entity's summary and as a reject. The inbox file itself is left where
/// it is.
pub(super) fn quarantine(
    state: &State,
    opts: &RunOptions,
    run_id: &str,
    entity: &str,
    path: &Path,
    e: &ReadError,
) -> Result<(EntitySummary, Issue), PipelineError> {
    record(state, opts, run_id, entity, path, e)?;
    let name = file_name(path);
    let issue = Issue {
        entity: entity.to_string(),
        file: name.clone(),
        line: read_error_line(e),
        id: String::new(),
        severity: Severity::Error,
        rule: "file.unreadable".into(),
        reason: e.to_string(),
    };
    let summary = EntitySummary {
        status: EntityStatus::Quarantined,
        file: Some(name),
        reason: Some(e.to_string()),
        ..EntitySummary::default()
    };
    Ok((summary, issue))
}

/// The copy, its reason beside it, and the file on the run's record.
fn record(
    state: &State,
    opts: &RunOptions,
    run_id: &str,
    entity: &str,
    path: &Path,
    e: &ReadError,
) -> Result<(), PipelineError> {
    tracing::error!(entity, file = %path.display(), reason = %e, "file quarantined; the entity keeps its last accepted state");
    if opts.dry_run {
        return Ok(());
    }
    let dir = opts.out.join("quarantine").join(run_id);
    let name = file_name(path);
    let io = |x: std::io::Error| PipelineError::Io(format!("quarantine {}: {x}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::copy(path, dir.join(&name)).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.reason.txt")), format!("{e}\n")).map_err(io)?;
    let bytes = std::fs::read(path).unwrap_or_default();
    state.record_file(
        run_id,
        entity,
        &name,
        &blake3::hash(&bytes).to_hex(),
        bytes.len() as u64,
        None,
        FileStatus::Quarantined,
        Some(&e.to_string()),
    )?;
    Ok(())
}

/// The file's name as runs, rejects and the summary show it.
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
