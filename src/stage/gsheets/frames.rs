//! Staged frames → [`Grid`]s: the same sheets as `staging.xlsx` (entities, `rejects`,
//! `summary`): each cell's text as the workbook would display it, and each column's kind
//! (integer, amount, date) so the publisher sends numbers and dates as such. The publisher
//! neutralises formulas. Rows beyond what any spreadsheet could hold are not even
//! rendered, so a million-row entity costs at most `max_cells` strings here.

use polars::prelude::*;

use super::{CellKind, Grid};
use crate::model::EntitySummary;
use crate::model::Issue;
use crate::stage::workbook::{excel_serial, issues_frame, summary_frame, SheetInput};
use crate::support::frame_rows::ColumnView;

/// One grid per entity frame (in order), then `rejects` and `summary`.
pub fn staging_grids(
    entities: &[SheetInput],
    rejects: &[Issue],
    summary: &[(String, EntitySummary)],
    max_cells: u64,
) -> PolarsResult<Vec<Grid>> {
    let rejects = issues_frame(rejects)?;
    let summary = summary_frame(summary)?;
    entities
        .iter()
        .map(|e| (e.name, e.rows, e.dates.as_slice()))
        .chain([
            ("rejects", &rejects, &[][..]),
            ("summary", &summary, &[][..]),
        ])
        .map(|(name, df, dates)| grid(name, df, dates, max_cells))
        .collect()
}

fn grid(title: &str, df: &DataFrame, dates: &[&str], max_cells: u64) -> PolarsResult<Grid> {
    let views: Vec<ColumnView> = df
        .columns()
        .iter()
        .map(ColumnView::new)
        .collect::<PolarsResult<_>>()?;
    let cols = views.len().max(1) as u64;
    // The header row takes one row of the budget; the publisher cuts further if needed.
    let fits = (max_cells / cols).saturating_sub(1) as usize;
    let rows: Vec<Vec<String>> = (0..df.height().min(fits))
        .map(|i| {
            views
                .iter()
                .map(|v| v.text(i).unwrap_or_default())
                .collect()
        })
        .collect();
    let kinds = views
        .iter()
        .zip(df.get_column_names())
        .enumerate()
        .map(|(c, (v, name))| match v {
            ColumnView::I64(_) => Some(CellKind::Integer),
            ColumnView::Dec(_, scale) => Some(CellKind::Amount { scale: *scale }),
            ColumnView::Str(_) if dates.contains(&name.as_str()) => {
                let timed = rows
                    .iter()
                    .any(|r| excel_serial(&r[c]).is_some_and(|(_, timed)| timed));
                Some(if timed {
                    CellKind::DateTime
                } else {
                    CellKind::Date
                })
            }
            _ => None,
        })
        .collect();
    Ok(Grid {
        title: title.to_owned(),
        header: df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect(),
        rows,
        kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_text_grids_with_rejects_and_summary_last() {
        let clientes = df!(
            "id" => ["1", "2"],
            "alta" => [Some("2026-11-20"), None],
            "km" => [Some(35400i64), None],
            "activo" => [true, false]
        )
        .unwrap();
        let issue = Issue {
            entity: "clientes".into(),
            file: "clientes.csv".into(),
            line: 7,
            id: "9".into(),
            severity: crate::model::Severity::Error,
            rule: "id.duplicate".into(),
            reason: "=HYPERLINK(\"x\")".into(),
        };
        let summary = vec![("clientes".to_string(), EntitySummary::default())];
        let grids = staging_grids(
            &[SheetInput {
                name: "clientes",
                rows: &clientes,
                total: clientes.height(),
                dates: vec!["alta"],
            }],
            &[issue],
            &summary,
            10_000_000,
        )
        .unwrap();
        assert_eq!(
            grids[0].kinds,
            [None, Some(CellKind::Date), Some(CellKind::Integer), None]
        );
        let titles: Vec<&str> = grids.iter().map(|g| g.title.as_str()).collect();
        assert_eq!(titles, ["clientes", "rejects", "summary"]);
        assert_eq!(grids[0].header, ["id", "alta", "km", "activo"]);
        assert_eq!(grids[0].rows[0], ["1", "2026-11-20", "35400", "true"]);
        assert_eq!(grids[0].rows[1], ["2", "", "", "false"]);
        assert_eq!(grids[1].rows[0][2], "7", "the reject's line");
        assert_eq!(
            grids[1].rows[0][6], "=HYPERLINK(\"x\")",
            "neutralised later, once"
        );
        assert_eq!(grids[2].rows.len(), 1);
    }

    #[test]
    fn rows_no_spreadsheet_could_hold_are_not_rendered() {
        let big = df!("id" => (0..1000).map(|i| i.to_string()).collect::<Vec<_>>(), "v" => vec![1i64; 1000]).unwrap();
        let input = SheetInput {
            name: "x",
            rows: &big,
            total: big.height(),
            dates: Vec::new(),
        };
        let grids = staging_grids(&[input], &[], &[], 100).unwrap();
        assert_eq!(
            grids[0].rows.len(),
            49,
            "100 cells / 2 columns, minus the header"
        );
    }
}
