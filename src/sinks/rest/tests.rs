//! Behaviour of the REST CRM client against the local fake CRM (`dropsync_testkit::crm`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dropsync_testkit::crm::FakeCrm;
use serde_json::{json, Map};

use super::*;

const TOKEN: &str = "test-token-not-a-secret";

/// Sets a per-test token variable (tests run in parallel: each uses its own name).
fn token_var(test: &str) -> String {
    let var = format!("DROPSYNC_REST_CRM_TEST_TOKEN_{test}");
    std::env::set_var(&var, TOKEN);
    var
}

/// A fake CRM, a journal in a temp dir, and a config with fast retries.
struct Setup {
    fake: FakeCrm,
    cfg: RestConfig,
    journal: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(test: &str) -> Setup {
        let fake = FakeCrm::start(TOKEN);
        let cfg = RestConfig {
            max_requests_per_second: 1_000.0,
            max_retries: 3,
            timeout_ms: 2_000,
            backoff_base_ms: 10,
            backoff_max_ms: 50,
            ..RestConfig::new(fake.base_url.clone(), token_var(test))
        };
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("crm-journal.sqlite");
        Setup {
            fake,
            cfg,
            journal,
            _dir: dir,
        }
    }

    fn crm(&self) -> RestCrm {
        RestCrm::new(self.cfg.clone(), &self.journal).unwrap()
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut properties = Map::new();
            properties.insert("email".into(), json!(format!("client{i}@example.com")));
            properties.insert("city".into(), json!("Lyon"));
            Record::new(format!("c-{i:04}"), properties, Some(i as u32 + 2))
        })
        .collect()
}

fn ids(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

#[test]
fn upsert_of_250_records_sends_3_batches_and_each_record_once() {
    let s = Setup::new("250");
    let recs = records(250);
    let outcome = s.crm().upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!(
        outcome,
        Outcome {
            confirmed: 250,
            already_confirmed: 0,
            rejected: vec![]
        }
    );
    let seen = s.fake.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|r| r.path == "/crm/v3/objects/contacts/batch/upsert" && r.status == 200));
    assert_eq!(s.fake.stored("contacts"), 250);
    for r in &recs {
        assert_eq!(s.fake.received("contacts", &r.id), 1, "{}", r.id);
        assert_eq!(
            s.fake.record("contacts", &r.id).unwrap(),
            r.properties_json()
        );
    }
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let s = Setup::new("429");
    s.fake.fail_429(1);
    let start = Instant::now();
    let outcome = s
        .crm()
        .upsert("contacts", "client_id", &records(3))
        .unwrap();
    assert_eq!(outcome.confirmed, 3);
    let seen = s.fake.seen();
    assert_eq!(
        seen.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(s.fake.received("contacts", "c-0000"), 1);
}

#[test]
fn server_errors_are_retried_until_success() {
    let s = Setup::new("500");
    s.fake.fail_500(2);
    let outcome = s
        .crm()
        .upsert("contacts", "client_id", &records(5))
        .unwrap();
    assert_eq!(outcome.confirmed, 5);
    let statuses: Vec<u16> = s.fake.seen().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(s.fake.received("contacts", "c-0004"), 1);
}

#[test]
fn a_slow_answer_times_out_and_the_batch_is_resent() {
    let mut s = Setup::new("slow");
    s.cfg.timeout_ms = 300;
    s.fake.slow_once(Duration::from_millis(1_500));
    let start = Instant::now();
    let outcome = s
        .crm()
        .upsert("contacts", "client_id", &records(4))
        .unwrap();
    assert_eq!(outcome.confirmed, 4);
    assert!(
        start.elapsed() < Duration::from_millis(1_200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.fake.seen().len(), 2);
    // The fake had processed the batch before its answer was lost: the resend is the one
    // duplicate delivery this design allows, harmless because an upsert is idempotent.
    assert_eq!(s.fake.received("contacts", "c-0000"), 2);
    assert_eq!(s.fake.stored("contacts"), 4);
}

#[test]
fn per_record_errors_come_back_with_their_source_lines() {
    let s = Setup::new("per_record");
    s.fake
        .reject("c-0001", "Property values were not valid: email");
    let recs = records(3);
    let expected = vec![RecordError {
        id: "c-0001".into(),
        source_line: Some(3),
        message: "Property values were not valid: email".into(),
    }];
    let outcome = s.crm().upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!(outcome.confirmed, 2);
    assert_eq!(outcome.rejected, expected);
    assert_eq!(s.fake.seen()[0].status, 207);
    assert!(s.fake.record("contacts", "c-0000").is_some());
    assert!(s.fake.record("contacts", "c-0001").is_none());
    assert!(s.fake.record("contacts", "c-0002").is_some());

    // Redone before `finish`: nothing is sent, and the refusal is reported again.
    let redo = s.crm().upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!(redo.confirmed, 0);
    assert_eq!(redo.already_confirmed, 2);
    assert_eq!(redo.rejected, expected);
    assert_eq!(s.fake.seen().len(), 1);
}

#[test]
fn the_rate_limit_spaces_requests() {
    let mut s = Setup::new("rate");
    s.cfg.max_requests_per_second = 10.0;
    s.cfg.batch_size = 1;
    let start = Instant::now();
    let outcome = s
        .crm()
        .upsert("contacts", "client_id", &records(5))
        .unwrap();
    assert_eq!(outcome.confirmed, 5);
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    let seen = s.fake.seen();
    assert_eq!(seen.len(), 5);
    // The client spaces sends by 100 ms; arrival times at the server jitter a little.
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(75), "requests {gap:?} apart");
    }
}

#[test]
fn an_outage_is_transient_and_the_redo_sends_only_unconfirmed_batches() {
    let mut s = Setup::new("outage");
    s.cfg.max_retries = 2;
    let recs = records(500);
    s.fake.down_after(2);
    let err = s.crm().upsert("contacts", "client_id", &recs).unwrap_err();
    assert!(err.is_transient(), "{err}");
    match &err {
        RestError::Outage {
            attempts,
            batches_confirmed,
            batches_total,
            last,
            ..
        } => {
            assert_eq!((*attempts, *batches_confirmed, *batches_total), (3, 2, 5));
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("expected an outage, got {other:?}"),
    }
    assert!(err.to_string().contains("rerun later"), "{err}");
    assert_eq!(s.fake.stored("contacts"), 200);

    // The CRM is back; a new process redoes the same apply with the same journal.
    s.fake.up();
    let outcome = s.crm().upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!(outcome.confirmed, 300);
    assert_eq!(outcome.already_confirmed, 200);
    assert!(outcome.rejected.is_empty());
    assert_eq!(s.fake.batches_ok(), 5);
    assert_eq!(s.fake.stored("contacts"), 500);
    for r in &recs {
        assert_eq!(s.fake.received("contacts", &r.id), 1, "{}", r.id);
    }
}

#[test]
fn a_refused_connection_is_a_transient_error() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = RestConfig {
        max_retries: 2,
        backoff_base_ms: 5,
        backoff_max_ms: 20,
        ..RestConfig::new(
            format!("http://127.0.0.1:{closed_port}/"),
            token_var("refused"),
        )
    };
    let mut crm = RestCrm::new(cfg, &dir.path().join("j.sqlite")).unwrap();
    let err = crm
        .upsert("contacts", "client_id", &records(1))
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        matches!(
            err,
            RestError::Outage {
                attempts: 3,
                batches_confirmed: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn finish_forgets_the_object_journal_so_the_same_change_is_sent_again() {
    let s = Setup::new("finish");
    let recs = records(10);
    let mut crm = s.crm();
    crm.upsert("contacts", "client_id", &recs).unwrap();
    crm.upsert("deals", "deal_id", &recs).unwrap();
    assert_eq!(s.fake.seen().len(), 2);

    let again = crm.upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!((again.confirmed, again.already_confirmed), (0, 10));
    assert_eq!(s.fake.seen().len(), 2);

    crm.finish("contacts").unwrap();
    let after = crm.upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!((after.confirmed, after.already_confirmed), (10, 0));
    assert_eq!(s.fake.received("contacts", "c-0003"), 2);
    // Another object's journal is kept.
    let deals = crm.upsert("deals", "deal_id", &recs).unwrap();
    assert_eq!((deals.confirmed, deals.already_confirmed), (0, 10));
    assert_eq!(s.fake.seen().len(), 3);
}

#[test]
fn archive_delete_posts_ids_with_the_id_property() {
    let s = Setup::new("archive");
    let recs = records(3);
    let mut crm = s.crm();
    crm.upsert("contacts", "client_id", &recs).unwrap();
    let gone = vec!["c-0000".to_string(), "c-0002".to_string()];
    let outcome = crm.delete("contacts", "client_id", &gone).unwrap();
    assert_eq!(outcome.confirmed, 2);
    let last = s.fake.seen().pop().unwrap();
    assert_eq!(last.path, "/crm/v3/objects/contacts/batch/archive");
    assert_eq!(last.query.as_deref(), Some("idProperty=client_id"));
    assert_eq!(last.status, 204);
    assert_eq!(s.fake.archived("contacts"), gone);
    assert_eq!(s.fake.stored("contacts"), 1);

    let redo = crm.delete("contacts", "client_id", &gone).unwrap();
    assert_eq!((redo.confirmed, redo.already_confirmed), (0, 2));
}

#[test]
fn flag_delete_upserts_the_flag_and_keeps_the_record() {
    let mut s = Setup::new("flag");
    s.cfg.delete = RestDelete::Flag {
        field: "dropsync_deleted".into(),
        value: json!(true),
    };
    let recs = records(2);
    let mut crm = s.crm();
    crm.upsert("contacts", "client_id", &recs).unwrap();
    let outcome = crm
        .delete("contacts", "client_id", &ids(&recs[..1]))
        .unwrap();
    assert_eq!(outcome.confirmed, 1);
    assert_eq!(
        s.fake.seen().pop().unwrap().path,
        "/crm/v3/objects/contacts/batch/upsert"
    );
    let flagged = s.fake.record("contacts", "c-0000").unwrap();
    assert_eq!(flagged["dropsync_deleted"], json!(true));
    assert_eq!(flagged["city"], json!("Lyon"));
    assert!(!s
        .fake
        .record("contacts", "c-0001")
        .unwrap()
        .contains_key("dropsync_deleted"));
    assert!(s.fake.archived("contacts").is_empty());
}

#[test]
fn a_flag_delete_is_not_confused_with_an_upsert_of_the_same_values() {
    let mut s = Setup::new("flag_vs_upsert");
    s.cfg.delete = RestDelete::Flag {
        field: "deleted".into(),
        value: json!(true),
    };
    let mut crm = s.crm();
    let mut properties = Map::new();
    properties.insert("deleted".into(), json!(true));
    let same = Record::new("c-0000", properties, None);
    crm.upsert("contacts", "client_id", &[same]).unwrap();
    let outcome = crm
        .delete("contacts", "client_id", &["c-0000".into()])
        .unwrap();
    assert_eq!((outcome.confirmed, outcome.already_confirmed), (1, 0));
}

#[test]
fn a_missing_token_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let var = "DROPSYNC_REST_CRM_TEST_TOKEN_never_set";
    let cfg = RestConfig::new("https://api.crm.example.com/", var);
    let err = RestCrm::new(cfg, &dir.path().join("j.sqlite")).unwrap_err();
    assert!(
        matches!(&err, RestError::MissingToken { var: v } if v == var),
        "{err:?}"
    );
    assert!(err.to_string().contains(var), "{err}");
    assert!(!err.is_transient());
}

#[test]
fn a_refused_token_is_terminal_and_not_retried() {
    let s = Setup::new("bad_token");
    let var = "DROPSYNC_REST_CRM_TEST_TOKEN_wrong";
    std::env::set_var(var, "wrong-token");
    let cfg = RestConfig {
        token_env: var.into(),
        ..s.cfg.clone()
    };
    let err = RestCrm::new(cfg, &s.journal)
        .unwrap()
        .upsert("contacts", "client_id", &records(1))
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(
        matches!(err, RestError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("Authentication credentials"),
        "{text}"
    );
    assert!(!text.contains("wrong-token"), "{text}");
    assert_eq!(s.fake.seen().len(), 1);
}

#[test]
fn bad_configs_are_reported_all_at_once() {
    for (size, ok) in [(0, false), (1, true), (100, true), (101, false)] {
        let cfg = RestConfig {
            batch_size: size,
            ..RestConfig::new("https://api.crm.example.com/", "CRM_TOKEN")
        };
        assert_eq!(cfg.validate().is_ok(), ok, "batch_size {size}");
    }
    let cfg = RestConfig {
        batch_size: 101,
        max_requests_per_second: 0.0,
        delete: RestDelete::Flag {
            field: " ".into(),
            value: json!(true),
        },
        ..RestConfig::new("http://crm.example.com/", "")
    };
    let dir = tempfile::tempdir().unwrap();
    let err = RestCrm::new(cfg, &dir.path().join("j.sqlite")).unwrap_err();
    let RestError::Config { problems } = &err else {
        panic!("expected a config error, got {err:?}")
    };
    assert_eq!(problems.len(), 5, "{problems:#?}");
    let text = err.to_string();
    for needle in [
        "plain http",
        "token_env is empty",
        "batch_size = 101",
        "max_requests_per_second = 0",
        "delete.flag.field",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

#[test]
fn config_reads_with_defaults_and_refuses_unknown_fields() {
    let cfg: RestConfig = serde_json::from_value(json!({
        "base_url": "https://api.crm.example.com/", "token_env": "CRM_TOKEN"
    }))
    .unwrap();
    assert_eq!(
        cfg,
        RestConfig::new("https://api.crm.example.com/", "CRM_TOKEN")
    );
    assert_eq!(
        (cfg.batch_size, cfg.max_retries, cfg.timeout_ms),
        (100, 6, 30_000)
    );
    assert_eq!(cfg.delete, RestDelete::Archive);

    let flag: RestConfig = serde_json::from_value(json!({
        "base_url": "https://x.example/", "token_env": "T",
        "delete": {"flag": {"field": "deleted", "value": true}}
    }))
    .unwrap();
    assert_eq!(
        flag.delete,
        RestDelete::Flag {
            field: "deleted".into(),
            value: json!(true)
        }
    );
    let archive: RestConfig = serde_json::from_value(
        json!({"base_url": "https://x.example/", "token_env": "T", "delete": "archive"}),
    )
    .unwrap();
    assert_eq!(archive.delete, RestDelete::Archive);

    for bad in [
        json!({"base_url": "https://x.example/", "token_env": "T", "token": "secret"}),
        json!({"base_url": "https://x.example/", "token_env": "T", "delete": {"flag": {"field": "d", "value": 1, "x": 2}}}),
        json!({"base_url": "https://x.example/", "token_env": "T", "delete": "purge"}),
    ] {
        assert!(
            serde_json::from_value::<RestConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn urls_keep_the_base_path_and_encode_names() {
    let var = token_var("urls");
    let dir = tempfile::tempdir().unwrap();
    let crm = RestCrm::new(
        RestConfig::new("https://h.example/api", var),
        &dir.path().join("j.sqlite"),
    )
    .unwrap();
    assert_eq!(
        crm.url("contacts", Operation::Upsert).as_str(),
        "https://h.example/api/crm/v3/objects/contacts/batch/upsert"
    );
    assert_eq!(
        crm.url(
            "2-123/x",
            Operation::Archive {
                id_property: "client id"
            }
        )
        .as_str(),
        "https://h.example/api/crm/v3/objects/2-123%2Fx/batch/archive?idProperty=client+id"
    );
}

#[test]
fn empty_and_repeated_ids_are_rejected_without_sending() {
    let s = Setup::new("dupes");
    let mut recs = records(3);
    recs[1].id = String::new();
    recs[2].id = recs[0].id.clone();
    let outcome = s.crm().upsert("contacts", "client_id", &recs).unwrap();
    assert_eq!(outcome.confirmed, 1);
    let lines: Vec<Option<u32>> = outcome.rejected.iter().map(|e| e.source_line).collect();
    assert_eq!(lines, [Some(3), Some(4)]);
    assert!(
        outcome.rejected[1].message.contains("(line 2)"),
        "{:?}",
        outcome.rejected
    );
    assert_eq!(s.fake.received("contacts", "c-0000"), 1);
    assert!(matches!(
        s.crm().upsert("", "client_id", &recs),
        Err(RestError::EmptyName { .. })
    ));
}

#[test]
fn the_token_is_not_in_debug_output() {
    let s = Setup::new("debug");
    let text = format!("{:?}", s.crm());
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        text.contains("DROPSYNC_REST_CRM_TEST_TOKEN_debug"),
        "{text}"
    );
}

#[test]
fn an_unattributable_per_record_error_stops_the_apply() {
    let batch = [Prepared {
        id: "a",
        source_line: Some(2),
        input: RawValue::from_string("null".into()).unwrap(),
    }];
    let answer = r#"{"status":"COMPLETE","results":[],"errors":[{"message":"boom","context":{"ids":["zzz"]}}]}"#;
    assert!(record_errors(207, answer, &batch)
        .unwrap_err()
        .contains("boom"));
    assert!(record_errors(207, "", &batch).is_err());
    assert_eq!(record_errors(204, "", &batch).unwrap(), vec![]);
    assert_eq!(record_errors(200, "not json", &batch).unwrap(), vec![]);
}

#[test]
fn batch_hashes_depend_on_object_operation_and_content() {
    let a = batch_hash("contacts", "upsert", "[1]");
    assert_eq!(a, batch_hash("contacts", "upsert", "[1]"));
    assert_ne!(a, batch_hash("deals", "upsert", "[1]"));
    assert_ne!(a, batch_hash("contacts", "flag-delete", "[1]"));
    assert_ne!(a, batch_hash("contacts", "upsert", "[2]"));
    assert_ne!(batch_hash("ab", "c", "x"), batch_hash("a", "bc", "x"));
}
