//! Property tests (issue #11) for what configuration and typing promise:
//!
//! - the recipe compiler never panics on any text, and every diagnostic points at a line and
//!   column that exist in the file it names; a recipe that compiles also plans, validates and
//!   hashes without a polars error (a compile hole would be exit 1 half-way through a run);
//! - the plan's number, date and boolean parsers agree with a small reference written here
//!   from the README's contract (never a wrong number: a value is right, empty or a type error);
//! - the diff agrees with a naive BTreeMap diff on inserted / updated / unchanged / deleted.
//!
//! Case counts are kept so the file runs in well under a minute in debug. Failure
//! persistence is off: a failure prints its minimal input, which becomes a named test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use dropsync::config::{load_dir, Diagnostic, Recipe, RecipeError};
use dropsync::diff::{self, HashScope, HASH};
use dropsync::read::{BAD, LINE};
use dropsync::transform::{err_col, Plan, ID};
use dropsync::validate::{self, RefSets};
use polars::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// `cases` per property, or `PROPTEST_CASES` when set (for a longer hunt).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// The recipe compiler on hostile text.
// ---------------------------------------------------------------------------------------

/// The shipped recipes as (file name, text), pipeline.toml included.
fn shipped() -> &'static Vec<(String, String)> {
    static SHIPPED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let mut v: Vec<(String, String)> = std::fs::read_dir(repo().join("recipes"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    })
}

/// Every diagnostic names a file of the folder, and a line and column inside that file's
/// text (column one past the last character is allowed: "expected `]`" at the end).
fn assert_spans_valid(dir: &Path, diags: &[Diagnostic]) {
    assert!(!diags.is_empty(), "Invalid without a diagnostic");
    for d in diags {
        assert_eq!(d.file.parent(), Some(dir), "{d}");
        assert!(!d.message.trim().is_empty(), "{d:?}");
        let text = std::fs::read_to_string(&d.file).unwrap_or_else(|e| panic!("{d}: {e}"));
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(
            d.line >= 1 && d.line <= lines.len(),
            "{d}: line {} of {} in {text:?}",
            d.line,
            lines.len()
        );
        let width = lines[d.line - 1].chars().count();
        assert!(
            d.column >= 1 && d.column <= width + 1,
            "{d}: column {} of a {width}-character line {:?}",
            d.column,
            lines[d.line - 1]
        );
    }
}

/// A small raw frame with every source column the recipe reads, values of every kind.
fn raw_frame(recipe: &Recipe) -> DataFrame {
    const VALUES: [Option<&str>; 8] = [
        Some("1"),
        None,
        Some(""),
        Some("1.234,5"),
        Some("01/02/2026 10:30"),
        Some("S"),
        Some("  Núñez,  José "),
        Some("SUC-01"),
    ];
    let n = VALUES.len();
    let mut cols: Vec<Column> = Vec::new();
    for (k, c) in recipe.source_columns().into_iter().enumerate() {
        let values: Vec<Option<String>> = if k == 0 {
            (0..n).map(|i| Some(format!("{:03}", i % 5))).collect()
        } else {
            (0..n)
                .map(|i| VALUES[(i + k) % n].map(str::to_string))
                .collect()
        };
        cols.push(Column::new(c.into(), values));
    }
    cols.push(Column::new(
        LINE.into(),
        (2..n as u32 + 2).collect::<Vec<_>>(),
    ));
    cols.push(Column::new(
        BAD.into(),
        (0..n)
            .map(|i| (i == 3).then_some("3 fields, header has 4"))
            .collect::<Vec<_>>(),
    ));
    DataFrame::new(n, cols).unwrap()
}

/// What a run does with a compiled recipe up to the diff; any error is a compile hole.
fn run_compiled(recipe: &Recipe) {
    let raw = raw_frame(recipe);
    let typed = Plan::new(recipe)
        .apply(raw.clone())
        .unwrap_or_else(|e| panic!("{}: the plan fails: {e}", recipe.entity));
    let v = validate::validate(recipe, "f.csv", &typed, &raw, &RefSets::default())
        .unwrap_or_else(|e| panic!("{}: validate fails: {e}", recipe.entity));
    for scope in [HashScope::Comparable, HashScope::AllFields] {
        diff::row_hashes(&v.accepted, recipe, scope)
            .unwrap_or_else(|e| panic!("{}: hashing fails: {e}", recipe.entity));
    }
}

/// Loads `files` as a recipes folder: never panics; errors have valid spans; a folder that
/// compiles runs the `check` entities through plan, validate and hash.
fn compile_files(files: &[(String, Vec<u8>)], check: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    match load_dir(dir.path()) {
        Ok(recipes) => {
            for r in &recipes.entities {
                if check.is_empty() || check.contains(&r.entity.as_str()) {
                    run_compiled(r);
                }
            }
        }
        Err(RecipeError::Invalid(diags)) => assert_spans_valid(dir.path(), &diags),
        Err(RecipeError::Io { .. } | RecipeError::Empty(_)) => {}
    }
}

/// Pieces TOML (and recipes) are made of, so random text often gets past the parser.
fn toml_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "entity", "crm_object", "crm_id_property", "[source]", "files", "encoding",
            "delimiter", "[source.xml]", "record", "id_attribute", "[id]", "column", "numeric",
            "uppercase", "[deletes]", "policy", "max_share", "[[field]]", "name", "from",
            "extract", "pattern", "group", "type", "formats", "required", "clean", "map",
            "unmapped", "default", "references", "create_only", "crm_owned", "crm", "[[rule]]",
            "action", "field", "equals", "not_equals", "in", "is_empty", "matches", "less_than",
            "greater_than", "message", "[guard]", "max_delete_share", "[staging]", "xlsx",
            "[target]", "[alerts]", " = ", "=", "\n", "\n", "\n", "[", "]", "{", "}", ",", ".",
            "\"", "'", "'''", "\"\"\"", "#", " ", "\t", "\r\n", "\"x\"", "\"clientes\"",
            "\"rejects\"", "\"runs\"", "\"date\"", "\"%d/%m/%Y\"", "'(a)(b)'", "'('", "1", "-1",
            "0", "1e400", "18446744073709551616", "true", "false", "ñ", "é", "\u{1F600}",
            "\u{0}", "\\", "\\u00e9", "[\"a.csv\"]", "{ from = \"A\", pattern = '(x)' }",
        ])
        .prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ]
}

fn toml_like_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(toml_token(), 0..60).prop_map(|t| t.concat()),
        1 => any::<String>(),
    ]
}

/// One edit of a recipe file's lines.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    SwapValues(usize, usize),
    SwapLines(usize, usize),
    SetValue(usize, String),
    Insert(usize, String, String),
    Truncate(usize),
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "\"x\"", "\"\"", "\" \"", "\"clientes\"", "\"sucursales\"", "\"rejects\"",
            "\"runs\"", "\"summary\"", "\"contacts\"", "\"id\"", "\"_deleted\"", "\"integer\"",
            "\"decimal\"", "\"date\"", "\"datetime\"", "\"boolean\"", "\"string\"",
            "\"%d/%m/%Y\"", "[\"%Y-%m-%d\", \"%d.%m.%y\"]", "[\"%Q\"]", "[\"plain\"]", "[]",
            "[\"\"]", "\"^(x)$\"", "'('", "'(a)(b)'", "0", "1", "2", "7", "-1", "0.5", "1e400",
            "18446744073709551616", "true", "false", "[\"a.csv\", \"*.xml\"]", "{}",
            "{ \"a\" = \"b\" }", "{ from = \"Tipo\", pattern = '(x)', group = 2 }",
            "{ from = \"Tipo\", pattern = 'x' }", "[\"trim\", \"digits_only\", \"lower\"]",
            "\"skip\"", "\"reject\"", "\"hard\"", "\"ignore\"", "\"warn\"", "\";\"", "\"||\"",
            "\"windows-1252\"", "\"Unidad\"",
        ])
        .prop_map(str::to_string),
        1 => "\"[a-zA-Z0-9_ %/.,]{0,12}\"",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "entity", "crm_object", "name", "from", "type", "formats", "required", "clean",
            "map", "unmapped", "default", "references", "create_only", "crm_owned", "crm",
            "extract", "group", "pattern", "action", "field", "equals", "in", "matches",
            "less_than", "is_empty", "message", "files", "column", "numeric", "policy",
            "max_share", "delimiter", "encoding", "record", "id_attribute",
        ])
        .prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = || 0usize..200;
    prop_oneof![
        3 => i().prop_map(Mutation::Delete),
        1 => i().prop_map(Mutation::Duplicate),
        3 => (i(), i()).prop_map(|(a, b)| Mutation::SwapValues(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => (i(), value()).prop_map(|(a, v)| Mutation::SetValue(a, v)),
        3 => (i(), key(), value()).prop_map(|(a, k, v)| Mutation::Insert(a, k, v)),
        1 => (0usize..10_000).prop_map(Mutation::Truncate),
        1 => (i(), prop::sample::select(vec!["[[field]]", "[[rule]]", "[id]", "[source]", "[deletes]", "[source.xml]"]))
            .prop_map(|(a, t)| Mutation::Insert(a, t.to_string(), String::new())),
    ]
}

/// `key = value` → (key part with ` = `, value), for lines that have one.
fn split_value(line: &str) -> Option<(&str, &str)> {
    let eq = line.find('=')?;
    Some((&line[..=eq], &line[eq + 1..]))
}

fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in muts {
        let n = lines.len().max(1);
        match m {
            Mutation::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SwapValues(a, b) if !lines.is_empty() => {
                let (a, b) = (a % n, b % n);
                if let (Some((ka, va)), Some((kb, vb))) =
                    (split_value(&lines[a]), split_value(&lines[b]))
                {
                    let (na, nb) = (format!("{ka}{vb}"), format!("{kb}{va}"));
                    lines[a] = na;
                    lines[b] = nb;
                }
            }
            Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Mutation::SetValue(i, v) if !lines.is_empty() => {
                let i = i % n;
                if let Some((k, _)) = split_value(&lines[i]) {
                    lines[i] = format!("{k} {v}");
                }
            }
            Mutation::Insert(i, k, v) => {
                let l = if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k} = {v}")
                };
                lines.insert(i % (lines.len() + 1), l);
            }
            Mutation::Truncate(cut) => {
                let joined = lines.join("\n");
                let mut at = cut % (joined.len() + 1);
                while !joined.is_char_boundary(at) {
                    at -= 1;
                }
                lines = joined[..at].lines().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary TOML-ish text as one recipe beside the shipped ones, or as pipeline.toml.
    #[test]
    fn the_compiler_never_panics_on_arbitrary_text(text in toml_like_text(), as_pipeline in any::<bool>()) {
        let name = if as_pipeline { "pipeline.toml" } else { "zz_fuzz.toml" };
        let mut files: Vec<(String, Vec<u8>)> = shipped()
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(n, t)| (n.clone(), t.clone().into_bytes()))
            .collect();
        files.push((name.to_string(), text.into_bytes()));
        compile_files(&files, &["none"]);
    }

    /// Arbitrary text alone in a folder (no shipped recipes to lean on).
    #[test]
    fn a_lone_arbitrary_recipe_never_panics(text in toml_like_text()) {
        compile_files(&[("r.toml".to_string(), text.into_bytes())], &[]);
    }
}

proptest! {
    #![proptest_config(config(400))]

    /// The shipped recipes with deleted lines, swapped values, random keys and values: the
    /// compiler reports (valid spans) or compiles into something that runs.
    #[test]
    fn mutated_shipped_recipes_fail_cleanly_or_run(
        which in 0usize..7,
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let all = shipped();
        let which = which % all.len();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut entity = String::new();
        for (k, (name, text)) in all.iter().enumerate() {
            let text = if k == which {
                entity = name.trim_end_matches(".toml").to_string();
                mutate(text, &muts)
            } else {
                text.clone()
            };
            files.push((name.clone(), text.into_bytes()));
        }
        // pipeline.toml changes every entity (guard); run the smallest one then.
        let check = if entity == "pipeline" { "sucursales".to_string() } else { entity };
        compile_files(&files, &[check.as_str()]);
    }
}

// ---------------------------------------------------------------------------------------
// The plan's parsers against a reference written from the README.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Expect<T> {
    /// Empty after trimming: null, and no type error.
    Empty,
    Value(T),
    /// Not a value of the type: null and a type error, never a made-up value.
    TypeError,
}

fn expect<T>(v: Option<&str>, parse: impl Fn(&str) -> Option<T>) -> Expect<T> {
    match v.map(str::trim) {
        None | Some("") => Expect::Empty,
        Some(s) => parse(s).map_or(Expect::TypeError, Expect::Value),
    }
}

/// `35400`, `35.400`, `-1.234.567`, `+7`: ASCII digits, `.` only between groups of three.
fn ref_digits(s: &str) -> Option<(bool, String)> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let groups: Vec<&str> = body.split('.').collect();
    let ok = if groups.len() == 1 {
        !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())
    } else {
        (1..=3).contains(&groups[0].len())
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3)
    };
    ok.then(|| (neg, groups.concat()))
}

fn ref_integer(s: &str) -> Option<i64> {
    let (neg, digits) = ref_digits(s)?;
    let text = if neg { format!("-{digits}") } else { digits };
    text.parse::<i64>().ok()
}

/// `1.234.567,89`, `7,5`, `-3`: an integer part as above, then `,` and at most two decimals
/// (the default scale; more is an error, never rounded), at most 16 digits before them (the
/// default precision 18). As its exact text with two decimals: `1234567.89`, `7.50`.
fn ref_decimal(s: &str) -> Option<String> {
    let (int, frac) = match s.split_once(',') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let (neg, digits) = ref_digits(int)?;
    if s.contains(',') && frac.is_empty()
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = digits.trim_start_matches('0');
    if int.len() > 16 {
        return None;
    }
    let int = if int.is_empty() { "0" } else { int };
    let frac = format!("{frac:0<2}");
    let zero = int == "0" && frac == "00";
    Some(format!(
        "{}{int}.{frac}",
        if neg && !zero { "-" } else { "" }
    ))
}

/// Units of 10^-2 as text, written here rather than borrowed from the code under test.
fn cents_text(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let u = units.unsigned_abs();
    format!("{sign}{}.{:02}", u / 100, u % 100)
}

/// 1-2 ASCII digits.
fn small(s: &str) -> Option<u32> {
    ((1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().unwrap())
}

/// `dd/mm/yyyy` (day and month of one or two digits, exactly four year digits), then
/// optionally ` hh:mm` and, when `seconds`, ` hh:mm:ss`. Returns (y, m, d, h, min, s).
fn ref_timestamp(s: &str, with_minutes: bool, with_seconds: bool) -> Option<[u32; 6]> {
    let (date, time) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('/').collect();
    let [d, m, y] = parts[..] else { return None };
    let (d, m) = (small(d)?, small(m)?);
    if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: u32 = y.parse().unwrap();
    chrono::NaiveDate::from_ymd_opt(y as i32, m, d)?;
    let (h, min, sec) = match time {
        None => (0, 0, 0),
        Some(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            match parts[..] {
                [h, mi] if with_minutes => (small(h)?, small(mi)?, 0),
                [h, mi, se] if with_seconds => (small(h)?, small(mi)?, small(se)?),
                _ => return None,
            }
        }
    };
    (h < 24 && min < 60 && sec < 60).then_some([y, m, d, h, min, sec])
}

/// A `date` field with the default formats keeps the day of a `dd/mm/yyyy hh:mm`.
fn ref_date(s: &str) -> Option<String> {
    let [y, m, d, ..] = ref_timestamp(s, true, false)?;
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// A `datetime` field with the default formats: `dd/mm/yyyy[ hh:mm[:ss]]`.
fn ref_datetime(s: &str) -> Option<String> {
    let [y, m, d, h, mi, se] = ref_timestamp(s, true, true)?;
    Some(format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{se:02}"))
}

/// `S/N`, `Si/Sí/No`, `1/0`, `true/false` (and `y/yes`, `verdadero/falso`), any case.
fn ref_boolean(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "s" | "si" | "sí" | "1" | "true" | "y" | "yes" | "verdadero" => Some(true),
        "n" | "no" | "0" | "false" | "falso" => Some(false),
        _ => None,
    }
}

fn typed_recipe() -> &'static Recipe {
    static RECIPE: OnceLock<Recipe> = OnceLock::new();
    RECIPE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "entity = \"p\"\n[source]\nfiles = [\"p.csv\"]\n[id]\ncolumn = \"ID\"\n\
             [[field]]\nname = \"i\"\nfrom = \"V\"\ntype = \"integer\"\n\
             [[field]]\nname = \"d\"\nfrom = \"V\"\ntype = \"decimal\"\n\
             [[field]]\nname = \"t\"\nfrom = \"V\"\ntype = \"date\"\n\
             [[field]]\nname = \"ts\"\nfrom = \"V\"\ntype = \"datetime\"\n\
             [[field]]\nname = \"b\"\nfrom = \"V\"\ntype = \"boolean\"\n",
        )
        .unwrap();
        load_dir(dir.path()).unwrap().entities.remove(0)
    })
}

/// Every value through every typed field of one plan.
fn typed(values: &[Option<String>]) -> DataFrame {
    let n = values.len();
    let raw = df!(
        "ID" => (0..n).map(|i| i.to_string()).collect::<Vec<_>>(),
        "V" => values.to_vec(),
        LINE => (2..n as u32 + 2).collect::<Vec<_>>(),
        BAD => vec![None::<&str>; n]
    )
    .unwrap();
    Plan::new(typed_recipe()).apply(raw).unwrap()
}

fn flags(df: &DataFrame, field: &str) -> Vec<bool> {
    df.column(&err_col(field))
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect()
}

fn strings(df: &DataFrame, field: &str) -> Vec<Option<String>> {
    let c = df.column(field).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

/// (what the plan made of each value) as `Expect`s, from the value column and its flag.
fn got<T>(values: Vec<Option<T>>, errs: Vec<bool>) -> Vec<Expect<T>> {
    values
        .into_iter()
        .zip(errs)
        .map(|(v, e)| match (v, e) {
            (Some(v), false) => Expect::Value(v),
            (None, false) => Expect::Empty,
            (None, true) => Expect::TypeError,
            (Some(_), true) => panic!("a value and a type error at once"),
        })
        .collect()
}

fn check_all(values: &[Option<String>]) -> Result<(), TestCaseError> {
    let df = typed(values);
    let v = |i: usize| values[i].as_deref();
    let n = values.len();
    let ints: Vec<Option<i64>> = df.column("i").unwrap().i64().unwrap().iter().collect();
    let decs: Vec<Option<String>> = df
        .column("d")
        .unwrap()
        .decimal()
        .unwrap()
        .physical()
        .iter()
        .map(|u| u.map(cents_text))
        .collect();
    let bools: Vec<Option<bool>> = df.column("b").unwrap().bool().unwrap().iter().collect();
    let cases = [
        (
            "i",
            got(ints, flags(&df, "i"))
                .into_iter()
                .map(|e| map_expect(e, |x| x.to_string()))
                .collect::<Vec<_>>(),
            (0..n)
                .map(|i| map_expect(expect(v(i), ref_integer), |x| x.to_string()))
                .collect::<Vec<_>>(),
        ),
        (
            "d",
            got(decs, flags(&df, "d")),
            (0..n).map(|i| expect(v(i), ref_decimal)).collect(),
        ),
        (
            "t",
            got(strings(&df, "t"), flags(&df, "t")),
            (0..n).map(|i| expect(v(i), ref_date)).collect(),
        ),
        (
            "ts",
            got(strings(&df, "ts"), flags(&df, "ts")),
            (0..n).map(|i| expect(v(i), ref_datetime)).collect(),
        ),
        (
            "b",
            got(bools, flags(&df, "b"))
                .into_iter()
                .map(|e| map_expect(e, |x| x.to_string()))
                .collect(),
            (0..n)
                .map(|i| map_expect(expect(v(i), ref_boolean), |x| x.to_string()))
                .collect(),
        ),
    ];
    for (field, got, want) in cases {
        for i in 0..n {
            prop_assert_eq!(
                &got[i],
                &want[i],
                "field {} (type {:?}), value {:?}",
                field,
                typed_recipe().field(field).map(|f| f.kind),
                values[i]
            );
        }
    }
    Ok(())
}

fn map_expect<T, U>(e: Expect<T>, f: impl Fn(T) -> U) -> Expect<U> {
    match e {
        Expect::Empty => Expect::Empty,
        Expect::Value(v) => Expect::Value(f(v)),
        Expect::TypeError => Expect::TypeError,
    }
}

fn pad() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", "", " ", "  ", "\t"]).prop_map(str::to_string)
}

/// Digits with thousands dots or without, sign, leading zeros, padding.
fn integer_text() -> impl Strategy<Value = String> {
    (
        pad(),
        prop::sample::select(vec!["", "", "-", "+"]),
        prop_oneof![0u64..1000, 0u64..10_000_000, any::<u64>()],
        any::<bool>(),
        0usize..3,
        pad(),
    )
        .prop_map(|(l, sign, n, dots, zeros, r)| {
            let digits = format!("{}{n}", "0".repeat(zeros));
            let body = if dots {
                let b = digits.as_bytes();
                let head = b.len() % 3;
                let mut parts: Vec<&str> = Vec::new();
                if head > 0 {
                    parts.push(&digits[..head]);
                }
                parts.extend(b[head..].chunks(3).map(|c| std::str::from_utf8(c).unwrap()));
                parts.join(".")
            } else {
                digits.clone()
            };
            format!("{l}{sign}{body}{r}")
        })
}

fn decimal_text() -> impl Strategy<Value = String> {
    (integer_text(), prop::option::of("[0-9]{1,8}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{},{f}", i.trim_end()),
        None => i,
    })
}

fn date_text() -> impl Strategy<Value = String> {
    (
        pad(),
        0u32..33,
        0u32..14,
        prop_oneof![1900u32..2100, 0u32..10_000],
        any::<bool>(),
        prop::option::of((0u32..26, 0u32..62, prop::option::of(0u32..62))),
        pad(),
    )
        .prop_map(|(l, d, m, y, zero, time, r)| {
            let two = |x: u32| {
                if zero {
                    format!("{x:02}")
                } else {
                    x.to_string()
                }
            };
            let mut s = format!("{l}{}/{}/{y:04}", two(d), two(m));
            if let Some((h, mi, se)) = time {
                s.push_str(&format!(" {}:{:02}", two(h), mi));
                if let Some(se) = se {
                    s.push_str(&format!(":{se:02}"));
                }
            }
            s + &r
        })
}

fn boolean_text() -> impl Strategy<Value = String> {
    (
        pad(),
        prop::sample::select(vec![
            "S",
            "s",
            "N",
            "n",
            "Si",
            "SI",
            "Sí",
            "SÍ",
            "No",
            "NO",
            "1",
            "0",
            "true",
            "False",
            "Y",
            "yes",
            "Verdadero",
            "FALSO",
            "si ",
            "nope",
            "2",
            "-",
            "o",
        ]),
        pad(),
    )
        .prop_map(|(l, w, r)| format!("{l}{w}{r}"))
}

/// Near misses and junk: the characters numbers and dates are made of, shuffled.
fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[0-9.,+\\-/: ]{0,14}",
        2 => "[0-9]{1,4}[.,][0-9]{1,4}([.,][0-9]{1,4})?",
        1 => "[0-9]{1,2}/[0-9]{1,2}/[0-9]{1,5}( [0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2})?)?",
        1 => "\\PC{0,10}",
        1 => "[0-9٣\u{a0}\u{2007}eE∞]{1,6}",
    ]
}

fn any_value() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.95,
        prop_oneof![
            integer_text(),
            decimal_text(),
            date_text(),
            boolean_text(),
            garbage(),
        ],
    )
}

proptest! {
    #![proptest_config(config(200))]

    /// Each case types 48 values through integer, decimal, date, datetime and boolean.
    #[test]
    fn parsers_agree_with_the_reference(values in prop::collection::vec(any_value(), 48)) {
        check_all(&values)?;
    }
}

#[test]
fn the_reference_reads_the_readme_examples() {
    assert_eq!(ref_integer("35.400"), Some(35400));
    assert_eq!(ref_integer("12.5"), None);
    assert_eq!(ref_decimal("1.234.567,89").as_deref(), Some("1234567.89"));
    assert_eq!(ref_decimal("7,5").as_deref(), Some("7.50"));
    assert_eq!(ref_decimal("-0,00").as_deref(), Some("0.00"));
    assert_eq!(ref_decimal("12.5"), None);
    assert_eq!(
        ref_decimal("1,234"),
        None,
        "three decimals: more than the scale"
    );
    assert_eq!(ref_date("20/11/2026 14:30").as_deref(), Some("2026-11-20"));
    assert_eq!(ref_date("01/02/26"), None);
    assert_eq!(ref_date("31/02/2026"), None);
    assert_eq!(ref_boolean("Sí"), Some(true));
    check_all(
        &[
            "35.400",
            "12.5",
            "1.234.567,89",
            "7,5",
            "20/11/2026 14:30",
            "01/02/26",
            "S",
            "",
            " ",
        ]
        .map(|s| Some(s.to_string())),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// The diff against a naive one.
// ---------------------------------------------------------------------------------------

/// (a: string, n: integer, c: create-only string)
type Row = (Option<String>, Option<i64>, Option<String>);

fn diff_recipe() -> &'static Recipe {
    static RECIPE: OnceLock<Recipe> = OnceLock::new();
    RECIPE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("q.toml"),
            "entity = \"q\"\n[source]\nfiles = [\"q.csv\"]\n[id]\ncolumn = \"ID\"\n\
             [[field]]\nname = \"a\"\nfrom = \"A\"\n\
             [[field]]\nname = \"n\"\nfrom = \"N\"\ntype = \"integer\"\n\
             [[field]]\nname = \"c\"\nfrom = \"C\"\ncreate_only = true\n",
        )
        .unwrap();
        load_dir(dir.path()).unwrap().entities.remove(0)
    })
}

fn row() -> impl Strategy<Value = Row> {
    let text = || {
        prop::option::of(
            prop::sample::select(vec!["", "x", "X", "null", "é", "x ", "0"])
                .prop_map(str::to_string),
        )
    };
    (
        text(),
        prop::option::of(prop::sample::select(vec![0i64, 1, -1, i64::MAX])),
        text(),
    )
}

/// A frame of `rows` (ID order as given) with its comparable `__hash`.
fn frame(rows: &[(String, Row)]) -> DataFrame {
    let mut df = df!(
        ID => rows.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        "a" => rows.iter().map(|(_, r)| r.0.clone()).collect::<Vec<_>>(),
        "n" => rows.iter().map(|(_, r)| r.1).collect::<Vec<_>>(),
        "c" => rows.iter().map(|(_, r)| r.2.clone()).collect::<Vec<_>>()
    )
    .unwrap();
    let h = diff::row_hashes(&df, diff_recipe(), HashScope::Comparable).unwrap();
    df.with_column(UInt64Chunked::from_vec(HASH.into(), h).into_column())
        .unwrap();
    df
}

/// For each ID 0..40: (in prev, prev row, what current does: 0 absent, 1 same as prev,
/// 2 new row, 3 prev row with create-only changed; current row; rejected; order keys).
type Plan40 = Vec<(bool, Row, u8, Row, bool, u16, u16)>;

fn pairs() -> impl Strategy<Value = Plan40> {
    prop::collection::vec(
        (
            any::<bool>(),
            row(),
            0u8..4,
            row(),
            prop::bool::weighted(0.2),
            any::<u16>(),
            any::<u16>(),
        ),
        40,
    )
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn diff_agrees_with_a_naive_diff(plan in pairs(), no_prev in prop::bool::weighted(0.05)) {
        let mut prev: Vec<(u16, String, Row)> = Vec::new();
        let mut cur: Vec<(u16, String, Row)> = Vec::new();
        let mut rejected: BTreeSet<String> = BTreeSet::new();
        for (id, (in_prev, p, what, c, rej, kp, kc)) in plan.into_iter().enumerate() {
            let id = format!("{id:02}");
            if in_prev && !no_prev {
                prev.push((kp, id.clone(), p.clone()));
            }
            let row = match (what, in_prev) {
                (0, _) => None,
                (1, true) => Some(p.clone()),
                (3, true) => Some((p.0.clone(), p.1, c.2.clone())),
                _ => Some(c),
            };
            match row {
                Some(r) => cur.push((kc, id, r)),
                // A rejected ID has no accepted row this run.
                None if rej => { rejected.insert(id); }
                None => {}
            }
        }
        prev.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        cur.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let prev: Vec<(String, Row)> = prev.into_iter().map(|(_, i, r)| (i, r)).collect();
        let cur: Vec<(String, Row)> = cur.into_iter().map(|(_, i, r)| (i, r)).collect();

        // The naive diff.
        let before: BTreeMap<&str, &Row> = prev.iter().map(|(i, r)| (i.as_str(), r)).collect();
        let now: BTreeSet<&str> = cur.iter().map(|(i, _)| i.as_str()).collect();
        let mut inserted = Vec::new();
        let mut updated = Vec::new();
        let mut unchanged = 0;
        for (k, (id, r)) in cur.iter().enumerate() {
            match before.get(id.as_str()) {
                None => inserted.push(k as u32),
                Some(p) => {
                    let mut fields = Vec::new();
                    if p.0 != r.0 { fields.push("a".to_string()); }
                    if p.1 != r.1 { fields.push("n".to_string()); }
                    if fields.is_empty() { unchanged += 1 } else { updated.push((k as u32, fields)) }
                }
            }
        }
        let deleted: Vec<String> = prev.iter()
            .filter(|(i, _)| !now.contains(i.as_str()) && !rejected.contains(i))
            .map(|(i, _)| i.clone())
            .collect();
        let carried: Vec<u32> = prev.iter().enumerate()
            .filter(|(_, (i, _))| !now.contains(i.as_str()) && rejected.contains(i))
            .map(|(j, _)| j as u32)
            .collect();

        let new_df = frame(&cur);
        let prev_df = (!no_prev).then(|| frame(&prev));
        let rejected_set: rustc_hash::FxHashSet<String> = rejected.iter().cloned().collect();
        let cs = diff::diff(diff_recipe(), &new_df, prev_df.as_ref(), &rejected_set).unwrap();
        prop_assert_eq!(&cs.inserted, &inserted);
        prop_assert_eq!(&cs.updated, &updated);
        prop_assert_eq!(cs.unchanged, unchanged);
        prop_assert_eq!(&cs.deleted, &deleted);
        prop_assert_eq!(&cs.carried, &carried);

        // The next snapshot holds this run's rows, then the carried ones, nothing else.
        let next = diff::next_snapshot(&new_df, prev_df.as_ref(), &cs.carried).unwrap();
        let ids: Vec<String> = next.column(ID).unwrap().str().unwrap().iter()
            .map(|i| i.unwrap().to_string()).collect();
        let mut want: Vec<String> = cur.iter().map(|(i, _)| i.clone()).collect();
        want.extend(carried.iter().map(|&j| prev[j as usize].0.clone()));
        prop_assert_eq!(ids, want);
    }
}
