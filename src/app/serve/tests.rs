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
        crate::app::run::run(&crate::app::run::RunOptions {
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
    login_csrf: String,
    _rt: tokio::runtime::Runtime,
}

fn start(out: &Path, token: Option<&str>) -> Server {
    start_with(out, token, &repo().join("recipes"))
}

fn start_with(out: &Path, token: Option<&str>, recipes: &Path) -> Server {
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
        recipes: recipes.to_path_buf(),
        csrf: random_token().unwrap(),
        login_csrf: random_token().unwrap(),
        token: token.map(AccessToken::new),
        hosts: vec![format!("127.0.0.1:{}", addr.port())],
    });
    let (csrf, login_csrf) = (app.csrf.clone(), app.login_csrf.clone());
    rt.spawn(async move { axum::serve(listener, router(app)).await });
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
    for path in [
        "/".to_string(),
        format!("/runs/{held_run}"),
        format!("/runs/{held_run}?entity=clientes&rule=id.empty&page=3"),
        "/recipes".to_string(),
        "/search".to_string(),
        format!("/search?entity=clientes&id={held_id}"),
        "/search?entity=ventas&id=OP-1".to_string(),
        "/login".to_string(),
    ] {
        let r = c.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        if path.contains(&held_id) {
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
