//! Synthetic dealer drops: the six exports of the contract (`samples/CONTRACT.md`) plus a
//! `manifest.json` saying what a correct pipeline must conclude about them.
//!
//! Why it exists: dropsync's validate, diff and CRM stages need realistic inputs of any size, with
//! known answers. [`generate`] writes a seeded base snapshot; [`generate_next`] writes the following
//! day's snapshot of the same dealer with an exact number of changed, added and deleted rows, and the
//! diff counts those must produce. Same options, same bytes, forever (see `rng`). Rows stream to disk
//! in chunks, so memory stays flat at millions of rows; each entity is written on its own thread.
//!
//! Roles of the files: `plan` fixes sizes and which rows may be referenced, the entity files
//! (`usuarios` .. `servicios`) build row `i` from `(seed, entity, i)`, `dirty` lists the deliberate
//! errors, `changes` picks the next snapshot's edits, `emit` writes one file through `csv_out` /
//! `xml_out` and `sink` (encoding), and `manifest` is the answer sheet.

mod calendar;
mod changes;
mod clientes;
mod codes;
mod csv_out;
mod dirty;
mod emit;
mod entity;
mod entity_files;
mod error;
mod manifest;
mod plan;
mod record;
mod rng;
mod servicios;
mod sink;
mod sucursales;
mod unidades;
mod usuarios;
mod values;
mod ventas;
mod vocab;
mod xml_out;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::GenError;
pub use manifest::{ChangeCounts, EntityCounts, Manifest, RowIssue, MANIFEST_FILE};

use changes::EntityChanges;
use dirty::Outcome;
use entity::Entity;
use plan::Plan;

/// Smallest `clients`: below it the tiny entities would have nothing to reference.
pub const MIN_CLIENTS: usize = 20;
/// Largest `clients`: dirty rows take IDs above every base and added row up to this size.
pub const MAX_CLIENTS: usize = 10_000_000;

/// Text encoding of every file in the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GenEncoding {
    /// Windows-1252, what Excel on a Spanish-locale Windows writes (no BOM).
    #[serde(rename = "windows-1252")]
    Cp1252,
    /// UTF-8 starting with the `EF BB BF` byte order mark.
    #[serde(rename = "utf-8-bom")]
    Utf8Bom,
    /// Plain UTF-8.
    #[serde(rename = "utf-8")]
    Utf8,
}

/// How the vehicles file is written; a drop holds one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitFormat {
    /// `unidades.xml`, as the DMS exports it.
    Xml,
    /// `unidades.csv`, same fields as columns.
    Csv,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenOptions {
    /// N: clients; users max(5, N/200), branches max(3, N/2000), sales 1.5N, units 1.2N, services 2N.
    pub clients: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Encoding of the files.
    pub encoding: GenEncoding,
    /// XML or CSV vehicles file.
    pub unidades: UnitFormat,
    /// Add the documented dirty rows (see `dirty`) and a sloppy header in usuarios.csv.
    pub dirty: bool,
}

/// Fractions of each entity's base rows that the next snapshot changes, adds and deletes: exactly
/// `round(f * n)` rows each, except that deletes are capped to stay strictly below 10% of an entity
/// (on small entities rounding could reach it; the manifest gives the exact counts). `deleted` must
/// be below 0.1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChangeSpec {
    /// Rows given a clearly different value in one non-key, non-create-only field.
    pub changed: f64,
    /// Rows added with fresh IDs and valid references.
    pub added: f64,
    /// Rows removed (only rows nothing references, so no cascade).
    pub deleted: f64,
}

/// Writes the base snapshot into `dir` (created if missing) and returns its manifest.
pub fn generate(opts: &GenOptions, dir: &Path) -> Result<Manifest, GenError> {
    write_drop(opts, None, dir)
}

/// Writes the next day's snapshot of the same dealer (same `opts`) into `dir`; its manifest's
/// `changes` holds what a diff against [`generate`]'s output must find.
pub fn generate_next(
    opts: &GenOptions,
    spec: &ChangeSpec,
    dir: &Path,
) -> Result<Manifest, GenError> {
    changes::check_spec(spec)?;
    write_drop(opts, Some(spec), dir)
}

fn write_drop(
    opts: &GenOptions,
    spec: Option<&ChangeSpec>,
    dir: &Path,
) -> Result<Manifest, GenError> {
    if !(MIN_CLIENTS..=MAX_CLIENTS).contains(&opts.clients) {
        return Err(GenError::Clients {
            got: opts.clients,
            min: MIN_CLIENTS,
            max: MAX_CLIENTS,
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| GenError::io(dir, e))?;
    // A drop holds one vehicles file: drop a stale one of the other format.
    let other = match opts.unidades {
        UnitFormat::Xml => Entity::Unidades.file_name(UnitFormat::Csv),
        UnitFormat::Csv => Entity::Unidades.file_name(UnitFormat::Xml),
    };
    let stale = dir.join(other);
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| GenError::io(&stale, e))?;
    }
    let plan = Plan::new(opts.seed, opts.clients, spec.is_some());
    let plans: Vec<(Entity, Option<EntityChanges>)> = Entity::ALL
        .iter()
        .map(|&e| {
            (
                e,
                spec.map(|s| EntityChanges::new(opts.seed, e, &plan.sizes, s)),
            )
        })
        .collect();
    let reports = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(e, c)| {
                let plan = &plan;
                scope.spawn(move || emit::write_entity(plan, opts, *e, c.as_ref(), dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, GenError>>()
    })?;
    let manifest = build_manifest(opts, &plan, &reports, &plans);
    manifest.save(dir)?;
    Ok(manifest)
}

fn build_manifest(
    opts: &GenOptions,
    plan: &Plan,
    reports: &[emit::EntityReport],
    plans: &[(Entity, Option<EntityChanges>)],
) -> Manifest {
    let mut entities = BTreeMap::new();
    let (mut rejects, mut warnings) = (Vec::new(), Vec::new());
    for r in reports {
        let mut counts = EntityCounts {
            file: r.file.to_string(),
            rows: r.rows,
            accepted: r.rows,
            rejected: 0,
            warnings: 0,
        };
        for (line, id, outcome) in &r.issues {
            let (list, rule) = match outcome {
                Outcome::Reject(rule) => {
                    counts.rejected += 1;
                    counts.accepted -= 1;
                    (&mut rejects, rule)
                }
                Outcome::Warn(rule) => {
                    counts.warnings += 1;
                    (&mut warnings, rule)
                }
                Outcome::Clean => continue,
            };
            list.push(RowIssue {
                entity: r.entity.name().to_string(),
                file: r.file.to_string(),
                line: *line,
                id: id.clone(),
                rule: rule.to_string(),
            });
        }
        entities.insert(r.entity.name().to_string(), counts);
    }
    let changes = plans
        .iter()
        .map(|(e, c)| {
            c.as_ref().map(|c| {
                let dirty_kept = if opts.dirty { dirty::accepted(*e) } else { 0 };
                let counts = ChangeCounts {
                    inserted: c.added,
                    updated: c.changed,
                    deleted: c.deleted,
                    unchanged: c.n - c.deleted - c.changed + dirty_kept,
                };
                (e.name().to_string(), counts)
            })
        })
        .collect::<Option<BTreeMap<_, _>>>();
    let mut generated_at = String::new();
    calendar::push_iso_evening(&mut generated_at, plan.day);
    Manifest {
        seed: opts.seed,
        clients: opts.clients,
        encoding: opts.encoding,
        unidades_format: opts.unidades,
        dirty: opts.dirty,
        generated_at,
        entities,
        rejects,
        warnings,
        changes,
    }
}
