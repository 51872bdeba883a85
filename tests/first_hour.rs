//! A new operator's first hour, as the README leads them: commands pointed at the wrong
//! folder say so (exit 2) instead of answering as if it were empty, a misspelt entity gets a
//! "did you mean", dry commands create nothing, an empty inbox is reported (exit 4), and the
//! samples' answer sheets draw no warning.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use support::{repo, Workdir};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir` with its bytes' hash: the tree "byte-identical" is compared on.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                out.insert(p.display().to_string(), "dir".into());
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    p.display().to_string(),
                    blake3::hash(&bytes).to_hex().to_string(),
                );
            }
        }
    }
    out
}

/// The demo's first drop copied into the workspace's inbox.
fn first_drop(w: &Workdir) {
    let from = repo().join("samples/2026-11-20");
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn commands_that_read_a_workspace_refuse_a_folder_no_run_wrote() {
    let w = Workdir::new();
    let cases: [&[&str]; 4] = [
        &[
            "explain",
            "clientes",
            "136",
            "--recipes",
            "recipes",
            "--out",
            "nowhere",
        ],
        &["runs", "--out", "nowhere"],
        &[
            "approve",
            "20261120T000000Z-abcdef",
            "--recipes",
            "recipes",
            "--out",
            "nowhere",
        ],
        &[
            "serve",
            "--recipes",
            "recipes",
            "--out",
            "nowhere",
            "--listen",
            "127.0.0.1:0",
        ],
    ];
    for args in cases {
        let o = w.cmd(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("no dropsync workspace at nowhere") && err.contains("--out"),
            "{args:?}: {err}"
        );
        assert!(
            !w.path().join("nowhere").exists(),
            "{args:?} created the folder"
        );
    }
}

#[test]
fn a_misspelt_entity_gets_a_did_you_mean() {
    let w = Workdir::new();
    first_drop(&w);
    assert_eq!(w.run().code, 0);
    let o = w.ws_cmd(&["explain", "cliente", "136"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no entity `cliente`") && err.contains("did you mean `clientes`?"),
        "{err}"
    );
    // Nothing close: the entities the recipes do define.
    let o = w.ws_cmd(&["explain", "zzz", "1"]);
    let err = text(&o.stderr);
    assert!(err.contains("they define: clientes"), "{err}");
}

#[test]
fn plan_and_check_create_nothing() {
    let w = Workdir::new();
    first_drop(&w);
    // Before any run: no workspace, and none after.
    let o = w.ws_cmd(&["plan", "--inbox", "in"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("clientes"), "{}", text(&o.stdout));
    let o = w.ws_cmd(&["check", "--config", "none.toml"]);
    assert!(
        text(&o.stdout).contains("not created yet"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        !w.out().exists(),
        "a dry command created {}",
        w.out().display()
    );
    // After a run: the workspace tree is byte-identical before and after.
    assert_eq!(w.run().code, 0);
    let before = tree(&w.out());
    let o = w.ws_cmd(&["plan", "--inbox", "in", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = w.ws_cmd(&["check", "--config", "none.toml"]);
    assert!(
        text(&o.stdout).contains("crm.sqlite opened read-only"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(
        tree(&w.out()),
        before,
        "plan or check changed the workspace"
    );
}

#[test]
fn an_empty_inbox_is_reported_with_exit_4() {
    let w = Workdir::new();
    let r = w.run();
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("no export found in in"), "{}", r.stderr);
    let o = w.ws_cmd(&["plan", "--inbox", "in"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
}

#[test]
fn the_samples_answer_sheet_is_not_a_stray_file() {
    let w = Workdir::new();
    first_drop(&w);
    assert!(
        w.inbox().join("manifest.json").exists(),
        "the samples carry one"
    );
    let r = w.run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("manifest.json"), "{}", r.stderr);
    // Any other stray file is still reported.
    w.utf8("notes.txt", "hola");
    let r = w.run();
    assert!(r.stderr.contains("notes.txt"), "{}", r.stderr);
}

#[test]
fn run_json_lists_each_recipe_mistake() {
    let w = Workdir::new();
    first_drop(&w);
    let path = w.recipes().join("ventas.toml");
    let recipe = std::fs::read_to_string(&path).unwrap();
    let broken = recipe
        .replacen("policy = ", "polcy = ", 1)
        .replacen("\nname = ", "\nnmae = ", 1);
    std::fs::write(&path, broken).unwrap();
    let r = w.run();
    assert_eq!(r.code, 2, "{}", r.stderr);
    let diags = r.json["diagnostics"].as_array().expect("diagnostics");
    let keys: Vec<&str> = diags.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["polcy", "nmae"], "{:#}", r.json);
    assert!(diags[0]["file"].as_str().unwrap().ends_with("ventas.toml"));
    assert!(diags[0]["line"].as_u64().unwrap() > 0);
}

#[test]
fn plan_shows_amounts_as_plain_decimals() {
    // The status page and `plan` once read `2.3793e7 -> 2.4990e7`: no price can be read so.
    let w = Workdir::new();
    first_drop(&w);
    assert_eq!(w.run().code, 0);
    let next = repo().join("samples/2026-11-21");
    let o = w.ws_cmd(&["plan", "--inbox", next.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains("importe_total: 23792797.66 -> 24990406.54"),
        "{out}"
    );
    let exponent = regex::Regex::new(r"\d\.?\d*e[+-]?\d").unwrap();
    for line in out.lines().filter(|l| l.contains(" -> ")) {
        assert!(!exponent.is_match(line), "scientific notation in: {line}");
    }
}
