//! The shared vocabulary every layer speaks: what a row's problem is ([`Issue`]), what one
//! entity's part of a run came to ([`EntitySummary`], [`EntityStatus`]) and what a run came
//! to ([`RunReport`], [`RunStatus`], [`ChangeSamples`], [`StoredSummary`]). It imports
//! nothing of the crate, so any stage, the app and the status page can use it without
//! depending on each other.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Column holding the physical start line of each record (header = line 1).
pub const LINE: &str = "__line";
/// Column holding a read problem of the row (`read.<rule>: <reason>`, see
/// `read::split_bad`), null when fine.
pub const BAD: &str = "__bad";
/// Column holding a row's hash of its comparable fields (see `diff::row_hashes`), beside
/// each snapshot row.
pub const HASH: &str = "__hash";
/// Column holding each record's key: a 64-bit hash of the values the recipe reads, as the
/// file holds them (see `read`); null for a record with a read problem. Beside a snapshot it
/// names the record each clean row was typed from, so an identical record need not be typed
/// again (see `app::records`).
pub const REC: &str = "__rec";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Dropped by a `skip` rule: not an error, not in the snapshot.
    Skip,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Skip => "skip",
        }
    }

    /// The severity a stored word names.
    pub fn from_word(word: &str) -> Option<Severity> {
        [Severity::Error, Severity::Warning, Severity::Skip]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// One explained problem with one row (or with a whole file, line 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Issue {
    pub entity: String,
    pub file: String,
    pub line: u32,
    /// The ID as written in the file (empty when there is none).
    pub id: String,
    pub severity: Severity,
    pub rule: String,
    pub reason: String,
}

/// What became of one entity in a run. Serialized as the strings the `--json` contract and
/// stored summaries have always used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityStatus {
    #[default]
    Ok,
    /// Its deletes are held by the guard until `approve`.
    Held,
    /// Its file could not be read as the entity; it keeps its last accepted state.
    Quarantined,
    /// No file for it this run; it keeps its last accepted state.
    NoFile,
}

impl EntityStatus {
    const ALL: [EntityStatus; 4] = [
        EntityStatus::Ok,
        EntityStatus::Held,
        EntityStatus::Quarantined,
        EntityStatus::NoFile,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityStatus::Ok => "ok",
            EntityStatus::Held => "held",
            EntityStatus::Quarantined => "quarantined",
            EntityStatus::NoFile => "no_file",
        }
    }
}

/// Per-entity line of a run, as staged in `runs` and the `summary` sheet.
/// Deserialized back from a run's stored summary by the status page; `default` keeps old
/// summaries readable when a field is added.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EntitySummary {
    pub status: EntityStatus,
    pub file: Option<String>,
    pub encoding: Option<String>,
    pub read: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub skipped: usize,
    pub warnings: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub held_deletes: usize,
    /// Rows the CRM refused (per-record errors of a REST CRM); they are in `rejects`.
    pub crm_refused: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when nothing the entity is computed from changed since this run's full pass,
    /// which stands: the entity was not recomputed (its counts and rejects are that pass's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged_since: Option<String>,
    /// Records the same as a clean accepted row of the last snapshot (same values, same
    /// recipe): that row was taken instead of typing them again. They were validated and
    /// diffed like every other row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_records: usize,
    /// How the file's columns differ from what the recipe reads, when they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Per field, the rows whose value of it changed (an update counts once per field it
    /// changed): a column swapped shows as one field changed in nearly every row.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_changes: BTreeMap<String, usize>,
}

impl EntitySummary {
    /// Up to `n` fields that changed in the most rows, most first (ties by name).
    pub fn top_field_changes(&self, n: usize) -> Vec<(&str, usize)> {
        let mut v: Vec<(&str, usize)> = self
            .field_changes
            .iter()
            .map(|(f, c)| (f.as_str(), *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// An export whose columns no longer match its recipe: the night a dealer's system is
/// upgraded. Names are as the recipe and the file spell them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Drift {
    /// Columns the recipe reads that the file lacks, with no likely new name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Columns of the file that no field reads and no missing column was matched to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// Missing columns matched by name to a column the file has instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed: Vec<Renamed>,
    /// The recipe change that follows the renames, as a unified diff, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.added.is_empty() && self.renamed.is_empty()
    }
}

/// One line: `renamed "Nro Cliente" -> "Nro. de Cliente" (0.83); missing "Localidad";
/// added "Fecha Alta"`.
impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |v: &[String]| {
            v.iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.renamed.is_empty() {
            let r: Vec<String> = self
                .renamed
                .iter()
                .map(|r| format!("{:?} -> {:?} ({:.2})", r.recipe, r.file, r.similarity))
                .collect();
            parts.push(format!("renamed {}", r.join(", ")));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", quoted(&self.missing)));
        }
        if !self.added.is_empty() {
            parts.push(format!("added {}", quoted(&self.added)));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// A recipe column found in the file under another name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Renamed {
    /// As the recipe names it.
    pub recipe: String,
    /// As the file now names it.
    pub file: String,
    /// How alike the two names are, 0 to 1 (normalized Levenshtein on letters and digits).
    pub similarity: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a run that reached its end came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Ok,
    /// Some entity's deletes are held by the guard until `approve`.
    Held,
}

impl RunStatus {
    const ALL: [RunStatus; 2] = [RunStatus::Ok, RunStatus::Held];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Held => "held",
        }
    }
}

/// Where a run stands in the workspace's record of runs (`dropsync runs`, the status page):
/// under way, finished with its [`RunStatus`], approved later, or ended early. Stored as the
/// strings [`RunState::as_str`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Ok,
    Held,
    /// A held run whose deletes were approved and applied.
    Approved,
    Failed,
    /// Stopped on request between entities; nothing reached the CRM.
    Stopped,
    /// Found still `running` by a later run: the process died. That run redid its work.
    Interrupted,
}

impl RunState {
    const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::Ok,
        RunState::Held,
        RunState::Approved,
        RunState::Failed,
        RunState::Stopped,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Held => "held",
            RunState::Approved => "approved",
            RunState::Failed => "failed",
            RunState::Stopped => "stopped",
            RunState::Interrupted => "interrupted",
        }
    }
}

impl From<RunStatus> for RunState {
    fn from(s: RunStatus) -> RunState {
        match s {
            RunStatus::Ok => RunState::Ok,
            RunStatus::Held => RunState::Held,
        }
    }
}

/// What became of deletes the guard held in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Waiting for `approve`.
    Held,
    Approved,
    /// A later run of the entity decided again (the rows came back, or were held anew).
    Superseded,
}

impl HoldState {
    const ALL: [HoldState; 3] = [HoldState::Held, HoldState::Approved, HoldState::Superseded];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Approved => "approved",
            HoldState::Superseded => "superseded",
        }
    }
}

/// What a run did with one export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Read,
    /// Unreadable as its entity; set aside under `quarantine/`.
    Quarantined,
}

impl FileStatus {
    const ALL: [FileStatus; 2] = [FileStatus::Read, FileStatus::Quarantined];

    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Read => "read",
            FileStatus::Quarantined => "quarantined",
        }
    }
}

/// A stored status that is not one of its vocabulary's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownStatus {
    pub what: &'static str,
    pub value: String,
}

/// Parsing and printing as the stored word, for each closed vocabulary of statuses.
macro_rules! stored_words {
    ($($t:ident: $what:literal),* $(,)?) => {$(
        impl std::str::FromStr for $t {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<$t, UnknownStatus> {
                $t::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownStatus {
                        what: $what,
                        value: s.to_string(),
                    })
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}

stored_words!(
    EntityStatus: "entity status",
    RunStatus: "run status",
    RunState: "run status",
    HoldState: "hold state",
    FileStatus: "file status",
);

/// Time spent per stage, summed over entities (seconds). Read back from stored summaries by
/// `/metrics`; `default` keeps a summary without some stage readable.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Timings {
    pub read: f64,
    pub transform: f64,
    pub validate: f64,
    pub diff: f64,
    pub stage_sqlite: f64,
    pub stage_xlsx: f64,
    /// Publishing to Google Sheets, after the CRM (0 when not configured).
    pub gsheets: f64,
    pub crm: f64,
    pub snapshot: f64,
    pub total: f64,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub entities: Vec<(String, EntitySummary)>,
    /// A few changes of each kind per entity (shown by `plan` and the status page).
    pub samples: Vec<(String, ChangeSamples)>,
    pub issues: Vec<Issue>,
    pub timings: Timings,
    pub crm_rows_written: usize,
    /// Peak resident memory of the process so far (VmHWM), in MiB.
    pub peak_rss_mb: f64,
    /// What the Google Sheets publish did (sheets and rows written) or why it failed; `None`
    /// when `[staging.gsheets]` is not configured.
    pub gsheets: Option<Value>,
}

impl RunReport {
    /// No file of the drop matched any recipe: every entity kept its last state. A scheduler
    /// should hear of it, since a dealer that stopped exporting looks just like this.
    pub fn found_nothing(&self) -> bool {
        self.entities
            .iter()
            .all(|(_, s)| s.status == EntityStatus::NoFile)
    }

    /// The `--json` contract: one object, entities in load order.
    pub fn to_json(&self) -> Value {
        let mut entities = Map::new();
        for (e, s) in &self.entities {
            entities.insert(e.clone(), serde_json::to_value(s).unwrap_or(Value::Null));
        }
        json!({
            "run_id": self.run_id,
            "status": self.status.as_str(),
            "dry_run": self.dry_run,
            "entities": entities,
            "crm_rows_written": self.crm_rows_written,
            "peak_rss_mb": self.peak_rss_mb,
            "timings": self.timings,
            "samples": self
                .samples
                .iter()
                .map(|(e, s)| (e.clone(), serde_json::to_value(s).unwrap_or(Value::Null)))
                .collect::<Map<String, Value>>(),
            "gsheets": self.gsheets,
        })
    }
}

/// A few changes of each kind for one entity: what `plan` prints, the run summary stores and
/// the status page shows. Values are text as the diff saw it, `∅` for a missing one. The
/// serialized shape is the one stored summaries have always had, because the status page
/// reads old runs back.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ChangeSamples {
    /// IDs of the first inserted rows.
    pub inserted: Vec<String>,
    /// Those rows whole, as they arrived.
    pub inserted_rows: Vec<SampleRow>,
    pub updated: Vec<UpdatedSample>,
    /// IDs of the first rows gone from the export.
    pub deleted: Vec<String>,
    /// Those rows whole as the CRM had them (those the previous snapshot still holds).
    pub deleted_rows: Vec<SampleRow>,
}

impl ChangeSamples {
    pub fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// One whole row, `(column, value)` in the frame's column order: the status page shows the
/// columns as the export has them, so this is a JSON object in that order, not a sorted map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleRow(pub Vec<(String, String)>);

impl serde::Serialize for SampleRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpdatedSample {
    pub id: String,
    /// Serialized as `{"field": "before -> after"}`, the form stored summaries use.
    #[serde(serialize_with = "changes_as_object")]
    pub changes: Vec<FieldChange>,
}

/// One field of an updated row.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

fn changes_as_object<S: serde::Serializer>(
    changes: &[FieldChange],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        changes
            .iter()
            .map(|c| (&c.field, format!("{} -> {}", c.before, c.after))),
    )
}

/// A run's summary as stored in `state.sqlite`, read back: the `--json` object of a finished
/// run, but also `{"error": …}` of a failed one and `{"stopped_before": …}` of a stopped one,
/// so every field defaults.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct StoredSummary {
    /// In load order, as the summary lists them.
    #[serde(deserialize_with = "entries")]
    pub entities: Vec<(String, EntitySummary)>,
}

/// A JSON object as `(key, value)` pairs in document order (a map would sort or lose it).
fn entries<'de, D, T>(d: D) -> Result<Vec<(String, T)>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct Entries<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
        type Value = Vec<(String, T)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0));
            while let Some(entry) = m.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored words are a contract: serde, `as_str` and parsing agree on every variant.
    #[test]
    fn every_status_reads_back_as_the_word_it_is_stored_as() {
        for s in EntityStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in RunState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in RunStatus::ALL {
            assert_eq!(RunState::from(s).as_str(), s.as_str());
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in HoldState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in FileStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert_eq!(
            "done".parse::<RunState>().unwrap_err().to_string(),
            "unknown run status `done`"
        );
        assert_eq!(format!("{:<8}|", RunState::Held), "held    |");
    }

    fn row(pairs: &[(&str, &str)]) -> SampleRow {
        SampleRow(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The stored summaries' shape, keys in this order: the status page reads old runs back
    /// and shows rows' columns in the order they come.
    #[test]
    fn samples_serialize_in_the_stored_shape() {
        let s = ChangeSamples {
            inserted: vec!["9".into()],
            inserted_rows: vec![row(&[("id", "9"), ("nombre", "Zoe"), ("email", "∅")])],
            updated: vec![UpdatedSample {
                id: "2".into(),
                changes: vec![
                    FieldChange {
                        field: "email".into(),
                        before: "a@x".into(),
                        after: "b@x".into(),
                    },
                    FieldChange {
                        field: "ciudad".into(),
                        before: "∅".into(),
                        after: "Salta".into(),
                    },
                ],
            }],
            deleted: vec!["7".into()],
            deleted_rows: vec![row(&[("id", "7"), ("nombre", "Ana")])],
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap().to_string(),
            r#"{"inserted":["9"],"inserted_rows":[{"id":"9","nombre":"Zoe","email":"∅"}],"updated":[{"id":"2","changes":{"email":"a@x -> b@x","ciudad":"∅ -> Salta"}}],"deleted":["7"],"deleted_rows":[{"id":"7","nombre":"Ana"}]}"#
        );
        assert_eq!(
            serde_json::to_value(ChangeSamples::default())
                .unwrap()
                .to_string(),
            r#"{"inserted":[],"inserted_rows":[],"updated":[],"deleted":[],"deleted_rows":[]}"#
        );
    }

    #[test]
    fn a_report_carries_its_samples_per_entity() {
        let report = RunReport {
            run_id: "r".into(),
            status: RunStatus::Ok,
            dry_run: true,
            entities: Vec::new(),
            samples: vec![
                ("z".into(), ChangeSamples::default()),
                (
                    "a".into(),
                    ChangeSamples {
                        deleted: vec!["1".into()],
                        ..Default::default()
                    },
                ),
            ],
            issues: Vec::new(),
            timings: Timings::default(),
            crm_rows_written: 0,
            peak_rss_mb: 0.0,
            gsheets: None,
        };
        let json = report.to_json();
        let entities: Vec<&String> = json["samples"].as_object().unwrap().keys().collect();
        assert_eq!(entities, ["z", "a"], "load order, not sorted");
        assert_eq!(json["samples"]["a"]["deleted"][0], "1");
    }

    #[test]
    fn stored_summaries_read_back_in_load_order() {
        let v: Value = serde_json::from_str(
            r#"{"run_id":"r","entities":{"ventas":{"status":"ok","inserted":3,"rejected":1},
                "clientes":{"status":"no_file"}},"samples":{}}"#,
        )
        .unwrap();
        let s = <StoredSummary as serde::Deserialize>::deserialize(&v).unwrap();
        let names: Vec<&str> = s.entities.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ventas", "clientes"]);
        assert_eq!(s.entities[0].1.inserted, 3);
        assert_eq!(s.entities[0].1.rejected, 1);
        assert_eq!(s.entities[1].1.status, EntityStatus::NoFile);
    }

    /// A failed run stores only its error, a stopped one where it stopped: both read as no
    /// entities.
    #[test]
    fn summaries_of_failed_and_stopped_runs_read_as_empty() {
        for text in [
            r#"{"error":"boom"}"#,
            r#"{"stopped_before":"ventas"}"#,
            "{}",
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let s = <StoredSummary as serde::Deserialize>::deserialize(&v).unwrap();
            assert!(s.entities.is_empty(), "{text}");
        }
    }
}
