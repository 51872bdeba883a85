//! The drift of one export, as runs and `check --inbox` report it: the file's columns
//! against its recipe (`validate::drift`), with the recipe patch its renames call for.

use std::path::Path;

use crate::config::files::OnDrift;
use crate::config::Recipe;
use crate::model::Drift;
use crate::read::ReadError;

/// How the columns `header` (whole when `complete`) differ from what `recipe` reads, with
/// the patch to the recipe's file for renames; `None` when they do not.
pub(super) fn drift_of(recipe: &Recipe, header: &[String], complete: bool) -> Option<Drift> {
    if crate::validate::drift::detect(recipe, header, complete).is_empty() {
        return None;
    }
    // Read only when there is something to patch: the recipe as the operator will edit it.
    let text = std::fs::read_to_string(&recipe.file).ok();
    let drift =
        crate::validate::drift::detect_with_patch(recipe, text.as_deref(), header, complete)?;
    tracing::warn!(
        entity = %recipe.entity,
        recipe = %recipe.file.display(),
        drift = %drift,
        "the export's columns differ from what the recipe reads"
    );
    Some(drift)
}

/// The drift behind a file that could not be read for its columns, if that is why.
pub(super) fn drift_of_error(recipe: &Recipe, e: &ReadError) -> Option<Drift> {
    match e {
        ReadError::MissingColumns {
            header,
            header_complete,
            ..
        } => drift_of(recipe, header, *header_complete),
        _ => None,
    }
}

/// Whether `drift` stops the file under its recipe's `on_drift`: a column it reads missing or
/// renamed, with `quarantine`, sets the file aside (as a read error, so it goes the way of
/// every unreadable export). A column only added never does.
pub(super) fn stops(recipe: &Recipe, path: &Path, drift: Option<&Drift>) -> Option<ReadError> {
    let d = drift.filter(|d| !d.missing.is_empty() || !d.renamed.is_empty())?;
    (recipe.source.on_drift == OnDrift::Quarantine).then(|| ReadError::Drifted {
        path: path.to_path_buf(),
        drift: d.to_string(),
    })
}
