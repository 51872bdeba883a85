//! A rerun stands on each entity's last full pass when its file, recipe and parents did not
//! change, and must then give exactly what recomputing everything gives. Two workspaces take
//! the same sequence of generated drops: one runs normally (entities reused when they can
//! be), the other with `--full` (every entity recomputed). After every step their run counts,
//! this run's rejects and warnings, the CRM, the staging tables and the snapshots' IDs must be
//! equal. The drops cover: the same drop twice, a day of changes, a client deleted (its
//! sales, in an unchanged ventas.csv, must now be rejected), a client rejected as a duplicate
//! (likewise, while its last version stays), one sale less while clientes.csv stays (the
//! reused clients' IDs, less the duplicate, are what the sales are checked against), and the
//! first drop again.

mod support;

use std::path::{Path, PathBuf};

use dropsync::app::gen::{self, ChangeSpec, GenEncoding, GenOptions, UnitFormat};
use serde_json::Value;
use support::Workdir;

const ENTITIES: [&str; 6] = [
    "sucursales",
    "usuarios",
    "clientes",
    "ventas",
    "unidades",
    "servicios",
];

/// A `;`-separated export as header + records (no field here holds a line break).
fn read_csv(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(str::to_string);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

fn write_csv(path: &Path, header: &str, rows: &[String]) {
    let mut text = format!("{header}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn copy_drop(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "manifest.json" {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The drops, in the order they are run.
fn drops(dir: &Path) -> Vec<PathBuf> {
    let opts = GenOptions {
        clients: 150,
        seed: 31,
        encoding: GenEncoding::Utf8,
        unidades: UnitFormat::Csv,
        dirty: true,
    };
    let d = |i: usize| dir.join(format!("d{i}"));
    gen::generate(&opts, &d(0)).unwrap();
    let spec = ChangeSpec {
        changed: 0.05,
        added: 0.02,
        deleted: 0.02,
    };
    gen::generate_next(&opts, &spec, &d(1)).unwrap();
    // d2: d1 without two clients that have sales; ventas.csv unchanged.
    copy_drop(&d(1), &d(2));
    let (vh, ventas) = read_csv(&d(2).join("ventas.csv"));
    let client_col = vh.split(';').position(|h| h == "Nro Cliente").unwrap();
    let buyers: Vec<String> = ventas
        .iter()
        .map(|r| r.split(';').nth(client_col).unwrap().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let (ch, clientes) = read_csv(&d(2).join("clientes.csv"));
    let id_of = |r: &String| {
        r.split(';')
            .next()
            .unwrap()
            .trim_start_matches('0')
            .to_string()
    };
    let gone: Vec<String> = clientes
        .iter()
        .map(id_of)
        .filter(|id| buyers.iter().any(|b| b.trim_start_matches('0') == id))
        .take(2)
        .collect();
    assert_eq!(gone.len(), 2);
    let kept: Vec<String> = clientes
        .iter()
        .filter(|r| !gone.contains(&id_of(r)))
        .cloned()
        .collect();
    write_csv(&d(2).join("clientes.csv"), &ch, &kept);
    // d3: d2 with another buyer's row written twice: both rows are rejects (id.duplicate).
    copy_drop(&d(2), &d(3));
    let twice = kept
        .iter()
        .find(|r| {
            let id = id_of(r);
            !gone.contains(&id) && buyers.iter().any(|b| b.trim_start_matches('0') == id)
        })
        .unwrap()
        .clone();
    let mut doubled = kept.clone();
    doubled.push(twice);
    write_csv(&d(3).join("clientes.csv"), &ch, &doubled);
    // d4: d3 with one sale less: clientes.csv unchanged (reused, its duplicate still
    // rejected), ventas recomputed against the IDs the reused clientes offer.
    copy_drop(&d(3), &d(4));
    write_csv(&d(4).join("ventas.csv"), &vh, &ventas[..ventas.len() - 1]);
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0]
        .into_iter()
        .map(d)
        .collect()
}

fn put(w: &Workdir, drop: &Path) {
    for e in std::fs::read_dir(w.inbox()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    copy_drop(drop, &w.inbox());
}

/// Every entity's counts of a run, without what names the run.
fn counts(json: &Value) -> Vec<String> {
    ENTITIES
        .iter()
        .map(|e| {
            let mut s = json["entities"][e].clone();
            let o = s.as_object_mut().unwrap();
            o.remove("unchanged_since");
            o.remove("reused_records");
            format!("{e}: {s}")
        })
        .collect()
}

/// The run's rejects and warnings as staged, in a stable order.
fn rejects(w: &Workdir, run_id: &str) -> Vec<String> {
    let mut rows = w.rows(
        "staging.sqlite",
        &format!(
            "SELECT entity, file, line, id, severity, rule, reason FROM rejects \
             WHERE run_id = '{run_id}'"
        ),
    );
    rows.sort();
    rows
}

/// Every CRM table's rows (bookkeeping run IDs left out), and every staging table's.
fn tables(w: &Workdir) -> Vec<String> {
    let mut out = Vec::new();
    for e in ENTITIES {
        let crm = w.rows("crm.sqlite", &format!("SELECT * FROM \"{e}\" ORDER BY id"));
        // The run IDs are the last columns but one (`_created_run`, `_updated_run`,
        // `_deleted`, `_deleted_run`): compare what the business sees, and `_deleted`.
        out.extend(crm.into_iter().map(|r| {
            let cols: Vec<&str> = r.split('|').collect();
            let n = cols.len();
            format!("crm {e}: {}|{}", cols[..n - 4].join("|"), cols[n - 2])
        }));
        let staged = w.rows(
            "staging.sqlite",
            &format!("SELECT * FROM \"{e}\" ORDER BY id"),
        );
        out.extend(staged.into_iter().map(|r| format!("staging {e}: {r}")));
    }
    out
}

/// Every entity's snapshot as read back, every cell as text, rows sorted: a snapshot kept
/// as a base and a delta has its rows in another order than a whole one.
fn snapshots(w: &Workdir) -> Vec<String> {
    let state = dropsync::state::State::open(&w.out()).unwrap();
    let mut out = Vec::new();
    for e in ENTITIES {
        let Some(df) = state.load_snapshot(e).unwrap() else {
            continue;
        };
        let mut rows: Vec<String> = (0..df.height())
            .map(|i| {
                let cells: Vec<String> = df
                    .columns()
                    .iter()
                    .map(|c| format!("{}", c.get(i).unwrap()))
                    .collect();
                format!("{e}: {}", cells.join("|"))
            })
            .collect();
        rows.sort();
        out.push(format!("{e} {:?}", df.get_column_names()));
        out.extend(rows);
    }
    out
}

/// Whether the workspace keeps a snapshot delta for `entity`.
fn has_delta(w: &Workdir, entity: &str) -> bool {
    std::fs::read_dir(w.out().join("state/snapshots"))
        .unwrap()
        .any(|f| {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with(&format!("{entity}.")) && name.ends_with(".delta.parquet")
        })
}

#[test]
fn reused_entities_give_exactly_what_a_full_recomputation_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let drops = drops(tmp.path());
    let reusing = Workdir::new();
    // The full recomputation also writes whole snapshots every run (no delta), so the
    // snapshots compared below hold the deltas' promise too.
    let full = Workdir::new();
    let pipeline = full.recipes().join("pipeline.toml");
    let mut text = std::fs::read_to_string(&pipeline).unwrap();
    text.push_str("\n[snapshots]\nmax_delta_share = 0\n");
    std::fs::write(&pipeline, text).unwrap();
    let mut deltas_at = Vec::new();
    let mut reused_at = Vec::new();
    let mut records_at = Vec::new();
    for (step, drop) in drops.iter().enumerate() {
        put(&reusing, drop);
        put(&full, drop);
        let a = reusing.run();
        let b = full.run_args(&["--full"], &[]);
        assert_eq!(a.code, b.code, "step {step}: {}\n{}", a.stderr, b.stderr);
        assert_eq!(counts(&a.json), counts(&b.json), "step {step}");
        assert_eq!(
            a.json["crm_rows_written"], b.json["crm_rows_written"],
            "step {step}"
        );
        let (ra, rb) = (
            a.json["run_id"].as_str().unwrap(),
            b.json["run_id"].as_str().unwrap(),
        );
        assert_eq!(rejects(&reusing, ra), rejects(&full, rb), "step {step}");
        assert_eq!(tables(&reusing), tables(&full), "step {step}");
        assert_eq!(snapshots(&reusing), snapshots(&full), "step {step}");
        assert!(!has_delta(&full, "clientes"), "step {step}");
        deltas_at.push(has_delta(&reusing, "clientes"));
        let reused: Vec<&str> = ENTITIES
            .into_iter()
            .filter(|e| a.json["entities"][e]["unchanged_since"].is_string())
            .collect();
        assert!(
            ENTITIES
                .iter()
                .all(|e| b.json["entities"][e]["unchanged_since"].is_null()),
            "--full recomputes everything"
        );
        assert!(
            ENTITIES
                .iter()
                .all(|e| b.json["entities"][e]["reused_records"].is_null()),
            "--full types every record"
        );
        let records = |e: &str| {
            a.json["entities"][e]["reused_records"]
                .as_u64()
                .unwrap_or(0)
        };
        records_at.push((records("clientes"), records("ventas")));
        reused_at.push(reused);
    }
    // A day of changes: the records that did not change are not typed again...
    let (clientes, _) = records_at[2];
    let read = |step: usize, e: &str| -> u64 {
        read_csv(&drops[step].join(format!("{e}.csv"))).1.len() as u64
    };
    assert!(
        clientes > read(2, "clientes") / 2 && clientes < read(2, "clientes"),
        "{records_at:?}"
    );
    // ...and when two buyers are gone, their sales are reused records (the same bytes as
    // last time) that are rejected all the same: the counts above equal --full's.
    let (_, ventas) = records_at[4];
    assert!(ventas > read(4, "ventas") / 2, "{records_at:?}");
    // A day of changes (9% of the clients) is kept as a delta beside the first day's base.
    assert!(deltas_at[2], "{deltas_at:?}");
    // Same drop again: nothing recomputed.
    assert_eq!(reused_at[1], ENTITIES);
    assert_eq!(reused_at[3], ENTITIES);
    // Two clients gone with ventas.csv unchanged: clientes and every entity that references
    // it are recomputed (their sales are now rejected); the rest stands.
    assert!(!reused_at[4].contains(&"clientes"), "{:?}", reused_at[4]);
    assert!(!reused_at[4].contains(&"ventas"), "{:?}", reused_at[4]);
    assert!(reused_at[4].contains(&"sucursales"), "{:?}", reused_at[4]);
    // The same after a duplicate made a client a reject.
    assert!(!reused_at[6].contains(&"ventas"), "{:?}", reused_at[6]);
    assert_eq!(reused_at[7], ENTITIES);
    // One sale less: clientes stands (its duplicate still a reject) while ventas is
    // checked against the IDs it offers.
    assert!(reused_at[8].contains(&"clientes"), "{:?}", reused_at[8]);
    assert!(!reused_at[8].contains(&"ventas"), "{:?}", reused_at[8]);
    assert_eq!(reused_at[9], ENTITIES);
    // Back to the first drop: what changed since is recomputed.
    assert!(!reused_at[10].contains(&"clientes"), "{:?}", reused_at[10]);
}

#[test]
fn the_sales_of_a_deleted_client_are_rejected_even_when_their_file_did_not_change() {
    let tmp = tempfile::tempdir().unwrap();
    let drops = drops(tmp.path());
    let w = Workdir::new();
    put(&w, &drops[3]); // d1
    let before = w.run();
    assert_eq!(before.code, 0, "{}", before.stderr);
    put(&w, &drops[4]); // d2: same ventas.csv, two buyers gone from clientes.csv
    let after = w.run();
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(after.json["entities"]["ventas"]["unchanged_since"].is_null());
    let run = after.json["run_id"].as_str().unwrap();
    let missing: i64 = w.q(
        "staging.sqlite",
        &format!(
            "SELECT count(*) FROM rejects WHERE run_id = '{run}' AND entity = 'ventas' \
             AND rule = 'ref.missing'"
        ),
    );
    let was: i64 = w.q(
        "staging.sqlite",
        &format!(
            "SELECT count(*) FROM rejects WHERE run_id = '{}' AND entity = 'ventas' \
             AND rule = 'ref.missing'",
            before.json["run_id"].as_str().unwrap()
        ),
    );
    assert!(
        missing > was,
        "{missing} > {was}: the deleted clients' sales are rejects now"
    );
}

#[test]
fn a_reused_entity_is_recomputed_once_its_record_is_lost_or_the_program_changes() {
    let w = Workdir::new();
    for e in std::fs::read_dir(support::repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
    assert_eq!(w.run().code, 0);
    let again = w.run();
    assert!(again.json["entities"]["ventas"]["unchanged_since"].is_string());
    // A kill between forgetting a record and writing the next one leaves none: full pass.
    w.db("state/state.sqlite")
        .execute("DELETE FROM entity_inputs WHERE entity = 'ventas'", [])
        .unwrap();
    let third = w.run();
    assert!(third.json["entities"]["ventas"]["unchanged_since"].is_null());
    assert!(third.json["entities"]["clientes"]["unchanged_since"].is_string());
    assert_eq!(third.counts("ventas"), again.counts("ventas"));
    // Staging lost: the rejects a reuse would report are gone, so it recomputes instead.
    for f in ["staging.sqlite", "staging.sqlite-wal", "staging.sqlite-shm"] {
        let _ = std::fs::remove_file(w.out().join(f));
    }
    let fourth = w.run();
    assert!(fourth.json["entities"]["clientes"]["unchanged_since"].is_null());
    assert_eq!(fourth.counts("clientes"), again.counts("clientes"));
}

/// A new program (another build) changes every record key, so every record is typed again:
/// the rows that come out are the same, and staging must see that and rewrite none of them
/// (a regression guard: staged hashes taken from record keys would rewrite them all).
#[test]
fn a_program_upgrade_recomputes_but_rewrites_no_staged_row() {
    let w = Workdir::new();
    sample_day(&w, "2026-11-20");
    assert_eq!(w.run().code, 0);
    let staged = |w: &Workdir| {
        w.rows(
            "staging.sqlite",
            "SELECT id, hash FROM _staged_clientes ORDER BY id",
        )
    };
    let before = staged(&w);
    // The same build under another name is another program to the record keys.
    let upgraded = w.path().join("dropsync-upgraded");
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_dropsync"));
    if std::fs::hard_link(exe, &upgraded).is_err() {
        std::fs::copy(exe, &upgraded).unwrap();
    }
    let o = std::process::Command::new(&upgraded)
        .current_dir(w.path())
        .env("RUST_LOG", "warn")
        .args(["run", "--inbox", "in", "--json"])
        .args(support::WORKSPACE)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        json["entities"]["clientes"]["unchanged_since"].is_null(),
        "{json}"
    );
    assert!(
        json["entities"]["clientes"]["reused_records"].is_null(),
        "{json}"
    );
    assert_eq!(json["crm_rows_written"], 0);
    assert_eq!(staged(&w), before);
}

/// Copies a shipped sample day into the inbox, replacing what was there.
fn sample_day(w: &Workdir, day: &str) {
    for e in std::fs::read_dir(w.inbox()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    for e in std::fs::read_dir(support::repo().join("samples").join(day)).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn a_run_killed_on_the_reuse_paths_converges() {
    let clean = Workdir::new();
    for day in ["2026-11-20", "2026-11-21", "2026-11-21"] {
        sample_day(&clean, day);
        assert_eq!(clean.run().code, 0);
    }
    let want = tables(&clean);
    for point in ["reuse:ventas", "before-record-inputs", "records:clientes"] {
        let w = Workdir::new();
        sample_day(&w, "2026-11-20");
        assert_eq!(w.run().code, 0);
        // Killed while reusing the first day's entities, after the second day's CRM
        // writes committed but before what they were computed from was recorded, or while
        // the second day's clients reuse the first day's typed records.
        let day = if point == "reuse:ventas" {
            "2026-11-20"
        } else {
            "2026-11-21"
        };
        sample_day(&w, day);
        let killed = w.run_with_env(&[("DROPSYNC_FAILPOINT", point)]);
        assert_ne!(killed.code, 0, "{point}: the failpoint must kill the run");
        sample_day(&w, "2026-11-21");
        let next = w.run();
        assert_eq!(next.code, 0, "{point}: {}", next.stderr);
        let last = w.run();
        assert_eq!(last.json["crm_rows_written"], 0, "{point}");
        assert!(
            ENTITIES
                .iter()
                .all(|e| last.json["entities"][e]["unchanged_since"].is_string()),
            "{point}: the run after is all reuse: {}",
            last.json
        );
        assert_eq!(tables(&w), want, "{point}");
    }
}
