//! Diff of this run's accepted rows against the entity's last accepted snapshot.
//!
//! Each row carries a hash of its comparable fields (create-only fields excluded: they are
//! written once and never count as a change), so an unchanged row costs one hash lookup.
//! A row rejected in this run is not a delete: its last accepted version is carried into
//! the next snapshot, as are deletes held by the guard (they are still in the CRM).

pub mod guard;

use rustc_hash::FxHashSet as HashSet;

use polars::prelude::*;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config::Recipe;
use crate::model::REC;
use crate::support::decimal;
use crate::support::id_index::{keys_of, IdIndex};
use crate::transform::ID;
use crate::validate::Validated;

/// Snapshot column with the row hash.
pub use crate::model::HASH;

/// One entity's diff stage, done: what to write to the CRM and what to remember.
pub struct Diffed {
    /// This run's accepted rows, with [`HASH`].
    pub accepted: DataFrame,
    pub changes: ChangeSet,
    /// The guard's verdict on `changes.deleted`.
    pub verdict: guard::Verdict,
    /// The entity's snapshot once this run is applied.
    pub snapshot: DataFrame,
    /// The IDs whose rows in `snapshot` differ from the previous snapshot's (see
    /// [`changed_ids`]); none without a previous snapshot.
    pub changed_ids: Option<Vec<String>>,
}

/// The diff stage of one entity: hashes the rows validation accepted, compares them with the
/// previous snapshot, lets the delete guard decide on the deletes and builds the next
/// snapshot, which keeps the rows rejected this run and those whose deletes are held.
pub fn diff_entity(
    recipe: &Recipe,
    valid: &Validated,
    prev: Option<&DataFrame>,
    run_id: &str,
) -> PolarsResult<Diffed> {
    // A shallow copy: the columns are shared, only the hash column is new.
    let mut accepted = valid.accepted.clone();
    let hashes = match &valid.known_hashes {
        Some(known) => fill_hashes(&accepted, recipe, known.u64()?)?,
        None => row_hashes(&accepted, recipe, HashScope::Comparable)?,
    };
    accepted.with_column(UInt64Chunked::from_vec(HASH.into(), hashes).into_column())?;
    // The snapshot also names the record each clean row was typed from (see `REC`), and
    // the comparison tells by it which unchanged rows come from other bytes.
    let keyed = match &valid.record_keys {
        Some(keys) => {
            let mut keyed = accepted.clone();
            keyed.with_column(keys.clone().with_name(REC.into()))?;
            keyed
        }
        None => accepted.clone(),
    };
    let changes = diff(recipe, &keyed, prev, &valid.rejected_ids)?;
    let prev_rows = prev.map(|p| p.height()).unwrap_or(0);
    let verdict = guard::guard(
        recipe,
        &changes.deleted,
        valid.counts.read,
        prev_rows,
        run_id,
    );
    let mut keep_rows = changes.carried.clone();
    if let (Some(p), false) = (prev, verdict.held.is_empty()) {
        keep_rows.extend(positions(p, &verdict.held)?);
    }
    keep_rows.sort_unstable();
    let snapshot = next_snapshot(&keyed, prev, &keep_rows)?;
    let changed_ids = match (prev, &changes.restamped) {
        (None, _) => None,
        // What the comparison found: rows inserted, updated or from other bytes, and every
        // ID gone from the file but held (held rows stay in the snapshot as they were; the
        // others leave it, the CRM's delete policy aside: `ignore` too).
        (Some(_), Some(restamped)) => {
            let ids = accepted.column(ID)?.str()?;
            let rows = changes
                .inserted
                .iter()
                .chain(changes.updated.iter().map(|(r, _)| r))
                .chain(restamped);
            let mut out: Vec<String> = rows
                .filter_map(|&r| ids.get(r as usize).map(str::to_string))
                .collect();
            let held: HashSet<&str> = verdict.held.iter().map(String::as_str).collect();
            out.extend(
                changes
                    .deleted
                    .iter()
                    .filter(|id| !held.contains(id.as_str()))
                    .cloned(),
            );
            // Every test run checks the shortcut against a comparison of both snapshots'
            // every value (it once missed the gone IDs of a delete policy `ignore`).
            #[cfg(debug_assertions)]
            if let Some(p) = prev {
                let named: HashSet<&str> = out.iter().map(String::as_str).collect();
                for id in rows_differ(recipe, p, &snapshot)? {
                    assert!(
                        named.contains(id.as_str()),
                        "{}: {id} changed but is not in the snapshot delta",
                        recipe.entity
                    );
                }
            }
            Some(out)
        }
        (Some(p), None) => Some(changed_ids(p, &snapshot)?),
    };
    Ok(Diffed {
        accepted,
        changes,
        verdict,
        snapshot,
        changed_ids,
    })
}

/// The IDs whose rows differ between two snapshots: what a snapshot delta must hold.
///
/// A row is told by its ID, row hash and record key: the record key names the values the
/// row was typed from, so it also covers the create-only fields the hash leaves out. A row
/// without a record key (typed with a warning) cannot be told that way and always counts as
/// changed. IDs are compared by their 64-bit key: two IDs sharing one only make both count
/// as changed together.
pub fn changed_ids(prev: &DataFrame, next: &DataFrame) -> PolarsResult<Vec<String>> {
    let signed = |df: &DataFrame| -> PolarsResult<Vec<Option<u64>>> {
        let hashes = df.column(HASH)?.u64()?;
        let recs = df.column(REC).ok().map(|c| c.u64().cloned()).transpose()?;
        Ok((0..df.height())
            .map(
                |i| match (hashes.get(i), recs.as_ref().and_then(|r| r.get(i))) {
                    (Some(h), Some(r)) => Some(pair_hash(h, r)),
                    _ => None,
                },
            )
            .collect())
    };
    ids_differing(prev, &signed(prev)?, next, &signed(next)?)
}

/// The IDs whose rows differ in any value between two snapshots (every field, the row hash
/// and the record key): what [`diff_entity`]'s delta IDs must include, checked in debug
/// builds.
#[cfg(debug_assertions)]
fn rows_differ(recipe: &Recipe, prev: &DataFrame, next: &DataFrame) -> PolarsResult<Vec<String>> {
    let signed = |df: &DataFrame| -> PolarsResult<Vec<Option<u64>>> {
        let values = row_hashes(df, recipe, HashScope::AllFields)?;
        let hashes = df.column(HASH)?.u64()?;
        let recs = df.column(REC).ok().map(|c| c.u64().cloned()).transpose()?;
        Ok((0..df.height())
            .map(|i| {
                let rec = recs.as_ref().and_then(|r| r.get(i)).unwrap_or(u64::MAX);
                Some(pair_hash(
                    pair_hash(values[i], hashes.get(i).unwrap_or(0)),
                    rec,
                ))
            })
            .collect())
    };
    ids_differing(prev, &signed(prev)?, next, &signed(next)?)
}

/// The IDs (sorted, once each) whose rows' signatures differ between two frames: per ID key,
/// the number of rows and the sum of their signatures are compared; a row without a
/// signature (`None`) always counts as changed.
fn ids_differing(
    prev: &DataFrame,
    prev_signed: &[Option<u64>],
    next: &DataFrame,
    next_signed: &[Option<u64>],
) -> PolarsResult<Vec<String>> {
    type Sums = rustc_hash::FxHashMap<u64, (u32, u64, bool)>;
    let sums = |df: &DataFrame, signed: &[Option<u64>]| -> PolarsResult<Sums> {
        let mut out = Sums::default();
        out.reserve(df.height());
        for (key, sig) in keys_of(df.column(ID)?.str()?).into_iter().zip(signed) {
            let e = out.entry(key).or_default();
            e.0 += 1;
            match sig {
                Some(s) => e.1 = e.1.wrapping_add(*s),
                None => e.2 = true,
            }
        }
        Ok(out)
    };
    let (before, after) = (sums(prev, prev_signed)?, sums(next, next_signed)?);
    let differs = |key: &u64| match (before.get(key), after.get(key)) {
        (Some(a), Some(b)) => a != b || a.2 || b.2,
        _ => true,
    };
    let mut out: HashSet<&str> = HashSet::default();
    for df in [prev, next] {
        let ids = df.column(ID)?.str()?;
        for (id, key) in ids.iter().zip(keys_of(ids)) {
            if let Some(id) = id.filter(|_| differs(&key)) {
                out.insert(id);
            }
        }
    }
    let mut out: Vec<String> = out.into_iter().map(str::to_string).collect();
    out.sort_unstable();
    Ok(out)
}

/// What changed in one entity, as row positions in the new frame and IDs of the old one.
#[derive(Debug, Default)]
pub struct ChangeSet {
    pub inserted: Vec<u32>,
    /// Row in the new frame and the fields whose value changed.
    pub updated: Vec<(u32, Vec<String>)>,
    pub unchanged: usize,
    /// IDs gone from the file (not rejected this run), in snapshot order.
    pub deleted: Vec<String>,
    /// Rows of the previous snapshot kept because their ID was rejected this run.
    pub carried: Vec<u32>,
    /// Rows of the new frame unchanged by their hash whose record key differs from (or,
    /// on either side, is missing beside) the previous row's: the same values from other
    /// bytes. None when the frames have no record keys or `prev` holds an ID twice.
    pub restamped: Option<Vec<u32>>,
}

/// Which fields a row hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScope {
    /// What the CRM compares: create-only fields excluded.
    Comparable,
    /// Everything staged, create-only fields included.
    AllFields,
}

/// Hash of each row's fields; stable across runs and machines.
///
/// The comparable hash also covers where the row lands in the CRM: the entity's
/// `crm_object` and each field's CRM column. Renaming either makes every row `updated`, so
/// the next run writes them all into the new table or column instead of leaving it empty.
/// A CRM name equal to its default (the entity, the field name) adds nothing, so workspaces
/// that never rename keep the hashes they had before CRM names were covered.
pub fn row_hashes(df: &DataFrame, recipe: &Recipe, scope: HashScope) -> PolarsResult<Vec<u64>> {
    let comparable = scope == HashScope::Comparable;
    let seed = if comparable && recipe.crm_object != recipe.entity {
        xxh3_64_with_seed(recipe.crm_object.as_bytes(), 0x5eed)
    } else {
        0x5eed_u64
    };
    let mut h = vec![seed; df.height()];
    for f in recipe
        .fields
        .iter()
        .filter(|f| !comparable || !f.create_only)
    {
        let c = df.column(&f.name)?.as_materialized_series().clone();
        // The name goes in too, so a field added to the recipe changes every hash; and so
        // does its CRM column (field names never hold `\0`).
        let tag = if comparable && f.crm_name != f.name {
            xxh3_64_with_seed(format!("{}\0{}", f.name, f.crm_name).as_bytes(), 1)
        } else {
            xxh3_64_with_seed(f.name.as_bytes(), 1)
        };
        let mix = |h: &mut u64, bytes: Option<&[u8]>| {
            *h = match bytes {
                Some(b) => xxh3_64_with_seed(b, *h ^ tag),
                None => xxh3_64_with_seed(b"\0null", *h ^ tag),
            }
        };
        match c.dtype() {
            DataType::String => {
                for (h, v) in h.iter_mut().zip(c.str()?.iter()) {
                    mix(h, v.map(str::as_bytes))
                }
            }
            DataType::Int64 => {
                for (h, v) in h.iter_mut().zip(c.i64()?.iter()) {
                    mix(h, v.map(|v| v.to_le_bytes()).as_ref().map(|b| &b[..]))
                }
            }
            DataType::Float64 => {
                for (h, v) in h.iter_mut().zip(c.f64()?.iter()) {
                    mix(h, v.map(|v| v.to_le_bytes()).as_ref().map(|b| &b[..]))
                }
            }
            // The exact value, whatever its scale: `1.50` kept at scale 2 or 3 is one value.
            DataType::Decimal(_, scale) => {
                for (h, v) in h.iter_mut().zip(c.decimal()?.physical().iter()) {
                    let bytes = v.map(|v| {
                        let (units, scale) = decimal::normalized(v, *scale);
                        let mut b = [0u8; 17];
                        b[..16].copy_from_slice(&units.to_le_bytes());
                        b[16] = scale as u8;
                        b
                    });
                    mix(h, bytes.as_ref().map(|b| &b[..]))
                }
            }
            DataType::Boolean => {
                for (h, v) in h.iter_mut().zip(c.bool()?.iter()) {
                    mix(h, v.map(|v| if v { &b"1"[..] } else { &b"0"[..] }))
                }
            }
            _ => {
                let s = c.cast(&DataType::String)?;
                for (h, v) in h.iter_mut().zip(s.str()?.iter()) {
                    mix(h, v.map(str::as_bytes))
                }
            }
        }
    }
    Ok(h)
}

/// The hashes of just the rows `which` marks, in order.
fn hashes_of(
    df: &DataFrame,
    recipe: &Recipe,
    scope: HashScope,
    which: &BooleanChunked,
) -> PolarsResult<std::vec::IntoIter<u64>> {
    Ok(match which.sum().unwrap_or(0) {
        0 => Vec::new(),
        _ => row_hashes(&df.filter(which)?, recipe, scope)?,
    }
    .into_iter())
}

/// One hash of a row hash and a record key.
fn pair_hash(hash: u64, record_key: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hash.to_le_bytes());
    bytes[8..].copy_from_slice(&record_key.to_le_bytes());
    xxh3_64_with_seed(&bytes, 0xde17a)
}

/// The row hashes of `df`, taking each known one as it is (a reused record's, the hash of
/// the very values it has) and computing only the others.
fn fill_hashes(df: &DataFrame, recipe: &Recipe, known: &UInt64Chunked) -> PolarsResult<Vec<u64>> {
    let unknown = known.is_null();
    if unknown.sum().unwrap_or(0) as usize == df.height() {
        return row_hashes(df, recipe, HashScope::Comparable);
    }
    let mut computed = hashes_of(df, recipe, HashScope::Comparable, &unknown)?;
    Ok(known
        .iter()
        .map(|h| h.unwrap_or_else(|| computed.next().unwrap_or_default()))
        .collect())
}

/// A snapshot from a release that kept decimal fields as doubles, in today's types: each
/// such column becomes the exact decimal its double stood for ([`decimal::from_f64`]).
///
/// Its stored hashes were computed over the doubles, so they would make every row look
/// updated. Where a stored hash still equals the hash of the old row under today's recipe
/// (nothing but the type changed), it is replaced by the hash of the exact row, so an
/// unchanged row stays unchanged. Where it does not (the recipe changed as well, say a CRM
/// column was renamed), the stored hash stays, and the row is updated as it would have been.
pub fn upgrade_snapshot(recipe: &Recipe, prev: DataFrame) -> PolarsResult<DataFrame> {
    let legacy: Vec<(&str, crate::config::DecimalSpec)> = recipe
        .fields
        .iter()
        .filter_map(|f| {
            let d = f.decimal?;
            let c = prev.column(&f.name).ok()?;
            c.dtype().is_float().then_some((f.name.as_str(), d))
        })
        .collect();
    if legacy.is_empty() {
        return Ok(prev);
    }
    let then = row_hashes(&prev, recipe, HashScope::Comparable).ok();
    let mut df = prev;
    for (name, d) in &legacy {
        let floats = df.column(name)?.cast(&DataType::Float64)?;
        let units: Int128Chunked = floats
            .f64()?
            .iter()
            .map(|v| v.and_then(|v| decimal::from_f64(v, d.scale)))
            .collect();
        let exact = units
            .with_name((*name).into())
            .into_decimal(d.precision, d.scale)?;
        df.with_column(exact.into_series().into_column())?;
    }
    let stored = df.column(HASH).and_then(|c| c.u64().cloned());
    if let (Some(then), Ok(stored)) = (then, stored) {
        let now = row_hashes(&df, recipe, HashScope::Comparable)?;
        let hashes: UInt64Chunked = stored
            .iter()
            .zip(then)
            .zip(now)
            .map(|((stored, then), now)| {
                Some(if stored == Some(then) {
                    now
                } else {
                    stored.unwrap_or(then)
                })
            })
            .collect();
        df.with_column(hashes.with_name(HASH.into()).into_column())?;
    }
    Ok(df)
}

/// Compares `new` (accepted rows with `__hash`) with the previous snapshot.
pub fn diff(
    recipe: &Recipe,
    new: &DataFrame,
    prev: Option<&DataFrame>,
    rejected_ids: &HashSet<String>,
) -> PolarsResult<ChangeSet> {
    let Some(prev) = prev else {
        return Ok(ChangeSet {
            inserted: (0..new.height() as u32).collect(),
            ..ChangeSet::default()
        });
    };
    let prev_ids = prev.column(ID)?.str()?;
    let mut repeated = false;
    let index = IdIndex::new(prev_ids, &keys_of(prev_ids), |_, _| repeated = true);
    compare(recipe, new, prev, rejected_ids, !repeated, |id| {
        index.find(id)
    })
}

/// [`diff`] with `find` giving the row of `prev` that holds an ID. With `unique` (no ID twice
/// in `prev`) a row of `prev` was seen when a new row found it; otherwise when a new row
/// found the row `find` gives for its ID.
fn compare(
    recipe: &Recipe,
    new: &DataFrame,
    prev: &DataFrame,
    rejected_ids: &HashSet<String>,
    unique: bool,
    find: impl Fn(&str) -> Option<u32>,
) -> PolarsResult<ChangeSet> {
    let mut cs = ChangeSet::default();
    let new_ids = new.column(ID)?.str()?;
    let new_hash = new.column(HASH)?.u64()?;
    let prev_ids = prev.column(ID)?.str()?;
    let prev_hash = prev.column(HASH)?.u64()?;
    let record_keys = match (new.column(REC), prev.column(REC)) {
        (Ok(n), Ok(p)) if unique => Some((n.u64()?.rechunk(), p.u64()?.rechunk())),
        _ => None,
    };
    let mut restamped = Vec::new();
    let mut seen = vec![false; prev.height()];
    // An export keeps its order from one night to the next, and so does the snapshot: the
    // row after the last one found is tried first, in order through memory, and only a
    // miss pays a lookup. Only where an ID is in `prev` once is that row the one `find`
    // gives.
    let in_order = unique.then(|| prev_ids.rechunk());
    let in_order = in_order.as_ref().and_then(|c| c.downcast_iter().next());
    let mut after = 0usize;
    for (i, (id, h)) in new_ids.iter().zip(new_hash.iter()).enumerate() {
        let id = id.unwrap_or("");
        let next_in_order = in_order
            .filter(|a| after < a.len() && a.get(after) == Some(id))
            .map(|_| after as u32);
        let Some(j) = next_in_order.or_else(|| find(id)) else {
            cs.inserted.push(i as u32);
            continue;
        };
        after = j as usize + 1;
        seen[j as usize] = true;
        if prev_hash.get(j as usize) == h {
            cs.unchanged += 1;
            if let Some((n, p)) = &record_keys {
                let (a, b) = (n.get(i), p.get(j as usize));
                if a.is_none() || a != b {
                    restamped.push(i as u32);
                }
            }
        } else {
            let changed = changed_fields(recipe, new, i, prev, j as usize);
            cs.updated.push((i as u32, changed));
        }
    }
    for (j, id) in prev_ids.iter().enumerate() {
        let Some(id) = id else { continue };
        if seen[j] || (!unique && find(id).is_some_and(|j| seen[j as usize])) {
            continue;
        }
        if rejected_ids.contains(id) {
            cs.carried.push(j as u32);
        } else {
            cs.deleted.push(id.to_string());
        }
    }
    cs.restamped = record_keys.map(|_| restamped);
    Ok(cs)
}

/// Names of the comparable fields whose values differ between two rows.
fn changed_fields(
    recipe: &Recipe,
    new: &DataFrame,
    i: usize,
    prev: &DataFrame,
    j: usize,
) -> Vec<String> {
    recipe
        .fields
        .iter()
        .filter(|f| !f.create_only)
        .filter(|f| {
            let a = new.column(&f.name).ok().and_then(|c| c.get(i).ok());
            let b = prev.column(&f.name).ok().and_then(|c| c.get(j).ok());
            match (a, b) {
                (Some(a), Some(b)) => a.to_string() != b.to_string(),
                _ => true,
            }
        })
        .map(|f| f.name.clone())
        .collect()
}

/// The snapshot to keep after this run: the accepted rows plus `extra` rows of the old
/// snapshot (rejected this run, or held deletes), aligned to the new columns.
pub fn next_snapshot(
    new: &DataFrame,
    prev: Option<&DataFrame>,
    extra: &[u32],
) -> PolarsResult<DataFrame> {
    let (Some(prev), false) = (prev, extra.is_empty()) else {
        return Ok(new.clone());
    };
    let idx = IdxCa::from_vec("idx".into(), extra.iter().map(|&i| i as IdxSize).collect());
    let kept = prev.take(&idx)?;
    let mut cols = Vec::with_capacity(new.width());
    for c in new.columns() {
        let col = match kept.column(c.name()) {
            Ok(k) => k.cast(c.dtype())?,
            Err(_) => Column::full_null(c.name().clone(), kept.height(), c.dtype()),
        };
        cols.push(col);
    }
    let kept = DataFrame::new(kept.height(), cols)?;
    new.vstack(&kept)
}

/// The rows of `df` whose ID is not one of `ids`.
pub fn without_ids(df: &DataFrame, ids: &HashSet<&str>) -> PolarsResult<DataFrame> {
    let keep: BooleanChunked = df
        .column(ID)?
        .str()?
        .iter()
        .map(|id| Some(!id.is_some_and(|id| ids.contains(id))))
        .collect();
    df.filter(&keep)
}

/// Positions in `prev` of the given IDs.
pub fn positions(prev: &DataFrame, ids: &[String]) -> PolarsResult<Vec<u32>> {
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    Ok(prev
        .column(ID)?
        .str()?
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_some_and(|id| wanted.contains(id)))
        .map(|(i, _)| i as u32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;

    /// The hashes of one frame under a one-entity workspace whose recipe has `head` before
    /// `[source]` and `fields` at the end.
    fn hashes(head: &str, fields: &str, scope: HashScope) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            format!("entity = \"t\"\n{head}\n[source]\nfiles = [\"t.csv\"]\n[id]\ncolumn = \"ID\"\n{fields}"),
        )
        .unwrap();
        let recipe = load_dir(dir.path()).unwrap().entities.remove(0);
        let df = df!(
            ID => ["1", "2", "3"],
            "a" => [Some("x"), None, Some("")],
            "n" => [Some(1i64), Some(2), None],
            "c" => ["k", "k", "k"]
        )
        .unwrap();
        row_hashes(&df, &recipe, scope).unwrap()
    }

    /// A one-field recipe for `diff` tests.
    fn one_field() -> Recipe {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            "entity = \"t\"\n[source]\nfiles = [\"t.csv\"]\n[id]\ncolumn = \"ID\"\n\
             [[field]]\nname = \"a\"\nfrom = \"A\"\n",
        )
        .unwrap();
        load_dir(dir.path()).unwrap().entities.remove(0)
    }

    fn frame(ids: &[&str], a: &[&str], hashes: &[u64]) -> DataFrame {
        df!(ID => ids, "a" => a, HASH => hashes).unwrap()
    }

    #[test]
    fn rows_pair_by_id_and_what_left_is_deleted_or_carried() {
        let r = one_field();
        let new = frame(&["1", "2", "4"], &["x", "y2", "w"], &[10, 21, 40]);
        let prev = frame(&["1", "2", "3"], &["x", "y", "z"], &[10, 20, 30]);
        let cs = diff(&r, &new, Some(&prev), &HashSet::default()).unwrap();
        assert_eq!(cs.inserted, [2]);
        assert_eq!(cs.updated, [(1, vec!["a".to_string()])]);
        assert_eq!(cs.unchanged, 1);
        assert_eq!(cs.deleted, ["3"]);
        let rejected: HashSet<String> = ["3".to_string()].into_iter().collect();
        let cs = diff(&r, &new, Some(&prev), &rejected).unwrap();
        assert!(cs.deleted.is_empty());
        assert_eq!(cs.carried, [2]);
    }

    /// A snapshot holding one ID twice: every row of an ID still in the file stays (neither
    /// is deleted).
    #[test]
    fn an_id_twice_in_the_snapshot_deletes_neither_row() {
        let r = one_field();
        let prev = frame(&["1", "1", "3"], &["x", "x", "z"], &[10, 10, 30]);
        let new = frame(&["1"], &["x"], &[10]);
        let cs = diff(&r, &new, Some(&prev), &HashSet::default()).unwrap();
        assert_eq!(cs.unchanged, 1);
        assert_eq!(cs.deleted, ["3"]);
    }

    /// Rows unchanged by their hash but typed from other bytes (or without a record key)
    /// are told apart, for the snapshot delta; without keys on both sides, nothing is.
    #[test]
    fn unchanged_rows_from_other_bytes_are_restamped() {
        let r = one_field();
        let keyed = |df: DataFrame, keys: &[Option<u64>]| {
            let mut df = df;
            df.with_column(Column::new(REC.into(), keys)).unwrap();
            df
        };
        let prev = frame(
            &["1", "2", "3", "4"],
            &["x", "y", "z", "w"],
            &[10, 20, 30, 40],
        );
        let new = frame(
            &["1", "2", "3", "4"],
            &["x", "y", "z", "w2"],
            &[10, 20, 30, 41],
        );
        let prev_k = keyed(prev.clone(), &[Some(1), Some(2), None, Some(4)]);
        let new_k = keyed(new.clone(), &[Some(1), Some(9), Some(3), Some(5)]);
        let cs = diff(&r, &new_k, Some(&prev_k), &HashSet::default()).unwrap();
        assert_eq!(cs.unchanged, 3);
        assert_eq!(cs.restamped, Some(vec![1, 2]));
        let cs = diff(&r, &new, Some(&prev_k), &HashSet::default()).unwrap();
        assert_eq!(cs.restamped, None);
        let twice = keyed(
            frame(&["1", "1"], &["x", "x"], &[10, 10]),
            &[Some(1), Some(1)],
        );
        let cs = diff(&r, &new_k, Some(&twice), &HashSet::default()).unwrap();
        assert_eq!(cs.restamped, None);
    }

    const FIELDS: &str = "[[field]]\nname = \"a\"\nfrom = \"A\"\n\
        [[field]]\nname = \"n\"\nfrom = \"N\"\ntype = \"integer\"\n\
        [[field]]\nname = \"c\"\nfrom = \"C\"\ncreate_only = true\n";

    #[test]
    fn hashes_are_repeatable_and_distinguish_rows() {
        let h = hashes("", FIELDS, HashScope::Comparable);
        assert_eq!(h, hashes("", FIELDS, HashScope::Comparable));
        assert_ne!(h[0], h[1]);
        assert_ne!(h[1], h[2], "null and empty differ");
        // Naming the defaults explicitly is the same CRM, so the same hash.
        let explicit = FIELDS.replace("name = \"a\"\n", "name = \"a\"\ncrm = \"a\"\n");
        assert_eq!(
            h,
            hashes("crm_object = \"t\"", &explicit, HashScope::Comparable)
        );
    }

    #[test]
    fn renaming_a_crm_column_or_object_changes_every_comparable_hash() {
        let base = hashes("", FIELDS, HashScope::Comparable);
        let column = FIELDS.replace("name = \"a\"\n", "name = \"a\"\ncrm = \"alpha\"\n");
        let renamed = hashes("", &column, HashScope::Comparable);
        assert!(
            base.iter().zip(&renamed).all(|(a, b)| a != b),
            "{base:?} {renamed:?}"
        );
        assert_eq!(renamed, hashes("", &column, HashScope::Comparable));
        let other = FIELDS.replace("name = \"a\"\n", "name = \"a\"\ncrm = \"beta\"\n");
        let again = hashes("", &other, HashScope::Comparable);
        assert!(renamed.iter().zip(&again).all(|(a, b)| a != b));

        let object = hashes("crm_object = \"things\"", FIELDS, HashScope::Comparable);
        assert!(
            base.iter().zip(&object).all(|(a, b)| a != b),
            "{base:?} {object:?}"
        );
        assert_eq!(
            object,
            hashes("crm_object = \"things\"", FIELDS, HashScope::Comparable)
        );
        let both = hashes("crm_object = \"things\"", &column, HashScope::Comparable);
        assert!(object.iter().zip(&both).all(|(a, b)| a != b));
    }

    #[test]
    fn crm_names_leave_the_staging_hash_and_create_only_fields_alone() {
        // Staging has no CRM names: its hash (every field) does not move with them.
        let base = hashes("", FIELDS, HashScope::AllFields);
        let column = FIELDS.replace("name = \"a\"\n", "name = \"a\"\ncrm = \"alpha\"\n");
        assert_eq!(
            base,
            hashes("crm_object = \"o\"", &column, HashScope::AllFields)
        );
        // A create-only field is never compared, whatever its CRM column is called.
        let created = FIELDS.replace("name = \"c\"\n", "name = \"c\"\ncrm = \"gamma\"\n");
        assert_eq!(
            hashes("", FIELDS, HashScope::Comparable),
            hashes("", &created, HashScope::Comparable)
        );
    }
}
