//! The drift of one export, as runs and `check --inbox` report it: the file's columns
//! against its recipe (`validate::drift`), with the recipe patch its renames call for, and
//! whether the recipe's `on_drift` stops the file.

use std::path::Path;

use crate::config::files::OnDrift;
use crate::config::Recipe;
use crate::model::Drift;
use crate::read::ReadError;

/// How the columns `header` (whole when `complete`) differ from what `recipe` reads, with
/// the patch to the recipe's file for renames; `None` when they do not.
pub(super) fn drift_of(recipe: &Recipe, header: &[String], complete: bool) -> Option<Drift> {
    let mut drift = crate::validate::drift::detect(recipe, header, complete);
    if drift.is_empty() {
        return None;
    }
    // The recipe is read only when there is something to patch, as the operator will edit it.
    if !drift.renamed.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&recipe.file) {
            drift.patch = crate::validate::drift::propose(&recipe.file, &text, &drift.renamed);
        }
    }
    Some(drift)
}

/// The drift behind a file that could not be taken for its columns, if that is why.
pub(super) fn drift_of_error(recipe: &Recipe, e: &ReadError) -> Option<Drift> {
    match e {
        ReadError::MissingColumns {
            header,
            header_complete,
            ..
        } => drift_of(recipe, header, *header_complete),
        ReadError::Drifted { drift, .. } => Some((**drift).clone()),
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
        drift: Box::new(d.clone()),
    })
}
