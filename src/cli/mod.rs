//! The command line: the only place that knows about processes, exit codes and `anyhow`.
//!
//! Exit codes (a documented contract): 0 the run completed (rejected rows are data, not a
//! failure), 1 any other failure, 2 a configuration or recipe error, 3 the run was held by
//! the delete guard.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::run::{self, PipelineError, RunOptions, RunStatus};
use crate::model::{EntityStatus, StoredSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Config = 2,
    Held = 3,
}

#[derive(Parser, Debug)]
#[command(
    name = "dropsync",
    version,
    about = "Full-snapshot file drops in, a clean CRM out"
)]
pub struct Cli {
    /// Only warnings and errors on stderr, no progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Also write logs (info and up, whatever --quiet says) to a daily file
    /// `DIR/dropsync.log.YYYY-MM-DD`; the record an operator reads after a nightly run.
    #[arg(long, global = true, env = "DROPSYNC_LOG_DIR", value_name = "DIR")]
    log_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Process the files present in the inbox once.
    Run {
        #[command(flatten)]
        ws: Workspace,
        /// Folder holding this drop's exports.
        #[arg(long, default_value = "watch/inbox")]
        inbox: PathBuf,
        /// Plan only: counts and a sample of changes; nothing is written.
        #[arg(long)]
        dry_run: bool,
        /// Print exactly one JSON object on stdout (logs stay on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Watch the drop folder (and pull remote sources on schedule); run each complete drop.
    Watch {
        #[command(flatten)]
        ws: Workspace,
        /// Sources config (drop folder, settle rules, schedule, SFTP).
        #[arg(long, default_value = "watch/sources.toml")]
        config: PathBuf,
        /// Process what is in the folder once it settles, then exit.
        #[arg(long)]
        once: bool,
    },
    /// What a run would do, per entity, with samples of each kind of change; writes nothing.
    Plan {
        #[command(flatten)]
        ws: Workspace,
        #[arg(long, default_value = "watch/inbox")]
        inbox: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A row's history: the runs that inserted, updated, deleted, held or rejected it, and why.
    Explain {
        entity: String,
        id: String,
        #[command(flatten)]
        ws: Workspace,
        #[arg(long)]
        json: bool,
    },
    /// Apply the deletes that the guard held in a run.
    Approve {
        run_id: String,
        #[command(flatten)]
        ws: Workspace,
    },
    /// List recent runs with status and counts.
    Runs {
        #[command(flatten)]
        ws: Workspace,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run the shipped samples: the first drop, then the next day's snapshot, into a fresh
    /// folder (default `demo/`, wiped first).
    Demo {
        #[arg(long, default_value = "recipes")]
        recipes: PathBuf,
        /// Folder with one sub-folder per drop, processed in name order.
        #[arg(long, default_value = "samples")]
        samples: PathBuf,
        #[arg(long, default_value = "demo")]
        out: PathBuf,
    },
    /// Write a seeded dealer drop (and optionally the next day's snapshot) with a
    /// manifest.json of the counts a correct run must find.
    Gen {
        /// Number of clients (at least 1); the other entities scale from it.
        #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
        clients: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Folder for the drop.
        #[arg(long)]
        out: PathBuf,
        /// windows-1252 | utf-8-bom | utf-8
        #[arg(long, default_value = "windows-1252")]
        encoding: String,
        /// xml | csv
        #[arg(long, default_value = "xml")]
        unidades: String,
        /// Inject the documented dirty rows.
        #[arg(long)]
        dirty: bool,
        /// Also write the next snapshot into this folder.
        #[arg(long)]
        next: Option<PathBuf>,
        /// Share of rows changed / added / deleted in the next snapshot (0 to 1).
        #[arg(long, default_value_t = 0.01, value_parser = share)]
        changed: f64,
        #[arg(long, default_value_t = 0.005, value_parser = share)]
        added: f64,
        #[arg(long, default_value_t = 0.005, value_parser = share)]
        deleted: f64,
    },
    /// Benchmark at dealer scale: generate drops of N clients, time the first load, an
    /// identical rerun and a 1% rerun, next to polars reading the same files.
    Bench {
        /// Comma-separated client counts.
        #[arg(long, default_value = "10000,100000,1000000", value_delimiter = ',', value_parser = at_least_one)]
        sizes: Vec<usize>,
        /// Scratch folder for the generated drops and outputs.
        #[arg(long, default_value = "bench-work")]
        dir: PathBuf,
        #[arg(long, default_value = "recipes")]
        recipes: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Also write the result table here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Env var holding a PostgreSQL URL: also measure the PostgreSQL apply.
        #[arg(long)]
        pg_url_env: Option<String>,
    },
    /// The benchmark's baseline: polars reads and parses the drop's CSVs (prints JSON).
    #[command(hide = true)]
    BenchBaseline {
        #[arg(long, default_value = "recipes")]
        recipes: PathBuf,
        #[arg(long)]
        inbox: PathBuf,
    },
    /// The status web page: runs, rejects, changes, held deletes (with Approve), recipes and
    /// a row's history. Listens on 127.0.0.1 unless told otherwise (then a token is required).
    Serve {
        #[command(flatten)]
        ws: Workspace,
        /// Address to listen on; port 0 picks a free port (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Environment variable holding the access token; required beyond loopback, and
        /// enforced whenever it is set.
        #[arg(long, default_value = "DROPSYNC_SERVE_TOKEN")]
        token_env: String,
    },
    /// Check recipes and config, and test each source and the target connection.
    Check {
        #[command(flatten)]
        ws: Workspace,
        #[arg(long, default_value = "watch/sources.toml")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
struct Workspace {
    /// Folder with `<entity>.toml` recipes and `pipeline.toml`.
    #[arg(long, default_value = "recipes")]
    recipes: PathBuf,
    /// Where staging.sqlite, staging.xlsx, crm.sqlite and state/ live.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = match init_logs(cli.quiet, cli.log_dir.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!(
                "error: cannot log to {}: {e}",
                cli.log_dir
                    .as_deref()
                    .unwrap_or(std::path::Path::new("?"))
                    .display()
            );
            return ExitCode::from(Exit::Config as u8);
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable(&format!("{e:#}")));
            exit_for(&e)
        }
    };
    ExitCode::from(code as u8)
}

/// Logs on stderr (warnings only with `--quiet`; `RUST_LOG` overrides) and, with
/// `--log-dir`, in a daily file at info whatever the terminal shows: the file is the record.
/// yup-oauth2 stays at warn everywhere, because its debug output contains access tokens. The
/// guard flushes the file writer at exit.
fn init_logs(
    quiet: bool,
    log_dir: Option<&std::path::Path>,
) -> std::io::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let level =
        std::env::var("RUST_LOG").unwrap_or_else(|_| (if quiet { "warn" } else { "info" }).into());
    // Colour only for a person at a terminal: cron mail, pipes and log collectors get plain
    // text, not escape sequences.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(EnvFilter::new(format!("{level},yup_oauth2=warn")));
    let (file, guard) = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("dropsync.log")
                .build(dir)
                .map_err(std::io::Error::other)?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(EnvFilter::new("info,yup_oauth2=warn"));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Ok(guard)
}

fn exit_for(e: &anyhow::Error) -> Exit {
    if let Some(crate::app::watch::WatchError::Config(_)) = e.downcast_ref() {
        return Exit::Config;
    }
    if let Some(crate::app::serve::ServeError::TokenRequired(_)) = e.downcast_ref() {
        return Exit::Config;
    }
    match e.downcast_ref::<PipelineError>() {
        Some(PipelineError::Recipe(_)) | Some(PipelineError::Usage(_)) => Exit::Config,
        _ => Exit::Failure,
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run {
            ws,
            inbox,
            dry_run,
            json,
        } => {
            let opts = RunOptions {
                recipes: ws.recipes,
                inbox,
                out: ws.out,
                dry_run,
                progress: !json && !cli.quiet,
                stop: Some(stop_flag()?),
            };
            let alert_spec = crate::config::load_dir(&opts.recipes)
                .ok()
                .map(|r| r.pipeline.alerts);
            let result = run::run(&opts);
            if let Some(spec) = &alert_spec {
                crate::app::alerts::after_run(spec, result.as_ref());
            }
            match result {
                Ok(report) => {
                    if json {
                        println!("{}", report.to_json());
                    } else {
                        print_table(&report);
                    }
                    Ok(match report.status {
                        RunStatus::Ok => Exit::Ok,
                        RunStatus::Held => Exit::Held,
                    })
                }
                Err(e) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"run_id": null, "status": "failed", "error": e.to_string(), "entities": {}})
                        );
                    }
                    Err(e.into())
                }
            }
        }
        Command::Watch { ws, config, once } => {
            let runs = crate::app::watch::watch(&crate::app::watch::WatchOptions {
                config,
                recipes: ws.recipes,
                out: ws.out,
                once,
                stop: stop_flag()?,
            })
            .map_err(|e| match e {
                crate::app::watch::WatchError::Pipeline(p) => anyhow::Error::from(p),
                other => anyhow::Error::from(other),
            })?;
            tracing::info!(runs, "watcher stopped");
            Ok(Exit::Ok)
        }
        Command::Plan { ws, inbox, json } => {
            let report = run::run(&RunOptions {
                recipes: ws.recipes,
                inbox,
                out: ws.out,
                dry_run: true,
                progress: false,
                stop: None,
            })?;
            if json {
                println!("{}", report.to_json());
                return Ok(Exit::Ok);
            }
            print_table(&report);
            print_samples(&report);
            Ok(Exit::Ok)
        }
        Command::Explain {
            entity,
            id,
            ws,
            json,
        } => {
            let events =
                crate::app::explain::explain(&ws.recipes, &ws.out, &entity, &id).map_err(|e| {
                    match e {
                        crate::app::explain::ExplainError::Recipe(r) => {
                            anyhow::Error::from(PipelineError::Recipe(r))
                        }
                        crate::app::explain::ExplainError::UnknownEntity(e) => anyhow::Error::from(
                            PipelineError::Usage(format!("no entity `{e}` in the recipes")),
                        ),
                        other => anyhow::Error::from(other),
                    }
                })?;
            if json {
                println!("{}", serde_json::to_string(&events)?);
            } else if events.is_empty() {
                println!(
                    "{} {}: no run has seen this ID",
                    printable(&entity),
                    printable(&id)
                );
            } else {
                for ev in &events {
                    let at = match (&ev.file, ev.line) {
                        (Some(f), Some(l)) => format!(" ({}:{l})", printable(f)),
                        _ => String::new(),
                    };
                    println!(
                        "{}  {:<24} {:<9} {}{at}",
                        printable(&ev.started_at),
                        printable(&ev.run_id),
                        printable(&ev.what),
                        printable(&ev.detail)
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Command::Serve {
            ws,
            listen,
            token_env,
        } => {
            let token = std::env::var(&token_env).ok().filter(|t| !t.is_empty());
            let opts = crate::app::serve::ServeOptions {
                listen,
                token,
                recipes: ws.recipes,
                out: ws.out,
            };
            crate::app::serve::serve(opts, |addr| {
                use std::io::Write;
                println!("dropsync status page: http://{addr}/");
                let _ = std::io::stdout().flush();
            })?;
            Ok(Exit::Ok)
        }
        Command::Approve { run_id, ws } => {
            let done = run::approve(&ws.recipes, &ws.out, &run_id)?;
            for (entity, n) in done {
                println!("{entity}: {n} held delete(s) applied");
            }
            Ok(Exit::Ok)
        }
        Command::Runs { ws, limit, json } => {
            let state = crate::state::State::open(&ws.out)?;
            let runs = state.runs(limit)?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
            } else {
                println!("{:<28} {:<10} {:<25} entities", "run", "status", "started");
                for r in runs {
                    // A summary that does not read (none stored, or damaged) shows no
                    // counts rather than hiding the run.
                    let summary = r
                        .summary
                        .as_ref()
                        .and_then(|s| <StoredSummary as serde::Deserialize>::deserialize(s).ok())
                        .unwrap_or_default();
                    let counts = summary
                        .entities
                        .iter()
                        .filter(|(_, s)| s.status != EntityStatus::NoFile)
                        .map(|(k, s)| {
                            format!(
                                "{k} +{} ~{} -{} !{}",
                                s.inserted, s.updated, s.deleted, s.rejected
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    println!(
                        "{:<28} {:<10} {:<25} {counts}",
                        r.run_id, r.status, r.started_at
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Command::Demo {
            recipes,
            samples,
            out,
        } => {
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            let mut drops: Vec<PathBuf> = std::fs::read_dir(&samples)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            drops.sort();
            let mut exit = Exit::Ok;
            for inbox in drops {
                println!("\n== drop {}", inbox.display());
                let report = run::run(&RunOptions {
                    recipes: recipes.clone(),
                    inbox,
                    out: out.clone(),
                    dry_run: false,
                    progress: !cli.quiet,
                    stop: None,
                })?;
                print_table(&report);
                if report.status == RunStatus::Held {
                    exit = Exit::Held;
                }
            }
            println!(
                "\nOpen {0}/staging.xlsx, or: sqlite3 {0}/staging.sqlite \"select entity, line, id, rule, reason from rejects\"",
                out.display()
            );
            Ok(exit)
        }
        Command::Gen {
            clients,
            seed,
            out,
            encoding,
            unidades,
            dirty,
            next,
            changed,
            added,
            deleted,
        } => {
            let opts = crate::app::gen::GenOptions {
                clients,
                seed,
                encoding: serde_json::from_value(serde_json::Value::String(encoding.clone()))
                    .map_err(|_| {
                        PipelineError::Usage(format!(
                            "unknown encoding `{encoding}`: windows-1252, utf-8-bom or utf-8"
                        ))
                    })?,
                unidades: serde_json::from_value(serde_json::Value::String(unidades.clone()))
                    .map_err(|_| {
                        PipelineError::Usage(format!(
                            "unknown unidades format `{unidades}`: xml or csv"
                        ))
                    })?,
                dirty,
            };
            let m = crate::app::gen::generate(&opts, &out)?;
            let rows: usize = m.entities.values().map(|e| e.rows).sum();
            println!(
                "{}: {rows} rows in {} files",
                out.display(),
                m.entities.len()
            );
            if let Some(next) = next {
                let spec = crate::app::gen::ChangeSpec {
                    changed,
                    added,
                    deleted,
                };
                let m = crate::app::gen::generate_next(&opts, &spec, &next)?;
                let rows: usize = m.entities.values().map(|e| e.rows).sum();
                println!("{}: {rows} rows (next snapshot)", next.display());
            }
            Ok(Exit::Ok)
        }
        Command::Bench {
            sizes,
            dir,
            recipes,
            seed,
            report,
            pg_url_env,
        } => {
            let table = crate::app::bench::run(&crate::app::bench::BenchOptions {
                sizes,
                dir,
                recipes,
                seed,
                report,
                pg_url_env,
            })?;
            println!("{table}");
            Ok(Exit::Ok)
        }
        Command::BenchBaseline { recipes, inbox } => {
            println!("{}", crate::app::bench::baseline(&recipes, &inbox)?);
            Ok(Exit::Ok)
        }
        Command::Check { ws, config, json } => {
            let verdicts = crate::app::check::check(&ws.recipes, &config, &ws.out);
            if json {
                println!("{}", serde_json::to_string(&verdicts)?);
            } else {
                for v in &verdicts {
                    println!(
                        "{:<6} {:<40} {}",
                        if v.ok { "OK" } else { "FAILED" },
                        v.item,
                        printable(&v.detail)
                    );
                }
            }
            let recipes_ok = verdicts.first().is_some_and(|v| v.ok);
            Ok(if !recipes_ok {
                Exit::Config
            } else if verdicts.iter().all(|v| v.ok) {
                Exit::Ok
            } else {
                Exit::Failure
            })
        }
    }
}

/// SIGTERM and Ctrl-C set this flag: the work in progress finishes its current entity and
/// stops cleanly instead of dying mid-write.
fn stop_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// `text` safe to print on a terminal: control characters (ESC, BEL, CR, C1…) and the
/// invisible Unicode format characters that reorder or hide text (bidi overrides, zero
/// widths) are shown escaped, `\u{1b}` style (`\t`, `\n`, `\r` for those), so data from an
/// export can neither drive the terminal (retitle it, clear it, fake lines) nor hide itself.
/// Borrowed when there is nothing to escape.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c,
                '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `plan`'s samples per entity: inserted IDs, updates as `field: before -> after`, deleted
/// IDs. Every value comes from the export, so each is [`printable`].
fn print_samples(report: &run::RunReport) {
    for (entity, sample) in &report.samples {
        if sample.is_empty() {
            continue;
        }
        let list = |ids: &[String]| {
            ids.iter()
                .map(|id| printable(id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("\n{}:", printable(entity));
        if !sample.inserted.is_empty() {
            println!("  insert  {}", list(&sample.inserted));
        }
        for u in &sample.updated {
            let changes = u
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "{}: {} -> {}",
                        printable(&c.field),
                        printable(&c.before),
                        printable(&c.after)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            println!("  update  {}  {changes}", printable(&u.id));
        }
        if !sample.deleted.is_empty() {
            println!("  delete  {}", list(&sample.deleted));
        }
    }
}

fn print_table(report: &run::RunReport) {
    println!(
        "run {}  status {}{}",
        printable(&report.run_id),
        report.status.as_str(),
        if report.dry_run {
            "  (dry run: nothing written)"
        } else {
            ""
        }
    );
    println!(
        "{:<12} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
        "entity",
        "status",
        "read",
        "accepted",
        "rejected",
        "warnings",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "held"
    );
    for (e, s) in &report.entities {
        println!(
            "{:<12} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
            printable(e),
            printable(s.status.as_str()),
            s.read,
            s.accepted,
            s.rejected,
            s.warnings,
            s.inserted,
            s.updated,
            s.unchanged,
            s.deleted,
            s.held_deletes
        );
        if let Some(r) = &s.reason {
            println!("    {}", printable(r));
        }
    }
    if report.status == RunStatus::Held {
        println!(
            "deletes held by the guard: review, then `dropsync approve {}`",
            report.run_id
        );
    }
}

/// A count that must be at least 1 (clap reports anything else as a usage error, exit 2).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A share between 0 and 1.
fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        Ok(_) => Err("must be between 0 and 1".into()),
        Err(e) => Err(e.to_string()),
    }
}
