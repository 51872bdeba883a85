//! The pipeline against generated dealer drops whose answers are known: the generator's
//! manifest (written independently of the pipeline) says how many rows each entity must
//! accept, reject and warn about, on which lines, and what the next snapshot changes.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use dropsync::app::gen::{self, ChangeSpec, GenEncoding, GenOptions, Manifest, UnitFormat};
use support::Workdir;

fn copy_drop(from: &Path, w: &Workdir) {
    for e in std::fs::read_dir(w.inbox()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "manifest.json" {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// (entity, line, id, rule) of the run's rejects of one severity.
fn issues(w: &Workdir, run_id: &str, severity: &str) -> BTreeSet<(String, u64, String, String)> {
    w.rows(
        "staging.sqlite",
        &format!("SELECT entity, line, id, rule FROM rejects WHERE run_id = '{run_id}' AND severity = '{severity}'"),
    )
    .into_iter()
    .map(|r| {
        let p: Vec<&str> = r.split('|').collect();
        (p[0].to_string(), p[1].parse().unwrap(), p[2].to_string(), p[3].to_string())
    })
    .collect()
}

fn expected(list: &[gen::RowIssue]) -> BTreeSet<(String, u64, String, String)> {
    list.iter()
        .map(|i| (i.entity.clone(), i.line, i.id.clone(), i.rule.clone()))
        .collect()
}

fn check_drop(opts: GenOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let (day1, day2) = (tmp.path().join("day1"), tmp.path().join("day2"));
    gen::generate(&opts, &day1).unwrap();
    let spec = ChangeSpec {
        changed: 0.02,
        added: 0.01,
        deleted: 0.03,
    };
    gen::generate_next(&opts, &spec, &day2).unwrap();
    check_pair(&day1, &day2, &format!("{opts:?}"));
}

/// Runs a drop and its next snapshot and compares every count with their manifests.
fn check_pair(day1: &Path, day2: &Path, label: &str) -> Workdir {
    let base = Manifest::load(day1).unwrap();
    let next = Manifest::load(day2).unwrap();
    let w = Workdir::new();
    copy_drop(day1, &w);
    let r = w.run();
    assert_eq!(r.code, 0, "{label}: {}", r.stderr);
    for (entity, want) in &base.entities {
        let got = r.entity(entity);
        assert_eq!(got["read"], want.rows, "{label} {entity} read");
        assert_eq!(got["accepted"], want.accepted, "{label} {entity} accepted");
        assert_eq!(got["rejected"], want.rejected, "{label} {entity} rejected");
        assert_eq!(got["warnings"], want.warnings, "{label} {entity} warnings");
        assert_eq!(got["inserted"], want.accepted, "{label} {entity} inserted");
    }
    let run_id = r.json["run_id"].as_str().unwrap().to_string();
    // Rows with several errors would list several rules; the generator keeps one per row.
    assert_eq!(
        issues(&w, &run_id, "error"),
        expected(&base.rejects),
        "{label}: rejects"
    );
    assert_eq!(
        issues(&w, &run_id, "warning"),
        expected(&base.warnings),
        "{label}: warnings"
    );

    copy_drop(day2, &w);
    let r = w.run();
    assert_eq!(r.code, 0, "{label}: {}", r.json);
    let changes = next.changes.as_ref().expect("next snapshot has changes");
    let mut total = 0;
    for (entity, want) in changes {
        let got = r.entity(entity);
        assert_eq!(got["inserted"], want.inserted, "{label} {entity} inserted");
        assert_eq!(got["updated"], want.updated, "{label} {entity} updated");
        assert_eq!(got["deleted"], want.deleted, "{label} {entity} deleted");
        assert_eq!(
            got["unchanged"], want.unchanged,
            "{label} {entity} unchanged"
        );
        total += want.inserted + want.updated + want.deleted;
    }
    assert_eq!(
        r.json["crm_rows_written"], total,
        "{label}: CRM rows written"
    );
    // The same snapshot again writes nothing.
    let r = w.run();
    assert_eq!(r.json["crm_rows_written"], 0, "{label}");
    w
}

#[test]
fn shipped_samples_match_their_manifests() {
    let samples = support::repo().join("samples");
    let w = check_pair(
        &samples.join("2026-11-20"),
        &samples.join("2026-11-21"),
        "samples",
    );
    // Windows-1252 accents arrive intact in staging (and nothing was mis-decoded).
    let accented: i64 = w.q(
        "staging.sqlite",
        "SELECT count(*) FROM clientes WHERE razon_social LIKE '%á%' OR razon_social LIKE '%ñ%' OR razon_social LIKE '%é%'",
    );
    assert!(accented > 10, "{accented}");
    let broken: i64 = w.q(
        "staging.sqlite",
        "SELECT count(*) FROM clientes WHERE razon_social LIKE '%\u{fffd}%' OR domicilio LIKE '%Ã%'",
    );
    assert_eq!(broken, 0);
}

#[test]
fn dirty_cp1252_xml_drop_matches_its_manifest() {
    check_drop(GenOptions {
        clients: 400,
        seed: 7,
        encoding: GenEncoding::Cp1252,
        unidades: UnitFormat::Xml,
        dirty: true,
    });
}

#[test]
fn dirty_utf8_bom_csv_units_drop_matches_its_manifest() {
    check_drop(GenOptions {
        clients: 300,
        seed: 11,
        encoding: GenEncoding::Utf8Bom,
        unidades: UnitFormat::Csv,
        dirty: true,
    });
}

#[test]
fn clean_drop_matches_its_manifest() {
    check_drop(GenOptions {
        clients: 250,
        seed: 3,
        encoding: GenEncoding::Utf8,
        unidades: UnitFormat::Xml,
        dirty: false,
    });
}
