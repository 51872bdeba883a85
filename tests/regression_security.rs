//! Issue #11, guarantees under faults and hostile input, through the real binary: a webhook
//! alert never panics the process, secrets in URLs (a webhook's path, a base URL's
//! `user:password@`) never reach stderr, stdout, the log file or state.sqlite, and data
//! cannot drive the operator's terminal.

mod support;

use std::process::Output;

use support::{clients_csv, Workdir, WORKSPACE};

/// A port on 127.0.0.1 that refuses connections (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn append(w: &Workdir, file: &str, text: &str) {
    let path = w.recipes().join(file);
    let mut s = std::fs::read_to_string(&path).unwrap();
    s.push_str(text);
    std::fs::write(path, s).unwrap();
}

/// `dropsync <args>` on the workspace with extra environment, logging at `level`.
fn run_env(w: &Workdir, args: &[&str], env: &[(&str, &str)], level: &str) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dropsync"));
    c.current_dir(w.path())
        .env("RUST_LOG", level)
        .args(args)
        .args(WORKSPACE);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Everything the process left for a human: stdout, stderr, the log files, and the run
/// summaries in state.sqlite.
fn everything_shown(w: &Workdir, outputs: &[&Output]) -> String {
    let mut all = String::new();
    for o in outputs {
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    if let Ok(dir) = std::fs::read_dir(w.path().join("logs")) {
        for f in dir {
            all.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
        }
    }
    let state = w.out().join("state/state.sqlite");
    if state.exists() {
        for s in w.rows(
            "state/state.sqlite",
            "SELECT coalesce(summary, '') FROM runs",
        ) {
            all.push_str(&s);
        }
    }
    all
}

const HEADER_ONLY: &str = "Nro Cliente;Razón Social / Nombre;Tipo;CUIT/DNI;Email;Teléfono;Celular;Domicilio;Localidad;Provincia;Código Postal;Fecha Alta\n";

/// Loads five clients (no alert: nothing to say), then leaves a header-only `clientes.csv`
/// in the inbox: the next run is held by the guard, which alerts.
fn held_next(w: &Workdir) {
    w.cp1252("clientes.csv", &clients_csv(5, &[], &[]));
    let first = w.run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    w.cp1252("clientes.csv", HEADER_ONLY);
}

#[test]
fn a_webhook_alert_is_sent_without_panicking_the_binary() {
    let w = Workdir::new();
    append(
        &w,
        "pipeline.toml",
        "\n[alerts]\nwebhook_env = \"DROPSYNC_HOOK\"\n",
    );
    held_next(&w);
    let hook = format!("http://127.0.0.1:{}/x", closed_port());
    let r = w.run_with_env(&[("DROPSYNC_HOOK", &hook)]);
    assert_ne!(r.code, 101, "the alert panicked the process:\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(r.json["status"], "held", "the JSON summary is printed");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("WARN") && r.stderr.contains("alert not sent"),
        "the failed alert is a warning: {}",
        r.stderr
    );
}

#[test]
fn a_failing_webhook_never_shows_its_secret_path() {
    let w = Workdir::new();
    append(
        &w,
        "pipeline.toml",
        "\n[alerts]\nwebhook_env = \"DROPSYNC_HOOK\"\n",
    );
    held_next(&w);
    let port = closed_port();
    let hook = format!("http://127.0.0.1:{port}/secret-token-XYZ?key=k3y-XYZ");
    let out = run_env(
        &w,
        &["run", "--inbox", "in", "--json", "--log-dir", "logs"],
        &[("DROPSYNC_HOOK", &hook)],
        "debug",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/…")),
        "the failure names the host, redacted: {stderr}"
    );
    let all = everything_shown(&w, &[&out]);
    assert!(!all.contains("secret-token-XYZ"), "{all}");
    assert!(!all.contains("k3y-XYZ"), "{all}");
}

#[test]
fn rest_base_url_credentials_are_never_shown() {
    let w = Workdir::new();
    let port = closed_port();
    append(
        &w,
        "pipeline.toml",
        &format!(
            "\n[alerts]\nwebhook_env = \"DROPSYNC_HOOK\"\n\
             [target]\nkind = \"rest\"\n[target.rest]\n\
             base_url = \"http://user:hunter2@127.0.0.1:{port}/api\"\n\
             token_env = \"DROPSYNC_TEST_CRM_TOKEN\"\nmax_retries = 1\n\
             backoff_base_ms = 1\nbackoff_max_ms = 5\ntimeout_ms = 2000\n"
        ),
    );
    w.cp1252("clientes.csv", &clients_csv(3, &[], &[]));
    let hook = format!("http://127.0.0.1:{}/secret-token-XYZ", closed_port());
    let env = [
        ("DROPSYNC_TEST_CRM_TOKEN", "crm-token-value"),
        ("DROPSYNC_HOOK", hook.as_str()),
    ];
    // The CRM is down: the run fails, says so on stderr and in its JSON, records the error
    // in state.sqlite and sends a failure alert (which fails too).
    let json = run_env(
        &w,
        &["run", "--inbox", "in", "--json", "--log-dir", "logs"],
        &env,
        "debug",
    );
    let stderr = String::from_utf8_lossy(&json.stderr).to_string();
    assert_eq!(json.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}/…")),
        "the CRM is named, redacted: {stderr}"
    );
    let table = run_env(&w, &["run", "--inbox", "in"], &env, "info");
    let check = run_env(&w, &["check"], &env, "info");
    let all = everything_shown(&w, &[&json, &table, &check]);
    for secret in ["hunter2", "user:", "secret-token-XYZ", "crm-token-value"] {
        assert!(!all.contains(secret), "{secret} shown in:\n{all}");
    }
}

#[test]
fn printable_shows_control_characters_escaped() {
    use dropsync::cli::printable;
    assert!(matches!(
        printable("Pérez, Juan"),
        std::borrow::Cow::Borrowed("Pérez, Juan")
    ));
    assert_eq!(printable("a\x1b]0;pwned\x07b"), "a\\u{1b}]0;pwned\\u{7}b");
    assert_eq!(printable("\x1b[2J"), "\\u{1b}[2J");
    assert_eq!(printable("x\ty\r\nz"), "x\\ty\\r\\nz");
    assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m", "C1 CSI");
    assert_eq!(
        printable("abc\u{202e}fed"),
        "abc\\u{202e}fed",
        "bidi overrides"
    );
    assert_eq!(printable("zero\u{200b}width"), "zero\\u{200b}width");
}

#[test]
fn plan_and_explain_never_print_terminal_escapes_from_the_data() {
    let w = Workdir::new();
    w.utf8("clientes.csv", &clients_csv(20, &[], &[]));
    let first = w.run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    // A retitled and a cleared terminal in names, an ID that turns text red (a new row: the
    // old one is a delete, 1 of 20, under the guard), a blinking date (a type warning).
    let next = clients_csv(20, &[], &[])
        .replace("Pérez, Juan 2\"", "Pérez\x1b]0;pwned\x07, Juan 2\"")
        .replace("Pérez, Juan 3\"", "\x1b[2JPérez, Juan 3\"")
        .replace("000004;", "000004\x1b[31m;")
        .replace(";2000;01/01/2020\n", ";2000;\x1b[5m01/01/2020\n");
    w.utf8("clientes.csv", &next);
    let plan = w.ws_cmd(&["plan", "--inbox", "in"]);
    let text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(text.contains("update"), "plan shows the updates: {text}");
    assert!(text.contains("\\u{1b}]0;pwned\\u{7}"), "{text}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    assert!(text.contains("insert  4\\u{1b}[31m"), "{text}");
    let run = w.ws_cmd(&["run", "--inbox", "in"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let explain = w.ws_cmd(&["explain", "clientes", "1"]);
    let explained = String::from_utf8_lossy(&explain.stdout).to_string();
    assert!(explained.contains("type.date"), "{explained}");
    for (what, out) in [("plan", &plan), ("run", &run), ("explain", &explain)] {
        assert!(
            !out.stdout.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{what} printed raw control characters: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
