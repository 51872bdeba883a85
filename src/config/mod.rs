//! Recipes: the declarative description of each entity (`recipes/<entity>.toml`) and of the
//! run (`recipes/pipeline.toml`). Loading is two-phase like a compiler: `model` deserializes
//! with unknown keys refused, `compile` checks meaning across all files and reports every
//! mistake at once, and `plan` turns a compiled recipe into one polars lazy plan per run.

pub mod compile;
pub mod diagnostic;
pub mod every_key;
pub mod files;
pub mod sources;
pub mod specs;
pub mod tenants;

use std::path::{Path, PathBuf};

pub use compile::{Condition, DecimalSpec, Field, FieldInput, Recipe, Recipes, Reference, Rule};
pub use diagnostic::Diagnostic;
pub use files::{DeletePolicy, FieldType};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipes in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no recipes (*.toml) found in {0}")]
    Empty(PathBuf),
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    let mut out = format!("{} problem(s) in the recipes:", diags.len());
    for d in diags {
        out.push('\n');
        out.push_str(&d.to_string());
    }
    out
}

/// Name of the run-wide config inside the recipes folder.
pub const PIPELINE_FILE: &str = "pipeline.toml";

/// Loads and compiles every recipe in `dir`; all problems are reported together.
pub fn load_dir(dir: &Path) -> Result<Recipes, RecipeError> {
    let io = |source| RecipeError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut diags = Vec::new();
    let mut pipeline = files::PipelineFile::default();
    let mut parsed = Vec::new();
    // Entities whose file could not be read at all: references to them are not reported
    // again as unknown, their file's own diagnostics already say what is wrong.
    let mut broken_entities = std::collections::HashSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| RecipeError::Io {
            path: path.clone(),
            source,
        })?;
        let map = diagnostic::SourceMap {
            file: &path,
            text: &text,
        };
        if path.file_name().is_some_and(|n| n == PIPELINE_FILE) {
            let loaded = every_key::deserialize::<files::PipelineFile>(&map);
            diags.extend(loaded.diagnostics);
            if let Some(p) = loaded.value {
                pipeline = p;
            }
            continue;
        }
        let loaded = every_key::deserialize::<files::RecipeFile>(&map);
        diags.extend(loaded.diagnostics);
        match loaded.value {
            Some(file) => parsed.push(compile::Parsed {
                path: path.clone(),
                text: text.clone(),
                file,
            }),
            // The entity it declares, or (when `entity` itself is misspelt) the one its
            // file name says, as recipes are named `<entity>.toml`.
            None => broken_entities.extend(
                loaded
                    .entity
                    .into_iter()
                    .chain(path.file_stem().map(|s| s.to_string_lossy().into_owned())),
            ),
        }
    }
    if parsed.is_empty() && diags.is_empty() && broken_entities.is_empty() {
        return Err(RecipeError::Empty(dir.to_path_buf()));
    }
    compile::compile(dir, pipeline, parsed, &broken_entities, diags)
}
