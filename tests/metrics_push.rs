//! `dropsync run --pushgateway URL`: what a scheduled run pushes when it ends, received by a
//! local HTTP server that answers as a Pushgateway does (PUT to
//! `/metrics/job/<job>/<label>/<value>`, 200 on success). No Pushgateway binary exists offline
//! here; the receiver checks the request's method, path, content type and body.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use support::{repo, Workdir};

/// One request as the receiver saw it.
struct Request {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// A receiver on 127.0.0.1 answering each request with the next status of `answers` (then
/// 200), and handing every request it read to the returned channel.
fn receiver(answers: Vec<u16>) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let (mut length, mut content_type) = (0usize, String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap(),
                    "content-type" => content_type = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = answers.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = tx.send(Request {
                method,
                path,
                content_type,
                body: String::from_utf8(body).unwrap(),
            });
        }
    });
    (url, rx)
}

fn sample_drop(w: &Workdir) {
    for e in std::fs::read_dir(repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in\n{body}"))
}

#[test]
fn a_run_pushes_its_outcome_and_rows_when_it_ends() {
    let w = Workdir::new();
    sample_drop(&w);
    // The gateway fails once: the push is retried, the run's exit code is the run's.
    let (url, got) = receiver(vec![503]);
    let run = w.run_args(&["--pushgateway", &url], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = got.recv().unwrap();
    assert_eq!(first.method, "PUT");
    let req = got.recv().unwrap();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/metrics/job/dropsync/tenant/default");
    assert!(
        req.content_type.starts_with("application/openmetrics-text"),
        "{}",
        req.content_type
    );
    assert_eq!(req.body, first.body, "the retry sends the same metrics");
    let b = &req.body;
    assert_eq!(value(b, r#"dropsync_run_success{tenant="default"}"#), 1.0);
    assert_eq!(value(b, r#"dropsync_run_exit_code{tenant="default"}"#), 0.0);
    assert_eq!(
        value(b, r#"dropsync_run_status{tenant="default",status="ok"}"#),
        1.0
    );
    for entity in ["clientes", "ventas", "servicios"] {
        let [read, accepted, rejected, _, inserted, ..] = run.counts(entity);
        for (outcome, n) in [
            ("read", read),
            ("accepted", accepted),
            ("rejected", rejected),
            ("inserted", inserted),
        ] {
            let series = format!(
                r#"dropsync_run_rows{{tenant="default",entity="{entity}",outcome="{outcome}"}}"#
            );
            assert_eq!(value(b, &series), n as f64, "{series}");
        }
    }
    assert_eq!(
        value(b, r#"dropsync_run_crm_rows_written{tenant="default"}"#),
        run.json["crm_rows_written"].as_f64().unwrap()
    );
    assert!(
        value(
            b,
            r#"dropsync_run_finished_timestamp_seconds{tenant="default"}"#
        ) > 1.7e9
    );
    assert!(b.ends_with("# EOF\n"));
}

#[test]
fn a_dry_run_pushes_nothing() {
    let w = Workdir::new();
    sample_drop(&w);
    let (url, got) = receiver(vec![]);
    let run = w.run_args(&["--dry-run", "--pushgateway", &url], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The real run after it pushes: the first request the receiver gets is that one's.
    let run = w.run_args(&["--pushgateway", &url], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let req = got.recv().unwrap();
    assert_eq!(
        value(
            &req.body,
            r#"dropsync_run_crm_rows_written{tenant="default"}"#
        ),
        run.json["crm_rows_written"].as_f64().unwrap()
    );
    assert!(run.json["crm_rows_written"].as_u64().unwrap() > 0);
    assert!(got.try_recv().is_err(), "one push, the real run's");
}

#[test]
fn a_failed_run_pushes_its_failure_and_exit_code() {
    let w = Workdir::new();
    sample_drop(&w);
    std::fs::write(w.recipes().join("clientes.toml"), "entity = [\n").unwrap();
    let (url, got) = receiver(vec![]);
    let run = w.run_with_env(&[("DROPSYNC_PUSHGATEWAY_URL", &url)]);
    assert_eq!(run.code, 2, "a broken recipe is a configuration error");
    let req = got.recv().unwrap();
    assert_eq!(
        value(&req.body, r#"dropsync_run_success{tenant="default"}"#),
        0.0
    );
    assert_eq!(
        value(&req.body, r#"dropsync_run_exit_code{tenant="default"}"#),
        2.0
    );
    assert_eq!(
        value(
            &req.body,
            r#"dropsync_run_status{tenant="default",status="failed"}"#
        ),
        1.0
    );
}

#[test]
fn an_unreachable_gateway_is_a_warning_not_a_failed_run() {
    let w = Workdir::new();
    sample_drop(&w);
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = w.run_args(
        &[
            "--pushgateway",
            &format!("http://u:secret@127.0.0.1:{port}"),
        ],
        &[("RUST_LOG", "warn")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("run metrics not pushed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}
