//! `[target]` in `recipes/pipeline.toml`: which CRM a run writes to.

use serde::Deserialize;

use super::rest_crm::RestConfig;

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
