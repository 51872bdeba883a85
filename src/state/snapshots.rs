//! Where each entity's last accepted snapshot lives, and how it advances in proportion to
//! what changed.
//!
//! A snapshot is a *base* file and, beside it, at most one *delta*: every row, as it is
//! now, of each ID whose rows changed since the base, and a tombstone for each such ID that
//! is gone. Read back, a snapshot is the base without the delta's IDs, then the delta's live
//! rows. A run that changed few rows journals only the new delta (the old delta's IDs and
//! its own), so a night that changes 1% of an entity writes about 1% of it instead of all
//! of it. Once the delta would hold more than `max_delta_share` of the base's rows
//! (`pipeline.toml`, default 15%), or the snapshot's columns changed (a new recipe), the run journals a whole new base instead,
//! which also puts the rows back in file order.
//!
//! Why the bases carry a generation in their names (`<entity>.parquet` is generation 0,
//! `<entity>.g<N>.parquet` the later ones, each delta named after its base): a new base and
//! the end of the old delta cannot happen in one rename. So a new base takes the next
//! generation's name, a delta belongs to the base of its own generation, and readers take the
//! highest generation; older generations' files are debris, removed after each promotion.
//! Every advance of a snapshot is therefore one rename, as it was with whole files.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use rustc_hash::FxHashSet as HashSet;

use super::journal::{read_parquet, read_parquet_columns, sync_dir, write_parquet};
use super::{State, StateError};
use crate::diff::without_ids;
use crate::transform::ID;

/// Column of a delta that marks a tombstone: the ID is gone from the snapshot.
pub const GONE: &str = "__gone";

/// The snapshot a run journals for an entity: the whole next snapshot, and the IDs whose
/// rows differ from the current one (none: unknown, so a whole base is written).
pub struct NextSnapshot {
    pub frame: DataFrame,
    pub changed_ids: Option<Vec<String>>,
    /// The largest delta worth writing, as a share of the base's rows (`pipeline.toml`'s
    /// `[snapshots] max_delta_share`).
    pub max_delta_share: f64,
}

/// The files of an entity's current snapshot.
struct Stored {
    generation: u64,
    base: PathBuf,
    /// The base's delta, when there is one.
    delta: Option<PathBuf>,
}

fn base_name(entity: &str, generation: u64) -> String {
    match generation {
        0 => format!("{entity}.parquet"),
        g => format!("{entity}.g{g}.parquet"),
    }
}

fn delta_name(entity: &str, generation: u64) -> String {
    match generation {
        0 => format!("{entity}.delta.parquet"),
        g => format!("{entity}.g{g}.delta.parquet"),
    }
}

/// The generation a snapshot file name holds for `entity`, and whether it is a delta.
fn generation_of(entity: &str, name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(entity)?.strip_suffix(".parquet")?;
    let (rest, delta) = match rest.strip_suffix(".delta") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    if rest.is_empty() {
        return Some((0, delta));
    }
    let g = rest.strip_prefix(".g")?;
    if g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((g.parse().ok()?, delta))
}

impl State {
    fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The files of the entity's current snapshot: the highest generation's base, and its
    /// delta if it has one.
    fn stored(&self, entity: &str) -> Result<Option<Stored>, StateError> {
        let dir = self.snapshots_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Io { path: dir, source }),
        };
        let mut top: Option<u64> = None;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some((g, false)) = name.to_str().and_then(|n| generation_of(entity, n)) {
                top = top.max(Some(g));
            }
        }
        Ok(top.map(|generation| {
            let delta = dir.join(delta_name(entity, generation));
            Stored {
                generation,
                base: dir.join(base_name(entity, generation)),
                delta: delta.exists().then_some(delta),
            }
        }))
    }

    /// The file that holds the entity's snapshot (its base), for messages.
    pub fn snapshot_file(&self, entity: &str) -> PathBuf {
        match self.stored(entity) {
            Ok(Some(s)) => s.base,
            _ => self.snapshots_dir().join(base_name(entity, 0)),
        }
    }

    /// The entity's last accepted snapshot, if it ever had one.
    pub fn load_snapshot(&self, entity: &str) -> Result<Option<DataFrame>, StateError> {
        let Some(s) = self.stored(entity)? else {
            return Ok(None);
        };
        let base = read_snapshot_file(&s.base)?;
        let Some(delta_path) = &s.delta else {
            return Ok(Some(base));
        };
        let delta = read_snapshot_file(delta_path)?;
        merge(base, &delta).map(Some).map_err(corrupt(delta_path))
    }

    /// The IDs of the entity's last accepted snapshot (only that column is read).
    pub fn snapshot_ids(&self, entity: &str) -> Result<Option<Vec<String>>, StateError> {
        let Some(s) = self.stored(entity)? else {
            return Ok(None);
        };
        let base = read_parquet_columns(&s.base, &[ID]).map_err(into_corrupt)?;
        let base = match &s.delta {
            Some(d) => {
                let delta = read_parquet_columns(d, &[ID, GONE]).map_err(into_corrupt)?;
                merge(base, &delta).map_err(corrupt(d))?
            }
            None => base,
        };
        let ids = base
            .column(ID)
            .and_then(|c| c.str().cloned())
            .map_err(corrupt(&s.base))?;
        Ok(Some(ids.iter().flatten().map(str::to_string).collect()))
    }

    /// The entity's last accepted snapshot in the types its recipe gives today (see
    /// [`crate::diff::upgrade_snapshot`]): what every diff, revert and staging of it reads.
    pub fn accepted_snapshot(
        &self,
        recipe: &crate::config::Recipe,
    ) -> Result<Option<DataFrame>, StateError> {
        let Some(df) = self.load_snapshot(&recipe.entity)? else {
            return Ok(None);
        };
        crate::diff::upgrade_snapshot(recipe, df)
            .map(Some)
            .map_err(|e| unreadable(self.snapshot_file(&recipe.entity), e))
    }

    /// The snapshot's files as they are on disk: name, size and modification time of the
    /// base and of its delta. Every file is written beside its name and renamed into place,
    /// so a snapshot that advanced has a new stamp.
    pub fn snapshot_stamp(&self, entity: &str) -> Option<String> {
        let s = self.stored(entity).ok()??;
        let stamp = |path: &Path| -> Option<String> {
            let meta = std::fs::metadata(path).ok()?;
            Some(format!("{} {:?}", meta.len(), meta.modified().ok()?))
        };
        let mut out = stamp(&s.base)?;
        if s.generation > 0 {
            out = format!("g{} {out}", s.generation);
        }
        if let Some(d) = &s.delta {
            out = format!("{out} + {}", stamp(d)?);
        }
        Some(out)
    }

    /// Journals the entity's next snapshot under `pending`: a delta against the current
    /// base when one is worth it, else the whole snapshot.
    pub(super) fn journal_snapshot(
        &self,
        pending: impl Fn(&str) -> PathBuf,
        entity: &str,
        next: &mut NextSnapshot,
    ) -> Result<(), StateError> {
        match self.delta_for(entity, next)? {
            Some(mut delta) => {
                #[cfg(debug_assertions)]
                self.check_delta(entity, &delta, &next.frame)?;
                write_parquet(&pending("delta"), &mut delta)
            }
            None => write_parquet(&pending("snapshot"), &mut next.frame),
        }
    }

    /// Debug builds (every test run): the delta applied to the current base reads back as
    /// the next snapshot, row for row, whatever the order.
    #[cfg(debug_assertions)]
    fn check_delta(
        &self,
        entity: &str,
        delta: &DataFrame,
        next: &DataFrame,
    ) -> Result<(), StateError> {
        let Some(s) = self.stored(entity)? else {
            return Ok(());
        };
        let merged = merge(read_snapshot_file(&s.base)?, delta).map_err(corrupt(&s.base))?;
        let rows = |df: &DataFrame| {
            let mut rows: Vec<String> = (0..df.height())
                .map(|i| {
                    let cells: Vec<String> = df
                        .columns()
                        .iter()
                        .map(|c| format!("{:?}", c.get(i)))
                        .collect();
                    cells.join("|")
                })
                .collect();
            rows.sort_unstable();
            rows
        };
        assert!(
            rows(&merged) == rows(next),
            "{entity}: a snapshot delta that does not read back as the next snapshot"
        );
        Ok(())
    }

    /// The delta that takes the current base to `next`: the rows of every ID changed since
    /// the base (the current delta's IDs and `next`'s changed ones); none when `next`
    /// cannot be told apart from the base that way or the delta would be too large.
    fn delta_for(
        &self,
        entity: &str,
        next: &NextSnapshot,
    ) -> Result<Option<DataFrame>, StateError> {
        let (Some(changed), Some(s)) = (&next.changed_ids, self.stored(entity)?) else {
            return Ok(None);
        };
        let (columns, base_rows) = base_layout(&s.base)?;
        if columns != **next.frame.schema() {
            return Ok(None);
        }
        let mut ids: HashSet<String> = changed.iter().cloned().collect();
        if let Some(d) = &s.delta {
            let old = read_parquet_columns(d, &[ID]).map_err(into_corrupt)?;
            let old = old
                .column(ID)
                .and_then(|c| c.str().cloned())
                .map_err(corrupt(d))?;
            ids.extend(old.iter().flatten().map(str::to_string));
        }
        let limit = next.max_delta_share * base_rows as f64;
        // A share that is not a number writes whole snapshots.
        if limit.is_nan() || ids.len() as f64 > limit {
            return Ok(None);
        }
        delta_of(&next.frame, &ids)
            .map(Some)
            .map_err(corrupt(&s.base))
    }

    /// Makes the journaled snapshot the entity's current one. A whole snapshot becomes the
    /// next generation's base (one rename; the older generations' files then go); a delta
    /// becomes the current base's delta (one rename). Repeatable: once promoted, the journaled
    /// file is gone and there is nothing left to do.
    pub(super) fn promote_journaled(
        &self,
        whole: &Path,
        delta: &Path,
        entity: &str,
    ) -> Result<(), StateError> {
        let dir = self.snapshots_dir();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let current = self.stored(entity)?;
        if whole.exists() {
            // A whole snapshot supersedes a delta journaled before it (see
            // `replace_journaled`): that delta goes first, so a kill never leaves it to be
            // promoted over the new base.
            remove_if_exists(delta)?;
            let generation = current.as_ref().map_or(0, |s| s.generation + 1);
            let to = dir.join(base_name(entity, generation));
            std::fs::rename(whole, &to).map_err(io(&to))?;
            sync_dir(&dir)?;
            self.remove_older_generations(entity, generation);
        } else if delta.exists() {
            let Some(s) = current else {
                return Err(StateError::Io {
                    path: delta.to_path_buf(),
                    source: std::io::Error::other("a journaled snapshot delta without its base"),
                });
            };
            let to = dir.join(delta_name(entity, s.generation));
            std::fs::rename(delta, &to).map_err(io(&to))?;
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// The journaled next snapshot, whole (a delta is merged with the current base).
    pub(super) fn read_journaled(
        &self,
        whole: &Path,
        delta: &Path,
        entity: &str,
    ) -> Result<DataFrame, StateError> {
        if whole.exists() {
            return read_parquet(whole);
        }
        let base = match self.stored(entity)? {
            Some(s) => read_snapshot_file(&s.base)?,
            None => return read_parquet(delta),
        };
        let d = read_parquet(delta)?;
        merge(base, &d).map_err(corrupt(delta))
    }

    /// Replaces the journaled next snapshot with a whole one (written first, so a kill in
    /// between leaves both, and the whole one wins).
    pub(super) fn replace_journaled(
        &self,
        whole: &Path,
        delta: &Path,
        df: &mut DataFrame,
    ) -> Result<(), StateError> {
        write_parquet(whole, df)?;
        remove_if_exists(delta)
    }

    /// Takes `ids` out of the entity's snapshot (deletes an approval applied): tombstones in
    /// its delta, one rename. Repeatable.
    pub fn remove_from_snapshot(&self, entity: &str, ids: &[String]) -> Result<(), StateError> {
        let Some(s) = self.stored(entity)? else {
            return Ok(());
        };
        let mut gone: Vec<&str> = ids.iter().map(String::as_str).collect();
        gone.sort_unstable();
        gone.dedup();
        let current = match &s.delta {
            Some(d) => read_snapshot_file(d)?,
            None => {
                let empty = ParquetReader::new(open(&s.base)?)
                    .with_slice(Some((0, 0)))
                    .finish()
                    .map_err(corrupt(&s.base))?;
                live(empty).map_err(corrupt(&s.base))?
            }
        };
        let set: HashSet<&str> = gone.iter().copied().collect();
        let mut delta = without_ids(&current, &set)
            .and_then(|kept| kept.vstack(&tombstones(&current, &gone)?))
            .map_err(corrupt(&s.base))?;
        write_parquet(
            &self.snapshots_dir().join(delta_name(entity, s.generation)),
            &mut delta,
        )?;
        sync_dir(&self.snapshots_dir())
    }

    /// Best effort: the files of generations older than `generation` (a kill may leave
    /// them; they are never read).
    fn remove_older_generations(&self, entity: &str, generation: u64) {
        let Ok(entries) = std::fs::read_dir(self.snapshots_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some((g, _)) = name.to_str().and_then(|n| generation_of(entity, n)) {
                if g < generation {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

fn open(path: &Path) -> Result<std::fs::File, StateError> {
    std::fs::File::open(path).map_err(|source| StateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn remove_if_exists(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn corrupt(path: &Path) -> impl Fn(PolarsError) -> StateError + '_ {
    move |source| unreadable(path.to_path_buf(), source)
}

/// An unreadable snapshot file, told as a base or a delta (the ways out differ).
fn unreadable(path: PathBuf, source: PolarsError) -> StateError {
    if path.to_string_lossy().ends_with(".delta.parquet") {
        StateError::CorruptDelta { path, source }
    } else {
        StateError::CorruptSnapshot { path, source }
    }
}

fn into_corrupt(e: StateError) -> StateError {
    match e {
        StateError::Snapshot { path, source } => unreadable(path, source),
        other => other,
    }
}

fn read_snapshot_file(path: &Path) -> Result<DataFrame, StateError> {
    read_parquet(path).map_err(into_corrupt)
}

/// A base's columns and row count, from its footer.
fn base_layout(path: &Path) -> Result<(Schema, usize), StateError> {
    let mut reader = ParquetReader::new(open(path)?);
    let rows = reader.num_rows().map_err(corrupt(path))?;
    let empty = reader
        .with_slice(Some((0, 0)))
        .finish()
        .map_err(corrupt(path))?;
    Ok(((**empty.schema()).clone(), rows))
}

/// `df` as a delta's live rows: the same columns and [`GONE`] false.
fn live(mut df: DataFrame) -> PolarsResult<DataFrame> {
    let n = df.height();
    df.with_column(Column::new_scalar(GONE.into(), Scalar::from(false), n))?;
    Ok(df)
}

/// A tombstone row for each of `ids`, in the columns of the delta `like`.
fn tombstones(like: &DataFrame, ids: &[&str]) -> PolarsResult<DataFrame> {
    let n = ids.len();
    let columns = like
        .columns()
        .iter()
        .map(|c| match c.name().as_str() {
            ID => StringChunked::from_iter_values(ID.into(), ids.iter().copied()).into_column(),
            GONE => Column::new_scalar(GONE.into(), Scalar::from(true), n),
            _ => Column::full_null(c.name().clone(), n, c.dtype()),
        })
        .collect();
    DataFrame::new(n, columns)
}

/// The delta holding `ids` as `next` has them: their rows, then a tombstone for each ID
/// `next` does not hold (in ID order, so the same change writes the same file).
fn delta_of(next: &DataFrame, ids: &HashSet<String>) -> PolarsResult<DataFrame> {
    let next_ids = next.column(ID)?.str()?;
    let present: HashSet<&str> = next_ids.iter().flatten().collect();
    let wanted: BooleanChunked = next_ids
        .iter()
        .map(|id| Some(id.is_some_and(|id| ids.contains(id))))
        .collect();
    let rows = live(next.filter(&wanted)?)?;
    let mut gone: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !present.contains(id))
        .collect();
    gone.sort_unstable();
    rows.vstack(&tombstones(&rows, &gone)?)
}

/// A base with its delta applied: the base's rows whose ID the delta does not name, then
/// the delta's live rows.
fn merge(base: DataFrame, delta: &DataFrame) -> PolarsResult<DataFrame> {
    let delta_ids = delta.column(ID)?.str()?;
    let named: HashSet<&str> = delta_ids.iter().flatten().collect();
    let kept = without_ids(&base, &named)?;
    let gone = delta.column(GONE)?.bool()?;
    let rows = delta.filter(&!gone)?;
    let names: Vec<PlSmallStr> = base.get_column_names_owned();
    kept.vstack(&rows.select(names)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HASH, REC};

    /// A fresh workspace's state.
    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        (dir, state)
    }

    /// Journals `next` as a run would, then promotes it: what the entity's snapshot becomes.
    fn advance(state: &State, next: &DataFrame, share: f64) {
        let prev = state.load_snapshot("t").unwrap();
        let changed_ids = prev
            .as_ref()
            .map(|p| crate::diff::changed_ids(p, next).unwrap());
        let pending = state.dir.join("pending").join("r");
        std::fs::create_dir_all(&pending).unwrap();
        let part = |p: &str| pending.join(format!("t.{p}.parquet"));
        let mut next = NextSnapshot {
            frame: next.clone(),
            changed_ids,
            max_delta_share: share,
        };
        state.journal_snapshot(part, "t", &mut next).unwrap();
        state
            .promote_journaled(&part("snapshot"), &part("delta"), "t")
            .unwrap();
        // Promoting again (a recovery after a kill) finds nothing left to do.
        let before = state.snapshot_stamp("t");
        state
            .promote_journaled(&part("snapshot"), &part("delta"), "t")
            .unwrap();
        assert_eq!(state.snapshot_stamp("t"), before);
    }

    /// Every row as text, sorted: a snapshot's content whatever its order.
    fn rows(df: &DataFrame) -> Vec<String> {
        let mut out: Vec<String> = (0..df.height())
            .map(|i| {
                df.columns()
                    .iter()
                    .map(|c| format!("{}", c.get(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.sort();
        out
    }

    /// The entity's snapshot as read back, row by row.
    fn read_back(state: &State) -> Vec<String> {
        rows(&state.load_snapshot("t").unwrap().unwrap())
    }

    fn files(state: &State) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(state.snapshots_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A snapshot of `ids` with a value, a row hash and a record key (none for the IDs in
    /// `warned`, as rows typed with a warning have).
    fn snapshot(rows: &[(u64, i64, bool)]) -> DataFrame {
        let ids: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let v: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let hash: Vec<u64> = rows.iter().map(|r| r.1 as u64 * 31).collect();
        let rec: Vec<Option<u64>> = rows
            .iter()
            .map(|r| (!r.2).then_some(r.1 as u64 * 7))
            .collect();
        df!(ID => ids, "v" => v, HASH => hash, REC => rec).unwrap()
    }

    #[test]
    fn a_snapshot_read_back_is_what_each_run_left_through_deltas_and_new_bases() {
        let (_dir, state) = state();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut current: Vec<(u64, i64, bool)> =
            (0..400).map(|i| (i, i as i64, i % 50 == 0)).collect();
        let mut next_id = 400;
        let (mut deltas, mut bases) = (0, 0);
        for step in 0..40 {
            // Mostly small nights; now and then one that changes a third of the rows.
            let changes = if step % 9 == 8 { 130 } else { 1 + next(12) };
            for _ in 0..changes {
                match next(4) {
                    0 if current.len() > 10 => {
                        let at = next(current.len() as u64) as usize;
                        current.remove(at);
                    }
                    1 => {
                        current.push((next_id, next(1000) as i64, next(10) == 0));
                        next_id += 1;
                    }
                    _ => {
                        let at = next(current.len() as u64) as usize;
                        current[at].1 = next(1000) as i64;
                    }
                }
            }
            let want = snapshot(&current);
            advance(&state, &want, 0.15);
            let got = state.load_snapshot("t").unwrap().unwrap();
            assert_eq!(rows(&got), rows(&want), "step {step}");
            let mut ids = state.snapshot_ids("t").unwrap().unwrap();
            ids.sort();
            let mut want_ids: Vec<String> = current.iter().map(|r| r.0.to_string()).collect();
            want_ids.sort();
            assert_eq!(ids, want_ids, "step {step}");
            let names = files(&state);
            deltas += names.iter().any(|n| n.ends_with(".delta.parquet")) as usize;
            bases += names.iter().any(|n| n.contains(".g")) as usize;
            // One generation at a time: older files are gone once a new base is promoted.
            assert!(names.len() <= 2, "step {step}: {names:?}");
        }
        assert!(
            deltas > 20 && bases > 5,
            "deltas {deltas}, new bases {bases}"
        );
    }

    #[test]
    fn a_row_without_record_key_is_always_in_the_delta() {
        let (_dir, state) = state();
        let rows = [(1, 10, false), (2, 20, true), (3, 30, false)];
        advance(&state, &snapshot(&rows), 1.0);
        // The same values again: only the row that cannot be told apart is rewritten.
        advance(&state, &snapshot(&rows), 1.0);
        let delta = read_parquet(&state.snapshots_dir().join("t.delta.parquet")).unwrap();
        let ids: Vec<&str> = delta
            .column(ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ids, ["2"]);
    }

    #[test]
    fn a_share_of_zero_or_new_columns_write_whole_snapshots() {
        let (_dir, state) = state();
        advance(&state, &snapshot(&[(1, 1, false), (2, 2, false)]), 0.0);
        advance(&state, &snapshot(&[(1, 5, false), (2, 2, false)]), 0.0);
        assert_eq!(files(&state), ["t.g1.parquet"]);
        let wider = snapshot(&[(1, 6, false), (2, 2, false)])
            .with_column(Column::new("w".into(), [1i64, 2]))
            .unwrap()
            .clone();
        advance(&state, &wider, 1.0);
        assert_eq!(files(&state), ["t.g2.parquet"]);
        assert_eq!(read_back(&state), rows(&wider));
    }

    #[test]
    fn a_whole_snapshot_journaled_after_a_delta_wins() {
        let (_dir, state) = state();
        advance(
            &state,
            &snapshot(&[(1, 1, false), (2, 2, false), (3, 3, false)]),
            1.0,
        );
        let pending = state.dir.join("pending").join("r");
        let part = |p: &str| pending.join(format!("t.{p}.parquet"));
        let mut delta_next = NextSnapshot {
            frame: snapshot(&[(1, 9, false), (2, 2, false), (3, 3, false)]),
            changed_ids: Some(vec!["1".into()]),
            max_delta_share: 1.0,
        };
        state.journal_snapshot(part, "t", &mut delta_next).unwrap();
        assert!(part("delta").exists());
        // The CRM refused ID 1: the run journals the whole snapshot with its old version,
        // and is killed before the delta is removed.
        let mut whole = snapshot(&[(1, 1, false), (2, 2, false), (3, 3, false)]);
        write_parquet(&part("snapshot"), &mut whole).unwrap();
        assert_eq!(
            rows(
                &state
                    .read_journaled(&part("snapshot"), &part("delta"), "t")
                    .unwrap()
            ),
            rows(&whole)
        );
        state
            .promote_journaled(&part("snapshot"), &part("delta"), "t")
            .unwrap();
        assert!(!part("delta").exists());
        assert_eq!(read_back(&state), rows(&whole));
    }

    #[test]
    fn removing_ids_tombstones_them_and_is_repeatable() {
        let (_dir, state) = state();
        let all = [(1, 1, false), (2, 2, false), (3, 3, false), (4, 4, false)];
        advance(&state, &snapshot(&all), 1.0);
        advance(
            &state,
            &snapshot(&[(1, 1, false), (2, 7, false), (3, 3, false), (4, 4, false)]),
            1.0,
        );
        let stamp = state.snapshot_stamp("t");
        for _ in 0..2 {
            state
                .remove_from_snapshot("t", &["2".into(), "3".into(), "9".into()])
                .unwrap();
            assert_eq!(
                read_back(&state),
                rows(&snapshot(&[(1, 1, false), (4, 4, false)]))
            );
        }
        assert_ne!(state.snapshot_stamp("t"), stamp);
    }

    fn frame(ids: &[&str], v: &[i64]) -> DataFrame {
        df!(ID => ids, "v" => v).unwrap()
    }

    fn ids_of(df: &DataFrame) -> Vec<String> {
        df.column(ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect()
    }

    #[test]
    fn file_names_give_their_generation_and_no_other_entitys() {
        assert_eq!(generation_of("ventas", "ventas.parquet"), Some((0, false)));
        assert_eq!(
            generation_of("ventas", "ventas.delta.parquet"),
            Some((0, true))
        );
        assert_eq!(
            generation_of("ventas", "ventas.g12.parquet"),
            Some((12, false))
        );
        assert_eq!(
            generation_of("ventas", "ventas.g3.delta.parquet"),
            Some((3, true))
        );
        assert_eq!(generation_of("ventas", "ventas.g.parquet"), None);
        assert_eq!(generation_of("ventas", "ventas.parquet.tmp"), None);
        assert_eq!(generation_of("ventas", "ventas_items.parquet"), None);
        assert_eq!(generation_of("ventas", "ventas.gx1.parquet"), None);
    }

    #[test]
    fn a_delta_applied_replaces_changed_ids_adds_new_ones_and_drops_tombstoned_ones() {
        let base = frame(&["1", "2", "3", "4"], &[1, 2, 3, 4]);
        let next = frame(&["1", "2", "4", "5"], &[1, 20, 4, 5]);
        let ids: HashSet<String> = ["2", "3", "5"].iter().map(|s| s.to_string()).collect();
        let delta = delta_of(&next, &ids).unwrap();
        assert_eq!(ids_of(&delta), ["2", "5", "3"]);
        let merged = merge(base, &delta).unwrap();
        assert_eq!(ids_of(&merged), ["1", "4", "2", "5"]);
        let v: Vec<i64> = merged
            .column("v")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(v, [1, 4, 20, 5]);
    }

    #[test]
    fn an_id_twice_in_the_base_is_replaced_whole_by_the_delta() {
        let base = frame(&["1", "1", "2"], &[1, 11, 2]);
        let next = frame(&["1", "2"], &[5, 2]);
        let ids: HashSet<String> = ["1".to_string()].into_iter().collect();
        let merged = merge(base, &delta_of(&next, &ids).unwrap()).unwrap();
        assert_eq!(ids_of(&merged), ["2", "1"]);
    }

    #[test]
    fn tombstones_take_the_deltas_columns_with_nulls() {
        let like = live(frame(&["1"], &[1])).unwrap();
        let t = tombstones(&like, &["9", "8"]).unwrap();
        assert_eq!(t.get_column_names(), like.get_column_names());
        assert_eq!(t.column("v").unwrap().null_count(), 2);
        assert!(t.column(GONE).unwrap().bool().unwrap().all());
    }
}
