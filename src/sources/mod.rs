//! Where drops come from. For now the inbox folder given to `dropsync run`: each recipe's
//! `source.files` patterns pick its file. Names that belong to files still being written or
//! to editors (`*.part`, `*.tmp`, `~$*`, `.~lock*`, dotfiles) are never taken.

pub mod gdrive;
pub mod settle;
pub mod sftp;

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::config::Recipes;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot list inbox {path}: {source}")]
    Inbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad file pattern `{pattern}` in {recipe}: {message}")]
    Pattern {
        recipe: PathBuf,
        pattern: String,
        message: String,
    },
}

/// The file picked for one entity, and others that matched too (ignored, reported).
#[derive(Debug, Clone)]
pub struct EntityFile {
    pub entity: String,
    pub path: PathBuf,
    pub ignored: Vec<PathBuf>,
}

/// Names that belong to uploads in progress or editor leftovers, never a finished export:
/// dotfiles (`.~lock.*#`, our own `.<name>.part`), Office's `~$*`, and the suffixes that
/// browsers, WinSCP and sync clients write to before renaming.
pub fn is_temporary(name: &str) -> bool {
    let lower = name.to_lowercase();
    lower.starts_with('.')
        || lower.starts_with("~$")
        || [".part", ".tmp", ".filepart", ".partial", ".crdownload"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The answer sheet `dropsync gen` writes beside a generated drop (the samples carry one):
/// the counts a correct run must find, not an export, so never reported as a stray file.
pub const ANSWER_SHEET: &str = "manifest.json";

/// Matches the files in `inbox` to entities; the first pattern of a recipe wins when more
/// than one file matches it. Files no recipe wants are returned apart.
pub fn scan_inbox(
    inbox: &Path,
    recipes: &Recipes,
) -> Result<(Vec<EntityFile>, Vec<PathBuf>), SourceError> {
    let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(inbox)
        .map_err(|source| SourceError::Inbox {
            path: inbox.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !is_temporary(n))
        .collect();
    names.sort();
    let opts = MatchOptions {
        case_sensitive: false,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut picked = Vec::new();
    let mut used = vec![false; names.len()];
    for recipe in &recipes.entities {
        let mut matches: Vec<PathBuf> = Vec::new();
        for pat in &recipe.source.files {
            let pattern = Pattern::new(pat).map_err(|e| SourceError::Pattern {
                recipe: recipe.file.clone(),
                pattern: pat.clone(),
                message: e.to_string(),
            })?;
            for (i, (name, path)) in names.iter().enumerate() {
                if pattern.matches_with(name, opts) && !matches.contains(path) {
                    matches.push(path.clone());
                    used[i] = true;
                }
            }
        }
        if let Some(first) = matches.first().cloned() {
            picked.push(EntityFile {
                entity: recipe.entity.clone(),
                path: first,
                ignored: matches[1..].to_vec(),
            });
        }
    }
    let unmatched = names
        .into_iter()
        .zip(used)
        .filter(|((name, _), u)| !u && name != ANSWER_SHEET)
        .map(|((_, p), _)| p)
        .collect();
    Ok((picked, unmatched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_never_taken() {
        for n in [
            "clientes.csv.part",
            "~$clientes.xlsx",
            ".~lock.clientes.csv#",
            ".hidden.csv",
            "x.tmp",
        ] {
            assert!(is_temporary(n), "{n}");
        }
        assert!(!is_temporary("clientes.csv"));
    }
}
