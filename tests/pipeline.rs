//! End-to-end behaviour of `dropsync run` / `approve` on drops written in temp dirs.

mod support;

use support::{clients_csv, write_small_drop, Workdir};

#[test]
fn first_run_counts_every_rule_with_file_and_line() {
    let w = Workdir::new();
    write_small_drop(&w);
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json["status"], "ok");
    //                               read acc rej warn ins upd unch del
    assert_eq!(r.counts("sucursales"), [2, 2, 0, 0, 2, 0, 0, 0]);
    assert_eq!(r.counts("usuarios"), [2, 2, 0, 2, 2, 0, 0, 0]);
    assert_eq!(r.counts("clientes"), [5, 2, 3, 1, 2, 0, 0, 0]);
    assert_eq!(r.counts("ventas"), [6, 2, 4, 2, 2, 0, 0, 0]);
    assert_eq!(r.counts("unidades"), [2, 2, 0, 1, 2, 0, 0, 0]);
    assert_eq!(r.counts("servicios"), [2, 1, 1, 0, 1, 0, 0, 0]);

    let rejects = w.rows(
        "staging.sqlite",
        "SELECT entity, file, line, id, severity, rule FROM rejects ORDER BY entity, line, rule",
    );
    let expected = [
        // The quoted address of 000123 spans lines 2-3, so 124 starts on line 4.
        "clientes|clientes.csv|4|124|warning|type.date",
        "clientes|clientes.csv|5||error|id.empty",
        "clientes|clientes.csv|6|125|error|id.duplicate",
        "clientes|clientes.csv|7|0125|error|id.duplicate",
        "servicios|servicios.csv|3|OT-2|error|ref.missing",
        "unidades|unidades.xml|9|U2|warning|ref.optional_missing",
        "usuarios|usuarios.csv|3|V0002|warning|ref.optional_missing",
        "usuarios|usuarios.csv|3|V0002|warning|type.boolean",
        "ventas|ventas.csv|3|OP-2|warning|ref.optional_missing",
        "ventas|ventas.csv|3|OP-2|warning|type.decimal",
        "ventas|ventas.csv|4|OP-3|error|type.date",
        "ventas|ventas.csv|5|OP-4|error|required",
        // 125 was rejected as a duplicate: the sale referencing it cascades.
        "ventas|ventas.csv|6|OP-5|error|ref.missing",
        "ventas|ventas.csv|7|OP-6|error|ref.missing",
    ];
    assert_eq!(rejects, expected);
    let dup_reason: String = w.q(
        "staging.sqlite",
        "SELECT reason FROM rejects WHERE rule = 'id.duplicate' LIMIT 1",
    );
    assert!(dup_reason.contains("lines 6, 7"), "{dup_reason}");
}

#[test]
fn staging_holds_typed_clean_values_with_accents_intact() {
    let w = Workdir::new();
    write_small_drop(&w);
    assert_eq!(w.run().code, 0);
    let rows = w.rows(
        "staging.sqlite",
        "SELECT id, razon_social, apellido, nombre, tipo, cuit_dni, email, domicilio, fecha_alta FROM clientes ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            "123|Núñez, José María|Núñez|José María|persona|20123456789|a@b.com|Calle 1; piso 2 Lote 3|2020-02-01",
            "124|Transportes del Sur S.R.L.|||empresa|30111111111||Ruta 8|",
        ]
    );
    let ventas = w.rows(
        "staging.sqlite",
        "SELECT id, fecha, cliente_id, vendedor_id, importe_total FROM ventas ORDER BY id",
    );
    assert_eq!(
        ventas,
        [
            "OP-1|2026-11-20|123|V0001|1234567.89",
            "OP-2|2026-11-20|124||"
        ]
    );
    // XML: entity references other than the XML five are never resolved.
    let u1 = w.rows(
        "staging.sqlite",
        "SELECT marca, modelo, km, cliente_id, venta_id FROM unidades WHERE id = 'U1'",
    );
    assert_eq!(u1, ["Citroën & Co|&xxe;|35400|123|"]);
    let int_type: String = w.q(
        "staging.sqlite",
        "SELECT typeof(km) FROM unidades WHERE id = 'U1'",
    );
    assert_eq!(int_type, "integer");
}

#[test]
fn identical_rerun_changes_nothing() {
    let w = Workdir::new();
    write_small_drop(&w);
    assert_eq!(w.run().code, 0);
    let before = w.rows("crm.sqlite", "SELECT * FROM clientes ORDER BY id");
    let r = w.run();
    assert_eq!(r.code, 0);
    for e in [
        "sucursales",
        "usuarios",
        "clientes",
        "ventas",
        "unidades",
        "servicios",
    ] {
        let c = r.counts(e);
        assert_eq!(&c[4..], &[0, 0, c[1], 0], "{e}: {c:?}");
    }
    assert_eq!(r.json["crm_rows_written"], 0);
    assert_eq!(
        w.rows("crm.sqlite", "SELECT * FROM clientes ORDER BY id"),
        before
    );
}

#[test]
fn next_snapshot_applies_exactly_its_changes() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(100, &[], &[]));
    assert_eq!(w.run().counts("clientes"), [100, 100, 0, 0, 100, 0, 0, 0]);
    // 3 changed emails, 5 deleted (5% < 10% guard), 2 added.
    let mut next = clients_csv(100, &[10, 20, 30, 40, 50], &[1, 2, 3]);
    next.push_str("101;Nueva SA;Empresa;;;;;;;;;\n102;\"Gómez, Ana\";Persona;;;;;;;;;\n");
    w.cp1252("clientes.csv", &next);
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.counts("clientes"), [97, 97, 0, 0, 2, 3, 92, 5]);
    assert_eq!(r.json["crm_rows_written"], 10);
    let deleted: Vec<String> = w.rows(
        "crm.sqlite",
        "SELECT id FROM clientes WHERE _deleted = 1 ORDER BY CAST(id AS INTEGER)",
    );
    assert_eq!(deleted, ["10", "20", "30", "40", "50"]);
    let email: String = w.q("crm.sqlite", "SELECT email FROM clientes WHERE id = '2'");
    assert_eq!(email, "nuevo2@mail.com");
    // The change log explains each row of this run.
    let run_id = r.json["run_id"].as_str().unwrap();
    let log = w.rows(
        "state/state.sqlite",
        &format!("SELECT change, count(*), group_concat(DISTINCT fields) FROM changes WHERE run_id = '{run_id}' GROUP BY change ORDER BY change"),
    );
    assert_eq!(log, ["deleted|5|", "inserted|2|", "updated|3|email"]);
    // Staging holds exactly this run's accepted rows (updated in place, not rebuilt).
    let staged = w.rows("staging.sqlite", "SELECT count(*), sum(id IN ('10','20','30','40','50')), sum(id IN ('101','102')) FROM clientes");
    assert_eq!(staged, ["97|0|2"]);
    let email: String = w.q(
        "staging.sqlite",
        "SELECT email FROM clientes WHERE id = '2'",
    );
    assert_eq!(email, "nuevo2@mail.com");
    // A deleted client that comes back is an insert and is live again.
    w.cp1252("clientes.csv", &clients_csv(100, &[], &[1, 2, 3]));
    let r = w.run();
    assert_eq!(r.counts("clientes")[4..], [5, 0, 95, 2]);
    let live: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(live, 100);
}

#[test]
fn create_only_fields_neither_count_nor_get_overwritten() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(20, &[], &[]));
    assert_eq!(w.run().code, 0);
    w.cp1252(
        "clientes.csv",
        &clients_csv(20, &[], &[]).replace("01/01/2020", "05/05/2025"),
    );
    let r = w.run();
    assert_eq!(r.counts("clientes")[4..], [0, 0, 20, 0]);
    let alta: String = w.q(
        "crm.sqlite",
        "SELECT fecha_alta FROM clientes WHERE id = '7'",
    );
    assert_eq!(alta, "2020-01-01");
}

#[test]
fn a_rejected_row_is_not_a_delete() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(20, &[], &[]));
    assert_eq!(w.run().code, 0);
    // Client 5 now appears twice: both rows are rejected, but it stays in the CRM.
    let mut next = clients_csv(20, &[], &[5]);
    next.push_str("5;Otro;Persona;;;;;;;;;\n");
    w.cp1252("clientes.csv", &next);
    let r = w.run();
    assert_eq!(r.counts("clientes"), [21, 19, 2, 0, 0, 0, 19, 0]);
    let row = w.rows(
        "crm.sqlite",
        "SELECT email, _deleted FROM clientes WHERE id = '5'",
    );
    assert_eq!(row, ["cliente5@mail.com|0"]);
    // Still protected on the following run (the snapshot kept its last accepted version).
    let r = w.run();
    assert_eq!(r.counts("clientes")[7], 0);
}

#[test]
fn guard_holds_a_truncated_file_and_approve_releases_it() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(50, &[], &[]));
    assert_eq!(w.run().code, 0);
    // The nightly export broke: header only.
    w.cp1252("clientes.csv", &clients_csv(0, &[], &[]));
    let r = w.run();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.json["status"], "held");
    assert_eq!(r.entity("clientes")["held_deletes"], 50);
    assert_eq!(r.counts("clientes")[7], 0);
    let live: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(live, 50);
    let run_id = r.json["run_id"].as_str().unwrap().to_string();
    let runs = w.cmd(&["runs", "--out", "out", "--json"]);
    assert!(String::from_utf8_lossy(&runs.stdout).contains(&format!("\"run_id\":\"{run_id}\",")));
    let a = w.ws_cmd(&["approve", &run_id]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let live: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(live, 0);
    // Approving twice is refused; the next run has nothing left to delete.
    let again = w.ws_cmd(&["approve", &run_id]);
    assert_eq!(again.status.code(), Some(2));
    let r = w.run();
    assert_eq!(
        r.code, 0,
        "nothing is left to delete, so nothing is held: {}",
        r.json
    );
    assert_eq!(r.entity("clientes")["held_deletes"], 0);
}

#[test]
fn guard_threshold_holds_mass_deletes_only() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(100, &[], &[]));
    assert_eq!(w.run().code, 0);
    let gone: Vec<usize> = (1..=11).collect();
    w.cp1252("clientes.csv", &clients_csv(100, &gone, &[]));
    let r = w.run();
    assert_eq!(r.code, 3);
    assert_eq!(r.entity("clientes")["held_deletes"], 11);
    // Back to 10 missing (10% is not over the threshold): applied, old hold superseded.
    let gone: Vec<usize> = (1..=10).collect();
    w.cp1252("clientes.csv", &clients_csv(100, &gone, &[]));
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(r.counts("clientes")[7], 10);
    let deleted: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 1",
    );
    assert_eq!(deleted, 10);
}

#[test]
fn killed_runs_converge_to_the_uninterrupted_result() {
    let business = "SELECT id, email, _deleted FROM clientes ORDER BY id";
    // Reference: two uninterrupted runs.
    let clean = Workdir::new();
    clean.cp1252("clientes.csv", &clients_csv(40, &[], &[]));
    assert_eq!(clean.run().code, 0);
    clean.cp1252("clientes.csv", &clients_csv(40, &[3], &[7, 8]));
    assert_eq!(clean.run().code, 0);
    let want = clean.rows("crm.sqlite", business);
    // 3 of 40 rows changed: the second run journals a snapshot delta, not a whole snapshot,
    // so the kills below land on the delta's paths.
    assert!(clean
        .out()
        .join("state/snapshots/clientes.delta.parquet")
        .exists());

    for point in [
        "journaled:clientes",
        "after-stage",
        "crm-upsert:clientes",
        "after-upserts",
        "before-snapshots",
        "snapshot-promoted:clientes",
    ] {
        let w = Workdir::new();
        w.cp1252("clientes.csv", &clients_csv(40, &[], &[]));
        assert_eq!(w.run().code, 0);
        w.cp1252("clientes.csv", &clients_csv(40, &[3], &[7, 8]));
        let staged = "SELECT id, email FROM clientes ORDER BY id";
        let staged_before = w.rows("staging.sqlite", staged);
        let killed = w.run_with_env(&[("DROPSYNC_FAILPOINT", point)]);
        assert_ne!(killed.code, 0, "{point}: the failpoint must kill the run");
        if point == "journaled:clientes" {
            // Staging had the entity's rows, uncommitted until the journal commits: a run
            // killed before shows analysts nothing of itself.
            assert_eq!(w.rows("staging.sqlite", staged), staged_before, "{point}");
            assert!(w
                .out()
                .join("state/pending")
                .read_dir()
                .unwrap()
                .next()
                .is_some());
        }
        let r = w.run();
        assert_eq!(r.code, 0, "{point}: {}", r.stderr);
        assert_eq!(w.rows("crm.sqlite", business), want, "{point}");
        assert_ne!(w.rows("staging.sqlite", staged), staged_before, "{point}");
        // And the run after that sees nothing left to do.
        let r = w.run();
        assert_eq!(r.json["crm_rows_written"], 0, "{point}");
        assert!(
            w.out()
                .join("state/pending")
                .read_dir()
                .unwrap()
                .next()
                .is_none(),
            "{point}: no journal is left behind"
        );
        // The killed run is `interrupted` (killed before its journal committed: no CRM
        // write happened), completed by the next run from its journal, or (killed in
        // staging after its CRM stage committed) `ok`; never left `running`.
        let statuses = w.rows(
            "state/state.sqlite",
            "SELECT status || CASE WHEN summary LIKE '%\"recovered_by\"%' THEN '+recovered' ELSE '' END FROM runs ORDER BY started_at, run_id",
        );
        assert_eq!(statuses.len(), 4, "{point}: {statuses:?}");
        assert!(
            ["interrupted", "ok+recovered", "ok"].contains(&statuses[1].as_str()),
            "{point}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| s != "running"),
            "{point}: {statuses:?}"
        );
    }
}

/// A regression: under `policy = "ignore"` a client gone from the export leaves the CRM
/// alone but not the snapshot, and a snapshot kept as a delta must drop it too (the delta
/// once held only deletes the CRM was to apply, so the gone clients stayed in the snapshot
/// and were found gone again on every run).
#[test]
fn ignored_deletes_leave_the_snapshot_through_its_delta() {
    let w = Workdir::new();
    let recipe = w.recipes().join("clientes.toml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    assert!(text.contains("policy = \"soft\""));
    std::fs::write(
        &recipe,
        text.replace("policy = \"soft\"", "policy = \"ignore\""),
    )
    .unwrap();
    w.cp1252("clientes.csv", &clients_csv(40, &[], &[]));
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &clients_csv(40, &[3, 4], &[]));
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json["samples"]["clientes"]["deleted"],
        serde_json::json!(["3", "4"])
    );
    assert!(w
        .out()
        .join("state/snapshots/clientes.delta.parquet")
        .exists());
    let state = dropsync::state::State::open(&w.out()).unwrap();
    let ids = state.snapshot_ids("clientes").unwrap().unwrap();
    assert_eq!(ids.len(), 38, "{ids:?}");
    drop(state);
    // So the same export again finds nothing gone.
    let again = w.run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.json["samples"]["clientes"]["deleted"],
        serde_json::json!([])
    );
}

#[test]
fn broken_file_is_quarantined_and_children_use_the_last_state() {
    let w = Workdir::new();
    write_small_drop(&w);
    assert_eq!(w.run().code, 0);
    // A truncated XML: the units keep their last state; services still resolve U1.
    let xml = std::fs::read(w.inbox().join("unidades.xml")).unwrap();
    std::fs::write(w.inbox().join("unidades.xml"), &xml[..xml.len() / 2]).unwrap();
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.entity("unidades")["status"], "quarantined");
    assert!(r.entity("unidades")["reason"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    assert_eq!(r.counts("servicios")[1], 1);
    let run_id = r.json["run_id"].as_str().unwrap();
    let q = w.out().join("quarantine").join(run_id);
    assert!(q.join("unidades.xml").exists());
    assert!(std::fs::read_to_string(q.join("unidades.xml.reason.txt"))
        .unwrap()
        .contains("truncated"));
    let units: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM unidades WHERE _deleted = 0",
    );
    assert_eq!(units, 2);
    // A CSV that is not the entity at all (no ID column) is quarantined too.
    w.cp1252("clientes.csv", "Nombre;Email\nx;y\n");
    let r = w.run();
    assert_eq!(r.entity("clientes")["status"], "quarantined");
    assert!(r.entity("clientes")["reason"]
        .as_str()
        .unwrap()
        .contains("Nro Cliente"));
    // Binary garbage never panics.
    std::fs::write(w.inbox().join("ventas.csv"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    let r = w.run();
    assert_eq!(r.code, 0);
    assert_eq!(r.entity("ventas")["status"], "quarantined");
}

#[test]
fn dry_run_plans_without_writing() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(10, &[], &[]));
    let r = w.run_args(&["--dry-run"], &[]).json;
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["entities"]["clientes"]["inserted"], 10);
    assert_eq!(
        r["samples"]["clientes"]["inserted"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert!(!w.out().join("crm.sqlite").exists());
    assert!(!w.out().join("staging.sqlite").exists());
    // After a real run, `plan` shows updates as field: before -> after, and deletes.
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &clients_csv(10, &[9], &[2]));
    let o = w.ws_cmd(&["plan", "--inbox", "in"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("update  2  email: cliente2@mail.com -> nuevo2@mail.com"),
        "{text}"
    );
    assert!(text.contains("delete  9"), "{text}");
    let email: String = w.q("crm.sqlite", "SELECT email FROM clientes WHERE id = '2'");
    assert_eq!(email, "cliente2@mail.com", "plan wrote nothing");
}

#[test]
fn workbook_has_a_sheet_per_entity_and_neutralizes_formulas() {
    let w = Workdir::new();
    let mut c = clients_csv(3, &[], &[]);
    c.push_str("4;=HYPERLINK(\"http://evil\");Empresa;;;;;;;;;\n");
    w.cp1252("clientes.csv", &c);
    assert_eq!(w.run().code, 0);
    let book = unzip(&w.out().join("staging.xlsx"), "xl/workbook.xml");
    for s in ["clientes", "rejects", "summary"] {
        assert!(book.contains(&format!("name=\"{s}\"")), "{s}: {book}");
    }
    let strings = unzip(&w.out().join("staging.xlsx"), "xl/sharedStrings.xml");
    let all: String = (1..=3)
        .map(|i| unzip_sheet(&w, i))
        .collect::<Vec<_>>()
        .join("");
    let text = format!("{strings}{all}");
    assert!(text.contains("'=HYPERLINK"), "formula not neutralized");
    assert!(!text.contains(">=HYPERLINK"));
}

fn unzip(path: &std::path::Path, name: &str) -> String {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut s = String::new();
    if let Ok(mut f) = z.by_name(name) {
        f.read_to_string(&mut s).unwrap();
    }
    s
}

fn unzip_sheet(w: &Workdir, i: usize) -> String {
    unzip(
        &w.out().join("staging.xlsx"),
        &format!("xl/worksheets/sheet{i}.xml"),
    )
}

#[test]
fn explain_tells_a_rows_history() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(20, &[], &[]));
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &clients_csv(20, &[], &[5]));
    assert_eq!(w.run().code, 0);
    // Client 5 duplicated on the third day: rejected, with both lines.
    let mut dup = clients_csv(20, &[], &[5]);
    dup.push_str("0005;Otro;Persona;;;;;;;;;\n");
    w.cp1252("clientes.csv", &dup);
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", &clients_csv(20, &[5], &[]));
    assert_eq!(w.run().code, 0);
    let o = w.ws_cmd(&["explain", "clientes", "000005", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let what: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(what, ["inserted", "updated", "error", "error", "deleted"]);
    assert_eq!(events[1]["detail"], "changed: email");
    assert_eq!(events[0]["line"], 6);
    assert!(events[2]["detail"]
        .as_str()
        .unwrap()
        .starts_with("id.duplicate"));
    assert_eq!(events[2]["file"], "clientes.csv");
    let unknown = w.ws_cmd(&["explain", "nada", "1"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn other_dialects_read_the_same() {
    // Comma-separated UTF-8 without BOM and LF line ends, headers in other case and spacing,
    // quoted commas; a tab-separated sales file; a pipe-separated users file.
    let w = Workdir::new();
    w.utf8(
        "clientes.csv",
        "NRO CLIENTE , razon social / nombre,TIPO,Cuit/Dni,EMAIL,Telefono,Celular,Domicilio,Localidad,Provincia,Codigo Postal,Fecha Alta\n\
         7,\"Gómez, Ana\",Persona,27-1.234.567-8,ana@x.com,,,\"Calle 1, piso 2\",Rosario,Santa Fe,2000,3/4/2021\n\
         0008,Ñandú SA,Empresa,,,,,,,,,\n",
    );
    w.utf8(
        "ventas.csv",
        "Nro Operación\tFecha\tNro Cliente\tVendedor\tSucursal\tTipo\tImporte Total\tMoneda\tEstado\n\
         A-1\t01/02/2026\t007\tV1\t\t0km\t1.500.000,50\tARS\tFacturada\n",
    );
    w.utf8(
        "usuarios.csv",
        "Código|Nombre y Apellido|Email|Rol|Sucursal|Activo\nv1|Ana|a@x|Vendedor||Sí\n",
    );
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.counts("clientes")[..3], [2, 2, 0]);
    assert_eq!(r.counts("ventas")[..4], [1, 1, 0, 0], "{}", r.json);
    let c = w.rows(
        "staging.sqlite",
        "SELECT id, apellido, nombre, cuit_dni, domicilio, fecha_alta FROM clientes ORDER BY id",
    );
    assert_eq!(
        c,
        [
            "7|Gómez|Ana|2712345678|Calle 1, piso 2|2021-04-03",
            "8|||||"
        ]
    );
    let v = w.rows(
        "staging.sqlite",
        "SELECT cliente_id, vendedor_id, importe_total FROM ventas",
    );
    assert_eq!(v, ["7|V1|1500000.50"]);
    let u = w.rows("staging.sqlite", "SELECT id, activo FROM usuarios");
    assert_eq!(u, ["V1|1"]);
}

#[test]
fn log_dir_keeps_a_daily_log_file_even_when_quiet() {
    let w = Workdir::new();
    support::write_small_drop(&w);
    let logs = w.path().join("logs");
    let r = w.run_args(&["--quiet", "--log-dir", logs.to_str().unwrap()], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stderr.contains("run started"),
        "--quiet keeps info off stderr: {}",
        r.stderr
    );
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("dropsync.log."), "{name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let run_id = r.json["run_id"].as_str().unwrap();
    assert!(
        text.contains("run started") && text.contains(run_id),
        "{text}"
    );
    assert!(text.contains("run finished"), "{text}");
    assert!(!text.contains("\u{1b}["), "no colour codes in the file");
}

/// UTF-16 with a byte-order mark (Excel's "Unicode text", some DMS exports) reads like the
/// same text in UTF-8: same rows, same lines, accents intact.
#[test]
fn utf16_exports_read_like_utf8() {
    let text = clients_csv(6, &[], &[]).replace('\n', "\r\n");
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
    let plain = Workdir::new();
    plain.utf8("clientes.csv", &text);
    assert_eq!(plain.run().code, 0);
    let want = plain.rows(
        "crm.sqlite",
        "SELECT id, razon_social, email FROM clientes ORDER BY id",
    );
    for (label, bytes) in [("utf-16le", le), ("utf-16be", be)] {
        let w = Workdir::new();
        std::fs::write(w.inbox().join("clientes.csv"), bytes).unwrap();
        let r = w.run();
        assert_eq!(r.code, 0, "{label}: {}", r.stderr);
        assert_eq!(r.entity("clientes")["encoding"], label);
        assert_eq!(r.counts("clientes")[..2], [6, 6], "{label}");
        let got = w.rows(
            "crm.sqlite",
            "SELECT id, razon_social, email FROM clientes ORDER BY id",
        );
        assert_eq!(got, want, "{label}");
        assert!(got.iter().any(|r| r.contains("Pérez")), "{label}: {got:?}");
    }
}

/// Excel for Mac's "CSV (Macintosh)" ends lines with a lone CR: rows and their lines are read
/// as with LF (the lines all read as 1 before).
#[test]
fn lone_cr_line_ends_keep_exact_lines() {
    let text = clients_csv(6, &[], &[]).replace(
        "000005;\"Pérez, Juan 5\";Persona;20-00000005-1;cliente5@mail.com;;;Calle 5;Rosario;Santa Fe;2000;01/01/2020",
        "000005;\"Pérez, Juan 5\";Persona;20-00000005-1;cliente5@mail.com;;;Calle 5;Rosario;Santa Fe;2000;99/99/2020",
    );
    assert!(text.contains("99/99/2020"));
    let w = Workdir::new();
    let cr = text.replace('\n', "\r");
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&cr);
    std::fs::write(w.inbox().join("clientes.csv"), bytes).unwrap();
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.counts("clientes")[..2], [6, 6]);
    let rejects = w.rows(
        "staging.sqlite",
        "SELECT line, id, rule FROM rejects WHERE entity = 'clientes'",
    );
    assert_eq!(rejects, ["6|000005|type.date"]);
}
