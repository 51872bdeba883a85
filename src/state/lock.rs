//! One run at a time per workspace: an OS file lock on `<out>/dropsync.lock`, released when
//! the process ends however it ends (no stale lock after a crash). The file holds the holder's
//! pid and start time so the refusal can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another dropsync is working in {dir} ({holder}); wait for it to finish, or stop it first"
    )]
    Busy { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tenant {tenant} is being worked on by another dropsync ({holder}); wait for it to finish, or stop it first")]
    ClusterBusy { tenant: String, holder: String },
    /// The lock server is down or refuses us: no run may start without knowing it is alone.
    #[error("cannot take tenant {tenant}'s lock in PostgreSQL: {message}; nothing was done (check the server and the URL in the variable the tenants file's [lock] names)")]
    ClusterUnavailable { tenant: String, message: String },
    /// The session holding the tenant's lock ended during the run (checked before the
    /// journal commits, so nothing reached the CRM).
    #[error("tenant {tenant}'s lock in PostgreSQL was lost during the run ({message}); it stopped before writing to the CRM: run it again")]
    ClusterLost { tenant: String, message: String },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// The run lock of a workspace (`dropsync.lock`): runs and approvals.
    pub fn acquire(out: &Path) -> Result<WorkspaceLock, LockError> {
        Self::acquire_named(out, "dropsync.lock")
    }

    /// Another lock file in the workspace (e.g. `watch.lock`: one daemon per workspace).
    pub fn acquire_named(out: &Path, name: &str) -> Result<WorkspaceLock, LockError> {
        let path = out.join(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(out).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Busy {
                    dir: out.to_path_buf(),
                    holder: if holder.trim().is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.trim().to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "pid {} since {}", std::process::id(), super::now()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(WorkspaceLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_workspace_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = WorkspaceLock::acquire(dir.path()).unwrap();
        let err = WorkspaceLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        WorkspaceLock::acquire(dir.path()).unwrap();
    }
}
