//! One run, start to end, told as the pipeline: each entity (parents first, so children
//! check their references against them) is read, transformed, validated and diffed, the
//! delete guard deciding on its deletes, then journaled and handed to staging's thread, and
//! its rows leave memory before the next entity is read; then the journal commits, the CRM
//! is written from it while staging commits beside it, and the run is recorded. The order of
//! the durable steps is what makes a
//! run atomic: nothing touches the CRM before the journal commits, the CRM is written with
//! idempotent upserts, and an entity's snapshot advances only after its CRM writes committed,
//! so a run killed anywhere is completed or redone by the next one with the same result and
//! nothing doubled.

use std::sync::mpsc::SyncSender;
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use polars::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde_json::json;

use super::apply::{self, recover};
use super::meter::Meter;
use super::prefetch::{Fetched, ReadAhead};
use super::quarantine::{file_name, quarantine};
use super::records;
use super::reuse;
use super::staging::{self, ToStaging};
use crate::config::{self, Recipe, Recipes};
use crate::diff::{diff_entity, ChangeSet, Diffed};
use crate::model::{EntityStatus, EntitySummary, FileStatus, Issue, RunState};
use crate::read::{read_loaded, Loaded, RawTable, ReadError};
use crate::sources::{self, EntityFile};
use crate::stage::staging_db::Staging;
use crate::state::cluster_lock::ClusterLockGuard;
use crate::state::journal::JournaledEntity;
use crate::state::{EntityInputs, State};
use crate::support::failpoint::failpoint;
use crate::support::memory::peak_rss_mb;
use crate::support::progress::{Progress, Stage};
use crate::transform::{Plan, ID};
use crate::validate::{self, Counts, RefSets, Validated};

pub use super::approve::approve;
use super::error::frame_err;
pub use super::error::PipelineError;
pub use super::work::RunOptions;
use super::work::{without_hash, EntityWork};
pub use crate::model::{RunReport, RunStatus, Timings};

use crate::model::{ChangeSamples, FieldChange, SampleRow, UpdatedSample};

fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt =
        blake3::hash(format!("{:?}{}", now.timestamp_nanos_opt(), std::process::id()).as_bytes());
    format!("{}-{}", now.format("%Y%m%dT%H%M%SZ"), &salt.to_hex()[..6])
}

/// One run of the drop in `opts.inbox`. What interrupted runs had journaled is completed
/// first, so this run diffs against snapshots that describe the CRM.
pub fn run(opts: &RunOptions) -> Result<RunReport, PipelineError> {
    let ws = open(opts)?;
    let result = run_in(opts, &ws);
    published(opts, &ws, result)
}

/// A workspace opened for a run: its recipes read, the tenant's cluster lock and the
/// workspace lock held (a dry run holds none), the state fetched (`[state]`) and open.
/// Dropping it releases the locks.
pub struct Opened {
    recipes: Recipes,
    cluster: Option<ClusterLockGuard>,
    _lock: Option<crate::state::lock::WorkspaceLock>,
    pub state: State,
    started: Instant,
}

/// Reads the recipes, takes the locks and opens the state, for [`run_in`].
pub fn open(opts: &RunOptions) -> Result<Opened, PipelineError> {
    let started = Instant::now();
    let recipes = config::load_dir(&opts.recipes)?;
    // A dry run creates nothing: it reads the workspace if there is one.
    if opts.dry_run {
        let state = State::open_for_plan(&opts.out)?;
        return Ok(Opened {
            recipes,
            cluster: None,
            _lock: None,
            state,
            started,
        });
    }
    // The tenant's cluster-wide lock first: a worker on another machine may hold it while
    // this machine's workspace lock is free.
    let cluster = opts.cluster.as_ref().map(|c| c.acquire()).transpose()?;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| PipelineError::Io(format!("cannot create {}: {e}", opts.out.display())))?;
    let lock = crate::state::lock::WorkspaceLock::acquire(&opts.out)?;
    if let Some(remote) = &opts.remote {
        if recipes.pipeline.target.kind == crate::config::specs::TargetKind::Sqlite {
            return Err(PipelineError::Usage("[state] keeps a tenant's state in PostgreSQL, but its CRM would be crm.sqlite on this worker's disk: set [target] to postgres or rest".into()));
        }
        remote.hydrate(&opts.out)?;
    }
    let state = State::open(&opts.out)?;
    Ok(Opened {
        recipes,
        cluster,
        _lock: Some(lock),
        state,
        started,
    })
}

/// The run itself, in an opened workspace: the inbox as it is now, interrupted runs
/// completed first. A failed run is recorded as failed; nothing is published here (see
/// [`published`]).
pub fn run_in(opts: &RunOptions, ws: &Opened) -> Result<RunReport, PipelineError> {
    let (recipes, state) = (&ws.recipes, &ws.state);
    let (files, unmatched) = sources::scan_inbox(&opts.inbox, recipes)?;
    for u in &unmatched {
        tracing::warn!(file = %u.display(), "no recipe takes this file; left alone");
    }
    let run_id = new_run_id();
    if opts.dry_run {
        if !state.pending()?.is_empty() {
            tracing::warn!("an interrupted run left CRM writes to complete; this plan compares with the snapshots before them (the next real run completes them first)");
        }
    } else {
        recover(recipes, state, &opts.out, &run_id)?;
        let stale = state.begin_run(&run_id, &crate::state::now())?;
        if stale > 0 {
            tracing::warn!(
                stale,
                "earlier run(s) were interrupted; this run redoes their work"
            );
        }
    }
    tracing::info!(run_id = %run_id, files = files.len(), "run started");
    let result = process(
        opts,
        recipes,
        &files,
        state,
        &run_id,
        ws.started,
        ws.cluster.as_ref(),
    );
    // The run's files beyond the workspace, once it ended (held runs too: analysts look at
    // what waits for approval).
    let result = match (result, &opts.outputs) {
        (Ok(report), Some(store)) if !opts.dry_run => store
            .store_run(&opts.out, &report.run_id, &report.to_json().to_string())
            .map(|_| report)
            .map_err(|error| PipelineError::Outputs {
                run_id: run_id.clone(),
                error,
            }),
        (result, _) => result,
    };
    if let Err(e) = &result {
        if !opts.dry_run
            && !matches!(
                e,
                PipelineError::Stopped { .. } | PipelineError::Outputs { .. }
            )
        {
            // The status page and `runs` must say why; the next run redoes the work anyway.
            if let Err(db) =
                state.finish_run(&run_id, RunState::Failed, &json!({"error": e.to_string()}))
            {
                tracing::warn!(error = %db, "could not record the failed run");
            }
        }
    }
    result
}

/// `result` once the state is published (`[state]`), failed runs included: the run's
/// record and whatever else the state gained since its journal's publication.
pub fn published(
    opts: &RunOptions,
    ws: &Opened,
    result: Result<RunReport, PipelineError>,
) -> Result<RunReport, PipelineError> {
    match (&opts.remote, opts.dry_run) {
        (Some(remote), false) => match (remote.publish(&opts.out, &ws.state.db), result) {
            (Ok(_), result) => result,
            // The journal's publication stands: the next worker completes the run.
            (Err(e), Ok(_)) => Err(e.into()),
            (Err(e), Err(first)) => {
                tracing::warn!(error = %e, "state not published after the failed run");
                Err(first)
            }
        },
        _ => result,
    }
}

/// A run after it was registered: every entity through the stages, then the journal, the
/// CRM (with staging on its own thread) and the run's record.
fn process(
    opts: &RunOptions,
    recipes: &Recipes,
    files: &[EntityFile],
    state: &State,
    run_id: &str,
    started: Instant,
    cluster: Option<&ClusterLockGuard>,
) -> Result<RunReport, PipelineError> {
    let progress = Progress::new(opts.progress, files.len());
    let mut so_far = SoFar::new(run_id, opts.dry_run);
    let staging_path = opts.out.join("staging.sqlite");
    let recorded = if opts.full {
        HashMap::default()
    } else {
        recorded_file_hashes(state, recipes)?
    };
    let delta_share = recipes.pipeline.snapshots.max_delta_share;
    let staged_by_target = recipes.pipeline.target.stages_rows();
    let mut sheets = staging::SheetRows::new(recipes);
    let mut journaled = Vec::new();
    std::thread::scope(|scope| -> Result<RunReport, PipelineError> {
        // Staging syncs on its own thread as entities are diffed (see `staging`); a bounded
        // hand-over, so a slow disk holds back the run rather than piling up entities' rows.
        let (to_staging, incoming) = std::sync::mpsc::sync_channel(0);
        // Opened (its tables created) before the first entity: the reuse check reads the
        // last pass's rejects from it meanwhile.
        let staging = match opts.dry_run {
            true => None,
            false => Some(Staging::open(&staging_path)?),
        };
        let staging = staging.map(|db| {
            let progress = &progress;
            scope.spawn(move || {
                staging::stage_as_diffed(opts, run_id, recipes, db, incoming, progress)
            })
        });
        let mut ahead = ReadAhead::new(recorded);
        for (k, recipe) in recipes.entities.iter().enumerate() {
            let entity = recipe.entity.as_str();
            stop_if_requested(opts, state, run_id, entity)?;
            let Some(file) = file_for(files, entity) else {
                so_far.keep_last_state(state, entity, no_file(), run_id)?;
                continue;
            };
            // The bytes are read and hashed once; parsing them waits until they are needed
            // (see `prefetch`: the file may have been read, and parsed, ahead).
            let (fetched, secs) = ahead.take(entity, &file.path);
            so_far.report.timings.read += secs;
            if let Some((next, path)) = next_file(recipes, files, k) {
                ahead.start(scope, next, path);
            }
            let (file_hash, size, source) = match fetched {
                Fetched::Loaded(Ok(loaded)) => (
                    loaded.hash.clone(),
                    loaded.bytes.len() as u64,
                    Source::Bytes(loaded),
                ),
                Fetched::Parsed { hash, bytes, raw } => (hash, bytes, Source::Parsed(raw)),
                Fetched::Loaded(Err(e)) => {
                    so_far.quarantined(state, opts, run_id, recipe, &file.path, &e)?;
                    continue;
                }
            };
            let name = file_name(&file.path);
            let mut inputs = Inputs {
                file_name: name.clone(),
                encoding: "",
                file_hash,
                recipe_key: reuse::recipe_key(recipes, recipe),
                parents_key: reuse::parents_key(recipe, &so_far.fingerprints),
                drift: None,
            };
            let reused = if opts.full {
                None
            } else {
                reuse::reusable(
                    state,
                    &staging_path,
                    recipe,
                    &inputs.file_hash,
                    &inputs.recipe_key,
                    &inputs.parents_key,
                )?
            };
            if let Some(reused) = reused {
                failpoint(&format!("reuse:{entity}"));
                if !opts.dry_run {
                    let s = &reused.summary;
                    state.record_file(
                        run_id,
                        entity,
                        &name,
                        &inputs.file_hash,
                        size,
                        s.encoding.as_deref(),
                        FileStatus::Read,
                        None,
                    )?;
                }
                tracing::info!(entity, since = %reused.since, "file, recipe and parents unchanged: last pass stands");
                so_far.reuse(entity, reused);
                continue;
            }
            // From here this entity's CRM and snapshot may change: its record no longer holds.
            if !opts.dry_run {
                state.forget_entity_inputs(entity)?;
            }
            let prev = state.accepted_snapshot(recipe)?;
            let meter = Meter::new(&progress, run_id, entity);
            let t = &mut so_far.report.timings;
            let mut raw = match meter.timed(&mut t.read, Stage::Read, || match source {
                Source::Bytes(loaded) => read_loaded(&file.path, loaded, recipe),
                Source::Parsed(raw) => raw,
            }) {
                Ok(raw) => raw,
                Err(e) => {
                    so_far.quarantined(state, opts, run_id, recipe, &file.path, &e)?;
                    continue;
                }
            };
            inputs.drift = super::drift::drift_of(recipe, &raw.header, raw.header_complete);
            if let Some(d) = &inputs.drift {
                tracing::warn!(entity, recipe = %recipe.file.display(), drift = %d, "the export's columns differ from what the recipe reads");
            }
            if let Some(e) = super::drift::stops(recipe, &file.path, inputs.drift.as_ref()) {
                so_far.quarantined(state, opts, run_id, recipe, &file.path, &e)?;
                continue;
            }
            record_read(opts, state, run_id, entity, &name, &raw)?;
            inputs.encoding = raw.encoding;
            // A full recomputation types every record; otherwise those of clean snapshot rows
            // are taken from the snapshot (see `records`).
            let last = prev.as_ref().filter(|_| !opts.full);
            let typed = meter.frames(&mut t.transform, Stage::Transform, || {
                transform(recipe, &mut raw, last, &inputs.recipe_key)
            })?;
            let reused_records = typed.reused;
            if reused_records > 0 {
                failpoint(&format!("records:{entity}"));
            }
            let typed = typed.frame;
            so_far.read_parents(state, recipe, opts.dry_run)?;
            let t = &mut so_far.report.timings;
            let valid = meter.frames(&mut t.validate, Stage::Validate, || {
                validate(recipe, &name, typed, raw, &so_far.refs)
            })?;
            let diffed = meter.frames(&mut t.diff, Stage::Diff, || {
                diff_entity(recipe, &valid, prev.as_ref(), run_id)
            })?;
            let work = so_far.add(recipe, prev.as_ref(), valid, diffed, inputs, reused_records);
            if opts.dry_run {
                continue;
            }
            // The entity leaves memory here: its rows to staging's thread and its sheet's
            // first rows kept, its writes and next snapshot to the journal.
            let rows = without_hash(&work.accepted).map_err(frame_err(run_id, entity))?;
            sheets
                .keep(entity, &rows)
                .map_err(frame_err(run_id, entity))?;
            // A send fails only when staging's thread has failed; its error is reported once
            // the CRM committed, as any staging failure.
            let _ = to_staging.send(ToStaging::Entity {
                recipe,
                rows: rows.clone(),
            });
            let t = Instant::now();
            journaled.push(apply::journal_entity(
                state,
                run_id,
                work,
                rows,
                delta_share,
                staged_by_target,
            )?);
            so_far.report.timings.snapshot += t.elapsed().as_secs_f64();
        }

        let Some(staging) = staging else {
            let mut report = so_far.into_report();
            seal(&mut report, started);
            progress.finish();
            return Ok(report);
        };
        let cx = Ending {
            opts,
            recipes,
            state,
            run_id,
            progress: &progress,
            started,
            cluster,
        };
        cx.complete(so_far, journaled, sheets, to_staging, staging)
    })
}

/// What the run's end needs beside what the entities came to.
struct Ending<'a> {
    opts: &'a RunOptions,
    recipes: &'a Recipes,
    state: &'a State,
    run_id: &'a str,
    progress: &'a Progress,
    started: Instant,
    /// The tenant's cluster-wide lock, checked still held before the point of no return.
    cluster: Option<&'a ClusterLockGuard>,
}

impl Ending<'_> {
    /// The run after its last entity: the journal committed, the CRM written while staging
    /// commits and writes the workbook on its thread, the run recorded.
    fn complete(
        &self,
        mut so_far: SoFar,
        journaled: Vec<JournaledEntity>,
        sheets: staging::SheetRows,
        to_staging: SyncSender<ToStaging>,
        staging: ScopedJoinHandle<Result<staging::Staged, PipelineError>>,
    ) -> Result<RunReport, PipelineError> {
        let Ending {
            opts,
            recipes,
            state,
            run_id,
            progress,
            started,
            cluster,
        } = *self;
        let inputs = std::mem::take(&mut so_far.inputs);
        let mut report = so_far.into_report();
        let sheets = sheets.finish(recipes, state, &report, &opts.out)?;
        // The journal is the point of no return: a run whose cluster lock was lost meanwhile
        // (its PostgreSQL session ended) may no longer be alone, and stops before it.
        failpoint("before-journal-commit");
        if let Some(lock) = cluster {
            lock.ensure_held()?;
        }
        let t = Instant::now();
        let journal = apply::commit_journal(state, run_id, journaled, &report)?;
        // Published before the first CRM write: whoever runs next, on any machine, finds the
        // journal and keeps its promise.
        if let Some(remote) = &opts.remote {
            remote.publish(&opts.out, &state.db)?;
        }
        failpoint("journal-published");
        report.timings.snapshot += t.elapsed().as_secs_f64();
        // Staging commits and writes the workbook on its thread while this one writes the
        // CRM: different files, no shared connection, both cores busy.
        let _ = to_staging.send(ToStaging::Commit {
            report: Box::new(report.clone()),
            sheets: sheets.clone(),
        });
        drop(to_staging);
        let applied = apply::apply_run(opts, recipes, run_id, state, &journal, progress);
        let staged = staging.join();
        let applied = applied?;
        let mut staged = staging::after_commit(run_id, staged)?;
        report.timings.stage_sqlite = staged.sqlite_secs;
        report.timings.stage_xlsx = staged.xlsx_secs;
        report.timings.crm = applied.crm_secs;
        report.timings.snapshot += applied.snapshot_secs;
        report.crm_rows_written = applied.written;
        add_refused(&mut report, &mut staged.db, run_id, applied.issues)?;
        staged.db.write_run(run_id, &report.entities)?;
        // The spreadsheet follows accepted runs only: published once the CRM committed, with the
        // CRM's refusals among the rejects. Its failure is the analysts' problem, not the CRM's:
        // a warning and a line in the summary, never a failed run.
        let gsheets = recipes.pipeline.staging.gsheets.as_ref();
        if let (Some(spec), Some(frames)) = (gsheets, sheets.as_deref()) {
            let t = Instant::now();
            report.gsheets = Some(staging::publish_sheets(recipes, spec, frames, &report));
            report.timings.gsheets = t.elapsed().as_secs_f64();
        }
        seal(&mut report, started);
        state.finish_run(run_id, report.status.into(), &report.to_json())?;
        record_inputs(state, run_id, &report, inputs)?;
        progress.finish();
        tracing::info!(run_id = %run_id, status = report.status.as_str(), crm_rows = report.crm_rows_written, seconds = report.timings.total, "run finished");
        Ok(report)
    }
}

/// What the entities so far came to: the run's report, the IDs each entity's children may
/// reference, and the work that waits for the journal.
struct SoFar {
    report: RunReport,
    refs: RefSets,
    /// Per entity so far, the fingerprint of the IDs in `refs` (or that would be).
    fingerprints: HashMap<String, u64>,
    /// Reused entities whose IDs were not read yet, with the IDs their pass rejected.
    unread: HashMap<String, HashSet<String>>,
    /// What each fully processed entity was computed from, recorded once the run ends well.
    inputs: Vec<(String, EntityInputs)>,
}

/// The file an entity's pass reads, and what else the pass is computed from (see `reuse`).
struct Inputs {
    file_name: String,
    /// As the reader found it; known once the file is parsed.
    encoding: &'static str,
    file_hash: String,
    recipe_key: String,
    parents_key: String,
    /// How the file's columns differ from the recipe's, known once it is read.
    drift: Option<crate::model::Drift>,
}

impl SoFar {
    fn new(run_id: &str, dry_run: bool) -> SoFar {
        SoFar {
            report: RunReport {
                run_id: run_id.to_string(),
                status: RunStatus::Ok,
                dry_run,
                entities: Vec::new(),
                samples: Vec::new(),
                issues: Vec::new(),
                timings: Timings::default(),
                crm_rows_written: 0,
                peak_rss_mb: 0.0,
                gsheets: None,
            },
            refs: RefSets::default(),
            fingerprints: HashMap::default(),
            unread: HashMap::default(),
            inputs: Vec::new(),
        }
    }

    /// The run's report, `held` when the guard held any entity's deletes (an entity whose
    /// last pass stands held none: such a pass is never recorded).
    fn into_report(self) -> RunReport {
        let mut report = self.report;
        let held = report
            .entities
            .iter()
            .any(|(_, s)| s.status == EntityStatus::Held);
        report.status = if held { RunStatus::Held } else { RunStatus::Ok };
        report
    }

    /// An entity without new rows this run (no file, or an unreadable one) keeps its last
    /// accepted state: children check their references against it.
    fn keep_last_state(
        &mut self,
        state: &State,
        entity: &str,
        summary: EntitySummary,
        run_id: &str,
    ) -> Result<(), PipelineError> {
        let ids = state.snapshot_ids(entity).map_err(|e| {
            tracing::error!(entity, run_id, "the last snapshot's IDs cannot be read");
            PipelineError::from(e)
        })?;
        let ids = validate::id_keys(ids.unwrap_or_default().iter().map(String::as_str));
        self.fingerprints
            .insert(entity.to_string(), validate::ids_fingerprint(&ids));
        self.refs.insert(entity.to_string(), ids);
        self.report.entities.push((entity.to_string(), summary));
        Ok(())
    }

    /// An entity whose file cannot be read: the file is quarantined with its reason (and
    /// its drift, when its columns are why) and the entity keeps its last accepted state.
    fn quarantined(
        &mut self,
        state: &State,
        opts: &RunOptions,
        run_id: &str,
        recipe: &Recipe,
        path: &std::path::Path,
        e: &ReadError,
    ) -> Result<(), PipelineError> {
        let entity = recipe.entity.as_str();
        let (summary, issue) = quarantine(state, opts, run_id, entity, path, e)?;
        self.report.issues.push(issue);
        // A file set aside for its columns says which changed and how to fix the recipe.
        let drift = super::drift::drift_of_error(recipe, e);
        let summary = EntitySummary { drift, ..summary };
        self.keep_last_state(state, entity, summary, run_id)
    }

    /// An entity whose last full pass stands (see `reuse`): its line, its rejects, its IDs.
    fn reuse(&mut self, entity: &str, reused: reuse::Reused) {
        self.fingerprints
            .insert(entity.to_string(), reused.ids_hash);
        self.unread.insert(entity.to_string(), reused.rejected);
        self.report
            .entities
            .push((entity.to_string(), reused.summary));
        self.report.issues.extend(reused.issues);
        self.report
            .samples
            .push((entity.to_string(), ChangeSamples::default()));
    }

    /// Reads the IDs of `recipe`'s reused parents, which its validation checks against.
    fn read_parents(
        &mut self,
        state: &State,
        recipe: &Recipe,
        dry_run: bool,
    ) -> Result<(), PipelineError> {
        for parent in reuse::parents(recipe) {
            if let Some(rejected) = self.unread.remove(parent) {
                let ids = reuse::offered_ids(state, parent, &rejected)?;
                let fingerprint = validate::ids_fingerprint(&ids);
                if self.fingerprints.get(parent) != Some(&fingerprint) {
                    // Not what its last pass offered: checked against what is there, and
                    // never reused again before a full pass.
                    tracing::warn!(
                        entity = parent,
                        "reused entity's IDs differ from its record; it gets a full pass next run"
                    );
                    if !dry_run {
                        state.forget_entity_inputs(parent)?;
                    }
                }
                self.refs.insert(parent.to_string(), ids);
            }
        }
        Ok(())
    }

    /// An entity through the diff: its line and samples in the report, its rejects, the IDs
    /// its children may reference; returns its work for the journal and staging.
    fn add<'r>(
        &mut self,
        recipe: &'r Recipe,
        prev: Option<&DataFrame>,
        valid: Validated,
        diffed: Diffed,
        inputs: Inputs,
        reused_records: usize,
    ) -> EntityWork<'r> {
        let file_name = inputs.file_name;
        let encoding = inputs.encoding;
        let entity = recipe.entity.clone();
        let mut ref_ids = valid.accepted_ids;
        // Held rows still exist until approval: children's references to them hold, so
        // nothing about them (not even a child's optional link) changes now.
        ref_ids.extend(diffed.verdict.held.iter().map(|id| validate::id_key(id)));
        let ids_hash = validate::ids_fingerprint(&ref_ids);
        self.fingerprints.insert(entity.clone(), ids_hash);
        self.refs.insert(entity.clone(), ref_ids);
        let summary = EntitySummary {
            reused_records,
            drift: inputs.drift,
            ..summary_of(&file_name, encoding, &valid.counts, &diffed)
        };
        self.inputs.push((
            entity.clone(),
            EntityInputs {
                file_hash: inputs.file_hash,
                recipe_key: inputs.recipe_key,
                parents_key: inputs.parents_key,
                ids_hash,
                snapshot_stamp: String::new(),
                run_id: String::new(),
                summary: summary.clone(),
            },
        ));
        self.report.entities.push((entity.clone(), summary));
        self.report.issues.extend(valid.issues);
        let sample = samples(&diffed.accepted, prev, &diffed.changes);
        self.report.samples.push((entity, sample));
        EntityWork {
            recipe,
            file_name,
            lines: valid.lines,
            had_snapshot: prev.is_some(),
            accepted: diffed.accepted,
            changes: diffed.changes,
            deletes: diffed.verdict.deletes,
            held: diffed.verdict.held,
            snapshot: diffed.snapshot,
            changed_ids: diffed.changed_ids,
        }
    }
}

/// Once the run has ended well, each entity it fully processed may be stood on next time
/// (if nothing was held or refused): what it was computed from is recorded, with its final
/// line of the summary.
fn record_inputs(
    state: &State,
    run_id: &str,
    report: &RunReport,
    inputs: Vec<(String, EntityInputs)>,
) -> Result<(), PipelineError> {
    failpoint("before-record-inputs");
    for (entity, mut recorded) in inputs {
        let Some((_, summary)) = report.entities.iter().find(|(e, _)| *e == entity) else {
            continue;
        };
        if !reuse::may_record(summary) {
            continue;
        }
        recorded.run_id = run_id.to_string();
        recorded.summary = summary.clone();
        let Some(stamp) = state.snapshot_stamp(&entity) else {
            continue;
        };
        recorded.snapshot_stamp = stamp;
        state.record_entity_inputs(&entity, &recorded)?;
    }
    Ok(())
}

/// Rows the CRM refused are rejects too, with their file and line.
fn add_refused(
    report: &mut RunReport,
    staging: &mut Staging,
    run_id: &str,
    refused: Vec<Issue>,
) -> Result<(), PipelineError> {
    if refused.is_empty() {
        return Ok(());
    }
    staging.write_rejects(run_id, &refused)?;
    for issue in &refused {
        if let Some((_, s)) = report.entities.iter_mut().find(|(e, _)| *e == issue.entity) {
            s.crm_refused += 1;
        }
    }
    report.issues.extend(refused);
    Ok(())
}

/// The run's total time and peak memory, last thing before it is reported.
fn seal(report: &mut RunReport, started: Instant) {
    report.timings.total = started.elapsed().as_secs_f64();
    report.peak_rss_mb = peak_rss_mb();
}

/// A stop request (a signal) is honoured between entities: the entity in progress is done,
/// nothing has reached the CRM, and the next run redoes the work.
fn stop_if_requested(
    opts: &RunOptions,
    state: &State,
    run_id: &str,
    entity: &str,
) -> Result<(), PipelineError> {
    if !opts
        .stop
        .as_ref()
        .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    {
        return Ok(());
    }
    if !opts.dry_run {
        state.finish_run(
            run_id,
            RunState::Stopped,
            &json!({"stopped_before": entity}),
        )?;
    }
    Err(PipelineError::Stopped {
        run_id: run_id.to_string(),
        entity: entity.to_string(),
    })
}

/// A file as the loop takes it: bytes still to parse, or parsed ahead.
enum Source {
    Bytes(Loaded),
    Parsed(Result<RawTable, ReadError>),
}

/// The next entity after the `k`-th that has a file in this drop, with that file.
fn next_file<'r>(
    recipes: &'r Recipes,
    files: &[EntityFile],
    k: usize,
) -> Option<(&'r Recipe, std::path::PathBuf)> {
    recipes.entities.iter().skip(k + 1).find_map(|r| {
        files
            .iter()
            .find(|f| f.entity == r.entity)
            .map(|f| (r, f.path.clone()))
    })
}

/// Per entity, the hash of the file its last recorded pass was computed from.
fn recorded_file_hashes(
    state: &State,
    recipes: &Recipes,
) -> Result<HashMap<String, String>, PipelineError> {
    let mut out = HashMap::default();
    for r in &recipes.entities {
        if let Some(i) = state.entity_inputs(&r.entity)? {
            out.insert(r.entity.clone(), i.file_hash);
        }
    }
    Ok(out)
}

/// The entity's file in this drop; any other file that matched it is left alone, and said so.
fn file_for<'f>(files: &'f [EntityFile], entity: &str) -> Option<&'f EntityFile> {
    let file = files.iter().find(|f| f.entity == entity)?;
    for ignored in &file.ignored {
        tracing::warn!(entity, file = %ignored.display(), "another file matched this entity; ignored");
    }
    Some(file)
}

/// The line of an entity without a file in this drop.
fn no_file() -> EntitySummary {
    EntitySummary {
        status: EntityStatus::NoFile,
        ..EntitySummary::default()
    }
}

/// The file as read goes on the run's record: its hash proves which bytes the run took.
fn record_read(
    opts: &RunOptions,
    state: &State,
    run_id: &str,
    entity: &str,
    name: &str,
    raw: &RawTable,
) -> Result<(), PipelineError> {
    if !opts.dry_run {
        state.record_file(
            run_id,
            entity,
            name,
            &raw.hash,
            raw.bytes,
            Some(raw.encoding),
            FileStatus::Read,
            None,
        )?;
    }
    for m in &raw.missing_columns {
        tracing::warn!(entity, column = %m, "optional column not in the file; its field stays empty");
    }
    Ok(())
}

/// The recipe's plan applied to the rows as read (names, types and derived fields), but for
/// records a clean row of `last` was typed from, which take that row.
fn transform(
    recipe: &Recipe,
    raw: &mut RawTable,
    last: Option<&DataFrame>,
    recipe_key: &str,
) -> PolarsResult<records::Typed> {
    records::key_records(&mut raw.frame, recipe_key)?;
    records::typed_rows(recipe, &Plan::new(recipe), &raw.frame, last)
}

/// Validation takes the read and the typed frames and frees both: the diff that follows
/// holds the previous snapshot beside this run's rows, and peak memory is the sum.
fn validate(
    recipe: &Recipe,
    file_name: &str,
    typed: DataFrame,
    raw: RawTable,
    refs: &RefSets,
) -> PolarsResult<Validated> {
    validate::validate(recipe, file_name, &typed, &raw.frame, refs)
}

/// Per field, the updated rows that changed it.
fn field_changes(changes: &ChangeSet) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (_, fields) in &changes.updated {
        for f in fields {
            *counts.entry(f.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// The entity's line in the run's summary.
fn summary_of(file_name: &str, encoding: &str, counts: &Counts, d: &Diffed) -> EntitySummary {
    EntitySummary {
        status: if d.verdict.held.is_empty() {
            EntityStatus::Ok
        } else {
            EntityStatus::Held
        },
        file: Some(file_name.to_string()),
        encoding: Some(encoding.to_string()),
        read: counts.read,
        accepted: counts.accepted,
        rejected: counts.rejected,
        skipped: counts.skipped,
        warnings: counts.warnings,
        inserted: d.changes.inserted.len(),
        updated: d.changes.updated.len(),
        unchanged: d.changes.unchanged,
        deleted: d.verdict.deletes.len(),
        held_deletes: d.verdict.held.len(),
        crm_refused: 0,
        drift: None,
        field_changes: field_changes(&d.changes),
        reason: None,
        unchanged_since: None,
        reused_records: 0,
    }
}

/// A few changes of each kind, for `plan` and the status page: inserted rows (and their IDs),
/// deleted rows as the snapshot had them, and deleted IDs, updated
/// rows as `field: before -> after`.
fn samples(accepted: &DataFrame, prev: Option<&DataFrame>, changes: &ChangeSet) -> ChangeSamples {
    let text = |df: &DataFrame, col: &str, row: usize| -> String {
        df.column(col)
            .ok()
            .and_then(|c| c.get(row).ok())
            .and_then(|v| crate::support::frame_rows::display(&v))
            .unwrap_or_else(|| "∅".into())
    };
    // Positions in the previous snapshot of just the sampled IDs: one scan, no index of a
    // million IDs built for ten rows (this runs on every run).
    let wanted: HashSet<String> = changes
        .updated
        .iter()
        .take(5)
        .map(|(i, _)| text(accepted, ID, *i as usize))
        .chain(changes.deleted.iter().take(5).cloned())
        .collect();
    let prev_index: std::collections::HashMap<String, usize> = prev
        .filter(|_| !wanted.is_empty())
        .and_then(|p| p.column(ID).ok().and_then(|c| c.str().ok().cloned()))
        .map(|ids| {
            ids.iter()
                .enumerate()
                .filter_map(|(i, id)| {
                    id.filter(|id| wanted.contains(*id))
                        .map(|id| (id.to_string(), i))
                })
                .collect()
        })
        .unwrap_or_default();
    let updated = changes
        .updated
        .iter()
        .take(5)
        .map(|(i, fields)| {
            let id = text(accepted, ID, *i as usize);
            let j = prev_index.get(&id).copied();
            let changes = fields
                .iter()
                .map(|f| FieldChange {
                    field: f.clone(),
                    before: match (prev, j) {
                        (Some(p), Some(j)) => text(p, f, j),
                        _ => "∅".into(),
                    },
                    after: text(accepted, f, *i as usize),
                })
                .collect();
            UpdatedSample { id, changes }
        })
        .collect();
    // Whole rows for inserts and deletes: what arrived, and what the CRM had for what left.
    let row = |df: &DataFrame, i: usize| -> SampleRow {
        SampleRow(
            df.get_column_names()
                .iter()
                .filter(|c| !c.starts_with("__"))
                .map(|c| (c.to_string(), text(df, c, i)))
                .collect(),
        )
    };
    ChangeSamples {
        inserted: changes
            .inserted
            .iter()
            .take(5)
            .map(|&i| text(accepted, ID, i as usize))
            .collect(),
        inserted_rows: changes
            .inserted
            .iter()
            .take(5)
            .map(|&i| row(accepted, i as usize))
            .collect(),
        updated,
        deleted: changes.deleted.iter().take(5).cloned().collect(),
        deleted_rows: match prev {
            Some(p) => changes
                .deleted
                .iter()
                .take(5)
                .filter_map(|id| prev_index.get(id).map(|&j| row(p, j)))
                .collect(),
            None => Vec::new(),
        },
    }
}
