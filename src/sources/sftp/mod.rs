//! SFTP source: dealers' systems upload one full-snapshot file per entity (`clientes.csv`,
//! `ventas.csv`, `unidades.xml`, ...) to an SFTP server, and dropsync fetches each complete
//! file once. A file is taken only when its size and mtime did not change between two polls,
//! so an upload still in progress is never read; it is written locally as `.<name>.part` and
//! renamed into place only when whole (`crate::support::download`). After a successful run the remote files are moved to
//! `processed_dir` (or, with `after = "keep"`, left alone and remembered by the caller by
//! name, size and mtime).
//!
//! Credentials never live in the config: it names environment variables that hold the key
//! path or the password. The server's host key is always checked, against a known_hosts file
//! or a pinned `SHA256:` fingerprint, before any credential is sent.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use glob::{MatchOptions, Pattern};
use ssh2::{CheckResult, ErrorCode, HashType, KnownHostFileKind, Session, Sftp};
use tracing::{debug, info, warn};

pub use crate::config::sources::{After, SftpConfig};
use crate::support::download::{CopyError, DownloadError, Expected, PartFile};

/// How long one blocking network step (connect, handshake, a read) may wait before the poll
/// fails, so that a dead or stalled server cannot hang dropsync.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Read size for downloads: libssh2 pipelines SFTP reads up to the buffer it is given, so a
/// large buffer is much faster than `io::copy`'s 8 KiB.
const CHUNK: usize = 256 * 1024;

/// SFTP status "no such file" (`SSH_FX_NO_SUCH_FILE`).
const FX_NO_SUCH_FILE: i32 = 2;

/// Everything that can go wrong with an SFTP source. Each message names the source, the value
/// at fault and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error("[[sftp]] `{name}` is not valid:{}", bullet_list(.problems))]
    Config { name: String, problems: Vec<String> },

    #[error(
        "[[sftp]] `{name}`: environment variable `{var}` (named by `{field}`) is not set; \
         export it with {what} before starting dropsync"
    )]
    MissingEnv {
        name: String,
        var: String,
        field: &'static str,
        what: &'static str,
    },

    #[error(
        "[[sftp]] `{name}`: cannot connect to {host}:{port}: {source}; \
         check `host` and `port` and that the server is up"
    )]
    Connect {
        name: String,
        host: String,
        port: u16,
        source: io::Error,
    },

    #[error("[[sftp]] `{name}`: SSH {step} with {host}:{port} failed: {source}")]
    Ssh {
        name: String,
        host: String,
        port: u16,
        step: &'static str,
        source: ssh2::Error,
    },

    #[error(
        "[[sftp]] `{name}`: cannot read known_hosts file {}: {source}; fix `known_hosts`, \
         or pin the server's key instead with `fingerprint = \"{fingerprint}\"` once you \
         have checked it with the server's administrator",
        .path.display()
    )]
    KnownHostsFile {
        name: String,
        path: PathBuf,
        fingerprint: String,
        source: ssh2::Error,
    },

    #[error(
        "[[sftp]] `{name}`: refusing to connect: the host key of {host}:{port} is {problem} \
         in {}. The server presents {fingerprint}. If the server's administrator confirms \
         that fingerprint (`ssh-keygen -lf` on its host key), pin it with `fingerprint = \
         \"{fingerprint}\"` instead of `known_hosts`, or add the key with `ssh-keyscan -p \
         {port} {host} >> {}`",
        .known_hosts.display(),
        .known_hosts.display()
    )]
    HostKeyRejected {
        name: String,
        host: String,
        port: u16,
        known_hosts: PathBuf,
        problem: &'static str,
        fingerprint: String,
    },

    #[error(
        "[[sftp]] `{name}`: refusing to connect: the host key of {host}:{port} is \
         {fingerprint}, not the pinned {expected}. If the server's administrator confirms \
         that its key changed, pin the new one with `fingerprint = \"{fingerprint}\"`"
    )]
    FingerprintMismatch {
        name: String,
        host: String,
        port: u16,
        expected: String,
        fingerprint: String,
    },

    #[error(
        "[[sftp]] `{name}`: login as `{user}` on {host}:{port} with the {method} from `{var}` \
         failed: {source}; check `user` and the {method}"
    )]
    Auth {
        name: String,
        user: String,
        host: String,
        port: u16,
        method: &'static str,
        var: String,
        /// Boxed to keep `SftpError` small (it is returned by every step).
        source: Box<ssh2::Error>,
    },

    #[error("[[sftp]] `{name}`: cannot {action} remote {path}: {source}")]
    Remote {
        name: String,
        action: &'static str,
        path: String,
        source: ssh2::Error,
    },

    #[error(
        "[[sftp]] `{name}`: download of {remote} stopped after {got} of {expected} bytes: \
         {source}; nothing was kept, the next poll fetches it again"
    )]
    Download {
        name: String,
        remote: String,
        got: u64,
        expected: u64,
        source: io::Error,
    },

    #[error("[[sftp]] `{name}`: cannot write {}: {source}; check that the folder is writable", .path.display())]
    Local {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

fn bullet_list(items: &[String]) -> String {
    items.iter().map(|p| format!("\n  - {p}")).collect()
}

/// One file downloaded by [`SftpSource::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// File name on the server (and in `into`).
    pub name: String,
    /// Where the complete file now is: `into/<name>`.
    pub local: PathBuf,
    /// Size in bytes, as listed and as downloaded.
    pub size: u64,
    /// Remote modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// BLAKE3 of the content, lowercase hex.
    pub hash: String,
}

/// How to log in, compiled from the config.
#[derive(Debug, Clone)]
enum Credential {
    /// Variable holding the private key path.
    KeyFile(String),
    /// Variable holding the password.
    Password(String),
}

/// How to check the server's host key, compiled from the config.
#[derive(Debug, Clone)]
enum HostCheck {
    KnownHosts(PathBuf),
    /// `SHA256:<base64 without padding>`.
    Fingerprint(String),
}

/// A configured SFTP source and what it saw at the previous poll.
pub struct SftpSource {
    cfg: SftpConfig,
    patterns: Vec<Pattern>,
    credential: Credential,
    host_check: HostCheck,
    /// name → (size, mtime) at the previous listing: a file is taken only when unchanged.
    seen: HashMap<String, (u64, u64)>,
}

/// An authenticated SFTP connection, open for one poll or acknowledge.
struct Conn {
    sftp: Sftp,
    session: Session,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Polite goodbye; the server may already be gone, which changes nothing.
        let _ = self.session.disconnect(None, "dropsync done", None);
    }
}

impl SftpSource {
    /// Checks the config and compiles it. Every problem is reported at once: exactly one of
    /// `key_file_env`/`password_env` (and that variable must be set), exactly one of
    /// `known_hosts`/`fingerprint`, valid patterns and a relative `processed_dir`. Nothing
    /// is connected here.
    pub fn new(cfg: SftpConfig) -> Result<Self, SftpError> {
        let mut problems = Vec::new();
        if cfg.host.trim().is_empty() {
            problems.push("`host` is empty: set the server's name or address".to_string());
        }
        if cfg.user.trim().is_empty() {
            problems.push("`user` is empty: set the login user".to_string());
        }
        if cfg.remote_dir.trim().is_empty() {
            problems.push(
                "`remote_dir` is empty: set the folder to pick files up from (\".\" for the \
                 login folder)"
                    .to_string(),
            );
        }

        let credential = match (&cfg.key_file_env, &cfg.password_env) {
            (Some(var), None) => Some(Credential::KeyFile(var.clone())),
            (None, Some(var)) => Some(Credential::Password(var.clone())),
            (None, None) => {
                problems.push(
                    "no credential: set `key_file_env` (name of the environment variable \
                     holding the private key path) or `password_env` (name of the variable \
                     holding the password)"
                        .to_string(),
                );
                None
            }
            (Some(_), Some(_)) => {
                problems.push(
                    "both `key_file_env` and `password_env` are set: keep only one".to_string(),
                );
                None
            }
        };
        if let Some(cred) = &credential {
            let (var, field, what) = cred.describe();
            if var.trim().is_empty() {
                problems.push(format!(
                    "`{field}` is empty: give the NAME of the environment variable holding {what}"
                ));
            } else if env_value(var).is_none() {
                problems.push(format!(
                    "environment variable `{var}` (named by `{field}`) is not set: export it \
                     with {what}"
                ));
            }
        }

        let host_check = match (&cfg.known_hosts, &cfg.fingerprint) {
            (Some(path), None) => Some(HostCheck::KnownHosts(path.clone())),
            (None, Some(fp)) => match normalize_fingerprint(fp) {
                Some(fp) => Some(HostCheck::Fingerprint(fp)),
                None => {
                    problems.push(format!(
                        "`fingerprint = \"{fp}\"` is not a SHA256 fingerprint: write it as \
                         OpenSSH prints it, `SHA256:` then 43 base64 characters \
                         (`ssh-keygen -lf KEY.pub`)"
                    ));
                    None
                }
            },
            (None, None) => {
                problems.push(
                    "no host key check: set `known_hosts` (a known_hosts file) or \
                     `fingerprint` (\"SHA256:...\"); dropsync never connects unchecked"
                        .to_string(),
                );
                None
            }
            (Some(_), Some(_)) => {
                problems.push(
                    "both `known_hosts` and `fingerprint` are set: keep only one".to_string(),
                );
                None
            }
        };

        if cfg.patterns.is_empty() {
            problems.push(
                "`patterns` is empty: nothing would ever be fetched; remove it for the default \
                 [\"*.csv\", \"*.xml\"]"
                    .to_string(),
            );
        }
        let mut patterns = Vec::new();
        for p in &cfg.patterns {
            match Pattern::new(p) {
                Ok(pat) => patterns.push(pat),
                Err(e) => problems.push(format!("pattern `{p}` is not a valid glob: {e}")),
            }
        }

        let pd = cfg.processed_dir.trim();
        if pd.is_empty() || pd == "." {
            problems.push(
                "`processed_dir` is empty: name a folder inside `remote_dir`, e.g. \"processed\""
                    .to_string(),
            );
        } else if pd.starts_with('/') || pd.split('/').any(|c| c == "..") {
            problems.push(format!(
                "`processed_dir = \"{pd}\"` must be a folder inside `remote_dir` (relative, \
                 no `..`)"
            ));
        }

        match (credential, host_check) {
            (Some(credential), Some(host_check)) if problems.is_empty() => Ok(SftpSource {
                cfg,
                patterns,
                credential,
                host_check,
                seen: HashMap::new(),
            }),
            _ => Err(SftpError::Config {
                name: cfg.name,
                problems,
            }),
        }
    }

    /// The config this source was built from.
    pub fn config(&self) -> &SftpConfig {
        &self.cfg
    }

    /// One poll: connect, verify the host key, list `remote_dir`, and download every file
    /// that matches the patterns, is not a temporary name (`*.part`, `*.tmp`, `*.filepart`,
    /// `~$*`, dotfiles...), is not `remembered(name, size, mtime)`, and whose size and mtime
    /// are the same as at the previous poll. The first sighting of a file only records it,
    /// so a file still being uploaded is never taken.
    ///
    /// Each download goes to `into/.<name>.part` and is renamed to `into/<name>` only when
    /// complete, its size matches the listing and the remote file did not change meanwhile
    /// (a file that changed is skipped and looked at again next poll). On any error the
    /// partial file and the files this poll already completed are removed, and the error is
    /// returned: `into` never holds half a batch, and the next poll starts again (files
    /// unchanged since this listing are fetched right away). A fetched file that is neither
    /// acknowledged (`Move`) nor remembered (`Keep`) is fetched again by the next poll, so a
    /// failed run is retried.
    pub fn poll(
        &mut self,
        into: &Path,
        remembered: &dyn Fn(&str, u64, u64) -> bool,
    ) -> Result<Vec<Fetched>, SftpError> {
        let conn = self.connect()?;
        let listing = self.list(&conn.sftp)?;

        let mut candidates = Vec::new();
        let mut first_seen = 0usize;
        let mut changing = 0usize;
        let mut skipped_remembered = 0usize;
        let mut now = HashMap::with_capacity(listing.len());
        for (name, size, mtime) in &listing {
            let before = self.seen.get(name).copied();
            now.insert(name.clone(), (*size, *mtime));
            if remembered(name, *size, *mtime) {
                skipped_remembered += 1;
            } else if before == Some((*size, *mtime)) {
                candidates.push((name.clone(), *size, *mtime));
            } else if before.is_none() {
                first_seen += 1;
            } else {
                changing += 1;
            }
        }
        // Remember this listing now: if a download fails, the next poll can take the files
        // that stay unchanged without waiting one more round.
        self.seen = now;

        if !candidates.is_empty() {
            fs::create_dir_all(into).map_err(|source| SftpError::Local {
                name: self.cfg.name.clone(),
                path: into.to_path_buf(),
                source,
            })?;
        }
        let mut fetched: Vec<Fetched> = Vec::new();
        let mut changed_during = 0usize;
        for (name, size, mtime) in candidates {
            match self.download(&conn.sftp, &name, size, mtime, into) {
                Ok(Some(f)) => fetched.push(f),
                Ok(None) => {
                    changed_during += 1;
                    self.seen.remove(&name);
                }
                Err(e) => {
                    for f in &fetched {
                        let _ = fs::remove_file(&f.local);
                    }
                    warn!(
                        source = %self.cfg.name,
                        file = %name,
                        discarded = fetched.len(),
                        error = %e,
                        "SFTP download failed; this poll's files were discarded and the next poll fetches them again"
                    );
                    return Err(e);
                }
            }
        }
        info!(
            source = %self.cfg.name,
            listed = listing.len(),
            first_seen,
            changing,
            changed_during,
            remembered = skipped_remembered,
            downloaded = fetched.len(),
            bytes = fetched.iter().map(|f| f.size).sum::<u64>(),
            "SFTP poll done"
        );
        Ok(fetched)
    }

    /// After dropsync's run with `fetched` succeeded. `After::Move` renames each remote file
    /// into `processed_dir` (created if missing; a file of the same name already there is
    /// replaced, since SFTP rename onto an existing file fails). A remote file whose size or
    /// mtime no longer match what was fetched is a newer export: it is left in place for the
    /// next poll. `After::Keep` does nothing: the caller remembers name, size and mtime.
    pub fn acknowledge(&mut self, fetched: &[Fetched]) -> Result<(), SftpError> {
        if self.cfg.after == After::Keep || fetched.is_empty() {
            debug!(source = %self.cfg.name, files = fetched.len(), after = ?self.cfg.after, "Nothing to move on the server.");
            return Ok(());
        }
        let conn = self.connect()?;
        let processed = self.ensure_processed_dir(&conn.sftp)?;
        let mut moved = 0usize;
        let mut newer = 0usize;
        for f in fetched {
            let src = remote_join(&self.cfg.remote_dir, &f.name);
            let dst = remote_join(&processed, &f.name);
            let stat = conn
                .sftp
                .stat(Path::new(&src))
                .map_err(|source| self.remote_err("stat", &src, source))?;
            if (stat.size.unwrap_or(0), stat.mtime.unwrap_or(0)) != (f.size, f.mtime) {
                newer += 1;
                warn!(source = %self.cfg.name, file = %f.name, "Remote file changed since it was fetched; left in place for the next poll.");
                continue;
            }
            match conn.sftp.unlink(Path::new(&dst)) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::SFTP(FX_NO_SUCH_FILE) => {}
                Err(source) => return Err(self.remote_err("replace", &dst, source)),
            }
            conn.sftp
                .rename(Path::new(&src), Path::new(&dst), None)
                .map_err(|source| self.remote_err("move to processed_dir", &src, source))?;
            self.seen.remove(&f.name);
            moved += 1;
        }
        info!(source = %self.cfg.name, moved, newer, processed_dir = %processed, "Acknowledged fetched files on the server.");
        Ok(())
    }

    fn remote_err(&self, action: &'static str, path: &str, source: ssh2::Error) -> SftpError {
        SftpError::Remote {
            name: self.cfg.name.clone(),
            action,
            path: path.to_string(),
            source,
        }
    }

    fn ssh_err(&self, step: &'static str, source: ssh2::Error) -> SftpError {
        SftpError::Ssh {
            name: self.cfg.name.clone(),
            host: self.cfg.host.clone(),
            port: self.cfg.port,
            step,
            source,
        }
    }

    /// TCP connect, handshake, host key check, then login: credentials are only sent to a
    /// server whose key passed the check.
    fn connect(&self) -> Result<Conn, SftpError> {
        let cfg = &self.cfg;
        let connect_err = |source: io::Error| SftpError::Connect {
            name: cfg.name.clone(),
            host: cfg.host.clone(),
            port: cfg.port,
            source,
        };
        let addrs: Vec<_> = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;

        let mut session = Session::new().map_err(|e| self.ssh_err("session setup", e))?;
        session.set_timeout(TIMEOUT.as_millis() as u32);
        session.set_tcp_stream(stream);
        session
            .handshake()
            .map_err(|e| self.ssh_err("handshake", e))?;
        self.verify_host_key(&session)?;
        self.authenticate(&session)?;
        let sftp = session
            .sftp()
            .map_err(|e| self.ssh_err("SFTP subsystem start", e))?;
        debug!(source = %cfg.name, host = %cfg.host, port = cfg.port, "Connected to the SFTP server.");
        Ok(Conn { sftp, session })
    }

    fn verify_host_key(&self, session: &Session) -> Result<(), SftpError> {
        let cfg = &self.cfg;
        let actual = session
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64_nopad(h)))
            .ok_or_else(|| {
                self.ssh_err(
                    "host key hash",
                    ssh2::Error::new(
                        ErrorCode::Session(-1),
                        "the server sent no host key to check",
                    ),
                )
            })?;
        match &self.host_check {
            HostCheck::Fingerprint(expected) => {
                if *expected == actual {
                    Ok(())
                } else {
                    Err(SftpError::FingerprintMismatch {
                        name: cfg.name.clone(),
                        host: cfg.host.clone(),
                        port: cfg.port,
                        expected: expected.clone(),
                        fingerprint: actual,
                    })
                }
            }
            HostCheck::KnownHosts(path) => {
                let (key, _) = session.host_key().ok_or_else(|| {
                    self.ssh_err(
                        "host key check",
                        ssh2::Error::new(
                            ErrorCode::Session(-1),
                            "the server sent no host key to check",
                        ),
                    )
                })?;
                let mut known = session
                    .known_hosts()
                    .map_err(|e| self.ssh_err("known_hosts setup", e))?;
                known
                    .read_file(path, KnownHostFileKind::OpenSSH)
                    .map_err(|source| SftpError::KnownHostsFile {
                        name: cfg.name.clone(),
                        path: path.clone(),
                        fingerprint: actual.clone(),
                        source,
                    })?;
                let problem = match known.check_port(&cfg.host, cfg.port, key) {
                    CheckResult::Match => return Ok(()),
                    CheckResult::NotFound => "not listed",
                    CheckResult::Mismatch => "DIFFERENT from the one listed",
                    CheckResult::Failure => "not checkable",
                };
                Err(SftpError::HostKeyRejected {
                    name: cfg.name.clone(),
                    host: cfg.host.clone(),
                    port: cfg.port,
                    known_hosts: path.clone(),
                    problem,
                    fingerprint: actual,
                })
            }
        }
    }

    fn authenticate(&self, session: &Session) -> Result<(), SftpError> {
        let cfg = &self.cfg;
        let (var, field, what) = self.credential.describe();
        let value = env_value(var).ok_or_else(|| SftpError::MissingEnv {
            name: cfg.name.clone(),
            var: var.to_string(),
            field,
            what,
        })?;
        let (method, result) = match &self.credential {
            Credential::KeyFile(_) => (
                "private key",
                session.userauth_pubkey_file(&cfg.user, None, Path::new(&value), None),
            ),
            Credential::Password(_) => ("password", session.userauth_password(&cfg.user, &value)),
        };
        let auth_err = |source: ssh2::Error| SftpError::Auth {
            name: cfg.name.clone(),
            user: cfg.user.clone(),
            host: cfg.host.clone(),
            port: cfg.port,
            method,
            var: var.to_string(),
            source: Box::new(source),
        };
        result.map_err(auth_err)?;
        if !session.authenticated() {
            return Err(auth_err(ssh2::Error::new(
                ErrorCode::Session(-18),
                "the server did not accept the login",
            )));
        }
        Ok(())
    }

    /// Whether a file name is one to fetch: it matches a pattern (case-insensitively) and is
    /// not a temporary name.
    fn wants(&self, name: &str) -> bool {
        let opts = MatchOptions {
            case_sensitive: false,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        !super::is_temporary(name) && self.patterns.iter().any(|p| p.matches_with(name, opts))
    }

    /// Regular files in `remote_dir` that match the patterns and are not temporary names,
    /// as (name, size, mtime), sorted by name.
    fn list(&self, sftp: &Sftp) -> Result<Vec<(String, u64, u64)>, SftpError> {
        let dir = &self.cfg.remote_dir;
        let entries = sftp
            .readdir(Path::new(dir))
            .map_err(|source| self.remote_err("list", dir, source))?;
        let mut out = Vec::new();
        for (path, mut stat) in entries {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !self.wants(name) {
                continue;
            }
            if stat.file_type().is_symlink() {
                // Follow links to files; a broken link is not a file to fetch.
                match sftp.stat(&path) {
                    Ok(target) => stat = target,
                    Err(_) => continue,
                }
            }
            if !stat.is_file() {
                continue;
            }
            out.push((
                name.to_string(),
                stat.size.unwrap_or(0),
                stat.mtime.unwrap_or(0),
            ));
        }
        out.sort();
        Ok(out)
    }

    /// Downloads one file to `into/.<name>.part`, then renames it to `into/<name>`.
    /// `Ok(None)` when the remote file changed while it was read (not an error: it is looked
    /// at again next poll). The `.part` file never survives this function.
    fn download(
        &self,
        sftp: &Sftp,
        name: &str,
        size: u64,
        mtime: u64,
        into: &Path,
    ) -> Result<Option<Fetched>, SftpError> {
        let remote = remote_join(&self.cfg.remote_dir, name);
        let src = sftp
            .open(Path::new(&remote))
            .map_err(|source| self.remote_err("open", &remote, source))?;
        let mut part = PartFile::create(into, name).map_err(|e| self.local_err(into, e))?;
        match part.copy_from(src, CHUNK) {
            Ok(_) => {}
            Err(CopyError::Read { got, source }) => {
                return Err(SftpError::Download {
                    name: self.cfg.name.clone(),
                    remote,
                    got,
                    expected: size,
                    source,
                })
            }
            Err(CopyError::Write(e)) => return Err(self.local_err(into, e)),
        }
        let expected = Expected {
            size: Some(size),
            blake3: None,
        };
        let verified = match part.finish(expected) {
            Ok(verified) => verified,
            Err(DownloadError::Size { got, .. }) => {
                warn!(source = %self.cfg.name, file = %remote, listed = size, got, "Remote file size changed while it was downloaded; it will be taken once it stays unchanged.");
                return Ok(None);
            }
            Err(e) => return Err(self.local_err(into, e)),
        };
        // Same size is not enough when an upload rewrote the file in place: check that the
        // remote file still has the size and mtime it was listed with.
        let after = sftp
            .stat(Path::new(&remote))
            .map_err(|source| self.remote_err("stat", &remote, source))?;
        if (after.size.unwrap_or(0), after.mtime.unwrap_or(0)) != (size, mtime) {
            warn!(source = %self.cfg.name, file = %name, "Remote file changed while it was downloaded; it will be taken once it stays unchanged.");
            return Ok(None);
        }
        let hash = verified.hash().to_hex().to_string();
        let local = verified.commit().map_err(|e| self.local_err(into, e))?;
        Ok(Some(Fetched {
            name: name.to_string(),
            local,
            size,
            mtime,
            hash,
        }))
    }

    /// Our side of a download failed (the disk, the folder).
    fn local_err(&self, into: &Path, e: DownloadError) -> SftpError {
        let (path, source) = match e {
            DownloadError::Io { path, source } => (path, source),
            other => (into.to_path_buf(), io::Error::other(other)),
        };
        SftpError::Local {
            name: self.cfg.name.clone(),
            path,
            source,
        }
    }

    /// Creates `remote_dir/processed_dir` (and any missing parent inside `remote_dir`).
    fn ensure_processed_dir(&self, sftp: &Sftp) -> Result<String, SftpError> {
        let mut path = self.cfg.remote_dir.clone();
        for part in self.cfg.processed_dir.split('/').filter(|c| !c.is_empty()) {
            path = remote_join(&path, part);
            match sftp.stat(Path::new(&path)) {
                Ok(s) if s.is_dir() => continue,
                Ok(_) => {
                    return Err(self.remote_err(
                        "use as processed_dir (it is not a folder)",
                        &path,
                        ssh2::Error::new(ErrorCode::SFTP(4), "not a directory"),
                    ))
                }
                Err(_) => {}
            }
            if let Err(source) = sftp.mkdir(Path::new(&path), 0o755) {
                // Someone else may have created it meanwhile.
                if !sftp
                    .stat(Path::new(&path))
                    .map(|s| s.is_dir())
                    .unwrap_or(false)
                {
                    return Err(self.remote_err("create processed_dir", &path, source));
                }
            }
        }
        Ok(path)
    }
}

impl Credential {
    /// (variable name, config field, what it must hold)
    fn describe(&self) -> (&str, &'static str, &'static str) {
        match self {
            Credential::KeyFile(v) => (v, "key_file_env", "the path of the private key file"),
            Credential::Password(v) => (v, "password_env", "the password"),
        }
    }
}

/// The variable's value, `None` when unset or empty (an empty key path or password is
/// never what was meant).
fn env_value(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// Joins remote paths with `/` whatever the local OS.
fn remote_join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." {
        name.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), name)
    }
}

/// `SHA256:<43 base64 chars>`, padding removed, or `None` when it is not that shape.
fn normalize_fingerprint(fp: &str) -> Option<String> {
    let fp = fp.trim();
    let body = fp
        .strip_prefix("SHA256:")
        .or_else(|| fp.strip_prefix("sha256:"))?
        .trim_end_matches('=');
    let ok = body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    ok.then(|| format!("SHA256:{body}"))
}

/// Standard base64 without `=` padding, as OpenSSH prints fingerprints.
fn base64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests;
