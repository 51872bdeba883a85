//! Google Drive source: car dealers' systems drop one full-snapshot export per entity
//! (`clientes.csv`, `unidades.xml`, ...) into a Drive folder; each [`GdriveSource::poll`]
//! lists that folder, skips what the caller says it already processed, and downloads the rest
//! into a local folder, each file written to `.<name>.part` and renamed when complete
//! (`crate::support::download`).
//!
//! # Drive v3 calls (all GET, all with `Authorization: Bearer <token>`)
//! - `files.list`: `GET {api_base}drive/v3/files` with `q='<folder_id>' in parents and
//!   trashed = false`, `fields=nextPageToken,incompleteSearch,files(id,name,mimeType,
//!   md5Checksum,modifiedTime,size)`, `pageSize=1000`, `supportsAllDrives=true`,
//!   `includeItemsFromAllDrives=true`, `pageToken=<nextPageToken>` from the second page on,
//!   `alt=json`; followed until no `nextPageToken` comes back.
//! - `files.get` media: `GET {api_base}drive/v3/files/<id>?alt=media&supportsAllDrives=true`
//!   for ordinary (blob) files.
//! - `files.export`: `GET {api_base}drive/v3/files/<id>/export?mimeType=text/csv` for Google
//!   Sheets (`application/vnd.google-apps.spreadsheet`), saved as `<name>.csv`.
//! - Tokens: the service-account JWT grant, `POST <token_uri from the key file>` with form
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<signed JWT>`, scope
//!   `https://www.googleapis.com/auth/drive.readonly` (done by yup-oauth2). Authorized-user
//!   files use yup-oauth2's refresh-token grant against Google's fixed token endpoint.
//!
//! # Why google-drive3 all the way
//! The generated hub can be pointed anywhere: `DriveHub::base_url`/`root_url` take the
//! `api_base` override, and our hyper-rustls connector is built `https_or_http`, so the same
//! code talks to Google over TLS and to the tests' plain-HTTP fake server. yup-oauth2 takes
//! the same client and reads `token_uri` from the key file. No hand-written REST calls needed.
//! Both use an explicit `ring` provider, so they work whichever process-wide rustls provider
//! is installed (or none).
//!
//! # Retries
//! 429 (and 403 `userRateLimitExceeded`/`rateLimitExceeded`) wait for `Retry-After` when given,
//! else back off; 408, 5xx, connection errors, requests without response headers within
//! [`RetryTiming::request_timeout`] and downloads that break off or stall are retried with
//! exponential backoff and jitter, up to `max_retries` retries per call, by the one retry
//! policy of `crate::support::retry`. A 401 forces one new token from the token endpoint and
//! retries at once; see `crate::support::google::call`.
//!
//! # Limits
//! No recursion into subfolders; Google-native files other than Sheets (Docs, Slides, ...) are
//! skipped; a Sheet exports its first tab only, and Drive refuses exports over 10 MB. When two
//! files in the folder end up with the same local name, only the most recently modified one
//! is taken. Downloads run one after another. A [`GdriveSource`] owns a tokio runtime and
//! blocks on it, so create, poll and drop it outside async code (a plain thread or
//! `spawn_blocking`). A process killed mid-download can leave `.<name>.part` behind; the next
//! download of that file overwrites it.

pub use crate::support::google::RetryTiming;

pub use crate::config::sources::GdriveConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use google_drive3::api::Scope;
use google_drive3::common;
use google_drive3::hyper::body::Body as _;
use google_drive3::DriveHub;

use crate::support::download::{DownloadError, Expected, PartFile, Verified};
use crate::support::google::auth::{self, KeyError};
use crate::support::google::call::{classify, Call, Failure, TryError};
use crate::support::google::{Connector, Session, SessionError};
use crate::support::retry::{Failed, RetryPolicy, Verdict};

/// MIME type of a Google Sheet; such files are exported as CSV instead of downloaded.
pub const SPREADSHEET_MIME: &str = "application/vnd.google-apps.spreadsheet";
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// Google-native types have no bytes to download (`alt=media` answers 403).
const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";
const DEFAULT_API_BASE: &str = "https://www.googleapis.com/";
/// Partial response for `files.list`: only what selection and change detection need.
const LIST_FIELDS: &str =
    "nextPageToken,incompleteSearch,files(id,name,mimeType,md5Checksum,modifiedTime,size)";
/// Drive's maximum page size for `files.list`; fewer pages, fewer requests.
const PAGE_SIZE: i32 = 1000;
/// A folder listing longer than this many pages is taken as a server loop.
const MAX_PAGES: u32 = 10_000;

/// One file downloaded by a poll, complete at `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Local file name: the Drive name, plus `.csv` for a Sheet.
    pub name: String,
    /// `into/<name>`.
    pub local: PathBuf,
    /// Drive's stable id of the file.
    pub file_id: String,
    /// Drive's `md5Checksum`; `None` for Sheets (Drive computes none for native files).
    pub md5: Option<String>,
    /// Drive's `modifiedTime`, RFC 3339 in UTC with milliseconds.
    pub modified_time: String,
    /// blake3 of the downloaded bytes, hex.
    pub hash: String,
}

impl Fetched {
    /// The version key `poll` passes to `remembered` with the file id: the md5 when Drive has
    /// one, else `modifiedTime`. Record this (with `file_id`) once the file is processed.
    pub fn version(&self) -> &str {
        self.md5.as_deref().unwrap_or(&self.modified_time)
    }
}

/// A file the last poll wanted but could not download; it was left out of the result and
/// the next poll tries it again (the caller has not remembered it).
#[derive(Debug)]
pub struct FileFailure {
    pub name: String,
    pub file_id: String,
    pub error: GdriveError,
}

/// What went wrong, naming the source, the value at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum GdriveError {
    #[error("gdrive source `{source_name}`: `{field}` is empty; set it in its [[gdrive]] entry of watch/sources.toml")]
    EmptyField {
        source_name: String,
        field: &'static str,
    },
    #[error("gdrive source `{source_name}`: bad pattern `{pattern}`: {message}; use glob syntax such as `*.csv`")]
    Pattern {
        source_name: String,
        pattern: String,
        message: String,
    },
    #[error("gdrive source `{source_name}`: api_base `{api_base}` is not an http:// or https:// URL; remove it to use {DEFAULT_API_BASE}")]
    ApiBase {
        source_name: String,
        api_base: String,
    },
    #[error("gdrive source `{source_name}`: environment variable {var} is not set or empty; set it to the path of the service-account key JSON for this source")]
    MissingEnv { source_name: String, var: String },
    #[error("gdrive source `{source_name}`: cannot read the key file {path} (named by {var}): {source}; check the path and its permissions")]
    KeyFile {
        source_name: String,
        var: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gdrive source `{source_name}`: the key file {path} is not usable: {message}; download a JSON key for the service account from the Cloud Console")]
    KeyFormat {
        source_name: String,
        path: PathBuf,
        message: String,
    },
    #[error("gdrive source `{source_name}`: cannot set up the HTTP client: {message}")]
    Setup {
        source_name: String,
        message: String,
    },
    #[error("gdrive source `{source_name}`: {call}: no access token for {principal} ({message}); check that the key in {key_path} is valid and not revoked, and that its token_uri is reachable")]
    Auth {
        source_name: String,
        call: String,
        principal: String,
        key_path: PathBuf,
        message: String,
    },
    #[error("gdrive source `{source_name}`: {call} failed with HTTP {status}: {message}; {hint}")]
    Api {
        source_name: String,
        call: String,
        status: u16,
        message: String,
        hint: String,
    },
    #[error("gdrive source `{source_name}`: {call} still failing after {tries} tries ({last}); the next poll tries again, raise max_retries if this is frequent")]
    GaveUp {
        source_name: String,
        call: String,
        tries: u32,
        last: String,
    },
    #[error("gdrive source `{source_name}`: {call}: {message}; is api_base pointing at the Drive v3 API?")]
    Protocol {
        source_name: String,
        call: String,
        message: String,
    },
    #[error("gdrive source `{source_name}`: `{name}` ({file_id}) changed while it was downloaded (got {got} bytes, the listing said {expected}); the next poll takes the new version")]
    Changed {
        source_name: String,
        name: String,
        file_id: String,
        got: u64,
        expected: u64,
    },
    #[error("gdrive source `{source_name}`: cannot write {path}: {source}; check free space and permissions of the download folder")]
    Io {
        source_name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A configured Drive folder, ready to poll. Owns a small tokio runtime and a Drive client
/// whose token is cached between polls.
pub struct GdriveSource {
    cfg: GdriveConfig,
    patterns: Vec<glob::Pattern>,
    key_path: PathBuf,
    principal: String,
    timing: RetryTiming,
    force_refresh: Arc<AtomicBool>,
    failures: Vec<FileFailure>,
    hub: DriveHub<Connector>,
    // Last: dropped after the hub, whose pooled connections run on it.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for GdriveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdriveSource")
            .field("name", &self.cfg.name)
            .field("folder_id", &self.cfg.folder_id)
            .field("key_path", &self.key_path)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl GdriveSource {
    /// Checks the config, reads the key file named by `key_file_env` and builds the client.
    /// No network call happens here: a bad key *file* fails now, a refused key at the first
    /// poll.
    pub fn new(cfg: GdriveConfig) -> Result<Self, GdriveError> {
        let source_name = cfg.name.clone();
        for (field, value) in [
            ("name", &cfg.name),
            ("folder_id", &cfg.folder_id),
            ("key_file_env", &cfg.key_file_env),
        ] {
            if value.trim().is_empty() {
                return Err(GdriveError::EmptyField { source_name, field });
            }
        }
        let patterns = compile_patterns(&cfg)?;
        let api_base = api_base(&cfg)?;

        let (key_path, key) = auth::load_key(&cfg.key_file_env).map_err(|e| match e {
            KeyError::MissingEnv { var } => GdriveError::MissingEnv {
                source_name: source_name.clone(),
                var,
            },
            KeyError::Read { var, path, source } => GdriveError::KeyFile {
                source_name: source_name.clone(),
                var,
                path,
                source,
            },
            KeyError::Format { path, message } => GdriveError::KeyFormat {
                source_name: source_name.clone(),
                path,
                message,
            },
        })?;
        let timing = RetryTiming::default();
        let session = Session::new(&key, &api_base, "dropsync-gdrive", timing.request_timeout)
            .map_err(|e| match e {
                SessionError::Setup(message) => GdriveError::Setup {
                    source_name: source_name.clone(),
                    message,
                },
                SessionError::Key(message) => GdriveError::KeyFormat {
                    source_name: source_name.clone(),
                    path: key_path.clone(),
                    message,
                },
            })?;
        let mut hub = DriveHub::new(session.client, session.tokens);
        hub.base_url(format!("{api_base}drive/v3/"));
        hub.root_url(api_base);
        hub.user_agent(format!("dropsync/{}", env!("CARGO_PKG_VERSION")));

        tracing::debug!(
            source = %cfg.name,
            folder_id = %cfg.folder_id,
            principal = %key.principal(),
            "Drive source ready"
        );
        Ok(GdriveSource {
            principal: key.principal(),
            cfg,
            patterns,
            key_path,
            timing,
            force_refresh: session.force_refresh,
            failures: Vec::new(),
            hub,
            runtime: session.runtime,
        })
    }

    /// Replaces the retry pauses and timeouts (tests use milliseconds).
    pub fn with_timing(mut self, timing: RetryTiming) -> Self {
        self.timing = timing;
        self
    }

    /// The configuration this source was built from.
    pub fn config(&self) -> &GdriveConfig {
        &self.cfg
    }

    /// Files the last [`Self::poll`] wanted but could not download.
    pub fn last_failures(&self) -> &[FileFailure] {
        &self.failures
    }

    /// One poll (blocking; runs on this source's own runtime, so never call it from an async
    /// task): lists the folder with `files.list` page by page, keeps files whose name matches
    /// `patterns` and that `remembered(file_id, version)` does not know (version: md5, or
    /// `modifiedTime` for Sheets; see [`Fetched::version`]), and downloads each one to
    /// `into/.<name>.part`, renamed to `into/<name>` when complete.
    ///
    /// A listing failure fails the poll. A file that cannot be downloaded after retries is
    /// logged, left out of the result and listed in [`Self::last_failures`]; its partial file
    /// is removed, and as it is not remembered the next poll tries again.
    pub fn poll(
        &mut self,
        into: &Path,
        remembered: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<Fetched>, GdriveError> {
        self.failures.clear();
        let started = Instant::now();
        std::fs::create_dir_all(into).map_err(|source| GdriveError::Io {
            source_name: self.cfg.name.clone(),
            path: into.to_path_buf(),
            source,
        })?;
        let listed = self.runtime.block_on(self.list_folder())?;
        let listed_count = listed.len();
        let selection = select(listed, &self.patterns, remembered, &self.cfg.name);

        let mut fetched = Vec::with_capacity(selection.wanted.len());
        let mut failures = Vec::new();
        for item in &selection.wanted {
            match self.runtime.block_on(self.download(item, into)) {
                Ok(file) => fetched.push(file),
                Err(error) => {
                    tracing::warn!(
                        source = %self.cfg.name,
                        file = %item.local_name,
                        file_id = %item.id,
                        error = %error,
                        "Drive file not downloaded; the next poll tries again"
                    );
                    failures.push(FileFailure {
                        name: item.local_name.clone(),
                        file_id: item.id.clone(),
                        error,
                    });
                }
            }
        }
        self.failures = failures;
        tracing::info!(
            source = %self.cfg.name,
            listed = listed_count,
            not_matching = selection.not_matching,
            not_downloadable = selection.unusable,
            duplicates = selection.duplicates,
            remembered = selection.remembered,
            fetched = fetched.len(),
            failed = self.failures.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Drive folder polled"
        );
        Ok(fetched)
    }

    fn call(&self, what: String) -> Call {
        Call::new(what, self.force_refresh.clone())
    }

    fn policy(&self) -> RetryPolicy {
        self.timing.policy(self.cfg.max_retries)
    }

    /// Every non-trashed item directly in the folder, all pages.
    async fn list_folder(&self) -> Result<Vec<google_drive3::api::File>, GdriveError> {
        let q = folder_query(&self.cfg.folder_id);
        let mut files = Vec::new();
        let mut page_token: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let call = self.call(format!("files.list page {page}"));
            let timeout = self.timing.request_timeout;
            let (_, list) = self
                .policy()
                .run(
                    call.what(),
                    || {
                        let mut dlg = call.delegate();
                        let (hub, q, token) = (&self.hub, q.as_str(), page_token.as_deref());
                        call.attempt(timeout, async move {
                            let mut list = hub
                                .files()
                                .list()
                                .q(q)
                                .page_size(PAGE_SIZE)
                                .supports_all_drives(true)
                                .include_items_from_all_drives(true)
                                .param("fields", LIST_FIELDS)
                                .add_scope(Scope::Readonly);
                            if let Some(token) = token {
                                list = list.page_token(token);
                            }
                            list.delegate(&mut dlg).doit().await
                        })
                    },
                    TryError::verdict,
                )
                .await
                .map_err(|failed| self.call_error(call.what(), failed))?;
            if list.incomplete_search == Some(true) {
                tracing::warn!(source = %self.cfg.name, "Drive says the folder listing is incomplete; files may be missing from this poll");
            }
            files.extend(list.files.unwrap_or_default());
            match list.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if page_token.as_deref() == Some(next.as_str()) => {
                    return Err(self.protocol(
                        call.what(),
                        format!("the same nextPageToken came back twice (`{next}`)"),
                    ));
                }
                Some(next) => page_token = Some(next),
                None => return Ok(files),
            }
        }
        Err(self.protocol("files.list", format!("still more pages after {MAX_PAGES}")))
    }

    /// Downloads (or exports) one file to `into`, through a `.part` file. A download that
    /// breaks off or stalls is retried whole, under the same retry budget as the request.
    async fn download(&self, item: &Wanted, into: &Path) -> Result<Fetched, GdriveError> {
        let call = self.call(if item.export {
            format!("files.export `{}` ({})", item.local_name, item.id)
        } else {
            format!("files.get alt=media `{}` ({})", item.local_name, item.id)
        });
        let expected = Expected {
            // An export has no size in the listing; a blob must be exactly as listed.
            size: item.size.filter(|_| !item.export),
            blake3: None,
        };
        let verified = self
            .policy()
            .run(
                call.what(),
                || self.download_once(&call, item, into, expected),
                DownloadTry::verdict,
            )
            .await
            .map_err(|failed| match failed.last {
                DownloadTry::Remote(last) => self.call_error(
                    call.what(),
                    Failed {
                        last,
                        tries: failed.tries,
                        reason: failed.reason,
                    },
                ),
                DownloadTry::Local(e) => self.download_error(&call, item, e),
            })?;
        let (bytes, hash) = (verified.bytes(), verified.hash());
        let local = verified
            .commit()
            .map_err(|e| self.download_error(&call, item, e))?;
        tracing::debug!(
            source = %self.cfg.name,
            file = %item.local_name,
            bytes,
            "Drive file downloaded"
        );
        Ok(Fetched {
            name: item.local_name.clone(),
            local,
            file_id: item.id.clone(),
            md5: item.md5.clone(),
            modified_time: item.modified.clone(),
            hash: hash.to_hex().to_string(),
        })
    }

    /// One try of [`Self::download`]: the request, then the body into a fresh `.part` file.
    async fn download_once(
        &self,
        call: &Call,
        item: &Wanted,
        into: &Path,
        expected: Expected,
    ) -> Result<Verified, DownloadTry> {
        let mut dlg = call.delegate();
        let files = self.hub.files();
        let request = async {
            if item.export {
                files
                    .export(&item.id, "text/csv")
                    .add_scope(Scope::Readonly)
                    .delegate(&mut dlg)
                    .doit()
                    .await
            } else {
                files
                    .get(&item.id)
                    .param("alt", "media")
                    .supports_all_drives(true)
                    .add_scope(Scope::Readonly)
                    .delegate(&mut dlg)
                    .doit()
                    .await
                    .map(|(response, _)| response)
            }
        };
        let response = call
            .attempt(self.timing.request_timeout, request)
            .await
            .map_err(DownloadTry::Remote)?;
        let mut part = PartFile::create(into, &item.local_name).map_err(DownloadTry::Local)?;
        stream_body(response.into_body(), &mut part, self.timing.idle_timeout).await?;
        part.finish(expected).map_err(DownloadTry::Local)
    }

    /// A download refused on our side: the disk, or a file that changed while it came.
    fn download_error(&self, call: &Call, item: &Wanted, e: DownloadError) -> GdriveError {
        let source_name = self.cfg.name.clone();
        match e {
            DownloadError::Size { got, expected } => GdriveError::Changed {
                source_name,
                name: item.local_name.clone(),
                file_id: item.id.clone(),
                got,
                expected,
            },
            DownloadError::Io { path, source } => GdriveError::Io {
                source_name,
                path,
                source,
            },
            other @ DownloadError::Hash { .. } => self.protocol(call.what(), other.to_string()),
        }
    }

    fn protocol(&self, call: &str, message: String) -> GdriveError {
        GdriveError::Protocol {
            source_name: self.cfg.name.clone(),
            call: call.to_owned(),
            message,
        }
    }

    /// Turns the end of a failed call into an error that says what to do about it.
    fn call_error(&self, call: &str, failed: Failed<TryError>) -> GdriveError {
        let call = call.to_owned();
        let source_name = self.cfg.name.clone();
        match classify(failed) {
            Failure::GaveUp { tries, last } => GdriveError::GaveUp {
                source_name,
                call,
                tries,
                last,
            },
            Failure::Auth(message) => GdriveError::Auth {
                source_name,
                call,
                principal: self.principal.clone(),
                key_path: self.key_path.clone(),
                message,
            },
            Failure::Protocol(message) => self.protocol(&call, message),
            Failure::Api {
                status,
                message,
                reason,
            } => GdriveError::Api {
                hint: self.hint(status, reason.as_deref()),
                message,
                source_name,
                call,
                status,
            },
        }
    }

    fn hint(&self, status: u16, reason: Option<&str>) -> String {
        let folder = &self.cfg.folder_id;
        let who = &self.principal;
        match (status, reason) {
            (403, Some("exportSizeLimitExceeded")) => {
                "the Sheet is over Drive's 10 MB export limit; have it saved as a CSV file in the folder instead".to_owned()
            }
            (401, _) => format!(
                "Drive refused even a freshly issued token; check that the key in {} is current and the Drive API is enabled for its project",
                self.key_path.display()
            ),
            (403, _) => format!(
                "share the folder `{folder}` with {who} (Viewer is enough) and enable the Drive API for the key's project"
            ),
            (404, _) => format!(
                "check folder_id `{folder}` and that the folder is shared with {who}; a file deleted during the poll also answers 404"
            ),
            (400, _) => format!("check folder_id `{folder}`"),
            _ => "the next poll tries again".to_owned(),
        }
    }
}

/// `q` for "items directly in the folder, not in the trash". Quotes and backslashes in the
/// id are escaped as the Drive query language requires.
fn folder_query(folder_id: &str) -> String {
    let escaped = folder_id.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}' in parents and trashed = false")
}

fn compile_patterns(cfg: &GdriveConfig) -> Result<Vec<glob::Pattern>, GdriveError> {
    if cfg.patterns.is_empty() {
        return Err(GdriveError::EmptyField {
            source_name: cfg.name.clone(),
            field: "patterns",
        });
    }
    cfg.patterns
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| GdriveError::Pattern {
                source_name: cfg.name.clone(),
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// The API root with exactly one trailing slash.
fn api_base(cfg: &GdriveConfig) -> Result<String, GdriveError> {
    crate::support::google::api_base(cfg.api_base.as_deref(), DEFAULT_API_BASE).map_err(
        |api_base| GdriveError::ApiBase {
            source_name: cfg.name.clone(),
            api_base,
        },
    )
}

/// A listed file the poll will download.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    id: String,
    local_name: String,
    md5: Option<String>,
    modified: String,
    size: Option<u64>,
    export: bool,
}

impl Wanted {
    fn version(&self) -> &str {
        self.md5.as_deref().unwrap_or(&self.modified)
    }
}

/// The outcome of filtering one listing, with counts for the poll's log line.
#[derive(Debug, Default)]
struct Selection {
    wanted: Vec<Wanted>,
    not_matching: usize,
    unusable: usize,
    duplicates: usize,
    remembered: usize,
}

/// Why a listed item cannot become a local file.
#[derive(Debug, PartialEq, Eq)]
enum Unusable {
    Folder,
    NativeType,
    UnsafeName,
}

/// The local file name for a Drive item: its name, plus `.csv` for a Sheet (unless it
/// already ends so). Names that could escape the download folder, or that look like our
/// own `.part` files or other hidden files, are refused.
fn local_name(name: &str, mime: &str) -> Result<String, Unusable> {
    let local = if mime == SPREADSHEET_MIME {
        if name.to_lowercase().ends_with(".csv") {
            name.to_owned()
        } else {
            format!("{name}.csv")
        }
    } else if mime == FOLDER_MIME {
        return Err(Unusable::Folder);
    } else if mime.starts_with(GOOGLE_APPS_PREFIX) {
        return Err(Unusable::NativeType);
    } else {
        name.to_owned()
    };
    let unsafe_name = local.is_empty()
        || local.starts_with('.')
        || local.contains(['/', '\\'])
        || local.chars().any(char::is_control);
    if unsafe_name {
        return Err(Unusable::UnsafeName);
    }
    Ok(local)
}

/// `modifiedTime` in Drive's own form, e.g. `2025-01-31T09:30:00.000Z`.
fn format_time(file: &google_drive3::api::File) -> String {
    file.modified_time
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Picks what to download from one listing: matching names, newest of same-named files,
/// minus what the caller remembers. Pure apart from logging, so it is tested without a server.
fn select(
    files: Vec<google_drive3::api::File>,
    patterns: &[glob::Pattern],
    remembered: &dyn Fn(&str, &str) -> bool,
    source: &str,
) -> Selection {
    let opts = glob::MatchOptions {
        case_sensitive: false,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut sel = Selection::default();
    let mut by_name: HashMap<String, Wanted> = HashMap::new();
    for file in files {
        let (Some(id), Some(name)) = (file.id.clone(), file.name.clone()) else {
            sel.unusable += 1;
            continue;
        };
        let mime = file.mime_type.clone().unwrap_or_default();
        let local = match local_name(&name, &mime) {
            Ok(local) => local,
            Err(Unusable::Folder) => {
                sel.unusable += 1;
                continue;
            }
            Err(why) => {
                sel.unusable += 1;
                tracing::debug!(source, name = %name, mime = %mime, reason = ?why, "Drive item skipped");
                continue;
            }
        };
        if !patterns.iter().any(|p| p.matches_with(&local, opts)) {
            sel.not_matching += 1;
            continue;
        }
        let wanted = Wanted {
            id,
            md5: file.md5_checksum.clone().filter(|m| !m.is_empty()),
            modified: format_time(&file),
            size: file.size.and_then(|s| u64::try_from(s).ok()),
            export: mime == SPREADSHEET_MIME,
            local_name: local,
        };
        match by_name.get(&wanted.local_name) {
            Some(kept) => {
                sel.duplicates += 1;
                let (newer, older) = if wanted.modified > kept.modified {
                    (wanted, kept.clone())
                } else {
                    (kept.clone(), wanted)
                };
                tracing::warn!(
                    source,
                    file = %newer.local_name,
                    taken = %newer.id,
                    ignored = %older.id,
                    "two Drive files share one name; taking the most recently modified"
                );
                by_name.insert(newer.local_name.clone(), newer);
            }
            None => {
                by_name.insert(wanted.local_name.clone(), wanted);
            }
        }
    }
    let mut wanted: Vec<Wanted> = by_name
        .into_values()
        .filter(|w| {
            let seen = remembered(&w.id, w.version());
            if seen {
                sel.remembered += 1;
            }
            !seen
        })
        .collect();
    wanted.sort_by(|a, b| a.local_name.cmp(&b.local_name));
    sel.wanted = wanted;
    sel
}

/// Why one try of a download failed.
enum DownloadTry {
    /// The request failed, or its body broke off or stalled.
    Remote(TryError),
    /// Our disk refused, or the file was not what the listing said: not worth a retry.
    Local(DownloadError),
}

impl DownloadTry {
    fn verdict(&self) -> Verdict {
        match self {
            DownloadTry::Remote(e) => e.verdict(),
            DownloadTry::Local(_) => Verdict::Permanent,
        }
    }
}

impl std::fmt::Display for DownloadTry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownloadTry::Remote(e) => e.fmt(f),
            DownloadTry::Local(e) => e.fmt(f),
        }
    }
}

/// Streams a response body into `out`; each chunk must come within `idle`.
async fn stream_body(
    mut body: common::Body,
    out: &mut PartFile,
    idle: Duration,
) -> Result<(), DownloadTry> {
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let broken = |what: String| DownloadTry::Remote(TryError::transient(what));
        match tokio::time::timeout(idle, next).await {
            Err(_) => {
                return Err(broken(format!(
                    "download stalled for {idle:?} after {} bytes",
                    out.bytes()
                )))
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                return Err(broken(format!(
                    "download broke off after {} bytes: {e}",
                    out.bytes()
                )))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.append(&data).map_err(DownloadTry::Local)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: serde_json::Value) -> Result<GdriveConfig, serde_json::Error> {
        serde_json::from_value(json)
    }

    fn drive_file(
        id: &str,
        name: &str,
        mime: &str,
        md5: Option<&str>,
        modified: &str,
    ) -> google_drive3::api::File {
        let mut v = serde_json::json!({"id": id, "name": name, "mimeType": mime,
            "modifiedTime": modified, "size": "3"});
        if let Some(m) = md5 {
            v["md5Checksum"] = m.into();
        }
        serde_json::from_value(v).expect("a Drive file")
    }

    fn patterns(p: &[&str]) -> Vec<glob::Pattern> {
        p.iter()
            .map(|p| glob::Pattern::new(p).expect("pattern"))
            .collect()
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        let c = cfg(serde_json::json!({"name": "n", "folder_id": "f", "key_file_env": "K"}))
            .expect("minimal config");
        assert_eq!(c.patterns, vec!["*.csv", "*.xml"]);
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.api_base, None);
        let err = cfg(serde_json::json!({"name": "n", "folder_id": "f", "key_file_env": "K", "key_file": "x"}))
            .expect_err("unknown key");
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn missing_env_var_is_named() {
        let c = cfg(serde_json::json!({"name": "norte", "folder_id": "f",
            "key_file_env": "DROPSYNC_GDRIVE_SURELY_UNSET_VAR"}))
        .expect("config");
        let err = GdriveSource::new(c).expect_err("env var is unset");
        let text = err.to_string();
        assert!(matches!(err, GdriveError::MissingEnv { .. }), "{text}");
        assert!(
            text.contains("DROPSYNC_GDRIVE_SURELY_UNSET_VAR") && text.contains("norte"),
            "{text}"
        );
    }

    #[test]
    fn bad_pattern_and_api_base_are_named() {
        let c = cfg(serde_json::json!({"name": "n", "folder_id": "f", "key_file_env": "K", "patterns": ["[x"]}))
            .expect("config");
        let err = GdriveSource::new(c).expect_err("bad glob");
        assert!(err.to_string().contains("`[x`"), "{err}");
        let c = cfg(serde_json::json!({"name": "n", "folder_id": "f", "key_file_env": "K", "api_base": "ftp://x"}))
            .expect("config");
        let err = GdriveSource::new(c).expect_err("bad api_base");
        assert!(err.to_string().contains("ftp://x"), "{err}");
    }

    #[test]
    fn api_base_gets_one_trailing_slash() {
        let mut c = cfg(serde_json::json!({"name": "n", "folder_id": "f", "key_file_env": "K"}))
            .expect("config");
        assert_eq!(
            api_base(&c).expect("default"),
            "https://www.googleapis.com/"
        );
        c.api_base = Some("http://127.0.0.1:8080//".into());
        assert_eq!(api_base(&c).expect("override"), "http://127.0.0.1:8080/");
    }

    #[test]
    fn folder_query_escapes_quotes() {
        assert_eq!(folder_query("abc"), "'abc' in parents and trashed = false");
        assert_eq!(
            folder_query(r"a'b\c"),
            r"'a\'b\\c' in parents and trashed = false"
        );
    }

    #[test]
    fn local_names() {
        assert_eq!(
            local_name("stock", SPREADSHEET_MIME),
            Ok("stock.csv".into())
        );
        assert_eq!(
            local_name("stock.CSV", SPREADSHEET_MIME),
            Ok("stock.CSV".into())
        );
        assert_eq!(
            local_name("ventas.csv", "text/csv"),
            Ok("ventas.csv".into())
        );
        assert_eq!(local_name("d", FOLDER_MIME), Err(Unusable::Folder));
        assert_eq!(
            local_name("doc", "application/vnd.google-apps.document"),
            Err(Unusable::NativeType)
        );
        for bad in [
            "../x.csv",
            "a/b.csv",
            r"a\b.csv",
            ".x.csv.part",
            "",
            "a\nb.csv",
        ] {
            assert_eq!(
                local_name(bad, "text/csv"),
                Err(Unusable::UnsafeName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn selection_matches_case_insensitively_and_skips_what_is_remembered() {
        let files = vec![
            drive_file(
                "1",
                "VENTAS.CSV",
                "text/csv",
                Some("m1"),
                "2025-01-01T00:00:00.000Z",
            ),
            drive_file(
                "2",
                "clientes.csv",
                "text/csv",
                Some("m2"),
                "2025-01-01T00:00:00.000Z",
            ),
            drive_file(
                "3",
                "notas.pdf",
                "application/pdf",
                Some("m3"),
                "2025-01-01T00:00:00.000Z",
            ),
            drive_file(
                "4",
                "stock",
                SPREADSHEET_MIME,
                None,
                "2025-01-02T00:00:00.000Z",
            ),
            drive_file("5", "sub", FOLDER_MIME, None, "2025-01-02T00:00:00.000Z"),
        ];
        let remembered = |id: &str, version: &str| id == "2" && version == "m2";
        let sel = select(files, &patterns(&["*.csv", "*.xml"]), &remembered, "t");
        let names: Vec<&str> = sel.wanted.iter().map(|w| w.local_name.as_str()).collect();
        assert_eq!(names, ["VENTAS.CSV", "stock.csv"]);
        assert_eq!((sel.remembered, sel.not_matching, sel.unusable), (1, 1, 1));
        let sheet = &sel.wanted[1];
        assert!(sheet.export);
        assert_eq!(sheet.version(), "2025-01-02T00:00:00.000Z");
    }

    #[test]
    fn same_name_keeps_the_newest() {
        let files = vec![
            drive_file(
                "old",
                "clientes.csv",
                "text/csv",
                Some("a"),
                "2025-01-01T00:00:00.000Z",
            ),
            drive_file(
                "new",
                "clientes.csv",
                "text/csv",
                Some("b"),
                "2025-03-01T00:00:00.000Z",
            ),
            drive_file(
                "mid",
                "clientes.csv",
                "text/csv",
                Some("c"),
                "2025-02-01T00:00:00.000Z",
            ),
        ];
        let sel = select(files, &patterns(&["*.csv"]), &|_, _| false, "t");
        assert_eq!(sel.wanted.len(), 1);
        assert_eq!(sel.wanted[0].id, "new");
        assert_eq!(sel.duplicates, 2);
    }

    #[test]
    fn fetched_version_prefers_md5() {
        let mut f = Fetched {
            name: "a.csv".into(),
            local: PathBuf::from("a.csv"),
            file_id: "1".into(),
            md5: Some("m".into()),
            modified_time: "t".into(),
            hash: String::new(),
        };
        assert_eq!(f.version(), "m");
        f.md5 = None;
        assert_eq!(f.version(), "t");
    }
}
