//! Prometheus metrics: what an operator's alerting needs from the runs, in the OpenMetrics
//! text format (written by `prometheus-client`, which Prometheus scrapes and a Pushgateway
//! accepts).
//!
//! Two views of the same facts. `serve`'s `/metrics` reads the workspace on every scrape
//! (runs by status, rows by outcome summed over every finished run, the deletes the guard
//! holds now, the last run's stage times), because the runs are other processes: a counter
//! kept in `serve`'s memory would know none of them. A run started by a scheduler (a
//! Kubernetes CronJob) lives shorter than a scrape interval, so it pushes its own outcome to a
//! Pushgateway when it ends ([`push`]), failed runs included: an alert on
//! `dropsync_run_success == 0` or on a stale `dropsync_run_finished_timestamp_seconds` needs
//! the failures most.
//!
//! Every metric carries a `tenant` label: `default` for the single-folder workspace, the
//! dealer's name once a worker serves several.

use std::collections::BTreeMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

use crate::model::{EntitySummary, Timings};
use crate::support::deliver::{self, Delivery};

/// The `tenant` label of the single-folder workspace.
pub const DEFAULT_TENANT: &str = "default";

/// The content type of [`workspace_text`] and [`run_text`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// What a workspace's state says about its runs, as `/metrics` reports it.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceFacts {
    /// Runs recorded, by status word (`ok`, `held`, `failed`, ...).
    pub runs_by_status: BTreeMap<String, u64>,
    /// Per (entity, outcome): rows summed over every finished run. Outcomes are the counts of
    /// a run's summary: `read`, `accepted`, `rejected`, `skipped`, `warnings`, `inserted`,
    /// `updated`, `unchanged`, `deleted`, `held_deletes`, `crm_refused`.
    pub rows: BTreeMap<(String, String), u64>,
    /// Per entity, the deletes the guard holds now (waiting for `approve`).
    pub held_now: BTreeMap<String, u64>,
    /// The most recent run that finished, whatever its status.
    pub last_finished: Option<LastRun>,
    /// When the most recent run that reached its end (`ok`, `held` or `approved`) finished.
    pub last_completed_at: Option<f64>,
}

/// The most recent finished run.
#[derive(Debug, Clone, Default)]
pub struct LastRun {
    pub status: String,
    /// Unix seconds.
    pub finished_at: f64,
    pub duration_secs: Option<f64>,
    /// Stage seconds, as the run's summary has them (none for a run that failed early).
    pub timings: Option<Timings>,
    pub crm_rows_written: u64,
}

/// The outcomes a run summary counts per entity, as its JSON names them, in the order
/// `/metrics` lists them (the status page's workspace query sums these fields).
pub const OUTCOMES: [&str; 11] = [
    "read",
    "accepted",
    "rejected",
    "skipped",
    "warnings",
    "inserted",
    "updated",
    "unchanged",
    "deleted",
    "held_deletes",
    "crm_refused",
];

/// An entity's [`OUTCOMES`] with their counts.
pub fn outcomes(s: &EntitySummary) -> impl Iterator<Item = (&'static str, usize)> {
    let counts = [
        s.read,
        s.accepted,
        s.rejected,
        s.skipped,
        s.warnings,
        s.inserted,
        s.updated,
        s.unchanged,
        s.deleted,
        s.held_deletes,
        s.crm_refused,
    ];
    OUTCOMES.into_iter().zip(counts)
}

/// The stages of [`Timings`] by name (without `total`, which is the run's duration).
fn stages(t: &Timings) -> [(&'static str, f64); 9] {
    [
        ("read", t.read),
        ("transform", t.transform),
        ("validate", t.validate),
        ("diff", t.diff),
        ("stage_sqlite", t.stage_sqlite),
        ("stage_xlsx", t.stage_xlsx),
        ("gsheets", t.gsheets),
        ("crm", t.crm),
        ("snapshot", t.snapshot),
    ]
}

fn labels(tenant: &str, more: &[(&'static str, &str)]) -> Labels {
    let mut l = vec![("tenant", tenant.to_string())];
    l.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    l
}

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// `/metrics` of one workspace.
pub fn workspace_text(tenant: &str, facts: &WorkspaceFacts) -> String {
    workspaces_text(&[(tenant, facts)])
}

/// `/metrics` of several tenants' workspaces (`serve --all-tenants`): one family per metric,
/// one series per tenant in it, as the exposition format requires.
pub fn workspaces_text(tenants: &[(&str, &WorkspaceFacts)]) -> String {
    let mut r = Registry::default();
    let runs = Family::<Labels, Counter>::default();
    let rows = Family::<Labels, Counter>::default();
    let held = Family::<Labels, Gauge>::default();
    let last_status = Family::<Labels, Gauge>::default();
    let last_finished = Family::<Labels, FloatGauge>::default();
    let last_duration = Family::<Labels, FloatGauge>::default();
    let last_crm = Family::<Labels, FloatGauge>::default();
    let last_stages = Family::<Labels, FloatGauge>::default();
    let last_completed = Family::<Labels, FloatGauge>::default();
    for (tenant, facts) in tenants {
        let tenant = *tenant;
        for (status, n) in &facts.runs_by_status {
            runs.get_or_create(&labels(tenant, &[("status", status)]))
                .inc_by(*n);
        }
        for ((entity, outcome), n) in &facts.rows {
            rows.get_or_create(&labels(tenant, &[("entity", entity), ("outcome", outcome)]))
                .inc_by(*n);
        }
        for (entity, n) in &facts.held_now {
            held.get_or_create(&labels(tenant, &[("entity", entity)]))
                .set(*n as i64);
        }
        if let Some(last) = &facts.last_finished {
            last_status
                .get_or_create(&labels(tenant, &[("status", &last.status)]))
                .set(1);
            last_finished
                .get_or_create(&labels(tenant, &[]))
                .set(last.finished_at);
            if let Some(d) = last.duration_secs {
                last_duration.get_or_create(&labels(tenant, &[])).set(d);
            }
            last_crm
                .get_or_create(&labels(tenant, &[]))
                .set(last.crm_rows_written as f64);
            if let Some(t) = &last.timings {
                for (stage, secs) in stages(t) {
                    last_stages
                        .get_or_create(&labels(tenant, &[("stage", stage)]))
                        .set(secs);
                }
            }
        }
        if let Some(at) = facts.last_completed_at {
            last_completed.get_or_create(&labels(tenant, &[])).set(at);
        }
    }
    // A family with no series is left out, as before any run: an empty workspace is an
    // empty exposition, not a list of metric names.
    let any = |f: &dyn Fn(&WorkspaceFacts) -> bool| tenants.iter().any(|(_, facts)| f(facts));
    let last = |f: &dyn Fn(&LastRun) -> bool| any(&|w| w.last_finished.as_ref().is_some_and(f));
    register_if(
        &mut r,
        "dropsync_runs",
        "Runs recorded in the workspace, by status",
        any(&|w| !w.runs_by_status.is_empty()),
        runs,
    );
    register_if(
        &mut r,
        "dropsync_rows",
        "Rows of every finished run, by entity and outcome",
        any(&|w| !w.rows.is_empty()),
        rows,
    );
    register_if(
        &mut r,
        "dropsync_held_deletes",
        "Deletes the guard holds now, waiting for approve",
        any(&|w| !w.held_now.is_empty()),
        held,
    );
    register_if(
        &mut r,
        "dropsync_last_run_status",
        "The status of the most recent finished run (1 for its status)",
        last(&|_| true),
        last_status,
    );
    register_if(
        &mut r,
        "dropsync_last_run_finished_timestamp_seconds",
        "When the most recent finished run ended",
        last(&|_| true),
        last_finished,
    );
    register_if(
        &mut r,
        "dropsync_last_run_duration_seconds",
        "How long the most recent finished run took",
        last(&|l| l.duration_secs.is_some()),
        last_duration,
    );
    register_if(
        &mut r,
        "dropsync_last_run_crm_rows_written",
        "CRM rows the most recent finished run wrote",
        last(&|_| true),
        last_crm,
    );
    register_if(
        &mut r,
        "dropsync_last_run_stage_seconds",
        "Seconds of each stage of the most recent finished run (summed over entities; staging, workbook and CRM overlap)",
        last(&|l| l.timings.is_some()),
        last_stages,
    );
    register_if(
        &mut r,
        "dropsync_last_completed_run_timestamp_seconds",
        "When the most recent run that reached its end (ok, held or approved) finished",
        any(&|w| w.last_completed_at.is_some()),
        last_completed,
    );
    text(&r)
}

/// What one run came to, as it pushes it when it ends.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// `ok`, `held`, `nothing` (no export found), `nothing_new` (`run --pull` found nothing
    /// new: no run) or `failed`.
    pub status: String,
    /// The process's exit code (the documented contract: 0, 1, 2, 3, 4).
    pub exit_code: i32,
    /// Unix seconds.
    pub finished_at: f64,
    pub duration_secs: f64,
    pub entities: Vec<(String, EntitySummary)>,
    pub timings: Option<Timings>,
    pub crm_rows_written: u64,
}

/// The metrics one run pushes: a Pushgateway keeps the last push of each group, so these are
/// gauges of that run, not counters.
pub fn run_text(tenant: &str, run: &RunOutcome) -> String {
    let mut r = Registry::default();
    gauge(
        &mut r,
        tenant,
        "dropsync_run_success",
        "1 when the run reached its end (ok, held, nothing to read, or nothing new to pull), 0 when it failed",
        if run.status == "failed" { 0.0 } else { 1.0 },
    );
    let status = Family::<Labels, Gauge>::default();
    status
        .get_or_create(&labels(tenant, &[("status", &run.status)]))
        .set(1);
    r.register("dropsync_run_status", "The run's status (1 for it)", status);
    gauge(
        &mut r,
        tenant,
        "dropsync_run_exit_code",
        "The run's exit code: 0 ok, 1 failure, 2 configuration, 3 held, 4 no export found",
        run.exit_code as f64,
    );
    gauge(
        &mut r,
        tenant,
        "dropsync_run_finished_timestamp_seconds",
        "When the run ended",
        run.finished_at,
    );
    gauge(
        &mut r,
        tenant,
        "dropsync_run_duration_seconds",
        "How long the run took",
        run.duration_secs,
    );
    gauge(
        &mut r,
        tenant,
        "dropsync_run_crm_rows_written",
        "CRM rows the run wrote",
        run.crm_rows_written as f64,
    );
    let rows = Family::<Labels, Gauge>::default();
    for (entity, s) in &run.entities {
        for (outcome, n) in outcomes(s) {
            rows.get_or_create(&labels(tenant, &[("entity", entity), ("outcome", outcome)]))
                .set(n as i64);
        }
    }
    r.register(
        "dropsync_run_rows",
        "The run's rows by entity and outcome",
        rows,
    );
    if let Some(t) = &run.timings {
        stage_family(
            &mut r,
            tenant,
            "dropsync_run_stage_seconds",
            "Seconds of each stage of the run (summed over entities; staging, workbook and CRM overlap)",
            t,
        );
    }
    text(&r)
}

fn register_if(r: &mut Registry, name: &str, help: &str, used: bool, metric: impl Metric) {
    if used {
        r.register(name, help, metric);
    }
}

fn gauge(r: &mut Registry, tenant: &str, name: &str, help: &str, v: f64) {
    let g = Family::<Labels, FloatGauge>::default();
    g.get_or_create(&labels(tenant, &[])).set(v);
    r.register(name, help, g);
}

fn stage_family(r: &mut Registry, tenant: &str, name: &str, help: &str, t: &Timings) {
    let f = Family::<Labels, FloatGauge>::default();
    for (stage, secs) in stages(t) {
        f.get_or_create(&labels(tenant, &[("stage", stage)]))
            .set(secs);
    }
    r.register(name, help, f);
}

/// Why a push did not land.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("Pushgateway {url}: {message}")]
    Http { url: String, message: String },
}

/// Pushes a run's metrics to a Pushgateway at `base` (e.g. `http://pushgateway:9091`), in the
/// group `job="dropsync", tenant=...`, replacing that group's last push (HTTP PUT). Retried a
/// few times with backoff: a CronJob's run has ended by then, and the push is its only
/// report to the alerting.
pub fn push(base: &str, tenant: &str, run: &RunOutcome) -> Result<(), PushError> {
    let url = format!(
        "{}/metrics/job/dropsync/tenant/{}",
        base.trim_end_matches('/'),
        path_segment(tenant)
    );
    deliver::send(Delivery {
        method: reqwest::Method::PUT,
        url: &url,
        content_type: CONTENT_TYPE,
        bearer: None,
        body: run_text(tenant, run),
    })
    .map_err(|e| PushError::Http {
        url: e.url,
        message: e.message,
    })
}

fn path_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(inserted: usize, rejected: usize) -> EntitySummary {
        EntitySummary {
            read: inserted + rejected,
            accepted: inserted,
            rejected,
            inserted,
            ..EntitySummary::default()
        }
    }

    #[test]
    fn a_pushed_run_says_its_status_rows_and_stages() {
        let run = RunOutcome {
            status: "held".into(),
            exit_code: 3,
            finished_at: 1_790_000_000.0,
            duration_secs: 12.5,
            entities: vec![("clientes".into(), summary(7, 2))],
            timings: Some(Timings {
                crm: 1.25,
                ..Timings::default()
            }),
            crm_rows_written: 7,
        };
        let t = run_text("acme", &run);
        for line in [
            "dropsync_run_success{tenant=\"acme\"} 1.0",
            "dropsync_run_status{tenant=\"acme\",status=\"held\"} 1",
            "dropsync_run_exit_code{tenant=\"acme\"} 3.0",
            "dropsync_run_rows{tenant=\"acme\",entity=\"clientes\",outcome=\"inserted\"} 7",
            "dropsync_run_rows{tenant=\"acme\",entity=\"clientes\",outcome=\"rejected\"} 2",
            "dropsync_run_stage_seconds{tenant=\"acme\",stage=\"crm\"} 1.25",
            "dropsync_run_crm_rows_written{tenant=\"acme\"} 7.0",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} not in\n{t}");
        }
        assert!(t.ends_with("# EOF\n"), "{t}");
        let failed = run_text(
            "acme",
            &RunOutcome {
                status: "failed".into(),
                exit_code: 1,
                ..RunOutcome::default()
            },
        );
        assert!(failed.contains("dropsync_run_success{tenant=\"acme\"} 0.0"));
        assert!(!failed.contains("dropsync_run_stage_seconds"), "{failed}");
    }

    #[test]
    fn workspace_counters_and_last_run() {
        let mut facts = WorkspaceFacts::default();
        facts.runs_by_status.insert("ok".into(), 4);
        facts.runs_by_status.insert("failed".into(), 1);
        facts
            .rows
            .insert(("ventas".into(), "inserted".into()), 1500);
        facts.held_now.insert("clientes".into(), 3);
        facts.last_finished = Some(LastRun {
            status: "ok".into(),
            finished_at: 100.0,
            duration_secs: Some(2.0),
            timings: None,
            crm_rows_written: 9,
        });
        let t = workspace_text(DEFAULT_TENANT, &facts);
        for line in [
            "# TYPE dropsync_runs counter",
            "dropsync_runs_total{tenant=\"default\",status=\"ok\"} 4",
            "dropsync_runs_total{tenant=\"default\",status=\"failed\"} 1",
            "dropsync_rows_total{tenant=\"default\",entity=\"ventas\",outcome=\"inserted\"} 1500",
            "dropsync_held_deletes{tenant=\"default\",entity=\"clientes\"} 3",
            "dropsync_last_run_status{tenant=\"default\",status=\"ok\"} 1",
            "dropsync_last_run_duration_seconds{tenant=\"default\"} 2.0",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} not in\n{t}");
        }
        assert!(!t.contains("dropsync_last_completed_run_timestamp_seconds"));
    }

    #[test]
    fn grouping_key_and_logged_url_are_safe() {
        assert_eq!(path_segment("Autos del Sur/2"), "Autos%20del%20Sur%2F2");
        assert_eq!(
            deliver::hide_credentials("https://u:secret@gw.example:9091/metrics/job/dropsync"),
            "https://gw.example:9091/metrics/job/dropsync"
        );
    }
}
