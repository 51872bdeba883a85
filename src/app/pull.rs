//! Remote sources (SFTP, Drive) as the app uses them: pulled on `watch`'s schedule, or once
//! by `run --pull`, the one-shot a scheduler (a Kubernetes CronJob) starts on a worker that
//! may have nothing on its disk.
//!
//! `run --pull` takes what is new inside the run's locks, so two workers never take the same
//! file, and remembers it (and moves it to `processed/` on the server) only after the run with
//! it ended: a run that fails or is killed leaves every file unremembered on the server, and
//! the next job takes it again. Taking a file twice costs nothing on the CRM: the same content
//! is an unchanged entity. Remembered keys live in the state, so with `[state]` a fresh worker
//! knows what an earlier one took.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::run::{self, PipelineError, RunOptions, RunReport};
use crate::config::sources::SourcesFile;
use crate::sources::gdrive::GdriveSource;
use crate::sources::sftp::{self, SftpSource};
use crate::state::State;

/// A remote place drops come from.
pub(super) enum Remote {
    Sftp(Box<SftpSource>),
    Gdrive(Box<GdriveSource>),
}

/// A file a remote delivered into the inbox: its local name, the key that remembers it (so
/// it is not taken twice) and what acknowledging it needs.
pub(super) struct Delivered {
    pub(super) source: usize,
    pub(super) name: String,
    pub(super) key: String,
    pub(super) sftp: Option<sftp::Fetched>,
}

/// Every remote source of a sources config, in its order (SFTP first, then Drive).
pub(super) fn remotes(cfg: &SourcesFile) -> Result<Vec<Remote>, String> {
    let mut remotes: Vec<Remote> = Vec::new();
    for s in &cfg.sftp {
        let src = SftpSource::new(s.clone()).map_err(|e| format!("source `{}`: {e}", s.name))?;
        remotes.push(Remote::Sftp(Box::new(src)));
    }
    for g in &cfg.gdrive {
        let src = GdriveSource::new(g.clone()).map_err(|e| format!("source `{}`: {e}", g.name))?;
        remotes.push(Remote::Gdrive(Box::new(src)));
    }
    Ok(remotes)
}

impl Remote {
    pub(super) fn name(&self) -> &str {
        match self {
            Remote::Sftp(s) => &s.config().name,
            Remote::Gdrive(g) => &g.config().name,
        }
    }

    /// Downloads into `into` what is new and not remembered in `state`. An SFTP file is taken
    /// at the second look that finds it unchanged; a Drive file at the first (Drive lists
    /// only complete uploads). Drive files that could not be downloaded fail the pull when
    /// `strict` (the one-shot must say so), and are left for the next poll otherwise.
    pub(super) fn pull(
        &mut self,
        source: usize,
        into: &Path,
        state: &State,
        strict: bool,
    ) -> Result<Vec<Delivered>, String> {
        let name = self.name().to_string();
        match self {
            Remote::Sftp(s) => {
                let remembered = |file: &str, size: u64, mtime: u64| {
                    state.remote_seen(&name, &format!("{file}|{size}|{mtime}"))
                };
                let fetched = s.poll(into, &remembered).map_err(|e| e.to_string())?;
                Ok(fetched
                    .into_iter()
                    .map(|f| Delivered {
                        source,
                        name: f.name.clone(),
                        key: format!("{}|{}|{}", f.name, f.size, f.mtime),
                        sftp: Some(f),
                    })
                    .collect())
            }
            Remote::Gdrive(g) => {
                let remembered =
                    |id: &str, version: &str| state.remote_seen(&name, &format!("{id}|{version}"));
                let fetched = g.poll(into, &remembered).map_err(|e| e.to_string())?;
                let delivered = fetched
                    .into_iter()
                    .map(|f| Delivered {
                        source,
                        name: f.name.clone(),
                        key: format!("{}|{}", f.file_id, f.version()),
                        sftp: None,
                    })
                    .collect::<Vec<_>>();
                if let Some(failed) = g.last_failures().first().filter(|_| strict) {
                    discard(&delivered, into);
                    return Err(format!(
                        "{} of the folder's files could not be downloaded, first {}: {}",
                        g.last_failures().len(),
                        failed.name,
                        failed.error
                    ));
                }
                Ok(delivered)
            }
        }
    }

    /// After the file's run: SFTP moves it to `processed/` (or keeps it, remembered); Drive
    /// files are remembered by id and version.
    pub(super) fn acknowledge(&mut self, delivered: &Delivered) -> Result<(), String> {
        match (self, &delivered.sftp) {
            (Remote::Sftp(s), Some(f)) => s
                .acknowledge(std::slice::from_ref(f))
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    fn is_sftp(&self) -> bool {
        matches!(self, Remote::Sftp(_))
    }
}

/// Removes files a pull delivered, when the pull as a whole failed.
fn discard(delivered: &[Delivered], into: &Path) {
    for d in delivered {
        let _ = std::fs::remove_file(into.join(&d.name));
    }
}

/// What `run --pull` did.
#[derive(Debug)]
pub struct PullRun {
    /// Files taken from the sources.
    pub taken: usize,
    /// The run, unless nothing was new and no interrupted run waited to be completed.
    pub report: Option<RunReport>,
}

/// `run --pull`: in the run's locks, takes what the remote sources of `sources` hold that is
/// new into `opts.inbox`, runs the inbox, then remembers and acknowledges what it took. With
/// nothing new and no interrupted run to complete, no run is made.
///
/// SFTP files are looked at twice, `settle` apart (a file still being uploaded changes
/// between the looks and is left for the next job). A source that fails fails the command
/// before any run, with nothing taken from any source (exit 1: the next job tries again).
/// `beginning` is called once a run is certain, just before it starts.
pub fn run_pulled(
    opts: &RunOptions,
    sources: &SourcesFile,
    beginning: &dyn Fn(),
) -> Result<PullRun, PipelineError> {
    let mut remotes = remotes(sources).map_err(PipelineError::Usage)?;
    if remotes.is_empty() {
        return Err(PipelineError::Usage(
            "--pull: the sources config has no [[sftp]] or [[gdrive]] source to pull from".into(),
        ));
    }
    let ws = run::open(opts)?;
    let taken = take_new(
        &mut remotes,
        &opts.inbox,
        &ws.state,
        sources.watch.settle,
        opts.stop.as_deref(),
    )?;
    if taken.is_empty() && ws.state.pending()?.is_empty() {
        tracing::info!(
            sources = remotes.len(),
            "nothing new from the sources; no run"
        );
        return Ok(PullRun {
            taken: 0,
            report: None,
        });
    }
    beginning();
    let result = run::run_in(opts, &ws).and_then(|report| {
        for d in &taken {
            ws.state
                .mark_remote_seen(remotes[d.source].name(), &d.key, &report.run_id)?;
        }
        Ok(report)
    });
    let report = run::published(opts, &ws, result)?;
    drop(ws);
    for d in &taken {
        let remote = &mut remotes[d.source];
        if let Err(e) = remote.acknowledge(d) {
            tracing::warn!(source = %remote.name(), file = %d.name, error = %e, "remote acknowledge failed; the file is remembered and not taken again");
        }
    }
    Ok(PullRun {
        taken: taken.len(),
        report: Some(report),
    })
}

/// One look at every source, then (with SFTP sources) a second `settle` later; the files
/// taken. On a failure every file already taken is removed from `into`.
fn take_new(
    remotes: &mut [Remote],
    into: &Path,
    state: &State,
    settle: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Vec<Delivered>, PipelineError> {
    let mut taken: Vec<Delivered> = Vec::new();
    let looks = if remotes.iter().any(Remote::is_sftp) {
        2
    } else {
        1
    };
    for look in 0..looks {
        if look > 0 {
            let until = Instant::now() + settle;
            while Instant::now() < until {
                if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                    discard(&taken, into);
                    return Err(PipelineError::Io(
                        "stopped on request while pulling; nothing was taken".into(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50).min(settle));
            }
        }
        for (i, remote) in remotes.iter_mut().enumerate() {
            // Drive is looked at once; SFTP's first look only records what is there.
            if look > 0 && !remote.is_sftp() {
                continue;
            }
            match remote.pull(i, into, state, true) {
                Ok(delivered) => {
                    for d in &delivered {
                        tracing::info!(source = %remote.name(), file = %d.name, "pulled");
                    }
                    taken.extend(delivered);
                }
                Err(e) => {
                    discard(&taken, into);
                    return Err(PipelineError::Pull {
                        source_name: remote.name().to_string(),
                        error: e,
                    });
                }
            }
        }
    }
    Ok(taken)
}
