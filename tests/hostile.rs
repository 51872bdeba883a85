//! Issue #11: hostile and broken input never panics, never reaches the CRM, and is explained.
//! Every test runs the real binary on files generated in a temp dir and checks: no panic
//! (exit code not 101), a clear reject (rule + line) or a quarantine (reason file), the good
//! rows still loaded where that makes sense, nothing of the hostile file in `crm.sqlite`, and
//! for the big inputs a bounded peak memory (`peak_rss_mb`, the process's VmHWM).

mod support;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use support::{clients_csv, repo, RunResult, Workdir};

const HEADER: &str = "Nro Cliente;Razón Social / Nombre;Tipo;CUIT/DNI;Email;Teléfono;Celular;Domicilio;Localidad;Provincia;Código Postal;Fecha Alta";

fn no_panic(r: &RunResult) {
    assert_ne!(r.code, 101, "the run panicked:\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// (line, rule, reason) of this run's error rejects of `entity`, in line order.
///
/// A reader problem travels in the reader's `__bad` column as `read.<rule>: <reason>`
/// (`read::split_bad`) and `validate` files it under that rule.
fn errors(w: &Workdir, r: &RunResult, entity: &str) -> Vec<(u32, String, String)> {
    let run_id = r.json["run_id"].as_str().expect("run_id");
    let conn = w.db("staging.sqlite");
    let mut stmt = conn
        .prepare(
            "SELECT line, rule, reason FROM rejects WHERE run_id = ?1 AND entity = ?2 \
             AND severity = 'error' ORDER BY line, rule",
        )
        .unwrap();
    stmt.query_map([run_id, entity], |row| {
        Ok((
            row.get::<_, u32>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })
    .unwrap()
    .map(|x| x.unwrap())
    .collect()
}

/// The reason file of a quarantined `file`, after checking the entity is quarantined.
fn quarantined(w: &Workdir, r: &RunResult, entity: &str, file: &str) -> String {
    assert_eq!(r.entity(entity)["status"], "quarantined", "{}", r.json);
    let run_id = r.json["run_id"].as_str().unwrap();
    let q = w.out().join("quarantine").join(run_id);
    assert!(q.join(file).exists(), "{file} not copied to quarantine");
    std::fs::read_to_string(q.join(format!("{file}.reason.txt"))).unwrap()
}

/// Every cell of every table of the CRM, as text (NUL bytes kept).
fn crm_cells(w: &Workdir) -> Vec<String> {
    let path = w.out().join("crm.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let conn = w.db("crm.sqlite");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|t| t.unwrap())
        .collect();
    let mut cells = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                if let rusqlite::types::ValueRef::Text(b) = row.get_ref(i).unwrap() {
                    cells.push(String::from_utf8_lossy(b).into_owned());
                }
            }
        }
    }
    cells
}

/// Nothing of a hostile file in the CRM: no NUL, no control character, no huge value, none of
/// the `needles`.
fn crm_clean(w: &Workdir, needles: &[&str]) {
    for c in crm_cells(w) {
        assert!(c.len() < 4096, "a {} byte value reached the CRM", c.len());
        assert!(
            !c.chars().any(|ch| ch.is_control() && ch != '\n'),
            "a control character reached the CRM: {c:?}"
        );
        for n in needles {
            assert!(!c.contains(n), "{n:?} reached the CRM: {c:?}");
        }
    }
}

fn rss_mb(r: &RunResult) -> f64 {
    r.json["peak_rss_mb"].as_f64().expect("peak_rss_mb")
}

fn sample_clientes_utf8() -> String {
    let bytes = std::fs::read(repo().join("samples/2026-11-20/clientes.csv")).unwrap();
    let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert!(!bad);
    text.into_owned()
}

/// The CRM's clients as `id|razon_social|localidad|provincia|codigo_postal`, by id.
fn crm_clients(w: &Workdir) -> Vec<String> {
    w.rows(
        "crm.sqlite",
        "SELECT id, razon_social, domicilio, localidad, provincia, codigo_postal FROM clientes \
         WHERE _deleted = 0 ORDER BY CAST(id AS INTEGER)",
    )
}

// --- item 1: one invalid byte does not re-decode a UTF-8 file ----------------------------

#[test]
fn utf8_file_with_one_bad_byte_keeps_its_headers_and_other_rows() {
    let text = sample_clientes_utf8();
    // The reference: the same rows as clean UTF-8.
    let clean = Workdir::new();
    clean.utf8("clientes.csv", &text);
    let r0 = clean.run();
    no_panic(&r0);
    assert_eq!(r0.entity("clientes")["status"], "ok", "{}", r0.json);
    let reference = crm_clients(&clean);
    assert!(reference.iter().any(|c| c.contains("Neuquén")));

    // One cp1252 byte (0xE9, `é` in Windows-1252) inside client 2's name, line 3.
    let w = Workdir::new();
    let line3 = text.lines().nth(2).unwrap();
    assert!(line3.starts_with("2;Correa, Florencia;"), "{line3}");
    let mut bytes = text.into_bytes();
    let at = find(&bytes, b"Correa, Florencia").unwrap() + 4;
    bytes.insert(at, 0xE9);
    std::fs::write(w.inbox().join("clientes.csv"), &bytes).unwrap();
    let r = w.run();
    no_panic(&r);
    let e = r.entity("clientes");
    assert_eq!(e["status"], "ok", "the header must still match: {}", r.json);
    assert_eq!(e["encoding"], "utf-8");
    assert_eq!(e["read"], r0.entity("clientes")["read"]);
    assert_eq!(
        e["rejected"].as_u64().unwrap(),
        r0.entity("clientes")["rejected"].as_u64().unwrap() + 1
    );
    let enc: Vec<_> = errors(&w, &r, "clientes")
        .into_iter()
        .filter(|(_, rule, _)| rule.starts_with("read."))
        .collect();
    assert_eq!(enc.len(), 1, "{enc:?}");
    let (line, rule, reason) = &enc[0];
    assert_eq!((*line, rule.as_str()), (3, "read.encoding"), "{reason}");
    assert!(reason.contains("e9"), "the bytes in hex: {reason}");
    assert!(reason.contains("Razón Social / Nombre"), "{reason}");
    assert!(reason.contains(&format!("byte {at}")), "{reason}");
    // Every other client is exactly as in the clean file, accents included.
    let expected: Vec<String> = reference
        .into_iter()
        .filter(|c| !c.starts_with("2|"))
        .collect();
    assert_eq!(crm_clients(&w), expected);
    crm_clean(&w, &["\u{fffd}", "Ã"]);
}

#[test]
fn windows_1252_file_with_undefined_bytes_rejects_only_those_rows() {
    let w = Workdir::new();
    // 0x81 and 0x9D have no character in Windows-1252.
    let mut bytes = Vec::new();
    let (head, _, _) = encoding_rs::WINDOWS_1252.encode(HEADER);
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(b"\r\n1;Mu\xf1oz, Jos\xe9;Persona;;;;;;Neuqu\xe9n;;;\r\n");
    bytes.extend_from_slice(b"2;Pe\x81rez, Ana;Persona;;;;;;Rosario;;;\r\n");
    bytes.extend_from_slice(b"3;G\xf3mez, Luis;Persona;;;;;;C\x9Drdoba;;;\r\n");
    std::fs::write(w.inbox().join("clientes.csv"), &bytes).unwrap();
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("clientes")["encoding"], "windows-1252");
    let errs = errors(&w, &r, "clientes");
    assert_eq!(
        errs.iter()
            .map(|(l, r, _)| (*l, r.as_str()))
            .collect::<Vec<_>>(),
        [(3, "read.encoding"), (4, "read.encoding")],
        "{errs:?}"
    );
    assert!(errs[0].2.contains("81"), "{}", errs[0].2);
    assert!(errs[1].2.contains("9d"), "{}", errs[1].2);
    assert_eq!(
        crm_clients(&w),
        ["1|Muñoz, José||Neuquén||"],
        "the good row, accents intact"
    );
    crm_clean(&w, &[]);
}

// --- item 2: an XML file for a recipe without [source.xml] -------------------------------

#[test]
fn xml_file_for_a_recipe_without_source_xml_is_quarantined_not_a_panic() {
    let w = Workdir::new();
    let p = w.recipes().join("clientes.toml");
    let recipe = std::fs::read_to_string(&p).unwrap();
    let recipe = recipe.replace(
        r#"files = ["clientes.csv", "clientes*.csv"]"#,
        r#"files = ["clientes.*"]"#,
    );
    assert!(recipe.contains(r#"files = ["clientes.*"]"#));
    std::fs::write(&p, recipe).unwrap();
    w.utf8(
        "clientes.xml",
        "<?xml version=\"1.0\"?>\n<Clientes><Cliente id=\"1\"/></Clientes>\n",
    );
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reason = quarantined(&w, &r, "clientes", "clientes.xml");
    assert_eq!(
        reason.trim(),
        "clientes.xml is XML but recipe clientes has no [source.xml] section"
    );
}

// --- item 3: error amplification and record size ------------------------------------------

#[test]
fn a_header_of_100k_columns_without_the_id_is_quarantined_with_a_bounded_reason() {
    let w = Workdir::new();
    let mut header: Vec<String> = (0..100_000)
        .map(|i| format!("columna número {i} {}", "x".repeat(80)))
        .collect();
    header[0] = "Nombre".into();
    w.utf8("clientes.csv", &format!("{}\n1;2;3\n", header.join(";")));
    let r = w.run();
    no_panic(&r);
    let reason = quarantined(&w, &r, "clientes", "clientes.csv");
    assert!(reason.contains("Nro Cliente"), "{reason}");
    assert!(reason.contains("Nombre"), "{reason}");
    assert!(reason.contains("… and 99996 more"), "{reason}");
    assert!(reason.len() < 800, "{} bytes of reason", reason.len());
    let json_reason = r.entity("clientes")["reason"].as_str().unwrap();
    assert!(json_reason.len() < 800);
}

#[test]
fn a_row_of_100k_fields_is_one_bounded_reject_and_the_others_load() {
    let w = Workdir::new();
    let wide = vec!["campo"; 100_000].join(";");
    w.utf8(
        "clientes.csv",
        &format!("{HEADER}\n1;Uno;Persona;;;;;;;;;\n2;{wide}\n3;Tres;Persona;;;;;;;;;\n"),
    );
    let r = w.run();
    no_panic(&r);
    let errs = errors(&w, &r, "clientes");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1.as_str()), (3, "read.fields"));
    assert!(errs[0].2.contains("100001 fields"), "{}", errs[0].2);
    assert!(errs[0].2.len() <= 500);
    assert_eq!(r.entity("clientes")["inserted"], 2);
    crm_clean(&w, &["campo"]);
}

/// Writes `head`, then `len` bytes of `fill`, then `tail`, without holding it in memory.
fn write_big(path: &Path, head: &[u8], fill: u8, len: usize, tail: &[u8]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(head).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.write_all(tail).unwrap();
    f.flush().unwrap();
}

const BIG: usize = 200 << 20;

/// Peak memory allowed for a run on an input of `bytes`: a small multiple of the input
/// (measured: 1.3x for the file without a line break, 2.6x for the long row, whose bytes the
/// `csv` parser holds once while it reads them).
fn rss_bound_mb(bytes: usize) -> f64 {
    3.0 * bytes as f64 / 1048576.0 + 200.0
}

#[test]
fn a_200_mb_line_is_a_row_reject_with_bounded_memory() {
    let w = Workdir::new();
    let path = w.inbox().join("clientes.csv");
    let head = format!("{HEADER}\n1;Uno;Persona;;;;;;;;;\n2;");
    write_big(
        &path,
        head.as_bytes(),
        b'x',
        BIG,
        b";Persona;;;;;;;;;\n3;Tres;Persona;;;;;;;;;\n",
    );
    let bytes = std::fs::metadata(&path).unwrap().len() as usize;
    let t = Instant::now();
    let r = w.run();
    let secs = t.elapsed().as_secs_f64();
    no_panic(&r);
    let rss = rss_mb(&r);
    eprintln!(
        "200 MB line: {:.1} MiB input, peak RSS {rss:.0} MiB ({:.2}x input), {secs:.1} s",
        bytes as f64 / 1048576.0,
        rss / (bytes as f64 / 1048576.0)
    );
    assert_eq!(r.entity("clientes")["status"], "ok", "{}", r.json);
    let errs = errors(&w, &r, "clientes");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0, errs[0].1.as_str()), (3, "read.too_long"));
    assert!(errs[0].2.len() <= 500, "{}", errs[0].2);
    assert_eq!(r.entity("clientes")["inserted"], 2);
    crm_clean(&w, &["xxxxxxxx"]);
    assert!(rss < rss_bound_mb(bytes), "peak RSS {rss} MiB");
}

#[test]
fn a_200_mb_file_without_a_line_break_is_quarantined_with_bounded_memory() {
    let w = Workdir::new();
    let path = w.inbox().join("clientes.csv");
    write_big(&path, b"Nro", b'x', BIG, b"");
    let bytes = std::fs::metadata(&path).unwrap().len() as usize;
    let t = Instant::now();
    let r = w.run();
    let secs = t.elapsed().as_secs_f64();
    no_panic(&r);
    let rss = rss_mb(&r);
    eprintln!(
        "200 MB without a line break: peak RSS {rss:.0} MiB ({:.2}x input), {secs:.1} s",
        rss / (bytes as f64 / 1048576.0)
    );
    let reason = quarantined(&w, &r, "clientes", "clientes.csv");
    assert!(reason.len() < 1000, "{} bytes of reason", reason.len());
    assert!(reason.contains("line 1"), "{reason}");
    assert!(rss < rss_bound_mb(bytes), "peak RSS {rss} MiB");
}

// --- item 4: NUL bytes past the first 8 KiB -----------------------------------------------

#[test]
fn a_nul_byte_at_100k_rejects_only_its_row() {
    let w = Workdir::new();
    let text = clients_csv(2000, &[], &[]);
    let mut bytes = encoding_rs::WINDOWS_1252.encode(&text).0.into_owned();
    let at = 100_000;
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    bytes[at] = 0;
    std::fs::write(w.inbox().join("clientes.csv"), &bytes).unwrap();
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("clientes")["status"], "ok", "{}", r.json);
    let errs = errors(&w, &r, "clientes");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].0 as usize, errs[0].1.as_str()), (line, "read.nul"));
    assert!(errs[0].2.contains(&format!("byte {at}")), "{}", errs[0].2);
    assert_eq!(r.entity("clientes")["inserted"], 1999);
    crm_clean(&w, &[]);
}

#[test]
fn dense_nul_bytes_after_the_first_8k_make_the_file_binary() {
    let w = Workdir::new();
    let mut bytes = clients_csv(200, &[], &[]).into_bytes();
    // Zeroed blocks after 8 KiB (a disk error, a binary tail).
    for i in 0..2000 {
        if bytes.len() > 10_000 + i * 7 {
            bytes[10_000 + i * 7] = 0;
        }
    }
    bytes.extend(std::iter::repeat_n(0u8, 50_000));
    std::fs::write(w.inbox().join("clientes.csv"), &bytes).unwrap();
    let r = w.run();
    no_panic(&r);
    let reason = quarantined(&w, &r, "clientes", "clientes.csv");
    assert!(reason.contains("binary"), "{reason}");
    assert!(crm_cells(&w).is_empty());
}

// --- truncated files ------------------------------------------------------------------------

/// Loads 50 clean clients, then runs `broken` as the next drop: the file is quarantined and
/// the CRM keeps its 50 rows (nothing deleted).
fn truncated_csv(broken: &str) -> (Workdir, RunResult) {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(50, &[], &[]));
    assert_eq!(w.run().code, 0);
    w.cp1252("clientes.csv", broken);
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let live: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(
        live, 50,
        "a truncated export must not delete the rows after the cut"
    );
    (w, r)
}

#[test]
fn csv_cut_mid_record_is_quarantined_with_its_line() {
    let full = clients_csv(50, &[], &[]);
    // Cut inside the email of the 46th client (line 47).
    let cut = full.find("cliente46@").unwrap() + 5;
    let (w, r) = truncated_csv(&full[..cut]);
    let reason = quarantined(&w, &r, "clientes", "clientes.csv");
    assert!(reason.contains(":47:"), "{reason}");
    assert!(reason.contains("truncated"), "{reason}");
}

#[test]
fn csv_cut_mid_quote_is_quarantined_with_its_line() {
    let full = clients_csv(50, &[], &[]);
    // Cut inside the quoted name of the 46th client (line 47).
    let cut = full.find("\"Pérez, Juan 46\"").unwrap() + 6;
    let (w, r) = truncated_csv(&full[..cut]);
    let reason = quarantined(&w, &r, "clientes", "clientes.csv");
    assert!(reason.contains(":47:"), "{reason}");
    assert!(reason.contains("quote"), "{reason}");
}

fn unidades_xml(records: &str, doctype: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{doctype}\n<Unidades>\n{records}</Unidades>\n"
    )
}

fn unidad(id: &str, modelo: &str) -> String {
    format!("  <Unidad id=\"{id}\">\n    <VIN>VIN{id}</VIN>\n    <Modelo>{modelo}</Modelo>\n  </Unidad>\n")
}

#[test]
fn xml_cut_mid_element_is_quarantined_with_its_line() {
    let w = Workdir::new();
    let full = unidades_xml(
        &(1..=20)
            .map(|i| unidad(&format!("U{i}"), "Hilux"))
            .collect::<String>(),
        "",
    );
    w.utf8("unidades.xml", &full);
    assert_eq!(w.run().code, 0);
    let cut = full.find("VINU17</VIN>").unwrap() + 3;
    w.utf8("unidades.xml", &full[..cut]);
    let r = w.run();
    no_panic(&r);
    let reason = quarantined(&w, &r, "unidades", "unidades.xml");
    assert!(reason.contains("truncated"), "{reason}");
    let line = full[..cut].lines().count();
    assert!(reason.contains(&format!(":{line}:")), "{reason}");
    let live: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM unidades WHERE _deleted = 0",
    );
    assert_eq!(live, 20);
}

// --- XML attacks ----------------------------------------------------------------------------

#[test]
fn xml_billion_laughs_is_never_expanded() {
    let w = Workdir::new();
    let mut dtd = String::from("<!DOCTYPE Unidades [\n  <!ENTITY lol \"lol\">\n");
    dtd.push_str("  <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        let p = format!("&lol{};", i - 1);
        dtd.push_str(&format!("  <!ENTITY lol{i} \"{}\">\n", p.repeat(10)));
    }
    dtd.push_str("]>");
    let xml = unidades_xml(&(unidad("U1", "&lol9;") + &unidad("U2", "Hilux")), &dtd);
    w.utf8("unidades.xml", &xml);
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("unidades")["status"], "ok", "{}", r.json);
    assert_eq!(r.entity("unidades")["inserted"], 2);
    let modelo: String = w.q("crm.sqlite", "SELECT modelo FROM unidades WHERE id = 'U1'");
    assert_eq!(modelo, "&lol9;", "kept as written, never expanded");
    crm_clean(&w, &["lollol"]);
    assert!(rss_mb(&r) < 400.0, "peak RSS {} MiB", rss_mb(&r));
}

#[test]
fn xml_quadratic_blowup_is_never_expanded() {
    let w = Workdir::new();
    let dtd = format!(
        "<!DOCTYPE Unidades [<!ENTITY a \"{}\">]>",
        "a".repeat(50_000)
    );
    let xml = unidades_xml(
        &(unidad("U1", &"&a;".repeat(1000)) + &unidad("U2", "Hilux")),
        &dtd,
    );
    w.utf8("unidades.xml", &xml);
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("unidades")["inserted"], 2, "{}", r.json);
    let modelo: String = w.q("crm.sqlite", "SELECT modelo FROM unidades WHERE id = 'U1'");
    assert_eq!(modelo, "&a;".repeat(1000));
    crm_clean(&w, &["aaaa"]);
}

#[test]
fn xml_external_entities_and_dtds_are_never_fetched() {
    let w = Workdir::new();
    // A local server that would see any attempt to fetch the DTD or the entity.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let dtd = format!(
        "<!DOCTYPE Unidades SYSTEM \"{url}evil.dtd\" [\n  <!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n  <!ENTITY web SYSTEM \"{url}x\">\n  <!ENTITY % pe SYSTEM \"{url}pe.dtd\"> %pe;\n]>"
    );
    let xml = unidades_xml(
        &(unidad("U1", "&xxe;") + &unidad("U2", "&web;") + &unidad("U3", "Hilux")),
        &dtd,
    );
    w.utf8("unidades.xml", &xml);
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("unidades")["inserted"], 3, "{}", r.json);
    let models = w.rows("crm.sqlite", "SELECT modelo FROM unidades ORDER BY id");
    assert_eq!(models, ["&xxe;", "&web;", "Hilux"]);
    crm_clean(&w, &["root:", "/bin/"]);
    assert!(
        listener.accept().is_err(),
        "the reader connected to the DTD/entity URL"
    );
}

#[test]
fn xml_text_over_the_record_limit_is_a_row_reject() {
    let w = Workdir::new();
    // `read::MAX_RECORD_BYTES` is 16 MiB.
    let big = "y".repeat((16 << 20) + 10);
    let xml = unidades_xml(
        &(unidad("U1", "Hilux") + &unidad("U2", &big) + &unidad("U3", "Corolla")),
        "",
    );
    w.utf8("unidades.xml", &xml);
    let r = w.run();
    no_panic(&r);
    let errs = errors(&w, &r, "unidades");
    assert_eq!(errs.len(), 1, "{errs:?}");
    // U2 starts on line 8 (declaration, empty doctype line, root, 4 lines of U1).
    assert_eq!((errs[0].0, errs[0].1.as_str()), (8, "read.too_long"));
    assert_eq!(r.entity("unidades")["inserted"], 2);
    crm_clean(&w, &["yyyyyyyy"]);
}

#[test]
fn xml_record_with_an_invalid_byte_or_a_nul_is_a_row_reject() {
    let w = Workdir::new();
    // 100 clean units first, so the NUL lies past the first 8 KiB (where one means binary).
    let filler: String = (100..200)
        .map(|i| unidad(&format!("U{i}"), "Hilux"))
        .collect();
    let xml = unidades_xml(
        &(filler
            + &unidad("U1", "Citroën C4")
            + &unidad("U2", "BAD1")
            + &unidad("U3", "BAD2")
            + &unidad("U4", "Peugeot 208 Allure ñandú")),
        "",
    );
    let line_of = |needle: &str| xml.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let (u2, u3) = (line_of("\"U2\""), line_of("\"U3\""));
    let mut bytes = xml.clone().into_bytes();
    let at = find(&bytes, b"BAD1").unwrap();
    bytes[at] = 0xE9;
    let at2 = find(&bytes, b"BAD2").unwrap();
    assert!(at2 > 8192);
    bytes[at2] = 0;
    std::fs::write(w.inbox().join("unidades.xml"), &bytes).unwrap();
    let r = w.run();
    no_panic(&r);
    assert_eq!(r.entity("unidades")["encoding"], "utf-8", "{}", r.json);
    let errs = errors(&w, &r, "unidades");
    let got: Vec<_> = errs.iter().map(|(l, r, _)| (*l, r.as_str())).collect();
    assert_eq!(got, [(u2, "read.encoding"), (u3, "read.nul")], "{errs:?}");
    assert!(errs[0].2.contains("e9"), "{}", errs[0].2);
    assert!(errs[0].2.contains(&format!("byte {at}")), "{}", errs[0].2);
    assert!(errs[1].2.contains(&format!("byte {at2}")), "{}", errs[1].2);
    assert_eq!(r.entity("unidades")["inserted"], 102);
    let models = w.rows(
        "crm.sqlite",
        "SELECT modelo FROM unidades WHERE id IN ('U1', 'U4') ORDER BY id",
    );
    assert_eq!(models, ["Citroën C4", "Peugeot 208 Allure ñandú"]);
    crm_clean(&w, &["\u{fffd}"]);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
