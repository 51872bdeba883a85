//! The specs `pipeline.toml` holds for the components (the CRM target, alerts, the Google
//! Sheets staging): plain deserialized settings, so the config layer does not depend on the
//! components that use them. Their behaviour (validation, clients) stays with the components.

use serde::Deserialize;
use serde_json::Value;

/// The most records one bulk call may carry (HubSpot's limit, enforced by the CRM).
pub const MAX_BATCH_SIZE: usize = 100;

/// `[target]`: which CRM a run writes to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `sqlite` (the embedded `crm.sqlite`, default), `postgres` or `rest`.
    #[serde(default)]
    pub kind: TargetKind,
    /// A PostgreSQL database (the env var holding its URL, the schema).
    pub postgres: Option<PostgresSpec>,
    /// A hosted CRM's bulk HTTP API (base URL, the env var holding the bearer token, batch
    /// size, rate limit, retries, delete mode).
    pub rest: Option<RestConfig>,
}

impl TargetSpec {
    /// The target keeps its own copy of each run's accepted rows (PostgreSQL with a staging
    /// schema): a run then journals those rows too, for the CRM stage to hand over.
    pub fn stages_rows(&self) -> bool {
        self.kind == TargetKind::Postgres
            && self
                .postgres
                .as_ref()
                .is_some_and(|p| p.staging_schema.is_some())
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Sqlite,
    Postgres,
    Rest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// Name of the environment variable holding the connection URL (never the URL itself).
    pub url_env: String,
    /// Schema of the CRM tables (created if missing).
    #[serde(default = "crm")]
    pub schema: String,
    /// Also stage each run's accepted rows into this schema (same layout as staging.sqlite).
    pub staging_schema: Option<String>,
}

fn crm() -> String {
    "crm".into()
}

/// The `[rest]` target of a CRM config. Secrets are never here: `token_env` names the
/// environment variable that holds the bearer token. (`Debug` shows `base_url` redacted.)
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Root of the CRM API; the object paths are appended to it.
    /// Example: `https://api.crm.example.com/`. Plain `http://` is accepted for loopback
    /// addresses only, so the token never crosses a network in clear.
    pub base_url: String,
    /// Name of the environment variable holding the API token (sent as `Authorization: Bearer`).
    /// Example: `CRM_TOKEN`.
    pub token_env: String,
    /// Records per bulk call, 1 to 100. Default 100. Changing it changes batch contents, so an
    /// interrupted apply redone with another size resends everything (harmless, upserts are
    /// idempotent, but slower).
    #[serde(default = "rest_default_batch_size")]
    pub batch_size: usize,
    /// Client-side rate limit in requests per second (retries included). Default 10.
    #[serde(default = "rest_default_max_requests_per_second")]
    pub max_requests_per_second: f64,
    /// Retries of one batch after a 429, a 5xx, a timeout or a connection error before the apply
    /// stops with a transient error. Default 6.
    #[serde(default = "rest_default_max_retries")]
    pub max_retries: u32,
    /// Timeout of one request, connect to last byte, in milliseconds. Default 30000 (30 s).
    #[serde(default = "rest_default_timeout_ms")]
    pub timeout_ms: u64,
    /// First backoff step in milliseconds: retry n waits a random time between half and the
    /// whole of `min(backoff_max_ms, backoff_base_ms * 2^n)` ("equal jitter"), or the CRM's
    /// `Retry-After` if that is longer. Default 500.
    #[serde(default = "rest_default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest backoff wait in milliseconds. Default 30000.
    #[serde(default = "rest_default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// How deletions are written. Default `"archive"`.
    #[serde(default)]
    pub delete: RestDelete,
    /// How exact decimals (amounts) are sent: `"number"` (default), a JSON number with the
    /// value's exact digits (`40850171.87`); or `"string"`, the same digits in quotes, for CRM
    /// properties that parse numbers into doubles or want text.
    #[serde(default)]
    pub decimals: RestDecimals,
}

/// JSON form of an exact decimal sent to the REST CRM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestDecimals {
    #[default]
    Number,
    String,
}

pub(crate) fn rest_default_batch_size() -> usize {
    MAX_BATCH_SIZE
}
pub(crate) fn rest_default_max_requests_per_second() -> f64 {
    10.0
}
pub(crate) fn rest_default_max_retries() -> u32 {
    6
}
pub(crate) fn rest_default_timeout_ms() -> u64 {
    30_000
}
pub(crate) fn rest_default_backoff_base_ms() -> u64 {
    500
}
pub(crate) fn rest_default_backoff_max_ms() -> u64 {
    30_000
}

/// How a record gone from the snapshot is removed from the CRM.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RestDelete {
    /// `POST {base}crm/v3/objects/{object}/batch/archive?idProperty=...`: the CRM's soft delete
    /// (restorable for a while). Written `delete = "archive"`.
    #[default]
    Archive,
    /// Keep the record and upsert `field = value` on it, for CRMs where users must not lose
    /// history. Written `delete = { flag = { field = "deleted", value = true } }`.
    Flag { field: String, value: Value },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Name of the environment variable holding the webhook URL; no alerts when unset.
    pub webhook_env: Option<String>,
    /// Alert when an entity rejects more than this share of the rows it read.
    #[serde(default = "share")]
    pub reject_share: f64,
    /// Alert when an entity updates more than this share of its rows (at least 20 of them):
    /// columns swapped or mis-mapped under unchanged headers rewrite every row with wrong
    /// values. 0 turns it off.
    #[serde(default = "update_share")]
    pub update_share: f64,
    /// Link to the run page; `{run_id}` is replaced.
    pub run_link: Option<String>,
    /// Email the alert too.
    pub email: Option<EmailSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    pub host: String,
    #[serde(default = "submission")]
    pub port: u16,
    /// STARTTLS (default); `false` only for a local relay.
    #[serde(default = "yes")]
    pub starttls: bool,
    pub from: String,
    pub to: Vec<String>,
    /// Names of the environment variables holding the SMTP user and password.
    pub user_env: Option<String>,
    pub password_env: Option<String>,
}

fn submission() -> u16 {
    587
}

fn yes() -> bool {
    true
}

fn share() -> f64 {
    0.05
}

/// A night changes about 1% of a dealer's rows; a third of them at once is an export gone
/// wrong more often than a real mass change.
fn update_share() -> f64 {
    0.3
}

/// `[staging.gsheets]` in recipes/pipeline.toml: publish staging to a Google spreadsheet.
///
/// ```toml
/// [staging.gsheets]
/// spreadsheet_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
/// key_file_env = "DROPSYNC_GSHEETS_KEY"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GsheetsSpec {
    /// The spreadsheet's id: the part of its URL after `/d/`. Create it once by hand and
    /// share it with the service account's e-mail as Editor.
    pub spreadsheet_id: String,
    /// Name of the environment variable that holds the *path* of the service-account key
    /// JSON; the secret itself never goes in the recipe. Default `"DROPSYNC_GSHEETS_KEY"`.
    #[serde(default = "default_key_file_env")]
    pub key_file_env: String,
    /// Override of `https://sheets.googleapis.com/`, under which `v4/spreadsheets` lives
    /// (tests point it at a local server). Default: Google's.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Retries per call after the first try, for 429, 5xx and timeouts. Default 5.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Grid cells the spreadsheet may hold, all tabs together. Default 10,000,000, Google's
    /// documented limit per spreadsheet.
    #[serde(default = "default_max_cells")]
    pub max_cells: u64,
    /// Bytes of JSON values per write request. Default 4 MiB: big enough to stay far below
    /// Google's write quota of about 60 requests a minute, small enough to upload in time.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
}

fn default_key_file_env() -> String {
    "DROPSYNC_GSHEETS_KEY".to_owned()
}

fn default_max_retries() -> u32 {
    5
}

fn default_max_cells() -> u64 {
    10_000_000
}

fn default_max_request_bytes() -> usize {
    4 * 1024 * 1024
}
