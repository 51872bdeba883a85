//! `watch/sources.toml`: where drops come from and when a drop counts as complete, with the
//! settings of each SFTP and Google Drive source. Secrets are never here: remote sources name
//! the environment variables that hold them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::diagnostic::{Diagnostic, SourceMap};
use super::every_key;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    #[serde(default)]
    pub watch: WatchSpec,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    #[serde(default)]
    pub sftp: Vec<SftpConfig>,
    #[serde(default)]
    pub gdrive: Vec<GdriveConfig>,
}

/// The local drop folder and its rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSpec {
    #[serde(default = "inbox")]
    pub inbox: PathBuf,
    #[serde(default = "archive")]
    pub archive: PathBuf,
    #[serde(default = "quarantine")]
    pub quarantine: PathBuf,
    /// Size and mtime must stay the same this long before a file counts as arrived.
    #[serde(default = "settle", with = "humantime_serde_compat")]
    pub settle: Duration,
    /// Nothing may change in the folder for this long before a drop is processed.
    #[serde(default = "quiet", with = "humantime_serde_compat")]
    pub quiet: Duration,
    /// Full rescan period besides file-system events (network drives miss events).
    #[serde(default = "rescan", with = "humantime_serde_compat")]
    pub rescan: Duration,
    /// Process only when a `*.done` file is present (and, if it lists names, only those).
    #[serde(default)]
    pub marker: bool,
}

impl Default for WatchSpec {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

fn inbox() -> PathBuf {
    "watch/inbox".into()
}
fn archive() -> PathBuf {
    "watch/archive".into()
}
fn quarantine() -> PathBuf {
    "watch/quarantine".into()
}
fn settle() -> Duration {
    Duration::from_secs(5)
}
fn quiet() -> Duration {
    Duration::from_secs(30)
}
fn rescan() -> Duration {
    Duration::from_secs(30)
}

/// When remote sources are pulled: `every = "5m"` or `cron = "0 2 * * *"` (local time).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    #[serde(default, with = "humantime_serde_compat::option")]
    pub every: Option<Duration>,
    pub cron: Option<String>,
}

impl ScheduleSpec {
    /// The next pull after `now`; `None` when there is no schedule (pull at every scan).
    pub fn next_after(
        &self,
        now: chrono::DateTime<chrono::Local>,
    ) -> Option<chrono::DateTime<chrono::Local>> {
        if let Some(cron) = &self.cron {
            let c: croner::Cron = cron.parse().ok()?;
            return c.find_next_occurrence(&now, false).ok();
        }
        self.every
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d)
    }
}

/// `settle = "5s"`, `quiet = "2m"`: durations as people write them (humantime).
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every mistake in the file, in reading order.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A config file's text and value, every unknown key and type mistake reported at once with
/// its line (the text stays for the caller's own checks of meaning).
pub(super) fn read_checked<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(String, T), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let loaded = every_key::deserialize::<T>(&SourceMap {
        file: path,
        text: &text,
    });
    match loaded.value {
        Some(value) if loaded.diagnostics.is_empty() => Ok((text, value)),
        _ => Err(ConfigError::Invalid(loaded.diagnostics)),
    }
}

/// Loads the sources config; a missing file means all defaults (local folder only).
pub fn load(path: &Path) -> Result<SourcesFile, ConfigError> {
    if !path.exists() {
        return Ok(toml::from_str("").expect("all fields have defaults"));
    }
    let (text, file) = read_checked::<SourcesFile>(path)?;
    let map = SourceMap {
        file: path,
        text: &text,
    };
    if let Some(c) = &file.schedule.cron {
        if let Err(e) = c.parse::<croner::Cron>() {
            let at = text.find(c.as_str()).unwrap_or(0);
            return Err(ConfigError::Invalid(vec![map.at(
                at..at,
                Some("schedule.cron"),
                format!("invalid cron expression `{c}`: {e}"),
            )]));
        }
    }
    Ok(file)
}

/// `[[sftp]]` in watch/sources.toml: one SFTP folder that dealers drop exports into.
///
/// ```toml
/// [[sftp]]
/// name = "dealer-norte"
/// host = "sftp.dealer-norte.example"
/// user = "dropsync"
/// remote_dir = "/exports"
/// key_file_env = "DEALER_NORTE_SFTP_KEY"
/// fingerprint = "SHA256:7YbZ0yq3p9tT0rA9m3x1c3uGq6m2k8w0Jr2e7qQm0hA"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Label used in logs, errors and in the caller's "seen" memory. Example: `"dealer-norte"`.
    pub name: String,
    /// Server host name or IP address. Example: `"sftp.dealer-norte.example"`.
    pub host: String,
    /// TCP port. Default: `22`.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Login user. Example: `"dropsync"`.
    pub user: String,
    /// Folder to pick files up from; absolute, or relative to the user's home on the server.
    /// Example: `"/exports"`.
    pub remote_dir: String,
    /// Globs on file names, matched case-insensitively. Default: `["*.csv", "*.xml"]`.
    #[serde(default = "default_patterns")]
    pub patterns: Vec<String>,
    /// NAME of the environment variable that holds the private key's PATH (unencrypted
    /// OpenSSH or PEM key). Exactly one of `key_file_env` and `password_env`.
    /// Example: `"DEALER_NORTE_SFTP_KEY"`.
    pub key_file_env: Option<String>,
    /// NAME of the environment variable that holds the password. Example:
    /// `"DEALER_NORTE_SFTP_PASSWORD"`.
    pub password_env: Option<String>,
    /// known_hosts file (OpenSSH format) to verify the host key against. Exactly one of
    /// `known_hosts` and `fingerprint`. Example: `"watch/known_hosts"`. libssh2 also accepts
    /// a line written without the port (`host key`) for any port of that host, and fails on
    /// the whole file when one line has a key type it does not know (e.g. `sk-*` keys): pin a
    /// `fingerprint` when several servers share a host or the file is a user's full one.
    pub known_hosts: Option<PathBuf>,
    /// Pinned host key fingerprint as OpenSSH prints it (`ssh-keygen -lf KEY.pub`).
    /// Example: `"SHA256:7YbZ0yq3p9tT0rA9m3x1c3uGq6m2k8w0Jr2e7qQm0hA"`.
    pub fingerprint: Option<String>,
    /// What to do with a remote file after dropsync's run succeeded. Default: `"move"`.
    #[serde(default)]
    pub after: After,
    /// Where `after = "move"` puts processed files, relative to `remote_dir`. Default:
    /// `"processed"`.
    #[serde(default = "default_processed_dir")]
    pub processed_dir: String,
}

fn default_port() -> u16 {
    22
}

pub(crate) fn default_patterns() -> Vec<String> {
    vec!["*.csv".to_string(), "*.xml".to_string()]
}

pub(crate) fn default_processed_dir() -> String {
    "processed".to_string()
}

/// What happens to a remote file once dropsync's run with it succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Rename it into `processed_dir`, so the folder only holds what is still to do.
    #[default]
    Move,
    /// Leave it where it is (the server may be read-only); the caller remembers it by name,
    /// size and mtime and passes that memory to [`SftpSource::poll`].
    Keep,
}

/// `[[gdrive]]` in watch/sources.toml: one Drive folder to poll.
///
/// ```toml
/// [[gdrive]]
/// name = "concesionario-norte"
/// folder_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz"
/// key_file_env = "DROPSYNC_GDRIVE_NORTE_KEY"
/// patterns = ["clientes*.csv", "*.xml"]
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GdriveConfig {
    /// Label in logs, errors and the "seen" memory, e.g. `"concesionario-norte"`.
    pub name: String,
    /// The Drive folder's id: the last part of its URL
    /// (`https://drive.google.com/drive/folders/<folder_id>`). Share the folder with the
    /// service account's e-mail (Viewer is enough).
    pub folder_id: String,
    /// Name of the environment variable that holds the *path* of the credentials file: a
    /// service-account key JSON, or an authorized-user file. The secret itself never goes
    /// in sources.toml. Example: `"DROPSYNC_GDRIVE_NORTE_KEY"`.
    pub key_file_env: String,
    /// Glob patterns on file names, case-insensitive; a file is taken when any matches.
    /// Google Sheets are matched as `<name>.csv`. Default `["*.csv", "*.xml"]`.
    #[serde(default = "default_gdrive_patterns")]
    pub patterns: Vec<String>,
    /// Override of `https://www.googleapis.com/`, the root under which `drive/v3/` lives
    /// (tests point it at a local server). Default: Google's.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Retries per call (listing page or download) after the first try, for 429, 5xx,
    /// timeouts and broken downloads. Default 5.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn default_gdrive_patterns() -> Vec<String> {
    vec!["*.csv".to_owned(), "*.xml".to_owned()]
}

fn default_max_retries() -> u32 {
    5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("watch/sources.toml");
        let cfg = load(&path).unwrap();
        assert_eq!(cfg.watch.inbox, PathBuf::from("watch/inbox"));
        assert!(cfg.watch.settle >= Duration::from_secs(1));
    }

    #[test]
    fn the_commented_remote_examples_are_valid_config() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("watch/sources.toml");
        let text: String = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("[[") || rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg: SourcesFile = toml::from_str(&text).unwrap();
        assert_eq!(cfg.sftp.len(), 1);
        assert_eq!(cfg.sftp[0].port, 22);
        assert_eq!(cfg.gdrive.len(), 1);
        assert_eq!(cfg.gdrive[0].key_file_env, "GOOGLE_APPLICATION_CREDENTIALS");
    }

    #[test]
    fn durations_cron_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "[watch]\nsettle = \"250ms\"\nquiet = \"2m\"\n[schedule]\ncron = \"0 2 * * *\"\n",
        )
        .unwrap();
        let c = load(&p).unwrap();
        assert_eq!(c.watch.settle, Duration::from_millis(250));
        assert_eq!(c.watch.quiet, Duration::from_secs(120));
        let now = chrono::Local::now();
        let next = c.schedule.next_after(now).unwrap();
        assert!(next > now && next - now <= chrono::Duration::hours(24));
        std::fs::write(&p, "[watch]\nsetle = \"1s\"\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("s.toml:2:1") && e.contains("did you mean `settle`"),
            "{e}"
        );
        std::fs::write(&p, "[schedule]\ncron = \"61 * * * *\"\n").unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("invalid cron"));
        // Every unknown key at once, not one per attempt.
        std::fs::write(&p, "[watch]\nsetle = \"1s\"\nqiet = \"2m\"\n").unwrap();
        let ConfigError::Invalid(diags) = load(&p).unwrap_err() else {
            panic!("not a config mistake")
        };
        let keys: Vec<_> = diags.iter().map(|d| (d.line, d.key.clone())).collect();
        assert_eq!(
            keys,
            [(2, Some("setle".into())), (3, Some("qiet".into()))],
            "{diags:#?}"
        );
    }
}
