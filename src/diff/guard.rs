//! The delete guard. Exports are full snapshots, so a truncated or empty file looks exactly
//! like mass deletion; applied blindly, one bad export would wipe the CRM. The guard holds an
//! entity's deletes when its file has no rows or when they exceed the recipe's share of the
//! entity's current rows; held rows stay in the CRM and in the snapshot until `dropsync
//! approve` applies them (or a later run sees them again).

use crate::config::{DeletePolicy, Recipe};

/// Why the guard held an entity's deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The file has no rows: most likely a failed export, not an empty table.
    EmptyFile,
    /// More deletes than `max_delete_share` of the entity's current rows.
    OverShare,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::EmptyFile => "the file has no rows",
            HoldReason::OverShare => "over the guard's share",
        }
    }
}

/// The guard's verdict on one entity's deletes: at most one of the two is non-empty.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Deletes to apply now, per the recipe's policy.
    pub deletes: Vec<String>,
    /// Deletes held until approved.
    pub held: Vec<String>,
}

/// Whether deletes of `deleted` IDs out of `prev_rows` must wait for approval, and why. A
/// policy of `ignore` never deletes, so there is nothing to guard.
pub fn hold_reason(
    recipe: &Recipe,
    deleted: usize,
    rows_read: usize,
    prev_rows: usize,
) -> Option<HoldReason> {
    if deleted == 0 || recipe.delete_policy == DeletePolicy::Ignore {
        return None;
    }
    if rows_read == 0 {
        Some(HoldReason::EmptyFile)
    } else if deleted as f64 > recipe.max_delete_share * prev_rows as f64 {
        Some(HoldReason::OverShare)
    } else {
        None
    }
}

/// Splits the diff's deletes into those applied now and those held, and tells the operator
/// how to release a hold (`run_id` names the run to approve).
pub fn guard(
    recipe: &Recipe,
    deleted: &[String],
    rows_read: usize,
    prev_rows: usize,
    run_id: &str,
) -> Verdict {
    if deleted.is_empty() || recipe.delete_policy == DeletePolicy::Ignore {
        return Verdict::default();
    }
    match hold_reason(recipe, deleted.len(), rows_read, prev_rows) {
        Some(reason) => {
            tracing::warn!(
                entity = recipe.entity.as_str(),
                deletes = deleted.len(),
                of = prev_rows,
                "deletes held: {} (approve with `dropsync approve {run_id}`)",
                reason.as_str()
            );
            Verdict {
                deletes: Vec::new(),
                held: deleted.to_vec(),
            }
        }
        None => Verdict {
            deletes: deleted.to_vec(),
            held: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_dir;

    fn recipe(deletes: &str) -> Recipe {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.toml"),
            format!(
                "entity = \"t\"\n[source]\nfiles = [\"t.csv\"]\n[id]\ncolumn = \"ID\"\n\
                 [deletes]\n{deletes}\n[[field]]\nname = \"a\"\nfrom = \"A\"\n"
            ),
        )
        .unwrap();
        load_dir(dir.path()).unwrap().entities.remove(0)
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn deletes_within_the_share_pass() {
        let r = recipe("max_share = 0.1");
        let v = guard(&r, &ids(10), 90, 100, "run");
        assert_eq!(v.deletes, ids(10));
        assert!(v.held.is_empty());
        assert_eq!(
            hold_reason(&r, 10, 90, 100),
            None,
            "exactly the share passes"
        );
    }

    #[test]
    fn deletes_over_the_share_are_held() {
        let r = recipe("max_share = 0.1");
        assert_eq!(hold_reason(&r, 11, 89, 100), Some(HoldReason::OverShare));
        let v = guard(&r, &ids(11), 89, 100, "run");
        assert!(v.deletes.is_empty());
        assert_eq!(v.held, ids(11));
    }

    #[test]
    fn an_empty_file_holds_even_a_small_share() {
        let r = recipe("max_share = 1.0");
        assert_eq!(hold_reason(&r, 1, 0, 100), Some(HoldReason::EmptyFile));
        assert_eq!(guard(&r, &ids(1), 0, 100, "run").held, ids(1));
    }

    #[test]
    fn nothing_is_guarded_under_the_ignore_policy_or_without_deletes() {
        let r = recipe("policy = \"ignore\"\nmax_share = 0.0");
        assert_eq!(hold_reason(&r, 50, 0, 100), None);
        assert_eq!(guard(&r, &ids(50), 0, 100, "run"), Verdict::default());
        let soft = recipe("max_share = 0.0");
        assert_eq!(guard(&soft, &[], 0, 100, "run"), Verdict::default());
    }
}
