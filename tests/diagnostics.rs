//! What an operator reads when recipes are wrong, pinned as snapshots (`tests/snapshots/`):
//! every mistake in every file in one pass, each once, at its own line, and no follow-on
//! errors from a mistake already reported. Both renderings are pinned: the text the CLI
//! prints and the JSON list `--json` carries.
//!
//! A changed message shows as a snapshot diff; accept a deliberate change with
//! `INSTA_UPDATE=always cargo test --test diagnostics` and review the `.snap` files.

use std::path::Path;

use dropsync::config::{self, RecipeError};

/// The shipped recipes copied into a temporary folder, each file passed through `edit`.
fn recipes_with(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(dir.path().join(&name), edit(&name, text)).unwrap();
    }
    dir
}

/// Replaces `from` with `to` in `file`, failing if the shipped recipe no longer has it.
fn change(name: &str, text: String, file: &str, from: &str, to: &str) -> String {
    if name != file {
        return text;
    }
    assert!(text.contains(from), "{file} has no {from:?}");
    text.replacen(from, to, 1)
}

/// The error both ways, with the temporary folder written as `recipes`.
fn rendered(dir: &Path) -> (String, String) {
    let err = config::load_dir(dir).expect_err("the recipes have mistakes");
    let RecipeError::Invalid(diags) = &err else {
        panic!("not a diagnostics error: {err}")
    };
    let prefix = format!("{}/", dir.display());
    let text = err.to_string().replace(&prefix, "recipes/");
    let json = serde_json::to_string_pretty(diags)
        .unwrap()
        .replace(&prefix, "recipes/");
    (text, json)
}

#[test]
fn two_unknown_keys_in_one_file_are_both_reported() {
    let dir = recipes_with(|name, text| {
        let text = change(name, text, "ventas.toml", "policy = ", "polcy = ");
        change(name, text, "ventas.toml", "\nname = ", "\nnmae = ")
    });
    let (text, json) = rendered(dir.path());
    insta::assert_snapshot!("two_keys_text", text);
    insta::assert_snapshot!("two_keys_json", json);
}

#[test]
fn a_typo_in_a_parent_gives_no_follow_on_errors_in_its_children() {
    // `[source]` misspelt: clientes cannot be read, and ventas, unidades and servicios,
    // which reference clientes, must not each report an unknown entity.
    let dir = recipes_with(|name, text| change(name, text, "clientes.toml", "[source]", "[sorce]"));
    let (text, json) = rendered(dir.path());
    insta::assert_snapshot!("parent_typo_text", text);
    insta::assert_snapshot!("parent_typo_json", json);
}

#[test]
fn mistakes_in_several_files_are_reported_together() {
    let dir = recipes_with(|name, text| {
        let text = change(
            name,
            text,
            "usuarios.toml",
            "[source]",
            "[source]\nencodng = \"utf-8\"",
        );
        let text = change(name, text, "sucursales.toml", "entity = ", "entty = ");
        change(name, text, "pipeline.toml", "[", "bogus_setting = 1\n\n[")
    });
    let (text, _) = rendered(dir.path());
    insta::assert_snapshot!("several_files_text", text);
}
