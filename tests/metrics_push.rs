//! `dropsync run --pushgateway URL`: what a scheduled run pushes when it ends, received by a
//! local HTTP server that answers as a Pushgateway does (PUT to
//! `/metrics/job/<job>/<label>/<value>`, 200 on success). No Pushgateway binary exists offline
//! here; the receiver checks the request's method, path, content type and body.

mod support;

use std::net::TcpListener;

use support::{receiver, sample_drop, Workdir};

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
