//! `watch/sources.toml`: where drops come from and when a drop counts as complete. Secrets are
//! never here: remote sources name the environment variables that hold them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::gdrive::GdriveConfig;
use super::sftp::SftpConfig;
use crate::config::diagnostic::{Diagnostic, SourceMap};
use crate::config::every_key;

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

/// Loads the sources config; a missing file means all defaults (local folder only).
pub fn load(path: &Path) -> Result<SourcesFile, ConfigError> {
    if !path.exists() {
        return Ok(toml::from_str("").expect("all fields have defaults"));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let map = SourceMap {
        file: path,
        text: &text,
    };
    let loaded = every_key::deserialize::<SourcesFile>(&map);
    let file = match loaded.value {
        Some(file) if loaded.diagnostics.is_empty() => file,
        _ => return Err(ConfigError::Invalid(loaded.diagnostics)),
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
