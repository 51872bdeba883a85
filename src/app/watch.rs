//! `dropsync watch`: the daemon that turns a drop folder into runs.
//!
//! File-system events (`notify`, debounced) wake it; a periodic rescan covers the events
//! network drives never send. Remote sources (SFTP) are pulled into the inbox on the schedule.
//! When `settle` says a drop is complete, its files are moved out of the inbox into
//! `<archive>/../processing/<stamp>/` (so late files cannot slip into a run half-written),
//! `run::run` processes them, and each file then moves to `archive/<run_id>/` or, if
//! its entity was quarantined, to `quarantine/<run_id>/` with a `.reason.txt`. A file that
//! repeats the content last processed for its entity is skipped and logged, never run twice
//! (an earlier content coming back is a real change of the full snapshot, and runs). Nothing is deleted.
//! A run that fails for reasons outside the files (e.g. the CRM) leaves them in `processing/`
//! and is retried with backoff, first thing after a restart too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pull::{self, Delivered, Remote};
use crate::app::run::{self, PipelineError, RunOptions};
use crate::config::sources::{self as sources_file, ConfigError, SourcesFile};
use crate::sources::settle::{self, SettleRules, Settler};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("watch folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file watcher: {0}")]
    Notify(String),
    #[error("{0}")]
    Source(String),
}

/// The folders of one tenant's drops, in place of the sources config's `[watch]` ones.
#[derive(Debug, Clone)]
pub struct DropFolders {
    pub inbox: PathBuf,
    pub archive: PathBuf,
    pub quarantine: PathBuf,
}

pub struct WatchOptions {
    pub config: PathBuf,
    /// A tenant's folders (`--tenant`): its sources file keeps settle rules, schedule and
    /// remotes, while where the drops land is the tenants file's to say.
    pub folders: Option<DropFolders>,
    /// The tenant's cluster-wide lock, taken by each run (as the workspace lock is).
    pub cluster: Option<crate::state::cluster_lock::ClusterLock>,
    /// Where the tenant's state is published, fetched and published by each run.
    pub remote: Option<crate::state::remote::RemoteState>,
    /// Where each run stores its files beyond the workspace.
    pub outputs: Option<crate::stage::store::OutputStore>,
    pub recipes: PathBuf,
    pub out: PathBuf,
    /// Process what is ready now (waiting for it to settle) and return instead of watching.
    pub once: bool,
    pub stop: Arc<AtomicBool>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WatchError + '_ {
    move |source| WatchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs the daemon until `stop` is set (or, with `once`, until the folder is drained).
/// Returns the number of runs made.
pub fn watch(opts: &WatchOptions) -> Result<usize, WatchError> {
    let mut cfg: SourcesFile = sources_file::load(&opts.config)?;
    if let Some(f) = &opts.folders {
        cfg.watch.inbox = f.inbox.clone();
        cfg.watch.archive = f.archive.clone();
        cfg.watch.quarantine = f.quarantine.clone();
    }
    let w = &cfg.watch;
    for d in [&w.inbox, &w.archive, &w.quarantine, &processing_root(w)] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    // Fail early on bad recipes, before waiting for any file.
    crate::config::load_dir(&opts.recipes).map_err(PipelineError::from)?;
    let _daemon = crate::state::lock::WorkspaceLock::acquire_named(&opts.out, "watch.lock")
        .map_err(PipelineError::from)?;
    let mut remotes = pull::remotes(&cfg).map_err(WatchError::Source)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer =
        notify_debouncer_full::new_debouncer(Duration::from_millis(300), None, move |_res| {
            let _ = tx.send(());
        })
        .map_err(|e| WatchError::Notify(e.to_string()))?;
    debouncer
        .watch(&w.inbox, notify::RecursiveMode::NonRecursive)
        .map_err(|e| WatchError::Notify(e.to_string()))?;
    tracing::info!(inbox = %w.inbox.display(), remotes = remotes.len(), "watching for drops");

    let rules = SettleRules {
        settle: w.settle,
        quiet: w.quiet,
        marker: w.marker,
    };
    let mut settler = Settler::default();
    let mut runs = 0;
    let mut pending_acks: BTreeMap<String, Delivered> = BTreeMap::new();
    let mut next_pull = chrono::Local::now();
    let mut retry_at: Option<Instant> = None;
    let mut failures = 0u32;
    let mut last_scan = Instant::now() - w.rescan;
    // `--once` with remote sources: a remote file needs two looks before it is taken.
    let mut pulls = 0;
    loop {
        if opts.stop.load(Ordering::SeqCst) {
            tracing::info!("stop requested; watcher exits");
            break;
        }
        // Unfinished batches first (a crash, a CRM outage), with backoff.
        if retry_at.is_none_or(|t| Instant::now() >= t) {
            match resume_pending(opts, &cfg, &mut runs, &mut pending_acks, &mut remotes) {
                Ok(()) => {
                    failures = 0;
                    retry_at = None;
                }
                Err(e @ WatchError::Pipeline(PipelineError::Recipe(_))) => return Err(e),
                Err(WatchError::Pipeline(PipelineError::Stopped { .. })) => break,
                Err(e) => {
                    failures += 1;
                    let wait =
                        Duration::from_secs(5u64 << failures.min(8)).min(Duration::from_secs(3600));
                    tracing::error!(error = %e, retry_in_s = wait.as_secs(), "run failed; files stay in processing/ and will be retried");
                    retry_at = Some(Instant::now() + wait);
                }
            }
        }
        if chrono::Local::now() >= next_pull && !remotes.is_empty() {
            pull_remotes(opts, &cfg, &mut remotes, &mut pending_acks);
            pulls += 1;
            // `--once` looks again after `settle` (an SFTP file is taken at its second look),
            // not at the next scheduled pull, which may be tomorrow night.
            let settle = chrono::Duration::from_std(w.settle).unwrap_or_default();
            next_pull = match opts.once {
                true => chrono::Local::now() + settle,
                false => cfg
                    .schedule
                    .next_after(chrono::Local::now())
                    .unwrap_or_else(|| chrono::Local::now() + chrono::Duration::seconds(60)),
            };
        }
        let now = Instant::now();
        let event = rx.recv_timeout(Duration::from_millis(200)).is_ok();
        // While files are settling the folder is looked at often; otherwise on events and
        // on the rescan period.
        let every = if settler.is_tracking() || opts.once {
            Duration::from_millis(250).min(w.rescan)
        } else {
            w.rescan
        };
        if event || now.duration_since(last_scan) >= every {
            last_scan = now;
            let listing = settle::list(&w.inbox).map_err(io(&w.inbox))?;
            if let Some(ready) = settler.observe(&w.inbox, &listing, Instant::now(), &rules) {
                take_drop(w, &ready)?;
                settler.reset();
                continue;
            }
            let idle = listing.keys().all(|n| crate::sources::is_temporary(n))
                && pending_batches(&cfg)?.is_empty()
                && (remotes.is_empty() || pulls >= 2);
            if opts.once && idle {
                break;
            }
        }
    }
    Ok(runs)
}

fn processing_root(w: &sources_file::WatchSpec) -> PathBuf {
    w.archive
        .parent()
        .map(|p| p.join("processing"))
        .unwrap_or_else(|| PathBuf::from("processing"))
}

fn pending_batches(cfg: &SourcesFile) -> Result<Vec<PathBuf>, WatchError> {
    let root = processing_root(&cfg.watch);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(io(&root))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// Moves a ready drop out of the inbox into its own processing folder (same file system:
/// renames are atomic), so what the run reads cannot change under it.
fn take_drop(w: &sources_file::WatchSpec, ready: &settle::Ready) -> Result<PathBuf, WatchError> {
    let batch =
        processing_root(w).join(chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string());
    std::fs::create_dir_all(&batch).map_err(io(&batch))?;
    for f in ready.files.iter().chain(ready.marker.iter()) {
        let name = f.file_name().expect("listed files have names");
        std::fs::rename(f, batch.join(name)).map_err(io(f))?;
    }
    tracing::info!(files = ready.files.len(), batch = %batch.display(), "drop settled; taken for processing");
    Ok(batch)
}

/// Processes every batch waiting in `processing/`, oldest first.
fn resume_pending(
    opts: &WatchOptions,
    cfg: &SourcesFile,
    runs: &mut usize,
    acks: &mut BTreeMap<String, Delivered>,
    remotes: &mut [Remote],
) -> Result<(), WatchError> {
    for batch in pending_batches(cfg)? {
        process_batch(opts, cfg, &batch, runs)?;
        // Remote files of this batch can now be acknowledged (moved to processed/).
        let names: Vec<String> = acks.keys().cloned().collect();
        for name in names {
            if archived(cfg, &name) {
                let pulled = acks.remove(&name).expect("key listed");
                let remote = &mut remotes[pulled.source];
                if let Err(e) = remote.acknowledge(&pulled) {
                    tracing::warn!(source = %remote.name(), file = %name, error = %e, "remote acknowledge failed; it will be skipped by hash next time");
                }
            }
        }
    }
    Ok(())
}

fn archived(cfg: &SourcesFile, name: &str) -> bool {
    [&cfg.watch.archive, &cfg.watch.quarantine]
        .iter()
        .any(|root| {
            std::fs::read_dir(root)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .any(|e| e.path().join(name).exists())
                })
                .unwrap_or(false)
        })
}

fn process_batch(
    opts: &WatchOptions,
    cfg: &SourcesFile,
    batch: &Path,
    runs: &mut usize,
) -> Result<(), WatchError> {
    let state = State::open(&opts.out).map_err(PipelineError::from)?;
    // Which entity each file is (as the run will see it): a file repeating the content last
    // processed for its entity is skipped, said and kept; an earlier content is a change.
    let recipes = crate::config::load_dir(&opts.recipes).map_err(PipelineError::from)?;
    let (entity_files, _) =
        crate::sources::scan_inbox(batch, &recipes).map_err(PipelineError::from)?;
    let entity_of = |name: &str| {
        entity_files
            .iter()
            .find(|f| {
                f.path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy() == name)
            })
            .map(|f| f.entity.clone())
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(batch)
        .map_err(io(batch))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut hashes = BTreeMap::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(io(f))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.to_lowercase().ends_with(".done") {
            continue;
        }
        let entity = entity_of(&name);
        let last = match &entity {
            Some(e) => state.last_content(e).map_err(PipelineError::from)?,
            None => None,
        };
        if let Some((_, run_id)) = last.filter(|(h, _)| *h == hash) {
            let dest = cfg.watch.archive.join("skipped").join(&run_id);
            std::fs::create_dir_all(&dest).map_err(io(&dest))?;
            std::fs::rename(f, dest.join(&name)).map_err(io(f))?;
            tracing::warn!(file = %name, run_id = %run_id, entity = ?entity, "same content as the last processed for this entity; skipped, not run twice");
            continue;
        }
        hashes.insert(name, hash);
    }
    drop(state);
    if hashes.is_empty() {
        move_all(batch, &cfg.watch.archive.join("skipped"))?;
        let _ = std::fs::remove_dir(batch);
        return Ok(());
    }
    let result = run::run(&RunOptions {
        recipes: opts.recipes.clone(),
        inbox: batch.to_path_buf(),
        out: opts.out.clone(),
        dry_run: false,
        full: false,
        progress: false,
        stop: Some(opts.stop.clone()),
        cluster: opts.cluster.clone(),
        remote: opts.remote.clone(),
        outputs: opts.outputs.clone(),
    });
    // The same policy as `dropsync run`: failed runs alert too (each failed attempt; the
    // retries back off).
    crate::app::alerts::after_run(&recipes.pipeline.alerts, result.as_ref());
    let report = result?;
    *runs += 1;
    let state = State::open(&opts.out).map_err(PipelineError::from)?;
    let archive = cfg.watch.archive.join(&report.run_id);
    let quarantine = cfg.watch.quarantine.join(&report.run_id);
    for (name, hash) in &hashes {
        let reason = report
            .entities
            .iter()
            .find(|(_, s)| {
                s.file.as_deref() == Some(name.as_str())
                    && s.status == crate::model::EntityStatus::Quarantined
            })
            .and_then(|(_, s)| s.reason.clone());
        let (dest, status) = match &reason {
            Some(_) => (&quarantine, "quarantined"),
            None => (&archive, "processed"),
        };
        std::fs::create_dir_all(dest).map_err(io(dest))?;
        let from = batch.join(name);
        std::fs::rename(&from, dest.join(name)).map_err(io(&from))?;
        if let Some(r) = reason {
            let rf = dest.join(format!("{name}.reason.txt"));
            std::fs::write(&rf, format!("{r}\n")).map_err(io(&rf))?;
        }
        state
            .mark_processed(hash, name, &report.run_id, status)
            .map_err(PipelineError::from)?;
        if let Some(e) = entity_of(name) {
            state
                .set_last_content(&e, hash, &report.run_id)
                .map_err(PipelineError::from)?;
        }
    }
    move_all(batch, &archive)?;
    let _ = std::fs::remove_dir(batch);
    tracing::info!(run_id = %report.run_id, status = report.status.as_str(), "drop processed");
    Ok(())
}

/// Moves whatever is left in `from` (markers, files no recipe wanted) into `to`.
fn move_all(from: &Path, to: &Path) -> Result<(), WatchError> {
    for e in std::fs::read_dir(from).map_err(io(from))?.flatten() {
        std::fs::create_dir_all(to).map_err(io(to))?;
        std::fs::rename(e.path(), to.join(e.file_name())).map_err(io(&e.path()))?;
    }
    Ok(())
}

/// Pulls every remote source into the inbox. A failing source is logged and retried on the
/// next schedule; it never stops the others.
fn pull_remotes(
    opts: &WatchOptions,
    cfg: &SourcesFile,
    remotes: &mut [Remote],
    acks: &mut BTreeMap<String, Delivered>,
) {
    let Ok(state) = State::open(&opts.out) else {
        return;
    };
    for (i, src) in remotes.iter_mut().enumerate() {
        match src.pull(i, &cfg.watch.inbox, &state, false) {
            Ok(pulled) => {
                for d in pulled {
                    let _ = state.mark_remote_seen(src.name(), &d.key, "pulled");
                    tracing::info!(source = %src.name(), file = %d.name, "pulled");
                    acks.insert(d.name.clone(), d);
                }
            }
            Err(e) => {
                tracing::error!(source = %src.name(), error = %e, "pull failed; retried on the next schedule")
            }
        }
    }
}
