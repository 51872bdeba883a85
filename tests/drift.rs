//! Drift: an export whose columns changed under its recipe (a dealer's system upgraded
//! overnight) is told, before any run by `check --inbox` and in every run's JSON, with the
//! recipe patch a rename calls for; applying that patch makes the next run converge.

mod support;

use serde_json::Value;
use support::{sample_drop, Workdir};

/// Replaces `from` by `to` in the header line of `file` (bytes: the sample is Windows-1252).
fn rename_in_header(w: &Workdir, file: &str, from: &str, to: &str) {
    let p = w.inbox().join(file);
    let bytes = std::fs::read(&p).unwrap();
    let eol = bytes.iter().position(|b| *b == b'\n').unwrap();
    let (head, rest) = bytes.split_at(eol);
    let at = head
        .windows(from.len())
        .position(|x| x == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} in the header of {file}"));
    let mut out = head[..at].to_vec();
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&head[at + from.len()..]);
    out.extend_from_slice(rest);
    std::fs::write(&p, out).unwrap();
}

/// Appends a column `name` (value `value` on every row) to `file`.
fn add_column(w: &Workdir, file: &str, name: &str, value: &str) {
    let p = w.inbox().join(file);
    let bytes = std::fs::read(&p).unwrap();
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let (body, cr) = match line.strip_suffix(b"\r") {
            Some(b) => (b, true),
            None => (line, false),
        };
        out.extend_from_slice(body);
        out.push(b';');
        out.extend_from_slice(if i == 0 { name } else { value }.as_bytes());
        if cr {
            out.push(b'\r');
        }
        out.push(b'\n');
    }
    std::fs::write(&p, out).unwrap();
}

/// `check --inbox in --json`: the exit code and the verdict on `file`.
fn check_inbox(w: &Workdir, file: &str) -> (i32, Value) {
    let o = w.ws_cmd(&["check", "--inbox", "in", "--json"]);
    let verdicts: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let v = verdicts
        .into_iter()
        .find(|v| {
            v["item"]
                .as_str()
                .unwrap()
                .starts_with(&format!("drift {file}"))
        })
        .unwrap_or_else(|| {
            panic!(
                "a verdict on {file}: {}",
                String::from_utf8_lossy(&o.stdout)
            )
        });
    (o.status.code().unwrap(), v)
}

/// Applies a proposed recipe patch as an operator would: `patch -p0` where dropsync ran.
fn apply_patch(w: &Workdir, patch: &Value) {
    std::fs::write(w.path().join("fix.diff"), patch.as_str().unwrap()).unwrap();
    let st = std::process::Command::new("patch")
        .current_dir(w.path())
        .args(["-p0", "-i", "fix.diff"])
        .status()
        .unwrap();
    assert!(st.success());
}

fn crm_rows(w: &Workdir) -> Vec<String> {
    w.rows("crm.sqlite", "SELECT * FROM clientes ORDER BY id")
}

#[test]
fn a_renamed_id_column_is_set_aside_with_the_patch_that_fixes_it() {
    let w = Workdir::new();
    sample_drop(&w);
    assert_eq!(w.run().code, 0);
    let crm = crm_rows(&w);
    rename_in_header(&w, "clientes.csv", "Nro Cliente", "Nro. de Cliente");

    // Before any run.
    let (code, v) = check_inbox(&w, "clientes.csv");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(r#"renamed "Nro Cliente" -> "Nro. de Cliente""#),
        "{detail}"
    );
    assert!(detail.contains("+column = \"Nro. de Cliente\""), "{detail}");
    let (_, ventas) = check_inbox(&w, "ventas.csv");
    assert_eq!(ventas["ok"], true, "{ventas}");

    // The run sets the file aside (its ID column is gone) and says why and how to fix it.
    let r = w.run();
    let clientes = &r.json["entities"]["clientes"];
    assert_eq!(clientes["status"], "quarantined", "{}", r.json);
    let drift = &clientes["drift"];
    assert_eq!(drift["renamed"][0]["recipe"], "Nro Cliente");
    assert_eq!(drift["renamed"][0]["file"], "Nro. de Cliente");
    assert_eq!(crm_rows(&w), crm, "the CRM is as it was");

    // The proposed patch, applied as it is, makes the next run converge.
    apply_patch(&w, &drift["patch"]);
    assert_eq!(check_inbox(&w, "clientes.csv").1["ok"], true);
    let r = w.run();
    let clientes = &r.json["entities"]["clientes"];
    assert_eq!(clientes["status"], "ok", "{}", r.json);
    assert!(clientes.get("drift").is_none(), "{clientes}");
    assert_eq!(
        (&clientes["inserted"], &clientes["updated"]),
        (&0.into(), &0.into())
    );
    assert_eq!(crm_rows(&w), crm);
}

#[test]
fn optional_columns_renamed_and_added_are_reported_in_the_run() {
    let w = Workdir::new();
    sample_drop(&w);
    rename_in_header(&w, "clientes.csv", "Email", "E-mail");
    add_column(&w, "clientes.csv", "Nro Socio", "7");
    let r = w.run();
    let drift = &r.json["entities"]["clientes"]["drift"];
    assert_eq!(drift["renamed"][0]["recipe"], "Email", "{}", r.json);
    assert_eq!(drift["renamed"][0]["file"], "E-mail");
    assert_eq!(drift["renamed"][0]["similarity"], 1.0);
    assert_eq!(drift["added"], serde_json::json!(["Nro Socio"]));
    assert!(drift.get("missing").is_none(), "{drift}");
    assert!(drift["patch"]
        .as_str()
        .unwrap()
        .contains("+from = \"E-mail\""));
    // Entities whose files match their recipes say nothing.
    assert!(r.json["entities"]["ventas"].get("drift").is_none());
}

/// `[source] on_drift = "quarantine"`: a renamed optional column sets the file aside instead
/// of emptying the field in every row; the CRM keeps every email; the patch converges.
#[test]
fn on_drift_quarantine_keeps_the_crm_until_the_recipe_is_fixed() {
    let w = Workdir::new();
    let recipe = w.recipes().join("clientes.toml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert_eq!(text.matches("[source]\n").count(), 1);
    std::fs::write(
        &recipe,
        text.replace("[source]\n", "[source]\non_drift = \"quarantine\"\n"),
    )
    .unwrap();
    sample_drop(&w);
    assert_eq!(w.run().code, 0);
    let crm = crm_rows(&w);
    rename_in_header(&w, "clientes.csv", "Email", "E-mail");

    let r = w.run();
    let clientes = &r.json["entities"]["clientes"];
    assert_eq!(clientes["status"], "quarantined", "{}", r.json);
    let reason = clientes["reason"].as_str().unwrap();
    assert!(reason.contains("on_drift"), "{reason}");
    assert_eq!(clientes["drift"]["renamed"][0]["file"], "E-mail");
    assert_eq!(crm_rows(&w), crm, "no email emptied");
    assert!(w
        .path()
        .join("out/quarantine")
        .read_dir()
        .unwrap()
        .any(|run| run.unwrap().path().join("clientes.csv").is_file()));

    apply_patch(&w, &clientes["drift"]["patch"]);
    let r = w.run();
    let clientes = &r.json["entities"]["clientes"];
    assert_eq!(clientes["status"], "ok", "{}", r.json);
    assert_eq!(clientes["updated"], 0);
    assert_eq!(crm_rows(&w), crm);
}

/// Columns swapped under unchanged headers (the issue's case: `Email` and `Celular`): no
/// drift, but one field changed in nearly every row. The run says so per field, and the
/// alert names the mass update and the fields.
#[test]
fn swapped_columns_are_counted_per_field_and_alerted() {
    let w = Workdir::new();
    let pipeline = w.recipes().join("pipeline.toml");
    let mut text = std::fs::read_to_string(&pipeline).unwrap();
    text.push_str("\n[alerts]\nwebhook_env = \"DROPSYNC_TEST_MASS_HOOK\"\n");
    std::fs::write(&pipeline, text).unwrap();
    sample_drop(&w);
    let (url, got) = support::receiver(vec![200; 8]);
    assert_eq!(w.run_with_env(&[("DROPSYNC_TEST_MASS_HOOK", &url)]).code, 0);
    while got.try_recv().is_ok() {}

    // Email and Celular values swapped, the header as it was.
    let path = w.inbox().join("clientes.csv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_path(&path)
        .unwrap();
    let rows: Vec<csv::ByteRecord> = reader.byte_records().map(|r| r.unwrap()).collect();
    let header = &rows[0];
    let col = |name: &[u8]| header.iter().position(|h| h == name).unwrap();
    let (email, celular) = (col(b"Email"), col(b"Celular"));
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_path(&path)
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        let mut fields: Vec<&[u8]> = r.iter().collect();
        if i > 0 {
            fields.swap(email, celular);
        }
        writer.write_record(&fields).unwrap();
    }
    writer.flush().unwrap();

    let r = w.run_with_env(&[("DROPSYNC_TEST_MASS_HOOK", &url)]);
    let clientes = &r.json["entities"]["clientes"];
    assert!(clientes.get("drift").is_none(), "{clientes}");
    let updated = clientes["updated"].as_u64().unwrap();
    let accepted = clientes["accepted"].as_u64().unwrap();
    assert!(updated * 10 > accepted * 3, "{clientes}");
    let changes = &clientes["field_changes"];
    let email_changed = changes["email"].as_u64().unwrap();
    assert!(email_changed * 2 > updated, "{changes}");
    assert!(changes["celular"].as_u64().unwrap() > 0, "{changes}");
    let alert = got
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("an alert");
    let body: Value = serde_json::from_str(&alert.body).unwrap();
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "clientes: {updated} of {accepted} rows updated (over 30%)"
        )),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("email in {email_changed}")),
        "{reason}"
    );
}
