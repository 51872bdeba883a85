//! The commands that drive the pipeline: `run`, `plan`, `approve`, `demo` and `watch`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::args::{ApproveArgs, DemoArgs, PlanArgs, RunArgs, WatchArgs};
use super::exit::Exit;
use super::print;
use crate::app::pull::{self, PullRun};
use crate::app::run::{self, RunOptions, RunStatus};
use crate::app::watch::{self, WatchOptions};
use crate::app::{lineage, metrics};

pub fn run(mut args: RunArgs, quiet: bool) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    let opts = RunOptions {
        recipes: args.ws.recipes,
        inbox: tenant.as_ref().map_or(args.inbox, |t| t.inbox.clone()),
        out: args.ws.out,
        dry_run: args.dry_run,
        full: args.full,
        progress: !args.json && !quiet,
        stop: Some(stop_flag()?),
        cluster: super::tenant::cluster_lock(tenant.as_ref())?,
        remote: super::tenant::remote_state(tenant.as_ref())?,
        outputs: super::tenant::outputs(tenant.as_ref())?,
    };
    // Loaded apart from the run, so a run that fails on its recipes still alerts when the
    // alert spec itself reads.
    let recipes = crate::config::load_dir(&opts.recipes).ok();
    let label = super::tenant::label(tenant.as_ref());
    // A dry run is a plan, not the night's run: lineage and the gateway hear of real runs.
    let lineage = args
        .openlineage
        .as_deref()
        .filter(|u| !u.is_empty() && !args.dry_run)
        .and_then(|url| Lineage::new(url, label, &opts.inbox));
    let begin = || {
        if let Some(l) = &lineage {
            l.begin();
        }
    };
    let started = std::time::SystemTime::now();
    // With --pull, an empty inbox is no missing export when nothing was taken (the run only
    // completed an interrupted one); and a look that found nothing new makes no run at all,
    // so a collector hears of runs, not of every empty look.
    let (result, expect_files) = if args.pull {
        let config = tenant
            .as_ref()
            .map_or(args.sources.config, |t| t.sources.clone());
        let sources = crate::config::sources::load(&config)?;
        match pull::run_pulled(&opts, &sources, &begin) {
            Ok(PullRun { report: None, .. }) => {
                if args.json {
                    outln!("{}", serde_json::json!({"status": "nothing_new"}));
                } else {
                    outln!("nothing new from the sources; no run");
                }
                let pushed = run_outcome(None, Exit::Ok, started);
                push(args.pushgateway.as_deref(), label, &pushed);
                return Ok(Exit::Ok);
            }
            Ok(PullRun {
                report: Some(r),
                taken,
            }) => (Ok(r), taken > 0),
            Err(e) => (Err(e), true),
        }
    } else {
        begin();
        (run::run(&opts), true)
    };
    if let Some(r) = &recipes {
        crate::app::alerts::after_run(&r.pipeline.alerts, result.as_ref());
    }
    let crm = recipes
        .as_ref()
        .map(|r| lineage::crm_place(&r.pipeline.target, &opts.out));
    let ending = |report, exit: Exit, error| lineage::Ending {
        report,
        exit_code: exit as i32,
        error,
        crm: crm.clone(),
        recipes: recipes.as_ref(),
    };
    let (exit, pushed) = match result {
        Ok(report) => {
            print_report(&report, args.json);
            let exit = if expect_files {
                outcome(&report, &opts.inbox)
            } else {
                report.status.into()
            };
            if let Some(l) = &lineage {
                l.end(&ending(Some(&report), exit, None));
            }
            (Ok(exit), run_outcome(Some(&report), exit, started))
        }
        Err(e) => {
            if args.json {
                print::failed_run_json(&e);
            }
            let e = anyhow::Error::from(e);
            let exit = super::exit::exit_for(&e);
            if let Some(l) = &lineage {
                l.end(&ending(None, exit, Some(print::error_message(&e))));
            }
            (Err(e), run_outcome(None, exit, started))
        }
    };
    if !args.dry_run {
        push(args.pushgateway.as_deref(), label, &pushed);
    }
    exit
}

/// Pushes what a run came to, when a Pushgateway is configured; a push that fails is a
/// warning, never the run's outcome.
fn push(gateway: Option<&str>, label: &str, pushed: &metrics::RunOutcome) {
    if let Some(url) = gateway.filter(|u| !u.is_empty()) {
        if let Err(e) = metrics::push(url, label, pushed) {
            tracing::warn!(error = %e, "run metrics not pushed");
        }
    }
}

/// The run's JSON object, or its table for a person.
fn print_report(report: &run::RunReport, json: bool) {
    if json {
        outln!("{}", report.to_json());
    } else {
        print::run_table(report);
    }
}

/// A run's OpenLineage events: START when the run begins, the end event when it ended. A
/// collector that cannot be reached is a warning, never the run's outcome.
struct Lineage {
    run: lineage::LineageRun,
    url: String,
    /// From `DROPSYNC_OPENLINEAGE_API_KEY` (a secret: never a flag).
    api_key: Option<String>,
}

impl Lineage {
    fn new(url: &str, job: &str, inbox: &std::path::Path) -> Option<Lineage> {
        let run = match lineage::LineageRun::new(job, inbox) {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(error = %e, "no lineage events for this run");
                return None;
            }
        };
        let l = Lineage {
            run,
            url: url.to_string(),
            api_key: std::env::var(LINEAGE_KEY_ENV)
                .ok()
                .filter(|k| !k.is_empty()),
        };
        Some(l)
    }

    /// START, sent as the run begins.
    fn begin(&self) {
        self.send(&self.run.start());
    }

    fn end(&self, ending: &lineage::Ending) {
        self.send(&self.run.end(ending));
    }

    fn send(&self, event: &serde_json::Value) {
        if let Err(e) = lineage::send(&self.url, self.api_key.as_deref(), event) {
            tracing::warn!(error = %e, event = %event["eventType"], "lineage event not delivered");
        }
    }
}

/// The environment variable holding the OpenLineage collector's API key, if it wants one.
const LINEAGE_KEY_ENV: &str = "DROPSYNC_OPENLINEAGE_API_KEY";

/// What a run that ended (or failed) pushes to a Pushgateway.
fn run_outcome(
    report: Option<&run::RunReport>,
    exit: Exit,
    started: std::time::SystemTime,
) -> metrics::RunOutcome {
    let now = std::time::SystemTime::now();
    let unix = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let duration = now
        .duration_since(started)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let status = match (report, exit) {
        (None, Exit::Ok) => "nothing_new",
        (None, _) => "failed",
        (Some(_), Exit::NothingFound) => "nothing",
        (Some(r), _) => r.status.as_str(),
    };
    metrics::RunOutcome {
        status: status.to_string(),
        exit_code: exit as i32,
        finished_at: unix,
        duration_secs: report.map(|r| r.timings.total).unwrap_or(duration),
        entities: report.map(|r| r.entities.clone()).unwrap_or_default(),
        timings: report.map(|r| r.timings.clone()),
        crm_rows_written: report.map(|r| r.crm_rows_written as u64).unwrap_or(0),
    }
}

pub fn plan(mut args: PlanArgs) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    // Compared with the tenant's published state, not whatever this folder last held.
    super::tenant::fetch_state(tenant.as_ref(), &args.ws.out)?;
    let inbox = tenant.map_or(args.inbox, |t| t.inbox);
    let report = run::run(&RunOptions {
        dry_run: true,
        ..RunOptions::new(args.ws.recipes, inbox.clone(), args.ws.out)
    })?;
    if args.json {
        outln!("{}", report.to_json());
    } else {
        print::run_table(&report);
        print::samples(&report);
    }
    Ok(match outcome(&report, &inbox) {
        Exit::NothingFound => Exit::NothingFound,
        _ => Exit::Ok,
    })
}

/// The exit code of a completed run, saying so on stderr when the inbox had nothing.
fn outcome(report: &run::RunReport, inbox: &std::path::Path) -> Exit {
    if report.found_nothing() {
        eprintln!(
            "no export found in {}: no file there matches a recipe's [source] files, so nothing was read (exit 4)",
            inbox.display()
        );
        return Exit::NothingFound;
    }
    report.status.into()
}

pub fn approve(mut args: ApproveArgs) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    let cluster = super::tenant::cluster_lock(tenant.as_ref())?;
    let remote = super::tenant::remote_state(tenant.as_ref())?;
    let done = run::approve(
        &args.ws.recipes,
        &args.ws.out,
        &args.run_id,
        cluster.as_ref(),
        remote.as_ref(),
    )?;
    for (entity, n) in done {
        outln!("{entity}: {n} held delete(s) applied");
    }
    Ok(Exit::Ok)
}

/// Each drop under `samples` in name order, into a wiped `out`; held if any run was.
pub fn demo(args: DemoArgs, quiet: bool) -> anyhow::Result<Exit> {
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out)?;
    }
    let mut drops: Vec<PathBuf> = std::fs::read_dir(&args.samples)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    drops.sort();
    let mut exit = Exit::Ok;
    for inbox in drops {
        outln!("\n== drop {}", inbox.display());
        let report = run::run(&RunOptions {
            progress: !quiet,
            ..RunOptions::new(args.recipes.clone(), inbox, args.out.clone())
        })?;
        print::run_table(&report);
        if report.status == RunStatus::Held {
            exit = Exit::Held;
        }
    }
    outln!(
        "\nOpen {0}/staging.xlsx, or, for the last run's rejects: sqlite3 {0}/staging.sqlite \"select entity, line, id, rule, reason from rejects where severity = 'error' and run_id = (select run_id from runs order by rowid desc limit 1)\"",
        args.out.display()
    );
    Ok(exit)
}

pub fn watch(mut args: WatchArgs) -> anyhow::Result<Exit> {
    let tenant = args.ws.resolve()?;
    let runs = watch::watch(&WatchOptions {
        config: tenant
            .as_ref()
            .map_or(args.sources.config, |t| t.sources.clone()),
        cluster: super::tenant::cluster_lock(tenant.as_ref())?,
        remote: super::tenant::remote_state(tenant.as_ref())?,
        outputs: super::tenant::outputs(tenant.as_ref())?,
        folders: tenant.map(|t| watch::DropFolders {
            inbox: t.inbox,
            archive: t.archive,
            quarantine: t.quarantine,
        }),
        recipes: args.ws.recipes,
        out: args.ws.out,
        once: args.once,
        stop: stop_flag()?,
    })?;
    tracing::info!(runs, "watcher stopped");
    Ok(Exit::Ok)
}

/// SIGTERM and Ctrl-C set this flag: the work in progress finishes its current entity and
/// stops cleanly instead of dying mid-write.
fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}
