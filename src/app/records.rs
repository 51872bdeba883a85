//! Record-level reuse: in a changed file most records are the ones of last time, and a record
//! the recipe already typed into a clean accepted row need not be typed again.
//!
//! The reader keys each record by a hash of the values the recipe reads ([`REC`]); here the
//! key is mixed with the recipe key (compiled recipe, guard and program, see `reuse`), so a
//! key names "these values under this recipe". The snapshot keeps the key of each row that
//! was accepted without any warning (`validate` clears it otherwise). A record of this run
//! whose key is in the snapshot gets that snapshot row as its typed row, with the row hash
//! the diff computed for it; every other record (new or changed, rejected, skipped or warned
//! last time, or typed under another recipe) goes through the plan.
//!
//! Everything after typing runs over all rows as on a full pass: uniqueness and references
//! are checked for every row (a reused row whose parent is gone is rejected), so a run that
//! reuses records gives exactly the counts, rejects and CRM of one that does not.

use polars::prelude::*;
use rustc_hash::FxHashMap as HashMap;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config::Recipe;
use crate::model::{BAD, HASH, LINE, REC};
use crate::transform::{Plan, ID, RAW_ID};

/// A file's rows typed, and how many of them were taken from the snapshot.
pub(super) struct Typed {
    /// The plan's columns, then [`REC`] and [`HASH`] (the snapshot's row hash for a reused
    /// row, null for a typed one).
    pub frame: DataFrame,
    pub reused: usize,
}

/// Makes the reader's record keys in `raw` specific to `recipe_key`.
pub(super) fn key_records(raw: &mut DataFrame, recipe_key: &str) -> PolarsResult<()> {
    let seed = xxh3_64_with_seed(recipe_key.as_bytes(), 0x7265_6331);
    let keys: UInt64Chunked = raw
        .column(REC)?
        .u64()?
        .iter()
        .map(|k| k.map(|k| xxh3_64_with_seed(&k.to_le_bytes(), seed)))
        .collect();
    raw.with_column(keys.with_name(REC.into()).into_column())?;
    Ok(())
}

/// The typed rows of `raw` (keyed by [`key_records`]), in file order: each record whose key a
/// row of `prev` carries reuses that row, the others go through `plan`. With `prev` `None`
/// (a first load, or a full recomputation) every record is typed.
pub(super) fn typed_rows(
    recipe: &Recipe,
    plan: &Plan,
    raw: &DataFrame,
    prev: Option<&DataFrame>,
) -> PolarsResult<Typed> {
    let keys = raw.column(REC)?.u64()?;
    let hits = match prev.filter(|p| reusable_columns(recipe, p)) {
        Some(p) => matches(keys, p)?,
        None => Vec::new(),
    };
    let reused = hits.iter().filter(|h| h.is_some()).count();
    let Some(prev) = prev.filter(|_| reused > 0) else {
        let mut frame = plan.apply(raw.clone())?;
        frame.with_column(raw.column(REC)?.clone())?;
        frame.with_column(Column::full_null(
            HASH.into(),
            raw.height(),
            &DataType::UInt64,
        ))?;
        return Ok(Typed { frame, reused: 0 });
    };
    let fresh_mask: BooleanChunked = hits.iter().map(|h| Some(h.is_none())).collect();
    let fresh = plan.apply(raw.filter(&fresh_mask)?)?;
    // Each typed column is gathered once, in file order, from the snapshot's rows followed
    // by the freshly typed ones; what the reader already has in file order is taken as is.
    let n_prev = prev.height() as IdxSize;
    let mut next_fresh = 0 as IdxSize;
    let mut flag_at = Vec::with_capacity(hits.len());
    let at: Vec<IdxSize> = hits
        .iter()
        .map(|h| match h {
            Some(j) => {
                flag_at.push(0);
                *j as IdxSize
            }
            None => {
                next_fresh += 1;
                flag_at.push(next_fresh);
                n_prev + next_fresh - 1
            }
        })
        .collect();
    let at = IdxCa::from_vec("at".into(), at);
    let flag_at = IdxCa::from_vec("flag_at".into(), flag_at);
    let id_column = raw.select([recipe.id.column.as_str()])?;
    let mut cols = Vec::with_capacity(fresh.width() + 2);
    for field in fresh.schema().iter_fields() {
        let name = field.name().as_str();
        let dtype = field.dtype();
        let col = match name {
            // A reused record had no read problem: its `__bad` is the reader's null.
            LINE | BAD => raw.column(name)?.clone(),
            RAW_ID => plan.raw_ids(id_column.clone())?,
            _ => match prev.column(name) {
                Ok(c) => gather(c, fresh.column(name)?, dtype, &at)?,
                // A flag column: a row accepted without a warning raised none.
                Err(_) if dtype == &DataType::Boolean => {
                    let none = Column::new(field.name().clone(), [false]);
                    gather(&none, fresh.column(name)?, dtype, &flag_at)?
                }
                Err(e) => return Err(e),
            },
        };
        cols.push(col);
    }
    cols.push(raw.column(REC)?.clone());
    let no_hash = Column::full_null(HASH.into(), fresh.height(), &DataType::UInt64);
    cols.push(match prev.column(HASH) {
        Ok(h) => gather(h, &no_hash, &DataType::UInt64, &at)?,
        Err(_) => Column::full_null(HASH.into(), raw.height(), &DataType::UInt64),
    });
    let frame = DataFrame::new(raw.height(), cols)?;
    Ok(Typed { frame, reused })
}

/// `at` taken from `first` (as `dtype`) followed by `then`.
fn gather(first: &Column, then: &Column, dtype: &DataType, at: &IdxCa) -> PolarsResult<Column> {
    let mut source = first.cast(dtype)?.take_materialized_series();
    source.append(then.as_materialized_series())?;
    Ok(source
        .take(at)?
        .with_name(then.name().clone())
        .into_column())
}

/// Whether `prev` holds what a reused row is made of: keys and every typed column.
fn reusable_columns(recipe: &Recipe, prev: &DataFrame) -> bool {
    prev.column(REC).is_ok()
        && prev.column(ID).is_ok()
        && recipe.fields.iter().all(|f| prev.column(&f.name).is_ok())
}

/// For each record, the row of `prev` carrying its key. A key two rows of `prev` carry
/// (which a clean snapshot never has) reuses neither.
fn matches(keys: &UInt64Chunked, prev: &DataFrame) -> PolarsResult<Vec<Option<u32>>> {
    let prev_keys = prev.column(REC)?.u64()?;
    let mut at: HashMap<u64, u32> =
        HashMap::with_capacity_and_hasher(prev_keys.len(), Default::default());
    for (j, k) in prev_keys.iter().enumerate() {
        if let Some(k) = k {
            at.entry(k)
                .and_modify(|j| *j = u32::MAX)
                .or_insert(j as u32);
        }
    }
    Ok(keys
        .iter()
        .map(|k| {
            k.and_then(|k| at.get(&k).copied())
                .filter(|&j| j != u32::MAX)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_dir;
    use crate::read::read_file;

    /// A sample day's file of `recipe`, read and keyed under `key`.
    fn keyed(recipe: &Recipe, day: &str, file: &str, key: &str) -> DataFrame {
        let path = Path::new("samples").join(day).join(file);
        let mut raw = read_file(&path, recipe).unwrap().frame;
        key_records(&mut raw, key).unwrap();
        raw
    }

    #[test]
    fn reused_rows_are_what_the_plan_types_in_file_order() {
        let recipes = load_dir(Path::new("recipes")).unwrap();
        for (entity, file) in [("clientes", "clientes.csv"), ("unidades", "unidades.xml")] {
            let recipe = recipes
                .entities
                .iter()
                .find(|r| r.entity == entity)
                .unwrap();
            let plan = Plan::new(recipe);
            // Last time's snapshot: the first day's rows as typed, each with a row hash
            // that tells it apart (its position), and the record key of those that raised
            // no flag (validation keeps no other).
            let first = keyed(recipe, "2026-11-20", file, "k");
            let mut typed = typed_rows(recipe, &plan, &first, None).unwrap();
            assert_eq!(typed.reused, 0);
            let frame = &typed.frame;
            let mut flagged = frame.column(BAD).unwrap().is_not_null();
            for c in frame.get_column_names() {
                if c.starts_with("__err.")
                    || c.starts_with("__unmapped.")
                    || c.starts_with("__rule.")
                {
                    flagged = &flagged | frame.column(c).unwrap().bool().unwrap();
                }
            }
            assert!(flagged.any(), "{entity}: the sample has rows with problems");
            let clean_keys = frame
                .column(REC)
                .unwrap()
                .u64()
                .unwrap()
                .set(&flagged, None)
                .unwrap();
            typed.frame.with_column(clean_keys.into_column()).unwrap();
            let mut prev = typed
                .frame
                .select(
                    std::iter::once(ID)
                        .chain(recipe.fields.iter().map(|f| f.name.as_str()))
                        .chain([REC]),
                )
                .unwrap();
            let n = prev.height() as u64;
            prev.with_column(UInt64Chunked::from_vec(HASH.into(), (0..n).collect()).into_column())
                .unwrap();

            let second = keyed(recipe, "2026-11-21", file, "k");
            let all = typed_rows(recipe, &plan, &second, None).unwrap();
            let some = typed_rows(recipe, &plan, &second, Some(&prev)).unwrap();
            assert!(
                some.reused > second.height() / 2 && some.reused < second.height(),
                "{entity}: {} of {} reused",
                some.reused,
                second.height()
            );
            let typed_cols = |df: &DataFrame| df.drop(HASH).unwrap();
            assert!(
                typed_cols(&some.frame).equals_missing(&typed_cols(&all.frame)),
                "{entity}: reused rows differ from the plan's\n{}\n{}",
                some.frame,
                all.frame
            );
            // A reused row carries the hash of the snapshot row it came from; the others none.
            let keys = some.frame.column(REC).unwrap().u64().unwrap().clone();
            let hashes = some.frame.column(HASH).unwrap().u64().unwrap().clone();
            let prev_keys = prev.column(REC).unwrap().u64().unwrap().clone();
            let mut carried = 0;
            for (k, h) in keys.iter().zip(hashes.iter()) {
                if let Some(h) = h {
                    assert_eq!(prev_keys.get(h as usize), k, "{entity}");
                    carried += 1;
                }
            }
            assert_eq!(carried, some.reused);

            // Under another recipe key no record is the same.
            let other = keyed(recipe, "2026-11-21", file, "another recipe");
            let none = typed_rows(recipe, &plan, &other, Some(&prev)).unwrap();
            assert_eq!(none.reused, 0, "{entity}");
        }
    }

    #[test]
    fn a_key_two_snapshot_rows_carry_reuses_neither() {
        let keys =
            UInt64Chunked::from_iter_options(REC.into(), [Some(1), Some(2), None].into_iter());
        let prev = DataFrame::new(
            3,
            vec![UInt64Chunked::from_iter_options(
                REC.into(),
                [Some(2), Some(1), Some(2)].into_iter(),
            )
            .into_column()],
        )
        .unwrap();
        assert_eq!(matches(&keys, &prev).unwrap(), vec![Some(1), None, None]);
    }
}
