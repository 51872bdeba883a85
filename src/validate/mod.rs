//! Validation turns the typed frame of one file into accepted rows and explained rejects.
//! Pure: no I/O, the reference sets come in as arguments.
//!
//! The rules, in the order a row meets them (a rejected row collects every error it has):
//! - `read.fields`: the CSV row has a different number of fields than the header; other
//!   `read.<rule>` errors as the reader names them in `__bad` (`read::split_bad`).
//! - `id.empty`; `id.duplicate` (every row sharing the normalised ID; the reason gives the
//!   count and the first few lines, so it stays small however many rows share the ID).
//! - `required`: a required field is empty; `type.<type>`: a required field does not parse.
//!   In an optional field a bad value is emptied and the row gets a warning `type.<type>`.
//! - `map.unknown` (warning): a value outside the field's map when the recipe asks to warn.
//! - `rule.<name>`: a recipe row rule; `reject` rejects, `skip` drops the row as not there.
//! - `ref.missing`: a required reference not among the target's accepted rows (so rejects
//!   cascade parent → child); `ref.optional_missing` (warning): the link is emptied.
//!
//! Warnings are reported only for rows that end accepted.

pub mod drift;

use std::collections::BTreeMap;

// IDs are hashed millions of times per run; FxHash is several times faster than SipHash
// and these maps never hold attacker-chosen keys that matter for DoS.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use polars::prelude::*;

use crate::config::files::RuleAction;
use crate::config::Recipe;
use crate::model::HASH;
pub use crate::model::{Issue, Severity};
use crate::read::{BAD, LINE, REC};
use crate::transform::{err_col, rule_col, unmapped_col, ID, RAW_ID};

/// A value quoted in a reason (or a rejected row's ID) is cut to this many characters.
const MAX_VALUE_CHARS: usize = 200;
/// No reason is longer than this many characters.
const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub read: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub skipped: usize,
    pub warnings: usize,
}

pub struct Validated {
    /// `id` + the recipe's fields, accepted rows only, in file order.
    pub accepted: DataFrame,
    /// Physical line of each accepted row (same order as `accepted`).
    pub lines: Vec<u32>,
    /// Keys ([`id_key`]) of the accepted IDs.
    pub accepted_ids: IdSet,
    /// Normalised IDs of rejected rows: their last accepted version must survive this run.
    pub rejected_ids: HashSet<String>,
    pub issues: Vec<Issue>,
    pub counts: Counts,
    /// Per accepted row, its record key ([`REC`]) when the row was accepted without any
    /// warning (its typed values are the record's, untouched): the key the snapshot keeps so
    /// the same record is not typed again. `None` when the typed frame had no keys.
    pub record_keys: Option<Column>,
    /// Per accepted row, the row hash its typed row already had (a reused record's, from the
    /// snapshot), null where it must be computed. `None` when the typed frame had none.
    pub known_hashes: Option<Column>,
}

/// Lines a duplicate-ID reason lists before `…`; the count says how many there are.
pub const DUPLICATE_LINES_SHOWN: usize = 5;

/// `Nro Cliente 123 appears on 3 rows (lines 2, 7, 9)`; past `DUPLICATE_LINES_SHOWN`
/// lines the rest is `…`, so the reason's size does not grow with the number of rows.
fn duplicate_reason(column: &str, id: &str, lines: impl ExactSizeIterator<Item = u32>) -> String {
    let count = lines.len();
    let mut shown: Vec<String> = lines
        .take(DUPLICATE_LINES_SHOWN)
        .map(|l| l.to_string())
        .collect();
    if count > DUPLICATE_LINES_SHOWN {
        shown.push("…".into());
    }
    format!(
        "{column} {id} appears on {count} rows (lines {})",
        shown.join(", ")
    )
}

/// Reference sets hold IDs as keys: a reference whose key is a 2^-64 look-alike of an
/// accepted ID's is taken for it (about once in 10^13 runs of a million rows).
pub use crate::support::id_index::id_key;
use crate::support::id_index::{keys_of, IdIndex};

/// The keys ([`id_key`]) of the IDs an entity offers to references.
pub type IdSet = HashSet<u64>;

/// Accepted IDs per entity that references may point to.
pub type RefSets = HashMap<String, IdSet>;

/// One number for a set of IDs, whatever their order: two sets with the same fingerprint are
/// (but for a 2^-64 chance) the same set. A child whose parents' fingerprints did not change
/// would get the same reference checks. (The sum of the keys and their count: the number
/// earlier releases computed from the IDs themselves, so their records stand.)
pub fn ids_fingerprint(keys: &IdSet) -> u64 {
    let sum = keys.iter().fold(0u64, |acc, k| acc.wrapping_add(*k));
    sum ^ (keys.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The keys of `ids`.
pub fn id_keys<'a>(ids: impl IntoIterator<Item = &'a str>) -> IdSet {
    ids.into_iter().map(id_key).collect()
}

/// Validates one file's typed frame. `raw` is the reader's frame (for values in reasons).
pub fn validate(
    recipe: &Recipe,
    file: &str,
    typed: &DataFrame,
    raw: &DataFrame,
    refs: &RefSets,
) -> PolarsResult<Validated> {
    let n = typed.height();
    let lines: Vec<u32> = typed
        .column(LINE)?
        .u32()?
        .iter()
        .map(|l| l.unwrap_or(0))
        .collect();
    let ids = typed.column(ID)?.str()?.clone();
    let raw_ids = typed.column(RAW_ID)?.str()?.clone();
    let mut problems: BTreeMap<usize, Vec<(Severity, String, String)>> = BTreeMap::new();
    // Every reason is bounded here, whatever built it: a runaway value must not be copied
    // whole into the rejects table, the workbook and the alerts.
    let mut add = |row: usize, sev: Severity, rule: &str, reason: String| {
        let reason = match crate::read::clip(&reason, MAX_REASON_CHARS) {
            std::borrow::Cow::Borrowed(_) => reason,
            std::borrow::Cow::Owned(cut) => cut,
        };
        problems
            .entry(row)
            .or_default()
            .push((sev, rule.to_string(), reason));
    };

    let bad = typed.column(BAD)?;
    if bad.null_count() < n {
        for (i, bad) in bad.str()?.iter().enumerate() {
            if let Some(b) = bad {
                let (rule, reason) = crate::read::split_bad(b);
                add(i, Severity::Error, rule, reason.to_string());
            }
        }
    }

    // IDs: empty and duplicated (after normalisation, so 000123 and 123 collide).
    for (i, id) in ids.iter().enumerate() {
        if id.is_none() {
            add(
                i,
                Severity::Error,
                "id.empty",
                format!("{} is empty", recipe.id.column),
            );
        }
    }
    let keys = keys_of(&ids);
    let mut dups: HashMap<&str, Vec<usize>> = HashMap::default();
    IdIndex::new(&ids, &keys, |first, i| {
        let id = ids.get(i as usize).unwrap_or("");
        dups.entry(id)
            .or_insert_with(|| vec![first as usize])
            .push(i as usize);
    });
    for (id, rows) in &dups {
        // One reason per ID, of bounded size, shared by its rows: listing every line in
        // every row's reason would be quadratic (20,000 copies of one ID: gigabytes).
        let reason = duplicate_reason(&recipe.id.column, id, rows.iter().map(|&r| lines[r]));
        for &r in rows {
            add(r, Severity::Error, "id.duplicate", reason.clone());
        }
    }

    // Fields: required, type, map.
    for f in &recipe.fields {
        let values = typed.column(&f.name)?;
        let err = typed
            .column(&err_col(&f.name))
            .ok()
            .map(|c| c.bool().cloned());
        let err = match err {
            Some(r) => Some(r?),
            None => None,
        };
        let raw_col = raw.column(f.input.column()).ok();
        let raw_value = |i: usize| -> String {
            raw_col
                .and_then(|c| c.str().ok())
                .and_then(|c| c.get(i))
                .map(|v| crate::read::clip(v.trim(), MAX_VALUE_CHARS).into_owned())
                .unwrap_or_default()
        };
        let rule = format!("type.{}", f.kind.as_str());
        let expected = match f.kind {
            crate::config::FieldType::Date | crate::config::FieldType::Datetime => {
                format!("a {} as {}", f.kind.as_str(), f.formats.join(" or "))
            }
            crate::config::FieldType::Decimal => {
                let scale = f.decimal.map_or(2, |d| d.scale);
                format!("a number like 1.234,56 with at most {scale} decimals")
            }
            crate::config::FieldType::Integer => "a whole number like 35.400".into(),
            crate::config::FieldType::Boolean => "S/N, Si/No or 1/0".into(),
            crate::config::FieldType::String => "text".into(),
        };
        let is_err = |i: usize| err.as_ref().and_then(|e| e.get(i)).unwrap_or(false);
        // Why a value did not parse: for a decimal that is a number with too many digits,
        // say which limit it broke (it is never rounded to fit).
        let why = |i: usize| -> String {
            let raw = raw_value(i);
            f.decimal
                .and_then(|d| decimal_overflow(&raw, d))
                .unwrap_or_else(|| format!("is not {expected}"))
        };
        if f.required {
            for i in rows_set(&values.is_null()) {
                if is_err(i) {
                    add(
                        i,
                        Severity::Error,
                        &rule,
                        format!("{} `{}` {}", f.input.column(), raw_value(i), why(i)),
                    );
                } else {
                    add(
                        i,
                        Severity::Error,
                        "required",
                        format!("{} is empty (required)", f.input.column()),
                    );
                }
            }
        } else if let Some(e) = &err {
            for i in rows_set(e) {
                add(
                    i,
                    Severity::Warning,
                    &rule,
                    format!(
                        "{} `{}` {}; left empty",
                        f.input.column(),
                        raw_value(i),
                        why(i)
                    ),
                );
            }
        }
        if let Ok(u) = typed.column(&unmapped_col(&f.name)) {
            for i in rows_set(u.bool()?) {
                add(
                    i,
                    Severity::Warning,
                    "map.unknown",
                    format!(
                        "{} `{}` is not in the recipe's map; left empty",
                        f.input.column(),
                        raw_value(i)
                    ),
                );
            }
        }
    }

    // Row rules.
    for r in &recipe.rules {
        let sev = match r.action {
            RuleAction::Reject => Severity::Error,
            RuleAction::Skip => Severity::Skip,
        };
        for i in rows_set(typed.column(&rule_col(&r.name))?.bool()?) {
            add(i, sev, &format!("rule.{}", r.name), r.message.clone());
        }
    }

    // References: against the target's accepted rows. Optional misses are emptied.
    let mut emptied: Vec<(String, Vec<bool>)> = Vec::new();
    for f in &recipe.fields {
        let Some(target) = &f.reference else { continue };
        let set = refs.get(&target.entity);
        let mut blank = vec![false; if f.required { 0 } else { n }];
        for (i, v) in typed.column(&f.name)?.str()?.iter().enumerate() {
            let Some(v) = v else { continue };
            if set.is_some_and(|s| s.contains(&id_key(v))) {
                continue;
            }
            if f.required {
                add(
                    i,
                    Severity::Error,
                    "ref.missing",
                    format!(
                        "{} `{}` is not an accepted row of {}",
                        f.input.column(),
                        crate::read::clip(v, MAX_VALUE_CHARS),
                        target.entity
                    ),
                );
            } else {
                blank[i] = true;
                add(
                    i,
                    Severity::Warning,
                    "ref.optional_missing",
                    format!(
                        "{} `{}` is not an accepted row of {}; link left empty",
                        f.input.column(),
                        crate::read::clip(v, MAX_VALUE_CHARS),
                        target.entity
                    ),
                );
            }
        }
        if blank.iter().any(|b| *b) {
            emptied.push((f.name.clone(), blank));
        }
    }

    // Verdicts.
    let mut troubled = vec![false; n];
    for &row in problems.keys() {
        troubled[row] = true;
    }
    let mut keep = vec![true; n];
    let mut issues = Vec::new();
    let mut counts = Counts {
        read: n,
        ..Counts::default()
    };
    let mut rejected_ids = HashSet::default();
    for (row, probs) in problems {
        let errors = probs.iter().any(|p| p.0 == Severity::Error);
        let skipped = !errors && probs.iter().any(|p| p.0 == Severity::Skip);
        if errors {
            counts.rejected += 1;
            keep[row] = false;
            if let Some(id) = ids.get(row) {
                rejected_ids.insert(id.to_string());
            }
        } else if skipped {
            counts.skipped += 1;
            keep[row] = false;
        }
        for (sev, rule, reason) in probs {
            let shown = match (errors, skipped) {
                (true, _) => sev == Severity::Error,
                (false, true) => sev == Severity::Skip,
                (false, false) => true,
            };
            if !shown {
                continue;
            }
            if sev == Severity::Warning {
                counts.warnings += 1;
            }
            issues.push(Issue {
                entity: recipe.entity.clone(),
                file: file.to_string(),
                line: lines[row],
                id: crate::read::clip(raw_ids.get(row).unwrap_or(""), MAX_VALUE_CHARS).into_owned(),
                severity: sev,
                rule,
                reason,
            });
        }
    }
    counts.accepted = n - counts.rejected - counts.skipped;

    let mut out = typed.select(
        std::iter::once(ID.to_string()).chain(recipe.fields.iter().map(|f| f.name.clone())),
    )?;
    for (name, blank) in emptied {
        let mask = BooleanChunked::from_slice("mask".into(), &blank);
        let cleared = out.column(&name)?.str()?.set(&mask, None)?;
        out.with_column(cleared.into_column())?;
    }
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    let accepted = out.filter(&mask)?;
    // A row with a warning was changed (a value emptied) or may be next time: neither its
    // key nor its hash stands for its record.
    let troubled = BooleanChunked::from_slice("troubled".into(), &troubled);
    let untroubled = |name: &str| -> PolarsResult<Option<Column>> {
        let Ok(c) = typed.column(name) else {
            return Ok(None);
        };
        let kept = c.u64()?.set(&troubled, None)?.filter(&mask)?;
        Ok(Some(kept.into_column()))
    };
    let record_keys = untroubled(REC)?;
    let known_hashes = untroubled(HASH)?;
    let accepted_lines: Vec<u32> = lines
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| *l)
        .collect();
    let accepted_ids = keys
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(key, _)| *key)
        .collect();
    Ok(Validated {
        accepted,
        lines: accepted_lines,
        accepted_ids,
        rejected_ids,
        issues,
        counts,
        record_keys,
        known_hashes,
    })
}

/// The rows where `mask` is true, in order. Most flag columns of a clean export have none:
/// those are not walked row by row.
fn rows_set(mask: &BooleanChunked) -> Vec<usize> {
    if !mask.any() {
        return Vec::new();
    }
    mask.iter()
        .enumerate()
        .filter(|(_, v)| *v == Some(true))
        .map(|(i, _)| i)
        .collect()
}

/// For a value shaped like a decimal-comma number that its field cannot hold: which limit it
/// breaks. `None` when it is not such a number at all.
fn decimal_overflow(raw: &str, d: crate::config::DecimalSpec) -> Option<String> {
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let number = NUMBER.get_or_init(|| {
        regex::Regex::new(r"^[-+]?(\d+|\d{1,3}(\.\d{3})+)(,(\d+))?$").expect("valid pattern")
    });
    let caps = number.captures(raw)?;
    let decimals = caps.get(4).map_or(0, |m| m.as_str().len());
    let whole = caps[1].bytes().filter(u8::is_ascii_digit).count();
    let whole = whole
        - caps[1]
            .bytes()
            .take_while(|b| *b == b'0')
            .count()
            .min(whole - 1);
    if decimals > d.scale {
        Some(format!(
            "has {decimals} decimals, more than the {} its field keeps (scale = {}); it is not \
             rounded",
            d.scale, d.scale
        ))
    } else if whole > d.precision - d.scale {
        Some(format!(
            "has {whole} digits before the decimal comma, more than its field holds \
             (precision = {}, scale = {})",
            d.precision, d.scale
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Plan;

    fn recipe() -> Recipe {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            "entity = \"t\"\n[source]\nfiles = [\"t.csv\"]\n[id]\ncolumn = \"ID\"\nnumeric = true\n\
             [[field]]\nname = \"v\"\nfrom = \"V\"\n",
        )
        .unwrap();
        crate::config::load_dir(dir.path())
            .unwrap()
            .entities
            .remove(0)
    }

    fn run(ids: Vec<String>) -> Validated {
        let n = ids.len();
        run_bad(ids, vec![None; n])
    }

    fn run_bad(ids: Vec<String>, bad: Vec<Option<&str>>) -> Validated {
        let n = ids.len();
        let raw = df!(
            "ID" => ids,
            "V" => vec!["x"; n],
            LINE => (2..n as u32 + 2).collect::<Vec<_>>(),
            BAD => bad
        )
        .unwrap();
        let r = recipe();
        let typed = Plan::new(&r).apply(raw.clone()).unwrap();
        validate(&r, "t.csv", &typed, &raw, &RefSets::default()).unwrap()
    }

    #[test]
    fn duplicate_reasons_give_the_count_and_the_first_lines() {
        let v = run(["7", "8", "007", "9", "7"].map(String::from).to_vec());
        assert_eq!(v.counts.rejected, 3);
        let reasons: Vec<(u32, &str)> = v
            .issues
            .iter()
            .map(|i| (i.line, i.reason.as_str()))
            .collect();
        let r = "ID 7 appears on 3 rows (lines 2, 4, 6)";
        assert_eq!(reasons, [(2, r), (4, r), (6, r)]);
    }

    #[test]
    fn accepted_ids_are_the_keys_of_the_accepted_rows_with_the_fingerprint_of_before() {
        let v = run(["1", "2", "002", "3"].map(String::from).to_vec());
        assert_eq!(v.accepted_ids, id_keys(["1", "3"]));
        // What earlier releases recorded for a set of IDs: the sum of each ID's xxh3 (seed
        // 0x1d5) and their count. Records made then must still match.
        let then = |ids: &[&str]| {
            ids.iter().fold(0u64, |a, id| {
                a.wrapping_add(xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0x1d5))
            }) ^ (ids.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        assert_eq!(ids_fingerprint(&v.accepted_ids), then(&["1", "3"]));
        assert_ne!(ids_fingerprint(&id_keys(["1"])), then(&["1", "3"]));
    }

    /// 20,000 rows with one ID used to cost 20,000 reasons of 20,000 lines each (5.2 GB RSS).
    #[test]
    fn twenty_thousand_copies_of_one_id_cost_linear_memory() {
        let n = 20_000;
        let v = run(vec!["123".to_string(); n]);
        assert_eq!(v.counts.rejected, n);
        assert_eq!(v.issues.len(), n);
        let bytes: usize = v.issues.iter().map(|i| i.reason.len()).sum();
        assert!(bytes <= n * 64, "{bytes} bytes of reasons for {n} rows");
        assert_eq!(
            v.issues[0].reason,
            "ID 123 appears on 20000 rows (lines 2, 3, 4, 5, 6, …)"
        );
        assert!(v.issues.iter().all(|i| i.rule == "id.duplicate"));
    }

    /// A runaway reader reason (or any reason) used to be copied whole into the rejects.
    #[test]
    fn reasons_and_ids_are_bounded() {
        let long = format!("read.encoding: {}", "x".repeat(100_000));
        let v = run_bad(
            vec!["9".repeat(50_000), "2".to_string()],
            vec![Some(long.as_str()), None],
        );
        let i = &v.issues[0];
        assert_eq!(i.rule, "read.encoding");
        assert_eq!(i.reason.chars().count(), MAX_REASON_CHARS);
        assert!(i.reason.ends_with('…'));
        assert_eq!(i.id.chars().count(), MAX_VALUE_CHARS);
    }

    #[test]
    fn reader_problems_are_filed_under_the_readers_rule() {
        let v = run_bad(
            ["1", "2", "3"].map(String::from).to_vec(),
            vec![
                Some("read.encoding: byte 3: e9 is not valid UTF-8"),
                Some("row has 3 fields, the header has 2"),
                None,
            ],
        );
        let got: Vec<(&str, &str)> = v
            .issues
            .iter()
            .map(|i| (i.rule.as_str(), i.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("read.encoding", "byte 3: e9 is not valid UTF-8"),
                ("read.fields", "row has 3 fields, the header has 2")
            ]
        );
        assert_eq!(v.counts.rejected, 2);
    }

    #[test]
    fn a_decimal_that_does_not_fit_says_which_limit_it_breaks() {
        let d = crate::config::DecimalSpec {
            precision: 6,
            scale: 2,
        };
        let three = decimal_overflow("1.234,567", d).unwrap();
        assert!(
            three.contains("has 3 decimals") && three.contains("scale = 2"),
            "{three}"
        );
        let long = decimal_overflow("12.345,6", d).unwrap();
        assert!(
            long.contains("5 digits before") && long.contains("precision = 6"),
            "{long}"
        );
        assert_eq!(
            decimal_overflow("0012,5", d),
            None,
            "leading zeros are not digits"
        );
        assert_eq!(decimal_overflow("abc", d), None);
        assert_eq!(decimal_overflow("1.234,56", d), None);
    }
}
