//! Telling operators when a batch needs them: after a run that failed, was held by the
//! guard, or rejected more than a configured share of an entity's rows, a JSON POST to a
//! webhook (Slack and Teams incoming webhooks read its `text`) and/or an email (SMTP via
//! `lettre`), with the counts, the top reject reasons with an example line each, and the link
//! to the run. URLs and credentials come from environment variables named in `pipeline.toml`.
//!
//! The webhook URL is a secret (its path is the credential of a Slack or Teams webhook): when
//! a POST fails, errors say only `scheme://host[:port]/…`. Text taken from the data (reject
//! reasons, quarantine reasons) is bounded in length, and in `text`, which Slack renders,
//! `&`, `<` and `>` are escaped so a value cannot ping `<!channel>` or forge a link.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub use crate::config::specs::{AlertSpec, EmailSpec};
use crate::model::{EntityStatus, RunReport, RunState, RunStatus, Severity};
use crate::sinks::rest::net;

/// Longest data-derived text (a reason, an example) put in an alert, in characters.
const MAX_TEXT_CHARS: usize = 300;

/// `text` cut to `max` characters (with `…`), control characters replaced by spaces.
fn bounded(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// Slack's escaping for message text: `<!channel>`, `<@U123>` or `<https://x|label>` in the
/// data stay literal text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert webhook: {0}")]
    Send(String),
}

/// Below this many rows a share says little (3 of 8 is not a mass change).
const MIN_ROWS_FOR_SHARE: usize = 20;

/// Why a finished run deserves an alert, if it does.
pub fn reason(spec: &AlertSpec, report: &RunReport) -> Option<String> {
    if report.status == RunStatus::Held {
        return Some("deletes held by the guard: approve or fix the export".into());
    }
    // A column gone or renamed empties fields or sets the file aside: someone must look.
    // A column only added changes nothing the recipe reads.
    let drifted = report.entities.iter().find_map(|(e, s)| {
        s.drift
            .as_ref()
            .filter(|d| !d.missing.is_empty() || !d.renamed.is_empty())
            .map(|d| format!("{e}: the export's columns changed: {d}"))
    });
    if drifted.is_some() {
        return drifted;
    }
    let massive = report
        .entities
        .iter()
        .find(|(_, s)| {
            spec.update_share > 0.0
                && s.accepted >= MIN_ROWS_FOR_SHARE
                && s.updated as f64 > spec.update_share * s.accepted as f64
        })
        .map(|(e, s)| {
            let top: Vec<String> = s
                .top_field_changes(3)
                .iter()
                .map(|(f, n)| format!("{f} in {n}"))
                .collect();
            format!(
                "{e}: {} of {} rows updated (over {:.0}%): {}; columns swapped or mis-mapped?",
                s.updated,
                s.accepted,
                spec.update_share * 100.0,
                top.join(", ")
            )
        });
    if massive.is_some() {
        return massive;
    }
    report
        .entities
        .iter()
        .find(|(_, s)| s.read > 0 && s.rejected as f64 > spec.reject_share * s.read as f64)
        .map(|(e, s)| {
            format!(
                "{e}: {} of {} rows rejected (over {:.0}%)",
                s.rejected,
                s.read,
                spec.reject_share * 100.0
            )
        })
        .or_else(|| {
            report
                .entities
                .iter()
                .find(|(_, s)| s.status == EntityStatus::Quarantined)
                .map(|(e, s)| {
                    format!(
                        "{e}: file quarantined: {}",
                        s.reason.clone().unwrap_or_default()
                    )
                })
        })
}

/// The webhook body for a finished run.
pub fn payload(spec: &AlertSpec, report: &RunReport, why: &str) -> Value {
    let mut top: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for i in report
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
    {
        let e = top
            .entry((i.entity.clone(), i.rule.clone()))
            .or_insert_with(|| {
                let example = format!("{}:{} {} — {}", i.file, i.line, i.id, i.reason);
                (0, bounded(&example, MAX_TEXT_CHARS))
            });
        e.0 += 1;
    }
    let mut reasons: Vec<_> = top.into_iter().collect();
    reasons.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    let link = spec
        .run_link
        .as_ref()
        .map(|l| l.replace("{run_id}", &report.run_id));
    let why = bounded(why, MAX_TEXT_CHARS);
    let text = format!(
        "dropsync run {} {}: {}{}",
        report.run_id,
        report.status.as_str(),
        slack_escape(&why),
        link.as_ref().map(|l| format!(" — {l}")).unwrap_or_default()
    );
    json!({
        "text": text,
        "run_id": report.run_id,
        "status": report.status.as_str(),
        "reason": why,
        "link": link,
        "entities": report.to_json()["entities"].clone(),
        "top_reasons": reasons.iter().take(5).map(|((entity, rule), (count, example))| json!({
            "entity": entity, "rule": rule, "count": count, "example": example,
        })).collect::<Vec<_>>(),
    })
}

/// The webhook body for a run that failed before finishing.
pub fn failure_payload(error: &str) -> Value {
    let error = bounded(error, MAX_TEXT_CHARS);
    json!({"text": format!("dropsync run failed: {}", slack_escape(&error)), "status": RunState::Failed.as_str(), "reason": error})
}

/// The one alert policy, for `run` and for the `watch` daemon alike: a finished run alerts
/// when [`reason`] finds a reason (never a dry run); a failed run always alerts; a run stopped
/// on request does not. A send that fails is a warning: alerting never fails a run.
pub fn after_run(spec: &AlertSpec, outcome: Result<&RunReport, &crate::app::run::PipelineError>) {
    let body = match outcome {
        Ok(report) => match reason(spec, report).filter(|_| !report.dry_run) {
            Some(why) => payload(spec, report, &why),
            None => return,
        },
        Err(crate::app::run::PipelineError::Stopped { .. }) => return,
        Err(e) => failure_payload(&e.to_string()),
    };
    if let Err(e) = send(spec, &body) {
        tracing::warn!(error = %e, "alert not sent");
    }
}

/// Sends the alert on every configured channel; returns whether any was configured.
pub fn send(spec: &AlertSpec, body: &Value) -> Result<bool, AlertError> {
    let mut sent = false;
    if let Some(email) = &spec.email {
        send_email(email, body)?;
        sent = true;
    }
    Ok(post_webhook(spec, body)? || sent)
}

/// The alert as a plain-text email: the `text` line as subject, then the reasons.
fn send_email(spec: &EmailSpec, body: &Value) -> Result<(), AlertError> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};
    let fail =
        |e: &dyn std::fmt::Display| AlertError::Send(format!("email via {}: {e}", spec.host));
    // One header line: no control character from the data may start another header.
    let subject = bounded(
        body["text"].as_str().unwrap_or("dropsync alert"),
        MAX_TEXT_CHARS,
    );
    let mut text = format!("{subject}\n\n");
    for r in body["top_reasons"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "- {} {} x{}: e.g. {}\n",
            r["entity"].as_str().unwrap_or(""),
            r["rule"].as_str().unwrap_or(""),
            r["count"],
            r["example"].as_str().unwrap_or("")
        ));
    }
    text.push_str(&format!(
        "\n{}\n",
        serde_json::to_string_pretty(&body["entities"]).unwrap_or_default()
    ));
    let mut msg = Message::builder()
        .from(spec.from.parse().map_err(|e| fail(&e))?)
        .subject(subject);
    for to in &spec.to {
        msg = msg.to(to.parse().map_err(|e| fail(&e))?);
    }
    let msg = msg
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| fail(&e))?;
    net::ensure_crypto_provider();
    let mut transport = if spec.starttls {
        SmtpTransport::starttls_relay(&spec.host).map_err(|e| fail(&e))?
    } else {
        SmtpTransport::builder_dangerous(&spec.host)
    }
    .port(spec.port)
    .timeout(Some(std::time::Duration::from_secs(20)));
    if let (Some(u), Some(p)) = (&spec.user_env, &spec.password_env) {
        let get = |v: &str| {
            std::env::var(v).map_err(|_| fail(&format!("environment variable {v} is not set")))
        };
        transport = transport.credentials(Credentials::new(get(u)?, get(p)?));
    }
    transport.build().send(&msg).map_err(|e| fail(&e))?;
    Ok(())
}

/// Posts `body` to the configured webhook (no-op when none is configured).
fn post_webhook(spec: &AlertSpec, body: &Value) -> Result<bool, AlertError> {
    let Some(var) = &spec.webhook_env else {
        return Ok(false);
    };
    let url = std::env::var(var)
        .map_err(|_| AlertError::Send(format!("environment variable {var} is not set")))?;
    // The URL is the webhook's credential: messages name it as `scheme://host[:port]/…`.
    let shown = net::redact_url(&url);
    let fail = |e: reqwest::Error| {
        AlertError::Send(format!(
            "POST to {shown} (from {var}) failed: {}",
            net::error_text(e, &url)
        ))
    };
    net::ensure_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(fail)?;
    let resp = client.post(&url).json(body).send().map_err(fail)?;
    if !resp.status().is_success() {
        return Err(AlertError::Send(format!(
            "POST to {shown} (from {var}): HTTP {}",
            resp.status()
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    /// A one-request HTTP receiver on 127.0.0.1; returns its URL and the body it got.
    fn receiver() -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.to_lowercase().starts_with("content-length:") {
                    len = line[15..].trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(body).unwrap()
        });
        (url, handle)
    }

    #[test]
    fn a_held_run_posts_counts_reasons_and_link() {
        // No crypto provider installed here: `send` must install one itself.
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| {
            std::fs::write(dir.path().join("in").join(name), text).unwrap()
        };
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        let recipes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let opts = |inbox: &str| {
            crate::app::run::RunOptions::new(
                recipes.clone(),
                dir.path().join(inbox),
                dir.path().join("out"),
            )
        };
        let mut csv = String::from("Nro Cliente;Razón Social / Nombre\n");
        for i in 1..=20 {
            csv.push_str(&format!("{i};C{i}\n"));
        }
        w("clientes.csv", &csv);
        crate::app::run::run(&opts("in")).unwrap();
        // Next day: a truncated file (held) with a duplicate in it.
        w(
            "clientes.csv",
            "Nro Cliente;Razón Social / Nombre\n1;A\n01;B\n",
        );
        let report = crate::app::run::run(&opts("in")).unwrap();
        let spec = AlertSpec {
            webhook_env: Some(format!("DROPSYNC_TEST_HOOK_{}", std::process::id())),
            reject_share: 0.05,
            update_share: 0.3,
            run_link: Some("http://127.0.0.1:8080/runs/{run_id}".into()),
            email: None,
        };
        let why = reason(&spec, &report).expect("a held run is worth an alert");
        let (url, got) = receiver();
        std::env::set_var(spec.webhook_env.as_ref().unwrap(), &url);
        assert!(send(&spec, &payload(&spec, &report, &why)).unwrap());
        let body: Value = serde_json::from_str(&got.join().unwrap()).unwrap();
        assert_eq!(body["status"], "held");
        assert_eq!(body["entities"]["clientes"]["held_deletes"], 19);
        assert_eq!(body["top_reasons"][0]["rule"], "id.duplicate");
        assert_eq!(body["top_reasons"][0]["count"], 2);
        assert!(body["top_reasons"][0]["example"]
            .as_str()
            .unwrap()
            .starts_with("clientes.csv:2 1"));
        assert_eq!(
            body["link"],
            format!("http://127.0.0.1:8080/runs/{}", report.run_id)
        );
        assert!(body["text"].as_str().unwrap().contains("held"));
    }

    /// A minimal SMTP server on 127.0.0.1 that accepts one message and returns it.
    fn smtp_receiver() -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            stream.write_all(b"220 localhost ESMTP test\r\n").unwrap();
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                let cmd = line.to_uppercase();
                if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                    stream
                        .write_all(b"250-localhost\r\n250 8BITMIME\r\n")
                        .unwrap();
                } else if cmd.starts_with("DATA") {
                    stream.write_all(b"354 go ahead\r\n").unwrap();
                    loop {
                        let mut l = String::new();
                        reader.read_line(&mut l).unwrap();
                        if l == ".\r\n" {
                            break;
                        }
                        data.push_str(&l);
                    }
                    stream.write_all(b"250 queued\r\n").unwrap();
                } else if cmd.starts_with("QUIT") {
                    stream.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    stream.write_all(b"250 OK\r\n").unwrap();
                }
            }
            data
        });
        (port, handle)
    }

    #[test]
    fn an_alert_is_emailed_with_its_reasons() {
        let (port, got) = smtp_receiver();
        let spec = AlertSpec {
            email: Some(EmailSpec {
                host: "127.0.0.1".into(),
                port,
                starttls: false,
                from: "dropsync@dealer.test".into(),
                to: vec!["ops@dealer.test".into()],
                user_env: None,
                password_env: None,
            }),
            ..AlertSpec::default()
        };
        let body = json!({
            "text": "dropsync run R1 held: deletes held by the guard",
            "top_reasons": [{"entity": "ventas", "rule": "ref.missing", "count": 3, "example": "ventas.csv:57 OP-1 — Nro Cliente `9` is not an accepted row"}],
            "entities": {"ventas": {"rejected": 3}},
        });
        assert!(send(&spec, &body).unwrap());
        let mail = got.join().unwrap();
        assert!(mail.contains("Subject: dropsync run R1 held"), "{mail}");
        assert!(mail.contains("To: ops@dealer.test"), "{mail}");
        assert!(mail.contains("ventas.csv:57 OP-1"), "{mail}");
    }

    #[test]
    fn a_failed_post_names_the_webhook_without_its_secret_path() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let var = format!("DROPSYNC_TEST_SECRET_HOOK_{}", std::process::id());
        std::env::set_var(
            &var,
            format!("http://ops:hunter2@127.0.0.1:{port}/services/secret-token-XYZ?k=k3y"),
        );
        let spec = AlertSpec {
            webhook_env: Some(var.clone()),
            ..AlertSpec::default()
        };
        let err = send(&spec, &failure_payload("boom"))
            .unwrap_err()
            .to_string();
        for secret in ["secret-token-XYZ", "k3y", "hunter2", "ops"] {
            assert!(!err.contains(secret), "{secret} in {err}");
        }
        assert!(err.contains(&format!("http://127.0.0.1:{port}/…")), "{err}");
        assert!(err.contains(&var), "the message names the variable: {err}");
    }

    #[test]
    fn data_in_the_alert_text_cannot_ping_or_link_and_is_bounded() {
        let hostile = format!(
            "<!channel> <https://evil.example|approve> & {}",
            "x".repeat(5000)
        );
        let body = failure_payload(&hostile);
        let text = body["text"].as_str().unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        assert!(text.chars().count() < 400, "bounded: {} chars", text.len());
        assert!(!bounded("a\r\nBcc: x@evil", 50).contains(['\r', '\n']));
    }

    /// A finished run whose one entity, `clientes`, ended as `summary`.
    fn clientes_run(summary: crate::model::EntitySummary) -> RunReport {
        RunReport {
            run_id: "r1".into(),
            status: RunStatus::Ok,
            dry_run: false,
            entities: vec![("clientes".into(), summary)],
            samples: Vec::new(),
            issues: Vec::new(),
            timings: Default::default(),
            crm_rows_written: 0,
            peak_rss_mb: 0.0,
            gsheets: None,
        }
    }

    #[test]
    fn a_column_gone_or_renamed_alerts_one_only_added_does_not() {
        let spec = AlertSpec::default();
        let with = |drift: crate::model::Drift| {
            clientes_run(crate::model::EntitySummary {
                read: 10,
                accepted: 10,
                drift: Some(drift),
                ..Default::default()
            })
        };
        let added = crate::model::Drift {
            added: vec!["Nro Socio".into()],
            ..Default::default()
        };
        assert_eq!(reason(&spec, &with(added)), None);
        let renamed = crate::model::Drift {
            renamed: vec![crate::model::Renamed {
                recipe: "Email".into(),
                file: "E-mail".into(),
                similarity: 1.0,
            }],
            ..Default::default()
        };
        assert_eq!(
            reason(&spec, &with(renamed)).unwrap(),
            r#"clientes: the export's columns changed: renamed "Email" -> "E-mail" (1.00)"#
        );
    }

    #[test]
    fn an_entity_updating_most_of_its_rows_alerts_with_its_fields() {
        let spec = AlertSpec {
            update_share: 0.3,
            ..AlertSpec::default()
        };
        let with = |accepted: usize, updated: usize| {
            let mut s = crate::model::EntitySummary {
                read: accepted,
                accepted,
                updated,
                ..Default::default()
            };
            s.field_changes.insert("email".into(), updated);
            s.field_changes.insert("celular".into(), updated / 2);
            s.field_changes.insert("ciudad".into(), 1);
            s.field_changes.insert("cp".into(), 1);
            clientes_run(s)
        };
        assert_eq!(
            reason(&spec, &with(100, 30)),
            None,
            "exactly the share passes"
        );
        assert_eq!(
            reason(&spec, &with(100, 31)).unwrap(),
            "clientes: 31 of 100 rows updated (over 30%): email in 31, celular in 15, ciudad in 1; columns swapped or mis-mapped?"
        );
        assert_eq!(reason(&spec, &with(19, 19)), None, "too few rows to tell");
        let off = AlertSpec {
            update_share: 0.0,
            ..AlertSpec::default()
        };
        assert_eq!(reason(&off, &with(100, 100)), None);
    }

    #[test]
    fn quiet_runs_send_nothing() {
        let spec = AlertSpec::default();
        assert!(!send(&spec, &json!({})).unwrap());
    }
}
