//! The layers of the tree, checked: a module may import only from its own layer and the
//! layers below it, so data and imports flow one way (model → config → stages → app → cli).
//! Test-only code (test modules at the end of a file or in `tests.rs`) is left out: it may
//! reach anywhere.
//!
//! This reads `crate::<module>` paths in the source text; a new import that runs back up the
//! layers fails here with its file and line.

use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A file may name `crate::X` only for X in a lower
/// layer, its own module, or a module listed before its own in the same layer (the stages in
/// the order data meets them: `validate` may use `read`, never the reverse).
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["model", "support"]),
    ("config", &["config"]),
    (
        "stages",
        &[
            "sources",
            "read",
            "transform",
            "validate",
            "diff",
            "stage",
            "sinks",
            "state",
        ],
    ),
    ("app", &["app"]),
    ("cli", &["cli"]),
];

/// Files that are test-only as a whole: a module's unit tests (`mod tests;`). Fakes and
/// harnesses live in `tests/testkit/`, end-to-end tests in `tests/`.
fn test_only(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "tests.rs")
}

/// (layer, place within the layer) of a top-level module.
fn rank(module: &str) -> Option<(usize, usize)> {
    LAYERS.iter().enumerate().find_map(|(layer, (_, mods))| {
        mods.iter()
            .position(|m| *m == module)
            .map(|place| (layer, place))
    })
}

/// The top-level module a file under `src/` belongs to.
fn module_of_file(rel: &str) -> Option<&str> {
    Some(
        rel.strip_prefix("src/")?
            .split('/')
            .next()?
            .trim_end_matches(".rs"),
    )
}

/// Whether a file of module `own` may name `crate::theirs`.
fn allowed(own: &str, theirs: &str) -> Option<bool> {
    let (own_layer, own_place) = rank(own)?;
    let (their_layer, their_place) = rank(theirs)?;
    Some(
        own == theirs
            || their_layer < own_layer
            || (their_layer == own_layer && their_place < own_place),
    )
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::<module>` a file's production code names, with its line.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

#[test]
fn imports_flow_down_the_layers() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut back_edges = Vec::new();
    let mut checked = 0;
    for path in files.iter().filter(|p| !test_only(p)) {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "src/lib.rs" || rel == "src/main.rs" {
            continue;
        }
        let own = module_of_file(&rel).unwrap();
        rank(own).unwrap_or_else(|| panic!("{rel}: its top module has no layer in LAYERS"));
        for (line, module) in imports(&std::fs::read_to_string(path).unwrap()) {
            let ok = allowed(own, &module)
                .unwrap_or_else(|| panic!("{rel}:{line}: crate::{module} has no layer in LAYERS"));
            checked += 1;
            if !ok {
                back_edges.push(format!(
                    "{rel}:{line}: {own} ({} layer) imports crate::{module} ({} layer)",
                    LAYERS[rank(own).unwrap().0].0,
                    LAYERS[rank(&module).unwrap().0].0
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "the check read too little ({checked} imports)"
    );
    assert!(
        back_edges.is_empty(),
        "imports against the layer order:\n{}",
        back_edges.join("\n")
    );
}

#[test]
fn the_check_sees_a_back_edge() {
    // A stage naming the app must be found, with its line.
    let found = imports("use crate::model::Issue;\nfn f() { crate::app::run::run(); }\n");
    assert_eq!(found, [(1, "model".to_string()), (2, "app".to_string())]);
    assert_eq!(module_of_file("src/sinks/sqlite_crm.rs"), Some("sinks"));
    assert_eq!(allowed("sinks", "app"), Some(false));
    assert_eq!(allowed("app", "sinks"), Some(true));
    // Within the stages, only earlier stages: validate reads `read`'s columns, read never
    // reaches into validate.
    assert_eq!(allowed("validate", "read"), Some(true));
    assert_eq!(allowed("read", "validate"), Some(false));
    assert_eq!(allowed("config", "sinks"), Some(false));
    assert_eq!(allowed("model", "support"), Some(false));
    assert_eq!(allowed("cli", "nowhere"), None);
    // Test modules at the end of a file are left out.
    assert!(imports("#[cfg(test)]\nmod tests { use crate::cli; }\n").is_empty());
}

/// What `#[cfg(test)]` may gate in `src/`: only a module's own unit tests, a private
/// `mod …tests`. Fakes, harnesses and end-to-end tests are not part of the shipped crate: they
/// live in `tests/testkit/` (usable by unit and integration tests alike) and `tests/`.
fn cfg_test_misuse(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("").trim();
        if !(code.contains("cfg(") || code.contains("cfg_attr(")) || !code.contains("test") {
            continue;
        }
        let gated = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.starts_with("#[") && !l.starts_with("//"))
            .unwrap_or("");
        let name = gated
            .strip_prefix("mod ")
            .map(|rest| rest.trim_end_matches([';', '{', ' ']));
        let unit_tests = code == "#[cfg(test)]"
            && name.is_some_and(|n| {
                n.ends_with("tests") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !unit_tests {
            bad.push((i + 1, format!("{code} {gated}")));
        }
    }
    bad
}

#[test]
fn only_unit_test_modules_are_test_only_in_src() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut misuse = Vec::new();
    let mut gates = 0;
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        gates += text.matches("#[cfg(test)]").count();
        for (line, what) in cfg_test_misuse(&text) {
            misuse.push(format!("{rel}:{line}: {what}"));
        }
    }
    assert!(gates > 40, "the check read too little ({gates} test gates)");
    assert!(
        misuse.is_empty(),
        "test-only code in src/ that is not a unit-test module (move fakes and harnesses to \
         tests/testkit/):\n{}",
        misuse.join("\n")
    );
}

#[test]
fn the_check_sees_test_only_code_that_is_not_unit_tests() {
    assert!(
        cfg_test_misuse("#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod copy_tests {\n").is_empty()
    );
    assert_eq!(
        cfg_test_misuse("#[cfg(test)]\npub(crate) mod fake_server;\n"),
        [(1, "#[cfg(test)] pub(crate) mod fake_server;".to_string())]
    );
    assert_eq!(cfg_test_misuse("#[cfg(test)]\nfn helper() {}\n").len(), 1);
    assert_eq!(
        cfg_test_misuse("#[cfg(any(test, feature = \"x\"))]\nmod tests;\n").len(),
        1
    );
}
