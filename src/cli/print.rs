//! What a person reads on the terminal. Every value that comes from an export, a recipe or
//! the state goes through [`printable`], because an export can carry escape sequences.

use std::borrow::Cow;

use crate::app::check::Verdict;
use crate::app::explain::Event;
use crate::model::{ChangeSamples, EntityStatus, RunReport, RunStatus, StoredSummary};
use crate::state::RunRecord;

/// `text` safe to print on a terminal: control characters (ESC, BEL, CR, C1…) and the
/// invisible Unicode format characters that reorder or hide text (bidi overrides, zero
/// widths) are shown escaped, `\u{1b}` style (`\t`, `\n`, `\r` for those), so data from an
/// export can neither drive the terminal (retitle it, clear it, fake lines) nor hide itself.
/// Borrowed when there is nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c,
                '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

pub fn run_table(report: &RunReport) {
    outln!(
        "run {}  status {}{}",
        printable(&report.run_id),
        report.status.as_str(),
        if report.dry_run {
            "  (dry run: nothing written)"
        } else {
            ""
        }
    );
    outln!(
        "{:<12} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
        "entity",
        "status",
        "read",
        "accepted",
        "rejected",
        "warnings",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "held"
    );
    for (e, s) in &report.entities {
        outln!(
            "{:<12} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}",
            printable(e),
            printable(s.status.as_str()),
            s.read,
            s.accepted,
            s.rejected,
            s.warnings,
            s.inserted,
            s.updated,
            s.unchanged,
            s.deleted,
            s.held_deletes
        );
        if let Some(r) = &s.reason {
            outln!("    {}", printable(r));
        }
    }
    if report.status == RunStatus::Held {
        outln!(
            "deletes held by the guard: review, then `dropsync approve {}`",
            report.run_id
        );
    }
}

/// `run --json` when the run failed: the same object shape as a finished run, so a script
/// reads `status` either way.
/// A run that failed before it had a report; recipe mistakes also as a list, so a script can
/// point at each `file:line:column` without parsing the message.
pub fn failed_run_json(error: &crate::app::run::PipelineError) {
    let mut out = serde_json::json!({
        "run_id": null, "status": "failed", "error": error.to_string(), "entities": {}
    });
    if let crate::app::run::PipelineError::Recipe(crate::config::RecipeError::Invalid(diags)) =
        error
    {
        out["diagnostics"] = serde_json::to_value(diags).unwrap_or_default();
    }
    outln!("{out}");
}

/// `plan`'s samples: entities with nothing to show are left out, the table already says so.
pub fn samples(report: &RunReport) {
    for (entity, sample) in &report.samples {
        if !sample.is_empty() {
            entity_samples(entity, sample);
        }
    }
}

fn entity_samples(entity: &str, sample: &ChangeSamples) {
    let list = |ids: &[String]| {
        ids.iter()
            .map(|id| printable(id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("\n{}:", printable(entity));
    if !sample.inserted.is_empty() {
        outln!("  insert  {}", list(&sample.inserted));
    }
    for u in &sample.updated {
        let changes = u
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    printable(&c.field),
                    printable(&c.before),
                    printable(&c.after)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        outln!("  update  {}  {changes}", printable(&u.id));
    }
    if !sample.deleted.is_empty() {
        outln!("  delete  {}", list(&sample.deleted));
    }
}

/// Entities without a file this run are left out: they did nothing.
pub fn runs(runs: &[RunRecord]) {
    outln!("{:<28} {:<10} {:<25} entities", "run", "status", "started");
    for r in runs {
        // A summary that does not read (none stored, or damaged) shows no counts rather
        // than hiding the run.
        let summary = r
            .summary
            .as_ref()
            .and_then(|s| <StoredSummary as serde::Deserialize>::deserialize(s).ok())
            .unwrap_or_default();
        let counts = summary
            .entities
            .iter()
            .filter(|(_, s)| s.status != EntityStatus::NoFile)
            .map(|(k, s)| {
                format!(
                    "{k} +{} ~{} -{} !{}",
                    s.inserted, s.updated, s.deleted, s.rejected
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        outln!(
            "{:<28} {:<10} {:<25} {counts}",
            r.run_id,
            r.status,
            r.started_at
        );
    }
}

pub fn events(entity: &str, id: &str, events: &[Event]) {
    if events.is_empty() {
        outln!(
            "{} {}: no run has seen this ID",
            printable(entity),
            printable(id)
        );
        return;
    }
    for ev in events {
        let at = match (&ev.file, ev.line) {
            (Some(f), Some(l)) => format!(" ({}:{l})", printable(f)),
            _ => String::new(),
        };
        outln!(
            "{}  {:<24} {:<9} {}{at}",
            printable(&ev.started_at),
            printable(&ev.run_id),
            printable(&ev.what),
            printable(&ev.detail)
        );
    }
}

pub fn verdicts(verdicts: &[Verdict]) {
    for v in verdicts {
        outln!(
            "{:<6} {:<40} {}",
            if v.ok { "OK" } else { "FAILED" },
            v.item,
            printable(&v.detail)
        );
    }
}

/// An error and its causes on one line, each cause once: many messages already quote their
/// cause (`cannot read recipes in x: No such file…`), and repeating it reads as two problems.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(crate::config::RecipeError::Io {
            path: "missing".into(),
            source: io,
        });
        assert_eq!(
            error_message(&e),
            "cannot read recipes in missing: No such file"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_message(&e), "outer: inner");
    }
}
