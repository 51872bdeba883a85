//! Which rows the next snapshot deletes, changes and adds, chosen by stride permutations (never by
//! probability) so the counts are exact and "is row i changed?" is O(1) arithmetic.
//!
//! Deletions come only from the leaves (rows nothing references, see `plan`), so no reference breaks
//! and nothing cascades. Changes come from the referenceable rows first, then from leaves that were
//! not deleted. Added rows take the indices right after the base rows, so their IDs are fresh.

use super::entity::Entity;
use super::plan::{core_count, core_ordinal, is_leaf, leaf_count, leaf_ordinal, Sizes};
use super::rng::{Rng, Stream};
use super::{ChangeSpec, GenError};

/// A bijection of `0..len`: `j -> (a*j + b) mod len` with `gcd(a, len) = 1`.
#[derive(Debug, Clone, Copy)]
struct Perm {
    len: u64,
    a_inv: u64,
    b: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Inverse of `a` modulo `m` (they must be coprime).
fn mod_inverse(a: u64, m: u64) -> u64 {
    let (mut old_r, mut r) = (a as i128, m as i128);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(m as i128) as u64
}

impl Perm {
    fn new(len: usize, rng: &mut Rng) -> Perm {
        let len = len as u64;
        if len <= 1 {
            return Perm {
                len: len.max(1),
                a_inv: 0,
                b: 0,
            };
        }
        // A stride near the golden ratio spreads the chosen rows over the whole file.
        let mut a = (len * 618 / 1000 + rng.below(len)) % len;
        while a == 0 || gcd(a, len) != 1 {
            a = (a + 1) % len;
        }
        Perm {
            len,
            a_inv: mod_inverse(a, len),
            b: rng.below(len),
        }
    }

    /// The `j` with `at(j) == k`: the rank at which element `k` is chosen.
    fn rank(&self, k: usize) -> usize {
        if self.len <= 1 {
            return 0;
        }
        let k = k as u64 % self.len;
        let diff = (k + self.len - self.b) % self.len;
        ((diff as u128 * self.a_inv as u128) % self.len as u128) as usize
    }
}

/// The change plan of one entity.
#[derive(Debug, Clone)]
pub(super) struct EntityChanges {
    /// Base row count.
    pub n: usize,
    /// Rows deleted (all leaves).
    pub deleted: usize,
    /// Rows changed.
    pub changed: usize,
    /// Rows added after the base rows.
    pub added: usize,
    leaf_perm: Perm,
    core_perm: Perm,
}

/// `round(f * n)`, half away from zero.
fn count(f: f64, n: usize) -> usize {
    (f * n as f64).round() as usize
}

/// Most rows of `n` that stay strictly below 10% (`d * 10 < n`); always within the leaves.
/// `round(f * n)` can reach 10% on small entities (f = 0.09, n = 50 gives 5), where a delete guard
/// would hold the drop, so the count is capped here and the manifest states the capped number.
pub(super) fn max_deletes(n: usize) -> usize {
    (n.saturating_sub(1) / 10).min(leaf_count(n))
}

/// Checks the spec: fractions in 0..=1, deletes below 10%, changes plus deletes at most everything.
pub(super) fn check_spec(spec: &ChangeSpec) -> Result<(), GenError> {
    for (name, value) in [
        ("changed", spec.changed),
        ("added", spec.added),
        ("deleted", spec.deleted),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return Err(GenError::ChangeSpec {
                name,
                value,
                reason: "must be a fraction between 0 and 1",
            });
        }
    }
    if spec.deleted >= 0.1 {
        return Err(GenError::ChangeSpec {
            name: "deleted",
            value: spec.deleted,
            reason: "must stay below 0.1 (a delete guard would hold the drop)",
        });
    }
    if spec.changed + spec.deleted > 1.0 {
        return Err(GenError::ChangeSpec {
            name: "changed",
            value: spec.changed,
            reason: "changed + deleted cannot exceed 1",
        });
    }
    Ok(())
}

impl EntityChanges {
    /// Plans the changes of `entity` (the spec must have passed [`check_spec`]).
    pub(super) fn new(
        seed: u64,
        entity: Entity,
        sizes: &Sizes,
        spec: &ChangeSpec,
    ) -> EntityChanges {
        let n = entity.base_count(sizes);
        let mut rng = Rng::for_row(seed, entity.tag(), Stream::Plan, 0);
        let deleted = count(spec.deleted, n).min(max_deletes(n));
        let changed = count(spec.changed, n).min(n - deleted);
        EntityChanges {
            n,
            deleted,
            changed,
            added: count(spec.added, n),
            leaf_perm: Perm::new(leaf_count(n), &mut rng),
            core_perm: Perm::new(core_count(n), &mut rng),
        }
    }

    /// True when base row `i` is absent from the next snapshot.
    pub(super) fn is_deleted(&self, i: usize) -> bool {
        is_leaf(self.n, i) && self.leaf_perm.rank(leaf_ordinal(self.n, i)) < self.deleted
    }

    /// True when base row `i` carries a changed value in the next snapshot.
    pub(super) fn is_changed(&self, i: usize) -> bool {
        let core = core_count(self.n);
        if is_leaf(self.n, i) {
            let extra = self.changed.saturating_sub(core);
            let r = self.leaf_perm.rank(leaf_ordinal(self.n, i));
            r >= self.deleted && r < self.deleted + extra
        } else {
            self.core_perm.rank(core_ordinal(self.n, i)) < self.changed.min(core)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_rank_is_a_bijection() {
        for len in [1usize, 2, 3, 10, 97, 100, 1000] {
            let mut rng = Rng::for_row(1, 1, Stream::Plan, len as u64);
            let p = Perm::new(len, &mut rng);
            let mut ranks: Vec<usize> = (0..len).map(|k| p.rank(k)).collect();
            ranks.sort_unstable();
            assert_eq!(ranks, (0..len).collect::<Vec<_>>(), "len {len}");
        }
    }

    #[test]
    fn counts_are_exact_and_disjoint() {
        let spec = ChangeSpec {
            changed: 0.3,
            added: 0.05,
            deleted: 0.099,
        };
        for clients in [20, 300, 1234, 2000] {
            let sizes = Sizes::for_clients(clients);
            for e in Entity::ALL {
                let c = EntityChanges::new(9, e, &sizes, &spec);
                let n = e.base_count(&sizes);
                let del = (0..n).filter(|&i| c.is_deleted(i)).count();
                let chg = (0..n).filter(|&i| c.is_changed(i)).count();
                assert_eq!(
                    del,
                    count(spec.deleted, n).min(max_deletes(n)),
                    "{e:?} n={n}"
                );
                assert!(del * 10 < n || del == 0, "{e:?} n={n}");
                assert_eq!(chg, count(spec.changed, n), "{e:?} n={n}");
                assert!((0..n).all(|i| !(c.is_deleted(i) && c.is_changed(i))));
                assert!((0..n).all(|i| !c.is_deleted(i) || is_leaf(n, i)));
            }
        }
    }

    #[test]
    fn deletes_stay_below_ten_percent() {
        assert_eq!(max_deletes(50), 4);
        assert_eq!(max_deletes(1000), 99);
        assert_eq!(max_deletes(5), 0);
        for n in 1..500 {
            assert!(max_deletes(n) * 10 < n && max_deletes(n) <= leaf_count(n));
        }
    }

    #[test]
    fn changing_almost_everything_spills_into_leaves() {
        let spec = ChangeSpec {
            changed: 0.95,
            added: 0.0,
            deleted: 0.05,
        };
        let sizes = Sizes::for_clients(1000);
        let c = EntityChanges::new(3, Entity::Clientes, &sizes, &spec);
        let chg = (0..1000).filter(|&i| c.is_changed(i)).count();
        let del = (0..1000).filter(|&i| c.is_deleted(i)).count();
        assert_eq!((chg, del), (950, 50));
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = ChangeSpec {
            changed: 0.1,
            added: 0.1,
            deleted: 0.05,
        };
        assert!(check_spec(&ok).is_ok());
        assert!(check_spec(&ChangeSpec { deleted: 0.1, ..ok }).is_err());
        assert!(check_spec(&ChangeSpec { added: -0.1, ..ok }).is_err());
        assert!(check_spec(&ChangeSpec {
            changed: f64::NAN,
            ..ok
        })
        .is_err());
        assert!(check_spec(&ChangeSpec {
            changed: 0.97,
            ..ok
        })
        .is_err());
    }
}
