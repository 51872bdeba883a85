//! The status server's rules, over real HTTP on 127.0.0.1: a workspace filled by the real
//! pipeline on the shipped samples, then requests as a browser or an attacker would send them.
//! (The click-through in a real browser is `tests/serve.rs`.)

use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A run of the shipped recipes on `inbox` into workspace `out`.
fn run_into(inbox: &Path, out: &Path) -> crate::app::run::RunReport {
    crate::app::run::run(&crate::app::run::RunOptions::new(
        repo().join("recipes"),
        inbox.to_path_buf(),
        out.to_path_buf(),
    ))
    .unwrap()
}

/// Runs the pipeline on the first sample drop, then on a `clientes.csv` cut to its first 60
/// rows, which the guard holds. Returns (workspace, held run id).
fn held_workspace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let run = |inbox: &Path| run_into(inbox, &dir.path().join("out"));
    let day1 = repo().join("samples/2026-11-20");
    let inbox = dir.path().join("in1");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(&day1).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, inbox.join(p.file_name().unwrap())).unwrap();
        }
    }
    run(&inbox);
    let cut = dir.path().join("in2");
    std::fs::create_dir_all(&cut).unwrap();
    let bytes = std::fs::read(day1.join("clientes.csv")).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').take(61).collect();
    std::fs::write(cut.join("clientes.csv"), lines.join(&b'\n')).unwrap();
    let report = run(&cut);
    assert_eq!(report.status.as_str(), "held");
    (dir, report.run_id)
}

struct Server {
    base: String,
    csrf: String,
    login_csrf: String,
    _rt: tokio::runtime::Runtime,
}

fn start(out: &Path, token: Option<&str>) -> Server {
    start_with(out, token, &repo().join("recipes"))
}

fn start_with(out: &Path, token: Option<&str>, recipes: &Path) -> Server {
    let site = Site {
        cluster: None,
        remote: None,
        name: crate::app::metrics::DEFAULT_TENANT.into(),
        recipes: recipes.to_path_buf(),
        out: out.to_path_buf(),
    };
    start_sites(vec![site], false, token)
}

fn start_sites(sites: Vec<Site>, all_tenants: bool, token: Option<&str>) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared {
        csrf: random_token().unwrap(),
        login_csrf: random_token().unwrap(),
        token: token.map(AccessToken::new),
        hosts: vec![format!("127.0.0.1:{}", addr.port())],
    });
    let (csrf, login_csrf) = (shared.csrf.clone(), shared.login_csrf.clone());
    let apps = apps(&shared, sites, all_tenants);
    rt.spawn(async move { axum::serve(listener, router(shared, apps, all_tenants)).await });
    Server {
        base: format!("http://{addr}"),
        csrf,
        login_csrf,
        _rt: rt,
    }
}

fn client() -> reqwest::blocking::Client {
    crate::sinks::rest::ensure_crypto_provider();
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn live_clients(out: &Path) -> i64 {
    rusqlite::Connection::open(out.join("crm.sqlite"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM clientes WHERE _deleted = 0",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn run_page_shows_counts_rejects_with_lines_and_an_approve_form() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    let s = start(&out, None);
    let c = client();
    let runs = c.get(format!("{}/", s.base)).send().unwrap();
    assert_eq!(runs.status(), 200);
    let body = runs.text().unwrap();
    assert!(body.contains(&held_run), "runs list names the held run");
    assert!(body.contains("clientes.csv"), "files are listed");

    // The first run: its stored counts and its rejects, 50 a page, filterable.
    let first = crate::state::State::open(&out)
        .unwrap()
        .runs(10)
        .unwrap()
        .pop()
        .unwrap();
    let summary = first.summary.unwrap();
    let page = c
        .get(format!("{}/runs/{}", s.base, first.run_id))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let accepted = summary["entities"]["clientes"]["accepted"]
        .as_u64()
        .unwrap();
    assert!(
        page.contains(&format!("<td class=\"n accepted\">{accepted}</td>")),
        "clientes accepted = {accepted} shown"
    );
    let staging = rusqlite::Connection::open(out.join("staging.sqlite")).unwrap();
    let (file, line, reason): (String, i64, String) = staging
        .query_row(
            "SELECT file, line, reason FROM rejects WHERE run_id = ?1 AND entity = 'ventas'
             ORDER BY file, line, rowid LIMIT 1",
            [&first.run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let filtered = c
        .get(format!(
            "{}/runs/{}?entity=ventas&rule=",
            s.base, first.run_id
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let start = filtered.find("<table id=\"rejects\"").unwrap();
    let table = &filtered[start..start + filtered[start..].find("</table>").unwrap()];
    assert!(table.contains(&format!("<td class=\"n line\">{line}</td>")));
    assert!(table.contains(&maud::html! { (reason) }.into_string()));
    assert!(table.contains(&file));
    assert!(table.contains("<td>ventas</td>"));
    assert!(
        !table.contains("<td>clientes</td>"),
        "the entity filter hides other entities' rejects"
    );

    // The held run offers Approve with this server's CSRF token.
    let held = c
        .get(format!("{}/runs/{held_run}", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(held.contains("id=\"approve\""));
    assert!(held.contains(&format!("value=\"{}\"", s.csrf)));
}

#[test]
fn approve_needs_the_csrf_token_and_then_applies_the_deletes() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    let before = live_clients(&out);
    let s = start(&out, None);
    let c = client();
    let url = format!("{}/runs/{held_run}/approve", s.base);
    let forged = c.post(&url).form(&[("csrf", "guess")]).send().unwrap();
    assert_eq!(forged.status(), 403);
    let missing = c.post(&url).form(&[("other", "x")]).send().unwrap();
    assert!(missing.status().is_client_error());
    assert_eq!(
        live_clients(&out),
        before,
        "nothing deleted without the token"
    );

    let ok = c
        .post(&url)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303);
    let to = ok.headers()["location"].to_str().unwrap().to_string();
    let n: i64 = to.rsplit('=').next().unwrap().parse().unwrap();
    assert!(n > 0);
    assert_eq!(live_clients(&out), before - n);
    let again = c
        .post(&url)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(again.status(), 409, "a second approval is refused");
}

#[test]
fn a_token_guards_every_page_and_login_sets_a_cookie() {
    let (dir, _) = held_workspace();
    let s = start(&dir.path().join("out"), Some("s3cret-token"));
    let c = client();
    assert_eq!(c.get(format!("{}/", s.base)).send().unwrap().status(), 401);
    let wrong = c
        .get(format!("{}/", s.base))
        .bearer_auth("nope")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = c
        .get(format!("{}/", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    let form = c.get(format!("{}/login", s.base)).send().unwrap();
    assert_eq!(form.status(), 200, "the sign-in form needs no token");
    assert!(form.text().unwrap().contains("type=\"password\""));
    let wrong_login = c
        .post(format!("{}/login", s.base))
        .form(&[("token", "nope"), ("csrf", s.login_csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(wrong_login.status(), 401);
    assert!(wrong_login.headers().get("set-cookie").is_none());
    let login = c
        .post(format!("{}/login", s.base))
        .form(&[("token", "s3cret-token"), ("csrf", s.login_csrf.as_str())])
        .send()
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("s3cret-token"),
        "the cookie holds a value derived from the token, not the token: {cookie}"
    );
    let with_cookie = c
        .get(format!("{}/recipes", s.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    assert!(with_cookie.text().unwrap().contains("clientes.toml"));
}

#[test]
fn without_a_token_only_the_loopback_host_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None);
    let c = client();
    let ok = c.get(format!("{}/", s.base)).send().unwrap();
    assert_eq!(ok.status(), 200, "an empty workspace still renders");
    let rebound = c
        .get(format!("{}/", s.base))
        .header("host", "evil.example:80")
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 421);
}

#[test]
fn listening_beyond_loopback_requires_a_token() {
    let opts = ServeOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        token: None,
        sites: vec![Site {
            cluster: None,
            remote: None,
            name: "default".into(),
            recipes: repo().join("recipes"),
            out: PathBuf::from("unused"),
        }],
        all_tenants: false,
    };
    let err = serve(opts, |_| panic!("must not bind")).unwrap_err();
    assert!(matches!(err, ServeError::TokenRequired(_)), "{err}");
}

#[test]
fn search_shows_a_rows_history_and_escapes_what_it_echoes() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    let held_id: String = crate::state::State::open(&out)
        .unwrap()
        .db
        .query_row(
            "SELECT id FROM held_deletes WHERE run_id = ?1 AND entity = 'clientes' LIMIT 1",
            [&held_run],
            |r| r.get(0),
        )
        .unwrap();
    let s = start(&out, None);
    let c = client();
    let page = c
        .get(format!("{}/search?entity=clientes&id={held_id}", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("id=\"history\""));
    assert!(page.contains("new in the CRM"), "the client was inserted");
    assert!(
        page.contains(&held_run),
        "and held for delete in the cut run"
    );
    let evil = c
        .get(format!(
            "{}/search?entity=clientes&id=%3Cscript%3Ex%3C%2Fscript%3E",
            s.base
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!evil.contains("<script>x</script>"));
    assert!(evil.contains("&lt;script&gt;"));
}

#[test]
fn the_run_page_says_whether_google_sheets_was_updated() {
    let mut run = data::RunView {
        run_id: "r1".into(),
        started_at: "2026-11-27T01:00:00.000Z".into(),
        finished_at: Some("2026-11-27T01:00:02.500Z".into()),
        status: crate::model::RunState::Ok,
        files: Vec::new(),
        entities: Vec::new(),
        samples: Vec::new(),
        crm_rows_written: Some(3),
        error: None,
        gsheets: Some(serde_json::json!({"spreadsheet_id": "book", "sheets": [
            {"title": "clientes", "rows_written": 40, "rows_total": 300}]})),
    };
    assert_eq!(run.duration_secs(), Some(2.5));
    let render = |run: &data::RunView| {
        pages::run(&pages::RunPage {
            nav: pages::Nav::ROOT,
            run,
            held: &[],
            summary: &[],
            rejects: &data::RejectPage::default(),
            filter: &data::RejectFilter::default(),
            csrf: "t",
            approved: None,
        })
        .into_string()
    };
    assert!(render(&run).contains("clientes 40/300 rows"));
    run.gsheets = Some(serde_json::json!({"spreadsheet_id": "book", "error": "HTTP 500 <boom>"}));
    let page = render(&run);
    assert!(page.contains("Google Sheets not updated: HTTP 500 &lt;boom&gt;"));
}

#[test]
fn sign_in_needs_the_csrf_token_of_the_sign_in_form() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), Some("s3cret-token"));
    let c = client();
    let form = c
        .get(format!("{}/login", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        form.contains(&format!("name=\"csrf\" value=\"{}\"", s.login_csrf)),
        "the sign-in form carries the CSRF token: {form}"
    );
    assert!(
        !form.contains(&s.csrf),
        "Approve's CSRF token is not on a page anyone may load"
    );
    let url = format!("{}/login", s.base);
    // Another site can make the browser post the right token (say one it got hold of, to
    // sign the operator into its session) but cannot read our form's CSRF token.
    for fields in [
        vec![("token", "s3cret-token")],
        vec![("token", "s3cret-token"), ("csrf", "guess")],
        vec![("token", "s3cret-token"), ("csrf", "")],
    ] {
        let r = c.post(&url).form(&fields).send().unwrap();
        assert_eq!(r.status(), 403, "{fields:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{fields:?}");
    }
    let wrong_form = c
        .post(&url)
        .form(&[("token", "s3cret-token"), ("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(wrong_form.status(), 403, "Approve's token does not sign in");
    let ok = c
        .post(&url)
        .form(&[("token", "s3cret-token"), ("csrf", s.login_csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert!(ok.headers().get("set-cookie").is_some());
}

#[test]
fn secrets_compare_in_the_same_time_whether_or_not_their_lengths_match() {
    // A long token makes the work visible: comparing byte by byte after a length check
    // answers a guess of another length at once, which tells the token's length.
    let token = "t".repeat(1 << 20);
    let same_length = format!("{}x", &token[1..]);
    let other_length = format!("{token}x");
    assert!(same_secret(&token, &token));
    assert!(!same_secret(&same_length, &token));
    assert!(!same_secret(&other_length, &token));
    assert!(!same_secret("", &token));
    // Interleaved, fastest of many: what the comparison costs, not what the machine did.
    let time = |guess: &str| {
        let at = std::time::Instant::now();
        std::hint::black_box(same_secret(std::hint::black_box(guess), &token));
        at.elapsed()
    };
    let (mut same, mut other) = (std::time::Duration::MAX, std::time::Duration::MAX);
    for _ in 0..15 {
        same = same.min(time(&same_length));
        other = other.min(time(&other_length));
    }
    // A wide band: the leaky comparison answered a wrong length about a million times
    // faster (26 ns against 15 ms), so only that, not a busy machine, can fail this.
    let ratio = other.as_secs_f64() / same.as_secs_f64();
    assert!(
        (0.05..20.0).contains(&ratio),
        "same length {same:?}, other length {other:?}: the time tells the length"
    );
}

#[test]
fn no_page_writes_the_workspace_only_approve_does() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    // Leave a committed but not checkpointed change in each database's WAL, as a run that is
    // writing at the same moment does. A read-write connection closing last checkpoints it
    // into the database file (a write); a read-only one never does.
    for db in ["state/state.sqlite", "staging.sqlite"] {
        let conn = rusqlite::Connection::open(out.join(db)).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        conn.execute_batch("CREATE TABLE probe (x); INSERT INTO probe VALUES (1);")
            .unwrap();
        drop(conn);
        assert!(
            out.join(format!("{db}-wal")).exists(),
            "{db}: the change waits in the WAL"
        );
    }
    let files = ["state/state.sqlite", "staging.sqlite", "crm.sqlite"];
    let snapshot = || {
        files
            .iter()
            .map(|f| blake3::hash(&std::fs::read(out.join(f)).unwrap()))
            .collect::<Vec<_>>()
    };
    let before = snapshot();
    let held_id: String = rusqlite::Connection::open_with_flags(
        out.join("state/state.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
    .query_row(
        "SELECT id FROM held_deletes WHERE run_id = ?1 LIMIT 1",
        [&held_run],
        |r| r.get(0),
    )
    .unwrap();
    let s = start(&out, None);
    let c = client();
    let held_search = format!("/search?entity=clientes&id={held_id}");
    for path in [
        "/".to_string(),
        format!("/runs/{held_run}"),
        format!("/runs/{held_run}?entity=clientes&rule=id.empty&page=3"),
        "/recipes".to_string(),
        "/search".to_string(),
        held_search.clone(),
        "/search?entity=ventas&id=OP-1".to_string(),
        "/login".to_string(),
    ] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        // (Not `path.contains(held_id)`: a short ID may also occur in the run's ID.)
        if path == held_search {
            let page = r.text().unwrap();
            assert!(page.contains("new in the CRM"), "{path}: {page}");
        }
    }
    let login = c
        .post(format!("{}/login", s.base))
        .form(&[("token", "x"), ("csrf", s.login_csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(login.status(), 303);
    let forged = c
        .post(format!("{}/runs/{held_run}/approve", s.base))
        .form(&[("csrf", "guess")])
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(
        before == snapshot(),
        "a page wrote to state.sqlite, staging.sqlite or crm.sqlite"
    );
}

#[test]
fn odd_queries_are_answered_not_crashed_on() {
    let (dir, held_run) = held_workspace();
    let s = start(&dir.path().join("out"), None);
    let c = client();
    for q in [
        format!("page={}", usize::MAX),
        format!("page={}", usize::MAX / 50 + 1),
        "page=99999999999&entity=%1b%5b2J&rule=%00".to_string(),
    ] {
        let r = c
            .get(format!("{}/runs/{held_run}?{q}", s.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        assert!(r.text().unwrap().contains("id=\"rejects\""), "{q}");
    }
}

#[test]
fn the_recipes_page_hides_credentials_in_urls() {
    let dir = tempfile::tempdir().unwrap();
    let recipes = dir.path().join("recipes");
    std::fs::create_dir_all(&recipes).unwrap();
    for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, recipes.join(p.file_name().unwrap())).unwrap();
    }
    let mut pipeline = std::fs::read_to_string(recipes.join("pipeline.toml")).unwrap();
    pipeline.push_str(
        "\n[target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"https://ops:hunter2@crm.example.com/api\"\ntoken_env = \"CRM_TOKEN\"\n",
    );
    std::fs::write(recipes.join("pipeline.toml"), pipeline).unwrap();
    let s = start_with(dir.path(), None, &recipes);
    let page = client()
        .get(format!("{}/recipes", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("crm.example.com/api"), "{page}");
    assert!(!page.contains("hunter2"), "{page}");
    assert_eq!(
        data::hide_url_credentials("a = \"http://u:p@h/x\" b = \"https://h2/\" c = mail@x.org"),
        "a = \"http://…@h/x\" b = \"https://h2/\" c = mail@x.org"
    );
}

/// Where `needle` first occurs in `page`, or a panic naming it.
fn at(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not on the page"))
}

/// `(entity, rule) -> count` of a run's rejects, straight from staging.sqlite.
fn counts_by_rule(out: &Path, run_id: &str) -> Vec<(String, String, usize)> {
    let db = rusqlite::Connection::open(out.join("staging.sqlite")).unwrap();
    let mut st = db
        .prepare(
            "SELECT entity, rule, count(*) FROM rejects WHERE run_id = ?1
             GROUP BY entity, rule ORDER BY entity, rule",
        )
        .unwrap();
    st.query_map([run_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as usize))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The summary's link to one entity's rows of one rule, as it appears in the HTML.
fn summary_href(run_id: &str, entity: &str, rule: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("page", "0")
        .append_pair("entity", entity)
        .append_pair("rule", rule)
        .finish();
    maud::html! { (format!("/runs/{run_id}?{query}#rejects-title")) }.into_string()
}

/// The HTML of `table#{id}`, up to its end.
fn table_of<'a>(page: &'a str, id: &str) -> &'a str {
    let start = at(page, &format!("<table id=\"{id}\""));
    &page[start..start + page[start..].find("</table>").unwrap()]
}

/// The rows of `table#rejects` as `(entity, rule)`, header left out.
fn reject_rows(page: &str) -> Vec<(String, String)> {
    table_of(page, "rejects")
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td")
                .skip(1)
                .map(|c| &c[c.find('>').unwrap() + 1..])
                .collect();
            let rule = cells[5];
            let rule = &rule["<code>".len()..rule.find("</code>").unwrap()];
            let entity = &cells[0][..cells[0].find("</td>").unwrap()];
            (entity.to_string(), rule.to_string())
        })
        .collect()
}

#[test]
fn the_run_page_shows_an_exports_drift_the_recipe_patch_and_the_fields_updated() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    for e in std::fs::read_dir(repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, inbox.join(p.file_name().unwrap())).unwrap();
        }
    }
    let out = dir.path().join("out");
    let run = || run_into(&inbox, &out);
    run();
    // `Email` renamed in the header (ASCII bytes in a Windows-1252 file).
    let clientes = inbox.join("clientes.csv");
    let bytes = std::fs::read(&clientes).unwrap();
    let at = bytes.windows(7).position(|w| w == b";Email;").unwrap();
    let mut renamed = bytes[..at].to_vec();
    renamed.extend_from_slice(b";E-mail;");
    renamed.extend_from_slice(&bytes[at + 7..]);
    std::fs::write(&clientes, renamed).unwrap();
    let report = run();
    let s = start(&out, None);
    let page = client()
        .get(format!("{}/runs/{}", s.base, report.run_id))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let row = &page[at_str(&page, "<tr data-entity=\"clientes\">")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("columns changed: renamed &quot;Email&quot; -&gt; &quot;E-mail&quot;"),
        "{row}"
    );
    assert!(row.contains("+from = &quot;E-mail&quot;"), "{row}");
    // Every email the file had is gone from the field: the most changed field, first.
    assert!(row.contains("fields updated: email "), "{row}");
    let ventas = &page[at_str(&page, "<tr data-entity=\"ventas\">")..];
    assert!(!ventas[..ventas.find("</tr>").unwrap()].contains("columns changed"));
}

fn at_str(page: &str, needle: &str) -> usize {
    page.find(needle)
        .unwrap_or_else(|| panic!("{needle} in the page"))
}

#[test]
fn the_run_page_counts_rejects_by_rule_each_linking_to_its_rows() {
    let (dir, _) = held_workspace();
    let out = dir.path().join("out");
    let first = crate::state::State::open(&out)
        .unwrap()
        .runs(10)
        .unwrap()
        .pop()
        .unwrap();
    let expected = counts_by_rule(&out, &first.run_id);
    assert!(
        expected.len() >= 3,
        "the sample's first day rejects rows under several rules: {expected:?}"
    );
    let s = start(&out, None);
    let c = client();
    let get = |url: &str| {
        let r = c.get(format!("{}{url}", s.base)).send().unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.text().unwrap()
    };
    let page = get(&format!("/runs/{}", first.run_id));
    let table = table_of(&page, "reject-summary");
    for (entity, rule, n) in &expected {
        let row = format!("<tr data-entity=\"{entity}\" data-rule=\"{rule}\">");
        let row = &table[at(table, &row)..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!("<td class=\"n count\">{n}</td>")),
            "{entity} {rule}: {n} rows in {row}"
        );
        assert!(
            row.contains(&format!(
                "href=\"{}\"",
                summary_href(&first.run_id, entity, rule)
            )),
            "{entity} {rule} links to its rows: {row}"
        );
    }
    assert_eq!(
        table.matches("<tr data-entity=").count(),
        expected.len(),
        "one row per entity and rule"
    );

    // Each link lists exactly that entity's rows of that rule.
    for (entity, rule, n) in &expected {
        let href = summary_href(&first.run_id, entity, rule).replace("&amp;", "&");
        let filtered = get(href.split('#').next().unwrap());
        let rows = reject_rows(&filtered);
        assert_eq!(rows.len(), (*n).min(PER_PAGE), "{href}");
        assert!(
            rows.iter().all(|(e, r)| e == entity && r == rule),
            "{href}: {rows:?}"
        );
        assert!(
            filtered.contains(&format!("<p id=\"reject-count\">{n} rows · page 1 of")),
            "{href}"
        );
        // The summary still counts every rule under a filter.
        assert_eq!(
            table_of(&filtered, "reject-summary")
                .matches("<tr data-entity=")
                .count(),
            expected.len(),
            "{href}"
        );
    }
}

#[test]
fn a_rule_named_with_odd_characters_is_escaped_linked_and_paginated() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    // A recipe names its rules: this one has HTML, URL and quote characters in it.
    let rule = "a&b <i>\"x\"</i> #1 ?q=%2F/+'é";
    let staging = rusqlite::Connection::open(out.join("staging.sqlite")).unwrap();
    for line in 0..(PER_PAGE + 7) {
        staging
            .execute(
                "INSERT INTO rejects VALUES (?1, 'clientes', 'clientes.csv', ?2, 'X', ?3, ?4, 'odd')",
                rusqlite::params![
                    held_run,
                    1000 + line as i64,
                    if line == 0 { "warning" } else { "error" },
                    rule
                ],
            )
            .unwrap();
    }
    drop(staging);
    let s = start(&out, None);
    let c = client();
    let get = |url: &str| {
        let r = c.get(format!("{}{url}", s.base)).send().unwrap();
        assert_eq!(r.status(), 200, "{url}");
        r.text().unwrap()
    };
    let page = get(&format!("/runs/{held_run}"));
    assert!(!page.contains("<i>"), "the rule's HTML is escaped");
    let escaped = maud::html! { (rule) }.into_string();
    assert!(escaped.contains("&lt;i&gt;") && escaped.contains("&amp;b"));
    let summary = table_of(&page, "reject-summary");
    let row = &summary[at(summary, &format!("data-rule=\"{escaped}\""))..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("<code>{escaped}</code>")),
        "shown escaped: {row}"
    );
    assert!(
        row.contains(&format!("<td class=\"n count\">{}</td>", PER_PAGE + 7)),
        "{row}"
    );
    assert!(
        row.contains("data-status=\"error\"") && row.contains("data-status=\"warning\""),
        "both severities: {row}"
    );
    let href = summary_href(&held_run, "clientes", rule);
    assert!(row.contains(&format!("href=\"{href}\"")), "{row}");
    let href = href.replace("&amp;", "&");
    assert!(
        href.contains(
            "rule=a%26b+%3Ci%3E%22x%22%3C%2Fi%3E+%231+%3Fq%3D%252F%2F%2B%27%C3%A9#rejects-title"
        ),
        "the rule is form-encoded in the link: {href}"
    );

    // The link filters to that rule, 50 a page, and the next page keeps the filter.
    let first = get(href.split('#').next().unwrap());
    let rows = reject_rows(&first);
    assert_eq!(rows.len(), PER_PAGE);
    assert!(rows.iter().all(|(e, r)| e == "clientes" && *r == escaped));
    assert!(first.contains(&format!(
        "<p id=\"reject-count\">{} rows · page 1 of 2</p>",
        PER_PAGE + 7
    )));
    assert!(
        first.contains(&format!("<option value=\"{escaped}\" selected>")),
        "the filter form shows the rule chosen"
    );
    let next = &first[at(&first, "<a id=\"next\" href=\"") + "<a id=\"next\" href=\"".len()..];
    let next = next[..next.find('"').unwrap()].replace("&amp;", "&");
    assert_eq!(
        next,
        href.replace("page=0", "page=1"),
        "the next page keeps the filters"
    );
    let second = get(next.split('#').next().unwrap());
    let rows = reject_rows(&second);
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|(e, r)| e == "clientes" && *r == escaped));
    assert!(second.contains("id=\"prev\""));
}

#[test]
fn the_run_page_puts_what_an_operator_acts_on_first() {
    let entity = crate::model::EntitySummary {
        read: 10,
        held_deletes: 3,
        ..Default::default()
    };
    let run = data::RunView {
        run_id: "r9".into(),
        started_at: "2026-11-27T01:00:00.000Z".into(),
        finished_at: None,
        status: crate::model::RunState::Held,
        files: vec![data::RunFile {
            entity: "clientes".into(),
            file: "clientes.csv".into(),
            hash: "ab".repeat(32),
            bytes: 10,
            encoding: None,
            status: crate::model::FileStatus::Read,
            reason: None,
        }],
        entities: vec![("clientes".into(), entity)],
        samples: vec![(
            "clientes".into(),
            serde_json::json!({"inserted": ["7"], "inserted_rows": [{"id": "7", "nombre": "Ana"}]}),
        )],
        crm_rows_written: None,
        error: Some("CRM answered 500".into()),
        gsheets: None,
    };
    let held = [data::Held {
        entity: "clientes".into(),
        state: crate::model::HoldState::Held,
        ids: vec!["1".into(), "2".into(), "3".into()],
    }];
    let summary = [data::RuleCount {
        entity: "clientes".into(),
        rule: "id.empty".into(),
        severities: vec!["error".into()],
        count: 4,
    }];
    let page = pages::run(&pages::RunPage {
        nav: pages::Nav::ROOT,
        run: &run,
        held: &held,
        summary: &summary,
        rejects: &data::RejectPage::default(),
        filter: &data::RejectFilter::default(),
        csrf: "t",
        approved: None,
    })
    .into_string();
    // Status and error, held deletes and Approve, rejects by rule, counts, files, samples,
    // then the rejects listing.
    let order = [
        "id=\"run-status\"",
        "id=\"run-error\"",
        "id=\"held-title\"",
        "data-held=\"clientes\"",
        "<form id=\"approve\"",
        "<table id=\"reject-summary\"",
        "<table id=\"entities\"",
        "<table id=\"files\"",
        "id=\"samples-title\"",
        "<table class=\"sample\"",
        "id=\"rejects-title\"",
        "<table id=\"rejects\"",
    ];
    let positions: Vec<usize> = order.iter().map(|n| at(&page, n)).collect();
    for (w, names) in positions.windows(2).zip(order.windows(2)) {
        assert!(w[0] < w[1], "{} must come before {}", names[0], names[1]);
    }
    // Every table scrolls sideways inside its own box.
    assert_eq!(
        page.matches("<table").count(),
        page.matches("<div class=\"scroll\"><table").count(),
        "{page}"
    );
    assert!(page.contains(".scroll{overflow-x:auto;max-width:100%}"));
}

#[test]
fn runs_redirects_to_the_run_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), None);
    let c = client();
    for path in ["/runs", "/runs/"] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/", "{path}");
    }
    let list = c.get(format!("{}/", s.base)).send().unwrap();
    assert_eq!(list.status(), 200);
    assert!(list.text().unwrap().contains("<h1>Runs</h1>"));
    let guarded = start(dir.path(), Some("s3cret-token"));
    let r = c.get(format!("{}/runs", guarded.base)).send().unwrap();
    assert_eq!(r.status(), 401, "the token guards /runs too");
}

#[test]
fn metrics_report_the_workspaces_runs_rows_and_holds() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    let server = start(&out, None);
    let resp = client()
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        crate::app::metrics::CONTENT_TYPE
    );
    let text = resp.text().unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in\n{text}"))
    };
    // Two runs: the first drop (ok), then the cut clientes (held).
    assert_eq!(
        value(r#"dropsync_runs_total{tenant="default",status="ok"}"#),
        1.0
    );
    assert_eq!(
        value(r#"dropsync_runs_total{tenant="default",status="held"}"#),
        1.0
    );
    // Rows summed over both runs, as their summaries stored them.
    let runs = Workspace { out: out.clone() }.runs(10).unwrap();
    let sum = |entity: &str, pick: fn(&crate::model::EntitySummary) -> usize| -> f64 {
        runs.iter()
            .flat_map(|r| r.entities.iter())
            .filter(|(e, _)| e == entity)
            .map(|(_, s)| pick(s) as f64)
            .sum()
    };
    let inserted = sum("clientes", |s| s.inserted);
    assert!(inserted > 0.0);
    assert_eq!(
        value(r#"dropsync_rows_total{tenant="default",entity="clientes",outcome="inserted"}"#),
        inserted
    );
    assert_eq!(
        value(r#"dropsync_rows_total{tenant="default",entity="ventas",outcome="rejected"}"#),
        sum("ventas", |s| s.rejected)
    );
    // The guard's holds, now, and the last run's status.
    let held = Workspace { out: out.clone() }.held(&held_run).unwrap();
    let held_ids: usize = held.iter().map(|h| h.ids.len()).sum();
    assert!(held_ids > 0);
    assert_eq!(
        value(r#"dropsync_held_deletes{tenant="default",entity="clientes"}"#),
        held_ids as f64
    );
    assert_eq!(
        value(r#"dropsync_last_run_status{tenant="default",status="held"}"#),
        1.0
    );
    assert!(value(r#"dropsync_last_run_stage_seconds{tenant="default",stage="diff"}"#) >= 0.0);
    assert!(value(r#"dropsync_last_completed_run_timestamp_seconds{tenant="default"}"#) > 1.7e9);

    // Approved: nothing held any more, the run counted as approved.
    let approve = client()
        .post(format!("{}/runs/{held_run}/approve", server.base))
        .form(&[("csrf", server.csrf.as_str())])
        .send()
        .unwrap();
    assert!(approve.status().is_success() || approve.status().is_redirection());
    let text = scrape(&server);
    assert!(
        text.contains(r#"dropsync_runs_total{tenant="default",status="approved"} 1"#),
        "{text}"
    );
    assert!(!text.contains("dropsync_held_deletes{"), "{text}");
}

#[test]
fn metrics_of_an_empty_workspace_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let server = start(&dir.path().join("out"), None);
    let text = scrape(&server);
    // No run yet: no series, and a valid exposition all the same.
    assert_eq!(text, "# EOF\n");
}

/// The body of `/metrics`.
fn scrape(server: &Server) -> String {
    client()
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// `serve --all-tenants`: every dealer listed at `/` with its last run and holds, each one's
/// pages under `/t/NAME` with links, forms and redirects that stay there, Approve acting on
/// that dealer's workspace only, and one `/metrics` with a series per dealer.
#[test]
fn all_tenants_are_listed_each_under_its_own_path() {
    let (held_dir, held_run) = held_workspace();
    let norte = held_dir.path().join("out");
    let (ok_dir, _) = held_workspace();
    let sur = ok_dir.path().join("out");
    let sur_before = live_clients(&sur);
    let fresh = tempfile::tempdir().unwrap();
    let site = |name: &str, out: &Path| Site {
        cluster: None,
        remote: None,
        name: name.into(),
        recipes: repo().join("recipes"),
        out: out.to_path_buf(),
    };
    let s = start_sites(
        vec![
            site("este", &fresh.path().join("never-ran")),
            site("norte", &norte),
            site("sur", &sur),
        ],
        true,
        None,
    );
    let c = client();
    let get = |path: &str| {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };

    let (status, index) = get("/");
    assert_eq!(status, 200);
    let row = |name: &str| {
        let from = at(&index, &format!("data-tenant=\"{name}\""));
        let to = index[from..].find("</tr>").unwrap() + from;
        index[from..to].to_string()
    };
    assert!(row("este").contains("No run yet."), "{}", row("este"));
    let norte_row = row("norte");
    assert!(
        norte_row.contains(&format!("href=\"/t/norte/runs/{held_run}\"")),
        "{norte_row}"
    );
    assert!(norte_row.contains("data-status=\"held\""), "{norte_row}");
    let held_now: usize = crate::state::State::open(&norte)
        .unwrap()
        .held(&held_run)
        .unwrap()
        .0
        .iter()
        .map(|(_, ids)| ids.len())
        .sum();
    assert!(held_now > 0);
    assert!(
        norte_row.contains(&format!("<td class=\"n held\">{held_now}</td>")),
        "{norte_row}"
    );

    let (status, list) = get("/t/norte");
    assert_eq!(status, 200);
    assert!(
        list.contains("<strong id=\"tenant\">norte</strong>"),
        "{list}"
    );
    assert!(list.contains(&format!("href=\"/t/norte/runs/{held_run}\"")));
    assert!(!list.contains("href=\"/runs/"), "no link leaves the tenant");
    for (path, to) in [("/t/norte/", "/t/norte"), ("/t/norte/runs", "/t/norte")] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], to, "{path}");
    }
    let (status, page) = get(&format!("/t/norte/runs/{held_run}"));
    assert_eq!(status, 200);
    assert!(page.contains(&format!("action=\"/t/norte/runs/{held_run}/approve\"")));
    assert!(
        page.contains(&format!("action=\"/t/norte/runs/{held_run}\"")),
        "reject filter"
    );
    let (status, _) = get(&format!("/t/este/runs/{held_run}"));
    assert_eq!(status, 404, "a run belongs to its own dealer");
    let (status, este) = get("/t/este");
    assert_eq!(status, 200);
    assert!(este.contains("No run yet"));
    assert_eq!(get("/t/nobody").0, 404);
    let (status, search) = get("/t/sur/search");
    assert_eq!(status, 200);
    assert!(search.contains("action=\"/t/sur/search\""));

    // Approve at norte changes norte's CRM and no one else's.
    let norte_before = live_clients(&norte);
    let approved = c
        .post(format!("{}/t/norte/runs/{held_run}/approve", s.base))
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(approved.status(), 303);
    let to = approved.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&format!("/t/norte/runs/{held_run}?approved=")),
        "{to}"
    );
    assert_eq!(live_clients(&norte), norte_before - held_now as i64);
    assert_eq!(live_clients(&sur), sur_before);

    // One scrape, one family per metric, a series per dealer that has run.
    let text = scrape(&s);
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(
        text.matches("# TYPE dropsync_runs counter").count(),
        1,
        "{text}"
    );
    for line in [
        "dropsync_runs_total{tenant=\"norte\",status=\"approved\"} 1",
        "dropsync_runs_total{tenant=\"sur\",status=\"held\"} 1",
        "dropsync_runs_total{tenant=\"sur\",status=\"ok\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(!text.contains("tenant=\"este\""), "{text}");
    let one = client()
        .get(format!("{}/t/sur/metrics", s.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        one.contains("dropsync_runs_total{tenant=\"sur\",status=\"ok\"} 1"),
        "{one}"
    );
    assert!(!one.contains("tenant=\"norte\""), "{one}");
}

/// Approve from the page takes the tenant's cluster-wide lock as `dropsync approve` does: a
/// worker elsewhere holding the tenant makes it a refusal that says so, and nothing changes.
#[test]
fn approve_is_refused_while_another_machine_holds_the_tenant() {
    let (dir, held_run) = held_workspace();
    let out = dir.path().join("out");
    let db = dropsync_testkit::postgres::TestDb::new("serve_cluster_lock");
    let url = std::env::var(&db.env_var).unwrap();
    let cluster = crate::state::cluster_lock::ClusterLock::new(url, "norte".into());
    let elsewhere = cluster.acquire().unwrap();
    let s = start_sites(
        vec![Site {
            cluster: Some(cluster),
            remote: None,
            name: "norte".into(),
            recipes: repo().join("recipes"),
            out: out.clone(),
        }],
        true,
        None,
    );
    let before = live_clients(&out);
    let url = format!("{}/t/norte/runs/{held_run}/approve", s.base);
    let refused = client()
        .post(&url)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(refused
        .text()
        .unwrap()
        .contains("tenant norte is being worked on by another dropsync"));
    assert_eq!(live_clients(&out), before);
    drop(elsewhere);
    let ok = client()
        .post(&url)
        .form(&[("csrf", s.csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert!(live_clients(&out) < before);
}

/// With a tenant's state in PostgreSQL, the status page shows what runs on other machines
/// published: its own folder starts empty and follows each publication.
#[test]
fn pages_follow_the_state_published_by_runs_elsewhere() {
    let (dir, held_run) = held_workspace();
    let elsewhere = dir.path().join("out");
    let db = dropsync_testkit::postgres::TestDb::new("serve_remote_state");
    let remote =
        crate::state::remote::RemoteState::new(std::env::var(&db.env_var).unwrap(), "norte".into());
    {
        let state = crate::state::State::open(&elsewhere).unwrap();
        remote.publish(&elsewhere, &state.db).unwrap();
    }
    let here = tempfile::tempdir().unwrap();
    let s = start_sites(
        vec![Site {
            cluster: None,
            remote: Some(remote.clone()),
            name: "norte".into(),
            recipes: repo().join("recipes"),
            out: here.path().join("norte"),
        }],
        true,
        None,
    );
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", s.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let list = get("/t/norte");
    assert!(list.contains(&held_run), "{list}");
    let index = get("/");
    assert!(
        index.contains(&format!("/t/norte/runs/{held_run}")),
        "{index}"
    );
    assert!(get("/metrics").contains("dropsync_runs_total{tenant=\"norte\",status=\"held\"} 1"));

    // Approved elsewhere and published: the next page view shows it.
    crate::app::run::approve(&repo().join("recipes"), &elsewhere, &held_run, None, None).unwrap();
    {
        let state = crate::state::State::open(&elsewhere).unwrap();
        remote.publish(&elsewhere, &state.db).unwrap();
    }
    assert!(get("/metrics").contains("dropsync_runs_total{tenant=\"norte\",status=\"approved\"} 1"));
    let page = get(&format!("/t/norte/runs/{held_run}"));
    assert!(page.contains("data-status=\"approved\""), "{page}");
}
