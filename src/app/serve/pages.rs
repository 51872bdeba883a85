//! The HTML of the status pages, rendered on the server with maud (escaped by construction:
//! file names, IDs and reject reasons come from clients' exports). One stylesheet inline, no
//! script, no external asset: the page works offline and behind any proxy. Every table sits
//! in a `div.scroll` box that scrolls sideways on its own: a wide sample or a long hash never
//! makes the page itself wider than the window.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

use super::data::{Held, RejectFilter, RejectPage, RuleCount, RunView};
use crate::app::explain::Event;
use crate::model::{EntitySummary, HoldState};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:baseline}
header a{color:#cfd8ea;text-decoration:none}header strong{font-size:1.1rem;color:#fff}
main{padding:1rem 1.2rem;max-width:80rem;overflow-wrap:break-word}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;background:#fff;margin:.4rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #d8dce3;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef0f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
span.ok,span.approved{color:#17703a}span.held{color:#9a5b00}
span.failed,span.quarantined,span.error{color:#b3261e}
span.interrupted,span.stopped,span.warning,span.skip,span.superseded{color:#6b6f76}
code,pre{font-family:ui-monospace,monospace;font-size:.85rem}
pre{background:#fff;border:1px solid #d8dce3;padding:.6rem;overflow:auto}
.box{background:#fff;border:1px solid #d8dce3;padding:.6rem 1rem;margin:.6rem 0}
.notice{background:#e8f4ec;border-color:#9ccfac}.alert{background:#fdf0e1;border-color:#e9b873}
button{background:#1d2330;color:#fff;border:0;padding:.4rem .9rem;cursor:pointer}
form.inline{display:inline}
";

/// Where a page sits: the path its workspace's pages start at (`""` for the single
/// workspace at `/`, `/t/NAME` for a tenant of `serve --all-tenants`) and the tenant's name.
#[derive(Debug, Clone, Copy)]
pub struct Nav<'a> {
    pub base: &'a str,
    pub tenant: Option<&'a str>,
    /// Whether a workspace's pages (runs, search, recipes) live at `base`: not on the
    /// tenants list, which belongs to no one workspace.
    pub workspace: bool,
}

impl Nav<'_> {
    /// The single workspace's pages, and sign-in and errors.
    pub const ROOT: Nav<'static> = Nav {
        base: "",
        tenant: None,
        workspace: true,
    };

    /// The list of every tenant (`serve --all-tenants`).
    pub const INDEX: Nav<'static> = Nav {
        base: "",
        tenant: None,
        workspace: false,
    };

    /// The workspace's run list.
    pub fn home(&self) -> String {
        if self.base.is_empty() {
            "/".into()
        } else {
            self.base.to_string()
        }
    }
}

fn layout(nav: Nav, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) @if let Some(t) = nav.tenant { " · " (t) } " · dropsync" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "dropsync" }
                    @if let Some(t) = nav.tenant {
                        a #all-tenants href="/" { "All dealers" }
                        strong #tenant { (t) }
                    }
                    @if nav.workspace {
                        a href=(nav.home()) { "Runs" }
                        a href={ (nav.base) "/search" } { "Search a row" }
                        a href={ (nav.base) "/recipes" } { "Recipes" }
                    } @else {
                        a href="/" { "Dealers" }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn status(s: &str) -> Markup {
    html! { span class=(s) data-status=(s) { (s) } }
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Longest text from the data shown in one table cell (a reject reason can list every line
/// of thousands of duplicates); the full text stays in staging.sqlite.
const MAX_CELL_CHARS: usize = 2_000;

/// `text` cut to [`MAX_CELL_CHARS`] characters, with `…` when cut.
fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_CELL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}

fn secs(s: Option<f64>) -> String {
    s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "—".into())
}

/// One compact line per entity: `read → accepted, rejected, +ins ~upd −del`.
fn counts_line(e: &EntitySummary) -> String {
    format!(
        "{} read, {} accepted, {} rejected · +{} ~{} −{}{}",
        e.read,
        e.accepted,
        e.rejected,
        e.inserted,
        e.updated,
        e.deleted,
        if e.held_deletes > 0 {
            format!(" ({} held)", e.held_deletes)
        } else {
            String::new()
        }
    )
}

pub fn runs(nav: Nav, list: &[RunView]) -> Markup {
    layout(
        nav,
        "Runs",
        html! {
            h1 { "Runs" }
            @if list.is_empty() {
                p { "No run yet in this workspace. Run " code { "dropsync run" } " or " code { "dropsync demo" } "." }
            } @else {
                div.scroll { table #runs {
                    tr { th { "Run" } th { "Status" } th { "Started (UTC)" } th { "Duration" } th { "Files" } th { "Per entity" } }
                    @for r in list {
                        tr data-run=(r.run_id) {
                            td { a href={ (nav.base) "/runs/" (r.run_id) } { (r.run_id) } }
                            td { (status(r.status.as_str())) }
                            td { (r.started_at) }
                            td.n { (secs(r.duration_secs())) }
                            td {
                                @for f in &r.files {
                                    div { (f.file) " " code title=(f.hash) { (short_hash(&f.hash)) } }
                                }
                            }
                            td {
                                @for (name, e) in &r.entities {
                                    div { b { (name) } ": " (counts_line(e)) }
                                }
                            }
                        }
                    }
                } }
            }
        },
    )
}

/// One dealer on the tenants list.
pub struct TenantRow {
    pub name: String,
    /// Its most recent run; `None` before its first.
    pub last: Option<RunView>,
    /// Deletes its guard holds now, waiting for approve.
    pub held_now: u64,
    /// Why its workspace could not be read, when it could not.
    pub error: Option<String>,
}

/// `serve --all-tenants` at `/`: each dealer with its last run and what waits on an operator.
pub fn tenants(list: &[TenantRow]) -> Markup {
    layout(
        Nav::INDEX,
        "Dealers",
        html! {
            h1 { "Dealers" }
            @if list.is_empty() {
                p { "The tenants file lists no dealer." }
            } @else {
                div.scroll { table #tenants {
                    tr { th { "Dealer" } th { "Last run" } th { "Status" } th { "Started (UTC)" } th { "Duration" } th { "Held deletes" } }
                    @for t in list {
                        tr data-tenant=(t.name) {
                            td { a href={ "/t/" (t.name) } { b { (t.name) } } }
                            @if let Some(e) = &t.error {
                                td colspan="5" { (status("failed")) " " (bounded(e)) }
                            } @else if let Some(r) = &t.last {
                                td { a href={ "/t/" (t.name) "/runs/" (r.run_id) } { (r.run_id) } }
                                td { (status(r.status.as_str())) }
                                td { (r.started_at) }
                                td.n { (secs(r.duration_secs())) }
                                td.n.held { (t.held_now) }
                            } @else {
                                td colspan="5" { "No run yet." }
                            }
                        }
                    }
                } }
            }
        },
    )
}

/// Everything the run detail page shows.
pub struct RunPage<'a> {
    pub nav: Nav<'a>,
    pub run: &'a RunView,
    pub held: &'a [Held],
    /// The run's rejects counted per entity and rule (all of them, whatever the filter).
    pub summary: &'a [RuleCount],
    pub rejects: &'a RejectPage,
    pub filter: &'a RejectFilter,
    pub csrf: &'a str,
    /// Set after an approval redirected here: how many deletes were applied.
    pub approved: Option<usize>,
}

/// The run page, what an operator acts on first: the run's status (and why it stopped), the
/// deletes the guard held with Approve, the rejects counted by rule (each a link to its rows),
/// then the per-entity counts, the files, samples of the changes and the rejects themselves,
/// filterable and paginated.
pub fn run(p: &RunPage) -> Markup {
    let r = p.run;
    let waiting: Vec<&Held> = p
        .held
        .iter()
        .filter(|h| h.state == HoldState::Held)
        .collect();
    let base = p.nav.base;
    layout(
        p.nav,
        &format!("Run {}", r.run_id),
        html! {
            h1 { "Run " (r.run_id) }
            p #run-status {
                "Status " (status(r.status.as_str())) " · started " (r.started_at)
                " · " (secs(r.duration_secs()))
                @if let Some(n) = r.crm_rows_written { " · " (n) " CRM rows written" }
            }
            @if let Some(n) = p.approved {
                div.box.notice #approved { "Approved: " (n) " held deletes applied to the CRM." }
            }
            @if let Some(e) = &r.error { div.box.alert #run-error { "Error: " (bounded(e)) } }
            @if let Some(g) = &r.gsheets {
                @if let Some(e) = g["error"].as_str() {
                    div.box.alert #gsheets { "Google Sheets not updated: " (e) }
                } @else {
                    div.box #gsheets {
                        "Google Sheets " code { (g["spreadsheet_id"].as_str().unwrap_or("")) } ": "
                        @for t in g["sheets"].as_array().into_iter().flatten() {
                            (t["title"].as_str().unwrap_or("")) " " (t["rows_written"]) "/" (t["rows_total"]) " rows; "
                        }
                    }
                }
            }
            h2 #held-title { "Held deletes" }
            @if p.held.is_empty() {
                p { "The guard held nothing in this run." }
            }
            @for h in p.held {
                div.box.alert[h.state == HoldState::Held] data-held=(h.entity) {
                    b { (h.entity) } ": " (h.ids.len()) " deletes " (status(h.state.as_str())) ". IDs: "
                    code { (h.ids.iter().take(20).cloned().collect::<Vec<_>>().join(", ")) @if h.ids.len() > 20 { ", …" } }
                }
            }
            @if !waiting.is_empty() {
                form #approve method="post" action={ (base) "/runs/" (r.run_id) "/approve" } {
                    input type="hidden" name="csrf" value=(p.csrf);
                    p { "Approving applies these deletes to the CRM, as " code { "dropsync approve " (r.run_id) } " does." }
                    button type="submit" { "Approve" }
                }
            }
            h2 #reject-summary-title { "Rejects and warnings by rule" }
            (reject_summary(base, &r.run_id, p.summary))
            h2 { "Entities" }
            div.scroll { table #entities {
                tr {
                    th { "Entity" } th { "Status" } th { "Read" } th { "Accepted" } th { "Rejected" }
                    th { "Skipped" } th { "Warnings" } th { "Inserted" } th { "Updated" }
                    th { "Unchanged" } th { "Deleted" } th { "Held" } th { "CRM refused" }
                }
                @for (name, e) in &r.entities {
                    tr data-entity=(name) {
                        td { b { (name) } }
                        td {
                            (status(e.status.as_str())) @if let Some(why) = &e.reason { br; small { (why) } }
                            @let top = e.top_field_changes(3);
                            @if !top.is_empty() {
                                br; small.fields title="updated rows that changed each field" {
                                    "fields updated: "
                                    @for (i, (f, n)) in top.iter().enumerate() {
                                        @if i > 0 { " · " } (f) " " (n)
                                    }
                                }
                            }
                            @if let Some(d) = &e.drift {
                                br; small.drift { "columns changed: " (bounded(&d.to_string())) }
                                @if let Some(p) = &d.patch {
                                    details.patch { summary { "recipe patch" } pre { (bounded(p)) } }
                                }
                            }
                        }
                        td.n.read { (e.read) } td.n.accepted { (e.accepted) } td.n.rejected { (e.rejected) }
                        td.n.skipped { (e.skipped) } td.n.warnings { (e.warnings) } td.n.inserted { (e.inserted) }
                        td.n.updated { (e.updated) } td.n.unchanged { (e.unchanged) } td.n.deleted { (e.deleted) }
                        td.n.held { (e.held_deletes) } td.n.refused { (e.crm_refused) }
                    }
                }
            } }
            h2 { "Files" }
            div.scroll { table #files {
                tr { th { "Entity" } th { "File" } th { "Bytes" } th { "Encoding" } th { "Status" } th { "BLAKE3" } }
                @for f in &r.files {
                    tr {
                        td { (f.entity) } td { (f.file) } td.n { (f.bytes) }
                        td { (f.encoding.as_deref().unwrap_or("—")) }
                        td { (status(f.status.as_str())) @if let Some(why) = &f.reason { br; small { (why) } } }
                        td { code { (f.hash) } }
                    }
                }
            } }
            h2 #samples-title { "Changes (samples)" }
            (samples(&r.samples))
            h2 #rejects-title { "Rejects and warnings" }
            (rejects(base, &r.run_id, p.rejects, p.filter))
        },
    )
}

/// The link to one page of the run's rejects listing under these filters, scrolled to the
/// listing. Values are form-encoded: entities and rules are named in recipes.
fn rejects_link(
    base: &str,
    run_id: &str,
    entity: Option<&str>,
    rule: Option<&str>,
    page: usize,
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("page", &page.to_string());
    if let Some(e) = entity {
        q.append_pair("entity", e);
    }
    if let Some(r) = rule {
        q.append_pair("rule", r);
    }
    format!("{base}/runs/{run_id}?{}#rejects-title", q.finish())
}

/// One row per entity and rule with its count, each linking to those rows in the listing.
fn reject_summary(base: &str, run_id: &str, summary: &[RuleCount]) -> Markup {
    let total: usize = summary.iter().map(|c| c.count).sum();
    html! {
        @if summary.is_empty() {
            p #reject-summary-none { "No rejects or warnings in this run." }
        } @else {
            div.scroll { table #reject-summary {
                tr { th { "Entity" } th { "Rule" } th { "Severity" } th { "Rows" } }
                @for c in summary {
                    tr data-entity=(c.entity) data-rule=(c.rule) {
                        td { (c.entity) }
                        td { a href=(rejects_link(base, run_id, Some(&c.entity), Some(&c.rule), 0)) { code { (c.rule) } } }
                        td { @for (i, s) in c.severities.iter().enumerate() { @if i > 0 { ", " } (status(s)) } }
                        td.n.count { (c.count) }
                    }
                }
            } }
            p { a href="#rejects-title" { "All " (total) " rows, with file, line and reason" } " (below the samples)." }
        }
    }
}

fn samples(samples: &[(String, Value)]) -> Markup {
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    html! {
        @if samples.iter().all(|(_, v)| v.is_null()) { p { "No samples stored for this run." } }
        @for (entity, s) in samples {
            @let inserted = ids(&s["inserted"]);
            @let deleted = ids(&s["deleted"]);
            @let updated = s["updated"].as_array().cloned().unwrap_or_default();
            @if !inserted.is_empty() || !deleted.is_empty() || !updated.is_empty() {
                div.box data-samples=(entity) {
                    b { (entity) }
                    @if !inserted.is_empty() {
                        div { "Inserted:" }
                        (rows_table("inserted", &s["inserted_rows"], &inserted))
                    }
                    @if !updated.is_empty() {
                        div { "Updated:" }
                        ul {
                            @for u in &updated {
                                li {
                                    code { (u["id"].as_str().unwrap_or("?")) } ": "
                                    @for (field, change) in u["changes"].as_object().into_iter().flatten() {
                                        span.change { (field) ": " (change.as_str().unwrap_or("")) } "; "
                                    }
                                }
                            }
                        }
                    }
                    @if !deleted.is_empty() {
                        div { "Gone from the export (as the CRM had them):" }
                        (rows_table("deleted", &s["deleted_rows"], &deleted))
                    }
                }
            }
        }
    }
}

/// Sample rows as a table (columns of the first row); just the IDs for runs stored before
/// whole rows were kept.
fn rows_table(kind: &str, rows: &Value, ids: &[String]) -> Markup {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cols: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    html! {
        @if cols.is_empty() {
            code { (ids.join(", ")) }
        } @else {
            div.scroll { table.sample data-kind=(kind) {
                tr { @for c in &cols { th { (c) } } }
                @for r in &rows {
                    tr { @for c in &cols { td { (r[c].as_str().unwrap_or("")) } } }
                }
            } }
        }
    }
}

fn rejects(base: &str, run_id: &str, page: &RejectPage, filter: &RejectFilter) -> Markup {
    let per = filter.per_page.max(1);
    let pages = page.total.div_ceil(per).max(1);
    let link = |n: usize| {
        rejects_link(
            base,
            run_id,
            filter.entity.as_deref(),
            filter.rule.as_deref(),
            n,
        )
    };
    html! {
        form #reject-filter method="get" action={ (base) "/runs/" (run_id) } {
            label { "Entity " select name="entity" {
                option value="" { "all" }
                @for e in &page.entities { option value=(e) selected[filter.entity.as_deref() == Some(e)] { (e) } }
            } }
            " "
            label { "Rule " select name="rule" {
                option value="" { "all" }
                @for r in &page.rules { option value=(r) selected[filter.rule.as_deref() == Some(r)] { (r) } }
            } }
            " " button type="submit" { "Filter" }
        }
        p #reject-count { (page.total) " rows · page " (filter.page + 1) " of " (pages) }
        div.scroll { table #rejects {
            tr { th { "Entity" } th { "File" } th { "Line" } th { "ID" } th { "Severity" } th { "Rule" } th { "Reason" } }
            @for x in &page.rows {
                tr {
                    td { (x.entity) } td { (x.file) } td.n.line { (x.line) }
                    td { (x.id.as_deref().unwrap_or("")) } td { (status(&x.severity)) }
                    td { code { (x.rule) } } td { (bounded(&x.reason)) }
                }
            }
        } }
        p {
            @if filter.page > 0 { a #prev href=(link(filter.page - 1)) { "← previous" } " " }
            @if filter.page + 1 < pages { a #next href=(link(filter.page + 1)) { "next →" } }
        }
    }
}

pub fn recipes(
    nav: Nav,
    files: &[(String, String)],
    load_order: Result<Vec<String>, String>,
) -> Markup {
    layout(
        nav,
        "Recipes",
        html! {
            h1 { "Recipes in effect" }
            @match &load_order {
                Ok(order) => p { "Load order (parents first): " code { (order.join(" → ")) } },
                Err(e) => div.box.alert { "These recipes do not compile: " pre { (e) } },
            }
            @for (name, text) in files {
                h2 id=(name) { (name) }
                pre { (text) }
            }
        },
    )
}

pub fn search(
    nav: Nav,
    entities: &[String],
    entity: &str,
    id: &str,
    result: Option<Result<Vec<Event>, String>>,
) -> Markup {
    layout(
        nav,
        "Search",
        html! {
            h1 { "Why is this row like this?" }
            form #search method="get" action={ (nav.base) "/search" } {
                label { "Entity " select name="entity" {
                    @for e in entities { option value=(e) selected[e == entity] { (e) } }
                } }
                " " label { "ID " input type="text" name="id" value=(id); }
                " " button type="submit" { "Show history" }
            }
            @match result {
                None => {},
                Some(Err(e)) => div.box.alert { (e) },
                Some(Ok(events)) if events.is_empty() => p { "Nothing recorded for " code { (entity) " " (id) } "." },
                Some(Ok(events)) => div.scroll { table #history {
                    tr { th { "Run" } th { "Started" } th { "What" } th { "Detail" } th { "File" } th { "Line" } }
                    @for ev in &events {
                        tr {
                            td { a href={ (nav.base) "/runs/" (ev.run_id) } { (ev.run_id) } }
                            td { (ev.started_at) } td { (status(&ev.what)) } td { (ev.detail) }
                            td { (ev.file.as_deref().unwrap_or("")) }
                            td.n { (ev.line.map(|l| l.to_string()).unwrap_or_default()) }
                        }
                    }
                } },
            }
        },
    )
}

pub fn login(problem: Option<&str>, csrf: &str) -> Markup {
    layout(
        Nav::ROOT,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(p) = problem { div.box.alert { (p) } }
            form #login method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Access token " input type="password" name="token" autocomplete="current-password"; }
                " " button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn message(title: &str, text: &str) -> Markup {
    layout(
        Nav::ROOT,
        title,
        html! { h1 { (title) } div.box.alert { (text) } p { a href="/" { "Back to the runs" } } },
    )
}
