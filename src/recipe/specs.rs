//! The specs `pipeline.toml` holds for the components (alerts, the Google Sheets staging):
//! plain deserialized settings, so the config layer does not depend on the components that
//! use them.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Name of the environment variable holding the webhook URL; no alerts when unset.
    pub webhook_env: Option<String>,
    /// Alert when an entity rejects more than this share of the rows it read.
    #[serde(default = "share")]
    pub reject_share: f64,
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
