//! IDs as 64-bit keys. A million IDs as keys are 8 MB of integers hashed with one multiply,
//! instead of a million allocated strings compared byte by byte. Two different IDs share a
//! key with a chance of 2^-64 per pair: where a wrong pair would matter, a row found by key
//! is confirmed on its text ([`IdIndex`]).

use polars::prelude::*;
use rustc_hash::FxHashMap as HashMap;

/// An ID's 64-bit key.
pub fn id_key(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0x1d5)
}

/// The row of each ID of a column, found by key and confirmed on the text: two IDs that
/// share a key are never taken for one another.
pub struct IdIndex<'a> {
    ids: &'a StringChunked,
    at: HashMap<u64, u32>,
    /// IDs whose key an earlier, different ID holds.
    look_alikes: HashMap<&'a str, u32>,
}

impl<'a> IdIndex<'a> {
    /// Indexes `ids` (`keys[j]` is the key of row `j`'s ID); for each row whose ID an earlier
    /// row has, calls `repeat(first row, this row)`. An ID found twice is found at its first row.
    pub fn new(ids: &'a StringChunked, keys: &[u64], mut repeat: impl FnMut(u32, u32)) -> Self {
        let mut at: HashMap<u64, u32> =
            HashMap::with_capacity_and_hasher(ids.len(), Default::default());
        let mut look_alikes: HashMap<&str, u32> = HashMap::default();
        for ((j, id), &key) in ids.iter().enumerate().zip(keys) {
            let Some(id) = id else { continue };
            let j = j as u32;
            let first = *at.entry(key).or_insert(j);
            if first == j {
                continue;
            }
            if ids.get(first as usize) == Some(id) {
                repeat(first, j);
                continue;
            }
            let first = *look_alikes.entry(id).or_insert(j);
            if first != j {
                repeat(first, j);
            }
        }
        IdIndex {
            ids,
            at,
            look_alikes,
        }
    }

    /// The row of `id`.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.at
            .get(&id_key(id))
            .copied()
            .filter(|&j| self.ids.get(j as usize) == Some(id))
            .or_else(|| self.look_alikes.get(id).copied())
    }
}

/// The keys of a column of IDs (0 for a missing one).
pub fn keys_of(ids: &StringChunked) -> Vec<u64> {
    ids.iter().map(|id| id.map_or(0, id_key)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_by_id_and_repeats_reported_at_their_first_row() {
        let ids = StringChunked::from_iter([Some("a"), Some("b"), None, Some("a"), Some("a")]);
        let mut repeats = Vec::new();
        let index = IdIndex::new(&ids, &keys_of(&ids), |f, j| repeats.push((f, j)));
        assert_eq!(repeats, [(0, 3), (0, 4)]);
        assert_eq!(index.find("a"), Some(0));
        assert_eq!(index.find("b"), Some(1));
        assert_eq!(index.find("c"), None);
    }

    #[test]
    fn two_ids_under_one_key_stay_apart() {
        // Keys forced to collide: what a 2^-64 look-alike would do.
        let ids = StringChunked::from_iter([Some("a"), Some("b"), Some("b")]);
        let mut repeats = Vec::new();
        let index = IdIndex::new(&ids, &[7, 7, 7], |f, j| repeats.push((f, j)));
        assert_eq!(repeats, [(1, 2)], "b repeats, a does not");
        assert_eq!(index.look_alikes.get("b"), Some(&1));
        assert_eq!(index.ids.get(index.at[&7] as usize), Some("a"));
    }
}
