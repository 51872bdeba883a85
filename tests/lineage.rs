//! `dropsync run --openlineage URL`: a run's OpenLineage events, received by a local HTTP
//! server standing in for a collector (Marquez and others take `POST /api/v1/lineage` with
//! one JSON run event; no collector exists offline here). The receiver checks the method,
//! path, content type, authorization and every event.

mod support;

use serde_json::Value;
use support::{receiver, sample_drop, Request, Workdir};

fn event(r: &Request) -> Value {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/v1/lineage");
    assert_eq!(r.content_type, "application/json");
    serde_json::from_str(&r.body).unwrap()
}

/// Every request received: the receiver hands one over just after answering it, so the last
/// may arrive a moment after the run ended.
fn got(rx: &std::sync::mpsc::Receiver<Request>) -> Vec<Request> {
    let mut all = Vec::new();
    while let Ok(r) = rx.recv_timeout(std::time::Duration::from_millis(300)) {
        all.push(r);
    }
    all
}

#[test]
fn a_run_tells_what_it_read_and_wrote() {
    let w = Workdir::new();
    sample_drop(&w);
    let (url, rx) = receiver(vec![]);
    let run = w.run_args(
        &["--openlineage", &url],
        &[("DROPSYNC_OPENLINEAGE_API_KEY", "k3y")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let requests = got(&rx);
    assert_eq!(requests.len(), 2, "START, then COMPLETE");
    for r in &requests {
        assert_eq!(r.authorization, "Bearer k3y");
    }
    let (start, end) = (event(&requests[0]), event(&requests[1]));
    assert_eq!(start["eventType"], "START");
    assert_eq!(end["eventType"], "COMPLETE");
    assert_eq!(start["run"]["runId"], end["run"]["runId"]);
    assert_eq!(end["job"], start["job"]);
    assert_eq!(end["job"]["namespace"], "dropsync");
    assert_eq!(end["job"]["name"], "default");
    for e in [&start, &end] {
        assert_eq!(
            e["schemaURL"],
            "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        );
        assert!(e["eventTime"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        end["run"]["facets"]["dropsync_run"]["run_id"],
        run.json["run_id"]
    );

    // One input per export file, one output per CRM table, with the run's own counts.
    let inbox = w.inbox().canonicalize().unwrap();
    let entities = run.json["entities"].as_object().unwrap();
    let inputs = end["inputs"].as_array().unwrap();
    let outputs = end["outputs"].as_array().unwrap();
    assert_eq!(inputs.len(), entities.len());
    assert_eq!(outputs.len(), entities.len());
    let crm = w.out().join("crm.sqlite").canonicalize().unwrap();
    for (entity, s) in entities {
        let input = inputs
            .iter()
            .find(|i| i["facets"]["dropsync_entity"]["entity"] == *entity)
            .unwrap();
        assert!(input["namespace"].as_str().unwrap().starts_with("file://"));
        assert_eq!(
            input["name"],
            inbox
                .join(s["file"].as_str().unwrap())
                .display()
                .to_string()
        );
        assert_eq!(
            input["inputFacets"]["dataQualityMetrics"]["rowCount"],
            s["read"]
        );
        assert_eq!(
            input["facets"]["dropsync_entity"]["rejected"],
            s["rejected"]
        );
        let output = outputs
            .iter()
            .find(|o| o["facets"]["dropsync_changes"]["entity"] == *entity)
            .unwrap();
        assert!(
            output["namespace"]
                .as_str()
                .unwrap()
                .ends_with(&crm.display().to_string()),
            "{output}"
        );
        let written = ["inserted", "updated", "deleted"]
            .iter()
            .map(|k| s[*k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(
            output["outputFacets"]["outputStatistics"]["rowCount"],
            written
        );
    }
}

#[test]
fn a_failed_run_sends_fail_with_the_reason() {
    let w = Workdir::new();
    sample_drop(&w);
    std::fs::write(
        w.recipes().join("clientes.toml"),
        "entity = \"clientes\"\nfromm = 1\n",
    )
    .unwrap();
    let (url, rx) = receiver(vec![]);
    let run = w.run_args(&["--openlineage", &url], &[]);
    assert_eq!(run.code, 2);
    let requests = got(&rx);
    assert_eq!(requests.len(), 2);
    let end = event(&requests[1]);
    assert_eq!(end["eventType"], "FAIL");
    let message = end["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("clientes.toml"), "{message}");
    assert_eq!(end["run"]["facets"]["dropsync_run"]["exit_code"], 2);
    assert!(requests[1].authorization.is_empty(), "no key, no header");
}

#[test]
fn an_unreachable_collector_is_a_warning_and_a_dry_run_sends_nothing() {
    let w = Workdir::new();
    sample_drop(&w);
    let (url, rx) = receiver(vec![500; 20]);
    let run = w.run_args(
        &["--openlineage", &url],
        &[("DROPSYNC_OPENLINEAGE_API_KEY", "s3cret-key")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("lineage event not delivered"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret-key"));
    // Each event tried three times.
    assert_eq!(got(&rx).len(), 6);

    let (url, rx) = receiver(vec![]);
    let plan = w.run_args(&["--openlineage", &url, "--dry-run"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(got(&rx).is_empty());
}
