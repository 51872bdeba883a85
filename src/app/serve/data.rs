//! What the status pages show, read straight from the workspace's `state/state.sqlite` (runs,
//! files, holds) and `staging.sqlite` (rejects). Each request opens its own read-only
//! connections: a run writing the same databases at that moment is never blocked (WAL), and
//! the page shows the last committed state. Read-only also means a page never writes (not even
//! the WAL checkpoint a read-write connection does when it closes last): the only request that
//! writes is Approve, through `app::approve`.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

use crate::app::metrics::{self, LastRun, WorkspaceFacts};
use crate::model::{EntitySummary, FileStatus, HoldState, RunState, Timings};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// One export file a run took, with the content hash that proves which bytes it was.
#[derive(Debug, Clone)]
pub struct RunFile {
    pub entity: String,
    pub file: String,
    pub hash: String,
    pub bytes: i64,
    pub encoding: Option<String>,
    pub status: FileStatus,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunView {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunState,
    pub files: Vec<RunFile>,
    /// Per-entity counts in load order, as the run stored them.
    pub entities: Vec<(String, EntitySummary)>,
    /// Per entity: `inserted` and `deleted` IDs, `updated` as `{id, changes: {field: "a -> b"}}`.
    pub samples: Vec<(String, Value)>,
    pub crm_rows_written: Option<u64>,
    /// Why a failed or stopped run stopped, when it said.
    pub error: Option<String>,
    /// The Google Sheets publish: `sheets` written, or its `error`.
    pub gsheets: Option<Value>,
}

impl RunView {
    /// Seconds between start and finish, when both are known.
    pub fn duration_secs(&self) -> Option<f64> {
        Some(unix_secs(self.finished_at.as_deref()?)? - unix_secs(&self.started_at)?)
    }
}

/// Held deletes of one entity in one run.
#[derive(Debug, Clone)]
pub struct Held {
    pub entity: String,
    pub state: HoldState,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Reject {
    pub entity: String,
    pub file: String,
    pub line: i64,
    pub id: Option<String>,
    pub severity: String,
    pub rule: String,
    pub reason: String,
}

/// A filtered page of a run's rejects, with what the filters can choose from.
#[derive(Debug, Clone, Default)]
pub struct RejectPage {
    pub rows: Vec<Reject>,
    pub total: usize,
    pub entities: Vec<String>,
    pub rules: Vec<String>,
}

/// How many rejects one rule gave one entity in a run: a row of the run page's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    pub entity: String,
    pub rule: String,
    /// The severities its rows have (`error`, `skip`, `warning`), sorted; usually one.
    pub severities: Vec<String>,
    pub count: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RejectFilter {
    pub entity: Option<String>,
    pub rule: Option<String>,
    pub page: usize,
    pub per_page: usize,
}

pub struct Workspace {
    pub out: PathBuf,
}

/// An open database and its path, for errors that say which file.
struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    fn err(&self) -> impl Fn(rusqlite::Error) -> DataError + Copy + '_ {
        |source| DataError::Db {
            path: self.path.clone(),
            source,
        }
    }
}

impl Workspace {
    fn open(&self, rel: &str) -> Result<Option<Db>, DataError> {
        let path = self.out.join(rel);
        if !path.exists() {
            return Ok(None);
        }
        // A run writing the same database may hold its lock for a moment: wait, don't fail.
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.busy_timeout(std::time::Duration::from_secs(5)).map(|_| c))
        .map_err(|source| DataError::Db {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Db { conn, path }))
    }

    fn state(&self) -> Result<Option<Db>, DataError> {
        self.open("state/state.sqlite")
    }

    /// The most recent runs first, each with its files and counts.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunView>, DataError> {
        let Some(db) = self.state()? else {
            return Ok(Vec::new());
        };
        let (conn, e) = (&db.conn, db.err());
        let mut st = conn
            .prepare(
                "SELECT run_id, started_at, finished_at, status, summary FROM runs
                 ORDER BY started_at DESC, run_id DESC LIMIT ?1",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![limit as i64], run_row)
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let mut runs: Vec<RunView> = rows.into_iter().map(run_view).collect();
        for run in &mut runs {
            run.files = files(conn, &run.run_id).map_err(e)?;
        }
        Ok(runs)
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunView>, DataError> {
        let Some(db) = self.state()? else {
            return Ok(None);
        };
        let (conn, e) = (&db.conn, db.err());
        let row = conn
            .query_row(
                "SELECT run_id, started_at, finished_at, status, summary FROM runs WHERE run_id = ?1",
                params![run_id],
                run_row,
            )
            .optional()
            .map_err(e)?;
        let Some(row) = row else { return Ok(None) };
        let mut run = run_view(row);
        run.files = files(conn, run_id).map_err(e)?;
        Ok(Some(run))
    }

    /// The run's held deletes per entity and state, IDs in the order they were held.
    pub fn held(&self, run_id: &str) -> Result<Vec<Held>, DataError> {
        let Some(db) = self.state()? else {
            return Ok(Vec::new());
        };
        let (conn, e) = (&db.conn, db.err());
        let mut st = conn
            .prepare(
                "SELECT entity, state, id FROM held_deletes WHERE run_id = ?1 ORDER BY entity, state, rowid",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, HoldState>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(e)?;
        let mut out: Vec<Held> = Vec::new();
        for row in rows {
            let (entity, state, id) = row.map_err(e)?;
            match out.last_mut() {
                Some(h) if h.entity == entity && h.state == state => h.ids.push(id),
                _ => out.push(Held {
                    entity,
                    state,
                    ids: vec![id],
                }),
            }
        }
        Ok(out)
    }

    /// One page of the run's rejects (errors, skips and warnings), by entity, file and line.
    pub fn rejects(&self, run_id: &str, filter: &RejectFilter) -> Result<RejectPage, DataError> {
        let Some(db) = self.open("staging.sqlite")? else {
            return Ok(RejectPage::default());
        };
        let (conn, e) = (&db.conn, db.err());
        let distinct = |col: &str| -> rusqlite::Result<Vec<String>> {
            let mut st = conn.prepare(&format!(
                "SELECT DISTINCT {col} FROM rejects WHERE run_id = ?1 ORDER BY {col}"
            ))?;
            let rows = st.query_map(params![run_id], |r| r.get(0))?;
            rows.collect()
        };
        let entities = distinct("entity").map_err(e)?;
        let rules = distinct("rule").map_err(e)?;
        let cond = "run_id = ?1 AND (?2 IS NULL OR entity = ?2) AND (?3 IS NULL OR rule = ?3)";
        let total: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM rejects WHERE {cond}"),
                params![run_id, filter.entity, filter.rule],
                |r| r.get(0),
            )
            .map_err(e)?;
        let per_page = filter.per_page.max(1);
        let mut st = conn
            .prepare(&format!(
                "SELECT entity, file, line, id, severity, rule, reason FROM rejects WHERE {cond}
                 ORDER BY entity, file, line, rowid LIMIT ?4 OFFSET ?5"
            ))
            .map_err(e)?;
        let rows = st
            .query_map(
                params![
                    run_id,
                    filter.entity,
                    filter.rule,
                    per_page as i64,
                    (filter.page * per_page) as i64
                ],
                |r| {
                    Ok(Reject {
                        entity: r.get(0)?,
                        file: r.get(1)?,
                        line: r.get(2)?,
                        id: r.get(3)?,
                        severity: r.get(4)?,
                        rule: r.get(5)?,
                        reason: r.get(6)?,
                    })
                },
            )
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        Ok(RejectPage {
            rows,
            total: total as usize,
            entities,
            rules,
        })
    }

    /// The run's rejects counted per entity and rule: by entity, then most rows first, then
    /// rule.
    pub fn reject_summary(&self, run_id: &str) -> Result<Vec<RuleCount>, DataError> {
        let Some(db) = self.open("staging.sqlite")? else {
            return Ok(Vec::new());
        };
        let (conn, e) = (&db.conn, db.err());
        let mut st = conn
            .prepare(
                "SELECT entity, rule, severity, count(*) FROM rejects WHERE run_id = ?1
                 GROUP BY entity, rule, severity ORDER BY entity, rule, severity",
            )
            .map_err(e)?;
        let rows = st
            .query_map(params![run_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(e)?;
        let mut out: Vec<RuleCount> = Vec::new();
        for row in rows {
            let (entity, rule, severity, n) = row.map_err(e)?;
            let n = usize::try_from(n).unwrap_or(0);
            match out.last_mut() {
                Some(c) if c.entity == entity && c.rule == rule => {
                    c.severities.push(severity);
                    c.count += n;
                }
                _ => out.push(RuleCount {
                    entity,
                    rule,
                    severities: vec![severity],
                    count: n,
                }),
            }
        }
        out.sort_by(|a, b| {
            a.entity
                .cmp(&b.entity)
                .then(b.count.cmp(&a.count))
                .then(a.rule.cmp(&b.rule))
        });
        Ok(out)
    }
}

impl Workspace {
    /// What `/metrics` reports, aggregated by SQLite from the stored run summaries (their
    /// JSON read in place, samples never parsed): runs by status, rows by entity and outcome
    /// over every run that reached its end, the deletes held now, the last finished run.
    pub fn metric_facts(&self) -> Result<WorkspaceFacts, DataError> {
        let mut facts = WorkspaceFacts::default();
        let Some(db) = self.state()? else {
            return Ok(facts);
        };
        let (conn, e) = (&db.conn, db.err());
        let mut st = conn
            .prepare("SELECT status, COUNT(*) FROM runs GROUP BY status")
            .map_err(e)?;
        let by_status = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(e)?;
        for row in by_status {
            let (status, n) = row.map_err(e)?;
            facts.runs_by_status.insert(status, n as u64);
        }
        let outcome_sums: Vec<String> = metrics::OUTCOMES
            .iter()
            .map(|o| format!("SUM(COALESCE(json_extract(ent.value, '$.{o}'), 0))"))
            .collect();
        let mut st = conn
            .prepare(&format!(
                "SELECT ent.key, {} FROM runs, json_each(runs.summary, '$.entities') AS ent
                 WHERE runs.status IN ('ok', 'held', 'approved') AND json_valid(runs.summary)
                 GROUP BY ent.key",
                outcome_sums.join(", ")
            ))
            .map_err(e)?;
        let mut rows = st.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let entity: String = r.get(0).map_err(e)?;
            for (k, outcome) in metrics::OUTCOMES.iter().enumerate() {
                let n: i64 = r.get(k + 1).map_err(e)?;
                facts
                    .rows
                    .insert((entity.clone(), outcome.to_string()), n as u64);
            }
        }
        let mut st = conn
            .prepare("SELECT entity, COUNT(*) FROM held_deletes WHERE state = ?1 GROUP BY entity")
            .map_err(e)?;
        let held = st
            .query_map(params![HoldState::Held], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(e)?;
        for row in held {
            let (entity, n) = row.map_err(e)?;
            facts.held_now.insert(entity, n as u64);
        }
        let last = conn
            .query_row(
                "SELECT status, started_at, finished_at, json_extract(summary, '$.timings'),
                        json_extract(summary, '$.crm_rows_written')
                 FROM runs WHERE finished_at IS NOT NULL
                 ORDER BY finished_at DESC, run_id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(e)?;
        if let Some((status, started, finished, timings, written)) = last {
            if let Some(finished_at) = unix_secs(&finished) {
                facts.last_finished = Some(LastRun {
                    status,
                    finished_at,
                    duration_secs: unix_secs(&started).map(|s| finished_at - s),
                    timings: timings.and_then(|t| serde_json::from_str::<Timings>(&t).ok()),
                    crm_rows_written: written.unwrap_or(0).max(0) as u64,
                });
            }
        }
        let completed: Option<String> = conn
            .query_row(
                "SELECT MAX(finished_at) FROM runs WHERE status IN ('ok', 'held', 'approved')",
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        facts.last_completed_at = completed.as_deref().and_then(unix_secs);
        Ok(facts)
    }
}

/// An RFC 3339 time (as runs store them) in Unix seconds.
fn unix_secs(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis() as f64 / 1000.0)
}

type RunRow = (String, String, Option<String>, RunState, Option<String>);

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn run_view((run_id, started_at, finished_at, status, summary): RunRow) -> RunView {
    let summary: Value = summary
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    let entities = summary["entities"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s: EntitySummary = serde_json::from_value(v.clone()).unwrap_or_default();
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default();
    let samples = summary["samples"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    RunView {
        run_id,
        started_at,
        finished_at,
        status,
        files: Vec::new(),
        entities,
        samples,
        crm_rows_written: summary["crm_rows_written"].as_u64(),
        error: summary["error"].as_str().map(str::to_owned),
        gsheets: summary.get("gsheets").filter(|g| !g.is_null()).cloned(),
    }
}

fn files(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<RunFile>> {
    let mut st = conn.prepare(
        "SELECT entity, file, hash, bytes, encoding, status, reason FROM run_files
         WHERE run_id = ?1 ORDER BY rowid",
    )?;
    let rows = st.query_map(params![run_id], |r| {
        Ok(RunFile {
            entity: r.get(0)?,
            file: r.get(1)?,
            hash: r.get(2)?,
            bytes: r.get(3)?,
            encoding: r.get(4)?,
            status: r.get(5)?,
            reason: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// `text` with the credentials of any URL in it (`scheme://user:password@host`) replaced by
/// `…`: the recipes page shows `pipeline.toml`, and a `base_url` may carry them.
pub fn hide_url_credentials(text: &str) -> String {
    static USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    USERINFO
        .get_or_init(|| {
            regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@").expect("a valid regex")
        })
        .replace_all(text, "${1}…@")
        .into_owned()
}

/// The recipe files in effect, by name, as text (the page shows them as they are on disk,
/// URL credentials hidden).
pub fn recipe_files(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, std::fs::read_to_string(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 120 rejects over two entities and two rules in run r1 (and a few in r2 and r3), stored as
    /// the pipeline stores them.
    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let mut staging =
            crate::stage::staging_db::Staging::open(&dir.path().join("staging.sqlite")).unwrap();
        let issues: Vec<crate::validate::Issue> = (0..120u32)
            .map(|i| crate::validate::Issue {
                entity: if i % 3 == 0 { "ventas" } else { "clientes" }.into(),
                file: "x.csv".into(),
                line: 200 - i,
                id: i.to_string(),
                severity: crate::validate::Severity::Error,
                rule: if i % 2 == 0 {
                    "id.empty"
                } else {
                    "ref.missing"
                }
                .into(),
                reason: format!("reason {i}"),
            })
            .collect();
        staging.write_rejects("r1", &issues).unwrap();
        staging.write_rejects("r2", &issues[..5]).unwrap();
        let r3 = [1, 5, 2, 3].map(|i| issues[i].clone());
        staging.write_rejects("r3", &r3).unwrap();
        let ws = Workspace {
            out: dir.path().to_path_buf(),
        };
        (dir, ws)
    }

    #[test]
    fn rejects_page_by_line_within_a_run_and_filter_by_entity_and_rule() {
        let (_dir, ws) = workspace();
        let page = |entity: Option<&str>, rule: Option<&str>, page| {
            ws.rejects(
                "r1",
                &RejectFilter {
                    entity: entity.map(str::to_owned),
                    rule: rule.map(str::to_owned),
                    page,
                    per_page: 50,
                },
            )
            .unwrap()
        };
        let first = page(None, None, 0);
        assert_eq!(first.total, 120, "only run r1's rejects");
        assert_eq!(first.rows.len(), 50);
        assert_eq!(first.entities, ["clientes", "ventas"]);
        assert_eq!(first.rules, ["id.empty", "ref.missing"]);
        assert!(first
            .rows
            .windows(2)
            .all(|w| (w[0].entity.as_str(), w[0].line) <= (w[1].entity.as_str(), w[1].line)));
        assert_eq!(
            page(None, None, 2).rows.len(),
            20,
            "the last page holds the rest"
        );
        assert!(page(None, None, 3).rows.is_empty());
        let ventas_ids = page(Some("ventas"), Some("id.empty"), 0);
        assert_eq!(ventas_ids.total, 20, "i divisible by 6");
        assert!(ventas_ids
            .rows
            .iter()
            .all(|r| r.entity == "ventas" && r.rule == "id.empty"));
    }

    #[test]
    fn reject_summary_counts_each_entity_and_rule_of_one_run_most_first() {
        let (_dir, ws) = workspace();
        let counts = |run: &str| -> Vec<(String, String, usize)> {
            ws.reject_summary(run)
                .unwrap()
                .into_iter()
                .map(|c| (c.entity, c.rule, c.count))
                .collect()
        };
        let row = |e: &str, r: &str, n| (e.to_string(), r.to_string(), n);
        assert_eq!(
            counts("r1"),
            [
                row("clientes", "id.empty", 40),
                row("clientes", "ref.missing", 40),
                row("ventas", "id.empty", 20),
                row("ventas", "ref.missing", 20),
            ]
        );
        // Issues 0..5: ventas id.empty (0), clientes ref.missing (1), clientes id.empty (2, 4),
        // ventas ref.missing (3).
        assert_eq!(
            counts("r2"),
            [
                row("clientes", "id.empty", 2),
                row("clientes", "ref.missing", 1),
                row("ventas", "id.empty", 1),
                row("ventas", "ref.missing", 1),
            ]
        );
        // The rule with most rows first within an entity: ref.missing (1, 5), then id.empty (2).
        assert_eq!(
            counts("r3"),
            [
                row("clientes", "ref.missing", 2),
                row("clientes", "id.empty", 1),
                row("ventas", "ref.missing", 1),
            ]
        );
        assert!(counts("r4").is_empty());
        assert!(ws
            .reject_summary("r1")
            .unwrap()
            .iter()
            .all(|c| c.severities == ["error"]));
    }

    #[test]
    fn a_workspace_without_databases_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace {
            out: dir.path().to_path_buf(),
        };
        assert!(ws.runs(10).unwrap().is_empty());
        assert!(ws.run("x").unwrap().is_none());
        assert_eq!(ws.rejects("x", &RejectFilter::default()).unwrap().total, 0);
        assert!(ws.reject_summary("x").unwrap().is_empty());
        assert!(
            !dir.path().join("staging.sqlite").exists(),
            "reading creates nothing"
        );
    }
}
