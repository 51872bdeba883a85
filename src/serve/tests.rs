//! The status server's rules, over real HTTP on 127.0.0.1: a workspace filled by the real
//! pipeline on the shipped samples, then requests as a browser or an attacker would send them.
//! (The click-through in a real browser is `tests/serve.rs`.)

use std::path::{Path, PathBuf};

use super::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the pipeline on the first sample drop, then on a `clientes.csv` cut to its first 60
/// rows, which the guard holds. Returns (workspace, held run id).
fn held_workspace() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let run = |inbox: &Path| {
        crate::pipeline::run(&crate::pipeline::RunOptions {
            recipes: repo().join("recipes"),
            inbox: inbox.to_path_buf(),
            out: dir.path().join("out"),
            dry_run: false,
            progress: false,
            stop: None,
        })
        .unwrap()
    };
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
    _rt: tokio::runtime::Runtime,
}

fn start(out: &Path, token: Option<&str>) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(App {
        ws: Workspace {
            out: out.to_path_buf(),
        },
        recipes: repo().join("recipes"),
        csrf: random_token().unwrap(),
        token: token.map(str::to_owned),
        hosts: vec![format!("127.0.0.1:{}", addr.port())],
    });
    let csrf = app.csrf.clone();
    rt.spawn(async move { axum::serve(listener, router(app)).await });
    Server {
        base: format!("http://{addr}"),
        csrf,
        _rt: rt,
    }
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
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
        .form(&[("token", "nope")])
        .send()
        .unwrap();
    assert_eq!(wrong_login.status(), 401);
    assert!(wrong_login.headers().get("set-cookie").is_none());
    let login = c
        .post(format!("{}/login", s.base))
        .form(&[("token", "s3cret-token")])
        .send()
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
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
        recipes: repo().join("recipes"),
        out: PathBuf::from("unused"),
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
        status: "ok".into(),
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
            run,
            held: &[],
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
