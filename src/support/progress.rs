//! What a run shows on a terminal while it works: one bar per pipeline stage (read, transform,
//! validate, diff, staging, CRM), each counting entities, its message naming the entity in
//! hand and the rows it carried. Nothing is drawn when stderr is not a terminal (cron, CI,
//! `--json` piped somewhere) or with `--quiet`: logs are the record there, bars are for people.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Read,
    Transform,
    Validate,
    Diff,
    Staging,
    Crm,
}

impl Stage {
    const ALL: [Stage; 6] = [
        Stage::Read,
        Stage::Transform,
        Stage::Validate,
        Stage::Diff,
        Stage::Staging,
        Stage::Crm,
    ];

    fn label(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Transform => "transform",
            Stage::Validate => "validate",
            Stage::Diff => "diff",
            Stage::Staging => "staging",
            Stage::Crm => "crm",
        }
    }
}

/// Cheap to call when hidden: every method is a no-op without bars.
pub struct Progress {
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
}

impl Progress {
    /// Bars on stderr when `enabled` and stderr is a terminal; hidden otherwise.
    pub fn new(enabled: bool, entities: usize) -> Progress {
        if enabled && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Progress::with_target(ProgressDrawTarget::stderr(), entities)
        } else {
            Progress { bars: None }
        }
    }

    fn with_target(target: ProgressDrawTarget, entities: usize) -> Progress {
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>9} {spinner} [{elapsed_precise}] {bar:28} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bars = Stage::ALL
            .iter()
            .map(|s| {
                let b = multi.add(ProgressBar::new(entities as u64));
                b.set_style(style.clone());
                b.set_prefix(s.label());
                b
            })
            .collect();
        Progress {
            bars: Some((multi, bars)),
        }
    }

    fn bar(&self, stage: Stage) -> Option<&ProgressBar> {
        let i = Stage::ALL.iter().position(|s| *s == stage)?;
        self.bars.as_ref().map(|(_, b)| &b[i])
    }

    /// The stage started on `what` (an entity, or "workbook").
    pub fn begin(&self, stage: Stage, what: &str) {
        if let Some(b) = self.bar(stage) {
            b.set_message(format!("{what}…"));
            b.tick();
        }
    }

    /// The stage finished one entity, having carried `rows` rows.
    pub fn end(&self, stage: Stage, what: &str, rows: usize) {
        if let Some(b) = self.bar(stage) {
            b.inc(1);
            b.set_message(format!("{what}: {rows} rows"));
        }
    }

    /// One more step for a stage than entities (the staging workbook).
    pub fn add_step(&self, stage: Stage) {
        if let Some(b) = self.bar(stage) {
            b.inc_length(1);
        }
    }

    /// Clears the bars (the run's table or JSON follows).
    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            for b in bars {
                b.finish_and_clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{InMemoryTerm, TermLike};

    #[test]
    fn each_stage_has_its_own_bar_counting_entities_with_rows() {
        let term = InMemoryTerm::new(12, 120);
        let p = Progress::with_target(ProgressDrawTarget::term_like(Box::new(term.clone())), 2);
        p.begin(Stage::Read, "clientes");
        p.end(Stage::Read, "clientes", 300);
        p.begin(Stage::Validate, "ventas");
        p.add_step(Stage::Staging);
        p.end(Stage::Staging, "workbook", 7);
        if let Some((multi, _)) = &p.bars {
            multi.set_move_cursor(false);
        }
        p.bar(Stage::Crm).unwrap().tick();
        let screen = term.contents();
        let line = |label: &str| {
            screen
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("no {label} bar in\n{screen}"))
                .to_string()
        };
        assert!(line("read").contains("1/2 clientes: 300 rows"), "{screen}");
        assert!(line("validate").contains("0/2 ventas…"), "{screen}");
        assert!(line("staging").contains("1/3 workbook: 7 rows"), "{screen}");
        assert!(line("transform").contains("0/2"), "{screen}");
        assert!(term.width() == 120);
    }

    #[test]
    fn hidden_progress_draws_nothing() {
        let p = Progress::new(false, 3);
        assert!(p.bars.is_none());
        p.begin(Stage::Read, "clientes");
        p.end(Stage::Read, "clientes", 1);
        p.finish();
    }
}
