//! The shape of a drop: entity sizes, which rows may be referenced, and how references are drawn.
//!
//! Every reference is drawn among the *referenceable* rows of its target. The other rows, the
//! "leaves" (one row in ten: those with `(n - 1 - i).is_multiple_of(10)`), are never referenced by anything,
//! so the next snapshot can delete any of them without breaking a reference or cascading. Leaves are
//! fixed by the base size alone, so the base drop does not need to know the change spec.

use super::calendar::days_from_civil;
use super::codes::{self, BranchKind, Role};
use super::rng::Rng;

/// The date of the base drop. The next snapshot is the following day.
pub(super) fn base_day() -> i32 {
    days_from_civil(2026, 11, 20)
}

/// Row counts of the base snapshot for `clients = N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sizes {
    /// max(5, N/200)
    pub users: usize,
    /// max(3, N/2000)
    pub branches: usize,
    /// N
    pub clients: usize,
    /// 1.5 N
    pub sales: usize,
    /// 1.2 N
    pub units: usize,
    /// 2 N
    pub services: usize,
}

impl Sizes {
    /// The ratios the brief fixes.
    pub(super) fn for_clients(n: usize) -> Sizes {
        Sizes {
            users: (n / 200).max(5),
            branches: (n / 2000).max(3),
            clients: n,
            sales: n * 3 / 2,
            units: n * 6 / 5,
            services: n * 2,
        }
    }
}

/// True when row `i` of an entity of base size `n` is a leaf (never referenced).
pub(super) fn is_leaf(n: usize, i: usize) -> bool {
    i < n && (n - 1 - i).is_multiple_of(10)
}

/// Number of leaves among `n` rows: ceil(n / 10).
pub(super) fn leaf_count(n: usize) -> usize {
    n.div_ceil(10)
}

/// Number of referenceable rows among `n`.
pub(super) fn core_count(n: usize) -> usize {
    n - leaf_count(n)
}

/// Position of leaf `i` among the leaves.
pub(super) fn leaf_ordinal(n: usize, i: usize) -> usize {
    (n - 1 - i) / 10
}

/// The `k`-th referenceable row (k < core_count).
pub(super) fn core_at(n: usize, k: usize) -> usize {
    let m = (k / 9) * 10 + k % 9 + 1;
    n - 1 - m
}

/// Position of referenceable row `i` among the referenceable rows.
pub(super) fn core_ordinal(n: usize, i: usize) -> usize {
    let m = n - 1 - i;
    (m / 10) * 9 + m % 10 - 1
}

/// Everything a row generator needs besides its own random stream.
#[derive(Debug)]
pub(super) struct Plan {
    /// The user's seed.
    pub seed: u64,
    /// Base sizes (references always point into these).
    pub sizes: Sizes,
    /// Date of the drop being written.
    pub day: i32,
    vendors: Vec<usize>,
    advisors: Vec<usize>,
    branches_any: Vec<usize>,
    branches_sales: Vec<usize>,
    branches_stock: Vec<usize>,
    talleres: Vec<usize>,
}

impl Plan {
    /// Plans a drop of `clients` clients; `next` selects the following day's date.
    pub(super) fn new(seed: u64, clients: usize, next: bool) -> Plan {
        let sizes = Sizes::for_clients(clients);
        let core_users = (0..sizes.users).filter(|&i| !is_leaf(sizes.users, i));
        let (mut vendors, mut advisors) = (Vec::new(), Vec::new());
        for i in core_users {
            match codes::role(seed, i) {
                Role::Vendedor => vendors.push(i),
                Role::Asesor => advisors.push(i),
                _ => {}
            }
        }
        let core_branches: Vec<usize> = (0..sizes.branches)
            .filter(|&j| !is_leaf(sizes.branches, j))
            .collect();
        let of_kind = |kinds: &[BranchKind]| -> Vec<usize> {
            core_branches
                .iter()
                .copied()
                .filter(|&j| kinds.contains(&codes::branch_kind(j)))
                .collect()
        };
        Plan {
            seed,
            sizes,
            day: base_day() + i32::from(next),
            vendors,
            advisors,
            branches_sales: of_kind(&[BranchKind::Sucursal]),
            branches_stock: of_kind(&[BranchKind::Sucursal, BranchKind::Deposito]),
            talleres: of_kind(&[BranchKind::Taller]),
            branches_any: core_branches,
        }
    }

    /// A referenceable client.
    pub(super) fn client(&self, rng: &mut Rng) -> usize {
        pick_core(self.sizes.clients, rng)
    }

    /// A referenceable sale.
    pub(super) fn sale(&self, rng: &mut Rng) -> usize {
        pick_core(self.sizes.sales, rng)
    }

    /// A referenceable unit.
    pub(super) fn unit(&self, rng: &mut Rng) -> usize {
        pick_core(self.sizes.units, rng)
    }

    /// A referenceable salesperson, if the dealer has one.
    pub(super) fn vendor(&self, rng: &mut Rng) -> Option<usize> {
        pick_from(&self.vendors, rng)
    }

    /// A referenceable service advisor.
    pub(super) fn advisor(&self, rng: &mut Rng) -> Option<usize> {
        pick_from(&self.advisors, rng)
    }

    /// Any referenceable branch.
    pub(super) fn branch_any(&self, rng: &mut Rng) -> Option<usize> {
        pick_from(&self.branches_any, rng)
    }

    /// A referenceable branch of kind Sucursal (where sales happen).
    pub(super) fn branch_sales(&self, rng: &mut Rng) -> Option<usize> {
        pick_from(&self.branches_sales, rng)
    }

    /// A referenceable Sucursal or Depósito (where vehicles sit).
    pub(super) fn branch_stock(&self, rng: &mut Rng) -> Option<usize> {
        pick_from(&self.branches_stock, rng)
    }

    /// A referenceable Taller; there is always one (branch 1 is a Taller and never the only leaf).
    pub(super) fn taller(&self, rng: &mut Rng) -> usize {
        pick_from(&self.talleres, rng).unwrap_or(1)
    }
}

fn pick_core(n: usize, rng: &mut Rng) -> usize {
    core_at(n, rng.below(core_count(n) as u64) as usize)
}

fn pick_from(list: &[usize], rng: &mut Rng) -> Option<usize> {
    if list.is_empty() {
        None
    } else {
        Some(rng.pick(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_at(n: usize, k: usize) -> usize {
        n - 1 - 10 * k
    }

    #[test]
    fn sizes_follow_the_ratios() {
        let s = Sizes::for_clients(1000);
        assert_eq!(
            (s.users, s.branches, s.clients, s.sales, s.units, s.services),
            (5, 3, 1000, 1500, 1200, 2000)
        );
        let s = Sizes::for_clients(100_000);
        assert_eq!((s.users, s.branches), (500, 50));
    }

    #[test]
    fn leaves_and_core_partition_the_rows() {
        for n in 1..60 {
            let leaves: Vec<usize> = (0..n).filter(|&i| is_leaf(n, i)).collect();
            assert_eq!(leaves.len(), leaf_count(n));
            for (k, &i) in leaves.iter().rev().enumerate() {
                assert_eq!(leaf_at(n, k), i);
                assert_eq!(leaf_ordinal(n, i), k);
            }
            let core: Vec<usize> = (0..core_count(n)).map(|k| core_at(n, k)).collect();
            for (k, &i) in core.iter().enumerate() {
                assert!(i < n && !is_leaf(n, i), "n={n} k={k} i={i}");
                assert_eq!(core_ordinal(n, i), k);
            }
            let mut all: Vec<usize> = core.iter().chain(leaves.iter()).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn every_reference_list_is_filled_for_small_drops() {
        for clients in [20, 300, 1999, 2000, 22_000, 40_000] {
            let p = Plan::new(1, clients, false);
            assert!(!p.vendors.is_empty() && !p.advisors.is_empty(), "{clients}");
            assert!(
                !p.talleres.is_empty()
                    && !p.branches_sales.is_empty()
                    && !p.branches_stock.is_empty()
            );
            for &t in &p.talleres {
                assert_eq!(codes::branch_kind(t), BranchKind::Taller);
            }
        }
    }
}
