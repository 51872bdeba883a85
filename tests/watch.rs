//! `dropsync watch` on a real folder: complete drops only, archive/quarantine, never twice,
//! one run at a time, clean stop on SIGTERM.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{clients_csv, write_small_drop, Workdir};

const CONFIG: &str = r#"
[watch]
inbox = "watch/inbox"
archive = "watch/archive"
quarantine = "watch/quarantine"
settle = "700ms"
quiet = "1500ms"
rescan = "2s"
"#;

fn setup() -> Workdir {
    let w = Workdir::new();
    std::fs::create_dir_all(w.path().join("watch/inbox")).unwrap();
    std::fs::write(w.path().join("watch/sources.toml"), CONFIG).unwrap();
    w
}

fn drop_inbox(w: &Workdir) -> std::path::PathBuf {
    w.path().join("watch/inbox")
}

fn spawn_watch(w: &Workdir, once: bool) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dropsync"));
    c.current_dir(w.path())
        .env("RUST_LOG", "info")
        .args(["watch", "--config", "watch/sources.toml"])
        .args(support::WORKSPACE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if once {
        c.arg("--once");
    }
    c.spawn().unwrap()
}

fn wait_exit(mut child: Child, limit: Duration) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).to_string(),
            );
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "watch did not exit in {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn runs(w: &Workdir) -> i64 {
    // The daemon may be creating the database right now: not there yet counts as no run.
    rusqlite::Connection::open(w.out().join("state/state.sqlite"))
        .and_then(|c| c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_settled_drop_is_run_archived_and_equals_a_plain_run() {
    let w = setup();
    // The same files through `dropsync run` in another workspace, for comparison.
    let plain = Workdir::new();
    write_small_drop(&plain);
    assert_eq!(plain.run().code, 0);
    for f in dir_names(&plain.inbox()) {
        std::fs::copy(plain.inbox().join(&f), drop_inbox(&w).join(&f)).unwrap();
    }
    std::fs::write(drop_inbox(&w).join("ventas.csv.part"), "half written").unwrap();
    let (code, err) = wait_exit(spawn_watch(&w, true), Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert_eq!(runs(&w), 1);
    let run_id: String = w.q("state/state.sqlite", "SELECT run_id FROM runs");
    let archived = dir_names(&w.path().join("watch/archive").join(&run_id));
    assert_eq!(archived, dir_names(&plain.inbox()));
    // Only the temporary file is left in the inbox.
    assert_eq!(dir_names(&drop_inbox(&w)), ["ventas.csv.part"]);
    for table in [
        "clientes",
        "ventas",
        "unidades",
        "servicios",
        "usuarios",
        "sucursales",
    ] {
        let q = format!("SELECT * FROM {table} ORDER BY id");
        let strip = |rows: Vec<String>| -> Vec<String> {
            // Drop the bookkeeping run ids (different runs), keep values and flags.
            rows.into_iter()
                .map(|r| {
                    r.split('|')
                        .filter(|c| !c.starts_with("20"))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect()
        };
        assert_eq!(
            strip(w.rows("crm.sqlite", &q)),
            strip(plain.rows("crm.sqlite", &q)),
            "{table}"
        );
    }

    // The same content dropped again is skipped, not run twice.
    std::fs::remove_file(drop_inbox(&w).join("ventas.csv.part")).unwrap();
    std::fs::copy(
        plain.inbox().join("clientes.csv"),
        drop_inbox(&w).join("clientes.csv"),
    )
    .unwrap();
    let (code, err) = wait_exit(spawn_watch(&w, true), Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert_eq!(runs(&w), 1, "{err}");
    assert!(
        err.contains("already processed") || err.contains("last processed"),
        "{err}"
    );
    assert_eq!(
        dir_names(&w.path().join("watch/archive/skipped").join(&run_id)),
        ["clientes.csv"]
    );
}

#[test]
fn a_broken_file_is_quarantined_with_its_reason() {
    let w = setup();
    std::fs::write(
        drop_inbox(&w).join("clientes.csv"),
        clients_csv(5, &[], &[]),
    )
    .unwrap();
    std::fs::write(drop_inbox(&w).join("ventas.csv"), "esto no es un export\n").unwrap();
    let (code, err) = wait_exit(spawn_watch(&w, true), Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    let run_id: String = w.q("state/state.sqlite", "SELECT run_id FROM runs");
    let q = w.path().join("watch/quarantine").join(&run_id);
    assert_eq!(dir_names(&q), ["ventas.csv", "ventas.csv.reason.txt"]);
    assert!(std::fs::read_to_string(q.join("ventas.csv.reason.txt"))
        .unwrap()
        .contains("Nro Operación"));
    assert_eq!(
        dir_names(&w.path().join("watch/archive").join(&run_id)),
        ["clientes.csv"]
    );
}

#[test]
fn a_file_still_being_written_waits_and_sigterm_stops_cleanly() {
    let w = setup();
    let child = spawn_watch(&w, false);
    let path = drop_inbox(&w).join("clientes.csv");
    // A slow writer: the file grows for ~2.5 s.
    let mut text = clients_csv(0, &[], &[]);
    for i in 1..=25 {
        text.push_str(&format!("{i};Cliente {i};Persona;;;;;;;;;\n"));
        std::fs::write(&path, &text).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            runs(&w),
            0,
            "a run started while the file was still growing"
        );
    }
    let start = Instant::now();
    while runs(&w) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the settled drop was never run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The run is over when its files are archived (its status is final as soon as the CRM
    // stage commits, while staging may still be writing).
    let run_id: String = w.q("state/state.sqlite", "SELECT run_id FROM runs");
    let archived = w
        .path()
        .join("watch/archive")
        .join(&run_id)
        .join("clientes.csv");
    while !archived.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let staged: i64 = w.q("staging.sqlite", "SELECT count(*) FROM clientes");
    assert_eq!(staged, 25, "the run saw the whole file");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (code, err) = wait_exit(child, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stop requested"), "{err}");
}

#[test]
fn a_second_run_while_one_is_active_is_refused_clearly() {
    let w = setup();
    std::fs::write(w.inbox().join("clientes.csv"), clients_csv(5, &[], &[])).unwrap();
    let _held = dropsync::state::lock::WorkspaceLock::acquire(&w.out()).unwrap();
    let r = w.run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("another dropsync is working"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("pid {}", std::process::id())),
        "{}",
        r.stderr
    );
}

/// Drops A -> B -> A: the return to an earlier full snapshot is a real change and runs (the
/// daemon used to refuse any content it had ever seen, leaving the CRM at B).
#[test]
fn a_drop_returning_to_an_earlier_state_is_run_not_skipped() {
    let w = setup();
    let a = clients_csv(12, &[], &[]);
    let b = clients_csv(12, &[], &[2, 5]);
    let mut expected_runs = 0;
    for (drop, skipped) in [(&a, false), (&b, false), (&b, true), (&a, false)] {
        w.cp1252("clientes.csv", drop);
        std::fs::rename(
            w.inbox().join("clientes.csv"),
            drop_inbox(&w).join("clientes.csv"),
        )
        .unwrap();
        let (code, err) = wait_exit(spawn_watch(&w, true), Duration::from_secs(60));
        assert_eq!(code, 0, "{err}");
        if !skipped {
            expected_runs += 1;
        }
        assert_eq!(runs(&w), expected_runs, "{err}");
    }
    let emails = w.rows(
        "crm.sqlite",
        "SELECT email FROM clientes WHERE id IN ('2', '5') ORDER BY id",
    );
    assert_eq!(emails, ["cliente2@mail.com", "cliente5@mail.com"]);
}

/// A local webhook receiver: every request body, as it arrives.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (url, rx)
}

/// The daemon's run fails (the CRM is down): the failure is alerted like `dropsync run`'s
/// (the daemon used to only log it: the alert policy was written twice and the copies
/// differed).
#[test]
fn a_failed_run_under_watch_is_alerted() {
    let w = setup();
    let (hook, bodies) = webhook_receiver();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let crm = format!("http://{}/api", dead.local_addr().unwrap());
    drop(dead);
    let p = w.recipes().join("pipeline.toml");
    let cfg = format!(
        "\n[alerts]\nwebhook_env = \"DROPSYNC_TEST_HOOK\"\n\
         [target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"{crm}\"\n\
         token_env = \"DROPSYNC_TEST_CRM_TOKEN\"\nmax_retries = 1\nbackoff_base_ms = 1\nbackoff_max_ms = 2\n"
    );
    std::fs::write(&p, std::fs::read_to_string(&p).unwrap() + &cfg).unwrap();
    w.cp1252("clientes.csv", &clients_csv(5, &[], &[]));
    std::fs::rename(
        w.inbox().join("clientes.csv"),
        drop_inbox(&w).join("clientes.csv"),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_dropsync"));
    c.current_dir(w.path())
        .env("RUST_LOG", "warn")
        .env("DROPSYNC_TEST_HOOK", &hook)
        .env("DROPSYNC_TEST_CRM_TOKEN", "t")
        .args(["watch", "--config", "watch/sources.toml"])
        .args(support::WORKSPACE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let got = bodies.recv_timeout(Duration::from_secs(60));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let (code, err) = wait_exit_of(&mut child);
    let body = got.unwrap_or_else(|_| panic!("no alert within 60 s (exit {code}): {err}"));
    let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["status"], "failed", "{alert}");
    assert!(alert["reason"].as_str().unwrap().contains("CRM"), "{alert}");
}

fn wait_exit_of(child: &mut Child) -> (i32, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code().unwrap_or(-1), err)
}
