//! Writes one entity's file: base rows in index order (skipping deleted ones and applying changes in
//! a next snapshot), dirty rows spread between them, then added rows. Reports the line of every
//! dirty row a validator must flag.

use std::path::Path;

use super::changes::EntityChanges;
use super::csv_out::CsvOut;
use super::dirty::{self, Outcome};
use super::entity::Entity;
use super::plan::Plan;
use super::record::Record;
use super::sink::TextSink;
use super::unidades;
use super::xml_out::XmlOut;
use super::{GenError, GenOptions, UnitFormat};

/// What was written for one entity.
#[derive(Debug)]
pub(super) struct EntityReport {
    /// The entity.
    pub entity: Entity,
    /// Its file name.
    pub file: &'static str,
    /// Data records written.
    pub rows: usize,
    /// (line, raw ID, outcome) of every dirty row that is not clean.
    pub issues: Vec<(u64, String, Outcome)>,
}

enum Out {
    Csv(CsvOut),
    Xml(XmlOut),
}

impl Out {
    fn write(&mut self, rec: &Record) -> Result<u64, GenError> {
        match self {
            Out::Csv(c) => c.write(rec),
            Out::Xml(x) => x.write(rec),
        }
    }

    fn finish(self) -> Result<(), GenError> {
        match self {
            Out::Csv(c) => c.finish(),
            Out::Xml(x) => x.finish(),
        }
    }
}

/// Writes `entity` into `dir`; `changes` is `Some` for a next snapshot.
pub(super) fn write_entity(
    plan: &Plan,
    opts: &GenOptions,
    entity: Entity,
    changes: Option<&EntityChanges>,
    dir: &Path,
) -> Result<EntityReport, GenError> {
    let file = entity.file_name(opts.unidades);
    let sink = TextSink::create(&dir.join(file), opts.encoding)?;
    let mut out = match (entity, opts.unidades) {
        (Entity::Unidades, UnitFormat::Xml) => Out::Xml(XmlOut::new(
            sink,
            opts.encoding,
            plan.day,
            &unidades::HEADERS,
        )),
        _ => Out::Csv(CsvOut::new(sink, entity.headers(opts.dirty))),
    };
    let dirty = if opts.dirty {
        dirty::rows(plan, entity)
    } else {
        Vec::new()
    };
    let n = entity.base_count(&plan.sizes);
    // Dirty row k goes just before base row slot(k): spread over the file, same place in both snapshots.
    let slot = |k: usize| (k + 1) * n / (dirty.len() + 1);
    let mut report = EntityReport {
        entity,
        file,
        rows: 0,
        issues: Vec::new(),
    };
    let mut next_dirty = 0;
    let write_dirty =
        |k: usize, out: &mut Out, report: &mut EntityReport| -> Result<(), GenError> {
            let row = &dirty[k];
            let line = out.write(&row.rec)?;
            report.rows += 1;
            if row.outcome != Outcome::Clean {
                report
                    .issues
                    .push((line, row.rec.get(0).to_string(), row.outcome));
            }
            Ok(())
        };
    let mut rec = entity.new_record();
    for i in 0..n {
        while next_dirty < dirty.len() && slot(next_dirty) <= i {
            write_dirty(next_dirty, &mut out, &mut report)?;
            next_dirty += 1;
        }
        if changes.is_some_and(|c| c.is_deleted(i)) {
            continue;
        }
        entity.fill(plan, i, &mut rec);
        if changes.is_some_and(|c| c.is_changed(i)) {
            entity.change(plan, i, &mut rec);
        }
        out.write(&rec)?;
        report.rows += 1;
    }
    while next_dirty < dirty.len() {
        write_dirty(next_dirty, &mut out, &mut report)?;
        next_dirty += 1;
    }
    let added = changes.map_or(0, |c| c.added);
    for i in n..n + added {
        entity.fill(plan, i, &mut rec);
        out.write(&rec)?;
        report.rows += 1;
    }
    out.finish()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::GenEncoding;
    use super::*;

    #[test]
    fn dirty_rows_are_spread_and_their_lines_reported() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenOptions {
            clients: 300,
            seed: 2,
            encoding: GenEncoding::Utf8,
            unidades: UnitFormat::Xml,
            dirty: true,
        };
        let plan = Plan::new(opts.seed, opts.clients, false);
        let report = write_entity(&plan, &opts, Entity::Ventas, None, dir.path()).unwrap();
        assert_eq!(report.rows, 450 + 8);
        let lines: Vec<u64> = report.issues.iter().map(|(l, _, _)| *l).collect();
        assert_eq!(lines.len(), 8, "every dirty sale is flagged");
        assert!(lines.windows(2).all(|w| w[0] < w[1]));
        assert!(lines[0] > 10 && *lines.last().unwrap() < 450, "{lines:?}");
        let text = std::fs::read_to_string(dir.path().join("ventas.csv")).unwrap();
        let (line, id, _) = &report.issues[0];
        // Ventas cells never hold line breaks, so physical lines are records.
        let row = text.split("\r\n").nth(*line as usize - 1).unwrap();
        assert!(row.starts_with(&format!("{id};")), "{row}");
    }
}
