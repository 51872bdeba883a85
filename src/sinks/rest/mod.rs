//! Client for hosted CRMs with a bulk HTTP JSON API (HubSpot-style `crm/v3/objects/{object}/batch/*`).
//!
//! The pipeline hands this sink only what changed. It sends the changes in batches of at most
//! `batch_size` records, spaced to stay under the CRM's rate limit, retries what can succeed
//! later (429 after `Retry-After`, 5xx, timeouts, refused connections) and stops at once on what
//! cannot (any other 4xx). Records the CRM refuses one by one (HTTP 207) come back as
//! [`RecordError`]s with their source line, so they land in the rejects like any bad row.
//!
//! Every batch the CRM confirmed is written to a SQLite journal keyed by a hash of its content.
//! An apply that was killed or hit an outage is simply redone with the same changes: batches
//! already confirmed are skipped (and counted in [`Outcome::already_confirmed`]), so each record
//! is sent once even across runs. [`RestCrm::finish`] forgets an object's journal once its
//! snapshot has advanced, so the same change on a later day is sent again.
//!
//! The client is blocking (the pipeline is synchronous); do not call it from inside an async
//! runtime. TLS uses rustls with the `ring` provider, the one `main` installs: this module never
//! pulls `aws-lc-rs` and installs `ring` itself if no provider is installed yet
//! ([`ensure_crypto_provider`], shared by every HTTP client in dropsync).
//!
//! `base_url` may carry secrets (`user:password@`): errors, logs and `Debug` show it only as
//! `scheme://host[:port]/…` ([`redact_url`]).

mod journal;
pub mod net;
pub mod sink;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use self::journal::{Journal, JournalEntry};
pub use self::net::{ensure_crypto_provider, redact_url};
pub use crate::config::specs::{RestConfig, RestDelete, MAX_BATCH_SIZE};
use crate::support::rate::RateLimit;
use crate::support::retry::{parse_retry_after, RetryPolicy, StopReason, Verdict};

/// A `Retry-After` longer than this is not waited for: the apply stops with a transient error
/// and the next run resumes, rather than blocking the pipeline for an unbounded time.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How much of an error response body is kept in messages (bodies can be whole HTML pages).
const BODY_EXCERPT_CHARS: usize = 300;

impl fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestConfig")
            .field("base_url", &redact_url(&self.base_url))
            .field("token_env", &self.token_env)
            .field("batch_size", &self.batch_size)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("max_retries", &self.max_retries)
            .field("timeout_ms", &self.timeout_ms)
            .field("backoff_base_ms", &self.backoff_base_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .field("delete", &self.delete)
            .field("decimals", &self.decimals)
            .finish()
    }
}

impl RestConfig {
    /// A config with every optional field at its default.
    pub fn new(base_url: impl Into<String>, token_env: impl Into<String>) -> Self {
        RestConfig {
            base_url: base_url.into(),
            token_env: token_env.into(),
            batch_size: crate::config::specs::rest_default_batch_size(),
            max_requests_per_second: crate::config::specs::rest_default_max_requests_per_second(),
            max_retries: crate::config::specs::rest_default_max_retries(),
            timeout_ms: crate::config::specs::rest_default_timeout_ms(),
            backoff_base_ms: crate::config::specs::rest_default_backoff_base_ms(),
            backoff_max_ms: crate::config::specs::rest_default_backoff_max_ms(),
            delete: RestDelete::default(),
            decimals: Default::default(),
        }
    }

    /// Checks the config without any I/O and reports every problem at once, each naming the
    /// field, the bad value and what to write instead.
    pub fn validate(&self) -> Result<(), RestError> {
        let mut problems = Vec::new();
        if let Err(problem) = parse_base_url(&self.base_url) {
            problems.push(problem);
        }
        if self.token_env.trim().is_empty() {
            problems.push(
                "token_env is empty: name the environment variable that holds the API token, e.g. `CRM_TOKEN`"
                    .to_string(),
            );
        } else if self.token_env.contains(['=', '\0']) {
            problems.push(format!(
                "token_env = {:?} is not a variable name (contains `=` or NUL); write the variable's name, never the token",
                self.token_env
            ));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            problems.push(format!(
                "batch_size = {}: must be between 1 and {MAX_BATCH_SIZE} (the CRM's limit per bulk call)",
                self.batch_size
            ));
        }
        if !(self.max_requests_per_second.is_finite() && self.max_requests_per_second > 0.0) {
            problems.push(format!(
                "max_requests_per_second = {}: must be a positive number, e.g. 10",
                self.max_requests_per_second
            ));
        }
        if self.timeout_ms == 0 {
            problems.push("timeout_ms = 0: must be at least 1, e.g. 30000".to_string());
        }
        if self.backoff_base_ms == 0 {
            problems.push("backoff_base_ms = 0: must be at least 1, e.g. 500".to_string());
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            problems.push(format!(
                "backoff_max_ms = {} is below backoff_base_ms = {}: raise it, e.g. to 30000",
                self.backoff_max_ms, self.backoff_base_ms
            ));
        }
        if let RestDelete::Flag { field, .. } = &self.delete {
            if field.trim().is_empty() {
                problems.push(
                    "delete.flag.field is empty: name the CRM property to set on deleted records, e.g. `deleted`"
                        .to_string(),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RestError::Config { problems })
        }
    }
}

/// Parses `base_url` and makes sure its path ends with `/` so object paths append under it.
/// Messages quote it redacted (`shown`): it may hold `user:password@`.
fn parse_base_url(base_url: &str) -> Result<Url, String> {
    let shown = redact_url(base_url);
    let mut url = Url::parse(base_url).map_err(|e| {
        format!(
            "base_url = {shown:?} is not a URL ({e}); write e.g. `https://api.crm.example.com/`"
        )
    })?;
    let loopback = matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "base_url = {shown:?} uses plain http: the token would cross the network in clear; use https://"
            ))
        }
        other => {
            return Err(format!(
                "base_url = {shown:?} has scheme `{other}`; use an https:// URL"
            ))
        }
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(format!(
            "base_url = {shown:?} has no host; write e.g. `https://api.crm.example.com/`"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "base_url = {shown:?} has a query or fragment; give only scheme, host and path"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// One record to write: its external ID (the value of the object's `id_property`), the CRM
/// properties to set, and where it came from so a rejection can point at the input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    /// CRM property name and value, in the recipe's field order.
    pub properties: Vec<(String, Property)>,
    pub source_line: Option<u32>,
}

impl Record {
    /// A record whose properties are plain JSON values.
    pub fn new(id: impl Into<String>, properties: Map<String, Value>, line: Option<u32>) -> Record {
        Record {
            id: id.into(),
            properties: properties
                .into_iter()
                .map(|(k, v)| (k, Property::Json(v)))
                .collect(),
            source_line: line,
        }
    }

    /// The properties as a JSON object, as a CRM that parses numbers into doubles reads them.
    pub fn properties_json(&self) -> Map<String, Value> {
        self.properties
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Property::Json(v) => v.clone(),
                    Property::Number(t) => serde_json::from_str(t).unwrap_or(Value::Null),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// One property's value as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Property {
    Json(Value),
    /// An exact decimal's canonical text (`40850171.87`), sent as a JSON number with exactly
    /// those digits. JSON numbers have no precision limit; a `serde_json::Value` would pass it
    /// through a double and could change the last cents of a large amount.
    Number(String),
}

impl Serialize for Property {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Property::Json(v) => v.serialize(s),
            Property::Number(text) => serde_json::value::RawValue::from_string(text.clone())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

/// The properties as a JSON object, in order.
struct PropertiesRef<'a>(&'a [(String, Property)]);

impl Serialize for PropertiesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// One `inputs` entry of a batch upsert, field order as the CRM documents it.
#[derive(Serialize)]
struct UpsertInput<'a> {
    id: &'a str,
    #[serde(rename = "idProperty")]
    id_property: &'a str,
    properties: PropertiesRef<'a>,
}

/// JSON text of one `inputs` entry, written straight from its parts (never through a
/// `serde_json::Value`, which would turn exact numbers into doubles).
fn raw_json(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("inputs entries always serialize")
}

/// What one `upsert` or `delete` call achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Records the CRM confirmed during this call.
    pub confirmed: usize,
    /// Records skipped because their batch was confirmed by an earlier, interrupted apply.
    pub already_confirmed: usize,
    /// Records refused by the CRM (or not sendable: empty or repeated id). They are not written;
    /// route them to the rejects. Refusals of skipped batches are replayed from the journal.
    pub rejected: Vec<RecordError>,
}

/// A record the CRM refused, with its input line when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    pub id: String,
    pub source_line: Option<u32>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("REST CRM config is not valid:{}", bullet_list(.problems))]
    Config { problems: Vec<String> },
    #[error("environment variable {var} (token_env) is not set or empty; export the CRM API token in it")]
    MissingToken { var: String },
    #[error("environment variable {var} (token_env) holds characters not allowed in an HTTP header; check that it contains only the API token")]
    BadToken { var: String },
    #[error("{what} is empty; set the entity's CRM object and id property in its recipe")]
    EmptyName { what: &'static str },
    #[error("cannot set up the HTTP client: {message}")]
    Client { message: String },
    #[error("CRM journal {}: {source}; check that its folder exists and is writable", .path.display())]
    Journal {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("CRM outage: {operation} of `{object}` at {url} still failing after {attempts} attempts ({last}); {batches_confirmed} of {batches_total} batches are confirmed and journaled, rerun later to resume with the rest")]
    Outage {
        object: String,
        operation: &'static str,
        url: String,
        attempts: u32,
        last: String,
        batches_confirmed: usize,
        batches_total: usize,
    },
    #[error("CRM refused the {operation} of `{object}` (batch {batch} of {batches_total}) at {url}: HTTP {status}: {body}; fix the token, the object or id property name or the field mapping (not retried)")]
    Rejected {
        object: String,
        operation: &'static str,
        url: String,
        batch: usize,
        batches_total: usize,
        status: u16,
        body: String,
    },
    #[error("CRM answered the {operation} of `{object}` at {url} with HTTP {status} but {problem}; is base_url pointing at a crm/v3 bulk API?")]
    BadResponse {
        object: String,
        operation: &'static str,
        url: String,
        status: u16,
        problem: String,
    },
}

impl RestError {
    /// True when redoing the same apply later may succeed (the CRM was down or throttling):
    /// the caller reports an outage and resumes on the next run instead of failing the data.
    pub fn is_transient(&self) -> bool {
        matches!(self, RestError::Outage { .. })
    }
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|p| format!("\n  - {p}")).collect()
}

/// The bulk CRM client. Holds the HTTP client, the rate limit, the retry policy and the
/// journal.
pub struct RestCrm {
    cfg: RestConfig,
    base: Url,
    /// `Bearer <token>`, marked sensitive so it is never printed by `Debug`.
    auth: HeaderValue,
    http: reqwest::blocking::Client,
    /// Spaces requests evenly (retries included) to stay under the CRM's per-second limit.
    limiter: RateLimit,
    retry: RetryPolicy,
    journal: Journal,
}

impl fmt::Debug for RestCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestCrm")
            .field("base", &redact_url(self.base.as_str()))
            .field("token_env", &self.cfg.token_env)
            .field("journal", &self.journal.path())
            .finish_non_exhaustive()
    }
}

/// The three kinds of bulk call. `key` goes into the batch hash so that, say, an archive and a
/// flag delete of the same ids never share a journal entry.
#[derive(Debug, Clone, Copy)]
enum Operation<'a> {
    Upsert,
    Archive { id_property: &'a str },
    FlagDelete,
}

impl Operation<'_> {
    fn name(&self) -> &'static str {
        match self {
            Operation::Upsert => "upsert",
            Operation::Archive { .. } => "archive",
            Operation::FlagDelete => "flag delete",
        }
    }

    fn key(&self) -> String {
        match self {
            Operation::Upsert => "upsert".to_string(),
            Operation::Archive { id_property } => format!("archive?idProperty={id_property}"),
            Operation::FlagDelete => "flag-delete".to_string(),
        }
    }

    fn endpoint(&self) -> &'static str {
        match self {
            Operation::Upsert | Operation::FlagDelete => "upsert",
            Operation::Archive { .. } => "archive",
        }
    }
}

/// A record ready to send: the JSON of its `inputs` entry plus what is needed to report on it.
struct Prepared<'a> {
    id: &'a str,
    source_line: Option<u32>,
    input: Box<RawValue>,
}

/// Why a request was given up: worth redoing later, or never.
enum SendFailure {
    Exhausted { attempts: u32, last: String },
    Refused { status: u16, body: String },
}

/// Why one POST brought no usable answer.
enum TryFailure {
    /// Another try may succeed (429, 408, 5xx, a timeout, a lost connection, a cut body).
    Transient {
        last: String,
        /// The CRM's `Retry-After` on a 429.
        retry_after: Option<Duration>,
    },
    /// The CRM refused the request as such (any other 4xx): resending cannot help.
    Refused { status: u16, body: String },
}

impl TryFailure {
    /// The CRM's side of the one retry policy: what is worth another try.
    fn verdict(&self) -> Verdict {
        match self {
            TryFailure::Transient {
                retry_after: Some(wait),
                ..
            } => Verdict::RetryAfter(*wait),
            TryFailure::Transient { .. } => Verdict::Transient,
            TryFailure::Refused { .. } => Verdict::Permanent,
        }
    }
}

impl fmt::Display for TryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryFailure::Transient { last, .. } => f.write_str(last),
            TryFailure::Refused { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

/// The one retry policy with the pauses and bound of `[target.rest]`.
fn retry_policy(cfg: &RestConfig) -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(cfg.backoff_base_ms),
        max_delay: Duration::from_millis(cfg.backoff_max_ms),
        max_retries: cfg.max_retries,
        max_retry_after: MAX_RETRY_AFTER,
    }
}

impl RestCrm {
    /// Validates `cfg`, reads the token from the environment variable `cfg.token_env` (missing
    /// or empty: [`RestError::MissingToken`] naming it) and opens (creating if needed) the SQLite
    /// journal at `journal`.
    pub fn new(cfg: RestConfig, journal: &Path) -> Result<Self, RestError> {
        cfg.validate()?;
        let base =
            parse_base_url(&cfg.base_url).map_err(|p| RestError::Config { problems: vec![p] })?;
        let token = match std::env::var(&cfg.token_env) {
            Ok(t) if !t.trim().is_empty() => t,
            _ => {
                return Err(RestError::MissingToken {
                    var: cfg.token_env.clone(),
                })
            }
        };
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                RestError::BadToken {
                    var: cfg.token_env.clone(),
                }
            })?;
        auth.set_sensitive(true);
        let http = build_http_client(Duration::from_millis(cfg.timeout_ms))?;
        let journal = Journal::open(journal)?;
        let limiter = RateLimit::per_second(cfg.max_requests_per_second);
        let retry = retry_policy(&cfg);
        debug!(base = %redact_url(base.as_str()), token_env = %cfg.token_env, "REST CRM client ready");
        Ok(RestCrm {
            cfg,
            base,
            auth,
            http,
            limiter,
            retry,
            journal,
        })
    }

    /// Batch upsert by external ID: `POST {base}crm/v3/objects/{object}/batch/upsert` with
    /// `{"inputs":[{"id":"<id>","idProperty":"<id_property>","properties":{...}}]}`, in batches of
    /// at most `batch_size` records in the order of `records` (so a redo makes the same batches).
    /// Records with an empty id or an id already seen in `records` are rejected, not sent: the
    /// CRM would refuse the whole batch for them.
    pub fn upsert(
        &mut self,
        object: &str,
        id_property: &str,
        records: &[Record],
    ) -> Result<Outcome, RestError> {
        check_names(object, id_property)?;
        let mut outcome = Outcome::default();
        let sendable = screen(
            records.iter().map(|r| (r.id.as_str(), r.source_line)),
            &mut outcome,
        );
        let prepared = sendable
            .into_iter()
            .map(|i| {
                let r = &records[i];
                Prepared {
                    id: &r.id,
                    source_line: r.source_line,
                    input: raw_json(&UpsertInput {
                        id: &r.id,
                        id_property,
                        properties: PropertiesRef(&r.properties),
                    }),
                }
            })
            .collect();
        self.apply(object, Operation::Upsert, prepared, outcome)
    }

    /// Deletes `ids`. With `delete = "archive"`: `POST {base}crm/v3/objects/{object}/batch/archive
    /// ?idProperty=<id_property>` with `{"inputs":[{"id":"<id>"}]}`. With `delete = { flag = ... }`:
    /// an upsert setting only the flag field. Deleted records carry no source line.
    pub fn delete(
        &mut self,
        object: &str,
        id_property: &str,
        ids: &[String],
    ) -> Result<Outcome, RestError> {
        check_names(object, id_property)?;
        let mut outcome = Outcome::default();
        let sendable = screen(ids.iter().map(|id| (id.as_str(), None)), &mut outcome);
        match self.cfg.delete.clone() {
            RestDelete::Archive => {
                let prepared = sendable
                    .into_iter()
                    .map(|i| Prepared {
                        id: &ids[i],
                        source_line: None,
                        input: raw_json(&json!({"id": ids[i]})),
                    })
                    .collect();
                self.apply(
                    object,
                    Operation::Archive { id_property },
                    prepared,
                    outcome,
                )
            }
            RestDelete::Flag { field, value } => {
                let mut properties = Map::new();
                properties.insert(field, value);
                let prepared = sendable
                    .into_iter()
                    .map(|i| Prepared {
                        id: &ids[i],
                        source_line: None,
                        input: raw_json(&json!({"id": ids[i], "idProperty": id_property, "properties": properties})),
                    })
                    .collect();
                self.apply(object, Operation::FlagDelete, prepared, outcome)
            }
        }
    }

    /// Called once the object's apply is complete and its snapshot advanced: forgets the
    /// object's journal, so an identical change on a later day is sent again.
    pub fn finish(&mut self, object: &str) -> Result<(), RestError> {
        let forgotten = self.journal.forget(object)?;
        debug!(object, batches = forgotten, "CRM journal of object cleared");
        Ok(())
    }

    fn url(&self, object: &str, op: Operation<'_>) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("parse_base_url accepted only URLs that can be a base")
            .pop_if_empty()
            .extend(["crm", "v3", "objects", object, "batch", op.endpoint()]);
        if let Operation::Archive { id_property } = op {
            url.query_pairs_mut().append_pair("idProperty", id_property);
        }
        url
    }

    /// Sends `prepared` in batches, skipping those the journal has, journaling each one the
    /// CRM confirms before going on to the next.
    fn apply(
        &mut self,
        object: &str,
        op: Operation<'_>,
        prepared: Vec<Prepared<'_>>,
        mut outcome: Outcome,
    ) -> Result<Outcome, RestError> {
        let url = self.url(object, op);
        let batches: Vec<&[Prepared<'_>]> = prepared.chunks(self.cfg.batch_size).collect();
        let batches_total = batches.len();
        let (mut sent, mut skipped) = (0usize, 0usize);
        for (index, batch) in batches.into_iter().enumerate() {
            let inputs: Vec<&RawValue> = batch.iter().map(|p| &*p.input).collect();
            let inputs_json = serde_json::to_string(&inputs).expect("JSON values always serialize");
            let hash = batch_hash(object, &op.key(), &inputs_json);
            if let Some(entry) = self.journal.lookup(object, &hash)? {
                outcome.already_confirmed += entry.confirmed;
                outcome
                    .rejected
                    .extend(entry.rejected.into_iter().map(|(id, message)| {
                        RecordError {
                            source_line: batch
                                .iter()
                                .find(|p| p.id == id)
                                .and_then(|p| p.source_line),
                            id,
                            message,
                        }
                    }));
                skipped += 1;
                continue;
            }
            let body = format!("{{\"inputs\":{inputs_json}}}");
            let (status, text) = match self.send(&url, body) {
                Ok(answer) => answer,
                Err(SendFailure::Exhausted { attempts, last }) => {
                    warn!(
                        object,
                        operation = op.name(),
                        batch = index + 1,
                        batches_total,
                        attempts,
                        "CRM unreachable, apply paused"
                    );
                    return Err(RestError::Outage {
                        object: object.to_string(),
                        operation: op.name(),
                        url: redact_url(url.as_str()),
                        attempts,
                        last,
                        batches_confirmed: sent + skipped,
                        batches_total,
                    });
                }
                Err(SendFailure::Refused { status, body }) => {
                    return Err(RestError::Rejected {
                        object: object.to_string(),
                        operation: op.name(),
                        url: redact_url(url.as_str()),
                        batch: index + 1,
                        batches_total,
                        status,
                        body,
                    })
                }
            };
            let refused =
                record_errors(status, &text, batch).map_err(|problem| RestError::BadResponse {
                    object: object.to_string(),
                    operation: op.name(),
                    url: redact_url(url.as_str()),
                    status,
                    problem,
                })?;
            let entry = JournalEntry {
                confirmed: batch.len() - refused.len(),
                rejected: refused
                    .iter()
                    .map(|e| (e.id.clone(), e.message.clone()))
                    .collect(),
            };
            self.journal.record(object, &hash, &entry)?;
            outcome.confirmed += entry.confirmed;
            outcome.rejected.extend(refused);
            sent += 1;
            debug!(
                object,
                operation = op.name(),
                batch = index + 1,
                batches_total,
                records = batch.len(),
                refused = entry.rejected.len(),
                "CRM batch confirmed"
            );
        }
        info!(
            object,
            operation = op.name(),
            batches_sent = sent,
            batches_skipped = skipped,
            confirmed = outcome.confirmed,
            already_confirmed = outcome.already_confirmed,
            rejected = outcome.rejected.len(),
            "CRM apply done"
        );
        Ok(outcome)
    }

    /// One POST with rate limiting and retries. Returns the status and body of a 2xx answer.
    fn send(&self, url: &Url, body: String) -> Result<(u16, String), SendFailure> {
        let what = format!("CRM POST {}", redact_url(url.as_str()));
        let result = self.retry.run_blocking(
            &what,
            || {
                self.limiter.wait();
                self.post(url, &body)
            },
            TryFailure::verdict,
        );
        let failed = match result {
            Ok(answer) => return Ok(answer),
            Err(failed) => failed,
        };
        match (failed.last, failed.reason) {
            (TryFailure::Refused { status, body }, _) => Err(SendFailure::Refused { status, body }),
            (TryFailure::Transient { last, .. }, StopReason::RetryAfterTooLong { .. }) => {
                Err(SendFailure::Exhausted {
                    attempts: failed.tries,
                    last: format!("{last}; {}", failed.reason),
                })
            }
            (TryFailure::Transient { last, .. }, _) => Err(SendFailure::Exhausted {
                attempts: failed.tries,
                last,
            }),
        }
    }

    /// One try of [`Self::send`].
    fn post(&self, url: &Url, body: &str) -> Result<(u16, String), TryFailure> {
        let result = self
            .http
            .post(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send();
        let response = match result {
            Ok(response) => response,
            Err(e) if e.is_builder() => {
                return Err(TryFailure::Refused {
                    status: 0,
                    body: net::error_text(e, &self.cfg.base_url),
                })
            }
            Err(e) => {
                return Err(TryFailure::Transient {
                    last: net::error_text(e, &self.cfg.base_url),
                    retry_after: None,
                })
            }
        };
        let status = response.status().as_u16();
        // Only a 429's `Retry-After` is waited for; other retryable answers back off.
        let retry_after = (status == 429)
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let retryable = status == 429 || status == 408 || status >= 500;
        let ok = (200..300).contains(&status);
        match response.text() {
            Ok(text) if ok => Ok((status, text)),
            // A 2xx whose body was cut: the batch may be applied, but resending it is
            // harmless (idempotent) and the only way to get its errors.
            Err(e) if ok || retryable => Err(TryFailure::Transient {
                last: format!(
                    "HTTP {status}, body unreadable: {}",
                    net::error_text(e, &self.cfg.base_url)
                ),
                retry_after,
            }),
            Ok(text) if retryable => Err(TryFailure::Transient {
                last: format!("HTTP {status}: {}", excerpt(&text)),
                retry_after,
            }),
            Ok(text) => Err(TryFailure::Refused {
                status,
                body: excerpt(&text),
            }),
            Err(e) => Err(TryFailure::Refused {
                status,
                body: format!(
                    "(body unreadable: {})",
                    net::error_text(e, &self.cfg.base_url)
                ),
            }),
        }
    }
}

fn check_names(object: &str, id_property: &str) -> Result<(), RestError> {
    if object.trim().is_empty() {
        return Err(RestError::EmptyName {
            what: "CRM object name",
        });
    }
    if id_property.trim().is_empty() {
        return Err(RestError::EmptyName {
            what: "CRM id property",
        });
    }
    Ok(())
}

/// Returns the indexes of records that can be sent; rejects empty and repeated ids into
/// `outcome`, because one of them in a batch makes the CRM refuse the whole batch.
fn screen<'a>(
    records: impl Iterator<Item = (&'a str, Option<u32>)>,
    outcome: &mut Outcome,
) -> Vec<usize> {
    let mut seen: HashMap<&str, Option<u32>> = HashMap::new();
    let mut sendable = Vec::new();
    for (index, (id, source_line)) in records.enumerate() {
        if id.trim().is_empty() {
            outcome.rejected.push(RecordError {
                id: id.to_string(),
                source_line,
                message: "empty id: the CRM cannot match this record".to_string(),
            });
        } else if let Some(first) = seen.get(id) {
            let at = first.map(|l| format!(" (line {l})")).unwrap_or_default();
            outcome.rejected.push(RecordError {
                id: id.to_string(),
                source_line,
                message: format!(
                    "id {id:?} appears twice in the changes; only the first{at} is sent"
                ),
            });
        } else {
            seen.insert(id, source_line);
            sendable.push(index);
        }
    }
    sendable
}

/// Content hash of a batch: the same changes make the same batches and so the same hashes.
fn batch_hash(object: &str, operation_key: &str, inputs_json: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [object, operation_key, inputs_json] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    errors: Vec<BatchAnswerError>,
}

#[derive(Deserialize)]
struct BatchAnswerError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    context: ErrorContext,
}

#[derive(Deserialize, Default)]
struct ErrorContext {
    #[serde(default)]
    ids: Vec<String>,
}

/// Maps the per-record errors of a 2xx answer (HubSpot answers 207 with
/// `errors[].context.ids`) to the records of `batch`. An error that names no record of the
/// batch is a problem: we could not tell which records were written.
fn record_errors(
    status: u16,
    text: &str,
    batch: &[Prepared<'_>],
) -> Result<Vec<RecordError>, String> {
    if text.trim().is_empty() {
        return if status == 207 {
            Err("an empty body: cannot tell which records failed".to_string())
        } else {
            Ok(Vec::new())
        };
    }
    let answer: BatchAnswer = match serde_json::from_str(text) {
        Ok(answer) => answer,
        Err(e) if status == 207 => {
            return Err(format!(
                "a body that is not the expected JSON ({e}): {}",
                excerpt(text)
            ))
        }
        Err(e) => {
            warn!(status, error = %e, "CRM confirmed a batch with an unexpected body; taking it as fully confirmed");
            return Ok(Vec::new());
        }
    };
    let mut refused: Vec<RecordError> = Vec::new();
    for error in answer.errors {
        let mut matched = false;
        for id in &error.context.ids {
            if let Some(p) = batch.iter().find(|p| p.id == id) {
                matched = true;
                if !refused.iter().any(|r| r.id == *id) {
                    refused.push(RecordError {
                        id: id.clone(),
                        source_line: p.source_line,
                        message: excerpt(&error.message),
                    });
                }
            }
        }
        if !matched {
            return Err(format!(
                "an error that names none of the batch's records (ids {}): {}",
                excerpt(&format!("{:?}", error.context.ids)),
                excerpt(&error.message)
            ));
        }
    }
    Ok(refused)
}

fn build_http_client(timeout: Duration) -> Result<reqwest::blocking::Client, RestError> {
    // reqwest's `rustls-no-provider` uses the process-wide provider and panics without one;
    // main installs `ring`, and so does this line when the module is used alone (tests, tools).
    ensure_crypto_provider();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("dropsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| RestError::Client {
            message: net::error_text(e, ""),
        })
}

/// What the CRM said, for messages: at most [`BODY_EXCERPT_CHARS`] characters on one line,
/// control characters (a body's line breaks, or escape sequences meant for the operator's
/// terminal) as spaces.
fn excerpt(text: &str) -> String {
    let text: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match text.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
