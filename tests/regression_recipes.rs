//! Issue #11, recipe holes: each one is a recipe error with file, line and key (exit 2), not
//! a run that fails half-way (exit 1) or, worse, succeeds while writing the wrong thing.

mod support;

use std::path::{Path, PathBuf};

use dropsync::config::{load_dir, Diagnostic, RecipeError};
use support::{clients_csv, Workdir};

/// A copy of the shipped recipes in a temp dir, edited by the test.
struct Recipes {
    dir: tempfile::TempDir,
}

impl Recipes {
    fn shipped() -> Recipes {
        let r = Recipes {
            dir: tempfile::tempdir().unwrap(),
        };
        for e in std::fs::read_dir(support::repo().join("recipes")).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, r.dir.path().join(p.file_name().unwrap())).unwrap();
        }
        r
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let s = std::fs::read_to_string(self.path(file)).unwrap();
        assert!(s.contains(from), "{from} not in {file}");
        std::fs::write(self.path(file), s.replacen(from, to, 1)).unwrap();
    }

    fn append(&self, file: &str, text: &str) {
        let s = std::fs::read_to_string(self.path(file)).unwrap();
        std::fs::write(self.path(file), format!("{s}\n{text}")).unwrap();
    }

    /// 1-based line of the `nth` (0-based) line containing `needle`.
    fn line_of(&self, file: &str, needle: &str, nth: usize) -> usize {
        let s = std::fs::read_to_string(self.path(file)).unwrap();
        s.lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .unwrap_or_else(|| panic!("{needle} not in {file}"))
            .0
            + 1
    }

    fn errors(&self) -> Vec<Diagnostic> {
        match load_dir(self.dir.path()) {
            Ok(r) => panic!(
                "recipes compiled: {:?}",
                r.entities.iter().map(|e| &e.entity).collect::<Vec<_>>()
            ),
            Err(RecipeError::Invalid(d)) => d,
            Err(e) => panic!("not a recipe diagnostic: {e}"),
        }
    }

    /// The one diagnostic about `key` in `file`; every other problem fails the test.
    fn only_error(&self, file: &str, key: &str) -> Diagnostic {
        let diags = self.errors();
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = diags.into_iter().next().unwrap();
        assert_eq!(d.file, self.path(file), "{d}");
        assert_eq!(d.key.as_deref(), Some(key), "{d}");
        d
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn entities_named_like_stagings_own_tables_are_refused() {
    for name in [
        "rejects",
        "runs",
        "summary",
        "rejects_by_run",
        "sqlite_stat1",
    ] {
        let r = Recipes::shipped();
        r.edit(
            "sucursales.toml",
            "entity = \"sucursales\"",
            &format!("entity = \"{name}\""),
        );
        // References to the old name must follow, or they are the only error reported.
        point_references_at(&r, name);
        let d = r.only_error("sucursales.toml", "entity");
        assert_eq!(d.line, r.line_of("sucursales.toml", "entity =", 0), "{d}");
        assert_eq!(d.column, 10, "{d}");
        assert!(d.message.contains("reserved"), "{d}");
    }
}

#[test]
fn the_staged_hash_table_prefix_is_not_an_entity_name() {
    // Already refused before issue #11 (names cannot start with `_`); kept as a guard.
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "entity = \"clientes\"",
        "entity = \"_staged_clientes\"",
    );
    let diags = r.errors();
    assert!(
        diags
            .iter()
            .any(|d| d.key.as_deref() == Some("entity") && d.file == r.path("clientes.toml")),
        "{diags:#?}"
    );
}

#[test]
fn entity_names_too_long_for_a_workbook_sheet_are_refused() {
    let r = Recipes::shipped();
    let long = "sucursales_y_talleres_de_todo_el_pais"; // 37 characters
    r.edit(
        "sucursales.toml",
        "entity = \"sucursales\"",
        &format!("entity = \"{long}\"\ncrm_object = \"sucursales\""),
    );
    point_references_at(&r, long);
    let d = r.only_error("sucursales.toml", "entity");
    assert!(d.message.contains("longer than 31"), "{d}");
}

#[test]
fn two_recipes_writing_one_crm_object_name_both_files() {
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "entity = \"clientes\"",
        "entity = \"clientes\"\ncrm_object = \"contacts\"",
    );
    r.edit(
        "usuarios.toml",
        "entity = \"usuarios\"",
        "entity = \"usuarios\"\ncrm_object = \"Contacts\"",
    );
    let d = r.only_error("usuarios.toml", "crm_object");
    assert_eq!(d.line, r.line_of("usuarios.toml", "crm_object", 0), "{d}");
    assert_eq!(d.column, 14, "{d}");
    let text = d.to_string();
    assert!(text.contains("clientes.toml"), "{text}");
    assert!(text.contains("usuarios.toml"), "{text}");

    // An explicit crm_object equal to another entity's name (its default object) too.
    let r = Recipes::shipped();
    r.edit(
        "ventas.toml",
        "entity = \"ventas\"",
        "entity = \"ventas\"\ncrm_object = \"clientes\"",
    );
    let d = r.only_error("ventas.toml", "crm_object");
    assert!(d.message.contains("clientes.toml"), "{d}");
}

#[test]
fn two_fields_writing_one_crm_column_or_a_bookkeeping_column_are_refused() {
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "name = \"celular\"",
        "name = \"celular\"\ncrm = \"TELEFONO\"",
    );
    let d = r.only_error("clientes.toml", "crm");
    assert_eq!(d.line, r.line_of("clientes.toml", "crm = \"TELEFONO\"", 0));
    assert!(d.message.contains("`telefono`"), "{d}");

    for col in ["id", "_deleted", "_created_run"] {
        let r = Recipes::shipped();
        r.edit(
            "clientes.toml",
            "name = \"email\"",
            &format!("name = \"email\"\ncrm = \"{col}\""),
        );
        let d = r.only_error("clientes.toml", "crm");
        assert!(d.message.contains("every CRM table has"), "{d}");
    }
}

const DUPLICATE_RULES: &str = "[[rule]]
name = \"anulada\"
action = \"skip\"
field = \"estado\"
equals = \"Anulada\"

[[rule]]
name = \"anulada\"
action = \"reject\"
field = \"estado\"
equals = \"Cancelada\"
";

#[test]
fn duplicate_rule_names_are_a_recipe_error() {
    let r = Recipes::shipped();
    r.append("ventas.toml", DUPLICATE_RULES);
    let d = r.only_error("ventas.toml", "name");
    assert_eq!(
        d.line,
        r.line_of("ventas.toml", "name = \"anulada\"", 1),
        "{d}"
    );
    assert_eq!(d.column, 8, "{d}");
    assert!(d.message.contains("defined twice"), "{d}");
}

#[test]
fn duplicate_rule_names_exit_2_not_1() {
    let w = Workdir::new();
    support::write_small_drop(&w);
    let p = w.recipes().join("ventas.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, format!("{s}\n{DUPLICATE_RULES}")).unwrap();
    let r = w.run();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.json["status"], "failed");
    let c = w.ws_cmd(&["check"]);
    assert_eq!(c.status.code(), Some(2));
    let out = String::from_utf8_lossy(&c.stdout).to_string() + &String::from_utf8_lossy(&c.stderr);
    assert!(out.contains("ventas.toml:"), "{out}");
    assert!(out.contains("key `name`"), "{out}");
}

#[test]
fn extract_group_beyond_the_patterns_groups_is_a_recipe_error() {
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "pattern = '^([^,]+),', group = 1",
        "pattern = '^([^,]+),', group = 2",
    );
    let d = r.only_error("clientes.toml", "extract.group");
    assert_eq!(d.line, r.line_of("clientes.toml", "group = 2", 0), "{d}");
    let line = std::fs::read_to_string(r.path("clientes.toml")).unwrap();
    let line = line.lines().nth(d.line - 1).unwrap();
    let at: String = line.chars().skip(d.column - 1).collect();
    assert!(at.starts_with('2'), "column {} of {line:?}", d.column);
    assert!(d.message.contains("1 capture group"), "{d}");

    // No group in the pattern at all, with the default group 1.
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "pattern = '^([^,]+),', group = 1",
        "pattern = '^[^,]+,'",
    );
    let d = r.only_error("clientes.toml", "extract.group");
    assert!(d.message.contains("0 capture group"), "{d}");
    assert!(
        d.help.as_deref().unwrap_or("").contains("parentheses"),
        "{d}"
    );

    // Group 0 (the whole match) and the highest group are fine.
    let r = Recipes::shipped();
    r.edit(
        "clientes.toml",
        "pattern = '^([^,]+),', group = 1",
        "pattern = '^(([^,]+)),', group = 2",
    );
    r.edit(
        "clientes.toml",
        "pattern = ',\\s*(.+)$', group = 1",
        "pattern = ',\\s*(.+)$', group = 0",
    );
    load_dir(r.dir.path()).unwrap();
}

#[test]
fn every_problem_is_still_reported_at_once() {
    let r = Recipes::shipped();
    r.append("ventas.toml", DUPLICATE_RULES);
    r.edit(
        "clientes.toml",
        "pattern = '^([^,]+),', group = 1",
        "pattern = '^([^,]+),', group = 3",
    );
    r.edit(
        "usuarios.toml",
        "entity = \"usuarios\"",
        "entity = \"usuarios\"\ncrm_object = \"ventas\"",
    );
    let mut files: Vec<(String, String)> = r
        .errors()
        .iter()
        .map(|d| (file_name(&d.file), d.key.clone().unwrap_or_default()))
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            ("clientes.toml".into(), "extract.group".into()),
            ("ventas.toml".into(), "crm_object".into()),
            ("ventas.toml".into(), "name".into()),
        ],
        "usuarios sorts before ventas: the clash is reported on the later file"
    );
}

/// Renaming a CRM column on an existing workspace fills the new column on the next run
/// (before: every row `unchanged`, the new column empty forever).
#[test]
fn renaming_a_crm_column_or_object_rewrites_every_row_into_it() {
    let w = Workdir::new();
    w.cp1252("clientes.csv", &clients_csv(20, &[], &[]));
    let first = w.run();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.counts("clientes")[4], 20, "inserted");

    let p = w.recipes().join("clientes.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        s.replacen("name = \"email\"", "name = \"email\"\ncrm = \"correo\"", 1),
    )
    .unwrap();
    let second = w.run();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.counts("clientes")[5], 20, "updated: {}", second.json);
    let filled: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE correo = 'cliente7@mail.com' OR correo LIKE 'cliente%'",
    );
    assert_eq!(filled, 20);

    let third = w.run();
    assert_eq!(third.counts("clientes")[6], 20, "unchanged once rewritten");

    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        s.replacen(
            "entity = \"clientes\"",
            "entity = \"clientes\"\ncrm_object = \"contacts\"",
            1,
        ),
    )
    .unwrap();
    let fourth = w.run();
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert_eq!(fourth.counts("clientes")[5], 20, "updated: {}", fourth.json);
    let moved: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM contacts WHERE correo LIKE 'cliente%'",
    );
    assert_eq!(moved, 20);
}

/// Points every recipe's `references = "sucursales"` at `name` (after a rename of that entity).
fn point_references_at(r: &Recipes, name: &str) {
    for f in [
        "usuarios.toml",
        "ventas.toml",
        "unidades.toml",
        "servicios.toml",
    ] {
        let s = std::fs::read_to_string(r.path(f)).unwrap();
        std::fs::write(
            r.path(f),
            s.replace(
                "references = \"sucursales\"",
                &format!("references = \"{name}\""),
            ),
        )
        .unwrap();
    }
}
