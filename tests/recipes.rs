//! Recipe errors name file:line:column and key; row rules and delete policies work.

mod support;

use support::{clients_csv, Workdir};

fn check(w: &Workdir) -> (i32, String) {
    let o = w.cmd(&["check", "--recipes", "recipes"]);
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn edit(w: &Workdir, file: &str, from: &str, to: &str) {
    let p = w.recipes().join(file);
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{from} not in {file}");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

fn line_of(w: &Workdir, file: &str, needle: &str) -> usize {
    let s = std::fs::read_to_string(w.recipes().join(file)).unwrap();
    s.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn shipped_recipes_load_in_dependency_order() {
    let w = Workdir::new();
    let (code, out) = check(&w);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("clientes -> sucursales -> usuarios -> ventas -> unidades -> servicios"),
        "{out}"
    );
}

#[test]
fn unknown_key_names_file_line_column_and_the_nearest_key() {
    let w = Workdir::new();
    edit(&w, "ventas.toml", "from = \"Estado\"", "fromm = \"Estado\"");
    let line = line_of(&w, "ventas.toml", "fromm");
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("ventas.toml:{line}:1:")), "{out}");
    assert!(out.contains("key `fromm`"), "{out}");
    assert!(out.contains("did you mean `from`?"), "{out}");
    // `run` refuses too, with the same exit code.
    let r = w.run();
    assert_eq!(r.code, 2);
    assert_eq!(r.json["status"], "failed");
}

#[test]
fn unknown_reference_and_wrong_type_are_reported_together() {
    let w = Workdir::new();
    edit(
        &w,
        "ventas.toml",
        "references = \"clientes\"",
        "references = \"cliente\"",
    );
    edit(
        &w,
        "servicios.toml",
        "type = \"decimal\"",
        "type = \"decimel\"",
    );
    let ref_line = line_of(&w, "ventas.toml", "references = \"cliente\"");
    let type_line = line_of(&w, "servicios.toml", "decimel");
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("ventas.toml:{ref_line}:14: key `references`")),
        "{out}"
    );
    assert!(out.contains("did you mean `clientes`?"), "{out}");
    assert!(
        out.contains(&format!("servicios.toml:{type_line}:")),
        "{out}"
    );
    assert!(out.contains("decimel"), "{out}");
}

#[test]
fn reference_cycles_are_refused() {
    let w = Workdir::new();
    std::fs::write(
        w.recipes().join("sucursales.toml"),
        std::fs::read_to_string(w.recipes().join("sucursales.toml")).unwrap()
            + "\n[[field]]\nname = \"gerente\"\nfrom = \"Gerente\"\nreferences = \"usuarios\"\n",
    )
    .unwrap();
    let (code, out) = check(&w);
    assert_eq!(code, 2);
    assert!(
        out.contains("cycle") && out.contains("sucursales") && out.contains("usuarios"),
        "{out}"
    );
}

/// A test recipe: reject and skip rules, a warned value map, hard deletes.
#[test]
fn row_rules_reject_or_skip_with_their_name() {
    let w = Workdir::new();
    for f in ["usuarios", "sucursales", "ventas", "unidades", "servicios"] {
        std::fs::remove_file(w.recipes().join(format!("{f}.toml"))).unwrap();
    }
    edit(
        &w,
        "clientes.toml",
        "policy = \"soft\"",
        "policy = \"hard\"\nmax_share = 0.5",
    );
    edit(
        &w,
        "clientes.toml",
        "map = { \"Persona\" = \"persona\", \"Empresa\" = \"empresa\" }",
        "map = { \"Persona\" = \"persona\", \"Empresa\" = \"empresa\" }\nunmapped = \"warn\"",
    );
    let mut toml = std::fs::read_to_string(w.recipes().join("clientes.toml")).unwrap();
    toml.push_str(
        r#"
[[rule]]
name = "sin_email"
action = "reject"
field = "email"
is_empty = true
message = "clients need an email"

[[rule]]
name = "prueba"
action = "skip"
field = "razon_social"
matches = "(?i)^prueba"
"#,
    );
    std::fs::write(w.recipes().join("clientes.toml"), toml).unwrap();
    let mut csv = clients_csv(10, &[], &[]);
    csv.push_str("11;Sin Mail SA;Empresa;;;;;;;;;\n");
    csv.push_str("12;PRUEBA interna;Empresa;;x@y.z;;;;;;;\n");
    csv.push_str("13;Rara SA;Cooperativa;;x@y.z;;;;;;;\n");
    w.cp1252("clientes.csv", &csv);
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.counts("clientes")[..4], [13, 11, 1, 1]);
    assert_eq!(r.entity("clientes")["skipped"], 1);
    let rules = w.rows(
        "staging.sqlite",
        "SELECT line, id, severity, rule, reason FROM rejects ORDER BY line",
    );
    assert_eq!(
        rules,
        [
            "12|11|error|rule.sin_email|clients need an email",
            "13|12|skip|rule.prueba|row matches rule `prueba`",
            "14|13|warning|map.unknown|Tipo `Cooperativa` is not in the recipe's map; left empty",
        ]
    );
    // Hard delete policy removes the CRM row.
    w.cp1252("clientes.csv", &clients_csv(10, &[4], &[]));
    let r = w.run();
    assert_eq!(r.counts("clientes")[7], 2, "4 gone, 13 gone: {}", r.json);
    let left: i64 = w.q("crm.sqlite", "SELECT count(*) FROM clientes");
    assert_eq!(left, 9);
}

#[test]
fn check_tests_each_source_and_the_target() {
    let w = Workdir::new();
    let (code, out) = check(&w);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK     target sqlite"), "{out}");
    // An SFTP source nobody answers for: a clear per-item failure, exit 1.
    std::fs::create_dir_all(w.path().join("watch")).unwrap();
    std::fs::write(
        w.path().join("watch/sources.toml"),
        "[[sftp]]\nname = \"dealer\"\nhost = \"127.0.0.1\"\nport = 9\nuser = \"x\"\nremote_dir = \"/\"\nkey_file_env = \"HOME\"\nknown_hosts = \"/dev/null\"\n",
    )
    .unwrap();
    let (code, out) = check(&w);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("source sftp `dealer`"))
        .unwrap();
    assert!(line.starts_with("FAILED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("OK") && l.contains("recipes")),
        "{out}"
    );
}
