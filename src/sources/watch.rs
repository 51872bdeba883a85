//! `dropsync watch`: the daemon that turns a drop folder into runs.
//!
//! File-system events (`notify`, debounced) wake it; a periodic rescan covers the events
//! network drives never send. Remote sources (SFTP) are pulled into the inbox on the schedule.
//! When `settle` says a drop is complete, its files are moved out of the inbox into
//! `<archive>/../processing/<stamp>/` (so late files cannot slip into a run half-written),
//! `pipeline::run` processes them, and each file then moves to `archive/<run_id>/` or, if
//! its entity was quarantined, to `quarantine/<run_id>/` with a `.reason.txt`. A file whose
//! content was already processed is skipped and logged, never run twice. Nothing is deleted.
//! A run that fails for reasons outside the files (e.g. the CRM) leaves them in `processing/`
//! and is retried with backoff, first thing after a restart too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{self, ConfigError, SourcesFile};
use super::settle::{self, SettleRules, Settler};
use super::sftp::{Fetched, SftpSource};
use crate::pipeline::{self, PipelineError, RunOptions};
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
}

pub struct WatchOptions {
    pub config: PathBuf,
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
    let cfg: SourcesFile = config::load(&opts.config)?;
    let w = &cfg.watch;
    for d in [&w.inbox, &w.archive, &w.quarantine, &processing_root(w)] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    // Fail early on bad recipes, before waiting for any file.
    crate::recipe::load_dir(&opts.recipes).map_err(PipelineError::from)?;
    let _daemon = crate::state::lock::WorkspaceLock::acquire_named(&opts.out, "watch.lock")
        .map_err(PipelineError::from)?;
    let mut remotes: Vec<SftpSource> = Vec::new();
    for s in &cfg.sftp {
        match SftpSource::new(s.clone()) {
            Ok(src) => remotes.push(src),
            Err(e) => {
                return Err(WatchError::Notify(format!("source `{}`: {e}", s.name)));
            }
        }
    }
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
    let mut pending_acks: BTreeMap<String, (usize, Fetched)> = BTreeMap::new();
    let mut next_pull = chrono::Local::now();
    let mut retry_at: Option<Instant> = None;
    let mut failures = 0u32;
    let mut last_scan = Instant::now() - w.rescan;
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
            next_pull = cfg
                .schedule
                .next_after(chrono::Local::now())
                .unwrap_or_else(|| chrono::Local::now() + chrono::Duration::seconds(60));
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
            let idle =
                listing.keys().all(|n| super::is_temporary(n)) && pending_batches(&cfg)?.is_empty();
            if opts.once && idle {
                break;
            }
        }
    }
    Ok(runs)
}

fn processing_root(w: &config::WatchSpec) -> PathBuf {
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
fn take_drop(w: &config::WatchSpec, ready: &settle::Ready) -> Result<PathBuf, WatchError> {
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
    acks: &mut BTreeMap<String, (usize, Fetched)>,
    remotes: &mut [SftpSource],
) -> Result<(), WatchError> {
    for batch in pending_batches(cfg)? {
        process_batch(opts, cfg, &batch, runs)?;
        // Remote files of this batch can now be acknowledged (moved to processed/).
        let names: Vec<String> = acks.keys().cloned().collect();
        for name in names {
            if archived(cfg, &name) {
                let (i, fetched) = acks.remove(&name).expect("key listed");
                if let Err(e) = remotes[i].acknowledge(std::slice::from_ref(&fetched)) {
                    tracing::warn!(source = %remotes[i].config().name, file = %name, error = %e, "remote acknowledge failed; it will be skipped by hash next time");
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
    // Content already processed: skip it, say so, keep it.
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
        if let Some((run_id, status)) = state.processed(&hash).map_err(PipelineError::from)? {
            let dest = cfg.watch.archive.join("skipped").join(&run_id);
            std::fs::create_dir_all(&dest).map_err(io(&dest))?;
            std::fs::rename(f, dest.join(&name)).map_err(io(f))?;
            tracing::warn!(file = %name, run_id = %run_id, status = %status, "same content already processed; skipped, not run twice");
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
    let report = pipeline::run(&RunOptions {
        recipes: opts.recipes.clone(),
        inbox: batch.to_path_buf(),
        out: opts.out.clone(),
        dry_run: false,
        progress: false,
        stop: Some(opts.stop.clone()),
    })?;
    *runs += 1;
    let state = State::open(&opts.out).map_err(PipelineError::from)?;
    let archive = cfg.watch.archive.join(&report.run_id);
    let quarantine = cfg.watch.quarantine.join(&report.run_id);
    for (name, hash) in &hashes {
        let reason = report
            .entities
            .iter()
            .find(|(_, s)| s.file.as_deref() == Some(name.as_str()) && s.status == "quarantined")
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
    remotes: &mut [SftpSource],
    acks: &mut BTreeMap<String, (usize, Fetched)>,
) {
    let Ok(state) = State::open(&opts.out) else {
        return;
    };
    for (i, src) in remotes.iter_mut().enumerate() {
        let name = src.config().name.clone();
        let remembered = |file: &str, size: u64, mtime: u64| {
            state.remote_seen(&name, &format!("{file}|{size}|{mtime}"))
        };
        match src.poll(&cfg.watch.inbox, &remembered) {
            Ok(fetched) => {
                for f in fetched {
                    let key = format!("{}|{}|{}", f.name, f.size, f.mtime);
                    let _ = state.mark_remote_seen(&name, &key, "pulled");
                    tracing::info!(source = %name, file = %f.name, "pulled");
                    acks.insert(f.name.clone(), (i, f));
                }
            }
            Err(e) => {
                tracing::error!(source = %name, error = %e, "pull failed; retried on the next schedule")
            }
        }
    }
}
