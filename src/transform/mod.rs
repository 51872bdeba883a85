//! A compiled recipe as one polars lazy plan: every field's cleanup, value map, default and
//! type parsing is an expression, built once per run and executed column-wise over the whole
//! file (no per-row interpretation). The plan never drops rows: besides the typed fields it
//! emits flag columns that `validate` turns into rejects and warnings, so row `i` of the
//! output is row `i` of the file.

use polars::prelude::*;

use crate::config::compile::{Condition, DecimalSpec, Field, FieldInput, Recipe};
use crate::config::files::{CleanStep, FieldType, IdSpec, Unmapped};
use crate::model::{BAD, LINE};

/// The raw ID as written (trimmed), for rejects.
pub const RAW_ID: &str = "__raw_id";
/// The normalised ID every comparison uses.
pub const ID: &str = "id";

/// Flag column: the field had a value that did not parse as its type.
pub fn err_col(field: &str) -> String {
    format!("__err.{field}")
}
/// Flag column: the field's value is not in its map (`unmapped = "warn"`).
pub fn unmapped_col(field: &str) -> String {
    format!("__unmapped.{field}")
}
/// Flag column: the row matches the rule.
pub fn rule_col(rule: &str) -> String {
    format!("__rule.{rule}")
}

/// Whole numbers as exported: `35400`, `35.400`, `-1.234.567`.
const INTEGER: &str = r"^[-+]?(\d+|\d{1,3}(\.\d{3})+)$";
/// Decimal comma numbers with at most `scale` decimals: `1.234.567,89`, `7,5`, `1234`.
/// One more decimal than the recipe keeps is not rounded away but reported (`type.decimal`):
/// the CRM must hold what the dealer's system holds, to the cent.
pub fn decimal_pattern(scale: usize) -> String {
    let fraction = match scale {
        0 => "(,0*)?".to_string(),
        s => format!("(,\\d{{1,{s}}})?"),
    };
    format!(r"^[-+]?(\d+|\d{{1,3}}(\.\d{{3}})+){fraction}$")
}

/// Whitespace runs that `collapse_spaces` rewrites to one space: two or more, or a single
/// one that is not a plain space (tab, NBSP...). Same result as replacing every `\s+`, but a
/// value whose words are already single-spaced has no match and is not copied (most names).
const COLLAPSE: &str = r"\s{2,}|[\s&&[^ ]]";

/// The expressions of one entity, ready to run on any raw frame of that entity.
pub struct Plan {
    exprs: Vec<Expr>,
    rules: Vec<Expr>,
    raw_id: Expr,
}

impl Plan {
    pub fn new(recipe: &Recipe) -> Plan {
        let trimmed_id = null_if_empty(source_col(&recipe.id.column).str().strip_chars(lit(NULL)));
        let raw_id = trimmed_id.clone().alias(RAW_ID);
        let mut exprs = vec![
            col(LINE),
            col(BAD),
            raw_id.clone(),
            normalize_id(trimmed_id, &recipe.id).alias(ID),
        ];
        let mut flags = Vec::new();
        for f in &recipe.fields {
            let (value, err, unmapped) = field_exprs(f);
            exprs.push(value.alias(f.name.as_str()));
            if let Some(err) = err {
                flags.push(err.alias(err_col(&f.name)));
            }
            if let Some(u) = unmapped {
                flags.push(u.alias(unmapped_col(&f.name)));
            }
        }
        exprs.extend(flags);
        let typed: Vec<Expr> = recipe
            .rules
            .iter()
            .map(|r| {
                let v = col(r.field.as_str());
                let c = match &r.condition {
                    Condition::Equals(x) => v.cast(DataType::String).eq(lit(x.as_str())),
                    Condition::NotEquals(x) => v.cast(DataType::String).neq(lit(x.as_str())),
                    Condition::OneOf(xs) => xs
                        .iter()
                        .map(|x| v.clone().cast(DataType::String).eq(lit(x.as_str())))
                        .reduce(|a, b| a.or(b))
                        .unwrap_or(lit(false)),
                    Condition::IsEmpty(true) => v.is_null(),
                    Condition::IsEmpty(false) => v.is_not_null(),
                    Condition::Matches(p) => v
                        .cast(DataType::String)
                        .str()
                        .contains(lit(p.as_str()), false),
                    Condition::LessThan(x) => v.cast(DataType::Float64).lt(lit(*x)),
                    Condition::GreaterThan(x) => v.cast(DataType::Float64).gt(lit(*x)),
                };
                c.fill_null(lit(false)).alias(rule_col(&r.name))
            })
            .collect();
        Plan {
            exprs,
            rules: typed,
            raw_id,
        }
    }

    /// The raw ID as rejects quote it ([`RAW_ID`]), alone: for rows whose typed values are
    /// known without running the plan.
    pub fn raw_ids(&self, raw: DataFrame) -> PolarsResult<Column> {
        let df = raw.lazy().select([self.raw_id.clone()]).collect()?;
        Ok(df.column(RAW_ID)?.clone())
    }

    /// Runs the plan over a raw frame (see `read`). Rules look at typed values, so they are
    /// a second projection over the first one's output, inside the same lazy plan.
    pub fn apply(&self, raw: DataFrame) -> PolarsResult<DataFrame> {
        let typed = raw.lazy().select(self.exprs.clone());
        if self.rules.is_empty() {
            typed.collect()
        } else {
            typed.with_columns(self.rules.clone()).collect()
        }
    }
}

/// A source column by its exact name. Headers are the export's, not ours: polars' `col`
/// would read `*` as every column and `^…$` as a pattern over the names.
fn source_col(name: &str) -> Expr {
    Expr::Column(name.into())
}

fn null_if_empty(e: Expr) -> Expr {
    when(e.clone().eq(lit("")))
        .then(lit(NULL).cast(DataType::String))
        .otherwise(e)
}

/// `000123` → `123` for numeric IDs; upper-case text IDs when asked. Applied to the entity's
/// own IDs and to every reference to it, so both sides always agree.
pub fn normalize_id(e: Expr, id: &IdSpec) -> Expr {
    let mut e = e;
    if id.numeric {
        e = e.str().replace(lit(r"^0+(\d)"), lit("$1"), false);
    }
    if id.uppercase {
        e = e.str().to_uppercase();
    }
    e
}

/// (typed value, parse-error flag, unmapped flag) for one field.
fn field_exprs(f: &Field) -> (Expr, Option<Expr>, Option<Expr>) {
    let mut s = source_col(f.input.column()).str().strip_chars(lit(NULL));
    if let FieldInput::Extract { pattern, group, .. } = &f.input {
        s = s
            .str()
            .extract(lit(pattern.as_str()), *group)
            .str()
            .strip_chars(lit(NULL));
    }
    for step in &f.clean {
        s = match step {
            CleanStep::Trim => s.str().strip_chars(lit(NULL)),
            CleanStep::Lower => s.str().to_lowercase(),
            CleanStep::Upper => s.str().to_uppercase(),
            CleanStep::CollapseSpaces => s.str().replace_all(lit(COLLAPSE), lit(" "), false),
            CleanStep::DigitsOnly => s.str().replace_all(lit(r"\D"), lit(""), false),
        };
    }
    let mut s = null_if_empty(s);
    let mut unmapped = None;
    if !f.map.is_empty() {
        let folded = s.clone().str().to_lowercase();
        let mut chain: Option<ChainedThen> = None;
        let mut first: Option<Then> = None;
        for (k, v) in &f.map {
            let cond = folded.clone().eq(lit(k.as_str()));
            match (first.take(), chain.take()) {
                (None, None) => first = Some(when(cond).then(lit(v.as_str()))),
                (Some(t), None) => chain = Some(t.when(cond).then(lit(v.as_str()))),
                (_, Some(c)) => chain = Some(c.when(cond).then(lit(v.as_str()))),
            }
        }
        let mapped_or_null = match (first, chain) {
            (Some(t), None) => t.otherwise(lit(NULL).cast(DataType::String)),
            (_, Some(c)) => c.otherwise(lit(NULL).cast(DataType::String)),
            _ => unreachable!("map is not empty"),
        };
        match f.unmapped {
            Unmapped::Keep => s = mapped_or_null.fill_null(s),
            Unmapped::Warn => {
                unmapped = Some(
                    s.clone()
                        .is_not_null()
                        .and(mapped_or_null.clone().is_null()),
                );
                s = mapped_or_null;
            }
        }
    }
    if let Some(d) = &f.default {
        s = s.fill_null(lit(d.as_str()));
    }
    if let Some(r) = &f.reference {
        return (normalize_id(s, &r.id), None, unmapped);
    }
    let parsed = match f.kind {
        FieldType::String => return (s, None, unmapped),
        // `.` only as a thousands separator in groups of three: `1.234` is 1234, while
        // `12.5` is not silently read as 125 but reported.
        FieldType::Integer => when(s.clone().str().contains(lit(INTEGER), false))
            .then(s.clone().str().replace_all(lit("."), lit(""), true))
            .otherwise(lit(NULL).cast(DataType::String))
            .cast(DataType::Int64),
        // Exact: the text goes straight to a polars Decimal (an i128 of 10^-scale units),
        // never through a float. More digits than the precision holds is null, so reported.
        FieldType::Decimal => {
            let d = f.decimal.unwrap_or(DecimalSpec::DEFAULT);
            when(
                s.clone()
                    .str()
                    .contains(lit(decimal_pattern(d.scale)), false),
            )
            .then(
                s.clone()
                    .str()
                    .replace_all(lit("."), lit(""), true)
                    .str()
                    .replace(lit(","), lit("."), true),
            )
            .otherwise(lit(NULL).cast(DataType::String))
            .cast(DataType::Decimal(d.precision, d.scale))
        }
        FieldType::Boolean => {
            let b = s.clone().str().to_lowercase();
            let any = |words: &[&str]| {
                words
                    .iter()
                    .map(|w| b.clone().eq(lit(*w)))
                    .reduce(|a, c| a.or(c))
                    .expect("non-empty word list")
            };
            when(any(&[
                "s",
                "si",
                "sí",
                "1",
                "true",
                "y",
                "yes",
                "verdadero",
            ]))
            .then(lit(true))
            .when(any(&["n", "no", "0", "false", "falso"]))
            .then(lit(false))
            .otherwise(lit(NULL).cast(DataType::Boolean))
        }
        // A Date cast to text is ISO `YYYY-MM-DD` without a strftime per value.
        FieldType::Date => first_format(&s, &f.formats, parse_date).cast(DataType::String),
        FieldType::Datetime => first_format(&s, &f.formats, parse_datetime)
            .dt()
            .to_string("%Y-%m-%d %H:%M:%S"),
    };
    let err = s.is_not_null().and(parsed.clone().is_null());
    (parsed, Some(err), unmapped)
}

/// The value parsed by the first format that takes it. Each further format only sees the
/// values the earlier ones left null (the rest are nulls to it, which cost nothing): with
/// `["%d/%m/%Y", "%d/%m/%Y %H:%M"]` a file of plain dates never runs the second parser,
/// whose per-value fallback is the slow path of polars' strptime.
fn first_format(s: &Expr, formats: &[String], parse: fn(Expr, &str) -> Expr) -> Expr {
    let mut formats = formats.iter();
    let Some(first) = formats.next() else {
        return lit(NULL).cast(DataType::String);
    };
    let mut acc = parse(s.clone(), first);
    for fmt in formats {
        let left = when(acc.clone().is_null())
            .then(s.clone())
            .otherwise(lit(NULL).cast(DataType::String));
        acc = acc.fill_null(parse(left, fmt));
    }
    acc
}

fn strptime(fmt: &str) -> StrptimeOptions {
    StrptimeOptions {
        format: Some(fmt.into()),
        strict: false,
        exact: true,
        cache: true,
    }
}

/// A format whose values carry their UTC offset (`-03:00`, `+0100`).
fn has_offset(fmt: &str) -> bool {
    fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z")
}

/// The time-zone rule: a datetime that says its offset is stored as UTC; one that does not is
/// the dealer's wall-clock time, stored as written. polars (without its time-zone tables)
/// parses `%z` but keeps the local time, so the offset is read from the text and taken off
/// here: `2026-11-20T18:00:00-03:00` is `2026-11-20 21:00:00`.
fn to_utc(parsed: Expr, text: Expr) -> Expr {
    let part = |group: usize| {
        text.clone()
            .str()
            .extract(lit(r"([+-])(\d{2}):?(\d{2})$"), group)
    };
    let sign = when(part(1).eq(lit("-")))
        .then(lit(-1i64))
        .otherwise(lit(1i64));
    let minutes = part(2).cast(DataType::Int64).fill_null(lit(0i64)) * lit(60i64)
        + part(3).cast(DataType::Int64).fill_null(lit(0i64));
    (parsed.cast(DataType::Int64) - sign * minutes * lit(60_000i64))
        .cast(DataType::Datetime(TimeUnit::Milliseconds, None))
}

fn has_time(fmt: &str) -> bool {
    fmt.contains("%H") || fmt.contains("%M") || fmt.contains("%S") || fmt.contains("%T")
}

/// The shape a value must have for `fmt`, as an anchored regex, when `fmt` has a four-digit
/// year: chrono's `%Y` also takes `26` as the year 26, so `01/02/26` would load as 0026-02-01
/// instead of being rejected (the contract says `yyyy`); and `%S` takes `60`. Other
/// specifiers stay permissive.
fn year_shape(fmt: &str) -> Option<String> {
    if !fmt.contains("%Y") {
        return None;
    }
    let mut re = String::from("^");
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            re.push_str(&regex::escape(&c.to_string()));
            continue;
        }
        re.push_str(match chars.next() {
            Some('Y') => r"[0-9]{4}",
            Some('y' | 'd' | 'm' | 'H' | 'M' | 'e') => r"\s?[0-9]{1,2}",
            // chrono takes second 60 (a leap second) and rolls `12:36:60` over to 12:37:00:
            // a made-up time, not what the export said.
            Some('S') => r"\s?[0-5]?[0-9]",
            Some('%') => "%",
            // Month names, fractions, offsets...: anything, strptime decides.
            _ => ".*?",
        });
    }
    re.push('$');
    Some(re)
}

/// Null where the value does not have `fmt`'s four-digit year, else `parsed`.
fn four_digit_year(s: Expr, fmt: &str, parsed: Expr) -> Expr {
    match year_shape(fmt) {
        Some(re) => when(s.str().contains(lit(re), true))
            .then(parsed)
            .otherwise(lit(NULL)),
        None => parsed,
    }
}

/// A date field accepts a timestamp too (`dd/mm/yyyy hh:mm`) and keeps its day.
fn parse_date(s: Expr, fmt: &str) -> Expr {
    if has_time(fmt) {
        parse_datetime(s, fmt).dt().date()
    } else {
        four_digit_year(s.clone(), fmt, s.str().to_date(strptime(fmt)))
    }
}

fn parse_datetime(s: Expr, fmt: &str) -> Expr {
    let parsed = parse_datetime_any_year(s.clone(), fmt);
    four_digit_year(s, fmt, parsed)
}

fn parse_datetime_any_year(s: Expr, fmt: &str) -> Expr {
    if has_time(fmt) {
        let parsed = s.clone().str().to_datetime(
            Some(TimeUnit::Milliseconds),
            None,
            strptime(fmt),
            lit("raise"),
        );
        if has_offset(fmt) {
            to_utc(parsed, s)
        } else {
            parsed
        }
    } else {
        s.str()
            .to_date(strptime(fmt))
            .cast(DataType::Datetime(TimeUnit::Milliseconds, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;

    /// One-recipe workspace with the given fields; returns the compiled recipe.
    fn recipe(fields: &str) -> Recipe {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            format!("entity = \"t\"\n[source]\nfiles = [\"t.csv\"]\n[id]\ncolumn = \"ID\"\nnumeric = true\n{fields}"),
        )
        .unwrap();
        load_dir(dir.path()).unwrap().entities.remove(0)
    }

    fn run(r: &Recipe, col_name: &str, values: &[Option<&str>]) -> DataFrame {
        let n = values.len();
        let raw = df!(
            "ID" => (0..n).map(|i| format!("{:04}", i)).collect::<Vec<_>>(),
            col_name => values.to_vec(),
            LINE => (0..n as u32).collect::<Vec<_>>(),
            BAD => vec![None::<&str>; n]
        )
        .unwrap();
        Plan::new(r).apply(raw).unwrap()
    }

    fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
        let s = df.column(c).unwrap().cast(&DataType::String).unwrap();
        s.str()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn flags(df: &DataFrame, c: &str) -> Vec<bool> {
        df.column(c)
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect()
    }

    #[test]
    fn numeric_ids_lose_leading_zeros_only() {
        let r = recipe("");
        let df = run(&r, "x", &[None, None]);
        assert_eq!(strs(&df, ID), [Some("0".into()), Some("1".into())]);
        assert_eq!(
            strs(&df, RAW_ID),
            [Some("0000".into()), Some("0001".into())]
        );
    }

    #[test]
    fn decimals_take_thousand_dots_and_decimal_commas_and_flag_the_rest() {
        let r = recipe("[[field]]\nname = \"v\"\nfrom = \"V\"\ntype = \"decimal\"\n");
        let df = run(
            &r,
            "V",
            &[
                Some("1.234.567,89"),
                Some(" 7,5 "),
                Some("12.5"),
                Some(""),
                None,
                Some("-3"),
            ],
        );
        assert_eq!(
            decimals(&df, "v"),
            [
                Some("1234567.89".into()),
                Some("7.50".into()),
                None,
                None,
                None,
                Some("-3.00".into())
            ]
        );
        assert_eq!(
            flags(&df, &err_col("v")),
            [false, false, true, false, false, false]
        );
    }

    /// A decimal column's values as their exact text.
    fn decimals(df: &DataFrame, c: &str) -> Vec<Option<String>> {
        let col = df.column(c).unwrap();
        let DataType::Decimal(_, scale) = col.dtype() else {
            panic!("{c} is {:?}, not a decimal", col.dtype())
        };
        col.decimal()
            .unwrap()
            .physical()
            .iter()
            .map(|v| v.map(|v| crate::support::decimal::to_text(v, *scale)))
            .collect()
    }

    #[test]
    fn decimals_are_exact_and_more_decimals_than_the_scale_are_flagged_not_rounded() {
        let r = recipe(
            "[[field]]\nname = \"v\"\nfrom = \"V\"\ntype = \"decimal\"\n\
             [[field]]\nname = \"r\"\nfrom = \"V\"\ntype = \"decimal\"\nscale = 4\nprecision = 6\n",
        );
        let df = run(
            &r,
            "V",
            &[
                Some("40.850.171,87"),
                Some("9.999.999.999.999,99"),
                Some("1,005"),
                Some("0,1"),
                Some("12,3456"),
            ],
        );
        assert_eq!(
            decimals(&df, "v"),
            [
                Some("40850171.87".into()),
                Some("9999999999999.99".into()),
                None,
                Some("0.10".into()),
                None
            ]
        );
        assert_eq!(flags(&df, &err_col("v")), [false, false, true, false, true]);
        // scale 4, precision 6: at most two digits before the comma.
        assert_eq!(
            decimals(&df, "r"),
            [
                None,
                None,
                Some("1.0050".into()),
                Some("0.1000".into()),
                Some("12.3456".into())
            ]
        );
        assert_eq!(flags(&df, &err_col("r")), [true, true, false, false, false]);
    }

    #[test]
    fn datetimes_without_a_zone_stay_as_written_and_offsets_become_utc() {
        let r = recipe(
            "[[field]]\nname = \"t\"\nfrom = \"V\"\ntype = \"datetime\"\n\
             formats = [\"%Y-%m-%dT%H:%M:%S%z\", \"%d/%m/%Y %H:%M\"]\n",
        );
        let df = run(
            &r,
            "V",
            &[
                Some("2026-11-20T18:00:00-03:00"),
                Some("20/11/2026 18:00"),
                Some("2026-11-20T23:30:00+00:00"),
            ],
        );
        assert_eq!(
            strs(&df, "t"),
            [
                Some("2026-11-20 21:00:00".into()),
                Some("2026-11-20 18:00:00".into()),
                Some("2026-11-20 23:30:00".into())
            ]
        );
    }

    #[test]
    fn integers_dates_and_booleans_parse_the_export_formats() {
        let r = recipe(
            "[[field]]\nname = \"km\"\nfrom = \"V\"\ntype = \"integer\"\n\
             [[field]]\nname = \"d\"\nfrom = \"V\"\ntype = \"date\"\n\
             [[field]]\nname = \"b\"\nfrom = \"V\"\ntype = \"boolean\"\n",
        );
        let df = run(
            &r,
            "V",
            &[
                Some("35.400"),
                Some("20/11/2026 14:30"),
                Some("1/2/2020"),
                Some("Si"),
                Some("N"),
                Some("31/02/2026"),
            ],
        );
        assert_eq!(strs(&df, "km")[0], Some("35400".into()));
        assert_eq!(
            strs(&df, "d")[1..3],
            [Some("2026-11-20".into()), Some("2020-02-01".into())]
        );
        assert_eq!(strs(&df, "d")[5], None);
        assert!(flags(&df, &err_col("d"))[5]);
        let b: Vec<Option<bool>> = df.column("b").unwrap().bool().unwrap().iter().collect();
        assert_eq!(b[3..5], [Some(true), Some(false)]);
    }

    #[test]
    fn a_two_digit_year_is_an_error_not_the_year_26() {
        let r = recipe(
            "[[field]]\nname = \"d\"\nfrom = \"V\"\ntype = \"date\"\n\
             [[field]]\nname = \"t\"\nfrom = \"V\"\ntype = \"datetime\"\n",
        );
        let df = run(
            &r,
            "V",
            &[
                Some("01/02/26"),
                Some("01/02/2026"),
                Some("01/02/26 10:00"),
                Some("1/2/2026 10:00"),
                Some("26-02-01"),
                Some("01/02/20266"),
            ],
        );
        assert_eq!(
            strs(&df, "d"),
            [
                None,
                Some("2026-02-01".into()),
                None,
                Some("2026-02-01".into()),
                None,
                None
            ]
        );
        assert_eq!(
            flags(&df, &err_col("d")),
            [true, false, true, false, true, true]
        );
        assert_eq!(
            flags(&df, &err_col("t")),
            [true, false, true, false, true, true]
        );
        assert_eq!(
            strs(&df, "t")[3],
            Some("2026-02-01 10:00:00".into()),
            "a four-digit year with a time still parses"
        );
    }

    #[test]
    fn collapse_spaces_matches_every_whitespace_run_but_single_spaces() {
        let r = recipe("[[field]]\nname = \"v\"\nfrom = \"V\"\nclean = [\"collapse_spaces\"]\n");
        let df = run(
            &r,
            "V",
            &[
                Some("Juan  Carlos"),
                Some("Juan Carlos"),
                Some("Juan\tCarlos"),
                Some("Juan\u{a0}Carlos"),
                Some("Juan \u{a0}\t Carlos   Pérez"),
                Some("Juan\r\nCarlos"),
            ],
        );
        let once = Some("Juan Carlos".to_string());
        assert_eq!(
            strs(&df, "v"),
            [
                once.clone(),
                once.clone(),
                once.clone(),
                once.clone(),
                Some("Juan Carlos Pérez".into()),
                once
            ]
        );
    }

    #[test]
    fn year_shapes_follow_the_format() {
        assert_eq!(year_shape("%d/%m/%y"), None);
        let re = regex::Regex::new(&year_shape("%d/%m/%Y %H:%M").unwrap()).unwrap();
        assert!(re.is_match("1/2/2026 9:05"));
        assert!(!re.is_match("1/2/26 9:05"));
        assert!(regex::Regex::new(&year_shape("%Y.%m.%d").unwrap())
            .unwrap()
            .is_match("2026.02.01"));
        assert!(!regex::Regex::new(&year_shape("%Y.%m.%d").unwrap())
            .unwrap()
            .is_match("2026x02x01"));
        let secs = regex::Regex::new(&year_shape("%d/%m/%Y %H:%M:%S").unwrap()).unwrap();
        assert!(secs.is_match("1/2/2026 9:05:59"));
        assert!(!secs.is_match("1/2/2026 9:05:60"));
    }

    /// Found by `tests/properties_config.rs`: a header such as `^(x)$` or `*` was a polars
    /// pattern or wildcard, so a run failed with "not found" (exit 1) after compiling.
    #[test]
    fn source_headers_are_names_not_patterns() {
        let r = recipe(
            "[[field]]\nname = \"a\"\nfrom = \"^(x)$\"\n\
             [[field]]\nname = \"b\"\nfrom = \"*\"\n",
        );
        let raw = df!(
            "ID" => ["1", "2"],
            "^(x)$" => [Some("p"), None],
            "*" => [Some("q"), Some("r")],
            "x" => ["no", "no"],
            LINE => [2u32, 3],
            BAD => [None::<&str>, None]
        )
        .unwrap();
        let df = Plan::new(&r).apply(raw).unwrap();
        assert_eq!(strs(&df, "a"), [Some("p".into()), None]);
        assert_eq!(strs(&df, "b"), [Some("q".into()), Some("r".into())]);
    }

    /// Found by `tests/properties_config.rs`: `12:36:60` loaded as 12:37:00.
    #[test]
    fn second_sixty_is_a_type_error_not_the_next_minute() {
        let r = recipe("[[field]]\nname = \"t\"\nfrom = \"V\"\ntype = \"datetime\"\n");
        let df = run(
            &r,
            "V",
            &[Some("03/05/4503 12:36:60"), Some("03/05/4503 12:36:59")],
        );
        assert_eq!(strs(&df, "t"), [None, Some("4503-05-03 12:36:59".into())]);
        assert_eq!(flags(&df, &err_col("t")), [true, false]);
    }

    #[test]
    fn cleanup_extract_map_and_default_compose() {
        let r = recipe(
            "[[field]]\nname = \"apellido\"\nextract = { from = \"V\", pattern = '^([^,]+),', group = 1 }\n\
             [[field]]\nname = \"tel\"\nfrom = \"V\"\nclean = [\"digits_only\"]\n\
             [[field]]\nname = \"tipo\"\nfrom = \"V\"\nmap = { \"persona\" = \"P\" }\nunmapped = \"warn\"\n\
             [[field]]\nname = \"pais\"\nfrom = \"V\"\nclean = [\"upper\", \"collapse_spaces\"]\ndefault = \"AR\"\n",
        );
        let df = run(
            &r,
            "V",
            &[
                Some(" Núñez ,  José "),
                Some("(011) 4555-1234"),
                Some("PERSONA"),
                None,
            ],
        );
        assert_eq!(strs(&df, "apellido")[0], Some("Núñez".into()));
        assert_eq!(strs(&df, "apellido")[1], None);
        assert_eq!(strs(&df, "tel")[1], Some("01145551234".into()));
        assert_eq!(strs(&df, "tipo")[2..4], [Some("P".into()), None]);
        assert_eq!(
            flags(&df, &unmapped_col("tipo")),
            [true, true, false, false]
        );
        assert_eq!(strs(&df, "pais")[0], Some("NÚÑEZ , JOSÉ".into()));
        assert_eq!(strs(&df, "pais")[3], Some("AR".into()));
    }
}
