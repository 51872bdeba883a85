//! `dropsync serve`: the operators' morning page. Runs with their files and counts (at `/`,
//! which `/runs` redirects to); a run's page with, first, what an operator acts on: its
//! status, the deletes the guard held with an **Approve** button and its rejects counted by
//! rule, then its counts, files, samples of its changes and its rejects (filterable by entity
//! and rule, paginated, each with file and line); the recipes in effect, and a row's history;
//! and `/metrics` for Prometheus.
//! Server-rendered HTML, no script, no external asset.
//!
//! # Who may see and act
//! - By default it listens on 127.0.0.1 only. Any other address needs an access token (from an
//!   environment variable, never the command line or a file in the repo); with a token, every
//!   request must carry it as `Authorization: Bearer <token>` or the `dropsync_token` cookie
//!   that the `/login` form sets (HttpOnly, SameSite=Strict). The token is posted, never put
//!   in a URL, so it stays out of browser history and proxy logs.
//! - Without a token the server answers only requests whose `Host` is the loopback address it
//!   listens on: a web page that resolves its own name to 127.0.0.1 (DNS rebinding) is refused.
//! - Approve and sign-in are POSTs carrying a per-process random CSRF token that only our own
//!   pages hold: another site can make the browser post, but cannot read the token. Sign-in
//!   has its own (its page needs no access token), so Approve's never leaves signed-in pages.
//! - Secrets (the access token, the cookie, the CSRF token) are compared as BLAKE3 digests in
//!   constant time, so neither their bytes nor their length show in response times. The
//!   cookie holds a value derived from the token, not the token itself.
//! - Every database connection a request opens is read-only; the one request that writes is
//!   Approve, through `app::approve` and its workspace lock. (With a tenant's state in
//!   PostgreSQL, a page first brings that tenant's folder to the published state, under the
//!   same lock: a local copy, not the state itself.)

mod data;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use subtle::ConstantTimeEq;

use self::data::{RejectFilter, Workspace};

/// Rejects shown per page.
const PER_PAGE: usize = 50;
/// Highest reject page a link may ask for (`page * PER_PAGE` must not overflow).
const MAX_PAGE: usize = 1_000_000_000;
const COOKIE: &str = "dropsync_token";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {0} without an access token: set the environment variable named by --token-env (binding beyond 127.0.0.1 exposes the CRM's runs and the Approve button)")]
    TokenRequired(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("status server: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot draw random bytes for the CSRF token: {0}")]
    Random(String),
    #[error(transparent)]
    Workspace(#[from] crate::state::StateError),
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Required when `listen` is not a loopback address.
    pub token: Option<String>,
    /// The workspaces shown: exactly one at `/` (the single folder, or `--tenant`), or, with
    /// `all_tenants`, every dealer of the tenants file under `/t/NAME/`.
    pub sites: Vec<Site>,
    pub all_tenants: bool,
}

/// One workspace the server shows.
#[derive(Debug, Clone)]
pub struct Site {
    /// The tenant's name (`default` for the single folder): the `tenant` label of metrics.
    pub name: String,
    pub recipes: PathBuf,
    pub out: PathBuf,
    /// The tenant's cluster-wide lock, which Approve takes as `dropsync approve` does.
    pub cluster: Option<crate::state::cluster_lock::ClusterLock>,
    /// Where the tenant's state is published: Approve fetches and publishes it.
    pub remote: Option<crate::state::remote::RemoteState>,
}

/// What every page shares: who may see and act.
struct Shared {
    /// CSRF token of the Approve form (on signed-in pages only).
    csrf: String,
    /// CSRF token of the sign-in form.
    login_csrf: String,
    token: Option<AccessToken>,
    /// `Host` values accepted when there is no token (loopback names of the bound port).
    hosts: Vec<String>,
}

/// One workspace's pages.
struct App {
    ws: Workspace,
    recipes: PathBuf,
    cluster: Option<crate::state::cluster_lock::ClusterLock>,
    remote: Option<crate::state::remote::RemoteState>,
    name: String,
    /// Where its pages start (`""` or `/t/NAME`).
    base: String,
    /// Whether it is one tenant among several (named in its pages).
    tenant: bool,
    shared: Arc<Shared>,
}

impl App {
    /// With the tenant's state in PostgreSQL, its folder is brought to the published state
    /// before a page reads it (a query when nothing changed, a fetch when a run elsewhere
    /// published since).
    fn fetch(&self) -> Result<(), String> {
        match &self.remote {
            Some(remote) => remote
                .fetch_for_reading(&self.ws.out)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn nav(&self) -> pages::Nav<'_> {
        pages::Nav {
            base: &self.base,
            tenant: self.tenant.then_some(self.name.as_str()),
            workspace: true,
        }
    }
}

/// Serves until SIGINT/SIGTERM. `on_ready` gets the bound address (port 0 picks a free one),
/// so callers can print it or tests can connect.
pub fn serve(opts: ServeOptions, on_ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    if !opts.listen.ip().is_loopback() && opts.token.is_none() {
        return Err(ServeError::TokenRequired(opts.listen));
    }
    // One workspace must exist to be worth a server; among tenants, a dealer whose first run
    // has not come yet is listed as such.
    if !opts.all_tenants {
        for site in &opts.sites {
            crate::state::require_workspace(&site.out)?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        let port = addr.port();
        let shared = Arc::new(Shared {
            csrf: random_token()?,
            login_csrf: random_token()?,
            token: opts.token.as_deref().map(AccessToken::new),
            hosts: vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
                addr.to_string(),
            ],
        });
        let apps = apps(&shared, opts.sites, opts.all_tenants);
        on_ready(addr);
        tracing::info!(%addr, "status page listening");
        axum::serve(listener, router(shared, apps, opts.all_tenants))
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

/// Each site's pages, at `/` or, among tenants, under `/t/NAME`.
fn apps(shared: &Arc<Shared>, sites: Vec<Site>, all_tenants: bool) -> Vec<Arc<App>> {
    sites
        .into_iter()
        .map(|site| {
            Arc::new(App {
                base: if all_tenants {
                    format!("/t/{}", site.name)
                } else {
                    String::new()
                },
                tenant: all_tenants,
                ws: Workspace { out: site.out },
                recipes: site.recipes,
                cluster: site.cluster,
                remote: site.remote,
                name: site.name,
                shared: shared.clone(),
            })
        })
        .collect()
}

/// One workspace's pages at `/` or, for each tenant, under `/t/NAME`, behind one guard.
fn router(shared: Arc<Shared>, apps: Vec<Arc<App>>, all_tenants: bool) -> Router {
    let mut router = Router::new();
    if all_tenants {
        for app in &apps {
            let base = app.base.clone();
            router = router.nest(&base, site_router(app.clone())).route(
                &format!("{base}/"),
                get(move || async move { Redirect::to(&base) }),
            );
        }
        router = router.merge(
            Router::new()
                .route("/", get(tenants))
                .route("/metrics", get(all_metrics))
                .with_state(Arc::new(apps)),
        );
    } else {
        for app in apps {
            router = router.merge(site_router(app));
        }
    }
    router
        .merge(
            Router::new()
                .route("/login", get(login_form).post(login))
                .with_state(shared.clone()),
        )
        .layer(middleware::from_fn_with_state(shared, guard))
}

fn site_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(runs))
        // The URL an operator types for "the runs": the list lives at `/`.
        .route("/runs", get(to_runs))
        .route("/runs/", get(to_runs))
        .route("/runs/{run_id}", get(run))
        .route("/runs/{run_id}/approve", post(approve))
        .route("/recipes", get(recipes))
        .route("/search", get(search))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}

fn random_token() -> Result<String, ServeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServeError::Random(e.to_string()))?;
    Ok(blake3::Hash::from_bytes(bytes).to_hex().to_string())
}

/// Whether `presented` is `expected`, in time that depends on neither's bytes nor on whether
/// their lengths match: both are hashed to 32-byte digests, compared in constant time.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (
        blake3::hash(presented.as_bytes()),
        blake3::hash(expected.as_bytes()),
    );
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The access token, and the value of the sign-in cookie derived from it (hex, so any token
/// makes a valid cookie, and the cookie is not the token).
struct AccessToken {
    token: String,
    cookie: String,
}

impl AccessToken {
    fn new(token: &str) -> AccessToken {
        let cookie = blake3::derive_key("dropsync serve 2026-11 sign-in cookie", token.as_bytes());
        AccessToken {
            token: token.to_owned(),
            cookie: blake3::Hash::from_bytes(cookie).to_hex().to_string(),
        }
    }
}

/// Token or loopback-Host check before every handler; `/login` is how a browser presents the
/// token once.
async fn guard(State(app): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    match &app.token {
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let cookie = cookie(headers, COOKIE);
            let ok = bearer.is_some_and(|b| same_secret(b, &token.token))
                || cookie.is_some_and(|c| same_secret(&c, &token.cookie));
            if !ok && req.uri().path() != "/login" {
                return (
                    StatusCode::UNAUTHORIZED,
                    pages::message(
                        "Access token required",
                        "Sign in once at /login, or send Authorization: Bearer <token>.",
                    ),
                )
                    .into_response();
            }
        }
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !app.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return (
                    StatusCode::MISDIRECTED_REQUEST,
                    pages::message(
                        "Unknown host",
                        "This status page answers only on its loopback address.",
                    ),
                )
                    .into_response();
            }
        }
    }
    next.run(req).await
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

async fn login_form(State(app): State<Arc<Shared>>) -> Response {
    pages::login(None, &app.login_csrf).into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

/// Sets the cookie when the token matches. Needs the sign-in form's CSRF token: another site
/// cannot sign the browser in (with a token of its choosing) or guess tokens through it.
async fn login(State(app): State<Arc<Shared>>, Form(form): Form<LoginForm>) -> Response {
    if !same_secret(&form.csrf, &app.login_csrf) {
        return (
            StatusCode::FORBIDDEN,
            pages::message(
                "Sign-in refused",
                "The form's CSRF token is missing or stale: reload the sign-in page and try again.",
            ),
        )
            .into_response();
    }
    match &app.token {
        Some(token) if same_secret(&form.token, &token.token) => (
            [(
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                    token.cookie
                ),
            )],
            Redirect::to("/"),
        )
            .into_response(),
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            pages::login(Some("That token does not match."), &app.login_csrf),
        )
            .into_response(),
        None => Redirect::to("/").into_response(),
    }
}

/// Database reads are blocking (SQLite): keep them off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Cannot read the workspace", &e),
        )
            .into_response()),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Internal error", &e.to_string()),
        )
            .into_response()),
    }
}

async fn runs(State(app): State<Arc<App>>) -> Response {
    let ws = app.clone();
    let list = blocking(move || {
        ws.fetch()?;
        if !crate::state::db_path(&ws.ws.out).is_file() {
            return Ok(Vec::new());
        }
        ws.ws.runs(200).map_err(|e| e.to_string())
    })
    .await;
    match list {
        Ok(list) => pages::runs(app.nav(), &list).into_response(),
        Err(r) => r,
    }
}

/// The tenants list (`--all-tenants`): each dealer's last run and held deletes, read from its
/// workspace now; one dealer's unreadable workspace is shown on its row, not a failed page.
async fn tenants(State(apps): State<Arc<Vec<Arc<App>>>>) -> Response {
    let rows = blocking(move || {
        Ok(apps
            .iter()
            .map(|app| {
                let mut row = pages::TenantRow {
                    name: app.name.clone(),
                    last: None,
                    held_now: 0,
                    error: None,
                };
                if let Err(e) = app.fetch() {
                    row.error = Some(e);
                    return row;
                }
                if crate::state::db_path(&app.ws.out).is_file() {
                    let read = app.ws.runs(1).and_then(|last| {
                        app.ws
                            .metric_facts()
                            .map(|f| (last, f.held_now.values().sum()))
                    });
                    match read {
                        Ok((last, held)) => {
                            row.last = last.into_iter().next();
                            row.held_now = held;
                        }
                        Err(e) => row.error = Some(e.to_string()),
                    }
                }
                row
            })
            .collect::<Vec<_>>())
    })
    .await;
    match rows {
        Ok(rows) => pages::tenants(&rows).into_response(),
        Err(r) => r,
    }
}

/// Every tenant's metrics in one scrape, a dealer with no run yet adding none.
async fn all_metrics(State(apps): State<Arc<Vec<Arc<App>>>>) -> Response {
    let facts = blocking(move || {
        let mut all = Vec::new();
        for app in apps.iter() {
            app.fetch()
                .map_err(|e| format!("tenant {}: {e}", app.name))?;
            if crate::state::db_path(&app.ws.out).is_file() {
                let facts = app
                    .ws
                    .metric_facts()
                    .map_err(|e| format!("tenant {}: {e}", app.name))?;
                all.push((app.name.clone(), facts));
            }
        }
        Ok(all)
    })
    .await;
    match facts {
        Ok(all) => {
            let refs: Vec<(&str, &crate::app::metrics::WorkspaceFacts)> =
                all.iter().map(|(n, f)| (n.as_str(), f)).collect();
            (
                [(header::CONTENT_TYPE, crate::app::metrics::CONTENT_TYPE)],
                crate::app::metrics::workspaces_text(&refs),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

/// Prometheus' scrape: the workspace's runs, rows and holds (see `app::metrics`). Behind the
/// same guard as every page: with a token, Prometheus sends it (`authorization` in its scrape
/// config).
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let ws = app.clone();
    let facts = blocking(move || {
        ws.fetch()?;
        if !crate::state::db_path(&ws.ws.out).is_file() {
            return Ok(Default::default());
        }
        ws.ws.metric_facts().map_err(|e| e.to_string())
    })
    .await;
    match facts {
        Ok(facts) => (
            [(header::CONTENT_TYPE, crate::app::metrics::CONTENT_TYPE)],
            crate::app::metrics::workspace_text(&app.name, &facts),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// `/runs` and `/runs/` are the run list's other names: 303 See Other to the list (not a
/// permanent redirect, which browsers would keep for good).
async fn to_runs(State(app): State<Arc<App>>) -> Redirect {
    Redirect::to(&app.nav().home())
}

#[derive(serde::Deserialize, Default)]
struct RunQuery {
    page: Option<usize>,
    entity: Option<String>,
    rule: Option<String>,
    approved: Option<usize>,
}

async fn run(
    State(app): State<Arc<App>>,
    Path(run_id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let filter = RejectFilter {
        entity: q.entity.filter(|s| !s.is_empty()),
        rule: q.rule.filter(|s| !s.is_empty()),
        page: q.page.unwrap_or(0).min(MAX_PAGE),
        per_page: PER_PAGE,
    };
    let csrf = app.shared.csrf.clone();
    let approved = q.approved;
    let ws = app.clone();
    let found = blocking(move || {
        let app = ws;
        app.fetch()?;
        let e = |e: data::DataError| e.to_string();
        let Some(run) = app.ws.run(&run_id).map_err(e)? else {
            return Ok(None);
        };
        let held = app.ws.held(&run_id).map_err(e)?;
        let summary = app.ws.reject_summary(&run_id).map_err(e)?;
        let rejects = app.ws.rejects(&run_id, &filter).map_err(e)?;
        Ok(Some((run, held, summary, rejects, filter)))
    })
    .await;
    match found {
        Ok(Some((run, held, summary, rejects, filter))) => pages::run(&pages::RunPage {
            nav: app.nav(),
            run: &run,
            held: &held,
            summary: &summary,
            rejects: &rejects,
            filter: &filter,
            csrf: &csrf,
            approved,
        })
        .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            pages::message("No such run", "This workspace has no run with that ID."),
        )
            .into_response(),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
struct ApproveForm {
    csrf: String,
}

/// Does what `dropsync approve RUN_ID` does (same function, same workspace lock), then shows
/// the run again with the number of deletes applied.
async fn approve(
    State(app): State<Arc<App>>,
    Path(run_id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    if !same_secret(&form.csrf, &app.shared.csrf) {
        return (
            StatusCode::FORBIDDEN,
            pages::message(
                "Approval refused",
                "The form's CSRF token is missing or stale: reload the run page and approve again.",
            ),
        )
            .into_response();
    }
    let (recipes, out, id) = (app.recipes.clone(), app.ws.out.clone(), run_id.clone());
    let (cluster, remote) = (app.cluster.clone(), app.remote.clone());
    let done = tokio::task::spawn_blocking(move || {
        crate::app::run::approve(&recipes, &out, &id, cluster.as_ref(), remote.as_ref())
            .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(applied)) => {
            let n: usize = applied.iter().map(|(_, n)| n).sum();
            tracing::info!(run_id = %run_id, deletes = n, "held deletes approved from the status page");
            Redirect::to(&format!("{}/runs/{run_id}?approved={n}", app.base)).into_response()
        }
        Ok(Err(e)) => (StatusCode::CONFLICT, pages::message("Approval failed", &e)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Approval failed", &e.to_string()),
        )
            .into_response(),
    }
}

async fn recipes(State(app): State<Arc<App>>) -> Response {
    let dir = app.recipes.clone();
    let nav_app = app.clone();
    let read = blocking(move || {
        let files = data::recipe_files(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let order = crate::config::load_dir(&dir)
            .map(|r| r.entities.iter().map(|e| e.entity.clone()).collect())
            .map_err(|e| e.to_string());
        Ok((files, order))
    })
    .await;
    match read {
        Ok((files, order)) => {
            let files: Vec<(String, String)> = files
                .into_iter()
                .map(|(name, text)| (name, data::hide_url_credentials(&text)))
                .collect();
            pages::recipes(nav_app.nav(), &files, order).into_response()
        }
        Err(r) => r,
    }
}

#[derive(serde::Deserialize, Default)]
struct SearchQuery {
    entity: Option<String>,
    id: Option<String>,
}

async fn search(State(app): State<Arc<App>>, Query(q): Query<SearchQuery>) -> Response {
    let ws = app.clone();
    let found = blocking(move || {
        let app = ws;
        app.fetch()?;
        let recipes = crate::config::load_dir(&app.recipes).map_err(|e| e.to_string());
        let entities: Vec<String> = recipes
            .as_ref()
            .map(|r| r.entities.iter().map(|e| e.entity.clone()).collect())
            .unwrap_or_default();
        let entity = q
            .entity
            .filter(|e| !e.is_empty())
            .or_else(|| entities.first().cloned())
            .unwrap_or_default();
        let id = q.id.unwrap_or_default();
        // `explain` opens the workspace's databases read-only, like every page.
        let result = (!id.trim().is_empty()).then(|| {
            recipes.as_ref().map_err(Clone::clone).and_then(|r| {
                crate::app::explain::history(r, &app.ws.out, app.remote.as_ref(), &entity, &id)
                    .map_err(|e| e.to_string())
            })
        });
        Ok((entities, entity, id, result))
    })
    .await;
    match found {
        Ok((entities, entity, id, result)) => {
            pages::search(app.nav(), &entities, &entity, &id, result).into_response()
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests;
