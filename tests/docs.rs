//! The docs say what happens: every repository path README.md and the samples docs name
//! exists, every relative link and anchor resolves, and after `dropsync demo` the README's
//! reject query, `dropsync runs` and the `_staged_<entity>` tables show what the README says.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use regex::Regex;
use serde_json::Value;
use support::repo;

/// The docs an operator follows, relative to the repository root.
const DOCS: [&str; 3] = ["README.md", "samples/README.md", "samples/CONTRACT.md"];
/// A word in backticks starting with one of these names a path in the repository.
const REPO_DIRS: [&str; 5] = ["samples/", "recipes/", "src/", "tests/", "watch/"];

fn read(doc: &str) -> String {
    std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// `text` with its fenced code blocks blanked out, line for line (a code span may run over
/// a line break, so the prose is searched as one text).
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`; a repeated
/// heading gets `-1`, `-2`…
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose(text).lines() {
        let Some(title) = line.strip_prefix('#').map(|l| l.trim_start_matches('#')) else {
            continue;
        };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// Whether `path` (relative to the repository) exists; one `*` in its last part matches
/// any run of characters.
fn exists(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let Some(star) = path.find('*') else {
        return repo().join(path).exists();
    };
    let (dir, pattern) = path.rsplit_once('/').unwrap_or(("", path));
    assert!(
        !dir.contains('*') && pattern.matches('*').count() == 1,
        "{path}: teach tests/docs.rs this pattern (star at {star})"
    );
    let (prefix, suffix) = pattern.split_once('*').unwrap();
    std::fs::read_dir(repo().join(dir))
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with(prefix) && name.ends_with(suffix)
            })
        })
        .unwrap_or(false)
}

#[test]
fn every_path_link_and_anchor_the_docs_name_exists() {
    let code = Regex::new(r"`([^`]+)`").unwrap();
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in DOCS {
        let prose = prose(&read(doc));
        let line_of = |at: usize| prose[..at].matches('\n').count() + 1;
        for span in code.captures_iter(&prose) {
            let n = line_of(span.get(0).unwrap().start());
            for word in span[1].split(|c: char| c.is_whitespace() || ",()".contains(c)) {
                let word = word.trim_end_matches([':', '.', ';']);
                // `watch/archive/<run_id>/` and the like are made at run time.
                if !REPO_DIRS.iter().any(|d| word.starts_with(d)) || word.contains('<') {
                    continue;
                }
                checked += 1;
                if !exists(word) {
                    missing.push(format!("{doc}:{n}: `{word}` is not in the repository"));
                }
            }
        }
        let dir = Path::new(doc).parent().unwrap();
        for target in link.captures_iter(&prose) {
            let n = line_of(target.get(0).unwrap().start());
            let target = &target[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                doc.to_string()
            } else {
                dir.join(file).to_string_lossy().to_string()
            };
            if !exists(&file) {
                missing.push(format!("{doc}:{n}: link ({target}): no {file}"));
            } else if !anchor.is_empty()
                && file.ends_with(".md")
                && !anchors(&read(&file)).contains(anchor)
            {
                missing.push(format!("{doc}:{n}: link ({target}): no heading #{anchor}"));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} paths and links checked: is the parsing broken?"
    );
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The README's `sqlite3 demo/staging.sqlite "…"` query, as an operator would paste it.
fn readme_reject_query() -> String {
    let readme = read("README.md");
    let start = "sqlite3 demo/staging.sqlite \"";
    let at = readme
        .find(start)
        .expect("the README queries demo/staging.sqlite")
        + start.len();
    let len = readme[at..].find('"').expect("the query's closing quote");
    readme[at..at + len].to_string()
}

/// `dropsync ARGS` in `dir`, which must exit 0; its stdout.
fn dropsync(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let code = o.status.code().unwrap_or(-1);
    assert_eq!(
        code,
        0,
        "dropsync {args:?}: {stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

#[test]
fn after_the_demo_the_readme_shows_the_latest_runs_rejects_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("left-over.txt"), "from an earlier demo").unwrap();
    let (samples, recipes) = (repo().join("samples"), repo().join("recipes"));
    let printed = dropsync(
        dir.path(),
        &[
            "demo",
            "--recipes",
            recipes.to_str().unwrap(),
            "--samples",
            samples.to_str().unwrap(),
        ],
    );
    // The demo's closing hint is the README's query, so the operator copies the right one.
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&printed).contains(&words(&readme_reject_query())),
        "the demo's hint differs from the README's query:\n{printed}"
    );
    // The README: the demo deletes demo/ first.
    assert!(!out.join("left-over.txt").exists(), "demo/ was not wiped");

    let db = rusqlite::Connection::open(out.join("staging.sqlite")).unwrap();
    let runs: i64 = db
        .query_row("SELECT count(DISTINCT run_id) FROM rejects", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(runs, 2, "the demo's two runs both keep their rejects");

    // The README's query lists exactly the second drop's error rejects, each once (an ID may
    // be on two rows, `U99000101`, so the lines tell them apart).
    let query = readme_reject_query();
    let mut got: Vec<String> = db
        .prepare(&query)
        .unwrap_or_else(|e| panic!("the README's query does not run: {e}\n{query}"))
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get::<_, String>(3)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(samples.join("2026-11-21/manifest.json")).unwrap(),
    )
    .unwrap();
    let mut want: Vec<String> = manifest["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}",
                r["entity"].as_str().unwrap(),
                r["line"],
                r["id"].as_str().unwrap(),
                r["rule"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{query}");

    // `_staged_<entity>`: one (id, hash) per staged row.
    let (rows, hashes): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM clientes), (SELECT count(*) FROM _staged_clientes)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, hashes), (305, 305));

    // `dropsync runs`: newest first, `+ ~ - !` as the README and samples/README.md count them.
    let listed = dropsync(dir.path(), &["runs", "--out", out.to_str().unwrap()]);
    let newest = listed.lines().nth(1).expect("a run line");
    assert!(
        newest.contains("clientes +6 ~9 -6 !3") && newest.contains("servicios +12 ~18 -12 !7"),
        "{listed}"
    );
}
