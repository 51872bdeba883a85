//! The tenants file (`watch/tenants.toml` by default): the dealers one installation serves,
//! each with its own recipes, drop folder, workspace and sources. `--tenant NAME` picks one for
//! `run`, `plan`, `watch`, `approve`, `explain`, `runs`, `check` and `serve`; `serve
//! --all-tenants` shows them all. Without `--tenant` nothing here is read and the single-folder
//! workspace (`--recipes`, `--inbox`, `--out`) is the default, as before tenants existed.
//!
//! ```toml
//! [defaults]                      # every key a tenant may give; `{tenant}` is its name
//! recipes = "../recipes"
//! inbox = "tenants/{tenant}/inbox"
//! out = "../out/tenants/{tenant}"
//!
//! [tenants.norte]                 # takes every default
//! [tenants.sur]
//! recipes = "../recipes/sur"      # this dealer's DMS exports differently
//! ```
//!
//! Paths are relative to the tenants file's own folder, so the file means the same from any
//! working directory (a cron job, a container with the file mounted at `/etc/dropsync`).
//! Names are DNS labels (lowercase letters, digits, `-`, at most 40): a name becomes a folder,
//! a metrics label, a Kubernetes CronJob name and a database schema, and must be safe as all.
//! Two tenants may share recipes, never a workspace or a drop folder: one would read or
//! overwrite the other's state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceMap};
use super::sources::ConfigError;

/// Longest tenant name: a Kubernetes CronJob name is at most 52 characters, and the
/// manifests prefix it with `dropsync-`.
pub const MAX_NAME: usize = 40;

/// The placeholder a default path may hold for the tenant's name.
const NAME_PLACEHOLDER: &str = "{tenant}";

/// Keys a tenant and `[defaults]` may give (all paths).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacesFile {
    /// Folder of the tenant's recipes and pipeline.toml.
    recipes: Option<Spanned<String>>,
    /// Folder `run` reads the drop from (and `watch` watches).
    inbox: Option<Spanned<String>>,
    /// The tenant's workspace: state, staging, CRM (when the target is SQLite).
    out: Option<Spanned<String>>,
    /// The tenant's sources config (SFTP, Drive, schedule, settle rules). Default:
    /// `sources.toml` beside the inbox; a missing file means the local drop folder only.
    sources: Option<Spanned<String>>,
    /// Where `watch` moves processed drops. Default: `archive` beside the inbox.
    archive: Option<Spanned<String>>,
    /// Where `watch` moves unreadable files. Default: `quarantine` beside the inbox.
    quarantine: Option<Spanned<String>>,
    /// Where each run stores its files (workbook, report, quarantined exports) beyond the
    /// workspace: `s3://bucket/prefix` or a folder. None by default.
    outputs: Option<Spanned<String>>,
}

/// `[lock]`: how one tenant's runs exclude each other across machines.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    /// NAME of the environment variable holding a PostgreSQL URL: each run then also takes a
    /// PostgreSQL advisory lock per tenant (`state::cluster_lock`).
    postgres_url_env: Option<String>,
}

/// `[state]`: where the tenants' state lives when not (only) on the worker's disk.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    /// NAME of the environment variable holding a PostgreSQL URL: each tenant's state is
    /// published there and fetched by any worker (`state::remote`); it also holds the
    /// tenants' locks unless `[lock]` names another server.
    postgres_url_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    lock: LockFile,
    #[serde(default)]
    state: StateFile,
    #[serde(default)]
    defaults: PlacesFile,
    #[serde(default)]
    tenants: BTreeMap<Spanned<String>, PlacesFile>,
}

/// One dealer's places, resolved to paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub recipes: PathBuf,
    pub inbox: PathBuf,
    pub out: PathBuf,
    /// The sources config `watch` and `check` read (it need not exist).
    pub sources: PathBuf,
    pub archive: PathBuf,
    pub quarantine: PathBuf,
    /// The environment variable with the PostgreSQL URL of the cluster-wide lock, if any
    /// (`[lock]`, else `[state]`'s: a shared state needs one writer at a time).
    pub lock_url_env: Option<String>,
    /// The environment variable with the PostgreSQL URL the state is published to, if any.
    pub state_url_env: Option<String>,
    /// Where each run stores its files (`s3://bucket/prefix`, or a folder made absolute).
    pub outputs: Option<String>,
}

/// Every tenant of a tenants file, by name.
#[derive(Debug, Clone)]
pub struct Tenants {
    pub file: PathBuf,
    pub list: Vec<Tenant>,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("no tenants file at {0}: --tenant names a dealer of the tenants file (--tenants FILE or DROPSYNC_TENANTS; see the README, \"Running many dealers\")")]
    NoFile(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no tenant `{name}` in {}{}{}", file.display(), known_list(known), meant(suggestion))]
    Unknown {
        name: String,
        file: PathBuf,
        known: Vec<String>,
        suggestion: Option<String>,
    },
}

fn meant(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it lists none)".into()
    } else {
        format!(" (it lists {})", known.join(", "))
    }
}

impl Tenants {
    /// The tenant called `name`, or an error listing the known ones.
    pub fn get(&self, name: &str) -> Result<&Tenant, TenantError> {
        self.list.iter().find(|t| t.name == name).ok_or_else(|| {
            let known: Vec<String> = self.list.iter().map(|t| t.name.clone()).collect();
            TenantError::Unknown {
                name: name.to_string(),
                file: self.file.clone(),
                suggestion: super::diagnostic::suggest(name, known.iter().map(String::as_str)),
                known,
            }
        })
    }
}

/// Whether `name` can be a tenant's name (see the module doc).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Reads and checks the tenants file; every mistake is reported with its line and key.
pub fn load(path: &Path) -> Result<Tenants, TenantError> {
    if !path.is_file() {
        return Err(TenantError::NoFile(path.to_path_buf()));
    }
    let (text, file) = super::sources::read_checked::<TenantsFile>(path)?;
    let map = SourceMap {
        file: path,
        text: &text,
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let mut diags = Vec::new();
    if let Some(v) = &file.defaults.outputs {
        if let Err(message) = output_location(v.get_ref(), NAME_PLACEHOLDER, base) {
            diags.push(map.at(v.span(), Some("defaults.outputs"), message));
        }
    }
    let mut list = Vec::new();
    for (name, own) in &file.tenants {
        let at = |key: &str, message: String| {
            map.at(
                name.span(),
                Some(&format!("tenants.{}{key}", name.get_ref())),
                message,
            )
        };
        let name_str = name.get_ref().as_str();
        if !valid_name(name_str) {
            diags.push(at(
                "",
                format!("`{name_str}` cannot be a tenant's name: lowercase letters, digits and `-` (not first or last), at most {MAX_NAME}"),
            ));
            continue;
        }
        // A tenant's own value, else the default, with `{tenant}` filled in.
        let pick = |own: &Option<Spanned<String>>, dflt: &Option<Spanned<String>>| {
            own.as_ref()
                .or(dflt.as_ref())
                .map(|v| base.join(v.get_ref().replace(NAME_PLACEHOLDER, name_str)))
        };
        let d = &file.defaults;
        let mut found = Vec::new();
        for (key, own, dflt) in [
            ("recipes", &own.recipes, &d.recipes),
            ("inbox", &own.inbox, &d.inbox),
            ("out", &own.out, &d.out),
        ] {
            match pick(own, dflt) {
                Some(p) => found.push(p),
                None => diags.push(at(
                    "",
                    format!("tenant `{name_str}` has no `{key}`, and [defaults] gives none"),
                )),
            }
        }
        let [recipes, inbox, out] = match <[PathBuf; 3]>::try_from(found) {
            Ok(places) => places,
            Err(_) => continue,
        };
        let beside_inbox = |folder: &str| inbox.parent().unwrap_or(base).join(folder);
        let archive = pick(&own.archive, &d.archive).unwrap_or_else(|| beside_inbox("archive"));
        let quarantine =
            pick(&own.quarantine, &d.quarantine).unwrap_or_else(|| beside_inbox("quarantine"));
        let sources =
            pick(&own.sources, &d.sources).unwrap_or_else(|| beside_inbox("sources.toml"));
        // A bad default is reported once, before the tenants (see below).
        let outputs = match (&own.outputs, &d.outputs) {
            (Some(v), _) => match output_location(v.get_ref(), name_str, base) {
                Ok(o) => Some(o),
                Err(message) => {
                    diags.push(at(".outputs", message));
                    continue;
                }
            },
            (None, Some(v)) => output_location(v.get_ref(), name_str, base).ok(),
            (None, None) => None,
        };
        list.push((
            name.span(),
            Tenant {
                name: name_str.to_string(),
                recipes,
                inbox,
                out,
                sources,
                archive,
                quarantine,
                lock_url_env: file
                    .lock
                    .postgres_url_env
                    .clone()
                    .or_else(|| file.state.postgres_url_env.clone()),
                state_url_env: file.state.postgres_url_env.clone(),
                outputs,
            },
        ));
    }
    // "The same as" names the tenant written first.
    list.sort_by_key(|(span, _)| span.start);
    diags.extend(shared_places(&map, &list));
    if !diags.is_empty() {
        diags.sort_by_key(|d| (d.line, d.column));
        return Err(ConfigError::Invalid(diags).into());
    }
    let mut list: Vec<Tenant> = list.into_iter().map(|(_, t)| t).collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Tenants {
        file: path.to_path_buf(),
        list,
    })
}

/// An `outputs` value for tenant `name`: `s3://bucket/prefix` as it is, a folder (or a
/// `file://` URL) made absolute against the tenants file's folder.
fn output_location(text: &str, name: &str, base: &Path) -> Result<String, String> {
    let text = text.replace(NAME_PLACEHOLDER, name);
    if text.starts_with("s3://") {
        Ok(text)
    } else if text.contains("://") && !text.starts_with("file://") {
        Err(format!(
            "`{text}`: outputs go to s3://bucket/prefix or to a folder (a shared volume)"
        ))
    } else {
        let dir = base.join(text.trim_start_matches("file://"));
        Ok(dir.to_string_lossy().into_owned())
    }
}

/// Two tenants with one workspace or one drop folder: each would read or overwrite the
/// other's state, so the file is refused naming both.
fn shared_places(map: &SourceMap, list: &[(std::ops::Range<usize>, Tenant)]) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (kind, place) in [
        ("out", (|t: &Tenant| &t.out) as fn(&Tenant) -> &PathBuf),
        ("inbox", |t: &Tenant| &t.inbox),
    ] {
        let mut seen: BTreeMap<PathBuf, &str> = BTreeMap::new();
        for (span, t) in list {
            let key = normalized(place(t));
            if let Some(first) = seen.get(&key) {
                diags.push(map.at(
                    span.clone(),
                    Some(&format!("tenants.{}.{kind}", t.name)),
                    format!(
                        "tenants `{first}` and `{}` have the same {kind} ({}): each needs its own",
                        t.name,
                        place(t).display()
                    ),
                ));
            } else {
                seen.insert(key, &t.name);
            }
        }
    }
    // One place per tenant for its outputs too: a workbook would replace another's.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (span, t) in list {
        let Some(o) = t.outputs.as_deref() else {
            continue;
        };
        match seen.get(o) {
            Some(first) => diags.push(map.at(
                span.clone(),
                Some(&format!("tenants.{}.outputs", t.name)),
                format!(
                    "tenants `{first}` and `{}` store their outputs at the same place ({o}): each needs its own (put {NAME_PLACEHOLDER} in it)",
                    t.name
                ),
            )),
            None => {
                seen.insert(o, &t.name);
            }
        }
    }
    diags
}

/// `a/./b/../c` as `a/c`, without touching the file system (the folders may not exist yet).
fn normalized(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// Each diagnostic as `line:key message`, paths relative to the file's folder.
    fn problems(text: &str) -> Vec<String> {
        let (dir, path) = write(text);
        let folder = format!("{}/", dir.path().display());
        match load(&path) {
            Err(TenantError::Config(ConfigError::Invalid(d))) => d
                .iter()
                .map(|d| {
                    format!(
                        "{}:{} {}",
                        d.line,
                        d.key.as_deref().unwrap_or(""),
                        d.message
                    )
                })
                .map(|m| m.replace(&folder, ""))
                .collect(),
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn defaults_fill_each_tenant_relative_to_the_file() {
        let (dir, path) = write(
            "[defaults]\nrecipes = \"../recipes\"\ninbox = \"t/{tenant}/inbox\"\nout = \"out/{tenant}\"\n\n\
             [tenants.norte]\n\n[tenants.sur]\nrecipes = \"sur-recipes\"\nsources = \"sur.toml\"\n",
        );
        let t = load(&path).unwrap();
        let base = dir.path();
        assert_eq!(
            t.list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["norte", "sur"]
        );
        let norte = t.get("norte").unwrap();
        assert_eq!(norte.recipes, base.join("../recipes"));
        assert_eq!(norte.inbox, base.join("t/norte/inbox"));
        assert_eq!(norte.out, base.join("out/norte"));
        assert_eq!(norte.sources, base.join("t/norte/sources.toml"));
        assert_eq!(norte.archive, base.join("t/norte/archive"));
        assert_eq!(norte.quarantine, base.join("t/norte/quarantine"));
        let sur = t.get("sur").unwrap();
        assert_eq!(sur.recipes, base.join("sur-recipes"));
        assert_eq!(sur.sources, base.join("sur.toml"));
    }

    #[test]
    fn an_unknown_tenant_lists_the_known_and_the_near_one() {
        let (_dir, path) = write(
            "[defaults]\nrecipes = \"r\"\ninbox = \"{tenant}/in\"\nout = \"{tenant}/out\"\n[tenants.norte]\n[tenants.sur]\n",
        );
        let t = load(&path).unwrap();
        match t.get("nrote") {
            Err(e @ TenantError::Unknown { .. }) => {
                assert!(
                    e.to_string()
                        .ends_with("(it lists norte, sur); did you mean `norte`?"),
                    "{e}"
                );
                let TenantError::Unknown { suggestion, .. } = e else {
                    unreachable!()
                };
                assert_eq!(suggestion.as_deref(), Some("norte"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mistakes_are_reported_with_line_and_key() {
        let got = problems(
            "[defaults]\nrecipes = \"r\"\ninbox = \"in/{tenant}\"\n\n[tenants.norte]\nout = \"o\"\n\
             [tenants.Sur]\nout = \"s\"\n[tenants.este]\nout = \"o\"\n[tenants.oeste]\n",
        );
        assert_eq!(
            got,
            [
                "7:tenants.Sur `Sur` cannot be a tenant's name: lowercase letters, digits and `-` (not first or last), at most 40",
                "9:tenants.este.out tenants `norte` and `este` have the same out (o): each needs its own",
                "11:tenants.oeste tenant `oeste` has no `out`, and [defaults] gives none",
            ]
        );
    }

    #[test]
    fn outputs_are_s3_or_a_folder_and_each_tenants_own() {
        let (dir, path) = write(
            "[defaults]\nrecipes = \"r\"\ninbox = \"{tenant}/in\"\nout = \"{tenant}/out\"\n\
             outputs = \"s3://dealers/exports/{tenant}\"\n[tenants.norte]\n\
             [tenants.sur]\noutputs = \"shared/sur\"\n",
        );
        let t = load(&path).unwrap();
        assert_eq!(
            t.get("norte").unwrap().outputs.as_deref(),
            Some("s3://dealers/exports/norte")
        );
        assert_eq!(
            t.get("sur").unwrap().outputs,
            Some(dir.path().join("shared/sur").to_string_lossy().into_owned())
        );
        let got = problems(
            "[defaults]\nrecipes = \"r\"\ninbox = \"{tenant}/in\"\nout = \"{tenant}/out\"\n\
             outputs = \"gs://b/{tenant}\"\n[tenants.norte]\n[tenants.sur]\n\
             [tenants.este]\noutputs = \"s3://b/x\"\n[tenants.oeste]\noutputs = \"s3://b/x\"\n",
        );
        assert_eq!(
            got,
            [
                "5:defaults.outputs `gs://b/{tenant}`: outputs go to s3://bucket/prefix or to a folder (a shared volume)",
                "10:tenants.oeste.outputs tenants `este` and `oeste` store their outputs at the same place (s3://b/x): each needs its own (put {tenant} in it)",
            ]
        );
    }

    #[test]
    fn an_unknown_key_names_the_meant_one() {
        let got = problems("[defaults]\nrecipe = \"r\"\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("2:recipe "), "{got:?}");
    }

    #[test]
    fn two_spellings_of_one_folder_are_one_workspace() {
        let got = problems(
            "[defaults]\nrecipes = \"r\"\n[tenants.a]\ninbox = \"a\"\nout = \"w/x\"\n[tenants.b]\ninbox = \"b\"\nout = \"w/./y/../x\"\n",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("have the same out"), "{got:?}");
    }

    #[test]
    fn names_are_dns_labels() {
        for ok in ["norte", "a", "dealer-42", &"x".repeat(MAX_NAME)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Norte",
            "-a",
            "a-",
            "a_b",
            "a/b",
            "..",
            "ñandú",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_shipped_tenants_file_names_the_shipped_recipes_and_folders() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let t = load(&repo.join("watch/tenants.toml")).unwrap();
        assert_eq!(
            t.list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["norte", "sur"]
        );
        for tenant in &t.list {
            assert_eq!(
                normalized(&tenant.recipes),
                normalized(&repo.join("recipes")),
                "{}",
                tenant.name
            );
            assert!(tenant.inbox.is_dir(), "{}", tenant.inbox.display());
            assert!(crate::config::load_dir(&tenant.recipes).is_ok());
        }
    }

    #[test]
    fn a_missing_file_says_where_it_looked() {
        let err = load(Path::new("/nonexistent/tenants.toml")).unwrap_err();
        assert!(matches!(err, TenantError::NoFile(_)));
        assert!(err.to_string().contains("/nonexistent/tenants.toml"));
    }
}
