//! `dropsync explain ENTITY ID`: why a row is what it is in the CRM. Gathers, per run, what
//! happened to the ID: inserted or updated (with the changed fields and the source line),
//! deleted, held, or rejected/skipped/warned (rule, file, line, reason), from `state.sqlite`
//! (and, with `[state]`, the change log published in PostgreSQL) and the staged `rejects`.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::config::diagnostic::suggest;
use crate::config::{self, RecipeError, Recipes};
use crate::model::HoldState;
use crate::state::remote::{PublishedChange, RemoteState};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The entity asked for, and what the recipes do have (with the nearest first when one
    /// is close enough to be a typo).
    #[error("no entity `{asked}` in the recipes{}", did_you_mean(.nearest, .known))]
    UnknownEntity {
        asked: String,
        nearest: Option<String>,
        known: Vec<String>,
    },
    #[error(transparent)]
    Workspace(#[from] crate::state::StateError),
    #[error("{path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
}

fn did_you_mean(nearest: &Option<String>, known: &[String]) -> String {
    match nearest {
        Some(n) => format!("; did you mean `{n}`?"),
        None => format!(" (they define: {})", known.join(", ")),
    }
}

/// One thing that happened to the row in one run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub run_id: String,
    pub started_at: String,
    /// `inserted`, `updated`, `deleted`, `held`, or a reject severity (`error`, `warning`, `skip`).
    pub what: String,
    pub detail: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The ID as the pipeline stores it, exactly as `transform::normalize_id`'s `^0+(\d)` → `$1`
/// makes it: for numeric IDs, leading zeros go while a digit follows them (`000123` → `123`,
/// `0012X` → `12X`, `000` → `0`, `00X` → `0X`).
pub fn normalize(id: &str, numeric: bool, uppercase: bool) -> String {
    let mut s = id.trim().to_string();
    let zeros = s.bytes().take_while(|b| *b == b'0').count();
    if numeric && zeros > 0 {
        s = match s.as_bytes().get(zeros) {
            Some(b) if b.is_ascii_digit() => s[zeros..].to_string(),
            // Zeros up to a non-digit or the end: the last zero is the digit they precede.
            _ => s[zeros - 1..].to_string(),
        };
    }
    if uppercase {
        s = s.to_uppercase();
    }
    s
}

fn db(path: &Path) -> Result<Option<Connection>, ExplainError> {
    if !path.exists() {
        return Ok(None);
    }
    // Read-only: explaining a row (from the CLI or the status page) never writes a workspace.
    Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    // A run writing the same database may hold its lock for a moment: wait, don't fail.
    .and_then(|c| c.busy_timeout(std::time::Duration::from_secs(5)).map(|_| c))
    .map(Some)
    .map_err(|source| ExplainError::Db {
        path: path.display().to_string(),
        source,
    })
}

/// The row's history, oldest first.
pub fn explain(
    recipes_dir: &Path,
    out: &Path,
    remote: Option<&RemoteState>,
    entity: &str,
    id: &str,
) -> Result<Vec<Event>, ExplainError> {
    history(&config::load_dir(recipes_dir)?, out, remote, entity, id)
}

/// [`explain`] with recipes already compiled (the status page has them for its entity list),
/// reading the change log published in PostgreSQL too when the tenant has `[state]`.
pub fn history(
    recipes: &Recipes,
    out: &Path,
    remote: Option<&RemoteState>,
    entity: &str,
    id: &str,
) -> Result<Vec<Event>, ExplainError> {
    let r = recipes.get(entity).ok_or_else(|| {
        let known: Vec<String> = recipes.entities.iter().map(|r| r.entity.clone()).collect();
        ExplainError::UnknownEntity {
            asked: entity.to_string(),
            nearest: suggest(entity, known.iter().map(String::as_str)),
            known,
        }
    })?;
    crate::state::require_workspace(out)?;
    let key = normalize(id, r.id.numeric, r.id.uppercase);
    let mut events = Vec::new();
    let state_path = out.join("state/state.sqlite");
    let e = |source| ExplainError::Db {
        path: state_path.display().to_string(),
        source,
    };
    if let Some(conn) = db(&state_path)? {
        // With `[state]` the published log is in PostgreSQL; what the folder still holds is
        // what no publication has taken yet (all of it without `[state]`).
        let mut changes = match remote {
            Some(remote) => remote.changes_of(entity, &key)?,
            None => Vec::new(),
        };
        let mut st = conn
            .prepare(
                "SELECT run_id, change, fields, line FROM changes
                 WHERE entity = ?1 AND id = ?2 ORDER BY rowid",
            )
            .map_err(e)?;
        let local = st
            .query_map(params![entity, key], |row| {
                Ok(PublishedChange {
                    run_id: row.get(0)?,
                    change: row.get(1)?,
                    fields: row.get(2)?,
                    line: row.get(3)?,
                })
            })
            .map_err(e)?;
        for row in local {
            changes.push(row.map_err(e)?);
        }
        let mut started = conn
            .prepare("SELECT started_at FROM runs WHERE run_id = ?1")
            .map_err(e)?;
        let mut file = conn
            .prepare("SELECT file FROM run_files WHERE run_id = ?1 AND entity = ?2 LIMIT 1")
            .map_err(e)?;
        for c in changes {
            let started_at: Option<String> = started
                .query_row(params![c.run_id], |r| r.get(0))
                .optional()
                .map_err(e)?;
            let file: Option<String> = file
                .query_row(params![c.run_id, entity], |r| r.get(0))
                .optional()
                .map_err(e)?;
            events.push(Event {
                started_at: started_at.unwrap_or_default(),
                detail: match c.change.as_str() {
                    "updated" => format!("changed: {}", c.fields.unwrap_or_default()),
                    "inserted" => "new in the CRM".into(),
                    _ => "gone from the export; deleted per the recipe's policy".into(),
                },
                what: c.change,
                line: c.line.and_then(|l| u32::try_from(l).ok()),
                file,
                run_id: c.run_id,
            });
        }
        let mut st = conn
            .prepare(
                "SELECT h.run_id, coalesce(r.started_at, ''), h.state FROM held_deletes h
                 LEFT JOIN runs r ON r.run_id = h.run_id WHERE h.entity = ?1 AND h.id = ?2",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![entity, key], |row| {
                Ok(Event {
                    run_id: row.get(0)?,
                    started_at: row.get(1)?,
                    what: "held".into(),
                    detail: format!("delete held by the guard ({})", row.get::<_, HoldState>(2)?),
                    file: None,
                    line: None,
                })
            })
            .map_err(e)?;
        for row in rows {
            events.push(row.map_err(e)?);
        }
    }
    let staging_path = out.join("staging.sqlite");
    if let Some(conn) = db(&staging_path)? {
        let e = |source| ExplainError::Db {
            path: staging_path.display().to_string(),
            source,
        };
        let started: std::collections::HashMap<String, String> = db(&state_path)?
            .and_then(|c| {
                let mut st = c.prepare("SELECT run_id, started_at FROM runs").ok()?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ok()?;
                Some(rows.flatten().collect())
            })
            .unwrap_or_default();
        let mut st = conn
            .prepare("SELECT run_id, severity, rule, reason, file, line, id FROM rejects WHERE entity = ?1")
            .map_err(e)?;
        let rows = st
            .query_map(params![entity], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, u32>(5)?,
                    row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                ))
            })
            .map_err(e)?;
        for row in rows {
            let (run_id, sev, rule, reason, file, line, raw) = row.map_err(e)?;
            if normalize(&raw, r.id.numeric, r.id.uppercase) != key {
                continue;
            }
            events.push(Event {
                started_at: started.get(&run_id).cloned().unwrap_or_default(),
                run_id,
                what: sev,
                detail: format!("{rule}: {reason}"),
                file: Some(file),
                line: Some(line),
            });
        }
    }
    events.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_normalise_like_the_pipeline() {
        assert_eq!(normalize(" 000123 ", true, false), "123");
        assert_eq!(normalize("000", true, false), "0");
        assert_eq!(normalize("suc-03", false, true), "SUC-03");
        // The same as the plan's expression, value for value.
        let raw = [
            "000123", "000", "0", "0012X", "00X", "X01", "12", "007a", "",
        ];
        let df = polars::df!("v" => raw).unwrap();
        let spec = crate::config::files::IdSpec {
            column: "v".into(),
            numeric: true,
            uppercase: true,
        };
        let planned = polars::prelude::IntoLazy::lazy(df)
            .select([crate::transform::normalize_id(
                polars::prelude::col("v"),
                &spec,
            )])
            .collect()
            .unwrap();
        let planned: Vec<String> = planned
            .column("v")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect();
        let here: Vec<String> = raw.iter().map(|v| normalize(v, true, true)).collect();
        assert_eq!(here, planned);
    }
}
