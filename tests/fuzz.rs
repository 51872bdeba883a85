//! A time-bounded fuzz loop that runs on stable (issue #11): random and mutated inputs,
//! seeded from `samples/` and `recipes/`, through
//!
//! - `read`: the CSV and XML readers (`read::read_file` with the shipped recipe of the
//!   sample's entity), then the plan and validation of whatever they read;
//! - `recipe`: the recipe compiler (`recipe::load_dir` on a folder of the shipped recipes
//!   with one of them mutated), then the plan, validation and hashes of what compiles.
//!
//! Any panic — even one a reader catches and turns into an error — or an input that runs
//! longer than `DROPSYNC_FUZZ_HANG_SECS` (default 30) is saved as
//! `tests/fuzz-found/<target>-<hash>.<file name>` and fails the test. The file name says
//! which shipped file the input stands in for, so `replay_found_inputs` (not ignored: part
//! of `cargo test`) can run every saved input again: each found crash is a regression test.
//!
//! ```sh
//! DROPSYNC_FUZZ_SECS=300 cargo test --test fuzz -- --ignored --nocapture
//! ```
//!
//! `DROPSYNC_FUZZ_SECS` is the time per target (default 20); `DROPSYNC_FUZZ_SEED` fixes the
//! random seed (printed at start) to repeat a session.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use dropsync::config::{load_dir, Recipe, Recipes};
use dropsync::diff::{self, HashScope};
use dropsync::read::{self, BAD, LINE};
use dropsync::transform::Plan;
use dropsync::validate::{self, RefSets};
use polars::prelude::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn found_dir() -> PathBuf {
    repo().join("tests").join("fuzz-found")
}

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

// ---------------------------------------------------------------------------------------
// Panics: caught per input, remembered with their location, kept off the test output.
// ---------------------------------------------------------------------------------------

thread_local! {
    static IN_EXEC: Cell<bool> = const { Cell::new(false) };
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A panic hook that records panics of fuzzed inputs (also those a callee catches, like the
/// readers' own guard) and leaves every other panic to the default hook.
fn install_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_EXEC.with(Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                PANICS.with(|p| p.borrow_mut().push(format!("{at}: {msg}")));
            } else {
                default(info);
            }
        }));
    });
}

/// What one input did.
#[derive(Debug)]
enum Outcome {
    /// A label for statistics (`ok`, `err:<kind>`...).
    Fine(String),
    Panicked(String),
    Hung,
}

/// Runs `f` on its own thread with the panic hook listening; a panic (caught anywhere) or
/// a run over the hang limit is a finding.
fn exec(f: impl FnOnce() -> String + Send + 'static) -> Outcome {
    install_hook();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        IN_EXEC.with(|c| c.set(true));
        PANICS.with(|p| p.borrow_mut().clear());
        let r = catch_unwind(AssertUnwindSafe(f));
        let panics = PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()));
        IN_EXEC.with(|c| c.set(false));
        let outcome = match (r, panics.is_empty()) {
            (Ok(label), true) => Outcome::Fine(label),
            (_, false) => Outcome::Panicked(panics.join("\n")),
            (Err(_), true) => Outcome::Panicked("panic without a message".into()),
        };
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(env_secs("DROPSYNC_FUZZ_HANG_SECS", 30)) {
        Ok(o) => o,
        Err(_) => Outcome::Hung,
    }
}

// ---------------------------------------------------------------------------------------
// The targets. Each takes the name of the shipped file the input stands in for.
// ---------------------------------------------------------------------------------------

fn shipped_recipes() -> &'static Recipes {
    static R: OnceLock<Recipes> = OnceLock::new();
    R.get_or_init(|| load_dir(&repo().join("recipes")).expect("shipped recipes compile"))
}

/// A small frame with the recipe's source columns, for what compiles in the `recipe` target.
fn raw_frame(recipe: &Recipe) -> DataFrame {
    const VALUES: [Option<&str>; 6] = [
        Some("1"),
        None,
        Some("1.234,5"),
        Some("01/02/2026 10:30"),
        Some("S"),
        Some(" Núñez, José "),
    ];
    let n = VALUES.len();
    let mut cols: Vec<Column> = recipe
        .source_columns()
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let v: Vec<Option<&str>> = (0..n)
                .map(|i| {
                    if k == 0 {
                        Some("7")
                    } else {
                        VALUES[(i + k) % n]
                    }
                })
                .collect();
            Column::new(c.into(), v)
        })
        .collect();
    cols.push(Column::new(
        LINE.into(),
        (2..n as u32 + 2).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(BAD.into(), vec![None::<&str>; n]));
    DataFrame::new(n, cols).expect("distinct source columns")
}

/// Plan, validate and hash `raw` as `recipe`; errors are labels (a compile hole shows up
/// as `plan-error`, which the recipe target treats as a finding).
fn transform(recipe: &Recipe, raw: &DataFrame) -> Result<(), String> {
    let typed = Plan::new(recipe)
        .apply(raw.clone())
        .map_err(|e| format!("plan: {e}"))?;
    let v = validate::validate(recipe, "f", &typed, raw, &RefSets::default())
        .map_err(|e| format!("validate: {e}"))?;
    diff::row_hashes(&v.accepted, recipe, HashScope::Comparable)
        .map_err(|e| format!("hash: {e}"))?;
    Ok(())
}

/// `read` target: `bytes` as the file `name` (e.g. `clientes.csv`) of its entity.
fn read_input(name: &str, bytes: &[u8]) -> String {
    let entity = name.split('.').next().unwrap_or_default();
    let Some(recipe) = shipped_recipes().get(entity) else {
        return "no-recipe".into();
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match read::read_file(&path, recipe) {
        Ok(t) => match transform(recipe, &t.frame) {
            Ok(()) => "ok".into(),
            // The reader's frame must fit the plan: anything else would fail a run.
            Err(e) => panic!("read fine but the frame does not transform: {e}"),
        },
        Err(e) => {
            let s = e.to_string();
            let kind = s
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            format!("err:{kind}")
        }
    }
}

/// `recipe` target: the shipped recipes with `name` (e.g. `ventas.toml`) replaced by `bytes`.
fn recipe_input(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n != name) {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join(name), bytes).unwrap();
    match load_dir(dir.path()) {
        Ok(recipes) => {
            let entity = name.trim_end_matches(".toml");
            for r in recipes.entities.iter().filter(|r| r.entity == entity) {
                if let Err(e) = transform(r, &raw_frame(r)) {
                    panic!("compiled but cannot run: {e}");
                }
            }
            "ok".into()
        }
        Err(dropsync::config::RecipeError::Invalid(d)) => {
            for d in &d {
                let text = std::fs::read_to_string(&d.file).unwrap_or_default();
                let lines: Vec<&str> = text.split('\n').collect();
                let valid = d.line >= 1
                    && d.line <= lines.len()
                    && d.column >= 1
                    && d.column <= lines[d.line - 1].chars().count() + 1;
                assert!(valid, "diagnostic outside the file: {d}");
            }
            "invalid".into()
        }
        Err(_) => "io".into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Read,
    Recipe,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Read => "read",
            Target::Recipe => "recipe",
        }
    }

    fn run(self, name: String, bytes: Vec<u8>) -> Outcome {
        match self {
            Target::Read => exec(move || read_input(&name, &bytes)),
            Target::Recipe => exec(move || recipe_input(&name, &bytes)),
        }
    }

    /// (shipped file name, bytes) to start from.
    fn seeds(self) -> Vec<(String, Vec<u8>)> {
        let mut seeds = Vec::new();
        let dirs: Vec<PathBuf> = match self {
            Target::Read => std::fs::read_dir(repo().join("samples"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect(),
            Target::Recipe => vec![repo().join("recipes")],
        };
        for d in dirs {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                let wanted = match self {
                    Target::Read => ext == "csv" || ext == "xml",
                    Target::Recipe => ext == "toml",
                };
                if wanted {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    seeds.push((name, std::fs::read(&p).unwrap()));
                }
            }
        }
        seeds.sort();
        seeds
    }
}

// ---------------------------------------------------------------------------------------
// Mutations.
// ---------------------------------------------------------------------------------------

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const CSV_TOKENS: &[&str] = &[
    ";",
    ",",
    "\t",
    "|",
    "\"",
    "\"\"",
    "\n",
    "\r\n",
    "\r",
    " ",
    ";;;;",
    "\"a;b\"",
    "\"\n\"",
    "000",
    "0",
    "-1",
    "1.234.567,89",
    "12.5",
    "7,5",
    "99999999999999999999",
    "31/02/2026",
    "01/02/26",
    "20/11/2026 14:30",
    "12:36:60",
    "S",
    "Sí",
    "N",
    "NULL",
    "=cmd()",
    "\u{feff}",
    "\u{a0}",
    "ñ",
    "\u{1F600}",
    "\0",
    "Nro Cliente",
    "Código",
    "\u{fffd}",
];

const XML_TOKENS: &[&str] = &[
    "<Unidad id=\"U1\">",
    "<Unidad id=\"\">",
    "<Unidad>",
    "</Unidad>",
    "<Unidad/>",
    "<Km>35.400</Km>",
    "<VIN>",
    "</VIN>",
    "<![CDATA[x]]>",
    "]]>",
    "<!--",
    "-->",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x10FFFF;",
    "&#xD800;",
    "&xxe;",
    "&",
    "<",
    ">",
    "\"",
    "'",
    "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
    "<?xml version=\"1.0\" encoding=\"bogus\"?>",
    "<!DOCTYPE a [<!ENTITY a \"&a;&a;&a;\">]>",
    "xmlns:x=\"urn:x\"",
    "<x:Unidad id=\"U9\">",
    "</x:Unidad>",
    "\u{feff}",
    "\0",
];

const TOML_TOKENS: &[&str] = &[
    "\n",
    "=",
    " = ",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ".",
    "#",
    "[[field]]\n",
    "[[rule]]\n",
    "[source.xml]\n",
    "name = \"x\"\n",
    "from = \"^x$\"\n",
    "from = \"*\"\n",
    "type = \"date\"\n",
    "formats = [\"%Q\"]\n",
    "formats = [\"\"]\n",
    "extract = { from = \"A\", pattern = '(x)', group = 9 }\n",
    "references = \"ventas\"\n",
    "crm = \"id\"\n",
    "crm_object = \"rejects\"\n",
    "entity = \"runs\"\n",
    "required = true\n",
    "create_only = true\n",
    "matches = '('\n",
    "in = []\n",
    "less_than = 1e400\n",
    "group = 18446744073709551616",
    "\\u0000",
    "\u{0}",
    "ñ",
    "\u{1F600}",
    "true",
    "-1",
];

/// A copy of `input` changed by 1-8 random edits; `others` are spliced in sometimes.
fn mutate(rng: &mut Rng, input: &[u8], others: &[(String, Vec<u8>)], tokens: &[&str]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let n = b.len();
        let at = rng.below(n + 1);
        match rng.below(12) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b[i] = *rng.pick(&[
                    0u8, 0xFF, 0x80, 0xC3, 0xE2, 0xEF, b';', b'"', b'\n', b'<', b'&',
                ]);
            }
            2 => {
                let len = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                b.splice(at..at, bytes);
            }
            3 | 4 => {
                let t = rng.pick(tokens).as_bytes().to_vec();
                b.splice(at..at, t);
            }
            5 if n > 0 => {
                let end = (at + 1 + rng.below(64)).min(n);
                b.drain(at.min(end)..end);
            }
            6 if n > 0 => {
                // Copy a chunk elsewhere (duplicate rows, repeated IDs, nested elements).
                let start = rng.below(n);
                let end = (start + 1 + rng.below(256)).min(n);
                let chunk = b[start..end].to_vec();
                let times = if rng.chance(8) { 1 + rng.below(200) } else { 1 };
                let at = rng.below(b.len() + 1);
                for _ in 0..times {
                    b.splice(at..at, chunk.iter().copied());
                }
            }
            7 if n > 0 => b.truncate(rng.below(n)),
            8 => {
                // Whole lines: delete, duplicate or swap.
                let mut lines: Vec<Vec<u8>> =
                    b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                match rng.below(3) {
                    0 if lines.len() > 1 => {
                        lines.remove(i);
                    }
                    1 => {
                        let l = lines[i].clone();
                        lines.insert(j, l);
                    }
                    _ => lines.swap(i, j),
                }
                b = lines.join(&b'\n');
            }
            9 if !others.is_empty() => {
                let (_, other) = rng.pick(others);
                let cut = rng.below(other.len() + 1);
                b.truncate(at.min(b.len()));
                b.extend_from_slice(&other[cut..]);
            }
            10 => {
                // A value between separators replaced by a token.
                let seps: &[u8] = b";,=<>\n";
                let starts: Vec<usize> = (0..n).filter(|&i| seps.contains(&b[i])).collect();
                if let Some(&s) = starts.get(rng.below(starts.len())) {
                    let end = (s + 1..n).find(|&i| seps.contains(&b[i])).unwrap_or(n);
                    let t = rng.pick(tokens).as_bytes().to_vec();
                    b.splice(s + 1..end, t);
                }
            }
            _ => {
                // Case flips of ASCII letters (header and element names).
                if n > 0 {
                    let i = rng.below(n);
                    b[i] = if b[i].is_ascii_lowercase() {
                        b[i].to_ascii_uppercase()
                    } else {
                        b[i].to_ascii_lowercase()
                    };
                }
            }
        }
    }
    b.truncate(1 << 20);
    b
}

/// Saves a finding as `tests/fuzz-found/<target>-<hash>.<name>` and returns its path.
fn save(target: Target, name: &str, bytes: &[u8]) -> PathBuf {
    let dir = found_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let hash = &blake3::hash(bytes).to_hex()[..16];
    let path = dir.join(format!("{}-{hash}.{name}", target.name()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Fuzzes `target` for `DROPSYNC_FUZZ_SECS`; fails with the saved inputs if any panicked.
fn fuzz(target: Target) {
    let budget = env_secs("DROPSYNC_FUZZ_SECS", 20);
    let seed = std::env::var("DROPSYNC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut rng = Rng(seed);
    let seeds = target.seeds();
    assert!(!seeds.is_empty());
    let tokens = match target {
        Target::Read => [CSV_TOKENS, XML_TOKENS].concat(),
        Target::Recipe => TOML_TOKENS.to_vec(),
    };
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    let mut stats: std::collections::BTreeMap<String, u64> = Default::default();
    let started = Instant::now();
    let mut execs = 0u64;
    // The seeds themselves first: they must pass.
    let mut queue: Vec<(String, Vec<u8>)> = seeds.clone();
    while started.elapsed() < budget && found.len() < 5 {
        let (name, bytes) = match queue.pop() {
            Some(x) => x,
            None => {
                let (name, base) = rng.pick(&seeds).clone();
                let bytes = if rng.chance(32) {
                    let len = rng.below(4096);
                    (0..len).map(|_| rng.next() as u8).collect()
                } else {
                    mutate(&mut rng, &base, &seeds, &tokens)
                };
                // Recipes are read as UTF-8 (anything else is one I/O error): mostly text.
                let bytes = if target == Target::Recipe && !rng.chance(16) {
                    String::from_utf8_lossy(&bytes).into_owned().into_bytes()
                } else {
                    bytes
                };
                (name, bytes)
            }
        };
        execs += 1;
        match target.run(name.clone(), bytes.clone()) {
            Outcome::Fine(label) => *stats.entry(label).or_default() += 1,
            Outcome::Panicked(msg) => {
                let path = save(target, &name, &bytes);
                found.push((path, msg));
            }
            Outcome::Hung => {
                let path = save(target, &name, &bytes);
                found.push((path, "ran past DROPSYNC_FUZZ_HANG_SECS".into()));
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {}: seed {seed}, {execs} inputs in {secs:.0} s ({:.1}/s), outcomes {stats:?}",
        target.name(),
        execs as f64 / secs.max(1e-9)
    );
    if !found.is_empty() {
        let list: Vec<String> = found
            .iter()
            .map(|(p, m)| format!("{}\n    {m}", p.display()))
            .collect();
        panic!(
            "{} input(s) panicked (saved; `replay_found_inputs` runs them):\n{}",
            found.len(),
            list.join("\n")
        );
    }
}

#[test]
#[ignore = "time-bounded fuzzing: DROPSYNC_FUZZ_SECS=N cargo test --test fuzz -- --ignored"]
fn fuzz_readers() {
    fuzz(Target::Read);
}

#[test]
#[ignore = "time-bounded fuzzing: DROPSYNC_FUZZ_SECS=N cargo test --test fuzz -- --ignored"]
fn fuzz_recipe_compiler() {
    fuzz(Target::Recipe);
}

/// Every input a fuzz session saved runs again without panicking.
#[test]
fn replay_found_inputs() {
    let Ok(entries) = std::fs::read_dir(found_dir()) else {
        return;
    };
    let mut failures = Vec::new();
    let mut n = 0;
    for e in entries {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        if file.starts_with('.') {
            continue;
        }
        // <target>-<hash>.<name of the shipped file it stands in for>
        let (head, name) = file.split_once('.').expect("<target>-<hash>.<name>");
        let target = match head.split_once('-').map(|(t, _)| t) {
            Some("read") => Target::Read,
            Some("recipe") => Target::Recipe,
            _ => panic!("{file}: unknown fuzz target"),
        };
        n += 1;
        match target.run(name.to_string(), std::fs::read(&p).unwrap()) {
            Outcome::Fine(_) => {}
            Outcome::Panicked(m) => failures.push(format!("{file}: {m}")),
            Outcome::Hung => failures.push(format!("{file}: hangs")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} saved fuzz input(s) still fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The harness itself: a panic deep in a target is caught, labelled and saved by name.
#[test]
fn the_harness_catches_and_names_panics() {
    match exec(|| panic!("boom {}", 42)) {
        Outcome::Panicked(m) => assert!(m.contains("boom 42") && m.contains("fuzz.rs"), "{m}"),
        o => panic!("{o:?}"),
    }
    match exec(|| {
        // Caught inside the callee, like `read_file` does: still a finding.
        let _ = catch_unwind(|| panic!("hidden"));
        "ok".to_string()
    }) {
        Outcome::Panicked(m) => assert!(m.contains("hidden"), "{m}"),
        o => panic!("{o:?}"),
    }
    assert!(matches!(exec(|| "fine".into()), Outcome::Fine(l) if l == "fine"));
    let mut rng = Rng(1);
    let seeds = Target::Recipe.seeds();
    let m = mutate(&mut rng, &seeds[0].1, &seeds, TOML_TOKENS);
    assert_ne!(m, seeds[0].1);
}
